"""weights: auto_next follows the activation a layer's output meets next (through norms, dropout, pools
and merges); validate warns, naming auto_next, where auto and auto_next differ; auto keeps its meaning."""

import math

import pytest

import netspec
from netspec.errors import SpecError

CONV_BN_RELU = """\
netspec: 1
input: [8, 8, 3]
layers:
  - {{type: conv2d, name: conv, filters: 4, kernel: 3, use_bias: false, weights: {weights}}}
  - {{type: batch_norm, name: bn}}
  - {{type: dropout, name: drop, rate: 0.1}}
  - {{type: activation, name: relu, activation: relu}}
  - {{type: flatten, name: flat}}
  - {{type: dense, name: head, units: 3, weights: {weights}}}
"""


def _init(net, name):
    return next(p for path, p in net.parameters() if path == name)


def test_auto_next_follows_the_activation_after_batch_norm():
    net = netspec.loads(CONV_BN_RELU.format(weights="auto_next"), "m.yaml")
    conv = _init(net, "conv.weights")
    assert conv.initializer.get_config()["name"] == "he_normal"
    fan_in = 3 * 3 * 3
    assert conv.declared().std == pytest.approx(math.sqrt(2 / fan_in), rel=1e-12)  # N(0, 2 / fan_in), not 1/fan_in
    assert _init(net, "head.weights").initializer.get_config()["name"] == "glorot_uniform"  # meets the output
    from netspec.report.summary import explain

    origin = next(e["origin"] for e in explain(net) if e["parameter"] == "conv.weights")
    assert origin.startswith("layer key 'weights'; auto_next: relu via bn -> drop -> relu -> he_normal")


def test_auto_keeps_its_meaning_and_validate_names_auto_next():
    net = netspec.loads(CONV_BN_RELU.format(weights="auto"), "m.yaml")
    assert _init(net, "conv.weights").initializer.get_config()["name"] == "glorot_uniform"  # unchanged bytes
    (warning,) = [w for w in net.warnings if "auto_next" in w.message]
    assert warning.severity == "warning" and warning.line == 4 and warning.column > 1  # at conv's weights key
    assert "1 initializer(s)" in warning.message
    assert "conv.weights glorot_uniform, auto_next he_normal (relu via bn -> drop -> relu)" in warning.message
    assert "auto_next" in warning.hint
    same = netspec.loads(CONV_BN_RELU.format(weights="auto_next"), "m.yaml")
    assert not [w for w in same.warnings if "auto_next" in w.message]


def test_defaults_residual_merges_and_a_layers_own_activation():
    net = netspec.loads("""\
netspec: 1
input: [16]
defaults: {weights: auto_next}
layers:
  - {type: dense, name: a, units: 16, activation: tanh}
  - {type: dense, name: b, units: 16}
  - {type: layer_norm, name: norm}
  - {type: add, name: sum, inputs: [norm, a]}
  - {type: activation, name: out, activation: selu}
  - {type: dense, name: c, units: 4}
  - {type: dense, name: d, units: 4, inputs: out}
  - {type: add, name: both, inputs: [c, d]}
""", "r.yaml")  # fmt: skip
    names = {path: p.initializer.get_config()["name"] for path, p in net.parameters() if path.endswith("weights")}
    assert names == {"a.weights": "glorot_uniform",  # its own tanh
                     "b.weights": "lecun_normal",  # selu through layer_norm and the residual add
                     "c.weights": "glorot_uniform", "d.weights": "glorot_uniform"}  # linear to the output  # fmt: skip


def test_activations_that_disagree_are_a_located_error():
    text = """\
netspec: 1
input: [16]
layers:
  - {type: dense, name: a, units: 16, weights: auto_next}
  - {type: activation, name: r, activation: relu, inputs: a}
  - {type: activation, name: t, activation: tanh, inputs: a}
  - {type: add, name: both, inputs: [r, t]}
"""
    with pytest.raises(SpecError) as e:
        netspec.loads(text, "x.yaml")
    (d,) = e.value.diagnostics
    assert (d.line, d.column) == (4, 48) and "a.weights: auto_next" in d.message
    assert "relu via r: he_normal" in d.message and "tanh via t: glorot_uniform" in d.message
    agree = text.replace("activation: tanh", "activation: leaky_relu")  # both recommend he_normal
    assert _init(netspec.loads(agree, "x.yaml"), "a.weights").initializer.get_config()["name"] == "he_normal"


def test_the_schema_offers_auto_next():
    import json

    from netspec.spec.schema import schema_json

    assert "auto_next" in json.loads(schema_json())["$defs"]["initializer"]["then"]["enum"]
