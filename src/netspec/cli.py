"""The ``netspec`` command line: build, validate, verify, schema, eval.

Exit codes: 0 ok; 1 the input is wrong or a check failed; 2 usage error
(bad options, missing files). Bad input never produces a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from netspec import __version__

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad options or arguments: exit 2."""


def _int_in(low: int, high: int, what: str = "value") -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{what} {value} must be >= {low}" + (f" and <= {high}" if high < 2**63 else "")
            )
        return value

    return parse


_positive_int = _int_in(1, 2**63, "value")
_seed = _int_in(0, 2**63 - 1, "seed")


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"alpha must be in (0, 1), got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    from netspec.spec.compiler import DEFAULT_MAX_PARAMS

    p = argparse.ArgumentParser(
        prog="netspec",
        description="Neural-network architectures and their weight initialization as checked YAML specs.",
        epilog="Exit codes: 0 ok, 1 invalid input or failed check, 2 usage error.",
    )
    p.add_argument("--version", action="version", version=f"netspec {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    b = sub.add_parser("build", help="validate, compile, initialize and write the weights",
                       description="Validate SPEC, print its summary and write its initialized weights.")  # fmt: skip
    b.add_argument("spec", metavar="SPEC", help="the YAML spec file")
    b.add_argument(
        "-o", "--output", metavar="OUT", help="weights file, .npz or .safetensors (default: ./<spec stem>.npz)"
    )
    b.add_argument("--seed", type=_seed, help="override the spec's seed")
    b.add_argument("--dry-run", action="store_true", help="validate and summarize; allocate and write nothing")
    b.add_argument("--max-params", type=_positive_int, default=DEFAULT_MAX_PARAMS, metavar="N",
                   help=f"refuse specs with more parameters (default {DEFAULT_MAX_PARAMS:,})")  # fmt: skip
    b.add_argument("--threads", type=_int_in(1, 1024, "threads"), metavar="N",
                   help="initialization threads, 1..1024 (default: all cores)")  # fmt: skip
    b.add_argument("--json", action="store_true", help="print the summary as JSON")
    b.add_argument("--no-progress", action="store_true", help="never show a progress bar")

    v = sub.add_parser("validate", help="check spec files (for CI and pre-commit)",
                       description="Validate and compile each SPEC without allocating anything.")  # fmt: skip
    v.add_argument("specs", metavar="SPEC", nargs="+", help="YAML spec files")
    v.add_argument("--max-params", type=_positive_int, default=DEFAULT_MAX_PARAMS, metavar="N")
    v.add_argument("-q", "--quiet", action="store_true", help="print errors only")

    sub.add_parser("schema", help="print the JSON Schema of the spec format",
                   description="Print the JSON Schema (draft 2020-12), including registered custom names. Point "
                   "editors at it with a first line '# yaml-language-server: $schema=<path or URL>'.")  # fmt: skip

    e = sub.add_parser("eval", help="run a forward pass", description="Evaluation-mode forward pass of SPEC.")
    e.add_argument("spec", metavar="SPEC")
    e.add_argument("--input", required=True, metavar="X",
                   help="comma-separated values for one sample (1,2,3,4) or a .npy file with a batch")  # fmt: skip
    e.add_argument("--weights", metavar="FILE", help="weights file (default: initialize from the spec's seed)")
    e.add_argument("--seed", type=_seed, help="override the spec's seed")
    e.add_argument("--json", action="store_true", help="print the output as JSON")

    x = sub.add_parser("explain", help="say, per parameter, which initializer applies, why, and its formula",
                       description="For every parameter: shape, fans, the initializer and where it came from "
                       "(layer, defaults, auto from the activation), its formula and declared "
                       "distribution.")  # fmt: skip
    x.add_argument("spec", metavar="SPEC")
    x.add_argument("--json", action="store_true", help="print the explanation as JSON")

    r = sub.add_parser("verify", help="check weights against the distributions their initializers declare",
                       description="For every parameter tensor: exact bounds, mean and variance z-tests and a "
                       "Kolmogorov-Smirnov fit, with a family-wise false-alarm rate of --alpha.")  # fmt: skip
    r.add_argument("spec", metavar="SPEC")
    r.add_argument("--weights", metavar="FILE", help="weights file to check (default: build in memory)")
    r.add_argument("--alpha", type=_alpha, default=1e-3, help="family-wise false-alarm rate (default 0.001)")
    r.add_argument("--seed", type=_seed, help="override the spec's seed (when building in memory)")
    r.add_argument("--statistical-only", action="store_true",
                   help="skip the exact check that the weights are the bytes the spec's seed produces")  # fmt: skip
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from netspec.errors import NetspecError, SpecError
    from netspec.io.weights import WeightsError

    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    except (WeightsError, NetspecError) as exc:
        print(f"netspec: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except UsageError as exc:
        print(f"netspec {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"netspec: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("netspec: interrupted; nothing was written", file=sys.stderr)
        return 130
    except MemoryError:
        print("netspec: error: out of memory; lower the spec's size or --max-params", file=sys.stderr)
        return EXIT_INVALID


def _existing(path: str) -> str:
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file" if not os.path.exists(path) else f"{path}: not a regular file")
    return path


def _compile(path: str, **options: Any):  # type: ignore[no-untyped-def]
    from netspec.spec.compiler import compile_file

    return compile_file(_existing(path), **options)


def cmd_build(args: argparse.Namespace) -> int:
    from netspec.io import weights as weights_io
    from netspec.report import summary

    out = args.output or os.path.splitext(os.path.basename(args.spec))[0] + ".npz"
    if not args.dry_run:
        try:
            weights_io.file_format(out)
        except weights_io.WeightsError as exc:
            raise UsageError(str(exc)) from None
        if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
            raise UsageError(f"{out}: the folder does not exist")
    net = _compile(args.spec, seed=args.seed, max_params=args.max_params)
    report: dict[str, Any] = summary.as_json(net)
    if not args.json:
        print(summary.table(net, report["layers"]))
    if args.dry_run:
        report["output"] = None
        _finish(args, report, "dry run: nothing allocated, nothing written")
        return EXIT_OK
    from netspec.report.progress import Progress

    with Progress(net.num_params, enabled=not args.no_progress and not args.json) as bar:
        params = net.initialize(threads=args.threads, progress=bar.advance)
    weights_io.save(params, out, {"netspec_spec": net.name, "netspec_seed": str(net.seed)})
    digest = weights_io.sha256_file(out)
    report.update(output=out, sha256=digest)
    note = "" if args.output else " (default: <spec stem>.npz in the current folder)"
    _finish(args, report, f"wrote {out}{note}\nsha256 {digest}")
    return EXIT_OK


def _finish(args: argparse.Namespace, report: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(text)


def cmd_validate(args: argparse.Namespace) -> int:
    from netspec.errors import SpecError
    from netspec.spec.compiler import compile_file

    failed = 0
    for path in args.specs:
        if not os.path.isfile(path):
            print(f"{path}: error: no such file", file=sys.stderr)
            failed += 1
            continue
        try:
            net = compile_file(path, max_params=args.max_params)
        except SpecError as exc:
            print(exc, file=sys.stderr)
            failed += 1
            continue
        if not args.quiet:
            print(f"{path}: ok ({len(net.layers)} layers, {net.num_params:,} parameters)")
    if len(args.specs) > 1 and not args.quiet:
        print(f"{len(args.specs) - failed} valid, {failed} invalid")
    return EXIT_INVALID if failed else EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from netspec.plugins import load_plugins
    from netspec.spec.schema import schema_json

    load_plugins()
    sys.stdout.write(schema_json())
    return EXIT_OK


def _read_input(text: str, shape: tuple[int, ...], dtype: str):  # type: ignore[no-untyped-def]
    import numpy as np

    if text.endswith(".npy"):
        try:
            x = np.load(_existing(text), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UsageError(f"{text}: cannot read: {exc}") from None
    else:
        try:
            x = np.array([float(v) for v in text.split(",")])
        except ValueError:
            raise UsageError(f"--input {text!r}: expected comma-separated numbers or a .npy file") from None
        if x.size != int(np.prod(shape)):
            raise UsageError(f"--input has {x.size} values; the network takes {list(shape)} ({int(np.prod(shape))})")
        x = x.reshape(shape)
    if x.shape != shape and x.shape[1:] != shape:
        raise UsageError(f"input shape {list(x.shape)} does not match the network's {list(shape)} (or a batch of it)")
    return x.astype(dtype)


def _weights_for(net: Any, path: str | None) -> dict[str, Any]:
    from netspec.io import weights as weights_io

    if path is None:
        return net.initialize()
    params = weights_io.load(_existing(path), max_bytes=net.nbytes + (1 << 20) * (1 + len(net.layers)))
    expected = {name: p.shape for name, p in net.parameters()}
    problems = weights_io.check_against(params, expected, net.dtype)
    if problems:
        raise weights_io.WeightsError(f"{path} does not match {net.source}: " + "; ".join(problems))
    return params


def cmd_eval(args: argparse.Namespace) -> int:
    import numpy as np

    net = _compile(args.spec, seed=args.seed)
    x = _read_input(args.input, tuple(net.input_shape), net.dtype)
    y = net.forward(x, _weights_for(net, args.weights))
    if args.json:
        print(json.dumps({"output": y.tolist(), "shape": list(y.shape)}))
    else:
        print(np.array2string(y, precision=4, floatmode="fixed", suppress_small=False))
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from netspec.check.verify import render, verify_network

    net = _compile(args.spec, seed=args.seed)
    params = _weights_for(net, args.weights)
    # built in memory, the bytes are the seed's by construction: only the statistics say something
    reproduce = args.weights is not None and not args.statistical_only
    report = verify_network(net, params, alpha=args.alpha, reproduce=reproduce)
    print(json.dumps(report.as_json(), indent=2) if args.json else render(report))
    return EXIT_OK if report.passed else EXIT_INVALID


def cmd_explain(args: argparse.Namespace) -> int:
    from netspec.report import summary

    net = _compile(args.spec)
    print(json.dumps(summary.explain(net), indent=2) if args.json else summary.explain_text(net))
    return EXIT_OK


COMMANDS = {
    "build": cmd_build,
    "validate": cmd_validate,
    "schema": cmd_schema,
    "eval": cmd_eval,
    "verify": cmd_verify,
    "explain": cmd_explain,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
