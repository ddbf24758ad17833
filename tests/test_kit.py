"""The test kit (netspec.testing): independent laws, argument validation, built shapes, settings.

Every statistical assertion here uses the kit's own checks (|z| <= 5, KS at
1e-6) on 20 000 values with fixed seeds, so each outcome is deterministic. The
wrong initializers are off by a factor 2 in variance at least (where they are
off at all), a z of about 50 or more at n = 20 000, ten times the threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import hypothesis
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from hypothesis.errors import FailedHealthCheck

import netspec
from netspec.init.distributions import Normal, Uniform
from netspec.init.fans import Fans
from netspec.init.initializers import Initializer, get_initializer
from netspec.testing import (
    InvalidArgument,
    NotFollowing,
    assert_follows,
    assert_same_distribution,
    check_initializer,
    conv_shapes,
    dense_shapes,
    fans,
    initializer_configs,
    sample_values,
    specs,
)

# ------------------------------------------------------------------ custom initializers, as a user writes them


@dataclass(frozen=True)
class MyHe(Initializer):
    """w ~ N(0, 2 / fan_in): a correct custom He initializer."""

    name = "test_kit_he"

    def distribution(self, shape, fans):
        return Normal(0.0, math.sqrt(2.0 / fans.fan_in))


@dataclass(frozen=True)
class TwoOverFanIn(Initializer):
    """w ~ N(0, (2 / fan_in)²): He with the square root forgotten, declared and drawn alike (wrong)."""

    name = "test_kit_two_over_fan_in"

    def distribution(self, shape, fans):
        return Normal(0.0, 2.0 / fans.fan_in)


@dataclass(frozen=True)
class SwappedHe(Initializer):
    """w ~ N(0, 2 / fan_out): He with fan_in and fan_out swapped (wrong)."""

    name = "test_kit_swapped_he"

    def distribution(self, shape, fans):
        return Normal(0.0, math.sqrt(2.0 / fans.fan_out))


@dataclass(frozen=True)
class MyHeUniform(Initializer):
    """w ~ U(±sqrt(6 / fan_in)): a correct custom He uniform."""

    name = "test_kit_he_uniform"

    def distribution(self, shape, fans):
        limit = math.sqrt(6.0 / fans.fan_in)
        return Uniform(-limit, limit)


@dataclass(frozen=True)
class HeUniformMissingRoot2(Initializer):
    """w ~ U(±sqrt(3 / fan_in)): He uniform's limit short by √2 (wrong; that is LeCun's)."""

    name = "test_kit_he_uniform_short"

    def distribution(self, shape, fans):
        limit = math.sqrt(3.0 / fans.fan_in)
        return Uniform(-limit, limit)


def he_expected(f: Fans) -> Normal:
    return Normal(0.0, math.sqrt(2.0 / f.fan_in))


def he_std(f: Fans) -> float:
    return math.sqrt(2.0 / f.fan_in)


def he_limit(f: Fans) -> float:
    return math.sqrt(6.0 / f.fan_in)


HE_MODES = {
    "expected": {"expected": he_expected},
    "std": {"std": he_std},
    "reference": {"reference": get_initializer("he_normal")},
}

NO_SHRINK = hypothesis.settings(
    max_examples=10, derandomize=True, database=None, deadline=None, phases=[Phase.explicit, Phase.generate]
)
"""For the failing runs: the first failing example is enough, shrinking would only cost time."""

WIDE = Fans(64, 16)
"""Fans where every wrong initializer above is off by a factor >= 2 in variance."""


# ------------------------------------------------------------------ 1. independent laws


def test_a_self_consistent_wrong_formula_passes_the_self_consistency_battery():
    check_initializer(TwoOverFanIn(), max_examples=10)  # this is what the independent modes are for


@pytest.mark.parametrize("mode", sorted(HE_MODES))
def test_a_self_consistent_wrong_formula_fails_every_independent_mode(mode):
    with pytest.raises(NotFollowing) as info:
        check_initializer(TwoOverFanIn(), settings=NO_SHRINK, **HE_MODES[mode])
    message = str(info.value)
    assert "self-consistency" not in message  # it *is* self-consistent
    assert "declaration:" in message and "values:" in message  # both the formula and the values are caught


def test_failures_shrink_to_the_smallest_fans_with_the_default_settings():
    with pytest.raises(NotFollowing, match=r"at shape \(1, 1\)"):
        check_initializer(TwoOverFanIn(), max_examples=10, std=he_std)


def test_the_declaration_check_alone_catches_the_wrong_formula():
    assert_same_distribution(MyHe().declared((64, 16)), he_expected(WIDE))
    with pytest.raises(NotFollowing, match="variance"):
        assert_same_distribution(TwoOverFanIn().declared((64, 16)), he_expected(WIDE))


def test_the_values_alone_catch_the_wrong_formula():
    # std 2/64 vs sqrt(2/64): variance ratio 1/8, z ~ -300 at n = 20 000.
    assert_follows(sample_values(MyHe(), WIDE, seed=7), he_expected(WIDE))
    with pytest.raises(NotFollowing, match="variance"):
        assert_follows(sample_values(TwoOverFanIn(), WIDE, seed=7), he_expected(WIDE))


def test_a_correct_custom_he_passes_every_mode_at_once():
    check_initializer(MyHe(), max_examples=15, **HE_MODES["expected"], **HE_MODES["std"], **HE_MODES["reference"])


def test_the_std_mode_assumes_no_family():
    truncated_he = get_initializer({"name": "he_normal", "truncated": True})  # variance-corrected: std sqrt(2/fan_in)
    check_initializer(truncated_he, max_examples=10, std=he_std)
    check_initializer(get_initializer("he_uniform"), max_examples=10, std=he_std)  # U(±sqrt(6/n)): same std
    with pytest.raises(NotFollowing, match="family uniform != normal"):
        check_initializer(get_initializer("he_uniform"), settings=NO_SHRINK, expected=he_expected)


def test_a_fan_swap_is_caught_by_the_reference_mode_for_non_square_fans():
    with pytest.raises(NotFollowing, match="declaration: variance"):
        check_initializer(SwappedHe(), settings=NO_SHRINK, reference=get_initializer("he_normal"))
    square = st.integers(1, 4096).map(lambda n: (n, n))
    check_initializer(SwappedHe(), max_examples=10, shapes=square, reference=get_initializer("he_normal"))


def test_the_declaration_check_sees_a_swap_of_neighbouring_fans():
    # fans 100 and 101: 1% in variance, below what 20 000 values resolve (SE 1.4%); the declaration is exact.
    he = get_initializer("he_normal")
    with pytest.raises(NotFollowing, match="variance"):
        assert_same_distribution(SwappedHe().declared((100, 101)), he.declared((100, 101)))


def test_a_root_two_error_in_a_uniform_limit_is_caught():
    check_initializer(HeUniformMissingRoot2(), max_examples=10)  # self-consistent
    check_initializer(MyHeUniform(), max_examples=10, limit=he_limit, reference=get_initializer("he_uniform"))
    for mode in ({"limit": he_limit}, {"reference": get_initializer("he_uniform")}):
        with pytest.raises(NotFollowing) as info:
            check_initializer(HeUniformMissingRoot2(), settings=NO_SHRINK, **mode)
        assert "declaration: support low" in str(info.value) and "values:" in str(info.value)
    # and the values alone: variance ratio 1/2 (z ~ -80 at n = 20 000)
    with pytest.raises(NotFollowing, match="variance"):
        assert_follows(sample_values(HeUniformMissingRoot2(), WIDE, seed=3), Uniform(-he_limit(WIDE), he_limit(WIDE)))


def test_a_structured_reference_is_compared_on_the_real_shape():
    orthogonal = get_initializer("orthogonal")
    check_initializer(orthogonal, max_examples=5, max_fan=64, reference=get_initializer("orthogonal"))
    with pytest.raises(NotFollowing, match="declaration"):
        check_initializer(get_initializer({"name": "orthogonal", "gain": 2.0}), settings=NO_SHRINK,
                          max_fan=64, reference=orthogonal)  # fmt: skip


@pytest.mark.parametrize(
    ("name", "shapes"),
    [("orthogonal", None), ("identity", None), ("dirac", conv_shapes(max_size=4096))],
)
def test_structured_initializers_pass_on_capped_real_shapes(name, shapes):
    init = get_initializer(name)
    check_initializer(init, max_examples=5, shapes=shapes, reference=get_initializer(name))


def test_declarations_equal_up_to_rounding_are_the_same_distribution():
    n = 37
    written = Normal(0.0, math.sqrt(2.0) / math.sqrt(n))  # another order of operations, another rounding
    assert_same_distribution(Normal(0.0, math.sqrt(2.0 / n)), written)
    with pytest.raises(NotFollowing, match="variance"):
        assert_same_distribution(Normal(0.0, math.sqrt(2.0 / n) * (1 + 1e-7)), written)


@pytest.mark.parametrize("std", [1e-6, 1.0, 1e6])
def test_the_declaration_tolerance_is_relative_at_every_scale(std):
    # A variance error of 1e-7 relative is a wrong formula, whatever the units.
    with pytest.raises(NotFollowing, match="variance"):
        assert_same_distribution(Normal(0.0, std * math.sqrt(1 + 1e-7)), Normal(0.0, std))
    assert_same_distribution(Normal(0.0, std * (1 + 1e-15)), Normal(0.0, std))
    assert_same_distribution(Normal(std * 1e-12, std), Normal(0.0, std))  # a location rounding off 0
    with pytest.raises(NotFollowing, match="mean"):
        assert_same_distribution(Normal(std * 1e-6, std), Normal(0.0, std))


def test_a_malformed_law_is_reported_at_once():
    with pytest.raises(InvalidArgument, match=r"std\(fans\) gave -1.0"):
        check_initializer(MyHe(), max_examples=5, std=lambda f: -1.0)
    with pytest.raises(InvalidArgument, match=r"expected\(fans\) gave 0.5"):
        check_initializer(MyHe(), max_examples=5, expected=lambda f: 0.5)


@dataclass(frozen=True)
class TorchLayoutHe(Initializer):
    """w ~ N(0, 2 / n) with n read from the shape in PyTorch's (out, in, *kernel) layout (wrong in netspec)."""

    name = "test_kit_torch_layout_he"

    def distribution(self, shape, fans):
        n = shape[1] * math.prod(shape[2:]) if len(shape) >= 2 else fans.fan_in
        return Normal(0.0, math.sqrt(2.0 / n))


def test_an_initializer_must_read_the_fans_not_the_shape():
    with pytest.raises(NotFollowing, match="fans only: variance"):
        check_initializer(TorchLayoutHe(), settings=NO_SHRINK)
    with pytest.raises(NotFollowing, match="declaration: std"):
        check_initializer(TorchLayoutHe(), settings=NO_SHRINK, shapes=conv_shapes(), std=he_std)
    check_initializer(MyHe(), max_examples=10, shapes=conv_shapes(), std=he_std)  # receptive field included


# ------------------------------------------------------------------ 2. argument validation


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fans(max_fan=0), r"fans\(\): max_fan must be at least 1, got max_fan=0"),
        (lambda: fans(max_fan=1.5), r"max_fan must be an integer, got max_fan=1.5"),
        (lambda: fans(max_fan=True), r"max_fan must be an integer"),
        (lambda: dense_shapes(max_fan=0), r"dense_shapes\(\): max_fan must be at least 1"),
        (lambda: dense_shapes(max_size=0), r"dense_shapes\(\): max_size must be at least 1"),
        (lambda: conv_shapes(max_spatial=0), r"conv_shapes\(\): max_spatial must be at least 1"),
        (lambda: conv_shapes(max_size=0), r"conv_shapes\(\): max_size must be at least 1"),
        (lambda: conv_shapes(max_kernel=0), r"max_kernel must be at least 1"),
        (lambda: conv_shapes(max_channels="8"), r"max_channels must be an integer"),
        (lambda: initializer_configs([]), r"names must not be empty"),
        (lambda: initializer_configs("he_normal"), r"names must be a list"),
        (lambda: initializer_configs(["glorot_unifrom"]), r"did you mean 'glorot_uniform'"),
        (lambda: specs(max_layers=0), r"specs\(\): max_layers must be at least 1"),
        (lambda: sample_values("he_normal", WIDE), r"init must be an Initializer"),
        (lambda: sample_values(MyHe(), (64, 16)), r"fans_ must be a Fans"),
        (lambda: sample_values(MyHe(), WIDE, n=0), r"n must be at least 1"),
        (lambda: sample_values(MyHe(), WIDE, seed=-1), r"seed must be at least 0"),
        (lambda: assert_follows(np.zeros(3), MyHe(), z_crit=0), r"z_crit must be a finite number > 0"),
        (lambda: assert_follows(np.zeros(3), MyHe(), fit_alpha=1.5), r"fit_alpha must be None or a float in"),
        (lambda: assert_follows([0.0], MyHe()), r"values must be a NumPy array"),
        (lambda: assert_same_distribution(MyHe(), he_expected(WIDE)), r"declared must be a Distribution"),
        (lambda: assert_same_distribution(he_expected(WIDE), he_expected(WIDE), 0.0), r"rel_tol must be"),
        (lambda: check_initializer("he_normal"), r"check_initializer\(\): init must be an Initializer"),
        (lambda: check_initializer(MyHe(), max_examples=0), r"max_examples must be at least 1"),
        (lambda: check_initializer(MyHe(), max_fan=0), r"max_fan must be at least 1"),
        (lambda: check_initializer(MyHe(), max_fan=8, shapes=dense_shapes()), r"max_fan or shapes, not both"),
        (lambda: check_initializer(MyHe(), shapes=[(3, 4)]), r"shapes must be a Hypothesis strategy"),
        (lambda: check_initializer(MyHe(), settings={"max_examples": 5}), r"settings must be a hypothesis.settings"),
        (lambda: check_initializer(MyHe(), std=0.1), r"std must be a function of the fans"),
        (lambda: check_initializer(MyHe(), reference="he_normal"), r"reference must be an Initializer"),
        (lambda: check_initializer(MyHe(), rel_tol=-1e-9), r"rel_tol must be a finite number > 0"),
    ],
)
def test_arguments_are_checked_up_front(call, message):
    with pytest.raises(InvalidArgument, match=message):
        call()  # raised by the call itself, before anything is drawn


def test_initializer_configs_accepts_aliases():
    @hypothesis.settings(max_examples=10)
    @given(initializer_configs(["kaiming_normal"]))
    def draws(config):
        assert config["name"] == "he_normal"
        get_initializer(config)

    draws()


# ------------------------------------------------------------------ 2. shapes built, not filtered

STRICT = hypothesis.settings(max_examples=100, suppress_health_check=[], deadline=None)
"""Every health check on: a filtered strategy would fail here."""


@pytest.mark.parametrize("max_size", [1, 2, 3, 8, 64])
def test_conv_shapes_draw_under_small_size_bounds(max_size):
    seen = set()

    @STRICT
    @given(conv_shapes(max_size=max_size))
    def draws(shape):
        assert 3 <= len(shape) <= 5 and all(d >= 1 for d in shape)
        assert max(shape[:-2]) <= 7 and max(shape[-2:]) <= 64
        assert math.prod(shape) <= max_size
        seen.add(shape)

    draws()
    assert {len(s) for s in seen} == {3, 4, 5}  # every rank is reachable
    assert max(math.prod(s) for s in seen) == max_size  # the bound is reached, not just respected


def test_conv_shapes_are_built_not_filtered():
    # Wide bounds, tiny product: a filter over independent dims accepts ~1 draw in 10^9 and, this
    # Hypothesis version shows, falls back to a handful of shapes (3 distinct in 100 examples).
    seen = set()

    @STRICT
    @given(conv_shapes(max_size=8, max_kernel=1000, max_channels=100_000))
    def draws(shape):
        assert math.prod(shape) <= 8
        seen.add(shape)

    draws()
    assert len(seen) >= 30 and {len(s) for s in seen} == {3, 4, 5}


def test_conv_shapes_honour_every_bound():
    @STRICT
    @given(conv_shapes(max_spatial=1, max_size=50, max_kernel=2, max_channels=5))
    def draws(shape):
        assert len(shape) == 3 and shape[0] <= 2 and max(shape[1:]) <= 5 and math.prod(shape) <= 50

    draws()


@pytest.mark.parametrize(("max_fan", "max_size"), [(1, 1), (3, 100), (4096, 100), (4096, 1 << 16)])
def test_dense_shapes_honour_both_bounds(max_fan, max_size):
    @STRICT
    @given(dense_shapes(max_fan=max_fan, max_size=max_size))
    def draws(shape):
        fi, fo = shape
        assert 1 <= fi <= max_fan and 1 <= fo <= max_fan and fi * fo <= max_size

    draws()


def test_fans_honour_max_fan():
    @STRICT
    @given(fans(max_fan=3))
    def draws(f):
        assert 1 <= f.fan_in <= 3 and 1 <= f.fan_out <= 3

    draws()


@hypothesis.settings(max_examples=10)
@given(specs(max_layers=1))
def test_specs_with_one_layer_stay_valid(spec):
    assert len(spec["layers"]) <= 6  # mlp: 1 dense; cnn: 1 conv + flatten + dense; seq: fixed 6
    net = netspec.loads(yaml.safe_dump(spec), "generated.yaml")
    assert net.num_params > 0


# ------------------------------------------------------------------ 2. the caller's settings


def counting(shapes_seen: list) -> st.SearchStrategy[tuple[int, int]]:
    """Dense shapes that record each example the battery runs."""
    return st.tuples(st.integers(1, 512), st.integers(1, 512)).map(lambda s: shapes_seen.append(s) or s)


def test_max_examples_is_honoured():
    seen: list = []
    check_initializer(MyHe(), max_examples=7, shapes=counting(seen))
    assert len(seen) == 7


def test_a_settings_object_is_used_and_max_examples_overrides_it():
    seen: list = []
    check_initializer(MyHe(), settings=hypothesis.settings(max_examples=3, database=None), shapes=counting(seen))
    assert len(seen) == 3
    seen.clear()
    check_initializer(MyHe(), 5, settings=hypothesis.settings(max_examples=3, database=None), shapes=counting(seen))
    assert len(seen) == 5


def test_the_active_profile_is_used_by_default():
    hypothesis.settings.register_profile("test_kit_tiny", max_examples=4)
    previous = hypothesis.settings.get_current_profile_name()
    hypothesis.settings.load_profile("test_kit_tiny")
    try:
        seen: list = []
        check_initializer(MyHe(), shapes=counting(seen))
        assert len(seen) == 4
    finally:
        hypothesis.settings.load_profile(previous)


def test_default_runs_are_derandomized():
    runs: list[list] = [[], []]
    for seen in runs:
        check_initializer(MyHe(), max_examples=5, shapes=counting(seen))
    assert runs[0] == runs[1]


def test_health_checks_are_not_suppressed():
    hopeless = st.tuples(st.integers(1, 64), st.integers(1, 64)).filter(lambda s: False)
    with pytest.raises(FailedHealthCheck):
        check_initializer(MyHe(), max_examples=5, shapes=hopeless)
    # ... unless the caller says so
    lenient = hypothesis.settings(max_examples=5, database=None, suppress_health_check=[HealthCheck.filter_too_much])
    with pytest.raises(hypothesis.errors.Unsatisfiable):
        check_initializer(MyHe(), settings=lenient, shapes=hopeless)
