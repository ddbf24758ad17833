"""Each initializer's values against the formula written out HERE, not in the library.

The expected distributions below are typed from the seed articles and the
framework sources, so a wrong formula in the library (a variance off by 2, a
limit off by sqrt 2, swapped fans, the wrong family, a missing truncation
correction) fails these tests; ``test_mutations.py`` shows that it does.
Statistics: see ``netspec.check.checks``: mean and variance tests at a false-alarm
probability of 5.7e-7 each (the two-sided tail of |z| = 5), exact for normals (z and
chi^2_n) and Bernstein bounds for bounded laws, valid at every n; the KS fit at p >= 1e-6;
n = 20,000 values per case (float32, and float64 with fewer examples). At that n the
variance test's acceptance interval for v / sigma^2 is about 1 ± 0.05 (normal) or
1 ± 0.035 (uniform), so a factor sqrt 2 on the std (ratio 2) or 1/sqrt 2 is far outside it.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netspec.init.distributions import Normal, TruncatedNormal, Uniform
from netspec.init.fans import Fans
from netspec.init.initializers import get_initializer
from netspec.init.streams import BlockStream, float_bounds
from netspec.testing import assert_follows, conv_shapes, fans, sample_values

KERAS_TRUNC_STD = 0.87962566103423978  # std of N(0,1) truncated to (-2, 2), from Keras/JAX sources


def sym(limit):
    return Uniform(-limit, limit)


def trunc(target_std):
    return TruncatedNormal(0.0, target_std / KERAS_TRUNC_STD, -2.0, 2.0)


# (config, expected distribution as a function of fan_in, fan_out)
FORMULAS = [
    ("glorot_uniform", lambda fi, fo: sym(math.sqrt(6 / (fi + fo)))),
    ("xavier_uniform", lambda fi, fo: sym(math.sqrt(6 / (fi + fo)))),
    ({"name": "glorot_uniform", "gain": 5 / 3}, lambda fi, fo: sym(5 / 3 * math.sqrt(6 / (fi + fo)))),
    ("glorot_normal", lambda fi, fo: Normal(0, math.sqrt(2 / (fi + fo)))),
    ({"name": "glorot_normal", "truncated": True}, lambda fi, fo: trunc(math.sqrt(2 / (fi + fo)))),
    ("he_uniform", lambda fi, fo: sym(math.sqrt(6 / fi))),
    ("kaiming_uniform", lambda fi, fo: sym(math.sqrt(6 / fi))),
    ("he_normal", lambda fi, fo: Normal(0, math.sqrt(2 / fi))),
    ({"name": "he_normal", "truncated": True}, lambda fi, fo: trunc(math.sqrt(2 / fi))),
    ("lecun_uniform", lambda fi, fo: sym(math.sqrt(3 / fi))),
    ("lecun_normal", lambda fi, fo: Normal(0, math.sqrt(1 / fi))),
    ({"name": "lecun_normal", "truncated": True}, lambda fi, fo: trunc(math.sqrt(1 / fi))),
    ("xavier_simple", lambda fi, fo: sym(1 / math.sqrt(fi))),
    ("caffe_xavier", lambda fi, fo: sym(math.sqrt(3 / fi))),
    ({"name": "caffe_xavier", "variance_norm": "fan_out"}, lambda fi, fo: sym(math.sqrt(3 / fo))),
    ({"name": "caffe_xavier", "variance_norm": "average"}, lambda fi, fo: sym(math.sqrt(6 / (fi + fo)))),
    ({"name": "caffe_msra", "variance_norm": "fan_out"}, lambda fi, fo: Normal(0, math.sqrt(2 / fo))),
    ("torch_kaiming_uniform", lambda fi, fo: sym(math.sqrt(2) * math.sqrt(3 / fi))),
    (
        {"name": "torch_kaiming_uniform", "a": math.sqrt(5)},  # nn.Linear's default: U(±1/sqrt(fan_in))
        lambda fi, fo: sym(1 / math.sqrt(fi)),
    ),
    (
        {"name": "torch_kaiming_normal", "mode": "fan_out", "nonlinearity": "relu"},
        lambda fi, fo: Normal(0, math.sqrt(2) / math.sqrt(fo)),
    ),
    (
        {"name": "torch_kaiming_normal", "nonlinearity": "tanh"},
        lambda fi, fo: Normal(0, (5 / 3) / math.sqrt(fi)),
    ),
    (
        {"name": "variance_scaling", "scale": 2.0, "mode": "fan_geo_avg", "distribution": "uniform"},
        lambda fi, fo: sym(math.sqrt(3 * 2.0 / math.sqrt(fi * fo))),
    ),
    (
        {"name": "variance_scaling", "scale": 0.5, "mode": "fan_out", "distribution": "normal"},
        lambda fi, fo: Normal(0, math.sqrt(0.5 / fo)),
    ),
    ({"name": "variance_scaling", "mode": "fan_avg"}, lambda fi, fo: trunc(math.sqrt(2 / (fi + fo)))),
    ({"name": "uniform", "low": -0.3, "high": 0.7}, lambda fi, fo: Uniform(-0.3, 0.7)),
    ("uniform", lambda fi, fo: sym(0.05)),
    ({"name": "normal", "mean": 1.0, "std": 0.5}, lambda fi, fo: Normal(1.0, 0.5)),
    (
        {"name": "truncated_normal", "mean": 0.5, "std": 2.0, "lower": -1.0, "upper": 3.0},
        lambda fi, fo: TruncatedNormal(0.5, 2.0, -1.0, 3.0),
    ),
    (
        {"name": "truncated_normal_abs", "mean": 0.0, "std": 1.0, "a": -1.0, "b": 0.5},
        lambda fi, fo: TruncatedNormal(0.0, 1.0, -1.0, 0.5),
    ),
    (
        {"name": "truncated_normal_abs", "mean": 0.0, "std": 0.02},  # bounds ±2 = ±100 std: no truncation
        lambda fi, fo: TruncatedNormal(0.0, 0.02, -100.0, 100.0),
    ),
]

# Truncation intervals (std units) that exercise each sampler path of ``streams.fill_truncated_standard``:
# the upper and lower tails and a narrow band use uniform proposals accepted with phi(z) / phi(peak);
# [-0.3125, 0.3125] holds 24.5% of the mass (just below the 25% switch: uniform proposals), [0, 0.75]
# holds 27.3% (normal proposals). The expected law is the textbook one: N(mean, std^2) restricted to
# [mean + lower std, mean + upper std]. The bounds (0.25 + 0.5 x) are exact in float32 (see
# test_float32_bounds_round_inward for the inexact case).
INTERVALS = [(2.0, 3.0), (-3.0, -2.5), (-0.125, 0.125), (-0.3125, 0.3125), (0.0, 0.75)]
FORMULAS += [
    (
        {"name": "truncated_normal", "mean": 0.25, "std": 0.5, "lower": lo, "upper": hi},
        lambda fi, fo, lo=lo, hi=hi: TruncatedNormal(0.25, 0.5, lo, hi),
    )
    for lo, hi in INTERVALS
]

IDS = [c if isinstance(c, str) else "-".join(str(v) for v in c.values()) for c, _ in FORMULAS]


def assert_same_distribution(declared, expected):
    assert type(declared) is type(expected)
    assert declared.support == pytest.approx(expected.support, rel=1e-12)
    assert declared.mean == pytest.approx(expected.mean, rel=1e-12, abs=1e-15)
    assert declared.variance == pytest.approx(expected.variance, rel=1e-9)


@pytest.mark.parametrize(("config", "formula"), FORMULAS, ids=IDS)
@given(f=fans(), seed=st.integers(0, 2**32 - 1))
def test_values_follow_the_written_formula(config, formula, f, seed):
    init = get_initializer(config)
    expected = formula(f.fan_in, f.fan_out)
    assert_same_distribution(init.declared((1,), f), expected)
    assert_follows(sample_values(init, f, seed=seed), expected)


@pytest.mark.parametrize(("config", "formula"), FORMULAS, ids=IDS)
@settings(max_examples=6)
@given(f=fans(), seed=st.integers(0, 2**32 - 1))
def test_values_follow_the_written_formula_in_float64(config, formula, f, seed):
    """float64 has its own transforms (53-bit uniforms, NumPy's float64 Box-Muller): same checks, same laws."""
    values = sample_values(get_initializer(config), f, seed=seed, dtype=np.float64)
    assert values.dtype == np.float64
    assert_follows(values, formula(f.fan_in, f.fan_out))


@pytest.mark.parametrize(("config", "formula"), FORMULAS[:13], ids=IDS[:13])
@given(shape=conv_shapes())
def test_real_conv_shapes_use_channel_times_receptive_field(config, formula, shape):
    receptive = math.prod(shape[:-2])
    expected = formula(shape[-2] * receptive, shape[-1] * receptive)
    init = get_initializer(config)
    assert_same_distribution(init.declared(shape), expected)
    values = init(shape, BlockStream(0, "conv.weights"))
    low, high = expected.support
    assert values.shape == shape and values.dtype == np.float32
    assert low <= values.min() and values.max() <= high


def test_glorot_demo_limit_from_seed_001():
    # seed 001: nin = 4, nout = 5 -> sd = sqrt(6/9) = 0.82
    dist = get_initializer("glorot_uniform").declared((4, 5))
    assert dist.support == pytest.approx((-math.sqrt(6 / 9), math.sqrt(6 / 9)))


def test_keras_truncation_constant_is_computed_not_hard_coded():
    dist = get_initializer({"name": "he_normal", "truncated": True}).declared((100, 10))
    assert dist.std == pytest.approx(math.sqrt(2 / 100), rel=1e-12)
    assert dist.scale * KERAS_TRUNC_STD == pytest.approx(math.sqrt(2 / 100), rel=1e-15)


def test_plain_truncated_normal_is_not_corrected():
    dist = get_initializer({"name": "truncated_normal", "std": 1.0}).declared((3,))
    assert dist.std == pytest.approx(KERAS_TRUNC_STD, rel=1e-12)


def test_float32_bounds_round_inward():  # NumPy 2's NEP 50 once left them outside
    lo, hi = float_bounds(0.2, 0.3, np.dtype(np.float32))
    assert float(lo) >= 0.2 and float(hi) <= 0.3


def test_float32_truncated_values_stay_inside_an_inexact_support():
    init = get_initializer({"name": "truncated_normal", "mean": 0.25, "std": 0.5, "lower": -0.1, "upper": 0.1})
    values = sample_values(init, Fans(1, 1), seed=1031)
    low, high = init.declared((1,), Fans(1, 1)).support
    assert low <= float(values.min()) and float(values.max()) <= high
