"""learnloop: a small, fast, hackable training loop for PyTorch."""

__version__ = "0.1.0"
