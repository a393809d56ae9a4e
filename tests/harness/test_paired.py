"""Paired block ratios (edgefit.runtime.harness.paired): the arithmetic the benchmarks' targets rest on."""

from __future__ import annotations

import pytest

from edgefit.runtime.harness.paired import block_medians, paired_quartiles, paired_ratio, warm_up


def test_block_medians_drop_a_partial_last_block():
    assert block_medians([5.0, 1.0, 3.0, 9.0, 8.0, 7.0, 100.0], 3) == [3.0, 8.0]


def test_paired_ratio_pairs_blocks_run_side_by_side():
    # The machine halves its speed in the second cycle: each pair still reads 2x.
    assert paired_ratio([2.0, 4.0, 2.0], [1.0, 2.0, 1.0]) == 2.0
    # Unpaired, the median of a's blocks over the median of b's would read 8 / 1 = 8x; paired, the
    # one odd pair of three does not move the result.
    assert paired_ratio([2.0, 8.0, 8.0], [1.0, 4.0, 1.0]) == 2.0


def test_paired_quartiles_bound_the_per_pair_ratios():
    # Per-pair ratios 1, 2, 3, 4, 5: inclusive quartiles 2 and 4 around the median 3.
    a, b = [1.0, 4.0, 3.0, 8.0, 5.0], [1.0, 2.0, 1.0, 2.0, 1.0]
    assert paired_quartiles(a, b) == (2.0, 4.0)
    assert paired_quartiles(a, b)[0] <= paired_ratio(a, b) <= paired_quartiles(a, b)[1]
    assert paired_quartiles([3.0], [2.0]) == (1.5, 1.5)
    with pytest.raises(ValueError):
        paired_quartiles([1.0, 2.0], [1.0])


def test_paired_ratio_needs_equal_block_counts():
    with pytest.raises(ValueError):
        paired_ratio([1.0, 2.0], [1.0])


def test_warm_up_runs_for_its_time_and_at_least_once():
    now = [0.0]

    def clock() -> float:
        return now[0]

    def run_taking(ms: float):
        def run() -> None:
            now[0] += ms / 1e3

        return run

    assert warm_up(run_taking(3.0), seconds=0.02, clock=clock) == 7  # 21 ms >= 20 ms
    assert warm_up(run_taking(50.0), seconds=0.02, clock=clock) == 1
