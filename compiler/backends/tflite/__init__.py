"""TFLite backend: IR -> .tflite flatbuffer (written with the `tflite` schema builders), run with LiteRT."""

from edgefit.compiler.backends.tflite.export import export_tflite
from edgefit.compiler.backends.tflite.run import run_tflite

__all__ = ["export_tflite", "run_tflite"]
