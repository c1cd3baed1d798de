"""modelreg: an event-sourced model registry. This package root is the training-side client."""
__version__ = "0.1.0"
