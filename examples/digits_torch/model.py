"""A small CNN for 8x8 one-channel images."""
import torch
from torch import nn


class CNN(nn.Module):
    """Two 3x3 convolutions, one 2x2 pooling, two linear layers: about 40k parameters."""

    def __init__(self, config):
        super().__init__()
        channels = config.get("channels", 16)
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * channels * 4 * 4, 64), nn.ReLU(), nn.Dropout(config.get("dropout", 0.1)),
            nn.Linear(64, 10),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(image))
