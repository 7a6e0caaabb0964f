"""A small convolutional autoencoder for 16x16 one-channel images."""
import torch
from torch import nn


class Autoencoder(nn.Module):
    """16x16 -> 8x8 -> 4x4 (``code_channels``, 2: 32 numbers for 256 pixels) and back; the output is in [-1, 1] like the images."""

    def __init__(self, config):
        super().__init__()
        width, code = config.get("channels", 16), config.get("code_channels", 2)
        self.encoder = nn.Sequential(
            nn.Conv2d(1, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, code, 3, stride=2, padding=1),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(code, width, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1), nn.Tanh(),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(image))
