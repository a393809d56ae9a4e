"""Maps an exported FX node back to the user's source line, from node.meta["stack_trace"]."""

from __future__ import annotations

import os
import re

import torch

_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in .*$')
_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep


def user_frame(stack_trace: str | None) -> tuple[str, str] | None:
    """("file.py:42", "code on that line") for the innermost frame outside torch, or None."""
    if not stack_trace:
        return None
    lines = stack_trace.splitlines()
    found = None
    for i, line in enumerate(lines):
        m = _FRAME.match(line)
        if m is None or m["file"].startswith(_TORCH_DIR):
            continue
        code = lines[i + 1].strip() if i + 1 < len(lines) and not _FRAME.match(lines[i + 1]) else ""
        found = (f"{os.path.basename(m['file'])}:{m['line']}", code)
    return found


def location(stack_trace: str | None) -> str:
    """'file.py:42 (`code`)' for error messages; '' when the trace says nothing useful."""
    frame = user_frame(stack_trace)
    if frame is None:
        return ""
    where, code = frame
    return f"{where} (`{code}`)" if code else where
