"""An :class:`~netspec.importers.hf.HFModel` written as a netspec spec (YAML text meant to be read).

The spec names its constants after the architecture (``n_layers``, ``d``, ``heads``, ...), holds one block
per decoder layer, names every layer after transformers' module (so the checkpoint's tensor names follow:
:mod:`netspec.importers.hf_layout`) and states the initialization ``_init_weights`` gives as a recipe
(``hf_llama``, ``gpt2``). It takes any sequence length (``input: [null]``): Llama-family models have rotary
positions, GPT-2 its learned table of ``n_positions`` rows (longer inputs are refused at run time).
``x-hf`` keeps the architecture and the config fields that change neither computation nor initialization,
for ``netspec export --to hf``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from netspec.importers.hf import HFModel

TRANSFORMERS_INIT = "5.24"
"""The transformers version whose ``_init_weights`` the recipes follow (checked against it in the tests)."""


def spec_text(model: HFModel, name: str, source: str, seed: int = 0, recipe: str | None = None) -> str:
    """The spec of ``model`` (``name`` its name, ``source`` the config it came from, named in a comment);
    ``recipe`` replaces the architecture's own initialization by another recipe (given the parameters of
    ``std``, ``layers`` and ``d`` it takes, from the config)."""
    body = _gpt2(model) if model.family == "gpt2" else _llama(model)
    if recipe is not None:
        body["init"] = _recipe(recipe)
    head = [
        f"# Imported by `netspec import hf` from {source}: {model.architecture} ({model.model_type}).",
        *body.pop("comments"),
        "netspec: 1",
        f"name: {_scalar(name)}",
        f"seed: {seed}",
        f"dtype: {model.dtype}",
        "input: [null]                # token ids, any sequence length",
        "constants:",
        *(f"  {key}: {_scalar(value)}{_comment(why)}" for key, value, why in body.pop("constants")),
        f"init: {body.pop('init')}",
        "x-hf:",
        f"  architecture: {model.architecture}",
        f"  init: transformers {TRANSFORMERS_INIT} _init_weights",
        f"  config: {_flow(model.carried)}",
    ]
    from netspec.vcs.fmt import format_text

    return format_text("\n".join([*head, *body.pop("rest"), ""]), source)  # the layout fmt --check keeps


def _recipe(name: str) -> str:
    """``{recipe: NAME, ...}`` with the parameters the recipe takes among std, layers and d."""
    from netspec.init.recipes import RECIPES
    from netspec.registry import did_you_mean

    if name not in RECIPES:
        from netspec.errors import NetspecError

        raise NetspecError(f"unknown init recipe {name!r}{did_you_mean(name, RECIPES.names())}; recipes: "
                           f"{', '.join(RECIPES.names())}")  # fmt: skip
    given = {"std": '"${std}"', "layers": '"${n_layers}"', "d": '"${d}"'}
    takes = RECIPES[name].parameters()
    return "{" + ", ".join([f"recipe: {name}", *(f"{k}: {v}" for k, v in given.items() if k in takes)]) + "}"


def _scalar(value: Any) -> str:
    if isinstance(value, float):
        text = repr(value)
        return text if ("e" in text or "." in text) else text + ".0"
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", value) and value not in YAML_WORDS:
        return value
    return json.dumps(value)


YAML_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}


def _flow(value: Any) -> str:
    """JSON is YAML flow style: one line, exactly the config's values."""
    return json.dumps(value, sort_keys=True, ensure_ascii=True)


def _comment(why: str) -> str:
    return f"  # {why}" if why else ""


def _act(activation: str | dict[str, Any]) -> str:
    return activation if isinstance(activation, str) else _flow(activation).replace('"', "")


def _bias(on: bool) -> str:
    return "" if on else ", use_bias: false"


def _llama(m: HFModel) -> dict[str, Any]:
    constants = [
        ("vocab", m.vocab, "vocab_size"),
        ("d", m.d, "hidden_size"),
        ("d_ff", m.d_ff, "intermediate_size"),
        ("n_layers", m.n_layers, "num_hidden_layers"),
        ("heads", m.heads, "num_attention_heads"),
        ("kv_heads", m.kv_heads, "num_key_value_heads"),
        ("head_dim", m.head_dim, "head_dim"),
        ("max_positions", m.max_positions, "max_position_embeddings (rotary: not a table size)"),
        ("rope_theta", m.rope_theta, "rope_theta"),
        ("eps", m.norm_eps, "rms_norm_eps"),
        ("std", m.std, "initializer_range"),
    ]
    rotary = '{theta: "${rope_theta}"' + (f", fraction: {m.rope_fraction!r}" if m.rope_fraction != 1.0 else "") + "}"
    if m.qkv_bias == m.out_bias:
        attn_bias = _bias(m.qkv_bias)
    else:
        attn_bias = ", use_bias: " + ("[query, key, value]" if m.qkv_bias else "[output]")
    pad = f", padding_idx: {m.pad_token_id}" if m.pad_token_id is not None else ""
    head = ('{type: dense, name: lm_head, units: "${vocab}", tie: embed_tokens, use_bias: false}' if m.tie else
            '{type: dense, name: lm_head, units: "${vocab}", role: readout, use_bias: false}')  # fmt: skip
    rest = [
        "blocks:",
        "  mlp:                        # LlamaMLP: down_proj(act(gate_proj(x)) * up_proj(x))",
        "    layers:",
        f'      - {{type: dense, name: gate_proj, units: "${{d_ff}}", activation: {_act(m.activation)}, '
        f"role: residual_in{_bias(m.mlp_bias)}}}",
        f'      - {{type: dense, name: up_proj, units: "${{d_ff}}", inputs: input, role: residual_up'
        f"{_bias(m.mlp_bias)}}}",
        "      - {type: multiply, name: gated, inputs: [gate_proj, up_proj]}",
        f'      - {{type: dense, name: down_proj, units: "${{d}}", role: residual_out{_bias(m.mlp_bias)}}}',
        "  decoder:                    # one decoder layer (model.layers.{i})",
        "    layers:",
        '      - {type: rms_norm, name: input_layernorm, epsilon: "${eps}"}',
        '      - {type: multi_head_attention, name: self_attn, heads: "${heads}", kv_heads: "${kv_heads}", '
        f'key_dim: "${{head_dim}}", causal: true, rotary: {rotary}{attn_bias}}}',
        "      - {type: add, name: attention_residual, inputs: [input, self_attn]}",
        '      - {type: rms_norm, name: post_attention_layernorm, epsilon: "${eps}"}',
        "      - {block: mlp, name: mlp}",
        "      - {type: add, name: mlp_residual, inputs: [attention_residual, mlp]}",
        "layers:",
        f'  - {{type: embedding, name: embed_tokens, vocab: "${{vocab}}", dim: "${{d}}"{pad}}}',
        '  - repeat: "${n_layers}"',
        "    layers:",
        "      - {block: decoder, name: layers}",
        '  - {type: rms_norm, name: norm, epsilon: "${eps}"}',
        f"  - {head}",
    ]
    comments = ["# Initialization (transformers' PreTrainedModel._init_weights): every Linear and Embedding weight",
                "# N(0, initializer_range^2), the padding row of the embedding 0, biases 0, RMSNorm weights 1."]
    return {"constants": constants, "init": '{recipe: hf_llama, std: "${std}"}', "rest": rest, "comments": comments}


def _gpt2(m: HFModel) -> dict[str, Any]:
    constants = [
        ("vocab", m.vocab, "vocab_size"),
        ("d", m.d, "n_embd"),
        ("d_ff", m.d_ff, "n_inner (default 4 n_embd)"),
        ("n_layers", m.n_layers, "n_layer"),
        ("heads", m.heads, "n_head"),
        ("head_dim", m.head_dim, "n_embd / n_head"),
        ("n_positions", m.max_positions, "n_positions: rows of the position table"),
        ("eps", m.norm_eps, "layer_norm_epsilon"),
        ("std", m.std, "initializer_range"),
    ]
    head = ('{type: dense, name: lm_head, units: "${vocab}", tie: wte, use_bias: false}' if m.tie else
            '{type: dense, name: lm_head, units: "${vocab}", role: readout, use_bias: false}')  # fmt: skip
    rest = [
        "blocks:",
        "  mlp:                        # GPT2MLP: c_proj(act(c_fc(x)))",
        "    layers:",
        f'      - {{type: dense, name: c_fc, units: "${{d_ff}}", activation: {_act(m.activation)}, role: residual_in}}',
        '      - {type: dense, name: c_proj, units: "${d}", role: residual_out}',
        "  block:                      # GPT2Block (transformer.h.{i})",
        "    layers:",
        '      - {type: layer_norm, name: ln_1, epsilon: "${eps}"}',
        '      - {type: multi_head_attention, name: attn, heads: "${heads}", key_dim: "${head_dim}", causal: true}',
        "      - {type: add, name: attention_residual, inputs: [input, attn]}",
        '      - {type: layer_norm, name: ln_2, epsilon: "${eps}"}',
        "      - {block: mlp, name: mlp}",
        "      - {type: add, name: mlp_residual, inputs: [attention_residual, mlp]}",
        "layers:",
        '  - {type: embedding, name: wte, vocab: "${vocab}", dim: "${d}"}',
        '  - {type: positional_embedding, name: wpe, length: "${n_positions}"}',
        '  - repeat: "${n_layers}"',
        "    layers:",
        "      - {block: block, name: h}",
        '  - {type: layer_norm, name: ln_f, epsilon: "${eps}"}',
        f"  - {head}",
    ]
    comments = ["# Initialization (GPT2PreTrainedModel._init_weights): every Conv1D and Embedding weight",
                "# N(0, initializer_range^2), the residual output projections (attn.c_proj, mlp.c_proj)",
                "# N(0, (initializer_range / sqrt(2 n_layer))^2), biases 0, LayerNorm weights 1."]
    init = '{recipe: gpt2, std: "${std}", layers: "${n_layers}"}'
    return {"constants": constants, "init": init, "rest": rest, "comments": comments}
