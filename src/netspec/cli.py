"""The ``netspec`` command line: build, validate, verify, explain, schema, eval.

The CLI parses arguments and calls library functions; a reporter chosen once
(``--json`` or text, :mod:`netspec.report.reporters`) prints the results.

Exit codes: 0 ok; 1 an input (spec, weights or data file) is missing, unreadable
or wrong, or a check failed; 2 the command line is wrong (unknown option, bad
value, an output path in a missing folder or of an unknown format); 70 an
internal error (a bug: one line, no traceback unless ``NETSPEC_DEBUG=1``);
130/143 interrupted by SIGINT/SIGTERM (nothing half-written is left).
A closed stdout (``| head``) is not an error.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from netspec import __version__
from netspec.arguments import add_dtype, add_max_params, alpha, int_in, output_path, seed
from netspec.errors import UsageError
from netspec.report.reporters import Validation, reporter
from netspec.spec.files import spec_files

if TYPE_CHECKING:
    from netspec.nn.network import Network

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2




def _size(text: str) -> int:
    from netspec.io.shards import parse_size

    try:
        return parse_size(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class VersionAction(argparse.Action):
    """``--version``: the version, and which transforms make the random values (compiled kernels or NumPy)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object):
        text = "show the version and which transforms run (compiled kernels or NumPy), then exit"
        super().__init__(option_strings, dest, nargs=0, help=text)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from netspec.errors import InitializerError
        from netspec.init import kernels

        try:
            transforms = kernels.status()
        except InitializerError as exc:
            transforms = f"none ({exc})"
        print(f"netspec {__version__}\ntransforms: {transforms}")
        parser.exit()


def parser() -> argparse.ArgumentParser:

    p = argparse.ArgumentParser(
        prog="netspec",
        description="Neural-network architectures and their weight initialization as checked YAML specs.",
        epilog="Exit codes: 0 ok; 1 an input is missing or wrong, or a check failed; 2 the command line is wrong; "
        "70 internal error (please report). NETSPEC_DEBUG=1 shows tracebacks of internal errors.",
    )
    p.add_argument("--version", action=VersionAction)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    b = sub.add_parser("build", help="validate, compile, initialize and write the weights",
                       description="Validate SPEC, print its summary and write its initialized weights.")  # fmt: skip
    b.add_argument("spec", metavar="SPEC", help="the YAML spec file")
    b.add_argument("-o", "--output", metavar="OUT",
                   help="weights file (.npz or .safetensors), a folder of safetensors shards (an existing folder, "
                   "a path ending with /, or with --max-shard-size) or a .zarr store "
                   "(default: ./<spec stem>.npz)")  # fmt: skip
    b.add_argument("--max-shard-size", type=_size, metavar="SIZE",
                   help="write a folder of safetensors shards of at most SIZE bytes of tensors each (5GB, 500MB, "
                   "2GiB; a larger tensor alone) with model.safetensors.index.json, the Hub's layout; a folder "
                   "output without it uses 5GB")  # fmt: skip
    b.add_argument("--engine", choices=("local", "dask"), default="local",
                   help="local (default): this process; dask: each shard (or zarr shard file) is a task on a Dask "
                   "cluster that generates and writes it (the 'dask' extra); the same bytes either way")  # fmt: skip
    b.add_argument("--scheduler", metavar="ADDRESS", help="the Dask scheduler (tcp://host:8786) for --engine dask "
                   "(default: a LocalCluster on this machine); the output must be a path every worker shares, or "
                   "a zarr store's fsspec URL")  # fmt: skip
    b.add_argument("--workers", type=int_in(1, 1024, "workers"), metavar="N",
                   help="LocalCluster worker processes for --engine dask without --scheduler (default: all cores)")
    b.add_argument("--resume", action="store_true",
                   help="continue a folder of shards or a zarr store an earlier build of the same plan left: keep "
                   "the finished shards whose digests check, write the rest")  # fmt: skip
    b.add_argument("--seed", type=seed, help="override the spec's seed")
    add_dtype(b)
    b.add_argument("--dry-run", action="store_true", help="validate and summarize; allocate and write nothing")
    add_max_params(b)
    b.add_argument("--threads", type=int_in(1, 1024, "threads"), metavar="N",
                   help="initialization threads, 1..1024 (default: all cores)")  # fmt: skip
    b.add_argument("--json", action="store_true", help="print the summary as JSON")
    b.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    b.add_argument("--lock", metavar="FILE", help="check the built tensors against a lock file (netspec lock); "
                   "on any difference nothing is left written and the exit code is 1")  # fmt: skip

    v = sub.add_parser("validate", help="check spec files (for CI and pre-commit)",
                       description="Validate and compile each SPEC without allocating anything; a folder "
                       "means every *.yaml / *.yml file in it (recursively). Warnings (e.g. parameter names "
                       "that depend on layer positions) do not change the exit code.")  # fmt: skip
    v.add_argument("specs", metavar="SPEC", nargs="+", help="YAML spec files or folders")
    add_max_params(v)
    v.add_argument("-q", "--quiet", action="store_true", help="print errors only (no ok lines, no warnings)")
    v.add_argument("--json", action="store_true", help="print the results (with every diagnostic) as JSON")

    sub.add_parser("schema", help="print the JSON Schema of the spec format",
                   description="Print the JSON Schema (draft 2020-12), including registered custom names. Point "
                   "editors at it with a first line '# yaml-language-server: $schema=<path or URL>'.")  # fmt: skip

    e = sub.add_parser("eval", help="run a forward pass", description="Evaluation-mode forward pass of SPEC.")
    e.add_argument("spec", metavar="SPEC")
    e.add_argument("--input", required=True, metavar="X", action="append",
                   help="comma-separated values for one sample (1,2,3,4; -1,2 works too) or a .npy file with a "
                   "batch; for a network with several inputs, NAME=X once per input")  # fmt: skip
    e.add_argument("--weights", metavar="FILE", help="weights file (default: initialize from the spec's seed)")
    e.add_argument("--seed", type=seed, help="override the spec's seed")
    add_dtype(e, "override the spec's dtype (when building from the seed)")
    add_max_params(e)
    e.add_argument("--json", action="store_true", help="print the output as JSON")
    e.add_argument("-o", "--output", metavar="OUT",
                   help="write the output at full precision instead of printing it: .npy (one output) or .npz "
                   "(one array per output name)")  # fmt: skip

    x = sub.add_parser("explain", help="say, per parameter, which initializer applies, why, and its formula",
                       description="For every parameter: shape, fans, the initializer and where it came from "
                       "(layer, defaults, auto from the activation), its formula and declared "
                       "distribution.")  # fmt: skip
    x.add_argument("spec", metavar="SPEC")
    add_max_params(x)
    x.add_argument("--json", action="store_true", help="print the explanation as JSON")

    r = sub.add_parser("verify", help="check weights against the distributions their initializers declare",
                       description="For every parameter tensor: exact bounds, mean and variance tests valid at every "
                       "size, and a "
                       "Kolmogorov-Smirnov fit, with a family-wise false-alarm rate of --alpha.")  # fmt: skip
    r.add_argument("specs", metavar="SPEC", nargs="+", help="spec files or folders (every one is checked)")
    r.add_argument("--weights", metavar="FILE", help="weights file to check, for one SPEC (default: build in memory)")
    r.add_argument("--alpha", type=alpha, default=1e-3, help="family-wise false-alarm rate (default 0.001)")
    r.add_argument("--seed", type=seed, help="override the spec's seed (when building in memory)")
    add_dtype(r, "override the spec's dtype (the file's, for a file built with build --dtype)")
    add_max_params(r)
    r.add_argument("--statistical-only", action="store_true",
                   help="skip the exact check that the weights are the bytes the spec's seed produces")  # fmt: skip
    r.add_argument("--strict", action="store_true",
                   help="fail on 'inconclusive' tensors (too small to judge) and on skipped tests too")  # fmt: skip
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    r.add_argument("--lock", metavar="FILE", help="also check every tensor's SHA-256 against a lock file (one SPEC)")
    for module in _command_modules():
        COMMANDS.update(module.add_parsers(sub))
    return p


COMMAND_MODULES: tuple[str, ...] = ("netspec.diagnose.commands", "netspec.export.commands", "netspec.vcs.commands",
                                     "netspec.importers.commands")
"""Modules that add subcommands: each has ``add_parsers(subparsers) -> {name: run(args) -> int}``.

They are imported to build the parser, so they import nothing heavy at module level."""


def _command_modules() -> list[Any]:
    import importlib

    return [importlib.import_module(name) for name in COMMAND_MODULES]


EXIT_INTERNAL = 70
"""An unexpected exception: a bug in netspec (sysexits' EX_SOFTWARE)."""
EXIT_TERMINATED = 128 + 15


class _Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C, so partial files are removed."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module doc)."""
    args = parser().parse_args(_negative_values(list(sys.argv[1:] if argv is None else argv)))
    with _sigterm_unwinds():
        try:
            return _run(args)
        except BrokenPipeError:  # the reader went away (`netspec explain ... | head -1`): not an error
            _silence_stdout()
            return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from netspec.errors import NetspecError, SpecError

    try:
        from netspec.plugins import load_plugins

        load_plugins()
        return COMMANDS[args.command](args)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    except NetspecError as exc:
        print(f"netspec {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except UsageError as exc:
        print(f"netspec {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        print(f"netspec {args.command}: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)  # fmt: skip
        return EXIT_INVALID
    except (KeyboardInterrupt, _Terminated) as exc:
        print("netspec: interrupted; nothing was written", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, _Terminated) else 130
    except MemoryError:
        print("netspec: error: out of memory; lower the spec's size or --max-params", file=sys.stderr)
        return EXIT_INVALID
    except Exception as exc:  # last resort: a bug, never a traceback for users
        if os.environ.get("NETSPEC_DEBUG") == "1":
            raise
        print(f"netspec: internal error: {type(exc).__name__}: {exc} (please report it; NETSPEC_DEBUG=1 shows "
              "the traceback)", file=sys.stderr)  # fmt: skip
        return EXIT_INTERNAL


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While a command runs, SIGTERM unwinds the stack (cleaning up partial files) like SIGINT."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (in-process use): nothing to flush
        pass


_NUMBER_START = re.compile(r"^-\.?[0-9]")


def _negative_values(argv: list[str]) -> list[str]:
    """``--input -1,2,3`` -> ``--input=-1,2,3`` (argparse would read ``-1,2,3`` as an option)."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if i and argv[i - 1] == "--input" and _NUMBER_START.match(arg):
            out[-1] = f"--input={arg}"
        else:
            out.append(arg)
    return out


def _missing(path: str) -> str:
    """Why ``path`` cannot be read as a spec, or ''."""
    from netspec.io.files import kind

    if os.path.isdir(path):
        return "is a folder with no .yaml or .yml files"
    if not os.path.exists(path):
        return "no such file"
    what = kind(os.stat(path).st_mode)
    return f"not a regular file ({what})" if what else ""


def _compile(path: str, **options: Any) -> Network:
    from netspec.errors import NetspecError
    from netspec.spec.compiler import compile_file

    problem = _missing(path)
    if problem:
        raise NetspecError(f"{path}: {problem}")
    return compile_file(path, **options)


def cmd_build(args: argparse.Namespace) -> int:
    from netspec.io import weights as weights_io
    from netspec.io.outputs import output_for
    from netspec.report import summary

    path = args.output or os.path.splitext(os.path.basename(args.spec))[0] + ".npz"
    if (args.scheduler or args.workers) and args.engine != "dask":
        raise UsageError("--scheduler and --workers go with --engine dask")
    engine = args.engine if args.engine == "dask" else None
    out = None if args.dry_run else output_for(path, args.max_shard_size, engine)
    if args.lock and not args.dry_run:
        from netspec.vcs.commands import read_lock

        read_lock(args.lock)  # a missing or broken lock fails before anything is built
    net = _compile(args.spec, seed=args.seed, max_params=args.max_params, dtype=args.dtype)
    if out is not None and out.kind == "npz":
        try:
            weights_io.check_npz_dtypes({net.dtype}, out.path)
        except weights_io.WeightsError as exc:
            raise UsageError(str(exc)) from None
    rep = reporter(args.json)
    report: dict[str, Any] = summary.as_json(net)
    rep.build_started(net, report)
    if out is None:
        report["output"] = None
        rep.build_done(report, "dry run: nothing allocated, nothing written")
        return EXIT_OK
    from netspec.io import outputs
    from netspec.report.progress import Progress

    layout = [(name, p.shape, net.dtype) for name, p in net.parameters()]
    with Progress(net.num_params, enabled=not args.no_progress and not args.json) as bar:
        result = outputs.build(net, out, weights_io.metadata_for(net), threads=args.threads, progress=bar.advance,
                               engine=args.engine, scheduler=args.scheduler, workers=args.workers,
                               resume=args.resume)  # fmt: skip
    for note in result.notes:
        print(f"netspec build: {note}", file=sys.stderr)
    digests, file_digest, files = result.digests, result.file_sha256, result.files
    content = weights_io.layout_digest(digests, layout) if len(digests) == len(layout) else None
    if args.lock:
        try:
            drift = _lock_drift(args.lock, net, digests)
        except BaseException:
            _remove(files)
            raise
        if drift:
            _remove(files)
            print(f"netspec build: {path} was not kept: the tensors differ from {args.lock}", file=sys.stderr)
            return EXIT_INVALID
    report.update(output=path, sha256=content, file_sha256=file_digest, tensor_sha256=digests)
    if not out.is_file:
        report["files"] = files
    note = "" if args.output else " (default: <spec stem>.npz in the current folder)"
    shards = "" if out.is_file or out.kind == "zarr" else f" ({len(files)} file{'s' * (len(files) != 1)})"
    text = f"wrote {path}{note}{shards}\ncontent sha256 " + (content or "not computed: tensors split over zarr "
                                                              "shards written in parallel (netspec lock --check "
                                                              "or verify --lock checks them)")  # fmt: skip
    rep.build_done(report, text + (f"\nfile sha256 {file_digest}" if file_digest else ""))
    return EXIT_OK


def _remove(files: list[str]) -> None:
    """Remove what a build wrote (its lock check failed): its files, and a folder's index."""
    import shutil

    for file in files:
        if os.path.isdir(file):
            shutil.rmtree(file)
        elif os.path.exists(file):
            os.unlink(file)
    folders = {os.path.dirname(f) for f in files if f.endswith(".safetensors")}
    for folder in folders:
        index = os.path.join(folder, "model.safetensors.index.json")
        if len(files) > 1 and os.path.exists(index):
            os.unlink(index)


def _lock_drift(path: str, net: Network, digests: dict[str, str]) -> bool:
    """Whether the tensors (their digests) differ from the lock at ``path`` (the differences are printed)."""
    from netspec.vcs.commands import report_drift
    from netspec.vcs.lock import build_lock

    return report_drift(path, build_lock(net, digests, net.imports), quiet=True) != EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from netspec.errors import SpecError
    from netspec.spec.compiler import compile_file
    from netspec.spec.imports import BlockLibrary

    results = []
    for path in spec_files(args.specs):
        problem = _missing(path)
        if problem:
            results.append(Validation(path, problem=problem))
            continue
        try:
            net = compile_file(path, max_params=args.max_params)
        except BlockLibrary as exc:  # blocks and no layers: checked as a library that specs import
            results.append(_library_validation(path, exc))
            continue
        except SpecError as exc:
            results.append(Validation(path, error=exc))
            continue
        results.append(Validation(path, net, warnings=net.warnings))
    reporter(args.json, args.quiet).validated(results)
    return EXIT_OK if all(r.ok for r in results) else EXIT_INVALID


def _library_validation(path: str, library: Any) -> Validation:
    from netspec.errors import SpecError
    from netspec.spec.imports import check_library

    try:
        return Validation(path, blocks=check_library(library.document))
    except SpecError as exc:
        return Validation(path, error=exc)


def cmd_schema(args: argparse.Namespace) -> int:
    from netspec.spec.schema import schema_json

    sys.stdout.write(schema_json())
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from netspec.export.files import load_weights
    from netspec.nn.inputs import read_inputs

    if args.output:
        output_path(args.output, (".npy", ".npz"))
    net = _compile(args.spec, seed=args.seed, dtype=args.dtype, max_params=args.max_params)
    if args.output and args.output.lower().endswith(".npy") and len(net.outputs) > 1:
        raise UsageError(f"{args.output}: the network has {len(net.outputs)} outputs ({', '.join(net.outputs)}); "
                         "write .npz (one array per output)")  # fmt: skip
    x = read_inputs(args.input, net.inputs, net.compute_dtype)
    params = load_weights(net, args.weights) if args.weights else None
    y = net.forward(x, params)
    if args.output:
        _save_outputs(args.output, y if isinstance(y, dict) else {net.outputs[0]: y})
        if not args.json:
            print(f"wrote {args.output}")
        return EXIT_OK
    reporter(args.json).evaluated(y)
    return EXIT_OK


def _save_outputs(path: str, outputs: dict[str, Any]) -> None:
    """The outputs at full precision, atomically: ``.npy`` holds the one output, ``.npz`` one array per
    output name."""
    import numpy as np

    from netspec.io.weights import atomic_write

    with atomic_write(path) as fh:
        if path.lower().endswith(".npy"):
            np.save(fh, next(iter(outputs.values())), allow_pickle=False)
        else:
            np.savez(fh, **outputs)


def cmd_verify(args: argparse.Namespace) -> int:
    from netspec.check.verify import verify_spec
    from netspec.errors import NetspecError, SpecError
    from netspec.spec.imports import BlockLibrary

    paths = spec_files(args.specs)
    if args.weights and len(paths) > 1:
        raise UsageError("--weights checks one spec's file; give one SPEC with it")
    if args.lock and len(paths) > 1:
        raise UsageError("--lock checks one spec; give one SPEC with it")
    if args.lock:
        from netspec.io.files import require_file

        require_file(args.lock, "no such lock file (write it with netspec lock)")
    reports, failed = [], 0
    for path in paths:  # every spec is checked and reported, then the exit code says if any failed
        try:
            net = _compile(path, seed=args.seed, dtype=args.dtype, max_params=args.max_params)
            digests: dict[str, str] = {}
            reports.append(verify_spec(net, args.weights, args.alpha, args.statistical_only, digests))
            if args.lock and _lock_drift(args.lock, net, digests):
                failed += 1
        except BlockLibrary:  # (netspec validate checks it; the specs that import it are verified)
            print(f"{path}: a block library: nothing to verify by itself", file=sys.stderr)
        except SpecError as exc:
            print(exc, file=sys.stderr)
            failed += 1
        except NetspecError as exc:
            print(f"netspec verify: error: {exc}", file=sys.stderr)
            failed += 1
    if reports:
        reporter(args.json).verified(reports)
    return EXIT_OK if not failed and all(r.ok(strict=args.strict) for r in reports) else EXIT_INVALID


def cmd_explain(args: argparse.Namespace) -> int:
    net = _compile(args.spec, max_params=args.max_params)
    reporter(args.json).explained(net)
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "build": cmd_build,
    "validate": cmd_validate,
    "schema": cmd_schema,
    "eval": cmd_eval,
    "verify": cmd_verify,
    "explain": cmd_explain,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
