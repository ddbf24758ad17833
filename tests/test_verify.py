"""``netspec verify``: false-alarm rate at the stated alpha, and each tampering caught."""

import math

import numpy as np
import pytest

import netspec
from netspec.check.verify import verify_network
from netspec.init.initializers import Initializer, RandomNormal, VarianceScaling
from netspec.init.streams import BlockStream
from netspec.testing import NotFollowing, check_initializer

SPEC = """
netspec: 1
name: verify-target
seed: {seed}
input: [512]
layers:
  - {{type: dense, units: 128, weights: he_uniform, name: wide}}
  - {{type: dense, units: 96, weights: {{name: he_normal, truncated: true}}, name: trunc}}
  - {{type: dense, units: 64, weights: lecun_normal, name: plain}}
  - {{type: dense, units: 64, weights: {{name: orthogonal, gain: 1.0}}, name: ortho}}
"""


def build(seed=0):
    net = netspec.loads(SPEC.format(seed=seed), "verify-target.yaml")
    return net, net.initialize()


def verdicts(net, params, reproduce=False, alpha=1e-3):
    report = verify_network(net, params, alpha=alpha, reproduce=reproduce)
    return report, {t.name: t.verdict for t in report.tensors}


def test_correct_weights_pass():
    net, params = build()
    report, v = verdicts(net, params, reproduce=True)
    assert report.passed and set(v.values()) == {"pass"}


def test_false_alarm_rate_over_200_seeds_is_within_alpha():
    """200 seeds at alpha = 0.05: each run fails with probability <= 0.05 (Bonferroni), so the
    failure count is at most Binomial(200, 0.05): mean 10, P(count > 20) = 0.0014. Deterministic seeds."""
    failures = 0
    for seed in range(200):
        net, params = build(seed)
        failures += not verify_network(net, params, alpha=0.05, reproduce=False).passed
    assert failures <= 20, failures


def tamper(name, fn, seed=0):
    net, params = build(seed)
    params[name] = fn(params[name].copy())
    return verdicts(net, params)[1][name]


def test_catches_one_value_outside_the_bounds():
    def push(w):
        w[3, 7] = np.nextafter(np.float32(math.sqrt(6 / 512)), np.float32(1))
        return w

    assert tamper("wide.weights", push) == "FAIL"


def test_catches_weights_scaled_by_sqrt2():
    assert tamper("plain.weights", lambda w: w * np.float32(math.sqrt(2))) == "FAIL"


def test_catches_fans_swapped_on_a_non_square_kernel():
    # he_uniform drawn with fan_out (128) instead of fan_in (512)
    wrong = VarianceScaling(2.0, "fan_out", "uniform")((512, 128), BlockStream(0, "wide.weights"))
    assert tamper("wide.weights", lambda w: wrong) == "FAIL"


def test_catches_uniform_swapped_for_normal_at_equal_variance():
    wrong = VarianceScaling(1.0, "fan_in", "uniform")((96, 64), BlockStream(0, "plain.weights"))
    assert tamper("plain.weights", lambda w: wrong) == "FAIL"


def test_catches_untruncated_normal_where_truncated_was_declared():
    wrong = RandomNormal(0.0, math.sqrt(2 / 128))((128, 96), BlockStream(0, "trunc.weights"))
    assert tamper("trunc.weights", lambda w: wrong) == "FAIL"


def test_catches_a_perturbed_orthogonal_matrix():
    def nudge(w):
        w[0, 0] += np.float32(1e-3)
        return w

    assert tamper("ortho.weights", nudge) == "FAIL"


def test_catches_weights_of_another_seed_exactly():
    net, _ = build(seed=0)
    _, other = build(seed=1)
    report, _v = verdicts(net, other, reproduce=True)
    assert not report.passed
    assert all(t.reproduces is False for t in report.tensors if t.name.endswith("weights"))


def test_legacy_demo_is_checked_exactly():
    net = netspec.load("specs/glorot-demo-4-5-3.yaml")
    params = net.initialize()
    assert verify_network(net, params).passed
    params["dense_2.weights"] = params["dense_2.weights"][::-1].copy()  # same values, other order
    report = verify_network(net, params)
    assert not report.passed  # statistics cannot see a reordering of 15 values; the exact check does


def test_small_tensors_are_inconclusive_not_passed():
    net = netspec.load("specs/glorot-demo-4-5-3.yaml")
    report = verify_network(net, net.initialize(), reproduce=False)
    weights = [t for t in report.tensors if t.name.endswith("weights")]
    assert all(t.verdict == "inconclusive" and t.detectable_ratio > 2 for t in weights)


class HalfGlorot(Initializer):
    """Declares glorot_uniform, draws with half the limit (a deliberately wrong custom initializer)."""

    name = "half_glorot"

    def distribution(self, shape, fans):
        from netspec.init.distributions import Uniform

        limit = math.sqrt(6 / (fans.fan_in + fans.fan_out))
        return Uniform(-limit, limit)

    def __call__(self, shape, stream, dtype=np.float32, fans=None):
        return super().__call__(shape, stream, dtype, fans) * np.float32(0.5)


def test_check_initializer_rejects_a_wrong_custom_initializer():
    from dataclasses import dataclass

    with pytest.raises(NotFollowing, match="variance"):
        check_initializer(dataclass(frozen=True)(HalfGlorot)(), max_examples=5)


def test_check_initializer_accepts_correct_ones():
    for config in ["glorot_uniform", {"name": "he_normal", "truncated": True}, "xavier_simple", "orthogonal"]:
        check_initializer(netspec.init.initializers.get_initializer(config), max_examples=5)
