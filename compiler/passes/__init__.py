"""Graph passes, each a pure `Graph -> Graph` function in its own module, and the default pipeline."""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection
from typing import TextIO

from edgefit.compiler.ir import Graph, format_graph, verify
from edgefit.compiler.passes.eliminate_dead_nodes import eliminate_dead_nodes
from edgefit.compiler.passes.fold_batch_norm import fold_batch_norm
from edgefit.compiler.passes.fold_constants import fold_constants
from edgefit.compiler.passes.fuse_activations import fuse_activations
from edgefit.compiler.passes.split_at_bottleneck import split_at_bottleneck
from edgefit.errors import UserError

#: The default pipeline, in order; `--print-ir-after NAME` uses these names.
PIPELINE: list[tuple[str, Callable[[Graph], Graph]]] = [
    ("fold_constants", fold_constants),
    ("fold_batch_norm", fold_batch_norm),
    ("fuse_activations", fuse_activations),
    ("eliminate_dead_nodes", eliminate_dead_nodes),
]


def run_passes(graph: Graph, print_ir_after: Collection[str] = (), stream: TextIO | None = None) -> Graph:
    """Run PIPELINE, verifying after each pass; print the IR after the passes named in
    `print_ir_after` ("all" for every pass) to `stream` (stderr by default)."""
    names = [name for name, _ in PIPELINE]
    wanted = set(print_ir_after)
    unknown = sorted(wanted - set(names) - {"all"})
    if unknown:
        raise UserError(f"--print-ir-after: unknown pass {unknown[0]!r}; passes are all, {', '.join(names)}")
    out = sys.stderr if stream is None else stream
    for name, fn in PIPELINE:
        graph = verify(fn(graph))
        if "all" in wanted or name in wanted:
            print(f"// IR after {name}", file=out)
            print(format_graph(graph), file=out)
    return graph


__all__ = [
    "PIPELINE",
    "eliminate_dead_nodes",
    "fold_batch_norm",
    "fold_constants",
    "fuse_activations",
    "run_passes",
    "split_at_bottleneck",
]
