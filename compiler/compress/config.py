"""What the user asked to compress, validated once, and the order the passes apply in.

`apply_compression` is the one place that chains the passes: bottleneck first (it changes the
architecture), then sparsity, then codebook or int8 weights (they encode what pruning left).
Sparsity and codebooks may be combined (pruned weights keep their zero code); codebook and int8
are alternatives for the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from edgefit.compiler.encodings import WeightEncoding
from edgefit.errors import UserError

BLOCKS = {"1x1": 1, "1x2": 2, "1x4": 4}


@dataclass(frozen=True)
class CompressionConfig:
    bottleneck: int | None = None  # channels C of the BottleFit bottleneck
    split_after: str | None = None  # module whose output is the transmitted tensor
    sparsity: float | None = None
    block: str = "1x1"
    codebook_bits: int | None = None
    codebook_groups: int = 1
    int8: bool = False
    finetune_epochs: int = 0  # 0 = one-shot (no training data needed)

    def validate(self) -> CompressionConfig:
        if self.sparsity is not None and not 0.0 <= self.sparsity < 1.0:
            raise UserError(f"--sparsity must be in [0, 1), got {self.sparsity}")
        if self.block not in BLOCKS:
            raise UserError(f"--block must be one of {', '.join(BLOCKS)}, got {self.block!r}")
        if self.codebook_bits is not None and not 2 <= self.codebook_bits <= 8:
            raise UserError(f"--codebook-bits must be in 2..8, got {self.codebook_bits}")
        if self.codebook_groups < 1:
            raise UserError(f"--codebook-groups must be >= 1, got {self.codebook_groups}")
        if self.codebook_bits is not None and self.int8:
            raise UserError("--codebook-bits and --int8 both encode the same weights; choose one")
        if self.bottleneck is not None and self.bottleneck < 1:
            raise UserError(f"--bottleneck must be a positive channel count, got {self.bottleneck}")
        if self.finetune_epochs < 0:
            raise UserError(f"--finetune-epochs must be >= 0, got {self.finetune_epochs}")
        return self

    @property
    def is_identity(self) -> bool:
        return not (self.bottleneck or self.sparsity or self.codebook_bits or self.int8)


@dataclass
class CompressionResult:
    module: nn.Module
    plan: dict[str, WeightEncoding] = field(default_factory=dict)
    split_after: str | None = None
    notes: list[str] = field(default_factory=list)
    bottleneck_report: dict[str, Any] | None = None


def apply_compression(
    module: nn.Module,
    config: CompressionConfig,
    *,
    example_input: Any,
    train_set: Any = None,
    split_after: str | None = None,
    progress: bool = True,
    checkpoint_dir: Path | None = None,
) -> CompressionResult:
    """Compress `module` (a copy is modified) as `config` says; returns the module and its plan."""
    import copy

    config.validate()
    module = copy.deepcopy(module).eval()
    result = CompressionResult(module, split_after=split_after)
    train = train_set if config.finetune_epochs > 0 else None
    if config.finetune_epochs > 0 and train_set is None:
        raise UserError("--finetune-epochs needs training data (the digits data is built in for digits_cnn)")

    if config.bottleneck is not None:
        from edgefit.compiler.compress import bottleneck

        point = config.split_after or split_after
        if point is None:
            raise UserError("--bottleneck needs a split point: pass --split-after MODULE")
        teacher = module
        module = bottleneck.insert_bottleneck(teacher, point, config.bottleneck)
        if train is not None:
            module = bottleneck.train_bottleneck(
                module,
                teacher,
                train,
                stage1_epochs=config.finetune_epochs,
                stage2_epochs=config.finetune_epochs,
                progress=progress,
                checkpoint_dir=checkpoint_dir,
            )
        else:
            result.notes.append("bottleneck inserted untrained (no training data): accuracy is not preserved")
        result.split_after = module.split_after
        result.bottleneck_report = bottleneck.bottleneck_report(module, example_input, module.split_after)
        result.module = module.eval()

    if (config.codebook_bits or config.int8) and result.split_after is None:
        from edgefit.compiler.compress.fold_bn import fold_batch_norms

        result.module, note = fold_batch_norms(result.module)
        if note:
            result.notes.append(note)

    block = BLOCKS[config.block]
    if config.sparsity:
        from edgefit.compiler.compress import pruning

        if train is not None:
            result.plan.update(
                pruning.prune_and_finetune(
                    result.module,
                    config.sparsity,
                    train,
                    epochs=config.finetune_epochs,
                    block=block,
                    progress=progress,
                    checkpoint=checkpoint_dir / "prune.pt" if checkpoint_dir else None,
                )
            )
        else:
            result.plan.update(pruning.magnitude_prune(result.module, config.sparsity, block=block))
    if config.codebook_bits:
        from edgefit.compiler.compress import codebook

        if result.plan:
            raise UserError("combining --sparsity with --codebook-bits is not supported yet; choose one")
        plan = codebook.codebook_quantize(result.module, config.codebook_bits, groups=config.codebook_groups)
        if train is not None:
            plan = codebook.finetune_codebooks(
                result.module,
                plan,
                train,
                epochs=config.finetune_epochs,
                progress=progress,
                checkpoint=checkpoint_dir / "codebook.pt" if checkpoint_dir else None,
            )
        result.plan.update(plan)
    if config.int8:
        from edgefit.compiler.compress import int8

        if result.plan:
            raise UserError("combining --sparsity with --int8 is not supported yet; choose one")
        result.plan.update(int8.quantize_weights_int8(result.module))
    result.module.eval()
    return result
