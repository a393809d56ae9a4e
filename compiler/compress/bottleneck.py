"""BottleFit bottleneck for any CNN: insert an encoder/decoder at a split point, report the transmitted bytes,
and train it in BottleFit's two stages (distil the split tensor and later stages, then KD fine-tuning).
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from edgefit.compiler.compress.training import fit
from edgefit.errors import UserError

# Leaves that pass a ReLU'd tensor on still non-negative, so a ReLU before them means a post-ReLU split.
_SIGN_KEEPING = (
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Dropout,
    nn.Identity,
)


class Bottlenecked(nn.Module):
    """The module at the split point, then the encoder (its output is transmitted) and the decoder."""

    def __init__(self, inner: nn.Module, in_channels: int, channels: int, decoder_relu: bool) -> None:
        super().__init__()
        self.inner = inner
        self.in_channels = in_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()
        )
        # The decoder ends in ReLU only when the teacher's tensor is post-ReLU: clamping a signed tensor
        # (e.g. MobileNetV2's linear bottlenecks) would make it impossible to reconstruct.
        relu = [nn.ReLU()] if decoder_relu else []
        self.decoder = nn.Sequential(
            nn.Conv2d(channels, in_channels, 3, padding=1, bias=False), nn.BatchNorm2d(in_channels), *relu
        )

    def forward(self, x: Tensor) -> Tensor:
        y = self.inner(x)
        if y.dim() != 4 or y.shape[1] != self.in_channels:
            raise UserError(
                f"a bottleneck needs an [N, {self.in_channels}, H, W] tensor at the split, got {list(y.shape)}; "
                "choose a --split-after module that outputs a feature map"
            )
        return self.decoder(self.encoder(y))


def _check_path(model: nn.Module, path: str) -> nn.Module:
    names = [n for n, _ in model.named_modules() if n]
    if path not in names:
        close = difflib.get_close_matches(path, names, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"e.g. {', '.join(names[:4])}"
        raise UserError(f"no module {path!r} in {type(model).__name__} to split after; {hint}")
    return model.get_submodule(path)


def _leaves_up_to(model: nn.Module, path: str) -> list[nn.Module]:
    """Leaf modules in registration order up to and including those inside `path`."""
    leaves: list[nn.Module] = []
    inside = False
    for name, m in model.named_modules():
        is_in = name == path or name.startswith(path + ".")
        if inside and not is_in:
            break
        inside = inside or is_in
        if not list(m.children()):
            leaves.append(m)
    return leaves


def _split_channels(model: nn.Module, path: str) -> int:
    for m in reversed(_leaves_up_to(model, path)):
        if isinstance(m, nn.Conv2d):
            return m.out_channels
        if isinstance(m, nn.BatchNorm2d):
            return m.num_features
    raise UserError(f"cannot tell the channel count at {path!r}: no Conv2d or BatchNorm2d up to it")


def _post_relu(model: nn.Module, path: str) -> bool:
    for m in reversed(_leaves_up_to(model, path)):
        if not isinstance(m, _SIGN_KEEPING):
            return isinstance(m, nn.ReLU | nn.ReLU6)
    return False


def later_stages(model: nn.Module, path: str) -> list[str]:
    """Parametric siblings after `path` and after each of its ancestors, minus the final classifier.

    These are the stages whose outputs stage 1 distils (for ResNet-50 split at layer2: layer3, layer4);
    modules are assumed to be registered in the order they run, as in torchvision-style models.
    """
    parts = path.split(".")
    found: list[str] = []
    for depth in range(len(parts), 0, -1):
        prefix = ".".join(parts[: depth - 1])
        parent = model.get_submodule(prefix)
        names = [n for n, _ in parent.named_children()]
        for n in names[names.index(parts[depth - 1]) + 1 :]:
            if any(True for _ in parent.get_submodule(n).parameters()):
                found.append(f"{prefix}.{n}" if prefix else n)
    # The last root-level stage gives the logits, which stage 2 matches with KD instead.
    if found and "." not in found[-1]:
        found.pop()
    return found


def insert_bottleneck(
    model: nn.Module, split_after: str, channels: int, *, decoder_relu: bool | None = None
) -> nn.Module:
    """A copy of `model` whose module at `split_after` is followed by a C-channel encoder and a decoder.

    The copy has `split_after` = "<split_after>.encoder" (its output is the transmitted tensor) and
    `distill_pairs` (student module, teacher module) for `train_bottleneck`. `decoder_relu` defaults to
    whether the split tensor is post-ReLU (judged from the modules just before it).
    """
    if channels < 1:
        raise UserError(f"bottleneck channels must be >= 1, got {channels}")
    _check_path(model, split_after)
    in_channels = _split_channels(model, split_after)
    if decoder_relu is None:
        decoder_relu = _post_relu(model, split_after)
    student = copy.deepcopy(model)
    parent_path, _, name = split_after.rpartition(".")
    parent = student.get_submodule(parent_path)
    inner = parent.get_submodule(name)
    # New layers take the device/dtype of the weights they follow.
    ref = next(iter(inner.parameters()), next(iter(student.parameters()), None))
    wrapped = Bottlenecked(inner, in_channels, channels, decoder_relu)
    if ref is not None:
        wrapped.encoder.to(ref.device, ref.dtype)
        wrapped.decoder.to(ref.device, ref.dtype)
    setattr(parent, name, wrapped)  # keeps the position among the parent's children
    student.split_after = f"{split_after}.encoder"
    student.distill_pairs = ((split_after, split_after), *((p, p) for p in later_stages(model, split_after)))
    return student


def _decoder_path(split_after: str) -> str | None:
    head, _, last = split_after.rpartition(".")
    if last != "encoder":
        return None
    return f"{head}.decoder" if head else "decoder"


@contextmanager
def _capture(model: nn.Module, paths: Sequence[str]) -> Iterator[dict[str, Tensor]]:
    """Record the outputs of the modules at `paths` during the forward passes inside the block."""
    out: dict[str, Tensor] = {}
    handles = []
    for p in paths:

        def hook(_m: nn.Module, _i: Any, o: Any, p: str = p) -> None:
            out[p] = o

        handles.append(model.get_submodule(p).register_forward_hook(hook))
    try:
        yield out
    finally:
        for h in handles:
            h.remove()


def _per_sample_numel(t: Tensor) -> int:
    return int(t[0].numel()) if t.dim() > 0 else 1


@torch.no_grad()
def bottleneck_report(model: nn.Module, example_input: Tensor | tuple[Tensor, ...], split_after: str) -> dict:
    """Bytes per inference of the input, the split tensor without bottleneck and the transmitted tensor.

    The split tensor without bottleneck is the decoder's output (it has the teacher's shape at the split);
    with no decoder beside `split_after`, it is the output of `split_after` itself (nothing compressed).
    Compression percentages: transmitted vs split tensor (same dtype), and uint8 transmitted vs uint8 input.
    """
    inputs = example_input if isinstance(example_input, tuple | list) else (example_input,)
    _check_path(model, split_after)
    decoder = _decoder_path(split_after)
    if decoder is not None and decoder not in dict(model.named_modules()):
        decoder = None
    paths = [split_after] + ([decoder] if decoder else [])
    was_training = model.training
    model.eval()
    try:
        with _capture(model, paths) as out:
            model(*inputs)
    finally:
        model.train(was_training)
    if split_after not in out:
        raise UserError(f"module {split_after!r} did not run in the model's forward pass")
    z = out[split_after]
    s = out[decoder] if decoder else z
    n_in = sum(_per_sample_numel(t) for t in inputs)
    n_split, n_z = _per_sample_numel(s), _per_sample_numel(z)
    return {
        "split_after": split_after,
        "input_shape": [list(t.shape[1:]) for t in inputs] if len(inputs) > 1 else list(inputs[0].shape[1:]),
        "split_shape": list(s.shape[1:]),
        "bottleneck_shape": list(z.shape[1:]),
        "input_bytes_fp32": 4 * n_in,
        "input_bytes_uint8": n_in,
        "split_bytes_fp32": 4 * n_split,
        "split_bytes_uint8": n_split,
        "bottleneck_bytes_fp32": 4 * n_z,
        "bottleneck_bytes_uint8": n_z,
        "compression_vs_split_pct": round(100.0 * (1 - n_z / n_split), 2),
        "compression_vs_input_pct": round(100.0 * (1 - n_z / n_in), 2),
    }


@torch.no_grad()
def _execution_order(model: nn.Module, x: Tensor) -> list[str]:
    """Names of leaf modules in the order they first run on `x`."""
    order: list[str] = []
    seen: set[str] = set()
    handles = []
    for name, m in model.named_modules():
        if name and not list(m.children()):

            def hook(_m: nn.Module, _i: Any, name: str = name) -> None:
                if name not in seen:
                    seen.add(name)
                    order.append(name)

            handles.append(m.register_forward_pre_hook(hook))
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return order


def _leaves_through(order: list[str], path: str) -> list[str]:
    """The leaves that run up to and including the last leaf inside `path`."""
    inside = [i for i, n in enumerate(order) if n == path or n.startswith(path + ".")]
    if not inside:
        raise UserError(f"module {path!r} does not run in the model's forward pass")
    return order[: inside[-1] + 1]


class _Trainee(nn.Module):
    """The student as `fit` sees it: frozen modules stay in eval mode (BN statistics fixed) in training."""

    def __init__(self, student: nn.Module, frozen: list[nn.Module]) -> None:
        super().__init__()
        self.student = student
        self._frozen = frozen  # a plain list: not registered twice

    def train(self, mode: bool = True) -> _Trainee:
        super().train(mode)
        for m in self._frozen:
            m.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.student(x)


def _run_stage(
    student: nn.Module,
    trainable: set[str],
    loss_fn: Any,
    loader: DataLoader,
    epochs: int,
    lr: float,
    *,
    progress: bool,
    checkpoint: Path | None,
    desc: str,
) -> None:
    modules = dict(student.named_modules())
    leaves = [n for n, m in modules.items() if n and not list(m.children())]
    frozen = [modules[n] for n in leaves if n not in trainable]
    flags = {p: p.requires_grad for p in student.parameters()}
    for p in student.parameters():
        p.requires_grad_(False)
    params = [p for n in trainable for p in modules[n].parameters(recurse=False)]
    for p in params:
        p.requires_grad_(True)
    trainee = _Trainee(student, frozen)
    try:
        if params and epochs > 0:
            opt = torch.optim.Adam(params, lr=lr)
            fit(trainee, loader, loss_fn, opt, epochs, progress=progress, checkpoint=checkpoint, desc=desc)
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)


def train_bottleneck(
    student: nn.Module,
    teacher: nn.Module,
    train_set: Dataset,
    *,
    stage1_epochs: int,
    stage2_epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    kd_temperature: float = 1.0,
    kd_alpha: float = 0.5,
    progress: bool = True,
    checkpoint_dir: Path | None = None,
    distill_pairs: Sequence[tuple[str, str]] | None = None,
) -> nn.Module:
    """Train a bottleneck student against its teacher in BottleFit's two stages; returns the student.

    Stage 1 (head distillation): everything that runs up to the decoder learns to reproduce the
    teacher's tensors — sum of MSEs at `distill_pairs` (default: the student's `distill_pairs`
    attribute: the split tensor and the later stages) — while the tail is frozen. Stage 2: the encoder
    and everything before it are frozen; the rest is fine-tuned with KD
    (alpha * T^2 * KL(teacher || student at temperature T) + (1 - alpha) * cross-entropy).
    """
    split_after = getattr(student, "split_after", None)
    decoder = _decoder_path(split_after) if isinstance(split_after, str) else None
    if decoder is None:
        raise UserError(
            "train_bottleneck needs a student with a bottleneck (from insert_bottleneck or BottleFit)"
        )
    pairs = list(distill_pairs or getattr(student, "distill_pairs", ()))
    if not pairs:
        raise UserError("train_bottleneck: no (student, teacher) modules to distil at")
    for s_path, t_path in pairs:
        _check_path(student, s_path)
        _check_path(teacher, t_path)
    if len(train_set) == 0:
        raise UserError("train_bottleneck: the training set is empty")
    if not 0.0 <= kd_alpha <= 1.0 or kd_temperature <= 0:
        raise UserError(f"need 0 <= kd_alpha <= 1 and kd_temperature > 0, got {kd_alpha}, {kd_temperature}")

    device = next(student.parameters()).device
    probe = train_set[0][0].unsqueeze(0).to(device)
    order = _execution_order(student, probe)
    head_and_decoder = set(_leaves_through(order, decoder))
    after_encoder = set(order) - set(_leaves_through(order, split_after))
    teacher_was_training = teacher.training
    teacher.eval()
    s_paths, t_paths = [s for s, _ in pairs], [t for _, t in pairs]

    def distil_loss(model: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
        x = batch[0]
        with torch.no_grad(), _capture(teacher, t_paths) as t_out:
            teacher(x)
        with _capture(student, s_paths) as s_out:
            model(x)
        return sum(
            (nn.functional.mse_loss(s_out[s], t_out[t]) for s, t in pairs),
            start=torch.zeros((), device=x.device),
        )

    def kd_loss(model: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
        x, y = batch[0], batch[1]
        with torch.no_grad():
            t_logits = teacher(x)
        s_logits = model(x)
        T = kd_temperature
        kd = nn.functional.kl_div(
            nn.functional.log_softmax(s_logits / T, dim=1),
            nn.functional.softmax(t_logits / T, dim=1),
            reduction="batchmean",
        )
        return kd_alpha * T * T * kd + (1 - kd_alpha) * nn.functional.cross_entropy(s_logits, y)

    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True)
    try:
        _run_stage(
            student,
            head_and_decoder,
            distil_loss,
            loader,
            stage1_epochs,
            lr,
            progress=progress,
            checkpoint=ckpt / "bottleneck_stage1.pt" if ckpt else None,
            desc="bottleneck stage 1 (distil)",
        )
        _run_stage(
            student,
            after_encoder,
            kd_loss,
            loader,
            stage2_epochs,
            lr,
            progress=progress,
            checkpoint=ckpt / "bottleneck_stage2.pt" if ckpt else None,
            desc="bottleneck stage 2 (KD)",
        )
    finally:
        teacher.train(teacher_was_training)
    return student.eval()
