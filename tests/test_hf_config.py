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


GPT2_TINY = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50, "n_embd": 16,
             "n_head": 2, "n_layer": 2, "n_positions": 32}  # fmt: skip
ODD_VALUES = [None, True, False, 0, -1, 1.5, 3.0, 2**63, -(2**63), 1e308, -1e-308, "", "x", "silu", "gelu_new",
              [], [1], {}, {"rope_type": "linear", "factor": 2.0}, {"rope_type": "default"}, [[[[]]]]]  # fmt: skip


EXTRA_KEYS = ["rope_parameters", "sliding_window", "pad_token_id", "n_inner", "attention_bias", "head_dim"]


def _mutated(draw_config, data) -> bytes:
    """A config with a few keys replaced by odd values, dropped or added, or its bytes cut or nested deep."""
    from hypothesis import strategies as st

    config = dict(draw_config)
    for _ in range(data.draw(st.integers(0, 4))):
        key = data.draw(st.sampled_from([*sorted(config), *EXTRA_KEYS]))
        action = data.draw(st.sampled_from(["value", "drop"]))
        if action == "drop":
            config.pop(key, None)
        else:
            config[key] = data.draw(st.sampled_from(ODD_VALUES))
    text = json.dumps(config)
    shape = data.draw(st.sampled_from(["as is", "cut", "deep", "huge number"]))
    if shape == "cut":
        text = text[: data.draw(st.integers(0, len(text)))]
    elif shape == "deep":
        text = '{"x": ' + "[" * 100_000 + "]" * 100_000 + ", " + text[1:]
    elif shape == "huge number":
        text = text.replace(": 2,", ": 1" + "0" * 5000 + ",", 1)
    return text.encode()


def test_fuzz_import_hf_and_audit_configs(tmp_path):
    """Structure-aware mutations of Llama and GPT-2 config.json (odd types and values, dropped keys, cut
    bytes, 100,000 levels of nesting, 5,000-digit numbers) through `import hf` and `audit`: every outcome is
    exit 0 or a located exit 1, never exit 70 (fixed seed, as the CI profile of the other fuzzers)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from netspec.cli import main

    @settings(max_examples=60, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
    @given(st.sampled_from([TINY_LLAMA_V4, _v5(TINY_LLAMA_V4), GPT2_TINY]), st.data())
    def run(config, data):
        folder = tmp_path / "src"
        folder.mkdir(exist_ok=True)
        (folder / "config.json").write_bytes(_mutated(config, data))
        out = tmp_path / "m.yaml"
        code = main(["import", "hf", str(folder), "-o", str(out), "--force"])
        assert code in (0, 1), code
        assert out.exists() == (code == 0)  # refused: nothing written
        out.unlink(missing_ok=True)
        assert main(["audit", str(folder)]) in (1,)  # no weights beside the config: refused, never 70

    run()
