import torch
from torch.nn import functional as F
from edflow_torch import TemplateIterator


class Iterator(TemplateIterator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        lr = self.config.get("lr", 2e-3)
        self.g_optimizer = torch.optim.Adam(self.model.generator.parameters(), lr=lr, betas=(0.5, 0.999))
        self.d_optimizer = torch.optim.Adam(self.model.discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
        self.g_scheduler = torch.optim.lr_scheduler.StepLR(self.g_optimizer, step_size=5, gamma=0.8)

    def step_op(self, model, real):
        ones = torch.ones(len(real), 1)
        zeros = torch.zeros(len(real), 1)
        losses = {}

        def train_op():
            fake = model.sample(len(real))
            d_loss = (F.binary_cross_entropy_with_logits(model(real), ones)
                      + F.binary_cross_entropy_with_logits(model(fake.detach()), zeros))
            self.d_optimizer.zero_grad()
            d_loss.backward()
            self.d_optimizer.step()

            g_loss = F.binary_cross_entropy_with_logits(model(fake), ones)
            self.g_optimizer.zero_grad()
            g_loss.backward()
            self.g_optimizer.step()
            self.g_scheduler.step()
            losses.update(d_loss=d_loss.detach(), g_loss=g_loss.detach())

        def log_op():
            return {"scalars": {**losses, "g_lr": self.g_scheduler.get_last_lr()[0]}}

        def eval_op():
            return {"fake": model.sample(len(real))}

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}
