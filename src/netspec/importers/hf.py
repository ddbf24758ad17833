"""A Hugging Face ``config.json`` -> :class:`HFModel`, the architecture netspec builds from it.

Architectures (``config["architectures"][0]``): ``LlamaForCausalLM`` and the configs that share its
layout, ``MistralForCausalLM`` and ``Qwen2ForCausalLM`` (q/k/v biases); ``GPT2LMHeadModel``. Both config
forms that exist are read: transformers 4's (``rope_theta``, ``rope_scaling``, ``torch_dtype``) and 5's
(``rope_parameters``, ``dtype``).

Every field that changes what the model computes or how it is initialized is either honoured or refused
with a message naming it (an unsupported rope scaling type, an active sliding window, GPT-2's
``scale_attn_by_inverse_layer_idx``, ...): an import never yields a silently different model. Fields that
change neither (token ids, dropout rates, ``use_cache``, ...) are carried to the spec (``x-hf``) and
written back on export. Unknown fields are carried too and named in a warning.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netspec.errors import NetspecError

CONFIG_MAX_BYTES = 1 << 20
"""A config.json larger than this is refused before it is parsed."""


class HFConfigError(NetspecError):
    """A config.json netspec cannot import (the message names the file and the field)."""


@dataclass(frozen=True)
class HFModel:
    """What a config describes, in netspec's terms (the importer's spec and the exporter's config come from it)."""

    architecture: str
    family: str
    """``llama`` (Llama, Mistral, Qwen2: pre-norm RMSNorm, rotary, SwiGLU) or ``gpt2``."""
    model_type: str
    vocab: int
    d: int
    n_layers: int
    heads: int
    kv_heads: int
    head_dim: int
    d_ff: int
    max_positions: int
    activation: str | dict[str, Any]
    """The MLP's activation as a netspec activation spec."""
    norm_eps: float
    std: float
    """``initializer_range``: the std of every Linear and Embedding weight."""
    tie: bool
    rope_theta: float = 10000.0
    rope_fraction: float = 1.0
    qkv_bias: bool = False
    out_bias: bool = False
    mlp_bias: bool = False
    pad_token_id: int | None = None
    dtype: str = "float32"
    carried: dict[str, Any] = field(default_factory=dict)
    """Config fields that change neither the computation nor the initialization, written back on export."""
    unknown: tuple[str, ...] = ()
    """Fields netspec does not know (carried, and named in a warning)."""


# -------------------------------------------------------------------- reading


def read_config(src: str) -> tuple[dict[str, Any], str]:
    """The parsed ``config.json`` of ``src`` (a folder holding one, the file itself, or a Hub model id where
    ``huggingface_hub`` is installed and the network allows) and the path it was read from.

    Raises:
        HFConfigError: no config, an unreadable or malformed one, or a Hub id that cannot be fetched.
    """
    path = _config_path(src)
    from netspec.io.jsonio import load

    data = load(path, max_bytes=CONFIG_MAX_BYTES)  # JSONError (a NetspecError) names the file and position
    if not isinstance(data, dict):
        raise HFConfigError(f"{path}: a config.json holds a JSON object, got {type(data).__name__}")
    return data, path


def _config_path(src: str) -> str:
    if os.path.isdir(src):
        path = os.path.join(src, "config.json")
        if not os.path.isfile(path):
            raise HFConfigError(f"{src}: the folder holds no config.json")
        return path
    if os.path.exists(src):
        return src
    if _looks_like_hub_id(src):
        return _hub_config(src)
    raise HFConfigError(f"{src}: no such file or folder")


def _looks_like_hub_id(src: str) -> bool:
    parts = src.split("/")
    return len(parts) in (1, 2) and all(p and not p.startswith(".") for p in parts) and not src.endswith(".json")


def _hub_config(model_id: str) -> str:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise HFConfigError(f"{model_id}: no such file or folder (reading a Hub model id needs huggingface_hub: "
                            "pip install huggingface_hub)") from None  # fmt: skip
    try:
        return str(hf_hub_download(model_id, "config.json"))
    except Exception as exc:  # network, authentication, unknown repository: all reported the same way
        raise HFConfigError(f"{model_id}: could not fetch config.json from the Hub ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from None  # fmt: skip


# -------------------------------------------------------------------- fields


class _Fields:
    """Typed access to a config's fields; every read is recorded so the rest can be carried or refused."""

    def __init__(self, config: dict[str, Any], source: str):
        self.config = config
        self.source = source
        self.read: set[str] = set()

    def error(self, key: str, message: str) -> HFConfigError:
        return HFConfigError(f"{self.source}: {key}: {message}")

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return self.config.get(key, default)

    def integer(self, key: str, default: int | None = None, *, minimum: int = 1) -> int:
        value = self.get(key, default)
        if value is None:
            raise self.error(key, "is required" if key not in self.config else "must be an integer, got null")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer, got {value!r}")
        if value < minimum or value > 1 << 31:
            raise self.error(key, f"must be between {minimum} and {1 << 31}, got {value}")
        return value

    def optional_integer(self, key: str, *, minimum: int = 0) -> int | None:
        return None if self.get(key) is None else self.integer(key, minimum=minimum)

    def number(self, key: str, default: float, *, positive: bool = True) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(key, f"must be a finite number, got {value!r}")
        if positive and value <= 0:
            raise self.error(key, f"must be > 0, got {value!r}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def must_be(self, key: str, allowed: Callable[[Any], bool], why: str) -> None:
        """Refuse a field whose value netspec cannot honour (absent counts as the default)."""
        self.read.add(key)
        if key in self.config and not allowed(self.config[key]):
            raise self.error(key, f"{self.config[key]!r} is not supported: {why}")


CARRIED = frozenset({
    "architectures", "model_type", "transformers_version", "_name_or_path", "use_cache", "bos_token_id",
    "eos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id", "attention_dropout", "resid_pdrop",
    "embd_pdrop", "attn_pdrop", "summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels",
    "summary_first_dropout", "task_specific_params", "n_ctx", "pretraining_tp", "torch_dtype", "dtype",
    "output_attentions", "output_hidden_states", "return_dict", "id2label", "label2id", "problem_type",
    "tokenizer_class", "prefix", "bad_words_ids", "max_length", "do_sample", "temperature", "top_p", "top_k",
    "num_beams", "repetition_penalty", "chunk_size_feed_forward", "is_encoder_decoder", "is_decoder",
    "tie_encoder_decoder", "reorder_and_upcast_attn", "max_window_layers", "initializer_factor",
})  # fmt: skip
"""Fields that change neither what a model computes in evaluation nor how it is initialized."""

DTYPES = {"float32": "float32", "float": "float32", "bfloat16": "bfloat16", "float16": "float16", "half": "float16",
          "float64": "float64", "double": "float64"}  # fmt: skip

ACTIVATIONS: dict[str, str | dict[str, Any]] = {
    "silu": "silu",
    "swish": "silu",
    "gelu": "gelu",
    "gelu_new": {"name": "gelu", "approximate": "tanh"},
    "gelu_pytorch_tanh": {"name": "gelu", "approximate": "tanh"},
    "gelu_fast": {"name": "gelu", "approximate": "tanh"},
    "relu": "relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
}
"""transformers' ``ACT2FN`` names netspec computes exactly (``gelu_new``, ``gelu_pytorch_tanh`` and
``gelu_fast`` are all the tanh approximation 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))))."""


def describe(config: dict[str, Any], source: str = "config.json") -> HFModel:
    """The architecture ``config`` defines (see the module doc).

    Raises:
        HFConfigError: an unknown architecture, a missing or mistyped field, or a field netspec cannot honour.
    """
    fields = _Fields(config, source)
    arch = _architecture(fields)
    family = ARCHITECTURES[arch]
    model = family(fields, arch)
    rest = {k: v for k, v in config.items() if k not in fields.read}
    unknown = tuple(sorted(k for k in rest if k not in CARRIED))
    carried = {k: v for k, v in config.items() if k in CARRIED or k in unknown}
    return _replace(model, carried=carried, unknown=unknown)


def _replace(model: HFModel, **changes: Any) -> HFModel:
    import dataclasses

    return dataclasses.replace(model, **changes)


def _architecture(fields: _Fields) -> str:
    archs = fields.get("architectures")
    if not isinstance(archs, list) or not archs or not all(isinstance(a, str) for a in archs):
        model_type = fields.config.get("model_type")
        guess = DEFAULT_ARCHITECTURE.get(model_type) if isinstance(model_type, str) else None
        if guess is None:
            known = ", ".join(sorted(ARCHITECTURES))
            raise fields.error("architectures", f"names no architecture (a list such as [\"LlamaForCausalLM\"]); "
                                                f"netspec imports {known}")  # fmt: skip
        return guess
    if len(archs) > 1:
        raise fields.error("architectures", f"lists {len(archs)} architectures; netspec imports one")
    if archs[0] not in ARCHITECTURES:
        from netspec.registry import did_you_mean

        known = ", ".join(sorted(ARCHITECTURES))
        hint = did_you_mean(archs[0], sorted(ARCHITECTURES))
        raise fields.error("architectures", f"{archs[0]!r} is not an architecture netspec imports{hint}; it "
                                            f"imports {known}")  # fmt: skip
    return str(archs[0])


def _dtype(fields: _Fields) -> str:
    value = fields.get("dtype")
    key = "dtype"
    if value is None:
        value, key = fields.get("torch_dtype"), "torch_dtype"
    if value is None:
        return "float32"
    text = str(value).removeprefix("torch.")
    if text not in DTYPES:
        raise fields.error(key, f"{value!r} is not a floating-point type netspec writes "
                                f"({', '.join(sorted(set(DTYPES.values())))})")  # fmt: skip
    return DTYPES[text]


def _activation(fields: _Fields, key: str, default: str) -> str | dict[str, Any]:
    name = fields.get(key, default)
    if not isinstance(name, str) or name not in ACTIVATIONS:
        from netspec.registry import did_you_mean

        hint = did_you_mean(str(name), sorted(ACTIVATIONS))
        raise fields.error(key, f"{name!r} is not an activation netspec computes{hint} "
                                f"(it has {', '.join(sorted(ACTIVATIONS))})")  # fmt: skip
    return ACTIVATIONS[name]


# -------------------------------------------------------------------- Llama family


ROPE_TYPES = ("default",)
"""Rotary position embedding types netspec computes (transformers' ``rope_type``)."""


def _rope(fields: _Fields) -> tuple[float, float]:
    """(theta, partial rotary fraction) from either config form."""
    params = fields.get("rope_parameters")
    key = "rope_parameters"
    if params is None:
        params, key = fields.get("rope_scaling"), "rope_scaling"
    theta = fields.number("rope_theta", 10000.0)
    fraction = fields.number("partial_rotary_factor", 1.0)
    if params is None:
        return theta, _fraction(fields, "partial_rotary_factor", fraction)
    if not isinstance(params, dict):
        raise fields.error(key, f"must be an object, got {params!r}")
    if any(isinstance(v, dict) for v in params.values()):
        raise fields.error(key, "per-layer-type rope parameters are not supported: netspec gives every layer "
                                "one rotary embedding")  # fmt: skip
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type not in ROPE_TYPES:
        raise fields.error(f"{key}.rope_type", f"{rope_type!r} is not implemented by netspec (it implements "
                                               f"{', '.join(ROPE_TYPES)}: unscaled rotary positions)")  # fmt: skip
    extra = sorted(set(params) - {"rope_type", "type", "rope_theta", "partial_rotary_factor"})
    if extra:
        raise fields.error(f"{key}.{extra[0]}", "is not supported with rope_type 'default'")
    if "rope_theta" in params:
        theta = _positive(fields, f"{key}.rope_theta", params["rope_theta"])
    if "partial_rotary_factor" in params:
        fraction = params["partial_rotary_factor"]
    return theta, _fraction(fields, f"{key}.partial_rotary_factor", fraction)


def _positive(fields: _Fields, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise fields.error(key, f"must be a finite number > 0, got {value!r}")
    return float(value)


def _fraction(fields: _Fields, key: str, value: Any) -> float:
    value = _positive(fields, key, value)
    if value > 1:
        raise fields.error(key, f"must be at most 1, got {value!r}")
    return value


def _llama(fields: _Fields, arch: str) -> HFModel:
    """Llama, Mistral and Qwen2 (``modeling_llama.py``, ``modeling_mistral.py``, ``modeling_qwen2.py``)."""
    model_type = str(fields.get("model_type", FAMILY_MODEL_TYPE[arch]))
    d = fields.integer("hidden_size")
    heads = fields.integer("num_attention_heads")
    kv_heads = fields.integer("num_key_value_heads", heads)
    head_dim_default = d // heads if d % heads == 0 else None
    head_dim = fields.integer("head_dim", head_dim_default)
    if heads % kv_heads:
        raise fields.error("num_key_value_heads", f"{kv_heads} does not divide num_attention_heads ({heads})")
    max_positions = fields.integer("max_position_embeddings", 2048)
    theta, fraction = _rope(fields)
    _sliding_window(fields, arch, max_positions)
    qwen = arch == "Qwen2ForCausalLM"
    attention_bias = fields.boolean("attention_bias", False)
    return HFModel(
        architecture=arch,
        family="llama",
        model_type=model_type,
        vocab=fields.integer("vocab_size"),
        d=d,
        n_layers=fields.integer("num_hidden_layers"),
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        d_ff=fields.integer("intermediate_size"),
        max_positions=max_positions,
        activation=_activation(fields, "hidden_act", "silu"),
        norm_eps=fields.number("rms_norm_eps", 1e-6),
        std=fields.number("initializer_range", 0.02, positive=False),
        tie=fields.boolean("tie_word_embeddings", False),
        rope_theta=theta,
        rope_fraction=fraction,
        qkv_bias=qwen or attention_bias,
        out_bias=attention_bias and not qwen,
        mlp_bias=fields.boolean("mlp_bias", False),
        pad_token_id=_pad(fields),
        dtype=_dtype(fields),
    )


def _sliding_window(fields: _Fields, arch: str, max_positions: int) -> None:
    """A sliding window that can bite (shorter than the longest sequence) is refused: netspec's attention sees
    every earlier position."""
    if arch == "Qwen2ForCausalLM":
        if not fields.boolean("use_sliding_window", False):
            fields.get("sliding_window")
            fields.get("layer_types")
            return
        key = "use_sliding_window"
    else:
        key = "sliding_window"
    window = fields.get("sliding_window")
    if window is None or (isinstance(window, int) and window >= max_positions):
        return
    raise fields.error(key, f"sliding-window attention (window {window}, max_position_embeddings {max_positions}) is "
                            "not supported: netspec's attention attends to every earlier position")  # fmt: skip


def _pad(fields: _Fields) -> int | None:
    pad = fields.optional_integer("pad_token_id")
    vocab = fields.config.get("vocab_size")
    if pad is not None and isinstance(vocab, int) and pad >= vocab:
        raise fields.error("pad_token_id", f"{pad} is not below vocab_size ({vocab})")
    return pad


# -------------------------------------------------------------------- GPT-2


def _gpt2(fields: _Fields, arch: str) -> HFModel:
    """GPT-2 (``modeling_gpt2.py``): pre-norm LayerNorm, learned positions, fused ``c_attn``, ``Conv1D`` layouts."""
    d = fields.integer("n_embd", 768)
    heads = fields.integer("n_head", 12)
    if d % heads:
        raise fields.error("n_head", f"{heads} does not divide n_embd ({d})")
    fields.must_be("scale_attn_weights", lambda v: v is True, "netspec scales attention scores by 1/sqrt(head_dim)")
    fields.must_be("scale_attn_by_inverse_layer_idx", lambda v: v is False,
                   "netspec does not divide attention scores by the layer index")  # fmt: skip
    fields.must_be("add_cross_attention", lambda v: v is False, "GPT2LMHeadModel with cross-attention is not imported")
    n_inner = fields.get("n_inner")
    return HFModel(
        architecture=arch,
        family="gpt2",
        model_type=str(fields.get("model_type", "gpt2")),
        vocab=fields.integer("vocab_size", 50257),
        d=d,
        n_layers=fields.integer("n_layer", 12),
        heads=heads,
        kv_heads=heads,
        head_dim=d // heads,
        d_ff=4 * d if n_inner is None else fields.integer("n_inner"),
        max_positions=fields.integer("n_positions", 1024),
        activation=_activation(fields, "activation_function", "gelu_new"),
        norm_eps=fields.number("layer_norm_epsilon", 1e-5),
        std=fields.number("initializer_range", 0.02, positive=False),
        tie=fields.boolean("tie_word_embeddings", True),
        qkv_bias=True,
        out_bias=True,
        mlp_bias=True,
        pad_token_id=None,
        dtype=_dtype(fields),
    )


ARCHITECTURES: dict[str, Callable[[_Fields, str], HFModel]] = {
    "LlamaForCausalLM": _llama,
    "MistralForCausalLM": _llama,
    "Qwen2ForCausalLM": _llama,
    "GPT2LMHeadModel": _gpt2,
}
FAMILY_MODEL_TYPE = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2",
                     "GPT2LMHeadModel": "gpt2"}  # fmt: skip
DEFAULT_ARCHITECTURE = {v: k for k, v in FAMILY_MODEL_TYPE.items()}
"""``model_type`` -> the architecture assumed when a config lists none."""
