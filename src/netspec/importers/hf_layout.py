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

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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

    def shape(self, parts: list[tuple[int, ...]]) -> tuple[int, ...]:
        """The stored tensor's shape, from its netspec parts' shapes."""
        if self.layout == CONCAT:
            return (*parts[0][:-1], sum(shape[-1] for shape in parts))
        return tuple(reversed(parts[0])) if self.layout == TRANSPOSE else parts[0]

    def to_hf(self, arrays: list[np.ndarray]) -> np.ndarray:
        """The stored tensor from its netspec parts."""
        if self.layout == CONCAT:
            return np.concatenate(arrays, axis=-1)
        (array,) = arrays
        return np.ascontiguousarray(array.T) if self.layout == TRANSPOSE else array

    def place(self, stored: np.ndarray, index: int, shapes: list[tuple[int, ...]], start: int,
              values: np.ndarray) -> None:
        """Write ``values``, the run of part ``index``'s elements from ``start`` (C order of its netspec shape,
        ``shapes[index]``), to their places in the stored tensor ``stored``: the transposition or
        concatenation of :meth:`to_hf` done as the runs arrive, so no part is ever held whole on its own."""
        if self.layout == TRANSPOSE:
            dest = stored.T
        elif self.layout == CONCAT:
            first = sum(shape[-1] for shape in shapes[:index])
            dest = stored[..., first:first + shapes[index][-1]]
        else:
            dest = stored
        n = values.size
        if dest.ndim == 1:
            dest[start:start + n] = values
            return
        if dest.ndim != 2:
            dest[np.unravel_index(np.arange(start, start + n), dest.shape)] = values
            return
        width = dest.shape[1]
        row, col = divmod(start, width)
        done = 0
        if col:
            done = min(width - col, n)
            dest[row, col:col + done] = values[:done]
            row += 1
        full = (n - done) // width
        if full:
            dest[row:row + full] = values[done:done + full * width].reshape(full, width)
            done, row = done + full * width, row + full
        if done < n:
            dest[row, :n - done] = values[done:]

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


def reader_for(net: Any, path: str) -> tuple[HFReader, Any] | None:
    """For a spec imported from a Hugging Face config (``x-hf``) and weights stored under transformers' names
    (an exported folder, its ``model.safetensors``, or one shard file): the reader of netspec's tensors out of
    them, and the network restricted to the tensors they hold (a single shard holds some). None otherwise.

    Raises:
        HFExportError: the spec names an architecture its layers do not follow.
    """
    if not isinstance(net.spec.get("x-hf"), dict) or not (os.path.isdir(path) or path.endswith(".safetensors")):
        return None
    from netspec.importers.hf_network import model_of

    stored = stored_tensors(model_of(net))
    shapes = {name: tuple(p.shape) for name, p in net.parameters()}
    reader = HFReader(path, stored, shapes)
    present = set(reader.names())
    if not present & {s.name for s in stored}:
        reader.close()
        return None
    if os.path.isdir(path):
        return reader, net
    held = [s for s in stored if s.name in present]
    reader.where = {p: w for p, w in reader.where.items() if w[0] in held}
    return reader, net.restricted({p for s in held for p in s.parts})


class HFReader:
    """netspec's tensors read out of a Hugging Face checkpoint (a folder of shards with its index, a single
    ``model.safetensors``, or one shard file): runs of any tensor in netspec's layout, never the whole file
    (``verify`` and ``audit`` read chunk by chunk; :class:`netspec.io.weights.TensorReader` underneath).

    A tensor stored as it is reads as it is; a transposed one reads its rows from the stored columns; a part
    of a concatenation (GPT-2's ``c_attn``) reads its columns of the stored rows. ``stats`` gathers, per
    netspec tensor, the count, sum, sum of squares (float64) and largest magnitude of what was read.
    """

    def __init__(self, path: str, stored: list[Stored], shapes: dict[str, tuple[int, ...]]):
        from netspec.io.weights import TensorReader

        self.path = path
        self.file = TensorReader(path)
        self.shapes = shapes
        self.where: dict[str, tuple[Stored, int]] = {}
        """netspec tensor -> (its stored tensor, its first column there: concatenation parts)."""
        for s in stored:
            column = 0
            for part in s.parts:
                self.where[part] = (s, column)
                column += shapes[part][-1]
        self.stats: dict[str, list[float]] = {}

    def names(self) -> list[str]:
        """Every tensor the checkpoint stores, by its stored name."""
        return list(self.file.tensors)

    def check(self, net: Any = None) -> None:
        """Every stored tensor the architecture has is there, with its shape.

        Raises:
            WeightsError: a tensor is missing or has another shape (named).
        """
        from netspec.errors import WeightsError

        problems = []
        for s in {s.name: s for s, _ in self.where.values()}.values():
            found = self.file.tensors.get(s.name)
            shape = self._stored_shape(s)
            if found is None:
                problems.append(f"{s.name} is missing")
            elif tuple(found[0]) != shape:
                problems.append(f"{s.name} has shape {list(found[0])}, the config gives {list(shape)}")
        if problems:
            raise WeightsError(f"{self.path}: the checkpoint does not match its architecture: "
                               + "; ".join(problems[:8]) + ("; ..." if len(problems) > 8 else ""))  # fmt: skip

    def _stored_shape(self, s: Stored) -> tuple[int, ...]:
        return s.shape([self.shapes[p] for p in s.parts])

    def read(self, name: str, start: int, count: int) -> np.ndarray:
        """Elements ``[start, start + count)`` of netspec tensor ``name`` (C order of its own layout)."""
        shape = self.shapes[name]
        if len(shape) != 2:
            values = self._flat(name, start, count)
        else:
            width = shape[1]
            first, last = start // width, -(-(start + count) // width)
            band = self._rows(name, first, last).reshape(-1)
            values = band[start - first * width : start - first * width + count]
        self._gather(name, values)
        return values

    def _flat(self, name: str, start: int, count: int) -> np.ndarray:
        s, column = self.where[name]
        return self.file.read(s.name, column + start, count)

    def _rows(self, name: str, first: int, last: int) -> np.ndarray:
        """Rows ``[first, last)`` of a 2-D netspec tensor."""
        s, column = self.where[name]
        rows, width = self.shapes[name]
        if s.layout == AS_IS:
            return self.file.read(s.name, first * width, (last - first) * width).reshape(-1, width)
        if s.layout == CONCAT:
            stored_width = self._stored_shape(s)[1]
            band = self.file.read(s.name, first * stored_width, (last - first) * stored_width)
            return band.reshape(-1, stored_width)[:, column : column + width]
        out = np.empty((last - first, width), self.file.tensors[s.name][1])
        for j in range(width):  # stored (width, rows): netspec's rows are the stored columns
            out[:, j] = self.file.read(s.name, j * rows + first, last - first)
        return out

    def _gather(self, name: str, values: np.ndarray) -> None:
        from netspec.init.precision import widen

        x = widen(values).astype(np.float64, copy=False)
        n, s1, s2, top = self.stats.get(name, [0, 0.0, 0.0, 0.0])
        self.stats[name] = [n + x.size, s1 + float(x.sum()), s2 + float(np.dot(x, x)),
                            max(top, float(np.abs(x).max())) if x.size else top]  # fmt: skip

    def close(self) -> None:
        self.file.close()
