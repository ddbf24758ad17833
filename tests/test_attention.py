"""Attention layers: forward parity with PyTorch, fans per convention, located errors."""

import math

import numpy as np
import pytest

import netspec
from netspec.errors import SpecError

# float32: sums of <= 32 products of O(1) terms and a softmax, each rounded at 2^-24 relative
RTOL, ATOL = 1e-5, 2e-6


def _net(text: str, source: str = "attn.yaml"):
    return netspec.loads("netspec: 1\nseed: 9\n" + text, source)


def _t(a):
    import torch

    return torch.from_numpy(np.ascontiguousarray(a))


@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_matches_torch_multihead_attention(causal):
    torch = pytest.importorskip("torch")
    e, heads = 16, 4
    net = _net(f"input: [6, {e}]\nlayers:\n  - {{type: multi_head_attention, name: mha, heads: {heads}, key_dim: 4, "
               f"causal: {str(causal).lower()}, bias: {{name: uniform, low: -0.3, high: 0.3}}}}\n")
    p = net.initialize()
    m = torch.nn.MultiheadAttention(e, heads, batch_first=True)
    m.load_state_dict({
        "in_proj_weight": _t(np.concatenate([p[f"mha.{n}.weights"].T for n in ("query", "key", "value")])),
        "in_proj_bias": _t(np.concatenate([p["mha.query.bias"], p["mha.key.bias"], p["mha.value.bias"]])),
        "out_proj.weight": _t(p["mha.output.weights"].T),
        "out_proj.bias": _t(p["mha.output.bias"]),
    }, strict=True)  # fmt: skip
    x = np.random.default_rng(2).standard_normal((3, 6, e)).astype(np.float32)
    mask = torch.triu(torch.ones(6, 6, dtype=torch.bool), 1) if causal else None
    with torch.no_grad():
        theirs, _ = m(_t(x), _t(x), _t(x), attn_mask=mask, need_weights=False)
    np.testing.assert_allclose(net.forward(x, p), theirs.numpy(), rtol=RTOL, atol=ATOL)


def test_cross_attention_matches_torch_with_kdim_vdim():
    torch = pytest.importorskip("torch")
    e, ctx, heads = 8, 5, 2
    net = _net(f"inputs: {{q: [4, {e}], c: [7, {ctx}]}}\nlayers:\n  - {{type: multi_head_attention, name: x, heads: "
               f"{heads}, key_dim: 4, inputs: [q, c], bias: {{name: normal, std: 0.2}}}}\n")
    p = net.initialize()
    assert p["x.key.weights"].shape == (ctx, e) and p["x.query.weights"].shape == (e, e)
    m = torch.nn.MultiheadAttention(e, heads, batch_first=True, kdim=ctx, vdim=ctx)
    m.load_state_dict({
        "q_proj_weight": _t(p["x.query.weights"].T), "k_proj_weight": _t(p["x.key.weights"].T),
        "v_proj_weight": _t(p["x.value.weights"].T),
        "in_proj_bias": _t(np.concatenate([p["x.query.bias"], p["x.key.bias"], p["x.value.bias"]])),
        "out_proj.weight": _t(p["x.output.weights"].T), "out_proj.bias": _t(p["x.output.bias"]),
    }, strict=True)  # fmt: skip
    rng = np.random.default_rng(3)
    q = rng.standard_normal((2, 4, e)).astype(np.float32)
    c = rng.standard_normal((2, 7, ctx)).astype(np.float32)
    with torch.no_grad():
        theirs, _ = m(_t(q), _t(c), _t(c), need_weights=False)
    np.testing.assert_allclose(net.forward({"q": q, "c": c}, p), theirs.numpy(), rtol=RTOL, atol=ATOL)


def test_value_dim_and_output_dim_match_scaled_dot_product_attention():
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    net = _net("input: [5, 6]\nlayers:\n  - {type: multi_head_attention, name: a, heads: 3, key_dim: 2, value_dim: 4, "
               "output_dim: 7, causal: true}\n")
    p = net.initialize()
    x = np.random.default_rng(4).standard_normal((2, 5, 6)).astype(np.float32)

    def heads(a, width):  # (b, t, h*w) -> (b, h, t, w)
        return _t(a).reshape(2, 5, 3, width).transpose(1, 2)

    widths = (("query", 2), ("key", 2), ("value", 4))
    q, k, v = (heads(x @ p[f"a.{n}.weights"] + p[f"a.{n}.bias"], w) for n, w in widths)
    o = f.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(2, 5, 12)
    theirs = o.numpy() @ p["a.output.weights"] + p["a.output.bias"]
    assert net.output_shape == (5, 7)
    np.testing.assert_allclose(net.forward(x, p), theirs, rtol=RTOL, atol=ATOL)


def test_fans_separate_keras_and_fused_torch():
    torch = pytest.importorskip("torch")
    from torch.nn.init import _calculate_fan_in_and_fan_out

    e = 12
    layer = f"input: [3, {e}]\nlayers:\n  - {{{{type: multi_head_attention, heads: 3, key_dim: 4{{}}}}}}\n"
    keras = {p.name: p.fans for p in _net(layer.format("")).layers[0].params}
    torch_net = _net(layer.format(", convention: torch"))
    fused = {p.name: p.fans for p in torch_net.layers[0].params}
    in_proj = _calculate_fan_in_and_fan_out(torch.empty(3 * e, e))  # torch's (3E, E) in_proj_weight
    for proj in ("query", "key", "value"):
        assert (fused[f"{proj}.weights"].fan_in, fused[f"{proj}.weights"].fan_out) == in_proj == (e, 3 * e)
        assert (keras[f"{proj}.weights"].fan_in, keras[f"{proj}.weights"].fan_out) == (e, e)  # Keras' explicit axes
    # torch's out_proj keeps nn.Linear's default: U(±1/sqrt(in_features))
    out = next(p for p in torch_net.layers[0].params if p.name == "output.weights")
    assert out.declared().support == pytest.approx((-1 / math.sqrt(e), 1 / math.sqrt(e)), rel=1e-12)
    glorot = next(p for p in torch_net.layers[0].params if p.name == "query.weights")
    assert glorot.declared().support[1] == pytest.approx(math.sqrt(6 / (e + 3 * e)), rel=1e-12)


def test_positional_embedding_adds_the_first_rows():
    net = _net("input: [4, 3]\nlayers:\n  - {type: positional_embedding, name: pos, length: 10}\n")
    p = net.initialize()
    assert p["pos.weights"].shape == (10, 3)
    x = np.random.default_rng(5).standard_normal((2, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(net.forward(x, p), x + p["pos.weights"][:4])


@pytest.mark.parametrize("text,expected", [
    ("input: [4, 3]\nlayers:\n  - {type: positional_embedding, length: 3}\n", "longer than length 3"),
    ("input: [4]\nlayers:\n  - {type: multi_head_attention, heads: 2, key_dim: 2}\n", "(sequence, features)"),
    ("inputs: {a: [4, 3], b: [5, 3]}\nlayers:\n  - {type: multi_head_attention, heads: 1, key_dim: 2, causal: true, "
     "inputs: [a, b]}\n", "one length"),
    ("input: [4, 3]\nlayers:\n  - {type: multi_head_attention, heads: 1, key_dim: 2, inputs: [input, input, input]}\n",
     "inputs"),
])  # fmt: skip
def test_attention_errors_are_located(text, expected):
    with pytest.raises(SpecError) as e:
        _net(text)
    assert "attn.yaml:" in str(e.value) and expected in str(e.value)


def _configs(net):
    return {f"{cl.name}.{p.name}": p.initializer.get_config() for cl in net.layers for p in cl.params}


def test_per_projection_keys_override_weights_and_bias_then_defaults_then_auto():
    from netspec.report.summary import explain

    net = _net("input: [4, 8]\ndefaults: {weights: lecun_normal, bias: ones}\nlayers:\n"
               "  - {type: multi_head_attention, name: a, heads: 2, key_dim: 4, weights: he_uniform,\n"
               "     output_weights: {name: normal, std: 0.01}, query_bias: zeros}\n"
               "  - {type: multi_head_attention, name: b, heads: 2, key_dim: 4, key_weights: orthogonal}\n")
    c = _configs(net)
    assert c["a.output.weights"] == {"name": "normal", "mean": 0.0, "std": 0.01}
    assert [c[f"a.{p}.weights"]["name"] for p in ("query", "key", "value")] == ["he_uniform"] * 3
    assert c["a.query.bias"]["name"] == "zeros" and c["a.key.bias"]["name"] == "ones"  # layer key, then defaults
    assert c["b.key.weights"]["name"] == "orthogonal" and c["b.query.weights"]["name"] == "lecun_normal"
    keys = {p.name: p.key for p in net.layers[0].params}
    assert keys["query.weights"] == "query_weights" and keys["output.bias"] == "output_bias"
    origin = {e["parameter"]: e["origin"] for e in explain(net)}
    assert origin["a.output.weights"] == "layer key 'output_weights'"
    assert origin["a.query.weights"] == "layer key 'weights' (query_weights not written)"
    assert origin["a.key.bias"] == "defaults.bias (key_bias not written) (kernel fans)"
    assert origin["b.key.weights"] == "layer key 'key_weights'"
    assert origin["b.value.weights"] == "defaults.weights (value_weights not written)"


def test_torch_convention_auto_is_resolved_per_projection():
    from netspec.report.summary import explain

    net = _net("input: [4, 8]\nlayers:\n  - {type: multi_head_attention, name: a, heads: 2, key_dim: 4, "
               "convention: torch, query_weights: auto}\n")  # fmt: skip
    c = _configs(net)
    assert c["a.output.weights"]["name"] == "torch_kaiming_uniform" and c["a.query.weights"]["name"] == "glorot_uniform"
    origin = {e["parameter"]: e["origin"] for e in explain(net)}
    assert "nn.Linear's default" in origin["a.output.weights"] and "output_weights and weights" in origin[
        "a.output.weights"]
    assert origin["a.query.weights"].startswith("layer key 'query_weights'; auto:")
    # a general key written on the layer is taken at its word, output projection included (as before)
    written = _configs(_net("input: [4, 8]\nlayers:\n  - {type: multi_head_attention, name: a, heads: 2, key_dim: 4, "
                            "convention: torch, weights: glorot_uniform}\n"))  # fmt: skip
    assert written["a.output.weights"]["name"] == "glorot_uniform"


def test_per_projection_keys_draw_their_own_law():
    # the output projection's std follows its own key: a wrong key routing would fail this by a factor of 10
    from netspec.check.checks import check_values

    net = _net("input: [4, 64]\nlayers:\n  - {type: multi_head_attention, name: a, heads: 4, key_dim: 16, "
               "weights: {name: normal, std: 0.2}, output_weights: {name: normal, std: 0.02}}\n")  # fmt: skip
    p = net.initialize()
    for path, spec in net.parameters():
        assert all(r.ok is not False for r in check_values(p[path], spec.declared(), alpha=1e-6)), path
    assert {path: spec.declared().std for path, spec in net.parameters() if path.endswith("weights")} == {
        "a.query.weights": 0.2, "a.key.weights": 0.2, "a.value.weights": 0.2, "a.output.weights": 0.02}


def test_a_per_projection_key_error_is_located_at_the_key_that_decided():
    with pytest.raises(SpecError) as e:
        _net("input: [4, 8]\nlayers:\n  - {type: multi_head_attention, heads: 2, key_dim: 4, value_bias: identity, "
             "output_weights: {name: normal, std: -1}}\n")  # fmt: skip
    text = str(e.value)
    assert "(at layers[0].output_weights)" in text and "std must be > 0" in text
    with pytest.raises(SpecError) as e:
        _net("input: [4, 8]\ndefaults: {weights: dirac}\nlayers:\n  - {type: multi_head_attention, heads: 2, "
             "key_dim: 4}\n")  # fmt: skip
    assert "(at defaults.weights)" in str(e.value)
