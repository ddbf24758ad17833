"""Conformance with PyTorch (the ``torch`` extra: ``pip install torch==2.13.0``).

Limits and standard deviations are compared exactly by replaying torch's own
generator: ``torch.nn.init.xavier_uniform_(t, generator=g)`` equals
``t.uniform_(-bound, bound, generator=g)`` for the same seed iff netspec's bound
is torch's bound (to float precision). Shapes are transposed from netspec's
``(*kernel, in, out)`` to torch's ``(out, in, *kernel)``.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netspec.init.distributions import Normal, Uniform
from netspec.init.fans import compute_fans, torch_layout
from netspec.init.initializers import get_initializer
from netspec.nn.activations import calculate_gain
from netspec.testing import assert_follows, conv_shapes, dense_shapes

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
init = torch.nn.init

shapes = st.one_of(dense_shapes(max_fan=512, max_size=4096), conv_shapes(max_size=4096))


def replay(fill, torch_shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.empty(torch_shape)
    fill(t, g)
    return t


def same_uniform(torch_fn, dist, torch_shape):
    assert isinstance(dist, Uniform) and dist.low == -dist.high
    expected = replay(lambda t, g: torch_fn(t, g), torch_shape)
    ours = replay(lambda t, g: t.uniform_(-dist.high, dist.high, generator=g), torch_shape)
    assert torch.allclose(expected, ours, rtol=1e-6, atol=0)


def same_normal(torch_fn, dist, torch_shape):
    assert isinstance(dist, Normal)
    expected = replay(lambda t, g: torch_fn(t, g), torch_shape)
    ours = replay(lambda t, g: t.normal_(dist.loc, dist.scale, generator=g), torch_shape)
    assert torch.allclose(expected, ours, rtol=1e-6, atol=0)


@given(shapes)
def test_fans_equal_torch(shape):
    fi, fo = init._calculate_fan_in_and_fan_out(torch.empty(torch_layout(shape)))
    f = compute_fans(shape)
    assert (f.fan_in, f.fan_out) == (fi, fo)


@pytest.mark.parametrize(
    ("nonlinearity", "param"),
    [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
     ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)), ("selu", None)],
)  # fmt: skip
def test_gains_equal_torch(nonlinearity, param):
    assert calculate_gain(nonlinearity, param) == init.calculate_gain(nonlinearity, param)


@settings(max_examples=20)
@given(shapes, st.floats(0.25, 3.0))
def test_glorot_equals_torch_xavier(shape, gain):
    ts = torch_layout(shape)
    uni = get_initializer({"name": "glorot_uniform", "gain": gain}).declared(shape)
    same_uniform(lambda t, g: init.xavier_uniform_(t, gain=gain, generator=g), uni, ts)
    nor = get_initializer({"name": "glorot_normal", "gain": gain}).declared(shape)
    same_normal(lambda t, g: init.xavier_normal_(t, gain=gain, generator=g), nor, ts)


@settings(max_examples=20)
@given(
    shapes,
    st.floats(0, 3),
    st.sampled_from(["fan_in", "fan_out"]),
    st.sampled_from(["leaky_relu", "relu", "tanh", "linear", "selu"]),
)
def test_torch_kaiming_equals_torch(shape, a, mode, nonlinearity):
    ts = torch_layout(shape)
    params = {"a": a, "mode": mode, "nonlinearity": nonlinearity}
    uni = get_initializer({"name": "torch_kaiming_uniform", **params}).declared(shape)
    same_uniform(lambda t, g: init.kaiming_uniform_(t, generator=g, **params), uni, ts)
    nor = get_initializer({"name": "torch_kaiming_normal", **params}).declared(shape)
    same_normal(lambda t, g: init.kaiming_normal_(t, generator=g, **params), nor, ts)


@settings(max_examples=20)
@given(shapes)
def test_presets_equal_their_torch_spelling(shape):
    ts = torch_layout(shape)
    he = get_initializer("he_uniform").declared(shape)
    same_uniform(lambda t, g: init.kaiming_uniform_(t, nonlinearity="relu", generator=g), he, ts)
    he_n = get_initializer("he_normal").declared(shape)
    same_normal(lambda t, g: init.kaiming_normal_(t, nonlinearity="relu", generator=g), he_n, ts)
    lecun = get_initializer("lecun_uniform").declared(shape)
    same_uniform(lambda t, g: init.kaiming_uniform_(t, nonlinearity="linear", generator=g), lecun, ts)


@settings(max_examples=20)
@given(shapes)
def test_xavier_simple_is_torch_linear_default(shape):
    ts = torch_layout(shape)
    dist = get_initializer("xavier_simple").declared(shape)
    same_uniform(lambda t, g: init.kaiming_uniform_(t, a=math.sqrt(5), generator=g), dist, ts)


def test_truncated_normal_abs_has_torch_bounds():
    g = torch.Generator().manual_seed(0)
    t = init.trunc_normal_(torch.empty(100_000), mean=0.5, std=2.0, a=-1.0, b=3.0, generator=g)
    dist = get_initializer({"name": "truncated_normal_abs", "mean": 0.5, "std": 2.0, "a": -1.0, "b": 3.0}).declared(
        (1,)
    )
    assert dist.support == (-1.0, 3.0)
    assert float(t.min()) >= -1.0 and float(t.max()) <= 3.0
    # torch's values follow the declared truncated normal: same mean and variance (z within 5 SE)
    assert_follows(t.double().numpy(), dist)


def test_orthogonal_has_torch_gram():
    q = get_initializer({"name": "orthogonal", "gain": 2.0})(
        (30, 20), __import__("netspec.init.streams").init.streams.BlockStream(0, "q")
    )
    t = init.orthogonal_(torch.empty(20, 30), gain=2.0).numpy()
    assert np.allclose(t @ t.T, 4 * np.eye(20), atol=1e-4)
    assert np.allclose(q.T @ q, 4 * np.eye(20), atol=1e-4)
