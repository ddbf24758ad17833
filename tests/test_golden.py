"""Golden digests: the bytes netspec produces are pinned; changing them must be deliberate.

float32 uniform and normal families use only integer and IEEE basic arithmetic,
so these digests hold on every machine (stream version 2: float64 too); the
orthogonal case also depends on LAPACK's QR, so a change there on a new platform
is reported, not silently accepted (see README, "Reproducibility").

Mode ``block/1`` is stream version 1 (Box-Muller normals; what ``rng: block`` selects):
its digests never change. ``block/2`` is the ziggurat (opt-in).
"""

import hashlib

import pytest

from netspec.init import kernels
from netspec.init.initializers import get_initializer
from netspec.init.streams import BlockStream, LegacyStream, block_version


@pytest.fixture(params=["compiled", "numpy"])
def transforms(request):
    """Every golden digest holds for the compiled kernels and for the NumPy transforms."""
    if request.param == "compiled":
        pytest.importorskip("netspec.init._kernels", reason="the compiled kernels are not built here")
    kernels.use(request.param)  # a kernel that disagrees with NumPy fails here, it is not skipped
    yield request.param
    kernels.use(None)


def stream(mode, seed, path):
    """The stream of a golden case: ``legacy``, or ``block/N`` (block stream version N)."""
    return LegacyStream(seed) if mode == "legacy" else BlockStream(seed, path, version=block_version(mode))


GOLDEN = [
    ("glorot_uniform", (64, 32), 0, "dense_1.weights", "block/1", "551ec069700a278b081a37b3d18a5fa1d36cb556aa503e2f7bfdca19ae1813cd"),  # noqa: E501
    ("he_normal", (3, 3, 16, 32), 42, "conv2d_1.weights", "block/1", "47955f454b3497ca36deac0d48a73023e0fa34de98473c35d2fddb6affe23b8a"),  # noqa: E501
    ({"name": "lecun_normal", "truncated": True}, (128, 64), 7, "dense_2.weights", "block/1", "392f8ba289f5567e6431b1717dacee65eb9eacecf74620e9aab37416fc1ac7c7"),  # noqa: E501
    ({"name": "uniform", "low": -0.3, "high": 0.7}, (1000,), 1, "bias", "block/1", "6884e4c05d48e621dcc9359ec03d61b44871f9299497960cc5aa642a83334447"),  # noqa: E501
    ("orthogonal", (40, 30), 3, "dense_3.weights", "block/1", "0cd20466514337e5772a0e073c447721e5babf93183b21704224e9156f80760f"),  # noqa: E501
    ("he_uniform", (300000,), 5, "big.weights", "block/1", "e94fb19f2d0f38684038adf7f90a10f350880deac1b5e008cc8056e293443ba4"),  # noqa: E501
    ("glorot_uniform", (4, 5), 0, "dense_1.weights", "legacy", "24927711c4d2cba72cd5a87762745d91b862d877cd9074aa28f0ecd6980680eb"),  # noqa: E501
    ({"name": "truncated_normal", "std": 0.5}, (50, 20), 9, "x", "legacy", "b29251ce7bcddfbf7a0f3686a58f178914037290640fe4019d913df21db459ea"),  # noqa: E501
]  # fmt: skip


@pytest.mark.usefixtures("transforms")
@pytest.mark.parametrize(("config", "shape", "seed", "path", "mode", "digest"), GOLDEN, ids=lambda v: str(v)[:24])
def test_golden_digest(config, shape, seed, path, mode, digest):
    values = get_initializer(config)(shape, stream(mode, seed, path))
    assert hashlib.sha256(values.tobytes()).hexdigest() == digest


def _tn(lower, upper):
    """Truncated normal with float32-exact bounds 0.25 + 0.5 x (std units x)."""
    return {"name": "truncated_normal", "mean": 0.25, "std": 0.5, "lower": lower, "upper": upper}


# float64 (53-bit uniforms; stream version 1's float64 normals use NumPy's float64 log/cos/sin, whose results
# depend on the SIMD target NumPy dispatches to: those digests are keyed by it, see numpy_math_key) and every
# truncation sampler path: both tails and a narrow band (uniform proposals), 24.5% mass (uniform proposals, just
# below the 25% switch), 27.3% (normal proposals).


def numpy_math_key() -> str:
    """What NumPy's float64 log/cos/sin results depend on here: machine, NumPy minor version, dispatched tier.

    On x86-64 NumPy 2.4 has AVX-512 (``X86_V4``) float64 log kernels that round differently from its AVX2 and
    baseline ones (recorded with ``NPY_DISABLE_CPU_FEATURES``: baseline and AVX2 agree)."""
    import platform

    import numpy as np
    from numpy._core._multiarray_umath import __cpu_features__

    v4 = __cpu_features__.get("X86_V4", __cpu_features__.get("AVX512_SKX", False))  # NumPy >= 2.4 / older names
    tier = "x86_v4" if v4 else "below_v4"
    return f"{platform.machine().lower()}/numpy-{'.'.join(np.__version__.split('.')[:2])}/{tier}"


def _by_cpu(**digests: str) -> dict[str, str]:
    """Digests keyed by numpy_math_key(); other machines skip, naming the key."""
    return {f"x86_64/numpy-2.4/{tier}": digest for tier, digest in digests.items()}


GOLDEN_DTYPES = [
    ("he_normal", (64, 32), 0, "dense_1.weights", "block/1", "float64", _by_cpu(below_v4="b5b89a80893877c6b4aa4b90ee376bbbc731db10ecf0ca06ca0c7e61d155081b", x86_v4="b5b89a80893877c6b4aa4b90ee376bbbc731db10ecf0ca06ca0c7e61d155081b")),  # noqa: E501
    ("glorot_uniform", (64, 32), 0, "dense_1.weights", "block/1", "float64", "6b931cf2508d88617f88cba7967f882d5889117b670ef5dbb99ab2526f1e0a9f"),  # noqa: E501
    ({"name": "lecun_normal", "truncated": True}, (128, 64), 7, "dense_2.weights", "block/1", "float64", _by_cpu(below_v4="014cb887ba2a55c40f11b7e224011247b8fb50c9d878a57ce37f0d90e84fb2ff", x86_v4="e256a82a5f20c20218fd19ba6c1f80a51f47df257edc86464c79823677ecc18b")),  # noqa: E501
    ("he_normal", (50, 20), 9, "x", "legacy", "float64", "dd0df83ad426e8801c6025103de5dc7316fc57538bdf61055b55c6cbe86db4c0"),  # noqa: E501
    (_tn(2.0, 3.0), (5000,), 11, "tail", "block/1", "float32", "952b45d9fe21759bd7c315a00490a154f88e2cbe2fde794f976bba475301cbad"),  # noqa: E501
    (_tn(2.0, 3.0), (5000,), 11, "tail", "block/1", "float64", "0399ec2c91af5a23625cb9d114ce6306098a33992bb1849ac10b8061a7254776"),  # noqa: E501
    (_tn(-3.0, -2.5), (5000,), 12, "tail", "block/1", "float32", "3daa24e20f4a808591fc580a7061b9677d4b716aac6e403c91e596a3804bc9eb"),  # noqa: E501
    (_tn(-0.125, 0.125), (5000,), 13, "narrow", "block/1", "float32", "da1b63baa6e7685b492944f62725999d5505182595c9760b40b2d1e2dada9211"),  # noqa: E501
    (_tn(-0.3125, 0.3125), (5000,), 14, "band", "block/1", "float32", "8dfda3a2151553a883a695ee6546ecfc0408bec64a810b4024bbe9fcfee72ca2"),  # noqa: E501
    (_tn(0.0, 0.75), (5000,), 15, "band", "block/1", "float32", "d08f8828263dda7e1b5ed409fd785b75a9d2fff7a7f9caca92e08e7748d108d4"),  # noqa: E501
    (_tn(0.0, 0.75), (5000,), 15, "band", "block/1", "float64", _by_cpu(below_v4="abcd12c65aa2046f5383d21dcbab0e147a7a7b3cc3e0674526bee3436429294e", x86_v4="7f31f2404169cc6a6ab96f32020afa65ad98cc1276cf57e202f3c1f1833b5016")),  # noqa: E501
]  # fmt: skip


@pytest.mark.usefixtures("transforms")
@pytest.mark.parametrize(("config", "shape", "seed", "path", "mode", "dtype", "digest"), GOLDEN_DTYPES,
                         ids=lambda v: str(v)[:24])  # fmt: skip
def test_golden_digest_float64_and_truncation_paths(config, shape, seed, path, mode, dtype, digest):
    if isinstance(digest, dict):
        key = numpy_math_key()
        if key not in digest:
            pytest.skip(f"stream 1 float64 normals use NumPy's float64 log/cos/sin; no digest recorded for {key}")
        digest = digest[key]
    values = get_initializer(config)(shape, stream(mode, seed, path), dtype)
    assert values.dtype == dtype
    assert hashlib.sha256(values.tobytes()).hexdigest() == digest


# stream version 2 (ziggurat normals): every normal family, float32 and float64, the truncation paths
# (the uniform-proposal tails keep version 1's bytes), a tensor of several blocks, and truncation at
# +-3 std (normal proposals, several redraw rounds).
GOLDEN_V2 = [
    ("he_normal", (3, 3, 16, 32), 42, "conv2d_1.weights", "float32", "312f01fcff0ed7491fd2ebf98b663f616b51ff31710201968bb64e4caab35876"),  # noqa: E501
    ({"name": "lecun_normal", "truncated": True}, (128, 64), 7, "dense_2.weights", "float32", "32e2523eb5936e31082c20cacdf717309e88cef66ed0fa086849dea0ae0493b5"),  # noqa: E501
    ("orthogonal", (40, 30), 3, "dense_3.weights", "float32", "4436b84fd400f738cd325fa5c80ec9ecc72c231b3667930681ba952ea05e5fba"),  # noqa: E501
    ({"name": "normal", "std": 0.02}, (600_000,), 5, "big.weights", "float32", "4dd71f2b70fc8228391e4bc3fa5c8863d7022effff7086ebfe24c3af1d29b323"),  # noqa: E501
    ("he_normal", (64, 32), 0, "dense_1.weights", "float64", "14558ea049659f8e4327a8ee6fd1ad25e08d3d8722769ebeb4a86b43715239bc"),  # noqa: E501
    ({"name": "lecun_normal", "truncated": True}, (128, 64), 7, "dense_2.weights", "float64", "f8b50b746d9ab70cb081ade227afc3cda42f300c890f426f6bf6770f33baf5dc"),  # noqa: E501
    ({"name": "normal", "std": 0.02}, (300_000,), 5, "big.weights", "float64", "d93fe5fff462907f4d4a244193b0ce2c280cb8522763acc17dd70747452880a9"),  # noqa: E501
    (_tn(2.0, 3.0), (5000,), 11, "tail", "float32", "952b45d9fe21759bd7c315a00490a154f88e2cbe2fde794f976bba475301cbad"),
    (_tn(2.0, 3.0), (5000,), 11, "tail", "float64", "0399ec2c91af5a23625cb9d114ce6306098a33992bb1849ac10b8061a7254776"),
    (_tn(0.0, 0.75), (5000,), 15, "band", "float32", "ad32a9ce2dd2dfe1ca78c2f4232e09b7d3ac4c2155a26ee299ebca4d1340fe8f"),  # noqa: E501
    (_tn(0.0, 0.75), (5000,), 15, "band", "float64", "e4d716ecba410040e3d1ad42991e6c2e9d0465c2c0d5bcb3fda3e434f8ed4d4e"),  # noqa: E501
    (_tn(-3.0, 3.0), (300_000,), 16, "wide", "float32", "24f55d6402554ca0f2969e46cd81d3e76e4d3eb3322d1220ec82597df057af76"),  # noqa: E501
]  # fmt: skip


@pytest.mark.usefixtures("transforms")
@pytest.mark.parametrize(("config", "shape", "seed", "path", "dtype", "digest"), GOLDEN_V2, ids=lambda v: str(v)[:24])
def test_golden_digest_stream_version_2(config, shape, seed, path, dtype, digest):
    values = get_initializer(config)(shape, stream("block/2", seed, path), dtype)
    assert hashlib.sha256(values.tobytes()).hexdigest() == digest


@pytest.mark.usefixtures("transforms")
@pytest.mark.parametrize("config", ["glorot_uniform", "he_uniform", {"name": "uniform", "low": -0.3, "high": 0.7}],
                         ids=str)  # fmt: skip
def test_version_2_keeps_uniform_bytes(config):
    """Stream version 2 changes only the normal family: uniform tensors keep version 1's bytes."""
    init = get_initializer(config)
    for dtype in ("float32", "float64"):
        v1 = init((300_000,), stream("block/1", 5, "u"), dtype)
        assert v1.tobytes() == init((300_000,), stream("block/2", 5, "u"), dtype).tobytes()


@pytest.mark.usefixtures("transforms")
def test_plain_block_is_version_1():
    """``rng: block`` keeps stream version 1 (no existing spec's bytes change); version 2 is opt-in."""
    assert block_version("block") == 1
    a = get_initializer("he_normal")((50, 20), BlockStream(9, "x"))
    assert a.tobytes() == get_initializer("he_normal")((50, 20), stream("block/1", 9, "x")).tobytes()


PROBE = """
import hashlib, sys
import numpy as np
from netspec.init.initializers import get_initializer
from netspec.init.streams import BlockStream
digests = []
configs = ["he_normal", {"name": "he_normal", "truncated": True}]
configs.append({"name": "truncated_normal", "lower": 2.0, "upper": 3.0})
cases = [(c, 1, "float32") for c in configs] + [(c, 2, d) for c in configs for d in ("float32", "float64")]
for config, version, dtype in cases:
    values = get_initializer(config)((300_000,), BlockStream(5, "probe", version=version), dtype, fans=None)
    digests.append(hashlib.sha256(values.tobytes()).hexdigest())
x = np.linspace(1e-6, 1, 4096, dtype=np.float32)
digests.append(hashlib.sha256(np.log(x).tobytes() + np.sin(x).tobytes()).hexdigest())
print(" ".join(digests))
"""


def test_normal_bytes_do_not_depend_on_numpys_simd_dispatch():
    """Run the normal-family samplers with NumPy's dispatched SIMD kernels (AVX2, AVX-512, ...) disabled:
    NumPy's own float32 log/sin change on this machine, netspec's values must not (stream version 1 in
    float32; version 2, the ziggurat, in float32 and float64)."""
    import os
    import subprocess
    import sys

    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    dispatched = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    if not dispatched:
        pytest.skip("this NumPy build dispatches no SIMD target this CPU has")

    def probe(disabled):
        # the NumPy transforms: the compiled kernels do not use NumPy's dispatched loops at all
        env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(disabled), "NETSPEC_KERNELS": "numpy"}
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
        return out.stdout.split()

    default, baseline = probe([]), probe(dispatched)
    assert len(default) == 10
    assert default[:9] == baseline[:9]  # stream version 1 (float32), version 2 (float32 and float64)
    if default[9] == baseline[9]:
        pytest.skip("NumPy's own log/sin did not change either: the probe shows nothing on this CPU")


# bfloat16 and float16 (dtype: bfloat16 | float16): the float32 tensor rounded to nearest even, so these
# are the float32 cases above (and a multi-block normal in both stream versions) rounded; the rounding's own
# correctness is checked against ml_dtypes, NumPy and torch in tests/test_precision.py.
GOLDEN_HALF = [
    ("glorot_uniform", (64, 32), 0, "dense_1.weights", "block/1", "bfloat16", "74ff4f4922099c281262cdd538f9be25043f435a05394fc222791d22814e8a0d"),  # noqa: E501
    ("glorot_uniform", (64, 32), 0, "dense_1.weights", "block/1", "float16", "d52c40bae1598a9344844c2cedf562148417558c0847864c47b8c71cdfc07e05"),  # noqa: E501
    ("he_normal", (3, 3, 16, 32), 42, "conv2d_1.weights", "block/1", "bfloat16", "138170efda527c80a9c563fd1ec6e6ede6d4c8e472a95b3f7ce3c647cc7ed824"),  # noqa: E501
    ("he_normal", (3, 3, 16, 32), 42, "conv2d_1.weights", "block/1", "float16", "c85d278715fa542b7c2ea0a5070a391869715b1540ddd70a4f45f2a78e5e032b"),  # noqa: E501
    ({"name": "lecun_normal", "truncated": True}, (128, 64), 7, "dense_2.weights", "block/1", "bfloat16", "147de34eb3f30dd4128cdbd7abf63dd8c8556070fc029d01d01bb729624542dd"),  # noqa: E501
    ({"name": "lecun_normal", "truncated": True}, (128, 64), 7, "dense_2.weights", "block/1", "float16", "c0e714c5d053dd9651d8f289cea8322dfced7de3811b32d22b2f9a709ecc5e99"),  # noqa: E501
    ({"name": "uniform", "low": -0.3, "high": 0.7}, (1000,), 1, "bias", "block/1", "bfloat16", "1b8f4a811c5c9b5a5211fd5fc9eac8b15c35d7f2ef0f15cd15525767d47ea549"),  # noqa: E501
    ({"name": "uniform", "low": -0.3, "high": 0.7}, (1000,), 1, "bias", "block/1", "float16", "5c4b1a37bfed5c9aa1c8eddcfb483824b1a47fa5aac42c3a7d1b64aec3e84e67"),  # noqa: E501
    ({"name": "normal", "std": 0.02}, (600_000,), 5, "big.weights", "block/1", "bfloat16", "6efeb2cbce589db2d6bfc9ae69b609d9fe5dee9b9a8dd648ca780416978ac386"),  # noqa: E501
    ({"name": "normal", "std": 0.02}, (600_000,), 5, "big.weights", "block/1", "float16", "0901b95efabc00438d7a8330e09f02d8339dffa9d3e1fc58cb8c6850ece15a93"),  # noqa: E501
    ({"name": "normal", "std": 0.02}, (600_000,), 5, "big.weights", "block/2", "bfloat16", "a8549219a3b79e2d831b3ef76c1608bbf2e8da7e089fbdf7524d02b9ea324a92"),  # noqa: E501
    ({"name": "normal", "std": 0.02}, (600_000,), 5, "big.weights", "block/2", "float16", "f8e53a99d4d540e7a72d0674c70f19185c6b79f496db08f93b35f6d904cd639a"),  # noqa: E501
    ("orthogonal", (40, 30), 3, "dense_3.weights", "block/1", "bfloat16", "bc5b9df48f45183ddc59a418bead1acf00858ca96418fa1fd138ae9bbf56408d"),  # noqa: E501
    ("orthogonal", (40, 30), 3, "dense_3.weights", "block/1", "float16", "3fae635bbc0bad28223b4409886dae23478c8c438389a2115164f824e9bc5582"),  # noqa: E501
]  # fmt: skip


@pytest.mark.usefixtures("transforms")
@pytest.mark.parametrize(("config", "shape", "seed", "path", "mode", "precision", "digest"), GOLDEN_HALF,
                         ids=lambda v: str(v)[:24])  # fmt: skip
def test_golden_digest_half_types(config, shape, seed, path, mode, precision, digest):
    from netspec.init.precision import byte_view, to_storage

    values = to_storage(get_initializer(config)(shape, stream(mode, seed, path), "float32"), precision)
    assert values.dtype.name == precision
    assert hashlib.sha256(byte_view(values)).hexdigest() == digest
