"""Training and evaluation ops for the digits CNN: cross-entropy with Adam, loss and accuracy logged."""
import torch
from torch.nn import functional

from edflow_torch import TemplateIterator


class Iterator(TemplateIterator):
    """Checkpoints need no code here: the model, the optimizer and the RNG states are saved automatically."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.get("lr", 1e-3))

    def step_op(self, model, image, label):
        logits = model(image)

        def train_op():
            loss = functional.cross_entropy(logits, label)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()

        def log_op():
            # Tensors are fine here: edflow calls .item() on logged steps only.
            return {"scalars": {"loss": functional.cross_entropy(logits, label),
                                "accuracy": (logits.argmax(1) == label).float().mean()}}

        def eval_op():
            return {"prediction": logits.argmax(1), "logits": logits}

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}
