"""The layers of today's decoder transformers against PyTorch at float32 tolerance: RMSNorm (``nn.RMSNorm``),
grouped-query attention (``F.scaled_dot_product_attention(enable_gqa=True)``), rotary position embeddings
in both layouts (the formulas of Hugging Face's ``apply_rotary_pos_emb`` and of Meta's/GPT-J's interleaved
complex rotation, written out here in torch), causal masks, and tied output embeddings.

Tolerance: float32 sums of at most a few dozen O(1) products and a softmax, each rounded at 2^-24
relative: rtol 1e-5, atol 2e-6 (as tests/test_attention.py). A wrong layout, head grouping or epsilon
placement changes outputs at O(1e-2) or more."""

import numpy as np
import pytest

import netspec

RTOL, ATOL = 1e-5, 2e-6


def _net(text: str, source: str = "llm.yaml"):
    return netspec.loads("netspec: 1\nseed: 3\n" + text, source)


def _t(a):
    import torch

    return torch.from_numpy(np.ascontiguousarray(a))


@pytest.mark.parametrize("epsilon", [None, 1e-5, 1e-2])
def test_rms_norm_matches_torch_rmsnorm(epsilon):
    torch = pytest.importorskip("torch")
    key = "" if epsilon is None else f", epsilon: {epsilon}"
    net = _net(f"input: [5, 16]\nlayers:\n  - {{type: rms_norm, name: norm{key}}}\n")
    rng = np.random.default_rng(1)
    gamma = rng.uniform(0.5, 1.5, 16).astype(np.float32)  # not ones: the scale must be applied per feature
    x = (rng.standard_normal((3, 5, 16)) * np.array([1e-3, 1e-2, 1.0])[:, None, None]).astype(np.float32)
    m = torch.nn.RMSNorm(16, eps=1e-6 if epsilon is None else epsilon)  # netspec's default epsilon is 1e-6
    m.load_state_dict({"weight": _t(gamma)})
    with torch.no_grad():
        theirs = m(_t(x)).numpy()
    np.testing.assert_allclose(net.forward(x, {"norm.gamma": gamma}), theirs, rtol=RTOL, atol=ATOL)
    assert net.initialize()["norm.gamma"].tolist() == [1.0] * 16 and [p.name for p in net.layers[0].params] == [
        "gamma"]


def _heads(torch, a, n):  # (b, t, n * w) -> (b, n, t, w)
    return a.reshape(a.shape[0], a.shape[1], n, -1).transpose(1, 2)


def _projections(torch, p, name, x, heads, kv_heads):
    """q, k, v as (b, heads, t, w) from the layer's own tensors, by plain matrix products (no netspec code)."""
    out = []
    for proj, n in (("query", heads), ("key", kv_heads), ("value", kv_heads)):
        y = x @ _t(p[f"{name}.{proj}.weights"])
        if f"{name}.{proj}.bias" in p:
            y = y + _t(p[f"{name}.{proj}.bias"])
        out.append(_heads(torch, y, n))
    return out


def _output(torch, p, name, o):
    y = o.transpose(1, 2).reshape(o.shape[0], o.shape[2], -1) @ _t(p[f"{name}.output.weights"])
    return y + _t(p[f"{name}.output.bias"]) if f"{name}.output.bias" in p else y


def rotate_half_reference(torch, q, theta, rot):
    """Hugging Face's Llama rotary embedding written out (LlamaRotaryEmbedding + apply_rotary_pos_emb, float32),
    on the first ``rot`` features (partial rotary as Phi / GPT-NeoX: the rest pass through)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, rot, 2, dtype=torch.int64).float() / rot))
    freqs = torch.outer(torch.arange(q.shape[2]).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()

    def rotate_half(x):
        x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
        return torch.cat((-x2, x1), dim=-1)

    q_rot, q_pass = q[..., :rot], q[..., rot:]
    return torch.cat((q_rot * cos + rotate_half(q_rot) * sin, q_pass), dim=-1)


def interleaved_reference(torch, q, theta, rot):
    """Meta's Llama ``apply_rotary_emb``: pairs (2i, 2i + 1) as complex numbers times e^(i p f_i) (GPT-J's layout)."""
    freqs = 1.0 / (theta ** (torch.arange(0, rot, 2)[: rot // 2].float() / rot))
    freqs_cis = torch.polar(torch.ones(q.shape[2], rot // 2), torch.outer(torch.arange(q.shape[2]).float(), freqs))
    q_ = torch.view_as_complex(q[..., :rot].float().reshape(*q.shape[:-1], -1, 2))
    return torch.cat((torch.view_as_real(q_ * freqs_cis).flatten(3), q[..., rot:]), dim=-1)


@pytest.mark.parametrize(("heads", "kv_heads", "causal"), [(8, 2, False), (8, 2, True), (6, 1, True), (4, 4, True)])
def test_grouped_query_attention_matches_sdpa_enable_gqa(heads, kv_heads, causal):
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    net = _net(f"input: [7, 24]\nlayers:\n  - {{type: multi_head_attention, name: a, heads: {heads}, key_dim: 4, "
               f"kv_heads: {kv_heads}, value_dim: 3, causal: {str(causal).lower()}, "
               "bias: {name: normal, std: 0.3}}\n")
    p = net.initialize()
    assert p["a.key.weights"].shape == (24, kv_heads * 4) and p["a.value.weights"].shape == (24, kv_heads * 3)
    assert net.layers[0].num_params == (24 + 1) * (heads * 4 + kv_heads * 4 + kv_heads * 3) + (heads * 3 + 1) * 24
    x = np.random.default_rng(7).standard_normal((2, 7, 24)).astype(np.float32)
    with torch.no_grad():
        q, k, v = _projections(torch, p, "a", _t(x), heads, kv_heads)
        o = f.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
        theirs = _output(torch, p, "a", o).numpy()
    np.testing.assert_allclose(net.forward(x, p), theirs, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("layout", "fraction", "kv_heads"), [("half_split", 1.0, 2), ("interleaved", 1.0, 2),
                                                              ("half_split", 0.5, 4), ("interleaved", 0.5, 1)])
def test_rotary_attention_matches_the_reference_formulas(layout, fraction, kv_heads):
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    theta, key_dim = 500.0, 8  # a small theta turns the slow pairs too, within 9 positions
    net = _net(f"input: [9, 16]\nlayers:\n  - {{type: multi_head_attention, name: a, heads: 4, key_dim: {key_dim}, "
               f"kv_heads: {kv_heads}, causal: true, use_bias: false, "
               f"rotary: {{theta: {theta}, layout: {layout}, fraction: {fraction}}}}}\n")  # fmt: skip
    p = net.initialize()
    reference = rotate_half_reference if layout == "half_split" else interleaved_reference
    rot = int(key_dim * fraction)
    x = np.random.default_rng(8).standard_normal((2, 9, 16)).astype(np.float32)
    with torch.no_grad():
        q, k, v = _projections(torch, p, "a", _t(x), 4, kv_heads)
        q, k = reference(torch, q, theta, rot), reference(torch, k, theta, rot)
        o = f.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        theirs = _output(torch, p, "a", o).numpy()
        other = rotate_half_reference if layout == "interleaved" else interleaved_reference
        q2, k2, v2 = _projections(torch, p, "a", _t(x), 4, kv_heads)
        wrong = _output(torch, p, "a", f.scaled_dot_product_attention(
            other(torch, q2, theta, rot), other(torch, k2, theta, rot), v2, is_causal=True, enable_gqa=True)).numpy()
    ours = net.forward(x, p)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)
    assert np.abs(ours - wrong).max() > 1e-3  # the two layouts differ: the test tells them apart


def test_rotary_keeps_relative_positions():
    # RoPE's defining property: scores depend on positions only through their difference, so a sequence
    # shifted by one place (same tokens) gives the same attention output at the shifted places (causal).
    net = _net("input: [6, 8]\nlayers:\n  - {type: multi_head_attention, name: a, heads: 2, key_dim: 4, "
               "causal: true, rotary: {theta: 50}}\n")  # fmt: skip
    p = net.initialize()
    x = np.random.default_rng(3).standard_normal((1, 5, 8)).astype(np.float32)
    padded = np.concatenate([x[:, :1], x], axis=1)  # x0, x0, x1, ...: the shifted copy sees one more key
    ours = net.forward(padded, p)
    plain = _net("input: [6, 8]\nlayers:\n  - {type: multi_head_attention, name: a, heads: 2, key_dim: 4, "
                 "causal: true}\n")  # fmt: skip
    assert not np.allclose(ours, plain.forward(padded, p), atol=1e-3)  # rotary changes the output
    # the second copy of x0 attends to (x0 at distance 1, x0 at distance 0), the first to x0 at distance 0
    single = net.forward(np.concatenate([x[:, :1]] * 6, axis=1), p)
    np.testing.assert_allclose(single, np.broadcast_to(single[:, :1], single.shape), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("text", "expected"), [
    ("heads: 6, key_dim: 4, kv_heads: 4", "kv_heads (4) must divide heads (6)"),
    ("heads: 2, key_dim: 3, rotary: {}", "even number"),
    ("heads: 2, key_dim: 4, rotary: {fraction: 0.25}", "gives 1"),
])  # fmt: skip
def test_grouped_and_rotary_errors_are_located(text, expected):
    from netspec.errors import SpecError

    with pytest.raises(SpecError) as e:
        _net(f"input: [5, 8]\nlayers:\n  - {{type: multi_head_attention, {text}}}\n")
    assert "llm.yaml:5:" in str(e.value) and expected in str(e.value)


TIED = ("input: [6]\nlayers:\n  - {type: embedding, name: tokens, vocab: 13, dim: 8}\n"
        "  - {type: layer_norm, name: ln}\n  - {type: dense, name: lm_head, units: 13, tie: tokens, use_bias: false}\n")


def test_tied_head_matches_a_torch_model_that_ties_its_weights():
    torch = pytest.importorskip("torch")
    net = _net(TIED)
    p = net.initialize()
    assert set(p) == {"tokens.weights", "ln.gamma", "ln.beta"} and net.num_params == 13 * 8 + 16  # counted once

    class Reference(torch.nn.Module):  # GPT-2's head: lm_head.weight is wte.weight (transformers' tie_weights)
        def __init__(self):
            super().__init__()
            self.wte, self.ln = torch.nn.Embedding(13, 8), torch.nn.LayerNorm(8, eps=1e-5)
            self.lm_head = torch.nn.Linear(8, 13, bias=False)
            self.lm_head.weight = self.wte.weight

        def forward(self, ids):
            return self.lm_head(self.ln(self.wte(ids)))

    ref = Reference()
    with torch.no_grad():
        ref.wte.weight.copy_(_t(p["tokens.weights"]))
    ids = np.random.default_rng(4).integers(0, 13, (3, 6))
    with torch.no_grad():
        theirs = ref(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(net.forward(ids, p), theirs, rtol=RTOL, atol=ATOL)


def test_a_tied_kernel_is_exported_tied_and_verified_once(tmp_path):
    torch = pytest.importorskip("torch")
    from netspec.check.verify import verify_network
    from netspec.export.torch import read_file, save, to_module
    from netspec.io.weights import load
    from netspec.report.summary import explain, rows

    net = _net(TIED)
    p = net.initialize()
    m = to_module(net, p)
    assert m.lm_head.weight is m.tokens.weight  # one Parameter: training updates both uses
    assert sum(t.numel() for t in m.parameters()) == net.num_params
    ids = torch.from_numpy(np.random.default_rng(5).integers(0, 13, (2, 6)))
    m.train()
    torch.nn.functional.cross_entropy(m(ids).reshape(-1, 13), ids.reshape(-1)).backward()
    grad = m.tokens.weight.grad.clone()
    m.zero_grad()
    m.lm_head.weight = torch.nn.Parameter(m.tokens.weight.detach().clone())  # untied: the embedding's share only
    torch.nn.functional.cross_entropy(m(ids).reshape(-1, 13), ids.reshape(-1)).backward()
    assert not torch.allclose(grad, m.tokens.weight.grad)  # the tied gradient is the sum of both uses
    save(net, p, str(tmp_path / "m.pt"))
    save(net, p, str(tmp_path / "m.safetensors"))
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert state["lm_head.weight"].data_ptr() == state["tokens.weight"].data_ptr()  # stored once
    assert "lm_head.weight" not in load(str(tmp_path / "m.safetensors"))  # left out, as Hugging Face does
    for name in ("m.pt", "m.safetensors"):
        back = read_file(net, str(tmp_path / name))
        assert back.keys() == p.keys() and all(back[k].tobytes() == p[k].tobytes() for k in p)
    report = verify_network(net, p)
    assert [t.name for t in report.tensors] == ["tokens.weights", "ln.gamma", "ln.beta"] and report.passed
    assert {e["parameter"]: e.get("tied") for e in explain(net)}["tokens.weights"] == ["lm_head.weights"]
    assert "tied to tokens.weights" in net.summary() and rows(net)[-1]["params"] == 0


def test_a_tied_kernel_is_one_onnx_initializer_and_no_flax_variable():
    pytest.importorskip("onnx")
    pytest.importorskip("flax")
    from netspec.export.flax import variables
    from netspec.export.onnx import build_model

    net = _net(TIED)
    p = net.initialize()
    model = build_model(net, p)
    assert sorted(t.name for t in model.graph.initializer if "." in t.name and "/" not in t.name) == [
        "ln.beta", "ln.gamma", "tokens.weights"]
    assert set(variables(net, p)["params"]) == {"tokens", "ln"}  # the head reads the embedding (Embed.attend)


@pytest.mark.parametrize(("layers", "expected", "at"), [
    ("  - {type: dense, units: 12, tie: tokens}\n", "the kernel (8, 12) is not tokens's table (13, 8) transposed",
     "layers[1].tie"),
    ("  - {type: dense, units: 13, tie: tokenz}\n", "did you mean 'tokens'", "layers[1].tie"),
    ("  - {type: dense, name: d, units: 8}\n  - {type: dense, units: 8, tie: d}\n", "tie takes an embedding layer",
     "layers[2].tie"),
    ("  - {type: dense, units: 13, tie: later}\n  - {type: embedding, name: later, vocab: 13, dim: 8, inputs: input}\n",
     "later layer", "layers[1].tie"),
    ("  - {type: dense, units: 13, tie: tokens, weights: he_normal}\n", "no kernel of its own", "layers[1].weights"),
])  # fmt: skip
def test_tie_errors_are_located(layers, expected, at):
    from netspec.errors import SpecError

    with pytest.raises(SpecError) as e:
        _net("input: [6]\nlayers:\n  - {type: embedding, name: tokens, vocab: 13, dim: 8}\n" + layers)
    assert expected in str(e.value) and f"(at {at})" in str(e.value)


def test_tie_inside_a_block_locks_the_table_once():
    from netspec.vcs.lock import build_lock

    net = _net("input: [6]\nblocks:\n  lm:\n    layers:\n      - {type: embedding, name: tok, vocab: 13, dim: 8}\n"
               "      - {type: dense, name: head, units: 13, tie: tok, use_bias: false}\n"
               "layers:\n  - {block: lm, name: a}\n")  # fmt: skip
    assert net.layers[-1].tied == {"weights": "a.tok.weights"}
    assert set(build_lock(net)["tensors"]) == {"a.tok.weights"}  # the lock holds the table once
