import torch
from torch import nn


class GAN(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.latent_dim = config.get("latent_dim", 4)
        width = config.get("width", 16)
        self.generator = nn.Sequential(nn.Linear(self.latent_dim, width), nn.ReLU(), nn.Linear(width, 2))
        self.discriminator = nn.Sequential(nn.Linear(2, width), nn.LeakyReLU(0.2), nn.Dropout(0.1),
                                           nn.Linear(width, 1))

    def sample(self, count):
        z = torch.randn(count, self.latent_dim, device=next(self.parameters()).device)
        return self.generator(z)

    def forward(self, points):
        return self.discriminator(points)
