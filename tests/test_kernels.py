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


BROKEN_IN_A_FRESH_PROCESS = """
import sys, types
import numpy as np
import netspec.init
from netspec.init import _kernels as real
fake = types.ModuleType("netspec.init._kernels")
fake.__dict__.update({k: v for k, v in vars(real).items() if not k.startswith("__")})
def broken(state, out, mult):
    result = real.uniform_f32(state, out, mult)
    out[0] = np.nextafter(out[0], np.float32(np.inf))
    return result
fake.uniform_f32 = broken
sys.modules["netspec.init._kernels"] = netspec.init._kernels = fake
from netspec.init import kernels  # nothing has imported the streams yet
print(kernels.status())
"""


@needs_kernels
def test_the_self_check_runs_even_before_the_streams_are_imported():
    """``netspec --version`` and CI ask for the status first thing: every check must still run."""
    import subprocess

    env = {k: v for k, v in __import__("os").environ.items() if k != kernels.ENV}
    out = subprocess.run([sys.executable, "-c", BROKEN_IN_A_FRESH_PROCESS], capture_output=True, text=True,
                         env=env, check=True).stdout  # fmt: skip
    assert "disagree" in out and "uniform float32" in out


@needs_kernels
def test_a_kernel_that_raises_or_a_stale_build_is_not_used(monkeypatch):
    def missing(*_args):
        raise AttributeError("module has no attribute 'ziggurat_f64'")

    monkeypatch.setitem(sys.modules, "netspec.init._kernels", _fake(ziggurat_f64=missing))
    monkeypatch.delattr("netspec.init._kernels", raising=False)
    kernels.use("auto")
    assert kernels.native() is None
    assert "raised AttributeError" in kernels.status()
    assert get_initializer("he_normal")((50, 20), BlockStream(9, "x", version=2)).shape == (50, 20)

    monkeypatch.setitem(sys.modules, "netspec.init._kernels", _fake(API=kernels.API + 1))
    kernels.use("auto")
    assert kernels.native() is None
    assert "another netspec version" in kernels.status()
    with pytest.raises(InitializerError, match="another netspec version"):
        kernels.use("compiled")


@needs_kernels
def test_arrays_a_kernel_cannot_fill_take_the_numpy_path_with_the_same_bytes():
    """Strided outputs and bit generators other than PCG64 go to NumPy; the C code itself refuses a buffer
    of the wrong kind (integers, byte-swapped floats) instead of filling it."""
    kernels.use("compiled")
    cases = [
        (lambda: np.empty(2 * 1001, np.float32)[::2], streams.fill_standard_normal),
        (lambda: np.empty(2 * 1001, np.float64)[::2], streams.fill_symmetric_unit),
    ]
    for make, fill in cases:
        a, b = make(), np.empty(1001, make().dtype)
        fill(np.random.PCG64(3), a)
        fill(np.random.PCG64(3), b)
        np.testing.assert_array_equal(a, b)
    dxsm_ours, dxsm_numpy = np.empty(999, np.float32), np.empty(999, np.float32)
    streams.fill_symmetric_unit(np.random.PCG64DXSM(3), dxsm_ours)
    streams.symmetric_unit(np.random.PCG64DXSM(3), dxsm_numpy, 1.0, None)
    np.testing.assert_array_equal(dxsm_ours, dxsm_numpy)
    for wrong in (np.empty(8, np.int32), np.empty(8, ">f4")):
        with pytest.raises(ValueError, match="native floats"):
            _kernels.uniform_f32((0, 1, 0, 1), wrong, 1.0)


@needs_kernels
@pytest.mark.parametrize("isa", isas())
def test_random_lengths_and_scales_match_numpy(isa):
    """A seeded sweep beyond the self-check's fixed inputs: lengths 0..300 and 4093, scales from 0 to 1e18,
    each transform, on each instruction set (values and the generator state after)."""
    _kernels.set_isa(isa)
    rng = np.random.default_rng(2026)
    lengths = [*range(0, 301), 4093]
    for n in lengths:
        scale = float(rng.choice([0.0, 1e-30, 1e18, rng.uniform(0, 10)]))
        seed = int(rng.integers(2**32))
        for dtype, fill in ((np.float32, streams.symmetric_unit), (np.float64, streams.symmetric_unit),
                            (np.float32, streams.box_muller)):  # fmt: skip
            got = []
            for native in (_kernels, None):
                bitgen, out = np.random.PCG64(seed), np.empty(n, dtype)
                fill(bitgen, out, scale, native)
                got.append(out.tobytes() + repr(bitgen.state).encode())
            assert got[0] == got[1], (isa, n, scale, dtype, fill.__name__)
        for dtype in (np.float32, np.float64):
            got = []
            for native in (_kernels, None):
                bitgen, out = np.random.PCG64(seed), np.empty(n, dtype)
                pos, words = ziggurat._fast(bitgen, out, ziggurat.tables(np.dtype(dtype), scale or 1.0), native)
                got.append(out.tobytes() + pos.tobytes() + words.tobytes() + repr(bitgen.state).encode())
            assert got[0] == got[1], (isa, n, dtype, "ziggurat")
