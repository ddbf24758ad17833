"""Hugging Face config.json -> HFModel: both config forms, every refused field named (no transformers needed)."""

from __future__ import annotations

import json

import pytest

from netspec.errors import NetspecError
from netspec.importers.hf import HFConfigError, describe, read_config

TINY_LLAMA_V4 = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 97,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 64,
    "rms_norm_eps": 1e-5,
    "initializer_range": 0.02,
    "rope_theta": 500000.0,
    "rope_scaling": None,
    "torch_dtype": "float32",
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "transformers_version": "4.46.0",
}


def _v5(config: dict) -> dict:
    """The transformers 5 form of a transformers 4 config (rope_parameters, dtype)."""
    out = {k: v for k, v in config.items() if k not in ("rope_theta", "rope_scaling", "torch_dtype")}
    out["rope_parameters"] = {"rope_type": "default", "rope_theta": config["rope_theta"]}
    out["dtype"] = config["torch_dtype"]
    return out


def test_llama_both_config_forms_describe_one_model():
    v4, v5 = describe(TINY_LLAMA_V4), describe(_v5(TINY_LLAMA_V4))
    assert (v4.d, v4.heads, v4.kv_heads, v4.head_dim, v4.d_ff, v4.n_layers) == (32, 4, 2, 8, 48, 2)
    assert v4.rope_theta == v5.rope_theta == 500000.0
    assert v4.dtype == v5.dtype == "float32"
    assert (v4.family, v4.tie, v4.qkv_bias, v4.out_bias) == ("llama", False, False, False)
    assert v4.norm_eps == 1e-5 and v4.std == 0.02
    assert v4.carried["bos_token_id"] == 1 and "hidden_size" not in v4.carried
    assert v4.unknown == ()


def test_qwen2_has_qkv_biases_and_mistral_shares_the_layout():
    qwen = describe({**TINY_LLAMA_V4, "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                     "use_sliding_window": False, "sliding_window": 16})  # fmt: skip
    assert (qwen.qkv_bias, qwen.out_bias) == (True, False)
    mistral = describe({**TINY_LLAMA_V4, "architectures": ["MistralForCausalLM"], "sliding_window": None})
    assert (mistral.family, mistral.qkv_bias) == ("llama", False)


def test_gpt2_defaults_follow_transformers():
    m = describe({"architectures": ["GPT2LMHeadModel"], "n_embd": 64, "n_head": 4, "n_layer": 3, "vocab_size": 101,
                  "n_positions": 32, "activation_function": "gelu_new"})  # fmt: skip
    assert (m.d_ff, m.tie, m.head_dim, m.norm_eps, m.std) == (256, True, 16, 1e-5, 0.02)
    assert m.activation == {"name": "gelu", "approximate": "tanh"}


def test_unknown_fields_are_carried_and_named():
    m = describe({**TINY_LLAMA_V4, "my_custom_flag": 3})
    assert m.unknown == ("my_custom_flag",)
    assert m.carried["my_custom_flag"] == 3


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"architectures": ["LlamaForCausalLm"]}, "architectures", "did you mean 'LlamaForCausalLM'"),
        ({"architectures": ["BertModel"]}, "architectures", "not an architecture netspec imports"),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "rope_scaling.rope_type", "'yarn' is not implemented"),
        ({"rope_scaling": {"type": "linear", "factor": 2.0}}, "rope_scaling.rope_type", "'linear' is not implemented"),
        ({"hidden_size": 32.5}, "hidden_size", "must be an integer"),
        ({"hidden_size": None}, "hidden_size", "must be an integer"),
        ({"num_key_value_heads": 3}, "num_key_value_heads", "does not divide"),
        ({"hidden_act": "gelu_neww"}, "hidden_act", "did you mean 'gelu_new'"),
        ({"torch_dtype": "int8"}, "torch_dtype", "not a floating-point type"),
        ({"tie_word_embeddings": "yes"}, "tie_word_embeddings", "must be true or false"),
        ({"rms_norm_eps": -1}, "rms_norm_eps", "must be > 0"),
        ({"pad_token_id": 97}, "pad_token_id", "not below vocab_size"),
        ({"architectures": ["MistralForCausalLM"], "sliding_window": 16}, "sliding_window", "sliding-window"),
        ({"architectures": ["Qwen2ForCausalLM"], "use_sliding_window": True, "sliding_window": 16},
         "use_sliding_window", "sliding-window"),
        ({"rope_parameters": {"full_attention": {"rope_theta": 1.0}}}, "rope_parameters", "per-layer-type"),
    ],
)  # fmt: skip
def test_fields_netspec_cannot_honour_are_named(change, field, words):
    config = {**TINY_LLAMA_V4, **change}
    with pytest.raises(HFConfigError) as err:
        describe(config, "cfg/config.json")
    assert f"cfg/config.json: {field}:" in str(err.value)
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
        ({"scale_attn_weights": False}, "scale_attn_weights"),
        ({"add_cross_attention": True}, "add_cross_attention"),
        ({"n_head": 5}, "n_head"),
    ],
)
def test_gpt2_fields_that_change_the_model_are_refused(change, field):
    with pytest.raises(HFConfigError, match=f"{field}:"):
        describe({"architectures": ["GPT2LMHeadModel"], **change})


def test_model_type_stands_in_for_a_missing_architectures_list():
    config = {k: v for k, v in TINY_LLAMA_V4.items() if k != "architectures"}
    assert describe(config).architecture == "LlamaForCausalLM"


def test_read_config_from_a_folder_a_file_and_refusals(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA_V4))
    assert read_config(str(tmp_path))[0] == TINY_LLAMA_V4
    assert read_config(str(tmp_path / "config.json"))[1] == str(tmp_path / "config.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HFConfigError, match=r"holds no config\.json"):
        read_config(str(tmp_path / "empty"))
    with pytest.raises(HFConfigError, match="no such file or folder"):
        read_config(str(tmp_path / "missing"))  # a path, not a Hub id
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(NetspecError):
        read_config(str(tmp_path / "deep.json"))
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(HFConfigError, match="JSON object"):
        read_config(str(tmp_path / "list.json"))
