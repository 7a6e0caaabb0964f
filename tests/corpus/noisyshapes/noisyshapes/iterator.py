import torch
from torch.nn import functional as F
from edflow_torch import TemplateIterator


class Iterator(TemplateIterator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.config.get("lr", 0.1), momentum=0.9)

    def step_op(self, model, image, label):
        logits = model(image)
        loss = F.cross_entropy(logits, label)

        def train_op():
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()

        def log_op():
            return {"scalars": {"loss": loss, "accuracy": (logits.argmax(1) == label).float().mean()}}

        def eval_op():
            return {"prediction": logits.argmax(1)}

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}
