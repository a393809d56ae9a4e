"""edgefit: compress PyTorch models and compile them for edge boards (Raspberry Pi, Jetson)."""

__version__ = "0.1.0"
