"""The harness's command-line options (pytest's `--edgefit-*`), parsed and checked once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgefit.runtime.harness import compressions
from edgefit.runtime.harness.runners import parse_backends


@dataclass(frozen=True)
class HarnessOptions:
    target: str = "x86_64"
    model: str = "digits_cnn"
    weights: str | None = None
    backends: tuple[str, ...] = ("native", "torch")
    compressions: tuple[str, ...] = ("dense",)
    board: str | None = None
    accept_new: bool = False
    board_retries: int = 3
    max_drop: float | None = 0.6
    min_agreement: float | None = None
    report: Path | None = None
    dataset: str | None = None
    samples: int | None = None
    threads: int = 1
    rounds: int = 30
    warmup: int = 3
    finetune_epochs: int = 15
    power_source: str | None = None
    idle_s: float = 2.0
    energy_s: float = 0.5
    cache: Path | None = None
    rebuild: bool = False


def add_options(parser: Any) -> None:
    """Register the options on pytest's parser (group "edgefit")."""
    g = parser.getgroup("edgefit", "edgefit validation and benchmarks")
    add = g.addoption
    add("--edgefit-target", default="x86_64", help="target the model is compiled for (targets/*.toml)")
    add(
        "--edgefit-board",
        default=None,
        metavar="USER@HOST:PORT",
        help="run the 'board' backend on this board over SSH",
    )
    add(
        "--edgefit-accept-new",
        action="store_true",
        default=False,
        help="trust the board's host key on first contact (its fingerprint is shown)",
    )
    add(
        "--edgefit-board-retries",
        type=int,
        default=3,
        help="attempts per SSH call before the test fails (default 3)",
    )
    add(
        "--edgefit-backends",
        default="native,torch",
        help="comma list of native,tvm,tflite,onnxruntime,torch,board",
    )
    add(
        "--edgefit-model",
        default="digits_cnn",
        help="zoo name, file.py:factory or a .pt2 (as edgefit compile)",
    )
    add("--edgefit-weights", default=None, help="a local state-dict file for the model")
    add("--edgefit-compressions", default="dense", help=f"comma list: {compressions.HELP}")
    add(
        "--edgefit-max-drop",
        type=float,
        default=0.6,
        help="largest accepted top-1 drop in points (default 0.6; <0: off)",
    )
    add(
        "--edgefit-min-agreement",
        type=float,
        default=None,
        help="smallest accepted top-1 agreement in %% (default: off)",
    )
    add(
        "--edgefit-report",
        default=None,
        metavar="DIR",
        help="write edgefit-bench.json, edgefit-bench.md and PNG plots here",
    )
    add(
        "--edgefit-dataset",
        default=None,
        help="digits, random, or an image folder PATH (default: digits for digits_cnn, else random)",
    )
    add("--edgefit-samples", type=int, default=None, help="validate on the first N samples only")
    add("--edgefit-threads", type=int, default=1, help="threads of every runtime (default 1)")
    add("--edgefit-rounds", type=int, default=30, help="timed rounds per benchmark (default 30)")
    add("--edgefit-warmup", type=int, default=3, help="untimed warm-up rounds (default 3)")
    add(
        "--edgefit-finetune-epochs",
        type=int,
        default=3,
        help="fine-tuning epochs when the model has data (default 3)",
    )
    add(
        "--edgefit-power-source",
        default=None,
        help="force a power source (ina3221, vcgencmd-pmic, ina2xx-hwmon, rapl, nvml, estimate)",
    )
    add(
        "--edgefit-idle-s",
        type=float,
        default=2.0,
        help="seconds of idle baseline for a real power sensor (default 2)",
    )
    add(
        "--edgefit-energy-s",
        type=float,
        default=0.5,
        help="shortest energy window in seconds, run right after the timed rounds (default 0.5)",
    )
    add(
        "--edgefit-cache",
        default=None,
        metavar="DIR",
        help="where compiled bundles are cached (default: the edgefit cache)",
    )
    add("--edgefit-rebuild", action="store_true", help="recompile bundles even when a cached one matches")


def from_config(config: Any) -> HarnessOptions:
    """The options as given; a bad value raises UserError (the plugin turns it into a usage error)."""
    from edgefit.errors import UserError

    get = config.getoption
    backends = tuple(parse_backends(get("--edgefit-backends")))
    board = get("--edgefit-board")
    if "board" in backends and not board:
        raise UserError("the board backend needs --edgefit-board USER@HOST:PORT")
    if board and "board" not in backends:
        backends = (*backends, "board")
    for name, minimum in (("--edgefit-threads", 1), ("--edgefit-rounds", 1), ("--edgefit-warmup", 0),
                          ("--edgefit-board-retries", 1), ("--edgefit-finetune-epochs", 0)):  # fmt: skip
        if get(name) < minimum:
            raise UserError(f"{name} must be >= {minimum}, got {get(name)}")
    if get("--edgefit-samples") is not None and get("--edgefit-samples") < 1:
        raise UserError(f"--edgefit-samples must be >= 1, got {get('--edgefit-samples')}")
    from edgefit import targets

    target = targets.load(get("--edgefit-target")).name
    max_drop = get("--edgefit-max-drop")
    report = get("--edgefit-report")
    cache = get("--edgefit-cache")
    return HarnessOptions(
        target=target,
        model=get("--edgefit-model"),
        weights=get("--edgefit-weights"),
        backends=backends,
        compressions=tuple(compressions.parse_names(get("--edgefit-compressions"))),
        board=board,
        accept_new=get("--edgefit-accept-new"),
        board_retries=get("--edgefit-board-retries"),
        max_drop=None if max_drop is None or max_drop < 0 else max_drop,
        min_agreement=get("--edgefit-min-agreement"),
        report=Path(report) if report else None,
        dataset=get("--edgefit-dataset"),
        samples=get("--edgefit-samples"),
        threads=get("--edgefit-threads"),
        rounds=get("--edgefit-rounds"),
        warmup=get("--edgefit-warmup"),
        finetune_epochs=get("--edgefit-finetune-epochs"),
        power_source=get("--edgefit-power-source"),
        idle_s=get("--edgefit-idle-s"),
        energy_s=get("--edgefit-energy-s"),
        cache=Path(cache) if cache else None,
        rebuild=get("--edgefit-rebuild"),
    )
