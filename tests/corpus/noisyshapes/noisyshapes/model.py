from torch import nn


class CNN(nn.Module):
    def __init__(self, config):
        super().__init__()
        channels = config.get("channels", 8)
        self.layers = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.2), nn.Linear(channels * 4 * 4, 2),
        )

    def forward(self, image):
        return self.layers(image)
