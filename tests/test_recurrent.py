"""Recurrent layers: forward parity with PyTorch, gate layouts, fans per convention, initialization rules."""

import math

import numpy as np
import pytest

import netspec
from netspec.check.checks import orthogonality_error
from netspec.errors import SpecError

TORCH_GATES = {"lstm": [0, 1, 2, 3], "gru": [1, 0, 2], "simple_rnn": [0]}
"""netspec gate slice order -> PyTorch's: LSTM i,f,c,o = i,f,g,o; GRU z,r,h -> r,z,n."""


def _net(layer: str, shape=(6, 3)):
    return netspec.loads(f"netspec: 1\nseed: 5\ninput: {list(shape)}\nlayers:\n  - {layer}\n", "rnn.yaml")


def _torch_order(a: np.ndarray, kind: str) -> np.ndarray:
    """Reorder the gate slices of the last axis into PyTorch's order."""
    slices = np.split(a, len(TORCH_GATES[kind]), axis=-1)
    return np.concatenate([slices[i] for i in TORCH_GATES[kind]], axis=-1)


def _torch_module(net, params, kind: str, units: int, bidirectional: bool):
    torch = pytest.importorskip("torch")
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "simple_rnn": torch.nn.RNN}[kind]
    name = net.layers[0].name
    m = cls(net.input_shape[-1], units, batch_first=True, bidirectional=bidirectional)
    state = {}
    for suffix, prefix in [("", ""), ("_reverse", "reverse.")][: 2 if bidirectional else 1]:
        w = params[f"{name}.{prefix}weights"]
        rw = params[f"{name}.{prefix}recurrent_weights"]
        state[f"weight_ih_l0{suffix}"] = _torch_order(w, kind).T
        state[f"weight_hh_l0{suffix}"] = _torch_order(rw, kind).T
        state[f"bias_ih_l0{suffix}"] = _torch_order(params[f"{name}.{prefix}bias"], kind)
        rb = params.get(f"{name}.{prefix}recurrent_bias")
        state[f"bias_hh_l0{suffix}"] = _torch_order(rb, kind) if rb is not None else np.zeros_like(
            state[f"bias_ih_l0{suffix}"])  # fmt: skip
    m.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, strict=True)
    return m


@pytest.mark.parametrize("kind", ["simple_rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("sequences", [False, True])
def test_forward_matches_pytorch(kind, bidirectional, sequences):
    torch = pytest.importorskip("torch")
    units = 5
    net = _net(f"{{type: {kind}, units: {units}, bidirectional: {str(bidirectional).lower()}, "
               f"return_sequences: {str(sequences).lower()}, bias: {{name: uniform, low: -0.5, high: 0.5}}}}")
    params = net.initialize()
    x = np.random.default_rng(1).standard_normal((4, 6, 3)).astype(np.float32)
    ours = net.forward(x, params)
    m = _torch_module(net, params, kind, units, bidirectional)
    with torch.no_grad():
        seq, h = m(torch.from_numpy(x))
    h = h[0] if kind == "lstm" else h  # (directions, batch, units)
    theirs = seq.numpy() if sequences else torch.cat(list(h), dim=-1).numpy()
    assert ours.shape == theirs.shape == (4, *net.output_shape)
    # float32 tolerance: 6 steps of sums of <= 10 products of O(1) terms, each rounded at 2^-24 relative
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("kind,gates", [("simple_rnn", 1), ("gru", 3), ("lstm", 4)])
def test_fans_fused_keras_and_per_gate_flax(kind, gates):
    torch = pytest.importorskip("torch")
    from torch.nn.init import _calculate_fan_in_and_fan_out

    n_in, units = 7, 5
    fused = {p.name: p.fans for p in _net(f"{{type: {kind}, units: {units}}}", (3, n_in)).layers[0].params}
    per_gate = {p.name: p.fans for p in _net(f"{{type: {kind}, units: {units}, convention: flax}}", (3, n_in))
                .layers[0].params}  # fmt: skip
    # Keras' rule on the fused kernels equals torch's on weight_ih (gates*units, in) and weight_hh (gates*units, units)
    ih = _calculate_fan_in_and_fan_out(torch.empty(gates * units, n_in))
    hh = _calculate_fan_in_and_fan_out(torch.empty(gates * units, units))
    assert (fused["weights"].fan_in, fused["weights"].fan_out) == ih == (n_in, gates * units)
    assert (fused["recurrent_weights"].fan_in, fused["recurrent_weights"].fan_out) == hh == (units, gates * units)
    # Flax: one Dense (in, units) per gate
    assert (per_gate["weights"].fan_in, per_gate["weights"].fan_out) == (n_in, units)
    assert (per_gate["recurrent_weights"].fan_in, per_gate["recurrent_weights"].fan_out) == (units, units)


def test_glorot_bound_follows_the_fans_convention():
    n_in, units = 7, 5
    fused = _net(f"{{type: lstm, units: {units}}}", (3, n_in)).layers[0].params[0].declared()
    per_gate = _net(f"{{type: lstm, units: {units}, gate_fans: per_gate}}", (3, n_in)).layers[0].params[0].declared()
    assert fused.support[1] == pytest.approx(math.sqrt(6 / (n_in + 4 * units)), rel=1e-12)
    assert per_gate.support[1] == pytest.approx(math.sqrt(6 / (n_in + units)), rel=1e-12)


def test_keras_orthogonal_is_one_fused_matrix_and_flax_one_per_gate():
    units = 6
    keras = _net(f"{{type: lstm, units: {units}}}").initialize()["lstm_1.recurrent_weights"]
    flax = _net(f"{{type: lstm, units: {units}, convention: flax}}").initialize()["lstm_1.recurrent_weights"]
    assert keras.shape == flax.shape == (units, 4 * units)
    # fused (units, 4 units): orthonormal rows; its 6x6 gate blocks are not orthogonal
    assert orthogonality_error(keras, 1.0) < 1e-5
    assert max(orthogonality_error(b, 1.0) for b in np.split(keras, 4, axis=1)) > 0.1
    # per gate: each (units, units) block orthogonal, so the whole has orthogonal columns within a gate only
    assert max(orthogonality_error(b, 1.0) for b in np.split(flax, 4, axis=1)) < 1e-5
    assert orthogonality_error(flax, 1.0) > 0.1
    gates = np.split(flax, 4, axis=1)
    assert not np.allclose(gates[0], gates[1])  # independent draws, not one matrix repeated


def test_unit_forget_bias_and_torch_convention():
    units = 4
    keras = _net(f"{{type: lstm, units: {units}}}").initialize()["lstm_1.bias"]
    np.testing.assert_array_equal(keras, np.r_[np.zeros(units), np.ones(units), np.zeros(2 * units)])
    off = _net(f"{{type: lstm, units: {units}, unit_forget_bias: false}}").initialize()["lstm_1.bias"]
    np.testing.assert_array_equal(off, np.zeros(4 * units))
    net = _net("{type: gru, units: 9, convention: torch}")
    bound = 1 / math.sqrt(9)  # torch: stdv = 1 / sqrt(hidden_size) for every tensor
    for p in net.layers[0].params:
        assert p.declared().support == pytest.approx((-bound, bound), rel=1e-12), p.name
    params = net.initialize()
    assert all(np.abs(a).max() <= bound for a in params.values())


def test_recurrent_shape_errors_are_located():
    with pytest.raises(SpecError) as e:
        _net("{type: lstm, units: 4}", (6,))
    assert "rnn.yaml:5:" in str(e.value) and "(sequence, features)" in str(e.value)
    with pytest.raises(SpecError) as e:
        _net("{type: gru, units: 4, convention: kera}")
    assert "keras" in str(e.value)
