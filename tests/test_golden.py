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
    ("glorot_uniform", (64, 32), 0, "dense_1.weights", "block", "7d6847a6ca50e7dba9800f6f8e9d2c7b0777a7ff4c6754a82fe078cd51a9c79e"),  # noqa: E501
    ("he_normal", (3, 3, 16, 32), 42, "conv2d_1.weights", "block", "30d90f9ee9fff5f1c3557634d0b0b07ef450591dd909f13c1e25be8c42bd1c6f"),  # noqa: E501
    ({"name": "lecun_normal", "truncated": True}, (128, 64), 7, "dense_2.weights", "block", "fd47b85b339c7c6264af1bf68b211f2e54dd856b62fd819605682c0bcc4b066b"),  # noqa: E501
    ({"name": "uniform", "low": -0.3, "high": 0.7}, (1000,), 1, "bias", "block", "dda93b4ded83d454dca30841aded93d9e9068c86e79e6fca54a364ddd652286a"),  # noqa: E501
    ("orthogonal", (40, 30), 3, "dense_3.weights", "block", "811a83cad58e11068f0cc4c291b2164d323b5252f4496a76d291e3fd47ea6c28"),  # noqa: E501
    ("he_uniform", (300000,), 5, "big.weights", "block", "26fd69ea503591c12edd2f09ad76a41de835aa59e71d154bd17708708d5a7fb4"),  # noqa: E501
    ("glorot_uniform", (4, 5), 0, "dense_1.weights", "legacy", "24927711c4d2cba72cd5a87762745d91b862d877cd9074aa28f0ecd6980680eb"),  # noqa: E501
    ({"name": "truncated_normal", "std": 0.5}, (50, 20), 9, "x", "legacy", "b29251ce7bcddfbf7a0f3686a58f178914037290640fe4019d913df21db459ea"),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize(("config", "shape", "seed", "path", "mode", "digest"), GOLDEN, ids=lambda v: str(v)[:24])
def test_golden_digest(config, shape, seed, path, mode, digest):
    stream = BlockStream(seed, path) if mode == "block" else LegacyStream(seed)
    values = get_initializer(config)(shape, stream)
    assert hashlib.sha256(values.tobytes()).hexdigest() == digest
