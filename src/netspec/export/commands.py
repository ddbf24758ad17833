"""The ``export`` subcommand (imported to build the parser: nothing heavy at module level)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from netspec.arguments import add_dtype, add_max_params, seed
from netspec.errors import UsageError

TARGETS = {"torch": (".pt", ".safetensors"), "onnx": (".onnx",), "flax": (".msgpack",), "hf": ()}
"""Export target -> the output suffixes it writes (none: a folder)."""


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    e = sub.add_parser("export", help="write the network's weights for another framework",
                       description="Export SPEC's weights (built from its seed, or read from --weights) in a "
                       "framework's names and layouts: --to torch writes the state_dict of "
                       "netspec.torch.to_module as .pt (torch.save; torch.load(path, weights_only=True) reads it) "
                       "or .safetensors; --to onnx writes an .onnx model (opset 21, symbolic batch axis); "
                       "--to flax writes the variables tree with flax.serialization (.msgpack); --to hf writes a "
                       "Hugging Face checkpoint folder (config.json, model.safetensors or shards with their "
                       "index) that from_pretrained loads, for specs laid out as `netspec import hf` writes "
                       "them.")  # fmt: skip
    e.add_argument("spec", metavar="SPEC")
    e.add_argument("--to", required=True, choices=sorted(TARGETS), help="the target framework")
    e.add_argument("-o", "--output", required=True, metavar="PATH", help="the file (--to hf: the folder) to write")
    e.add_argument("--weights", metavar="FILE", help="netspec weights to export (default: build from the seed)")
    e.add_argument("--seed", type=seed, help="override the spec's seed")
    add_dtype(e, "override the spec's dtype (bfloat16 and float16 are written as such by every target)")
    add_max_params(e)
    e.add_argument("--max-shard-size", metavar="SIZE", help="--to hf: shard past this size (5GB, 500MB, bytes; "
                   "default 5GB, transformers' own)")  # fmt: skip
    return {"export": run}


def run(args: argparse.Namespace) -> int:
    if args.to == "hf":
        return _run_hf(args)
    if args.max_shard_size is not None:
        raise UsageError("--max-shard-size goes with --to hf")
    suffix = os.path.splitext(args.output)[1].lower()
    if suffix not in TARGETS[args.to]:
        raise UsageError(f"{args.output}: --to {args.to} writes {' or '.join(TARGETS[args.to])}")
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.output))):
        raise UsageError(f"{args.output}: the folder does not exist")
    _checked_common(args)
    from netspec.export.files import load_weights
    from netspec.spec.compiler import compile_file

    target = _target(args.to)
    net = compile_file(args.spec, seed=args.seed, dtype=args.dtype, max_params=args.max_params)
    params = load_weights(net, args.weights) if args.weights else net.initialize()
    target.save(net, params, args.output)
    print(f"wrote {args.output} ({args.to}, {len(params)} netspec tensors)")
    return 0


def _checked_common(args: argparse.Namespace) -> None:
    if args.weights and args.seed is not None:
        raise UsageError("--seed goes with building from the spec, not with --weights (the file's seed is its own)")
    if args.weights and args.dtype is not None:
        raise UsageError("--dtype goes with building from the spec, not with --weights (the file's dtype is its own)")
    from netspec.io.files import require_file

    require_file(args.spec)


def _run_hf(args: argparse.Namespace) -> int:
    """``--to hf``: a checkpoint folder, generated from the seed straight into its files (or from --weights)."""
    from netspec.io.shards import parse_size

    try:
        limit = parse_size(args.max_shard_size) if args.max_shard_size is not None else None
    except ValueError as exc:
        raise UsageError(f"--max-shard-size: {exc}") from None
    parent = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(parent):
        raise UsageError(f"{args.output}: the folder it goes in does not exist")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise UsageError(f"{args.output}: --to hf writes a folder; this is a file")
    _checked_common(args)
    from netspec.export import hf
    from netspec.export.files import load_weights
    from netspec.spec.compiler import compile_file

    net = compile_file(args.spec, seed=args.seed, dtype=args.dtype, max_params=args.max_params)
    params = load_weights(net, args.weights) if args.weights else None
    files = hf.save(net, args.output, params=params, **({"max_shard_size": limit} if limit else {}))
    print(f"wrote {args.output}: {', '.join(os.path.basename(f) for f in files)} (hf, {net.num_params:,} parameters)")
    return 0


def _target(name: str) -> Any:
    """The export module of a target, its extra checked before any work (exit 1 with a message)."""
    import importlib

    module = importlib.import_module(f"netspec.export.{name}")
    getattr(module, f"{name}_module")()
    return module
