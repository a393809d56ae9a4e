"""Shared fixtures of the split-computing tests: a small split digits bundle (compiled once, untrained
bottleneck so it takes seconds), a server on 127.0.0.1 and digits inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SECRET = b"test-secret-0123456789"


@pytest.fixture(scope="session")
def split_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgefit.compiler.compress.config import CompressionConfig
    from edgefit.compiler.pipeline import CompileOptions, compile_model

    out = tmp_path_factory.mktemp("split") / "digits_split"
    config = CompressionConfig(bottleneck=4, split_after="features.2", finetune_epochs=0)
    compile_model(
        CompileOptions(
            model="digits_cnn", target="rpi4", out=out, compression=config, split=True, progress=False
        )
    )
    return out


@pytest.fixture(scope="session")
def digits_x() -> np.ndarray:
    from edgefit.models import datasets

    return datasets.digits("test").tensors[0][:24].numpy()


@pytest.fixture(scope="module")
def server(split_bundle: Path):
    from edgefit.runtime.split import ServerConfig, ServerThread, SplitServer

    srv = SplitServer(
        split_bundle, SECRET, ServerConfig(threads=2, frame_timeout_s=2.0, handshake_timeout_s=2.0)
    )
    with ServerThread(srv) as thread:
        yield thread
