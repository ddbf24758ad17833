"""``netspec export SPEC --to hf -o DIR``: a Hugging Face checkpoint that ``from_pretrained`` loads.

The spec must be laid out as ``netspec import hf`` writes it (``x-hf.architecture`` names the architecture;
layers named after transformers' modules): the export reads the architecture back from the compiled
network (:func:`model_of`: widths, heads, norms, rotary, tie), writes ``config.json`` (both config forms, so
transformers 4 and 5 read it), and the weights as ``model.safetensors`` or, past ``max_shard_size``, as
shards ``model-00001-of-0000N.safetensors`` with ``model.safetensors.index.json``, under transformers'
tensor names and layouts (:mod:`netspec.importers.hf_layout`; a tied head stored once). Each file's
``__metadata__`` holds ``format: pt`` (what transformers expects) and netspec's provenance.

Without ``params`` the tensors are generated from the seed straight into the files, one tensor in memory
at a time (plus the parts of one stored tensor: GPT-2's ``c_attn`` concatenates q, k and v).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from netspec.importers.hf import ACTIVATIONS, HFModel
from netspec.importers.hf_layout import AS_IS, Stored, stored_tensors
from netspec.importers.hf_network import HFExportError, model_of

if TYPE_CHECKING:
    import numpy as np

    from netspec.nn.network import Network
    from netspec.nn.sources import Chunk



# -------------------------------------------------------------------- config.json


HIDDEN_ACT = {"silu": "silu", "relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "gelu": "gelu"}


def _hf_activation(activation: str | dict[str, Any]) -> str:
    """transformers' ``ACT2FN`` name of a netspec activation (the inverse of the importer's table)."""
    if isinstance(activation, dict):
        name = activation.get("name")
        if name == "gelu" and activation.get("approximate") == "tanh":
            return "gelu_new"
        if name == "gelu" and activation.get("approximate", "none") == "none":
            return "gelu"
        activation = str(name)
    if activation not in HIDDEN_ACT:
        raise HFExportError(f"activation {activation!r} has no transformers name (ACT2FN has "
                            f"{', '.join(sorted(ACTIVATIONS))})")  # fmt: skip
    return HIDDEN_ACT[activation]


def config_json(m: HFModel) -> dict[str, Any]:
    """The ``config.json`` of ``m``: the carried fields, then everything netspec knows (in both forms where
    transformers 4 and 5 differ: ``rope_theta`` and ``rope_parameters``, ``torch_dtype`` and ``dtype``)."""
    out: dict[str, Any] = {k: v for k, v in m.carried.items() if k not in ("rope_scaling", "rope_parameters")}
    out.update({"architectures": [m.architecture], "model_type": m.model_type, "vocab_size": m.vocab,
                "initializer_range": m.std, "tie_word_embeddings": m.tie, "torch_dtype": m.dtype, "dtype": m.dtype})
    if m.family == "gpt2":
        out.update({"n_embd": m.d, "n_layer": m.n_layers, "n_head": m.heads, "n_inner": m.d_ff,
                    "n_positions": m.max_positions, "activation_function": _hf_activation(m.activation),
                    "layer_norm_epsilon": m.norm_eps})
        return out
    out.update({"hidden_size": m.d, "intermediate_size": m.d_ff, "num_hidden_layers": m.n_layers,
                "num_attention_heads": m.heads, "num_key_value_heads": m.kv_heads, "head_dim": m.head_dim,
                "max_position_embeddings": m.max_positions, "hidden_act": _hf_activation(m.activation),
                "rms_norm_eps": m.norm_eps, "rope_theta": m.rope_theta, "pad_token_id": m.pad_token_id,
                "rope_parameters": {"rope_type": "default", "rope_theta": m.rope_theta}})
    if m.rope_fraction != 1.0:
        out["partial_rotary_factor"] = m.rope_fraction
        out["rope_parameters"]["partial_rotary_factor"] = m.rope_fraction
    if m.architecture == "LlamaForCausalLM":
        out.update({"attention_bias": m.qkv_bias, "mlp_bias": m.mlp_bias})
    elif (m.qkv_bias, m.out_bias, m.mlp_bias) != ({"Qwen2ForCausalLM": True}.get(m.architecture, False), False, False):
        raise HFExportError(f"{m.architecture} has fixed biases (q/k/v: {m.architecture == 'Qwen2ForCausalLM'}, "
                            "output and MLP: none); the network's differ")  # fmt: skip
    return out


# -------------------------------------------------------------------- tensors


def stored_layout(net: Network, m: HFModel) -> list[tuple[Stored, tuple[int, ...]]]:
    """The stored tensors of ``m`` with their shapes, checked against the network's tensors.

    Raises:
        HFExportError: the network's tensors are not the architecture's (named).
    """
    shapes = {name: p.shape for name, p in net.parameters()}
    stored = stored_tensors(m)
    expected = {part for s in stored for part in s.parts}
    missing, extra = sorted(expected - shapes.keys()), sorted(shapes.keys() - expected)
    if missing or extra:
        raise HFExportError(f"{net.source}: the network's tensors are not {m.architecture}'s"
                            + (f"; missing: {', '.join(missing[:5])}" if missing else "")
                            + (f"; not in the architecture: {', '.join(extra[:5])}" if extra else ""))  # fmt: skip
    return [(s, s.shape([shapes[p] for p in s.parts])) for s in stored]


BAND = 1 << 22
"""Values per chunk of a transposed or concatenated tensor handed to the writer."""


def hf_chunks(layout: list[tuple[Stored, tuple[int, ...]]], shapes: dict[str, tuple[int, ...]],
              source: Iterator[Chunk]) -> Iterator[Chunk]:
    """The stored tensors' chunks from netspec's (:func:`netspec.nn.sources.chunks`): a tensor stored as it
    is passes chunk by chunk; each run of a transposed or concatenated one goes straight to its place in that
    stored tensor's buffer (:meth:`Stored.place`, one strided copy), which leaves in runs of ``BAND`` values
    once complete: one tensor in memory at a time, plus the chunks in flight."""
    import math

    import numpy as np

    owner = {part: (s, i) for s, _ in layout for i, part in enumerate(s.parts)}
    stored_shapes = {s.name: shape for s, shape in layout}
    pending: dict[str, tuple[np.ndarray, list[int]]] = {}  # stored name -> (buffer, [values still to come])
    for name, start, values in source:
        s, index = owner[name]
        if s.layout == AS_IS:
            yield s.name, start, values
            continue
        if s.name not in pending:
            shape = stored_shapes[s.name]
            pending[s.name] = (np.empty(shape, values.dtype), [math.prod(shape)])
        buffer, left = pending[s.name]
        s.place(buffer, index, [shapes[p] for p in s.parts], start, values)
        left[0] -= values.size
        if left[0] == 0:
            flat = pending.pop(s.name)[0].reshape(-1)
            for first in range(0, flat.size, BAND):
                yield s.name, first, flat[first:first + BAND]


def metadata(net: Network) -> dict[str, str]:
    """Each file's ``__metadata__``: ``format: pt`` (transformers reads it) and netspec's provenance."""
    from netspec.io.weights import metadata_for

    return {"format": "pt", **metadata_for(net)}


def save(net: Network, out: str, params: dict[str, np.ndarray] | None = None,
         max_shard_size: int | None = None, threads: int | None = None) -> list[str]:
    """Write the checkpoint folder ``out`` (see the module doc); returns the files written. ``max_shard_size``:
    bytes of tensor data per shard (default 5 GB, transformers' own).

    Raises:
        HFExportError: the network is not a Hugging Face architecture netspec exports. OSError: writing failed
            (complete shards stay, no index is written for an incomplete set).
    """
    from netspec.io import shards
    from netspec.nn.sources import chunks

    m = model_of(net)
    layout = stored_layout(net, m)
    shapes = {name: p.shape for name, p in net.parameters()}
    source: Iterator[Chunk]
    if params is not None:
        source = ((name, 0, array.reshape(-1)) for name, array in params.items())
    else:
        source = chunks(net, threads=threads)
    os.makedirs(out, exist_ok=True)
    config = _write_json(os.path.join(out, "config.json"), config_json(m))
    limit = shards.DEFAULT_SHARD_SIZE if max_shard_size is None else max_shard_size
    plan = shards.plan([(s.name, shape, net.dtype) for s, shape in layout], metadata(net), limit)
    result = shards.Writer(out, plan).write(hf_chunks(layout, shapes, source))
    return [config, *result.files]


def _write_json(path: str, data: dict[str, Any]) -> str:
    from netspec.io.files import atomic_write

    with atomic_write(path) as fh:
        fh.write((json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
    return path
