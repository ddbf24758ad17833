"""Spatial layers without parameters: NumPy forward vs PyTorch, static shapes, located shape errors."""

import numpy as np
import pytest

import netspec
from netspec.errors import SpecError

torch = pytest.importorskip("torch")
F = torch.nn.functional


def run(shape, layer, x):
    net = netspec.loads(f"netspec: 1\ninput: {list(shape)}\nlayers:\n  - {layer}\n", "s.yaml")
    y = net.forward(x, {})
    assert y.shape[1:] == net.output_shape  # static shape = forward shape
    return y


def channels_first(x):
    return torch.from_numpy(np.moveaxis(x, -1, 1).copy())


def channels_last(t):
    return np.moveaxis(t.numpy(), 1, -1)


X = np.random.default_rng(0).standard_normal((2, 5, 4, 3)).astype(np.float32)


def test_global_pools_match_torch():
    # exact up to float32 summation order: |error| <= n * eps * max|x| for a mean of n = 20 values
    tol = 20 * np.finfo(np.float32).eps * np.abs(X).max()
    expected = torch.nn.AdaptiveAvgPool2d(1)(channels_first(X)).flatten(1).numpy()
    np.testing.assert_allclose(run((5, 4, 3), "{type: global_avg_pool}", X), expected, atol=tol)
    np.testing.assert_array_equal(run((5, 4, 3), "{type: global_max_pool}", X),
                                  torch.nn.AdaptiveMaxPool2d(1)(channels_first(X)).flatten(1).numpy())  # fmt: skip


def test_zero_pad_matches_torch():
    y = run((5, 4, 3), "{type: zero_pad, padding: [1, [0, 2]]}", X)
    expected = channels_last(F.pad(channels_first(X), (0, 2, 1, 1)))  # torch: last axis first
    np.testing.assert_array_equal(y, expected)
    assert run((5, 4, 3), "{type: zero_pad, padding: 2}", X).shape == (2, 9, 8, 3)


def test_upsample_matches_torch_nearest():
    y = run((5, 4, 3), "{type: upsample, size: [2, 3]}", X)
    expected = channels_last(torch.nn.Upsample(scale_factor=(2, 3), mode="nearest")(channels_first(X)))
    np.testing.assert_array_equal(y, expected)


def test_reshape_and_permute_match_torch():
    np.testing.assert_array_equal(run((5, 4, 3), "{type: reshape, shape: [-1, 6]}", X),
                                  torch.from_numpy(X).reshape(2, -1, 6).numpy())  # fmt: skip
    np.testing.assert_array_equal(run((5, 4, 3), "{type: permute, axes: [3, 1, 2]}", X),
                                  torch.from_numpy(X).permute(0, 3, 1, 2).numpy())  # fmt: skip


@pytest.mark.parametrize(
    ("shape", "layer", "needle"),
    [
        ([4], "{type: global_avg_pool}", "needs an input (*spatial, channels)"),
        ([5, 4, 3], "{type: reshape, shape: [7, -1]}", "cannot infer the -1"),
        ([5, 4, 3], "{type: reshape, shape: [7, 8]}", "holds 56 values, the input [5, 4, 3] has 60"),
        ([5, 4, 3], "{type: reshape, shape: [-1, -1]}", "at most one -1"),
        ([5, 4, 3], "{type: permute, axes: [1, 1, 2]}", "not a permutation of 1..3"),
        ([5, 4, 3], "{type: upsample, size: [2, 2, 2]}", "needs 2 value(s), one per spatial axis"),
        ([5, 4, 3], "{type: zero_pad, padding: [1]}", "needs 2 value(s)"),
    ],
)
def test_shape_errors_are_located(shape, layer, needle):
    with pytest.raises(SpecError) as info:
        netspec.loads(f"netspec: 1\ninput: {shape}\nlayers:\n  - {layer}\n", "s.yaml")
    (d,) = info.value.diagnostics
    assert needle in d.message and (d.line, d.path) == (4, "layers[0]")


def test_a_zero_in_reshape_is_a_schema_error():
    with pytest.raises(SpecError) as info:
        netspec.loads("netspec: 1\ninput: [4]\nlayers:\n  - {type: reshape, shape: [0, 4]}\n", "s.yaml")
    assert info.value.diagnostics[0].path == "layers[0].shape[0]"
