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
