"""deimos: active learning with Dropout-based Expected IMprOvementS."""

__version__ = "0.1.0"
