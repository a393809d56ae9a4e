"""Front-end: capture a PyTorch model with torch.export and translate it into edgefit's IR."""

from edgefit.compiler.frontend.capture import capture
from edgefit.compiler.frontend.errors import UnsupportedOpError

__all__ = ["UnsupportedOpError", "capture"]
