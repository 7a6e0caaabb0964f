"""Training and evaluation ops of the autoencoder: mean squared error with Adam; inputs and reconstructions logged
as images, the codes as a histogram."""
import torch
from torch.nn import functional

from edflow_torch import TemplateIterator


class Iterator(TemplateIterator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.get("lr", 1e-3))

    def step_op(self, model, image, label):
        code = model.encoder(image)
        reconstruction = model.decoder(code)
        loss = functional.mse_loss(reconstruction, image)

        def train_op():
            self.optimize(loss, self.optimizer)

        def log_op():
            # Tensors as they are: edflow copies them to numpy on logged steps and writes the grids on a thread of
            # its own (train/images/<key>/<step>.png and TensorBoard's IMAGES tab).
            return {
                "scalars": {"loss": loss},
                "images": {"inputs": image, "reconstructions": reconstruction},
                "histograms": {"code": code},
            }

        def eval_op():
            return {"squared_error": ((reconstruction - image) ** 2).mean(dim=(1, 2, 3))}

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}
