"""`edgefit compile MODEL --target T [compression options] -o OUT/`: compress and compile a model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compile",
        help="compress a PyTorch model and compile it for a board",
        description="MODEL is a zoo name (resnet18, resnet50, mobilenet_v2, bottlefit_resnet50, digits_cnn), "
        "a 'file.py:factory' reference, or a saved torch.export program (.pt2).",
    )
    p.add_argument("model")
    p.add_argument("--target", required=True, help="board target (see 'edgefit targets')")
    p.add_argument("-o", "--output", required=True, type=Path, help="bundle directory to write")
    p.add_argument("--backend", default="native", help="native (default), tvm or tflite")
    p.add_argument("--weights", help="a local state-dict file (e.g. torchvision weights)")
    g = p.add_argument_group("compression")
    g.add_argument("--bottleneck", type=int, metavar="C", help="insert a BottleFit bottleneck of C channels")
    g.add_argument("--split-after", metavar="MODULE", help="module whose output is the split point")
    g.add_argument("--split", action="store_true", help="emit head (board) and tail (server) artifacts")
    g.add_argument("--sparsity", type=float, help="fraction of zero weights in prunable layers, e.g. 0.9")
    g.add_argument("--block", default="1x1", help="sparsity pattern: 1x1 (unstructured), 1x2 or 1x4")
    g.add_argument("--codebook-bits", type=int, metavar="B", help="palettize weights to 2^B-entry codebooks")
    g.add_argument(
        "--codebook-groups", type=int, default=1, metavar="G", help="codebooks per layer (JLCM groups)"
    )
    g.add_argument("--int8", action="store_true", help="int8 per-channel weights (+ activation calibration)")
    g.add_argument(
        "--finetune-epochs",
        type=int,
        default=None,
        help="fine-tuning epochs (default: 15 with training data, else 0 = one-shot)",
    )
    g.add_argument("--train-data", help="training data for fine-tuning: 'digits' (built in)")
    g.add_argument(
        "--checkpoint-dir",
        type=Path,
        help="save training checkpoints here each epoch; a rerun with the same options resumes",
    )
    p.add_argument(
        "--tune-trials", type=int, default=0, help="TVM MetaSchedule trials (0 = default schedules)"
    )
    p.add_argument(
        "--tflite-codebook",
        choices=("gather", "gather-u8", "densify"),
        default="gather",
        help="TFLite codebook weights: packed indices + GATHER (smallest, default), one byte per "
        "index + GATHER, or densified fp32 (largest, fastest: XNNPACK runs it)",
    )
    p.add_argument(
        "--print-ir-after",
        action="append",
        default=[],
        metavar="PASS",
        help="print the IR after PASS ('all')",
    )
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=drive)


def drive(args: argparse.Namespace) -> int:
    from edgefit.compiler.compress.config import CompressionConfig
    from edgefit.compiler.pipeline import CompileOptions, compile_model
    from edgefit.compiler.report import format_summary

    has_data = args.train_data is not None or args.model == "digits_cnn"
    epochs = args.finetune_epochs if args.finetune_epochs is not None else (15 if has_data else 0)
    config = CompressionConfig(
        bottleneck=args.bottleneck,
        split_after=args.split_after,
        sparsity=args.sparsity,
        block=args.block,
        codebook_bits=args.codebook_bits,
        codebook_groups=args.codebook_groups,
        int8=args.int8,
        finetune_epochs=epochs,
    )
    result = compile_model(
        CompileOptions(
            model=args.model,
            target=args.target,
            out=args.output,
            backend=args.backend,
            weights=args.weights,
            compression=config,
            split=args.split,
            train_data=args.train_data,
            print_ir_after=tuple(args.print_ir_after),
            progress=not (args.no_progress or args.json),
            tune_trials=args.tune_trials,
            tflite_codebook=args.tflite_codebook,
            checkpoint_dir=args.checkpoint_dir,
        )
    )
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    title = f"{result['model']} -> {result['target']} ({result['backend']}): {result['out']}"
    print(format_summary({**result["compression"], "layers": result["layers"]}, title))
    if result.get("bottleneck"):
        b = result["bottleneck"]
        print("bottleneck: " + ", ".join(f"{k}={v}" for k, v in b.items()))
    if result.get("accuracy"):
        a = result["accuracy"]
        print(
            f"accuracy on {a['dataset']}: reference {a['reference']:.2f} %, compressed {a['compressed']:.2f} % (drop {a['drop']:.2f} points)"
        )
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"compiled graph vs PyTorch: max error {result['compile_error']:.2e} of output scale")
    return 0
