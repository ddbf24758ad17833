"""The ``import`` and ``audit`` subcommands (imported to build the parser: nothing heavy at module level)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from netspec.arguments import add_max_params, alpha, output_path, seed
from netspec.errors import UsageError


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    imp = sub.add_parser("import", help="write a netspec spec from another framework's model definition",
                         description="Write SPEC.yaml from a model definition: 'hf SRC' reads a Hugging Face "
                         "config.json (SRC: a folder holding it, the file, or a Hub model id where huggingface_hub "
                         "is installed) of LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM or "
                         "GPT2LMHeadModel, with the initialization transformers' _init_weights gives it.")  # fmt: skip
    imp.add_argument("kind", choices=["hf"], help="the source format (hf: a Hugging Face config.json)")
    imp.add_argument("source", metavar="SRC", help="the folder, config.json or Hub model id")
    imp.add_argument("-o", "--output", required=True, metavar="SPEC.yaml", help="the spec file to write")
    imp.add_argument("--name", help="the spec's name (default: the output's stem)")
    imp.add_argument("--seed", type=seed, default=0, help="the spec's seed (default 0)")
    imp.add_argument("--force", action="store_true", help="replace an existing output file")
    add_max_params(imp)

    audit = sub.add_parser("audit", help="check a Hugging Face checkpoint's initialization against its recipe",
                           description="Read DIR's config.json, import it, and check every stored tensor of the "
                           "checkpoint (model.safetensors, or shards with model.safetensors.index.json) against "
                           "the law its architecture's initialization declares, with verify's tests at family-wise "
                           "false-alarm probability --alpha. Exit 0 when every tensor holds, 1 naming each that "
                           "does not.")  # fmt: skip
    audit.add_argument("checkpoint", metavar="DIR", help="the checkpoint folder (or one .safetensors file beside "
                       "its config.json)")  # fmt: skip
    audit.add_argument("--recipe", help="check against this init recipe instead of the architecture's default")
    audit.add_argument("--alpha", type=alpha, default=1e-3, help="family-wise false-alarm probability (1e-3)")
    audit.add_argument("--json", action="store_true", help="print the report as JSON")
    add_max_params(audit)
    return {"import": run_import, "audit": run_audit}


def run_import(args: argparse.Namespace) -> int:
    from netspec.importers.hf import HFConfigError, describe, read_config
    from netspec.importers.hf_spec import spec_text

    output_path(args.output, (".yaml", ".yml"), "the spec")
    if os.path.exists(args.output) and not args.force:
        raise UsageError(f"{args.output} exists (--force replaces it)")
    config, path = read_config(args.source)
    model = describe(config, path)
    name = args.name or os.path.splitext(os.path.basename(args.output))[0]
    text = spec_text(model, name, args.source, seed=args.seed)
    import netspec

    net = netspec.loads(text, args.output, max_params=2**62)  # what is written compiles (a bug here is ours)
    if net.num_params > args.max_params:
        raise HFConfigError(f"{path}: {model.architecture} with {net.num_params:,} parameters is over the limit of "
                            f"{args.max_params:,} (raise --max-params if this is intended); nothing written")
    from netspec.io.weights import atomic_write

    with atomic_write(args.output) as fh:
        fh.write(text.encode())
    if model.unknown:
        print(f"netspec import: warning: {path}: fields netspec does not know, carried to x-hf.config and not "
              f"used: {', '.join(model.unknown)}", file=sys.stderr)  # fmt: skip
    print(f"wrote {args.output}: {model.architecture}, {net.num_params:,} parameters, {model.n_layers} layers")
    return 0


def run_audit(args: argparse.Namespace) -> int:
    from netspec.check.audit import audit, render

    report = audit(args.checkpoint, recipe=args.recipe, alpha=args.alpha, max_params=args.max_params)
    if args.json:
        json.dump(report.as_json(), sys.stdout, indent=1, allow_nan=False, default=_json_default)
        sys.stdout.write("\n")
    else:
        print(render(report))
    return 0 if report.passed else 1


def _json_default(value: object) -> object:
    raise TypeError(f"not JSON: {value!r}")
