"""gradlint: find the causes of exploding gradients in PyTorch training code."""

__version__ = "0.2.0"
