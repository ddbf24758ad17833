import math

import pytest
from hypothesis import given

from netspec.errors import InitializerError
from netspec.init.fans import Fans, compute_fans, torch_layout
from netspec.testing import conv_shapes, dense_shapes


def torch_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """PyTorch's _calculate_fan_in_and_fan_out, written out for a (out, in, *k) shape."""
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def test_dense_fans_are_rows_then_columns():
    assert compute_fans((4, 5)) == Fans(4, 5)


def test_conv2d_fans_multiply_channels_by_receptive_field():
    assert compute_fans((3, 3, 16, 32)) == Fans(3 * 3 * 16, 3 * 3 * 32, 9)


def test_vector_and_scalar_fans():
    assert compute_fans((7,)) == Fans(7, 7)
    assert compute_fans(()) == Fans(1, 1)


@given(dense_shapes())
def test_dense_fans_match_torch_after_transpose(shape):
    f = compute_fans(shape)
    assert (f.fan_in, f.fan_out) == torch_fans(torch_layout(shape))


@given(conv_shapes())
def test_conv_fans_match_torch_after_transpose(shape):
    f = compute_fans(shape)
    assert (f.fan_in, f.fan_out) == torch_fans(torch_layout(shape))
    assert f.receptive_field == math.prod(shape[:-2])


@pytest.mark.parametrize(
    ("mode", "expected"), [("fan_in", 8.0), ("fan_out", 2.0), ("fan_avg", 5.0), ("fan_geo_avg", 4.0)]
)
def test_modes(mode, expected):
    assert Fans(8, 2).for_mode(mode) == expected


@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (3, 3, 0, 4)])
def test_zero_dimensions_are_refused(shape):
    with pytest.raises(InitializerError, match="positive"):
        compute_fans(shape)


def test_zero_fans_are_refused():
    with pytest.raises(InitializerError, match="fan_in must be a positive integer, got 0"):
        Fans(0, 3)


def test_unknown_mode_is_refused():
    with pytest.raises(InitializerError, match="unknown mode 'fan_mean'"):
        Fans(1, 1).for_mode("fan_mean")
