"""Split computing (BottleFit): the head runs on the device, the tail on an edge server; this package
holds the wire format, the server (`edgefit serve`), the device-side client and a link shaper."""

from edgefit.runtime.split.client import SplitPipeline, SplitReport, SplitUnavailable, run_split
from edgefit.runtime.split.server import ServerConfig, ServerThread, SplitServer
from edgefit.runtime.split.shaper import PRESETS, Shaper

__all__ = [
    "PRESETS",
    "ServerConfig",
    "ServerThread",
    "Shaper",
    "SplitPipeline",
    "SplitReport",
    "SplitServer",
    "SplitUnavailable",
    "run_split",
]
