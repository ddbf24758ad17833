"""Golden digests: the bytes netspec produces are pinned; changing them must be deliberate.

float32 uniform and normal families use only integer and IEEE basic arithmetic,
so these digests hold on every machine; the orthogonal case also depends on
LAPACK's QR, so a change there on a new platform is reported, not silently
accepted (see README, "Reproducibility").
"""

import hashlib

import pytest

from netspec.init.initializers import get_initializer
from netspec.init.streams import BlockStream, LegacyStream

GOLDEN = [
    ("glorot_uniform", (64, 32), 0, "dense_1.weights", "block", "551ec069700a278b081a37b3d18a5fa1d36cb556aa503e2f7bfdca19ae1813cd"),  # noqa: E501
    ("he_normal", (3, 3, 16, 32), 42, "conv2d_1.weights", "block", "47955f454b3497ca36deac0d48a73023e0fa34de98473c35d2fddb6affe23b8a"),  # noqa: E501
    ({"name": "lecun_normal", "truncated": True}, (128, 64), 7, "dense_2.weights", "block", "392f8ba289f5567e6431b1717dacee65eb9eacecf74620e9aab37416fc1ac7c7"),  # noqa: E501
    ({"name": "uniform", "low": -0.3, "high": 0.7}, (1000,), 1, "bias", "block", "6884e4c05d48e621dcc9359ec03d61b44871f9299497960cc5aa642a83334447"),  # noqa: E501
    ("orthogonal", (40, 30), 3, "dense_3.weights", "block", "0cd20466514337e5772a0e073c447721e5babf93183b21704224e9156f80760f"),  # noqa: E501
    ("he_uniform", (300000,), 5, "big.weights", "block", "e94fb19f2d0f38684038adf7f90a10f350880deac1b5e008cc8056e293443ba4"),  # noqa: E501
    ("glorot_uniform", (4, 5), 0, "dense_1.weights", "legacy", "24927711c4d2cba72cd5a87762745d91b862d877cd9074aa28f0ecd6980680eb"),  # noqa: E501
    ({"name": "truncated_normal", "std": 0.5}, (50, 20), 9, "x", "legacy", "b29251ce7bcddfbf7a0f3686a58f178914037290640fe4019d913df21db459ea"),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize(("config", "shape", "seed", "path", "mode", "digest"), GOLDEN, ids=lambda v: str(v)[:24])
def test_golden_digest(config, shape, seed, path, mode, digest):
    stream = BlockStream(seed, path) if mode == "block" else LegacyStream(seed)
    values = get_initializer(config)(shape, stream)
    assert hashlib.sha256(values.tobytes()).hexdigest() == digest


def _tn(lower, upper):
    """Truncated normal with float32-exact bounds 0.25 + 0.5 x (std units x)."""
    return {"name": "truncated_normal", "mean": 0.25, "std": 0.5, "lower": lower, "upper": upper}


# float64 (53-bit uniforms; NumPy's float64 log/cos/sin for normals: pinned on x86-64 with NumPy 2.4, where
# they do not depend on SIMD dispatch) and every truncation sampler path: both tails and a narrow band
# (uniform proposals), 24.5% mass (uniform proposals, just below the 25% switch), 27.3% (normal proposals).
GOLDEN_DTYPES = [
    ("he_normal", (64, 32), 0, "dense_1.weights", "block", "float64", "b5b89a80893877c6b4aa4b90ee376bbbc731db10ecf0ca06ca0c7e61d155081b"),  # noqa: E501
    ("glorot_uniform", (64, 32), 0, "dense_1.weights", "block", "float64", "6b931cf2508d88617f88cba7967f882d5889117b670ef5dbb99ab2526f1e0a9f"),  # noqa: E501
    ({"name": "lecun_normal", "truncated": True}, (128, 64), 7, "dense_2.weights", "block", "float64", "014cb887ba2a55c40f11b7e224011247b8fb50c9d878a57ce37f0d90e84fb2ff"),  # noqa: E501
    ("he_normal", (50, 20), 9, "x", "legacy", "float64", "dd0df83ad426e8801c6025103de5dc7316fc57538bdf61055b55c6cbe86db4c0"),  # noqa: E501
    (_tn(2.0, 3.0), (5000,), 11, "tail", "block", "float32", "952b45d9fe21759bd7c315a00490a154f88e2cbe2fde794f976bba475301cbad"),  # noqa: E501
    (_tn(2.0, 3.0), (5000,), 11, "tail", "block", "float64", "0399ec2c91af5a23625cb9d114ce6306098a33992bb1849ac10b8061a7254776"),  # noqa: E501
    (_tn(-3.0, -2.5), (5000,), 12, "tail", "block", "float32", "3daa24e20f4a808591fc580a7061b9677d4b716aac6e403c91e596a3804bc9eb"),  # noqa: E501
    (_tn(-0.125, 0.125), (5000,), 13, "narrow", "block", "float32", "da1b63baa6e7685b492944f62725999d5505182595c9760b40b2d1e2dada9211"),  # noqa: E501
    (_tn(-0.3125, 0.3125), (5000,), 14, "band", "block", "float32", "8dfda3a2151553a883a695ee6546ecfc0408bec64a810b4024bbe9fcfee72ca2"),  # noqa: E501
    (_tn(0.0, 0.75), (5000,), 15, "band", "block", "float32", "d08f8828263dda7e1b5ed409fd785b75a9d2fff7a7f9caca92e08e7748d108d4"),  # noqa: E501
    (_tn(0.0, 0.75), (5000,), 15, "band", "block", "float64", "abcd12c65aa2046f5383d21dcbab0e147a7a7b3cc3e0674526bee3436429294e"),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize(("config", "shape", "seed", "path", "mode", "dtype", "digest"), GOLDEN_DTYPES,
                         ids=lambda v: str(v)[:24])  # fmt: skip
def test_golden_digest_float64_and_truncation_paths(config, shape, seed, path, mode, dtype, digest):
    stream = BlockStream(seed, path) if mode == "block" else LegacyStream(seed)
    values = get_initializer(config)(shape, stream, dtype)
    assert values.dtype == dtype
    assert hashlib.sha256(values.tobytes()).hexdigest() == digest


PROBE = """
import hashlib, sys
import numpy as np
from netspec.init.initializers import get_initializer
from netspec.init.streams import BlockStream
digests = []
configs = ["he_normal", {"name": "he_normal", "truncated": True}]
configs.append({"name": "truncated_normal", "lower": 2.0, "upper": 3.0})
for config in configs:
    values = get_initializer(config)((300_000,), BlockStream(5, "probe"), fans=None)
    digests.append(hashlib.sha256(values.tobytes()).hexdigest())
x = np.linspace(1e-6, 1, 4096, dtype=np.float32)
digests.append(hashlib.sha256(np.log(x).tobytes() + np.sin(x).tobytes()).hexdigest())
print(" ".join(digests))
"""


def test_normal_bytes_do_not_depend_on_numpys_simd_dispatch():
    """Run the normal-family samplers with NumPy's dispatched SIMD kernels (AVX2, AVX-512, ...) disabled:
    NumPy's own float32 log/sin change on this machine, netspec's values must not."""
    import os
    import subprocess
    import sys

    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    dispatched = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    if not dispatched:
        pytest.skip("this NumPy build dispatches no SIMD target this CPU has")

    def probe(disabled):
        env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(disabled)}
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
        return out.stdout.split()

    default, baseline = probe([]), probe(dispatched)
    assert default[:3] == baseline[:3]
    if default[3] == baseline[3]:
        pytest.skip("NumPy's own log/sin did not change either: the probe shows nothing on this CPU")
