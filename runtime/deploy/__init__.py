"""Deploying bundles to boards over SSH: transport, flash/rollback, and running on the board."""

from __future__ import annotations

from typing import Any


def remote_run(board: Any, inputs: Any = None, compare_reference: bool = False) -> Any:
    """Run the board's deployed `current` bundle; see `edgefit.runtime.deploy.remote.remote_run`."""
    from edgefit.runtime.deploy.remote import remote_run as _remote_run

    return _remote_run(board, inputs, compare_reference)
