"""The GPT-2 and Llama example specs against the models they describe.

``specs/large/gpt2-small.yaml`` and ``specs/large/llama-1b.yaml`` have the parameter counts of
transformers' GPT2LMHeadModel (gpt2) and of TinyLlama-1.1B's LlamaForCausalLM; their toy versions
``specs/gpt2-tiny.yaml`` and ``specs/llama-tiny.yaml`` (the same blocks, ``specs/large/decoders.yaml``)
compute what transformers' models compute with netspec's weights loaded (logits at float32 tolerance,
rtol = atol = 1e-4: two layers of attention and MLP over 64 features, each product summed in another
order; a wrong head grouping, rotary layout, norm or tie changes logits at O(1e-2)), and transformers'
own initialization of each tensor follows the law netspec declares for it (the statistical checks of
``netspec verify`` at family-wise alpha 1e-3, which fail for a std off by sqrt(2): the residual
projections' 1/sqrt(2 L) would not pass unscaled). The transformers tests run where transformers is
installed (``.ci/run`` installs it); the counts are also derived here by hand.
"""

from pathlib import Path

import numpy as np
import pytest

import netspec
from netspec.check.checks import check_values

SPECS = Path(__file__).resolve().parent.parent / "specs"
RTOL = ATOL = 1e-4


def _gpt2_count(vocab, n_ctx, d, layers):
    """GPT2LMHeadModel's parameters: wte, wpe, per block ln_1, c_attn (d, 3d) + bias, attn c_proj, ln_2, c_fc
    (d, 4d) + bias, mlp c_proj (4d, d) + bias, then ln_f; lm_head is wte (tied)."""
    block = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * 4 * d + 4 * d) + (4 * d * d + d)
    return vocab * d + n_ctx * d + layers * block + 2 * d


def _llama_count(vocab, d, ffn, heads, kv_heads, layers):
    """LlamaForCausalLM without biases: embed_tokens, per layer q/o (d, d), k/v (d, kv_heads * head_dim),
    gate/up/down (d, ffn), two RMSNorms; then norm and an untied lm_head."""
    head_dim = d // heads
    attention = 2 * d * d + 2 * d * kv_heads * head_dim
    return vocab * d + layers * (attention + 3 * d * ffn + 2 * d) + d + vocab * d


def test_the_large_specs_have_the_reference_parameter_counts():
    gpt2 = netspec.load(str(SPECS / "large" / "gpt2-small.yaml"))
    llama = netspec.load(str(SPECS / "large" / "llama-1b.yaml"))
    assert gpt2.num_params == _gpt2_count(50257, 1024, 768, 12) == 124_439_808
    assert llama.num_params == _llama_count(32000, 2048, 5632, 32, 4, 22) == 1_100_048_384
    assert "wte.weights" in dict(gpt2.parameters()) and "lm_head.weights" not in dict(gpt2.parameters())
    assert gpt2.layers[-1].tied == {"weights": "wte.weights"}
    stds = {name: p.declared().std for name, p in gpt2.parameters() if name.endswith("weights")}
    assert stds["h_7.c_proj.weights"] == stds["h_7.attn.output.weights"] == pytest.approx(0.02 / 24**0.5)
    assert stds["h_7.c_fc.weights"] == stds["h_7.attn.query.weights"] == stds["wpe.weights"] == 0.02


def _gpt2_state(net, params, layers):
    """netspec's GPT-2 tensors under transformers' names (Conv1D kernels are (in, out), netspec's layout)."""
    state = {"transformer.wte.weight": params["wte.weights"], "transformer.wpe.weight": params["wpe.weights"],
             "transformer.ln_f.weight": params["ln_f.gamma"], "transformer.ln_f.bias": params["ln_f.beta"]}
    for i in range(layers):
        ours, theirs = f"h_{i + 1}", f"transformer.h.{i}"
        for norm in ("ln_1", "ln_2"):
            state[f"{theirs}.{norm}.weight"] = params[f"{ours}.{norm}.gamma"]
            state[f"{theirs}.{norm}.bias"] = params[f"{ours}.{norm}.beta"]
        for kind in ("weights", "bias"):
            hf = "weight" if kind == "weights" else "bias"
            qkv = [params[f"{ours}.attn.{p}.{kind}"] for p in ("query", "key", "value")]
            state[f"{theirs}.attn.c_attn.{hf}"] = np.concatenate(qkv, axis=-1)
            state[f"{theirs}.attn.c_proj.{hf}"] = params[f"{ours}.attn.output.{kind}"]
            state[f"{theirs}.mlp.c_fc.{hf}"] = params[f"{ours}.c_fc.{kind}"]
            state[f"{theirs}.mlp.c_proj.{hf}"] = params[f"{ours}.c_proj.{kind}"]
    return state


def _llama_mapping(layers):
    """transformers' LlamaForCausalLM names of netspec's torch export (netspec.torch.load_into renames)."""
    mapping = {"embed_tokens.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight",
               "lm_head.weight": "lm_head.weight"}  # fmt: skip
    for i in range(layers):
        ours, theirs = f"layers_{i + 1}", f"model.layers.{i}"
        for a, b in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj"), ("output", "o_proj")):
            mapping[f"{ours}.self_attn.{a}.weight"] = f"{theirs}.self_attn.{b}.weight"
        for proj in ("gate_proj", "up_proj", "down_proj"):
            mapping[f"{ours}.{proj}.weight"] = f"{theirs}.mlp.{proj}.weight"
        for norm in ("input_layernorm", "post_attention_layernorm"):
            mapping[f"{ours}.{norm}.weight"] = f"{theirs}.{norm}.weight"
    return mapping


def _gpt2_config(transformers, **sizes):
    return transformers.GPT2Config(activation_function="gelu_new", layer_norm_epsilon=1e-5, **sizes)


def _llama_config(transformers, **sizes):
    return transformers.LlamaConfig(rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=False,
                                    attention_bias=False, mlp_bias=False, hidden_act="silu", **sizes)  # fmt: skip


TINY_GPT2 = {"vocab_size": 1000, "n_positions": 64, "n_embd": 64, "n_layer": 2, "n_head": 4}
TINY_LLAMA = {"vocab_size": 1000, "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2,
              "num_attention_heads": 8, "num_key_value_heads": 2, "max_position_embeddings": 64}  # fmt: skip


def test_transformers_counts_the_large_models_as_netspec_does():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):  # shapes only
        gpt2 = transformers.GPT2LMHeadModel(_gpt2_config(transformers))
        llama = transformers.LlamaForCausalLM(_llama_config(
            transformers, vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
            num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048))  # fmt: skip
    assert sum(p.numel() for p in gpt2.parameters()) == netspec.load(str(SPECS / "large/gpt2-small.yaml")).num_params
    assert sum(p.numel() for p in llama.parameters()) == netspec.load(str(SPECS / "large/llama-1b.yaml")).num_params


def test_gpt2_tiny_computes_transformers_gpt2():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    net = netspec.load(str(SPECS / "gpt2-tiny.yaml"))
    params = net.initialize()
    model = transformers.GPT2LMHeadModel(_gpt2_config(transformers, **TINY_GPT2)).eval()
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in _gpt2_state(net, params, 2).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert set(missing) <= {"lm_head.weight"} and not unexpected  # the head is wte, tied
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    ids = np.random.default_rng(1).integers(0, 1000, (2, 37))
    with torch.no_grad():
        theirs = model(torch.from_numpy(ids)).logits.numpy()
    np.testing.assert_allclose(net.forward(ids, params), theirs, rtol=RTOL, atol=ATOL)


def test_llama_tiny_computes_transformers_llama():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from netspec.export.torch import load_into

    net = netspec.load(str(SPECS / "llama-tiny.yaml"))
    params = net.initialize()
    model = transformers.LlamaForCausalLM(_llama_config(transformers, **TINY_LLAMA)).eval()
    load_into(model, net, params, mapping=_llama_mapping(2))  # every tensor named, shaped and copied, or an error
    ids = np.random.default_rng(2).integers(0, 1000, (2, 41))
    with torch.no_grad():
        theirs = model(torch.from_numpy(ids)).logits.numpy()
    np.testing.assert_allclose(net.forward(ids, params), theirs, rtol=RTOL, atol=ATOL)


def _follows(net, theirs, names):
    """Every netspec tensor's declared law fits transformers' own initial values (names: ours -> theirs)."""
    declared = dict(net.parameters())
    bad = {}
    m = len(names)
    for ours, key in names.items():
        values = theirs[key].detach().numpy()
        values = values.T if values.ndim == 2 and values.shape != declared[ours].shape else values
        failed = [r.name for r in check_values(values, declared[ours].declared(), alpha=1e-3 / (3 * m))
                  if r.ok is False]  # fmt: skip
        if failed:
            bad[ours] = failed
    assert not bad, bad


def test_transformers_initializes_as_the_specs_declare():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    gpt2 = netspec.load(str(SPECS / "gpt2-tiny.yaml"))
    theirs = transformers.GPT2LMHeadModel(_gpt2_config(transformers, **TINY_GPT2)).state_dict()
    names = {"wte.weights": "transformer.wte.weight", "wpe.weights": "transformer.wpe.weight"}
    for i in range(2):
        names |= {f"h_{i + 1}.attn.output.weights": f"transformer.h.{i}.attn.c_proj.weight",
                  f"h_{i + 1}.c_fc.weights": f"transformer.h.{i}.mlp.c_fc.weight",
                  f"h_{i + 1}.c_proj.weights": f"transformer.h.{i}.mlp.c_proj.weight"}  # fmt: skip
    _follows(gpt2, theirs, names)
    llama = netspec.load(str(SPECS / "llama-tiny.yaml"))
    theirs = transformers.LlamaForCausalLM(_llama_config(transformers, **TINY_LLAMA)).state_dict()
    own = dict(llama.parameters())
    kernels = {f"{ours.rsplit('.', 1)[0]}.weights": key for ours, key in _llama_mapping(2).items()}
    _follows(llama, theirs, {ours: key for ours, key in kernels.items() if ours in own})
