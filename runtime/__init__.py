"""The Python side of edgefit's runtime: `Session` over the native C++ runtime, bundles, deploy."""

from edgefit.runtime.session import Session

__all__ = ["Session"]
