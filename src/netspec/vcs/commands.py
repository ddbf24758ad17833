"""The ``lock``, ``diff`` and ``fmt`` subcommands (imported to build the parser: nothing heavy at module level)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from netspec.errors import NetspecError, SpecError, UsageError

EXIT_SAME, EXIT_DIFFERENT, EXIT_TROUBLE = 0, 1, 2


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    lock = sub.add_parser("lock", help="write SPEC.lock: every tensor's resolved initializer and SHA-256",
                          description="Write SPEC.lock (JSON, one tensor per line): netspec version, seed, rng, "
                          "stream, dtype, and per parameter its shape, resolved initializer, fans, declared "
                          "distribution and SHA-256. --check rebuilds in memory and exits 1 naming every tensor "
                          "that differs, and why.")  # fmt: skip
    lock.add_argument("specs", nargs="+", metavar="SPEC",
                      help="spec files (each with its SPEC.lock; a SPEC.lock path stands for its SPEC)")  # fmt: skip
    lock.add_argument("--check", action="store_true", help="compare with the lock instead of writing it")
    lock.add_argument("--lock", metavar="FILE", help="the lock file, for one SPEC (default: SPEC.lock next to it)")
    lock.add_argument("--json", action="store_true", help="with --check: print the differences as JSON")

    diff = sub.add_parser("diff", help="semantic diff of two specs (or locks): layers, parameters, changed tensors",
                          description="Compare OLD and NEW (each a file, or REV:path read with git show): layers "
                          "added, removed, renamed, changed options, parameter counts, and which tensors' bytes "
                          "change. Exit 0 same, 1 different, 2 trouble (as diff(1)). As a git diff driver: "
                          "--external PATH OLD-FILE OLD-HEX OLD-MODE NEW-FILE NEW-HEX NEW-MODE.")  # fmt: skip
    diff.add_argument("sides", nargs="+", metavar="SIDE", help="OLD NEW, or git's seven arguments with --external")
    diff.add_argument("--external", action="store_true", help="take git's external diff arguments")
    diff.add_argument("--json", action="store_true", help="print the diff as JSON")

    fmt = sub.add_parser("fmt", help="rewrite specs in the canonical layout (comments kept)",
                         description="Rewrite each SPEC in one canonical layout (key order, flow style for short "
                         "layers, quoting), keeping comments, atomically. --check changes nothing and exits 1 "
                         "listing the files that would change.")  # fmt: skip
    fmt.add_argument("specs", nargs="+", metavar="SPEC", help="spec files or folders")
    fmt.add_argument("--check", action="store_true", help="exit 1 if a file is not in the canonical layout")
    return {"lock": run_lock, "diff": run_diff, "fmt": run_fmt}


def default_lock_path(spec: str) -> str:
    return spec + ".lock"


def run_lock(args: argparse.Namespace) -> int:
    from netspec.spec.imports import BlockLibrary

    if args.lock and len(args.specs) > 1:
        raise UsageError("--lock names the lock file of one SPEC")
    if args.json and not args.check:
        raise UsageError("--json goes with --check")
    failed = 0
    docs: list[dict[str, Any]] | None = [] if args.json else None
    for spec in _specs_of(args.specs):  # every spec is handled and reported, then the exit code says if any failed
        try:
            failed += _lock_one(spec, args.lock or default_lock_path(spec), args.check, docs)
        except BlockLibrary:  # a hook or a glob hands over library files too: not a failure
            print(f"{spec}: a block library: nothing to lock (the locks of the specs that import it record its "
                  "SHA-256)", file=sys.stderr)  # fmt: skip
            if docs is not None:
                docs.append({"spec": spec, "ok": True, "library": True})
        except SpecError as exc:
            print(exc, file=sys.stderr)
            failed += 1
        except NetspecError as exc:
            print(f"netspec lock: error: {exc}", file=sys.stderr)
            failed += 1
            if docs is not None:
                docs.append({"spec": spec, "ok": False, "error": str(exc)})
    if docs is not None:  # one JSON document for every spec
        json.dump(docs, sys.stdout, indent=1)
        sys.stdout.write("\n")
    return 1 if failed else 0


def _specs_of(paths: list[str]) -> list[str]:
    """The specs named, a lock file ``SPEC.lock`` standing for its ``SPEC`` (a hook hands over an edited
    lock), each once."""
    out: list[str] = []
    for path in paths:
        spec = path[: -len(".lock")] if path.endswith((".yaml.lock", ".yml.lock")) else path
        if spec not in out:
            out.append(spec)
    return out


def _lock_one(spec: str, path: str, check: bool, docs: list[dict[str, Any]] | None) -> int:
    if os.path.abspath(path) == os.path.abspath(spec):
        raise UsageError(f"{path}: the lock file cannot be the spec itself")
    from netspec.io.files import require_file
    from netspec.io.weights import atomic_write
    from netspec.spec.compiler import compile_file
    from netspec.vcs import lock as locks

    require_file(spec)
    if not check and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise UsageError(f"{path}: the folder does not exist")
    net = compile_file(spec)
    current = locks.build_lock(net, imports=net.imports)
    if not check:
        with atomic_write(path) as fh:
            fh.write(locks.dumps(current).encode())
        print(f"wrote {path} ({len(current['tensors'])} tensors, content sha256 {current['content_sha256']})")
        return 0
    return report_drift(path, current, docs)


def report_drift(path: str, current: dict, docs: list[dict[str, Any]] | None = None, quiet: bool = False) -> int:
    """Compare ``current`` with the lock at ``path``; print the drift (or add it to ``docs``, for JSON);
    0 if none, else 1."""
    from netspec.vcs import lock as locks

    old = read_lock(path)
    drifts = locks.compare(old, current)
    imports = locks.import_changes(old, current)  # a note: the lock guards the tensors, not the libraries' text
    if docs is not None:
        docs.append({"lock": path, "ok": not drifts,
                     "drift": [{"tensor": d.tensor, "kind": d.kind, "reason": d.reason} for d in drifts],
                     "imports_changed": imports})  # fmt: skip
        return 1 if drifts else 0
    for change in imports:
        print(f"{path}: note: imported library {change} (the check is on the tensors; re-lock to record it)",
              file=sys.stderr)  # fmt: skip
    if drifts:
        for d in drifts:
            print(f"{path}: {d}", file=sys.stderr)
        spec, lib = sum(d.kind == "spec" for d in drifts), sum(d.kind == "bytes" for d in drifts)
        print(f"{len(drifts)} tensor(s) differ from the lock: {spec} because the spec changed, {lib} because the same "
              "spec now gives other bytes", file=sys.stderr)  # fmt: skip
    elif not quiet:
        print(f"{path}: ok ({len(current['tensors'])} tensors match)")
    return 1 if drifts else 0


def read_lock(path: str) -> dict[str, Any]:
    """The lock file at ``path``, checked (NetspecError when missing, too large or malformed)."""
    from netspec.vcs import lock as locks

    return locks.read(path)


def run_diff(args: argparse.Namespace) -> int:
    from netspec.vcs.diff import diff_sides, read_side

    sides = args.sides
    if args.external:
        if len(sides) != 7:
            raise UsageError("--external takes git's seven arguments: PATH OLD-FILE OLD-HEX OLD-MODE NEW-FILE "
                             "NEW-HEX NEW-MODE")  # fmt: skip
        sides = [sides[1], sides[4]]
    elif len(sides) != 2:
        raise UsageError("diff takes two sides: OLD NEW")
    try:
        if args.external and os.devnull in sides and not args.sides[0].endswith(".lock"):
            print(f"{args.sides[0]}: {'new' if sides[0] == os.devnull else 'deleted'} spec")
            return EXIT_SAME
        old, new = (_external_side(s, args.sides[0]) if args.external else read_side(s) for s in sides)
        result = diff_sides(old, new)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return EXIT_TROUBLE
    except (NetspecError, OSError, UnicodeDecodeError) as exc:
        print(f"netspec diff: error: {exc}", file=sys.stderr)
        return EXIT_TROUBLE
    if args.json:
        json.dump(result.as_json(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(result.text())
    if args.external:  # git reads any other exit status of a diff driver as a crash
        return EXIT_SAME
    return EXIT_SAME if result.same else EXIT_DIFFERENT


def _external_side(temp: str, path: str) -> Any:
    """A side git hands a diff driver: its temporary file (or /dev/null for an added or deleted lock),
    named by the real path."""
    from netspec.vcs.diff import Side, read_side

    if temp == os.devnull:
        return Side(path, '{"netspec_lock": 1, "tensors": {}}', path)
    side = read_side(temp)
    side.label, side.path = path, path
    return side


def run_fmt(args: argparse.Namespace) -> int:
    from netspec.io.weights import atomic_write
    from netspec.spec.files import spec_files
    from netspec.vcs.fmt import NotASpec, format_text

    paths = spec_files(args.specs, keep_empty_folders=False)
    changed, failed = [], 0
    for path in paths:
        try:
            text = _read_spec(path)
            formatted = format_text(text, path)
        except NotASpec as exc:
            print(f"netspec fmt: {exc}", file=sys.stderr)
            continue
        except (SpecError, NetspecError, OSError, UnicodeDecodeError) as exc:
            print(exc if isinstance(exc, SpecError) else f"netspec fmt: error: {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        if formatted == text:
            continue
        changed.append(path)
        if args.check:
            print(f"{path}: not in the canonical layout (run netspec fmt {path})", file=sys.stderr)
        else:
            real = os.path.realpath(path)  # a symbolic link keeps pointing at the formatted spec
            mode = os.stat(real).st_mode & 0o7777
            with atomic_write(real) as fh:
                fh.write(formatted.encode())
            os.chmod(real, mode)  # and the file keeps its permissions
            print(f"formatted {path}")
    if not args.check:
        return 1 if failed else 0
    return 1 if changed or failed else 0


def _read_spec(path: str) -> str:
    """A spec file's text, read no further than the loader's size limit (a located error past it)."""
    from netspec.io.files import open_regular
    from netspec.spec.loader import MAX_BYTES, decode

    with open_regular(path) as fh:  # a FIFO is refused, not opened (opening one for reading blocks)
        return decode(fh.read(MAX_BYTES + 1), path)
