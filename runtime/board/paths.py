"""Where edgefit keeps its caches and per-user state (overridable by environment variables)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$EDGEFIT_CACHE`, else `~/.cache/edgefit` (rootfs, downloaded .debs, cross builds)."""
    env = os.environ.get("EDGEFIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgefit"


def config_dir() -> Path:
    """`$EDGEFIT_CONFIG`, else `~/.config/edgefit` (known_hosts)."""
    env = os.environ.get("EDGEFIT_CONFIG")
    return Path(env).expanduser() if env else Path.home() / ".config" / "edgefit"
