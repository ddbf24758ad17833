"""The fuzzers' shared parts: structure-aware mutations, the contracts they check, budgets and the corpus.

Two targets (``tests/test_fuzz_specs.py``, ``tests/test_fuzz_readers.py``), one contract each:

* **specs**: ``netspec.loads(text)`` / ``netspec.load(path)`` either return a Network (whose
  ``num_params``, ``summary()`` and, when small, ``initialize()`` and ``forward`` work) or raise a
  :class:`~netspec.errors.NetspecError` *with a location*: a ``SpecError`` whose every diagnostic has a
  line and column, or a message that names the file;
* **readers**: reading a weights file (``.npz``, ``.safetensors``), its metadata, or a lock file (and
  comparing it with the spec's) either works or raises a NetspecError whose message names the file.

Anything else (TypeError, KeyError, RecursionError, ...) is what the CLI reports as an internal error,
exit 70: a failure. Inputs are the example specs and files built from them, mutated by structure
(swapped types, extreme numbers, integral floats, dropped, duplicated and renamed keys, deep nesting,
moved subtrees, known names in the wrong place) and by bytes (flips, cuts, splices, YAML punctuation).

Budgets: by default a short, fixed-seed run (``derandomize``: the same examples every time, for CI);
``NETSPEC_FUZZ_MINUTES=10`` runs each target for that long with fresh random seeds, and on a failure
writes the input to ``tests/fuzz_corpus/<target>/`` (``crash-<sha256>``) before failing. Every file in
the corpus is replayed by the test-suite. ``NETSPEC_FUZZ_REPORT=FILE`` appends a JSON line per target
with the number of executions, the outcomes and the failures, and writes the three slowest inputs (CPU
seconds) whole next to it, ``FILE.<target>-slowest-N.<suffix>``, to reproduce what they cost.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
MINUTES = float(os.environ.get("NETSPEC_FUZZ_MINUTES", "0") or 0)
"""0: the short fixed-seed CI profile; else minutes per target."""

# ---------------------------------------------------------------- values a mutation may put anywhere

EXTREME_NUMBERS = [0, -1, 1, 2, 3, 7, 64, 1000, 1001, 10_000, 2**31, 2**31 + 1, 2**32, 2**53 + 1, 2**63 - 1, 2**63,
                   10**18, -(2**63), 0.0, -0.0, 0.5, 1.5, 2.0, 3.0, 1e-308, 5e-324, 1e308, -1e308, 1e300,
                   float("inf"), float("-inf"), float("nan")]  # fmt: skip
STRINGS = ["", "x", "auto", "same", "valid", "relu", "linear", "he_normal", "zeros", "input", "dense", "conv2d",
           "$filters", "$nope", "${1/0}", "${2 ** 99}", "${index}", "${units * 2}", "${sqrt(-1)}", "a.b", "-",
           "…", "\x00", "\t", "yes", "~", "null", "1e3", "0x10", "block/7", "legacy", "float64", "../x.yaml",
           "/etc/passwd", "https://example.com/x.yaml", "x" * 300]  # fmt: skip


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(EXTREME_NUMBERS),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(STRINGS),
        st.text(max_size=12),
        st.booleans(),
        st.none(),
    )


def deep(depth: int, leaf: Any, as_list: bool) -> Any:
    for _ in range(depth):
        leaf = [leaf] if as_list else {"k": leaf}
    return leaf


# ---------------------------------------------------------------- structure-aware mutation of a tree


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a node of a JSON-like tree (the root included)."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


def get(node: Any, path: tuple) -> Any:
    for part in path:
        node = node[part]
    return node


def keys_of(node: Any) -> list[str]:
    return sorted({k for p in paths(node) for k in p if isinstance(k, str)})


def values_by_key(trees: list[Any]) -> dict[str, list[Any]]:
    """Every value seen under each key name in ``trees`` (JSON-distinct), for mutations that put a value
    where such values go (a real activation under ``activation``, a real shape under ``input``)."""
    seen: dict[str, dict[str, Any]] = {}
    for tree in trees:
        for path in paths(tree):
            if path and isinstance(path[-1], str):
                value = get(tree, path)
                seen.setdefault(path[-1], {})[json.dumps(value, sort_keys=True, default=str)] = value
    return {k: list(v.values()) for k, v in seen.items()}


@st.composite
def mutate_tree(draw: st.DrawFn, tree: Any, vocabulary: list[str], values: dict[str, list[Any]] | None = None
                ) -> Any:  # fmt: skip
    """One structure-aware mutation of ``tree`` (a deep copy is changed and returned); ``values``: what is
    seen under each key name elsewhere (:func:`values_by_key`)."""
    tree = copy.deepcopy(tree)
    where = draw(st.sampled_from(paths(tree)))
    if not where:  # the root: replace it, or wrap it
        return draw(st.one_of(scalars(), st.just([tree]), st.just(deep(70, tree, True))))
    parent, key = get(tree, where[:-1]), where[-1]
    value = parent[key]
    op = draw(st.sampled_from(["replace", "scalar", "integral", "drop", "duplicate", "rename", "nest", "move",
                               "known", "grow", "swap", "sibling", "sibling", "sibling", "floats"]))  # fmt: skip
    if op == "replace":
        parent[key] = draw(st.one_of(scalars(), st.lists(scalars(), max_size=4),
                                     st.dictionaries(st.sampled_from(vocabulary), scalars(), max_size=3)))  # fmt: skip
    elif op == "scalar":
        parent[key] = draw(scalars())
    elif op == "integral" and isinstance(value, (int, float)) and not isinstance(value, bool):
        parent[key] = float(value) if isinstance(value, int) else (int(value) if math.isfinite(value) else value)
    elif op == "drop":
        del parent[key]
    elif op == "duplicate":
        if isinstance(parent, list):
            parent.insert(key, copy.deepcopy(value))
        else:
            parent[draw(st.sampled_from(vocabulary))] = copy.deepcopy(value)
    elif op == "rename" and isinstance(parent, dict):
        new = draw(st.one_of(st.sampled_from(vocabulary), st.just(key[:-1] if key else "x"), st.just(key + "s")))
        parent[new] = parent.pop(key)
    elif op == "nest":
        parent[key] = deep(draw(st.sampled_from([2, 63, 64, 65, 200])), value, draw(st.booleans()))
    elif op == "move":
        other = draw(st.sampled_from(paths(tree)))
        if other and other[: len(where)] != where:
            target = get(tree, other[:-1])
            target[other[-1]] = copy.deepcopy(value)
    elif op == "known":
        parent[key] = draw(st.sampled_from(vocabulary + STRINGS))
    elif op == "grow" and isinstance(value, list) and value and len(json.dumps(tree, default=str)) < 20_000:
        parent[key] = value * draw(st.sampled_from([2, 50, 1001]))  # (at most once on a big tree: bounded)
    elif op == "swap" and isinstance(parent, list) and len(parent) > 1:
        other = draw(st.integers(0, len(parent) - 1))
        parent[key], parent[other] = parent[other], parent[key]
    elif op == "sibling" and values and isinstance(key, str) and values.get(key):
        parent[key] = copy.deepcopy(draw(st.sampled_from(values[key])))
    elif op == "floats":  # every integer below this node as the equal float (JSON Schema's integer takes 3.0)
        parent[key] = _floats(value)
    return tree


def _floats(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _floats(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_floats(v) for v in node]
    return float(node) if isinstance(node, int) and not isinstance(node, bool) else node


YAML_BITS = ["&a ", "*a", "<<: *a\n", "!!python/object:os.system ", "!!binary ", "\t", "- ", ": ", "{", "}", "[",
             "]", "'", '"', "#", "\n", "---\n", "...\n", "%YAML 1.1\n", "? ", "|\n", ">\n", "\ufeff", "\x00",
             "\\", "@", "`", "${", "}"]  # fmt: skip


@st.composite
def mutate_text(draw: st.DrawFn, text: str) -> str:
    """One text-level mutation: an insertion of YAML punctuation, a deletion, a duplicated line, a cut."""
    if not text:
        return draw(st.sampled_from(YAML_BITS))
    i = draw(st.integers(0, len(text)))
    op = draw(st.sampled_from(["insert", "delete", "line", "cut", "char"]))
    if op == "insert":
        return text[:i] + draw(st.sampled_from(YAML_BITS)) + text[i:]
    if op == "delete":
        return text[:i] + text[i + draw(st.integers(1, 40)) :]
    if op == "line":
        lines = text.splitlines(keepends=True)
        j = draw(st.integers(0, len(lines) - 1))
        return "".join(lines[: j + 1] + lines[j:])
    if op == "cut":
        return text[:i]
    return text[:i] + draw(st.characters()) + text[i + 1 :]


@st.composite
def mutate_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """One byte-level mutation: flips, insertions, deletions, cuts, splices of the data with itself."""
    if not data:
        return draw(st.binary(max_size=16))
    i = draw(st.integers(0, len(data)))
    op = draw(st.sampled_from(["flip", "insert", "delete", "cut", "splice", "extend"]))
    if op == "flip" and i < len(data):
        return data[:i] + bytes([data[i] ^ (1 << draw(st.integers(0, 7)))]) + data[i + 1 :]
    if op == "insert":
        return data[:i] + draw(st.binary(min_size=1, max_size=16)) + data[i:]
    if op == "delete":
        return data[:i] + data[i + draw(st.integers(1, 64)) :]
    if op == "cut":
        return data[:i]
    if op == "splice":
        j = draw(st.integers(0, len(data)))
        return data[:i] + data[j : j + draw(st.integers(1, 256))] + data[i:]
    return data + draw(st.binary(min_size=1, max_size=64))


# ---------------------------------------------------------------- running a target with a budget


class Tally:
    """Executions and outcomes of one target (reported at the end of a run)."""

    def __init__(self, target: str, save: Callable[[Any], tuple[bytes, str]] | None = None):
        self.target, self.outcomes, self.started = target, Counter(), time.monotonic()
        self.executions = 0
        self.save = save
        self.slowest: list[tuple[float, str]] = []
        self.kept: list[tuple[float, int, Any]] = []

    def timed(self, seconds: float, example: Any) -> None:
        """Keep the three slowest examples by CPU seconds (what a hostile input can cost; wall time
        depends on the load)."""
        self.kept = sorted([*self.kept, (round(seconds, 2), self.executions, example)], key=lambda k: k[:2],
                           reverse=True)[:3]  # fmt: skip
        self.slowest = [(cpu, repr(example)[:160]) for cpu, _, example in self.kept]

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] += 1

    def report(self, failures: int, seeds: str) -> dict[str, Any]:
        out = {"target": self.target, "executions": self.executions, "failures": failures,
               "seconds": round(time.monotonic() - self.started, 1), "outcomes": dict(self.outcomes),
               "seeds": seeds, "slowest": self.slowest}  # fmt: skip
        destination = os.environ.get("NETSPEC_FUZZ_REPORT")
        if destination:
            if self.save is not None:  # the slowest inputs whole, next to the report, to reproduce them
                out["slowest_files"] = [self.keep(destination, i, example) for i, (_, _, example) in
                                        enumerate(self.kept)]  # fmt: skip
            with open(destination, "a") as fh:
                fh.write(json.dumps(out) + "\n")
        print(f"\nfuzz {self.target}: {json.dumps(out)}")
        return out

    def keep(self, destination: str, rank: int, example: Any) -> str:
        assert self.save is not None
        data, suffix = self.save(example)
        path = f"{destination}.{self.target}-slowest-{rank + 1}{suffix}"
        Path(path).write_bytes(data)
        return path


def run(target: str, strategy: st.SearchStrategy[Any], check: Callable[[Any, Tally], None],
        save: Callable[[Any], tuple[bytes, str]], ci_examples: int) -> None:  # fmt: skip
    """Run ``check`` on inputs drawn from ``strategy``: ``ci_examples`` fixed-seed examples, or for
    NETSPEC_FUZZ_MINUTES with fresh seeds. A failing input is written to the corpus (``save`` gives its
    bytes and file suffix), then re-raised."""
    tally = Tally(target, save)
    last: list[Any] = []

    def body(example: Any) -> None:
        started = time.process_time()  # CPU seconds of the process (every thread), not the load's wall time
        tally.executions += 1
        try:
            check(example, tally)
            tally.timed(time.process_time() - started, example)
        except BaseException:
            last[:] = [example]  # the last failing input is the shrunk one (Hypothesis replays it last)
            raise

    common = {"database": None, "deadline": None, "suppress_health_check": list(HealthCheck)}
    if not MINUTES:
        test = settings(max_examples=ci_examples, derandomize=True, **common)(given(strategy)(body))
        try:
            test()
        finally:
            tally.report(0, "derandomized")
        return
    deadline = time.monotonic() + 60 * MINUTES
    first = random.randrange(2**32)
    current = first
    try:
        while time.monotonic() < deadline:
            test = settings(max_examples=200, derandomize=False, **common)(given(strategy)(body))
            hypothesis_seed(current)(test)()
            current += 1
    except BaseException:
        if last:
            path = save_to_corpus(target, *save(last[0]))
            print(f"\nfuzz {target}: failing input written to {path}")
        tally.report(1, f"{first}..{current}")
        raise
    tally.report(0, f"{first}..{current - 1}")


def save_to_corpus(target: str, data: bytes, suffix: str) -> Path:
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"crash-{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
    path.write_bytes(data)
    return path


def corpus(target: str) -> list[Path]:
    folder = CORPUS / target
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []
