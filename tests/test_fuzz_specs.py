"""Fuzzing the spec pipeline (``netspec.loads``, ``netspec.load``, ``Network.num_params``): every input
either compiles into a network that works, or fails with a NetspecError that says where (see
``tests/fuzzing.py`` for the mutations, budgets and corpus)."""

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import strategies as st

import fuzzing
import netspec
from netspec.errors import NetspecError, SpecError
from netspec.spec.loader import load_file

SOURCES = sorted((fuzzing.ROOT / "specs").glob("**/*.yaml")) + sorted((fuzzing.ROOT / "tests" / "bad").glob("*.yaml"))
MAX_PARAMS = 2_000_000
"""Networks the fuzzer compiles (a larger one is a located error: the fuzzer never allocates much)."""


def _tree(path: Path):
    try:
        return load_file(str(path)).data
    except SpecError:
        return None


TEXTS = [(p.name, p.read_text(errors="replace")) for p in SOURCES]
TREES = [(name, tree) for (name, _), p in zip(TEXTS, SOURCES, strict=True) if (tree := _tree(p)) is not None]
VOCABULARY = sorted({k for _, tree in TREES for k in fuzzing.keys_of(tree) if len(k) < 40})
VALUES = fuzzing.values_by_key([tree for _, tree in TREES])


def dump(tree) -> str:
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True, width=120)


@st.composite
def specs(draw):
    """(how to read it, the spec): ``text`` for netspec.loads, ``bytes`` for netspec.load of a file."""
    if draw(st.integers(0, 9)) == 0:  # a seed's text, mutated as text (the invalid seeds too)
        _, text = draw(st.sampled_from(TEXTS))
        tree = None
    else:
        _, tree = draw(st.sampled_from(TREES))
        for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3, 4]))):
            tree = draw(fuzzing.mutate_tree(tree, VOCABULARY, VALUES))
        try:
            text = dump(tree)
        except (yaml.YAMLError, RecursionError, ValueError):  # a tree PyYAML cannot write: write the seed's
            text = dump(draw(st.sampled_from(TREES))[1])
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        text = draw(fuzzing.mutate_text(text))
    if draw(st.integers(0, 4)) == 0:
        data = text.encode("utf-8", "surrogatepass")
        for _ in range(draw(st.integers(1, 3))):
            data = draw(fuzzing.mutate_bytes(data))
        return "bytes", data
    return "text", text


def check(example, tally: fuzzing.Tally) -> None:
    """The contract (module doc); ``tally`` counts the outcomes."""
    how, spec = example
    try:
        if how == "text":
            net = netspec.loads(spec, "fuzz.yaml", max_params=MAX_PARAMS)
        else:
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "fuzz.yaml")
                with open(path, "wb") as fh:
                    fh.write(spec)
                net = netspec.load(path, max_params=MAX_PARAMS)
    except SpecError as exc:
        assert exc.diagnostics, "a SpecError without diagnostics"
        for d in exc.diagnostics:
            assert d.line >= 1 and d.column >= 1 and d.message, d
        assert str(exc).startswith(exc.source)  # renders, located
        tally.count("invalid (located)")
        return
    except NetspecError as exc:
        assert "fuzz.yaml" in str(exc), f"a NetspecError that does not say where: {exc!r}"
        tally.count("error (named file)")
        return
    count = net.num_params
    assert isinstance(count, int) and 0 <= count <= MAX_PARAMS
    assert net.summary()
    tally.count("valid")
    if count <= 200_000:
        params = net.initialize()
        assert set(params) == {name for name, _ in net.parameters()}
        shapes = {name: tuple(3 if d is None else d for d in shape) for name, shape in net.inputs.items()}
        activations = sum(_size(cl.output_shape) for cl in net.layers) + sum(map(_size, shapes.values()))
        if activations <= 10**6 and sum(map(_size, shapes.values())) * max(count, 1) <= 10**8:
            for batch, length in RUN_SIZES if any(None in s for s in net.inputs.values()) else RUN_SIZES[:2]:
                x = {name: np.zeros((batch, *(length if d is None else d for d in shape)), dtype=np.float32)
                     for name, shape in net.inputs.items()}  # fmt: skip
                try:
                    net.forward(x if len(x) > 1 else next(iter(x.values())), params)
                    tally.count("forward ok")
                except NetspecError:  # (an input the compiled network refuses: an error, not a crash)
                    tally.count("forward refused")


RUN_SIZES = [(2, 3), (0, 3), (1, 0), (1, 1)]
"""(batch, length of every open axis) a valid network runs with: an empty batch always, an empty and a
one-position sequence where the spec leaves a size open (the run-time shape rules)."""


def _size(shape) -> int:
    return int(np.prod([3 if d is None else d for d in shape], dtype=object))


def save(example) -> tuple[bytes, str]:
    how, spec = example
    return (spec if how == "bytes" else spec.encode("utf-8", "surrogatepass")), ".yaml"


def test_fuzz_the_spec_pipeline():
    """CI: 250 fixed-seed examples (well under a minute); NETSPEC_FUZZ_MINUTES=10 for a long run."""
    fuzzing.run("specs", specs(), check, save, ci_examples=250)


@pytest.mark.parametrize("path", fuzzing.corpus("specs"), ids=lambda p: p.name)
def test_the_corpus_of_spec_crashes(path):
    """Inputs that crashed netspec once (found by fuzzing or by hand): each keeps the contract."""
    data = path.read_bytes()
    tally = fuzzing.Tally("corpus")
    check(("bytes", data), tally)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    check(("text", text), tally)


INTERNAL_ERRORS = {"NotASpec"}
"""NetspecError subclasses that never leave netspec (fmt catches its own)."""


def test_every_public_error_is_documented():
    """The errors the fuzzers allow are the public API: each NetspecError subclass is in the README's table."""
    import importlib
    import pkgutil
    import re

    from netspec.errors import NetspecError

    for module in pkgutil.walk_packages(netspec.__path__, "netspec."):
        if not module.name.endswith(("_kernels", "__main__")):
            importlib.import_module(module.name)
    found, stack = set(), [NetspecError]
    while stack:
        for cls in stack.pop().__subclasses__():
            stack.append(cls)
            if cls.__module__.startswith("netspec.") and not cls.__name__.startswith("_"):
                found.add((cls.__module__, cls.__name__))
    readme = (fuzzing.ROOT / "README.md").read_text()
    missing = [f"{m}.{n}" for m, n in sorted(found) if n not in INTERNAL_ERRORS and not re.search(
        rf"`{re.escape(m)}\.{n}`", readme)]  # fmt: skip
    assert not missing and len(found) >= 8, missing


def test_the_report_keeps_the_slowest_inputs_whole(tmp_path, monkeypatch):
    """The long profile's slowest inputs are written out whole (the report line shows 160 characters)."""
    import json

    report = tmp_path / "fuzz.jsonl"
    monkeypatch.setenv("NETSPEC_FUZZ_REPORT", str(report))
    tally = fuzzing.Tally("specs", save)
    for i, cpu in enumerate([0.1, 3.0, 0.2, 2.0, 0.3]):
        tally.executions += 1
        tally.timed(cpu, ("text", f"netspec: 1  # {i}\n" + "x" * 300))
    out = tally.report(0, "seeds")
    assert [Path(f).read_text()[:15] for f in out["slowest_files"]] == [f"netspec: 1  # {i}" for i in (1, 3, 4)]
    assert all(len(Path(f).read_text()) > 300 for f in out["slowest_files"])
    assert json.loads(report.read_text())["slowest"][0][0] == 3.0
