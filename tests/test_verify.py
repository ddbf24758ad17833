"""``netspec verify``: false-alarm rate at the stated alpha, and each tampering caught."""

import math

import numpy as np
import pytest

import netspec
from netspec.check.verify import render, verify_network
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


# ---------------------------------------------------------------- the moment tests on their own

RANDOM = ("wide.weights", "trunc.weights", "plain.weights")  # U (65,536 values), TN (12,288), N (6,144)


def test_correct_weights_pass_the_moment_tests_with_power_to_spare():
    """At these sizes the variance tests find a factor 1.1 with 80% power: correct weights must pass, not be
    'inconclusive' (which is what an infinite tolerance would report)."""
    net, params = build()
    report = verify_network(net, params, reproduce=False)
    for t in report.tensors:
        if t.name in RANDOM:
            assert t.tests["mean"] == t.tests["variance"] == "pass", t
            assert t.verdict == "pass" and t.detectable_ratio < 1.1, t


# Variance ratios 2 and sqrt 2 both ways, and a mean shift of 0.1 sigma (z = 0.1 sqrt(n) >= 7.8). Uniform and
# truncated tensors are only scaled down: scaled up they leave the support and the bounds check would answer.
TAMPERING = [
    ("plain.weights", lambda w: w * np.float32(math.sqrt(2)), "variance"),
    ("plain.weights", lambda w: w * np.float32(2**0.25), "variance"),
    ("plain.weights", lambda w: w / np.float32(2**0.25), "variance"),
    ("wide.weights", lambda w: w / np.float32(math.sqrt(2)), "variance"),
    ("wide.weights", lambda w: w / np.float32(2**0.25), "variance"),
    ("trunc.weights", lambda w: w / np.float32(2**0.25), "variance"),
    ("plain.weights", lambda w: w + np.float32(0.1 * math.sqrt(1 / 96)), "mean"),
    ("wide.weights", lambda w: np.clip(w + np.float32(0.1 * math.sqrt(2 / 512)), -1, np.float32(math.sqrt(6 / 512))),
     "mean"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "fn", "test"), TAMPERING, ids=lambda v: v if isinstance(v, str) else "")
def test_moment_tests_alone_catch_scaled_and_shifted_tensors(name, fn, test):
    net, params = build()
    params[name] = fn(params[name].copy())
    report = verify_network(net, params, reproduce=False, fit=False)
    t = next(t for t in report.tensors if t.name == name)
    assert "fit" not in t.tests
    assert t.verdict == "FAIL" and t.tests[test] == "FAIL", t.problems


# ---------------------------------------------------------------- never a silent pass


def test_strict_mode_fails_on_inconclusive_tensors():
    net = netspec.load("specs/glorot-demo-4-5-3.yaml")
    report = verify_network(net, net.initialize(), reproduce=False)
    assert report.passed and report.ok() and not report.ok(strict=True)
    assert report.inconclusive == ["dense_1.weights", "dense_2.weights"]
    summary = render(report).splitlines()[-1]
    assert "2 inconclusive" in summary and "2 too small to judge" in summary and "n <= 20" in summary
    exact = verify_network(net, net.initialize(), reproduce=True)  # reproduced bytes settle small tensors
    assert exact.ok(strict=True) and not exact.inconclusive


def test_without_scipy_the_fit_test_is_reported_skipped(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "scipy", None)  # any import of scipy now raises ImportError
    monkeypatch.setitem(sys.modules, "scipy.special", None)
    net, params = build()
    report = verify_network(net, params, reproduce=False)
    assert report.skipped == {"fit": ["trunc.weights", "plain.weights"]}  # U's CDF needs no SciPy
    assert report.passed and not report.ok(strict=True)
    text = render(report)
    row = next(line for line in text.splitlines() if line.startswith("plain.weights"))
    assert "skipped" in row
    assert "fit test skipped on 2 tensors: SciPy is not installed (install scipy to enable it)" in text.splitlines()[-1]
    doc = report.as_json()
    assert doc["skipped"] == {"fit": ["trunc.weights", "plain.weights"]} and doc["passed_strict"] is False
    assert next(t for t in doc["tensors"] if t["name"] == "plain.weights")["tests"]["fit"] == "skipped"


def test_a_network_without_parameters_renders():
    net = netspec.loads("netspec: 1\ninput: [4, 4]\nlayers:\n  - {type: flatten}\n  - {type: dropout, rate: 0.5}\n",
                        "no-params.yaml")  # fmt: skip
    report = verify_network(net, {})
    assert report.passed and report.ok(strict=True) and report.as_json()["tensors"] == []
    assert "no parameter tensors to verify" in render(report)


def test_expected_tensors_are_regenerated_one_at_a_time(monkeypatch):
    net, params = build()

    def refuse(*args, **kwargs):
        raise AssertionError("verify must not build the whole network a second time")

    monkeypatch.setattr(type(net), "initialize", refuse)
    report = verify_network(net, params, reproduce=True)
    assert report.passed and all(t.reproduces for t in report.tensors)
