"""A small CNN told crosses from squares; the training images are augmented in the dataset with torch's RNG."""
