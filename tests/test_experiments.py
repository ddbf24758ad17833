"""The seeds' claims as checked experiments (specs/experiments/), against the mean-field prediction
(netspec.diagnose.theory), deterministic (fixed spec seeds and batch seed).

Tolerance: the empirical second moment of a layer's outputs averages ``width`` units and ``batch``
samples, so log(measured / predicted) has variance about
  sum over layers of (E y^4 / (E y^2)^2 - 1) / width      (finite width; 5 / width per ReLU layer,
                                                           Hanin and Rolnick 2018)
  + Var(per-sample second moment) / (batch * mean^2)       (finite batch, estimated from the data)
and the assertions allow Z = 4 standard deviations of it. A gain off by sqrt(2) per layer moves the
log by (layers) * log 2, far outside that band for every experiment here.
"""

import math
from pathlib import Path

import numpy as np
import pytest

import netspec
from netspec.diagnose.stats import default_batch, reinitialized
from netspec.diagnose.theory import mean_field

EXPERIMENTS = Path(__file__).parent.parent / "specs" / "experiments"
BATCH, Z = 512, 4.0


def _run(spec: str, initializer: str | None = None):
    net = netspec.load(str(EXPERIMENTS / f"{spec}.yaml"))
    net = reinitialized(net, initializer) if initializer else net
    params = net.initialize()
    outputs = [y for _, _, y in net.trace(default_batch(net, BATCH, 0), params)]
    gains = [p.declared().variance * p.fans.fan_in for cl in net.layers for p in cl.params if p.name == "weights"]
    predicted = mean_field(net.layers[0].layer.activation, gains)
    return outputs, predicted, [cl.output_shape[-1] for cl in net.layers]


def _log_error_and_band(outputs, predicted, widths, layer=-1):
    """log(measured / predicted second moment) of ``layer``, and Z standard deviations of it."""
    y = outputs[layer].astype(np.float64)
    per_sample = (y * y).mean(axis=1)
    measured = per_sample.mean()
    depth = len(outputs) if layer == -1 else layer + 1
    finite_width = sum(p.log_second_variance(n) for p, n in zip(predicted[:depth], widths[:depth], strict=True))
    finite_batch = per_sample.var() / (len(per_sample) * measured**2)
    return math.log(measured / predicted[layer].second), Z * math.sqrt(finite_width + finite_batch)


def test_tanh_glorot_keeps_the_signal_and_seed_002_xavier_lets_it_shrink():
    glorot, glorot_pred, widths = _run("deep-tanh")
    simple, simple_pred, _ = _run("deep-tanh", "xavier_simple")
    for outputs, pred in ((glorot, glorot_pred), (simple, simple_pred)):
        error, band = _log_error_and_band(outputs, pred, widths)
        assert abs(error) <= band, (error, band)
    # the claims: U(±1/sqrt(n)) shrinks the std by about sqrt(3) per layer once tanh is near-linear
    # (n Var(W) = 1/3, |tanh z| <= |z|), glorot (n Var(W) = 1) by much less
    simple_ratio = simple[-1].std() / simple[0].std()
    glorot_ratio = glorot[-1].std() / glorot[0].std()
    assert simple_ratio <= (1 / 3) ** ((len(simple) - 1) / 2) * math.exp(band)
    assert glorot_ratio >= 0.25 and glorot_ratio / simple_ratio > 30


def test_relu_he_normal_keeps_the_std_within_a_factor_2_and_glorot_collapses():
    he, he_pred, widths = _run("deep-relu")
    glorot, glorot_pred, _ = _run("deep-relu", "glorot_uniform")
    for outputs, pred in ((he, he_pred), (glorot, glorot_pred)):
        error, band = _log_error_and_band(outputs, pred, widths)
        assert abs(error) <= band, (error, band)
    # theory: the second moment is constant with he (2 * 1/2 = 1 per layer) and halves per layer with glorot
    assert glorot_pred[-1].second / glorot_pred[0].second == pytest.approx(2.0**-29, rel=1e-6)
    assert he_pred[-1].second / he_pred[0].second == pytest.approx(1.0, rel=1e-6)
    assert 0.5 <= he[-1].std() / he[0].std() <= 2.0
    assert glorot[-1].std() / glorot[0].std() < 1e-3  # orders of magnitude


def test_selu_lecun_normal_stays_near_zero_mean_unit_variance():
    outputs, pred, widths = _run("selu-lecun-deep")
    error, band = _log_error_and_band(outputs, pred, widths)
    assert abs(error) <= band
    assert pred[-1].mean == pytest.approx(0.0, abs=1e-3) and pred[-1].std == pytest.approx(1.0, abs=1e-3)
    last = outputs[-1].astype(np.float64)
    assert abs(last.mean()) <= Z * last.std() / math.sqrt(last.size) + math.sqrt(math.expm1(band))
    assert abs(math.log(last.var())) <= band


def test_a_wrong_gain_is_caught():
    """The band is narrow enough: the tanh stack's prediction with a gain off by sqrt(2) is rejected."""
    outputs, _, widths = _run("deep-tanh")
    wrong = mean_field(np.tanh, [2.0] * len(outputs))  # glorot's gain is 1; 2 is a sqrt(2) error in std
    error, band = _log_error_and_band(outputs, wrong, widths)
    assert abs(error) > band
