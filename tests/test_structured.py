import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netspec.check.checks import orthogonality_error
from netspec.errors import InitializerError
from netspec.init.initializers import get_initializer
from netspec.init.streams import BlockStream, LegacyStream


@given(rows=st.integers(1, 64), cols=st.integers(1, 64), gain=st.floats(0.1, 3.0), seed=st.integers(0, 2**32))
def test_orthogonal_columns_or_rows_are_orthonormal_times_gain(rows, cols, gain, seed):
    q = get_initializer({"name": "orthogonal", "gain": gain})((rows, cols), BlockStream(seed, "w"))
    assert q.shape == (rows, cols)
    assert orthogonality_error(q, gain) < 1e-5 * gain**2 * max(rows, cols)


def test_orthogonal_conv_kernel_is_flattened_to_rows_by_output_channels():
    q = get_initializer("orthogonal")((3, 3, 8, 16), BlockStream(0, "c"))
    flat = q.reshape(-1, 16)
    assert np.allclose(flat.T @ flat, np.eye(16), atol=1e-5)


def test_orthogonal_sign_correction_makes_diag_r_positive():
    # with Q <- Q sign(diag R), the QR of the result has a positive diagonal: Haar measure
    q = get_initializer("orthogonal")((50, 20), BlockStream(1, "q")).astype(np.float64)
    z = BlockStream(1, "q").normal((50, 20), 0.0, 1.0, np.float32).astype(np.float64)
    # Q's columns are Z's Gram-Schmidt basis with positive coefficients: Q^T Z is upper triangular, diag > 0
    r = q.T @ z
    assert np.all(np.diag(r) > 0)
    assert np.allclose(np.tril(r, -1), 0, atol=1e-4)


def test_orthogonal_entries_have_variance_gain_squared_over_max_dim():
    dist = get_initializer({"name": "orthogonal", "gain": 2.0}).declared((300, 100))
    assert dist.variance == pytest.approx(4.0 / 300)


def test_orthogonal_works_in_legacy_mode():
    q = get_initializer("orthogonal")((10, 4), LegacyStream(0))
    assert orthogonality_error(q, 1.0) < 1e-5


def test_identity_and_dirac_are_exact():
    eye = get_initializer({"name": "identity", "gain": 0.5})((3, 4), BlockStream(0, "i"))
    assert np.array_equal(eye, 0.5 * np.eye(3, 4, dtype=np.float32))
    k = get_initializer("dirac")((3, 3, 2, 4), BlockStream(0, "k"))
    assert k.sum() == 2 and k[1, 1, 0, 0] == 1 and k[1, 1, 1, 1] == 1


def test_dirac_conv_passes_channels_through():
    k = get_initializer("dirac")((3, 4, 4), BlockStream(0, "k"))  # conv1d kernel 3, 4 -> 4 channels
    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    padded = np.pad(x, ((1, 1), (0, 0)))
    y = sum(padded[i : i + 10] @ k[i] for i in range(3))
    assert np.allclose(y, x)


@pytest.mark.parametrize(
    ("config", "shape", "message"),
    [
        ("orthogonal", (5,), "rank >= 2"),
        ("identity", (2, 2, 2), "2-D"),
        ("dirac", (4, 4), "conv kernel"),
    ],
)
def test_structured_shape_errors(config, shape, message):
    with pytest.raises(InitializerError, match=message):
        get_initializer(config)(shape, BlockStream(0, "x"))
