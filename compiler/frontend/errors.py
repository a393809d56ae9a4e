"""Errors the front-end raises for models it cannot translate (user-facing, one line each)."""

from __future__ import annotations

from edgefit.errors import UserError


class UnsupportedOpError(UserError):
    """The model uses an ATen op (or an op variant) outside edgefit's op set (docs/ops.md).

    The message names the op and the user's source line; `op` and `where` keep them for tools."""

    def __init__(self, op: str, where: str = "", detail: str = "") -> None:
        self.op, self.where, self.detail = op, where, detail
        msg = f"unsupported op {op}"
        if detail:
            msg += f" ({detail})"
        if where:
            msg += f" at {where}"
        super().__init__(msg)
