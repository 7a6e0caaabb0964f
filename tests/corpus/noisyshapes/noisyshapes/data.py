import numpy as np
import torch


def shape_images(count, seed):
    """``count`` 10x10 images of a cross (label 0) or a square outline (label 1) at a random place."""
    rng = np.random.RandomState(seed)
    images = np.zeros((count, 1, 10, 10), dtype="float32")
    labels = rng.randint(0, 2, count)
    for image, label, (row, col) in zip(images, labels, rng.randint(1, 5, (count, 2))):
        if label == 0:
            image[0, row + 2, col:col + 5] = image[0, row:row + 5, col + 2] = 1
        else:
            image[0, row, col:col + 5] = image[0, row + 4, col:col + 5] = 1
            image[0, row:row + 5, col] = image[0, row:row + 5, col + 4] = 1
    return images, labels.astype("int64")


class Shapes:
    """Training examples: each time an image is loaded it gets a random 8x8 crop and Gaussian noise."""

    augment = True

    def __init__(self, config):
        self.images, self.labels = shape_images(config.get("num_images", 96), seed=0)
        self.noise = config.get("noise", 0.1)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        image = torch.from_numpy(self.images[index])
        if self.augment:
            top, left = torch.randint(0, 3, (2,)).tolist()
            image = image[:, top:top + 8, left:left + 8] + self.noise * torch.randn(1, 8, 8)
        else:
            image = image[:, 1:9, 1:9]
        return {"image": image, "label": self.labels[index]}


class HeldOutShapes(Shapes):
    """Other images, centre-cropped and not noised."""

    augment = False

    def __init__(self, config):
        self.images, self.labels = shape_images(config.get("num_images", 96), seed=1)
