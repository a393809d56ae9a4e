"""compare_modes: local vs full offloading vs split over a bandwidth sweep gives a table whose numbers
follow from the link (latency falls with bandwidth, split sends fewer bytes) and a PNG plot."""

from __future__ import annotations

import numpy as np

from edgefit.runtime.split.compare import compare_modes

from .conftest import SECRET


def test_compare_modes_table_and_plot(split_bundle, server, digits_x, tmp_path) -> None:
    from edgefit.models import datasets

    labels = datasets.digits("test").tensors[1][: len(digits_x[:8])].numpy()
    table = compare_modes(
        split_bundle,
        server.address,
        digits_x[:8],
        [0.2e6, 20e6],
        secret=SECRET,
        labels=labels,
        latency_s=0.002,
        plot=tmp_path / "modes.png",
    )
    rows = {(r.mode, r.bandwidth_mbps): r for r in table.rows}
    assert sum(r.mode == "local" for r in table.rows) == 1
    assert set(rows) >= {("full-offload", 0.2), ("full-offload", 20.0), ("split", 0.2), ("split", 20.0)}
    for mode in ("full-offload", "split"):
        slow, fast = rows[(mode, 0.2)], rows[(mode, 20.0)]
        # ~300 B each way at 0.2 Mbit/s is >= 12 ms of serialisation alone.
        assert slow.latency_ms > fast.latency_ms + 8
        assert slow.fallbacks == fast.fallbacks == 0 and slow.agreement == 1.0
        assert slow.energy_mj > 0 and slow.accuracy is not None
    assert rows[("split", 20.0)].bytes_sent < rows[("full-offload", 20.0)].bytes_sent
    assert "estimated" in table.energy_note
    text = table.format()
    assert "split" in text and "full-offload" in text and "local" in text
    png = tmp_path / "modes.png"
    assert table.plot == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.isfinite([r.latency_ms for r in table.rows]).all()
