"""A default CPU schedule rule for untuned TIR: producers inlined, outer spatial loops parallel, the
reduction loops hoisted above a vectorized innermost spatial loop, the epilogue computed per vector
row. It declines (returns None) on anything it does not recognize, leaving it to dlight's rules."""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.s_tir import dlight as dl
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.dlight.base import get_extent, try_inline_contiguous_spatial
from tvm.target.codegen import llvm_get_vector_width


def _lanes(target, extent, tail: bool = False) -> int:
    """The widest power-of-two vector (<= the target's f32 lanes) that divides `extent`; with `tail`,
    odd extents (7, 14 in late CNN stages) get the smallest vector covering them instead (masked)."""
    bits = llvm_get_vector_width(target)
    most = max((bits if bits > 0 else 128) // 32, 2)
    if not isinstance(extent, int):
        return 1
    lanes = most
    while lanes > 1 and extent % lanes:
        lanes //= 2
    if tail and lanes < 4 and extent >= 4:
        lanes = min(most, 1 << (extent - 1).bit_length())
    return lanes


def _vectorize_injective(sch: s_tir.Schedule, block, target, parallel: bool) -> None:
    loops = sch.get_loops(block)
    if not loops:
        return
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    lanes = _lanes(target, get_extent(sch, fused))
    if lanes > 1:
        outer, inner = sch.split(fused, factors=[None, lanes])
        sch.vectorize(inner)
    else:
        outer = fused
    if parallel:
        sch.parallel(outer)


class CPULoopNest(dl.ScheduleRule):
    def apply(self, func, target, _tunable):
        if not isinstance(func, tirx.PrimFunc) or target.kind.name != "llvm":
            return None
        try:
            return self._apply(s_tir.Schedule(func), target)
        except Exception:  # ScheduleError and friends (TVM raises several FFI error types)
            return None  # a loop nest this rule cannot handle: let the next rule have it

    def _apply(self, sch: s_tir.Schedule, target):
        infos = normalize_prim_func(sch)
        if not infos:
            return None
        reductions = [bi for bi in infos if not bi.is_injective()]
        if not reductions:
            infos = try_inline_contiguous_spatial(sch, infos)
            if len(infos) != 1:
                return None
            _vectorize_injective(sch, infos[0].block_rv, target, parallel=True)
            return sch
        if len(reductions) != 1:
            return None
        red = reductions[0]
        at = infos.index(red)
        # Producers (zero padding) stay separate loop nests: inlined, their bounds checks would sit in
        # the innermost loop and defeat vectorization.
        for producer in infos[:at]:
            if not producer.is_injective():
                return None
            _vectorize_injective(sch, producer.block_rv, target, parallel=False)
        kinds = red.dom_kind()
        n_s = len(kinds) - len(kinds.lstrip("S"))
        if n_s == 0 or set(kinds[n_s:]) != {"R"}:
            return None
        loops = sch.get_loops(red.block_rv)
        spatial, reduce = list(loops[:n_s]), loops[n_s:]
        lanes = _lanes(target, get_extent(sch, spatial[-1]), tail=True)
        if lanes == 1:
            return None  # nothing to vectorize along: leave it to dlight's reduction rules
        vec_outer, vec = sch.split(spatial[-1], factors=[None, lanes])
        tile = []
        # Register tile over output channels (C of [N]CHW; unit N loops are normalized away): each
        # input vector then feeds `rows` accumulators.
        if n_s >= 3:
            co = get_extent(sch, spatial[-3])
            rows = next((r for r in (4, 2) if isinstance(co, int) and co % r == 0), 1)
            if rows > 1:
                spatial[-3], row = sch.split(spatial[-3], factors=[None, rows])
                tile.append(row)
        sch.reorder(*spatial[:-1], vec_outer, *reduce, *tile, vec)
        outer = sch.fuse(*spatial[:-1]) if len(spatial) > 2 else spatial[0] if len(spatial) > 1 else vec_outer
        sch.parallel(outer)  # before decompose_reduction: parallel needs the complete reduction block
        for epilogue in infos[at + 1 :]:
            if not epilogue.is_injective():
                return None
            sch.reverse_compute_at(epilogue.block_rv, vec_outer, preserve_unit_loops=True)
            inner = sch.get_loops(epilogue.block_rv)[-1]
            if isinstance(get_extent(sch, inner), int) and get_extent(sch, inner) % lanes == 0:
                _, v = sch.split(inner, factors=[None, lanes])
                sch.vectorize(v)
        # Vectorize while the block is still a complete reduction (the update block alone is not).
        for row in tile:
            sch.unroll(row)
        sch.vectorize(vec)
        init = sch.decompose_reduction(red.block_rv, reduce[0])
        sch.vectorize(sch.get_loops(init)[-1])
        return sch
