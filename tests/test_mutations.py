"""The statistical checks must fail for the classic formula mistakes.

Each mutant is a plausible wrong implementation; the expected distribution is
the formula from ``test_formulas.py``. A non-square kernel (fan_in 300,
fan_out 100) makes a fan swap visible (a factor of 3 in variance).
"""

import math

import pytest

from netspec.init.distributions import Normal, TruncatedNormal, Uniform
from netspec.init.fans import Fans
from netspec.init.initializers import RandomNormal, VarianceScaling, get_initializer
from netspec.testing import NotFollowing, assert_follows, sample_values

FI, FO = 300, 100
FANS = Fans(FI, FO)
KERAS_TRUNC_STD = 0.87962566103423978

MUTANTS = {
    # he_normal with the variance halved (scale 1 instead of 2): off by a factor 2
    "variance off by 2": (VarianceScaling(1.0, "fan_in", "normal"), Normal(0, math.sqrt(2 / FI))),
    # glorot_uniform with the limit times sqrt 2
    "limit off by sqrt 2": (
        VarianceScaling(2.0, "fan_avg", "uniform"),
        Uniform(-math.sqrt(6 / (FI + FO)), math.sqrt(6 / (FI + FO))),
    ),
    # he_uniform reading fan_out instead of fan_in
    "fans swapped": (VarianceScaling(2.0, "fan_out", "uniform"), Uniform(-math.sqrt(6 / FI), math.sqrt(6 / FI))),
    # lecun_normal drawn uniform at the same variance
    "uniform instead of normal": (VarianceScaling(1.0, "fan_in", "uniform"), Normal(0, math.sqrt(1 / FI))),
    # lecun_uniform drawn normal at the same variance
    "normal instead of uniform": (
        VarianceScaling(1.0, "fan_in", "normal"),
        Uniform(-math.sqrt(3 / FI), math.sqrt(3 / FI)),
    ),
    # Keras-style truncated he_normal without dividing by 0.8796
    "missing truncation correction": (
        get_initializer({"name": "truncated_normal", "std": math.sqrt(2 / FI)}),
        TruncatedNormal(0, math.sqrt(2 / FI) / KERAS_TRUNC_STD, -2, 2),
    ),
    # truncation declared, untruncated drawn
    "untruncated where truncated declared": (
        RandomNormal(0.0, math.sqrt(2 / FI)),
        TruncatedNormal(0, math.sqrt(2 / FI) / KERAS_TRUNC_STD, -2, 2),
    ),
}


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_checks_catch_the_mutant(mutant):
    wrong, expected = MUTANTS[mutant]
    with pytest.raises(NotFollowing):
        assert_follows(sample_values(wrong, FANS, seed=12345), expected)


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_moment_checks_alone_catch_all_but_same_variance_swaps(mutant):
    """Without the KS fit, bounds and moments still catch every mutant whose variance or support differs."""
    wrong, expected = MUTANTS[mutant]
    values = sample_values(wrong, FANS, seed=12345)
    if mutant == "uniform instead of normal":  # same mean and variance, support inside: only the fit test sees it
        assert_follows(values, expected, fit_alpha=None)
        return
    with pytest.raises(NotFollowing):
        assert_follows(values, expected, fit_alpha=None)
