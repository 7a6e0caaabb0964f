"""Handwritten digits (scikit-learn's bundled 8x8 images) classified by a small CNN, trained with edflow-torch."""
