"""Hugging Face round trip: import a config, build, export, ``from_pretrained``, compare logits; audit checkpoints.

Needs the ``hf`` extra (transformers, torch); skipped without it.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

transformers = pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")
torch = pytest.importorskip("torch", reason="the hf extra needs torch")

import netspec  # noqa: E402
from netspec.importers.hf import describe  # noqa: E402
from netspec.importers.hf_spec import spec_text  # noqa: E402

LLAMA = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 211, "hidden_size": 64,
    "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 8, "num_key_value_heads": 2,
    "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "initializer_range": 0.02, "rope_theta": 10000.0,
    "tie_word_embeddings": False, "torch_dtype": "float32",
}  # fmt: skip
QWEN2 = {**LLAMA, "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "use_sliding_window": False,
         "rope_theta": 1000000.0}  # fmt: skip
GPT2 = {
    "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 211, "n_embd": 64, "n_head": 4,
    "n_layer": 3, "n_positions": 48, "activation_function": "gelu_new", "initializer_range": 0.02,
}  # fmt: skip
CONFIGS = {"llama-gqa": LLAMA, "qwen2-qkv-bias": QWEN2, "gpt2-tied": GPT2}


def _config(config: dict) -> object:
    return transformers.AutoConfig.for_model(config["model_type"], **{k: v for k, v in config.items()
                                                                      if k != "model_type"})  # fmt: skip


def _write_config(folder, config: dict) -> str:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as fh:
        json.dump(config, fh)
    return str(folder)


def _imported(config: dict, seed: int = 0):
    text = spec_text(describe(config), "tiny", "config.json", seed=seed)
    return netspec.loads(text, "tiny.yaml")


@pytest.mark.parametrize("which", sorted(CONFIGS))
def test_export_loads_in_transformers_and_computes_netspecs_logits(which, tmp_path):
    from netspec.export import hf as hf_export

    config = CONFIGS[which]
    net = _imported(config)
    params = net.initialize()
    out = tmp_path / "export"
    hf_export.save(net, str(out), params=params)
    model, info = transformers.AutoModelForCausalLM.from_pretrained(str(out), output_loading_info=True)
    assert {k: v for k, v in info.items() if v} == {}, info  # no missing, unexpected or mismatched keys
    ids = np.random.default_rng(0).integers(0, config["vocab_size"], size=(2, 11))
    with torch.no_grad():
        theirs = model.float().eval()(torch.from_numpy(ids)).logits.numpy()
    ours = net.forward(ids, params)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def _from_config(config: dict, folder, seed: int, tamper=None) -> str:
    """A checkpoint as transformers initializes it (``from_config``), optionally tampered with, saved."""
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(_config(config))
    if tamper is not None:
        with torch.no_grad():
            tamper(model)
    model.save_pretrained(str(folder))
    return str(folder)


@pytest.mark.parametrize("which", sorted(CONFIGS))
def test_transformers_own_initialization_passes_the_audit(which, tmp_path):
    """Three seeds per architecture, each audited at family-wise alpha 1e-3: nine audits, so a false alarm
    anywhere has probability at most 9e-3 (and the seeds are fixed: the outcome is deterministic)."""
    from netspec.check.audit import audit

    for seed in range(3):
        report = audit(_from_config(CONFIGS[which], tmp_path / f"s{seed}", seed), alpha=1e-3)
        assert report.passed, report.failed
        assert len(report.tensors) == len(set(transformers_keys(tmp_path / f"s{seed}")))


def transformers_keys(folder) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "np") as fh:
        return list(fh.keys())


def test_audit_names_exactly_the_c_proj_tensors_of_the_gpt2_bug(tmp_path):
    """huggingface/transformers#47458: c_proj drawn at N(0, 0.02^2) instead of N(0, (0.02/sqrt(2L))^2)."""
    from netspec.check.audit import audit

    def bug(model):
        for block in model.transformer.h:
            torch.nn.init.normal_(block.attn.c_proj.weight, std=0.02)
            torch.nn.init.normal_(block.mlp.c_proj.weight, std=0.02)

    report = audit(_from_config(GPT2, tmp_path / "bug", 0, bug))
    expected = {f"transformer.h.{i}.{part}.c_proj.weight" for i in range(GPT2["n_layer"]) for part in ("attn", "mlp")}
    assert set(report.failed) == expected


def test_audit_names_exactly_the_too_wide_o_proj_tensors(tmp_path):
    from netspec.check.audit import audit

    def wide(model):
        for layer in model.model.layers:
            torch.nn.init.normal_(layer.self_attn.o_proj.weight, std=0.2)

    report = audit(_from_config(LLAMA, tmp_path / "wide", 0, wide))
    layers = range(LLAMA["num_hidden_layers"])
    assert set(report.failed) == {f"model.layers.{i}.self_attn.o_proj.weight" for i in layers}
