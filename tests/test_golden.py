"""Golden digests: the bytes netspec produces are pinned; changing them must be deliberate.

Uniform-family bytes depend only on exact IEEE arithmetic. Normal-family bytes
also depend on NumPy's float32 log/sin/cos and orthogonal on LAPACK's QR; a
digest change there on a new platform is reported, not silently accepted
(see README, "Reproducibility").
"""

import hashlib

import pytest

from netspec.initializers import get_initializer
from netspec.streams import BlockStream, LegacyStream

GOLDEN = [
    ("glorot_uniform", (64, 32), 0, "dense_1.weights", "block", "551ec069700a278b081a37b3d18a5fa1d36cb556aa503e2f7bfdca19ae1813cd"),  # noqa: E501
    ("he_normal", (3, 3, 16, 32), 42, "conv2d_1.weights", "block", "5ffb590146debead469211b96723e2c3d1781d0f4bf0dc5372132553e743dd7e"),  # noqa: E501
    ({"name": "lecun_normal", "truncated": True}, (128, 64), 7, "dense_2.weights", "block", "8d7ad7bc9ff159052e4e1c76a712b746888ff1488633f44f70364f19fae13fb0"),  # noqa: E501
    ({"name": "uniform", "low": -0.3, "high": 0.7}, (1000,), 1, "bias", "block", "6884e4c05d48e621dcc9359ec03d61b44871f9299497960cc5aa642a83334447"),  # noqa: E501
    ("orthogonal", (40, 30), 3, "dense_3.weights", "block", "93a9fa01f0726d6b556eb24342fc4095532167f642c32a124f45a6d0229cefc7"),  # noqa: E501
    ("he_uniform", (300000,), 5, "big.weights", "block", "e94fb19f2d0f38684038adf7f90a10f350880deac1b5e008cc8056e293443ba4"),  # noqa: E501
    ("glorot_uniform", (4, 5), 0, "dense_1.weights", "legacy", "24927711c4d2cba72cd5a87762745d91b862d877cd9074aa28f0ecd6980680eb"),  # noqa: E501
    ({"name": "truncated_normal", "std": 0.5}, (50, 20), 9, "x", "legacy", "b29251ce7bcddfbf7a0f3686a58f178914037290640fe4019d913df21db459ea"),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize(("config", "shape", "seed", "path", "mode", "digest"), GOLDEN, ids=lambda v: str(v)[:24])
def test_golden_digest(config, shape, seed, path, mode, digest):
    stream = BlockStream(seed, path) if mode == "block" else LegacyStream(seed)
    values = get_initializer(config)(shape, stream)
    assert hashlib.sha256(values.tobytes()).hexdigest() == digest
