"""Hugging Face checkpoint names and layouts of a netspec network imported from a ``config.json``.

The specs ``netspec import hf`` writes name their layers after transformers' modules, so every stored
tensor has a fixed netspec counterpart:

========================================  ==========================================  ===========
Hugging Face (stored)                     netspec                                     layout
========================================  ==========================================  ===========
Llama family (Llama, Mistral, Qwen2)
``model.embed_tokens.weight``             ``embed_tokens.weights``                    as is
``model.layers.{i}.input_layernorm.weight``  ``layers_{i+1}.input_layernorm.gamma``   as is
``model.layers.{i}.self_attn.q_proj.weight``  ``layers_{i+1}.self_attn.query.weights`` transposed
  (``k_proj``, ``v_proj``, ``o_proj``: ``key``, ``value``, ``output``; ``.bias`` as is)
``model.layers.{i}.mlp.gate_proj.weight``  ``layers_{i+1}.mlp.gate_proj.weights``     transposed
  (``up_proj``, ``down_proj`` likewise)
``model.norm.weight``                     ``norm.gamma``                              as is
``lm_head.weight``                        ``lm_head.weights`` (absent when tied)      transposed
GPT-2
``transformer.wte.weight``, ``wpe``       ``wte.weights``, ``wpe.weights``            as is
``transformer.h.{i}.ln_1.weight``/``bias``  ``h_{i+1}.ln_1.gamma``/``beta``           as is
``transformer.h.{i}.attn.c_attn.weight``  ``h_{i+1}.attn.query|key|value.weights``    concatenated (in, 3d)
``transformer.h.{i}.attn.c_proj.weight``  ``h_{i+1}.attn.output.weights``             as is (Conv1D)
``transformer.h.{i}.mlp.c_fc.weight``     ``h_{i+1}.mlp.c_fc.weights``                as is (Conv1D)
``transformer.ln_f.weight``/``bias``      ``ln_f.gamma``/``beta``                     as is
========================================  ==========================================  ===========

``nn.Linear`` stores ``(out, in)``, netspec ``(in, out)``; GPT-2's ``Conv1D`` stores ``(in, out)`` as netspec
does. A tied head (``tie_word_embeddings``) is stored once, as the embedding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from netspec.importers.hf import HFModel

TRANSPOSE = "transposed"
AS_IS = "as is"
CONCAT = "concatenated"


@dataclass(frozen=True)
class Stored:
    """One tensor of a Hugging Face checkpoint and the netspec tensors it holds."""

    name: str
    parts: tuple[str, ...]
    """The netspec tensors, in order (one, or GPT-2's q, k, v for ``c_attn``)."""
    layout: str

    def to_hf(self, arrays: list[np.ndarray]) -> np.ndarray:
        """The stored tensor from its netspec parts."""
        if self.layout == CONCAT:
            return np.concatenate(arrays, axis=-1)
        (array,) = arrays
        return np.ascontiguousarray(array.T) if self.layout == TRANSPOSE else array

    def from_hf(self, stored: np.ndarray, widths: list[int]) -> list[np.ndarray]:
        """The netspec parts from the stored tensor (``widths``: each part's last-axis size, for a concatenation)."""
        if self.layout == CONCAT:
            return np.split(stored, np.cumsum(widths)[:-1], axis=-1)
        return [np.ascontiguousarray(stored.T) if self.layout == TRANSPOSE else stored]


def stored_tensors(model: HFModel) -> list[Stored]:
    """Every tensor a checkpoint of ``model`` stores, in transformers' order."""
    return list(_gpt2(model) if model.family == "gpt2" else _llama(model))


def _llama(m: HFModel) -> Iterator[Stored]:
    yield Stored("model.embed_tokens.weight", ("embed_tokens.weights",), AS_IS)
    for i in range(m.n_layers):
        hf, ns = f"model.layers.{i}", f"layers_{i + 1}"
        yield Stored(f"{hf}.input_layernorm.weight", (f"{ns}.input_layernorm.gamma",), AS_IS)
        for proj, role in (("q", "query"), ("k", "key"), ("v", "value"), ("o", "output")):
            yield Stored(f"{hf}.self_attn.{proj}_proj.weight", (f"{ns}.self_attn.{role}.weights",), TRANSPOSE)
            if (m.qkv_bias if proj != "o" else m.out_bias):
                yield Stored(f"{hf}.self_attn.{proj}_proj.bias", (f"{ns}.self_attn.{role}.bias",), AS_IS)
        yield Stored(f"{hf}.post_attention_layernorm.weight", (f"{ns}.post_attention_layernorm.gamma",), AS_IS)
        for proj in ("gate_proj", "up_proj", "down_proj"):
            yield Stored(f"{hf}.mlp.{proj}.weight", (f"{ns}.mlp.{proj}.weights",), TRANSPOSE)
            if m.mlp_bias:
                yield Stored(f"{hf}.mlp.{proj}.bias", (f"{ns}.mlp.{proj}.bias",), AS_IS)
    yield Stored("model.norm.weight", ("norm.gamma",), AS_IS)
    if not m.tie:
        yield Stored("lm_head.weight", ("lm_head.weights",), TRANSPOSE)


def _gpt2(m: HFModel) -> Iterator[Stored]:
    yield Stored("transformer.wte.weight", ("wte.weights",), AS_IS)
    yield Stored("transformer.wpe.weight", ("wpe.weights",), AS_IS)
    for i in range(m.n_layers):
        hf, ns = f"transformer.h.{i}", f"h_{i + 1}"
        yield from _norm(f"{hf}.ln_1", f"{ns}.ln_1")
        for kind, ours in (("weight", "weights"), ("bias", "bias")):
            parts = tuple(f"{ns}.attn.{role}.{ours}" for role in ("query", "key", "value"))
            yield Stored(f"{hf}.attn.c_attn.{kind}", parts, CONCAT)
        yield from _conv1d(f"{hf}.attn.c_proj", f"{ns}.attn.output")
        yield from _norm(f"{hf}.ln_2", f"{ns}.ln_2")
        yield from _conv1d(f"{hf}.mlp.c_fc", f"{ns}.mlp.c_fc")
        yield from _conv1d(f"{hf}.mlp.c_proj", f"{ns}.mlp.c_proj")
    yield from _norm("transformer.ln_f", "ln_f")
    if not m.tie:
        yield Stored("lm_head.weight", ("lm_head.weights",), TRANSPOSE)


def _norm(hf: str, ns: str) -> Iterator[Stored]:
    yield Stored(f"{hf}.weight", (f"{ns}.gamma",), AS_IS)
    yield Stored(f"{hf}.bias", (f"{ns}.beta",), AS_IS)


def _conv1d(hf: str, ns: str) -> Iterator[Stored]:
    yield Stored(f"{hf}.weight", (f"{ns}.weights",), AS_IS)
    yield Stored(f"{hf}.bias", (f"{ns}.bias",), AS_IS)
