import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netspec.check.checks import check_orthogonal, orthogonality_error, orthogonality_tolerance
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


# ---------------------------------------------------------------- the orthogonality check's tolerance

U32, U64 = 2.0**-24, 2.0**-53  # unit roundoffs


def expected_tolerance(rows, cols, u, gain):
    """The rounding bound derived in ``orthogonality_tolerance``: each entry of the float64 QR's Q is rounded to
    the dtype and multiplied by gain there (relative error <= 2u + u^2 per entry, so <= 4u + O(u^2) per Gram
    entry by Cauchy-Schwarz), plus the float64 QR's own loss of orthogonality (<= 8 sqrt(m k) u64) and the
    float64 Gram sums (<= m u64)."""
    m, k = max(rows, cols), min(rows, cols)
    return gain**2 * (4 * u + (8 * math.sqrt(m * k) + m) * U64)


@pytest.mark.parametrize(("shape", "dtype", "u"), [((64, 64), np.float32, U32), ((1000, 50), np.float64, U64),
                                                   ((3, 3, 8, 16), np.float32, U32)])  # fmt: skip
def test_orthogonality_tolerance_is_the_rounding_bound(shape, dtype, u):
    rows, cols = math.prod(shape[:-1]), shape[-1]
    assert orthogonality_tolerance(shape, dtype, 1.5) == pytest.approx(expected_tolerance(rows, cols, u, 1.5))
    # float32: 4 u dominates, 2.4e-7 for gain 1 -- 200 times tighter than the 4.8e-5 that let a 1e-4 nudge through
    assert orthogonality_tolerance((64, 64), np.float32, 1.0) < 2.5e-7


@given(rows=st.integers(1, 64), cols=st.integers(1, 64), gain=st.floats(0.1, 3.0), seed=st.integers(0, 2**32),
       dtype=st.sampled_from([np.float32, np.float64]))  # fmt: skip
def test_real_orthogonal_tensors_pass_the_exact_check(rows, cols, gain, seed, dtype):
    q = get_initializer({"name": "orthogonal", "gain": gain})((rows, cols), BlockStream(seed, "w"), dtype)
    assert check_orthogonal(q, gain).ok


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1000, 50), (50, 1000), (3, 3, 64, 128), (256, 256)])
def test_real_orthogonal_tensors_of_large_shapes_pass(shape, dtype):
    for gain in (1.0, 5 / 3, math.sqrt(2)):
        q = get_initializer({"name": "orthogonal", "gain": gain})(shape, BlockStream(7, "big"), dtype)
        assert check_orthogonal(q, gain).ok, check_orthogonal(q, gain).detail


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_nudge_just_above_the_tolerance_fails(dtype):
    """Nudging q[i, j] by d moves the Gram entry (j, j) by 2 q[i, j] d + d^2: choose d so that this is 1.5 times the
    tolerance plus the matrix's own error; the check must fail."""
    gain = 1.0
    q = get_initializer("orthogonal")((64, 64), BlockStream(3, "nudge"), dtype)
    tol = orthogonality_tolerance(q.shape, q.dtype, gain)
    i, j = np.unravel_index(np.argmax(np.abs(q)), q.shape)
    d = (1.5 * tol + orthogonality_error(q, gain)) / (2 * abs(float(q[i, j])))
    q[i, j] += dtype(math.copysign(d, q[i, j]))
    assert not check_orthogonal(q, gain).ok


def test_a_1e_4_nudge_of_a_64x64_float32_orthogonal_matrix_fails():
    q = get_initializer("orthogonal")((64, 64), BlockStream(0, "ortho.weights"))
    q[0, 0] += np.float32(1e-4)
    result = check_orthogonal(q, 1.0)
    assert not result.ok, result.detail
