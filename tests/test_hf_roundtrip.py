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
