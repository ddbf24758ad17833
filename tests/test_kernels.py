"""The compiled kernels (``netspec.init._kernels``) give the NumPy reference's bytes, or are not used.

Every kernel, on every instruction set this CPU has, against its NumPy reference; whole tensors of every
family, stream version and dtype across block and tile boundaries; the hand-over of the generator's
state; and the fallback when the extension is missing, fails its self-check or is refused.
"""

from __future__ import annotations

import sys
import types
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from netspec.errors import InitializerError
from netspec.init import kernels, streams, ziggurat
from netspec.init.initializers import get_initializer
from netspec.init.streams import BLOCK, BlockStream

try:
    from netspec.init import _kernels
except ImportError:  # built without a C compiler: the NumPy transforms run, nothing to compare
    _kernels = None

needs_kernels = pytest.mark.skipif(_kernels is None, reason="the compiled kernels are not built here")
CHECKS = [*streams.kernel_checks(), *ziggurat.kernel_checks()]


@pytest.fixture(autouse=True)
def _restore():
    yield
    kernels.use(None)
    if _kernels is not None:
        _kernels.set_isa("auto")


def isas() -> list[str]:
    if _kernels is None:
        return []
    found = ["baseline"]
    try:
        _kernels.set_isa("avx2")
        found.append("avx2")
    except ValueError:
        pass
    _kernels.set_isa("auto")
    return found


@needs_kernels
def test_the_built_kernels_pass_their_self_check_and_are_used():
    kernels.use(None)
    assert kernels.native() is _kernels
    assert kernels.status().startswith("compiled")


@needs_kernels
@pytest.mark.parametrize("isa", isas())
@pytest.mark.parametrize(("name", "run"), CHECKS, ids=[name for name, _ in CHECKS])
def test_each_kernel_on_each_instruction_set_matches_numpy(isa, name, run):
    assert _kernels.set_isa(isa) == isa
    assert run(_kernels) == run(None), f"{name} on {isa}"


@needs_kernels
@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 9, 31, 1000, 65537])
def test_pcg64_words_and_state_continue_numpys_generator(n):
    """The kernel's words are NumPy's ``random_raw`` words, and NumPy continues where the kernel stopped."""
    ours, theirs = np.random.PCG64(99), np.random.PCG64(99)
    ours.random_raw(3)
    theirs.random_raw(3)
    words = np.empty(n, np.uint64)
    assert kernels.call(ours, _kernels.raw, words) is None
    np.testing.assert_array_equal(words, theirs.random_raw(n))
    np.testing.assert_array_equal(ours.random_raw(17), theirs.random_raw(17))


FAMILIES = [
    "glorot_uniform",
    "he_normal",
    {"name": "he_normal", "truncated": True},
    {"name": "uniform", "low": -0.3, "high": 0.7},
    {"name": "normal", "mean": 0.5, "std": 0.02},
    {"name": "truncated_normal", "std": 0.5, "lower": 2.0, "upper": 3.0},  # uniform proposals
]


@needs_kernels
@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("config", FAMILIES, ids=str)
def test_whole_tensors_are_the_same_bytes_with_and_without_the_kernels(config, dtype, version):
    """Several blocks, a partial last block and tile, on a thread pool: compiled == NumPy."""
    shape = (2 * BLOCK + 12_345,)
    init = get_initializer(config)

    def make(choice: str) -> bytes:
        kernels.use(choice)
        with ThreadPoolExecutor(2) as pool:
            return init(shape, BlockStream(7, "layer.weights", pool, version=version), dtype).tobytes()

    assert make("compiled") == make("numpy")


@needs_kernels
def test_small_odd_tensors_are_the_same_bytes():
    for n in (1, 2, 3, 5, 127):
        for version in (1, 2):
            values = {}
            for choice in ("compiled", "numpy"):
                kernels.use(choice)
                values[choice] = get_initializer("he_normal")((n,), BlockStream(n, "x", version=version)).tobytes()
            assert values["compiled"] == values["numpy"], (n, version)


def _fake(**broken: object) -> types.ModuleType:
    """A stand-in for the extension: the real kernels (or NumPy-backed ones) with some replaced."""
    fake = types.ModuleType("netspec.init._kernels")
    if _kernels is not None:
        fake.__dict__.update({k: v for k, v in vars(_kernels).items() if not k.startswith("__")})
    fake.__dict__.update(broken)
    return fake


@needs_kernels
def test_a_kernel_that_disagrees_with_numpy_is_not_used(monkeypatch):
    def off_by_one_ulp(state, out, mult):
        result = _kernels.uniform_f32(state, out, mult)
        out[-1] = np.nextafter(out[-1], np.float32(np.inf))
        return result

    monkeypatch.setitem(sys.modules, "netspec.init._kernels", _fake(uniform_f32=off_by_one_ulp))
    monkeypatch.delattr("netspec.init._kernels", raising=False)
    kernels.use("auto")
    assert kernels.native() is None
    assert "disagree" in kernels.status() and "uniform float32" in kernels.status()
    with pytest.raises(InitializerError, match="disagree"):
        kernels.use("compiled")


def test_a_missing_extension_falls_back_to_numpy_or_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "netspec.init._kernels", None)  # import raises ImportError
    monkeypatch.delattr("netspec.init._kernels", raising=False)
    kernels.use("auto")
    assert kernels.native() is None
    assert kernels.status().startswith("numpy (the compiled kernels are not installed")
    with pytest.raises(InitializerError, match="not installed"):
        kernels.use("compiled")


def test_the_environment_selects_the_transforms(monkeypatch):
    monkeypatch.setenv(kernels.ENV, "numpy")
    kernels.use(None)
    assert kernels.native() is None
    assert kernels.status() == "numpy (NETSPEC_KERNELS=numpy)"
    monkeypatch.setenv(kernels.ENV, "fastest")
    kernels.use(None)
    with pytest.raises(InitializerError, match="NETSPEC_KERNELS='fastest'"):
        kernels.native()
    with pytest.raises(ValueError, match="not one of"):
        kernels.use("fastest")
