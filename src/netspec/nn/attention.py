"""Attention layers: ``multi_head_attention`` and a learned ``positional_embedding``.

``multi_head_attention`` takes ``(sequence, features)`` inputs: one (self-attention) or
``inputs: [query, context]`` (cross-attention; keys and values come from the context). Its
parameters are 2-D and input-major, as a dense layer's:

* ``query.weights`` ``(d, heads * key_dim)``, ``key.weights`` ``(d_ctx, kv_heads * key_dim)``,
  ``value.weights`` ``(d_ctx, kv_heads * value_dim)``, ``output.weights`` ``(heads * value_dim, d_out)``,
  each with a ``.bias``. Keras' ``MultiHeadAttention`` holds the same numbers as 3-D kernels
  ``(d, heads, key_dim)`` and ``(heads, value_dim, d_out)``; PyTorch's ``nn.MultiheadAttention``
  as ``in_proj_weight`` = the transposed q, k, v kernels stacked ``(3E, E)`` and ``out_proj``;
  Hugging Face's Llama as ``q_proj``/``k_proj``/``v_proj``/``o_proj`` ``Linear`` weights (transposed).

Forward (evaluation): ``q = x Wq + bq``, ``k = c Wk + bk``, ``v = c Wv + bv`` split into heads;
``A = softmax(q k^T / sqrt(key_dim))`` per head (with ``causal: true``, query position i attends
to key positions <= i only); heads concatenated, then ``A v Wo + bo``.

* ``kv_heads`` (grouped-query attention, Ainslie et al. 2023; default ``heads``; 1 is multi-query
  attention, Shazeer 2019): keys and values have ``kv_heads`` heads, and query head h uses key/value
  head ``h // (heads / kv_heads)`` (consecutive query heads share one: Hugging Face's ``repeat_kv``,
  ``F.scaled_dot_product_attention(enable_gqa=True)``).
* ``rotary: {theta, layout, fraction}`` (rotary position embeddings, Su et al. 2021; no parameters):
  before the scores, the first ``r = int(key_dim * fraction)`` features of every query and key head
  at position p are rotated in pairs by the angles ``p * theta^(-2i/r)``, i < r/2, and the rest
  pass unchanged. ``layout: half_split`` (default; Hugging Face's Llama ``rotate_half``, GPT-NeoX)
  pairs feature i with i + r/2; ``layout: interleaved`` (GPT-J, Meta's original Llama code, as a
  complex multiplication) pairs 2i with 2i + 1. Positions count from 0 in the query and in the
  context. The angles are computed in float64 and their cosines and sines rounded to the dtype.

Initializer keys: ``weights`` and ``bias`` for all four projections, each overridden by the
projection's own key (``query_weights``, ``key_weights``, ``value_weights``, ``output_weights`` and
``query_bias`` ... ``output_bias``); a key the layer does not write falls back to the general one
(then ``defaults``, then the built-in ``auto`` / zeros), and ``explain`` names the key that decided.

Initialization (``convention``; ``auto`` for ``weights``, ``bias`` defaults to zeros):

* ``keras`` (default): every kernel glorot_uniform with *separate* fans per projection
  (fan_in d, fan_out heads * key_dim for the query kernel; Keras computes them from explicit
  input/output axes since keras-team/keras#22789; before, it read the 3-D kernels as conv kernels);
* ``torch``: q, k, v glorot_uniform with the fans of torch's *fused* ``in_proj_weight``
  (fan_in d, fan_out = the three projections' widths summed; self-attention only: for
  cross-attention torch holds separate ``q/k/v_proj_weight`` and so does netspec), and the
  output kernel U(±1/sqrt(heads * value_dim)) (torch's ``Linear`` default, kaiming_uniform with
  a = sqrt(5), which ``nn.MultiheadAttention`` leaves in place).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from netspec.init.fans import Fans, compute_fans
from netspec.init.recipes import ROLES
from netspec.nn.activations import Activation
from netspec.nn.layers import (
    INIT_REF,
    POS_INT,
    Layer,
    ParamSpec,
    Shape,
    ShapeError,
    _opt,
    known,
    register_layer,
    role_option,
)

if TYPE_CHECKING:
    import numpy as np

PROJECTIONS = ("query", "key", "value", "output")
"""The attention projections; each has a kernel and a bias, and an initializer key for each."""

ROTARY_LAYOUTS = ("half_split", "interleaved")
ROTARY_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "theta": {"type": "number", "exclusiveMinimum": 1, "maximum": 1e12,
                  "description": "Base of the angles p * theta^(-2i/r) (default 10000, RoFormer's and Llama 2's; "
                  "Llama 3 uses 500000)."},
        "layout": {"enum": list(ROTARY_LAYOUTS),
                   "description": "Which features rotate together: half_split (default; i with i + r/2, Hugging "
                   "Face's rotate_half) or interleaved (2i with 2i + 1: GPT-J, Meta's Llama code)."},
        "fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1,
                     "description": "Fraction of each head's key_dim that rotates (default 1; partial rotary as "
                     "GPT-NeoX's rotary_pct, Phi's partial_rotary_factor): r = int(key_dim * fraction), even."},
    },
}  # fmt: skip


@dataclass(frozen=True)
class Rotary:
    """Rotary position embedding of a head of ``key_dim`` features: ``dims`` of them rotate."""

    theta: float
    layout: str
    dims: int

    @classmethod
    def of(cls, options: dict[str, Any], key_dim: int) -> Rotary:
        """From the layer's ``rotary`` option (ShapeError if too few features rotate)."""
        fraction = float(options.get("fraction", 1.0))
        dims = int(key_dim * fraction)
        if dims < 2 or dims % 2:
            raise ShapeError(f"rotary needs an even number (>= 2) of rotated features per head; key_dim {key_dim} "
                             f"x fraction {fraction:g} gives {dims}")  # fmt: skip
        return cls(float(options.get("theta", 10000.0)), options.get("layout", "half_split"), dims)

    def angles(self, length: int) -> np.ndarray:
        """``(length, dims / 2)`` float64: position p times the frequency ``theta^(-2i/dims)``."""
        import numpy as np

        frequencies = 1.0 / self.theta ** (np.arange(0, self.dims, 2, dtype=np.float64) / self.dims)
        return np.arange(length, dtype=np.float64)[:, None] * frequencies[None, :]

    def rotate(self, x: Any, cos: Any, sin: Any, cat: Any, stack: Any) -> Any:
        """Rotate the last axis of ``x`` (NumPy, torch or JAX) with ``cos``/``sin`` broadcasting against
        ``x[..., :dims / 2]``; ``cat``/``stack`` join a list along the last axis in that library."""
        half, rest = self.dims // 2, x[..., self.dims :]
        if self.layout == "half_split":
            a, b = x[..., :half], x[..., half : self.dims]
            rotated = cat([a * cos - b * sin, b * cos + a * sin])
        else:
            a, b = x[..., 0 : self.dims : 2], x[..., 1 : self.dims : 2]
            pairs = stack([a * cos - b * sin, b * cos + a * sin])
            rotated = pairs.reshape(*pairs.shape[:-2], self.dims)
        return cat([rotated, rest]) if self.dims < x.shape[-1] else rotated


TORCH_LINEAR = {"name": "torch_kaiming_uniform", "a": math.sqrt(5)}
"""PyTorch ``nn.Linear``'s default weight initializer: U(±1/sqrt(fan_in))."""


@register_layer
class MultiHeadAttention(Layer):
    type = "multi_head_attention"
    description = ("Multi-head scaled dot-product attention over (sequence, features): self-attention on one "
                   "input, cross-attention on inputs [query, context].")  # fmt: skip
    OPTIONS = {
        "heads": _opt(POS_INT, "Number of attention heads."),
        "key_dim": _opt(POS_INT, "Size of each head's queries and keys."),
        "value_dim": _opt(POS_INT, "Size of each head's values (default: key_dim)."),
        "output_dim": _opt(POS_INT, "Output features (default: the query input's features)."),
        "kv_heads": _opt(POS_INT, "Key/value heads (grouped-query attention; default: heads; 1: multi-query). "
                         "Divides heads; query head h uses key/value head h // (heads / kv_heads)."),
        "rotary": _opt(ROTARY_SCHEMA, "Rotary position embeddings on queries and keys (no parameters)."),
        "causal": _opt({"type": "boolean"}, "Mask future positions: query i attends to keys <= i (default false)."),
        "convention": _opt({"enum": ["keras", "torch"]}, "Which framework's initialization 'auto' and the fans "
                           "follow: keras (default; separate fans per projection) or torch (fused q/k/v fans)."),
        "weights": _opt(INIT_REF, "Initializer of the four projection kernels (each overridden by its own key "
                        "below); 'auto' follows the convention."),
        "bias": _opt(INIT_REF, "Initializer of the four biases, each overridden by its own key below (default: "
                     "defaults.bias or zeros)."),
        **{f"{proj}_{kind}": _opt(INIT_REF, f"Initializer of the {proj} projection's {what}; overrides '{kind}'.")
           for proj in PROJECTIONS for kind, what in (("weights", "kernel"), ("bias", "bias"))},
        "role": _opt({"type": "object", "additionalProperties": False,
                      "properties": {proj: {"enum": list(ROLES), "description": f"The {proj} projection's role."}
                                     for proj in PROJECTIONS}},
                     "Each projection's role for the spec's init recipe (default: query query, key key, value value, "
                     "output residual_out)."),
        "use_bias": _opt({"oneOf": [{"type": "boolean"},
                                    {"type": "array", "items": {"enum": list(PROJECTIONS)}, "uniqueItems": True}]},
                         "Whether the projections have biases (default true), or the list of those that do "
                         "(Qwen2: [query, key, value]).") ,
    }  # fmt: skip
    REQUIRED = ("heads", "key_dim")
    KINDS = {"weights": "kernel", "bias": "bias"}
    PROJECTION_ROLES = {"query": "query", "key": "key", "value": "value", "output": "residual_out"}
    """Each projection's default role: the output projection writes into the residual stream."""
    INIT_KEYS = {"weights": "auto", "bias": "zeros",
                 **{f"{proj}_{kind}": default for proj in PROJECTIONS
                    for kind, default in (("weights", "auto"), ("bias", "zeros"))}}  # fmt: skip
    INIT_FALLBACKS = {f"{proj}_{kind}": kind for proj in PROJECTIONS for kind in ("weights", "bias")}
    ARITY = (1, 2)

    @classmethod
    def auto(cls, key: str, options: dict[str, Any], activation: Activation) -> tuple[Any, str, str, str]:
        convention = options.get("convention", "keras")
        follows = f"{cls.type} ({convention})"
        if convention == "torch" and key == "output_weights":
            return TORCH_LINEAR, follows, "layer", "torch's nn.MultiheadAttention keeps nn.Linear's default on out_proj"
        why = ("Keras' MultiHeadAttention default" if convention == "keras" else
               "torch's nn.MultiheadAttention: xavier_uniform_ on in_proj_weight")
        return "glorot_uniform", follows, "layer", why  # fmt: skip

    def role_of(self, param: ParamSpec) -> str:
        projection = param.name.split(".")[0]
        written = self.options.get("role") or {}
        return str(written.get(projection, self.PROJECTION_ROLES.get(projection, "hidden")))

    def head_dim_of(self, param: ParamSpec) -> int | None:
        return int(self.options["key_dim"])

    def has_bias(self, projection: str) -> bool:
        """Whether ``projection`` (query, key, value, output) has a bias (``use_bias``: a boolean or a list)."""
        use = self.options.get("use_bias", True)
        return projection in use if isinstance(use, list) else bool(use)

    def dims(self) -> tuple[int, int, int]:
        """(heads, query width heads * key_dim, output projection's input heads * value_dim)."""
        heads, key_dim = self.options["heads"], self.options["key_dim"]
        return heads, heads * key_dim, heads * self.options.get("value_dim", key_dim)

    @property
    def kv_heads(self) -> int:
        return int(self.options.get("kv_heads", self.options["heads"]))

    def kv_widths(self) -> tuple[int, int]:
        """The key and value projections' widths: kv_heads * key_dim, kv_heads * value_dim."""
        key_dim = self.options["key_dim"]
        return self.kv_heads * key_dim, self.kv_heads * self.options.get("value_dim", key_dim)

    @property
    def rotary(self) -> Rotary | None:
        written = self.options.get("rotary")
        return None if written is None else Rotary.of(written, self.options["key_dim"])

    def combine_shapes(self, shapes: list[Shape]) -> Shape:
        for role, shape in zip(("query", "context"), shapes, strict=False):
            if len(shape) != 2:
                raise ShapeError(f"{self.type} needs (sequence, features) inputs; the {role} is {list(shape)}")
        if self.options["heads"] % self.kv_heads:
            raise ShapeError(f"kv_heads ({self.kv_heads}) must divide heads ({self.options['heads']}): each key/value "
                             "head serves an equal group of query heads")  # fmt: skip
        _ = self.rotary  # a rotary option that rotates no feature pair is an error here
        query, context = shapes[0], shapes[-1]
        self.check_lengths(query[0], context[0])
        if context[0] == 0 and query[0] != 0:
            raise ShapeError(f"the context has no position for the query's {query[0]} positions to attend to")
        return (query[0], self.options.get("output_dim", query[1]))

    def check_lengths(self, query: int | None, context: int | None) -> None:
        """Causal attention needs one length (lengths known only at run time are checked by :meth:`apply`)."""
        if self.options.get("causal", False) and None not in (query, context) and query != context:
            raise ShapeError(f"causal attention needs query and context of one length, got {query} and {context}")

    def output_shape(self, shape: Shape) -> Shape:
        return self.combine_shapes([shape])

    def param_specs(self, shapes: list[Shape]) -> list[ParamSpec]:
        self.combine_shapes(shapes)
        _, qk, vd = self.dims()
        kk, kv = self.kv_widths()
        d = known(shapes[0][1], "the query's features")
        d_ctx = known(shapes[-1][1], "the context's features")
        d_out = self.options.get("output_dim", d)
        kernels = {"query": (d, qk), "key": (d_ctx, kk), "value": (d_ctx, kv), "output": (vd, d_out)}
        fused = self.options.get("convention", "keras") == "torch" and len(shapes) == 1
        out = []
        for proj, shape in kernels.items():
            fans, how = compute_fans(shape), ""
            if fused and proj != "output":
                fans = Fans(d, qk + kk + kv)
                how = f"torch's fused in_proj_weight: fans of the ({d}, {qk + kk + kv}) q|k|v kernel"
            out.append(ParamSpec(f"{proj}.weights", shape, self.initializers[f"{proj}_weights"], fans,
                                 f"{proj}_weights", how))
            if self.has_bias(proj):
                out.append(ParamSpec(f"{proj}.bias", (shape[1],), self.initializers[f"{proj}_bias"], fans,
                                     f"{proj}_bias", how))
        return out

    def params(self, shape: Shape) -> list[ParamSpec]:
        return self.param_specs([shape])

    def apply(self, xs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        x, c = xs[0], xs[-1]
        self.check_lengths(x.shape[1], c.shape[1])
        heads, qk, vd = self.dims()
        group = heads // self.kv_heads

        def project(a: np.ndarray, proj: str, n: int) -> np.ndarray:  # (b, t, n * w) -> (b, t, n, w)
            y = a @ params[f"{proj}.weights"]
            if f"{proj}.bias" in params:
                y = y + params[f"{proj}.bias"]
            return y.reshape(*a.shape[:2], n, y.shape[-1] // n)  # explicit sizes: empty arrays reshape too

        q, k, v = project(x, "query", heads), project(c, "key", self.kv_heads), project(c, "value", self.kv_heads)
        rotary = self.rotary
        if rotary is not None:
            q, k = (rotate_positions(rotary, t) for t in (q, k))
        k, v = np.repeat(k, group, axis=2), np.repeat(v, group, axis=2)  # query head h uses kv head h // group
        scores = np.einsum("bqhd,bkhd->bhqk", q, k) / x.dtype.type(math.sqrt(qk // heads))
        if self.options.get("causal", False):
            scores = np.where(np.tril(np.ones(scores.shape[-2:], dtype=bool)), scores, -np.inf)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True, initial=-np.inf))  # no query: no key either
        weights = scores / scores.sum(axis=-1, keepdims=True)
        heads_out = np.einsum("bhqk,bkhd->bqhd", weights, v).reshape(*x.shape[:2], vd)
        y = heads_out @ params["output.weights"]
        if "output.bias" in params:
            y = y + params["output.bias"]
        return y.astype(x.dtype, copy=False)


def rotate_positions(rotary: Rotary, t: Any, xp: Any = None) -> Any:
    """Rotary embedding of ``(batch, positions, heads, features)`` at positions 0, 1, ...; ``xp`` is the
    array module of ``t`` (NumPy, or ``jax.numpy`` when JAX traces with a static number of positions).
    The angles are netspec's float64 table, their cosines and sines rounded to ``t``'s dtype."""
    import numpy as np

    xp = np if xp is None else xp
    angles = rotary.angles(t.shape[1])[:, None, :]  # (positions, 1, dims / 2): every head alike
    cos, sin = np.cos(angles).astype(t.dtype), np.sin(angles).astype(t.dtype)
    return rotary.rotate(t, cos, sin, lambda xs: xp.concatenate(xs, axis=-1), lambda xs: xp.stack(xs, axis=-1))


@register_layer
class PositionalEmbedding(Layer):
    type = "positional_embedding"
    description = ("Adds a learned position table (length, features) to a (sequence, features) input, "
                   "sequence <= length (BERT/GPT-2 position embeddings).")  # fmt: skip
    OPTIONS = {
        "length": _opt(POS_INT, "Longest sequence: rows of the table."),
        "weights": _opt(INIT_REF, "Table initializer; 'auto' is glorot_uniform (keras_hub's PositionEmbedding)."),
        "role": role_option("embedding"),
    }
    REQUIRED = ("length",)
    DEFAULT_ROLE = "embedding"
    KINDS = {"weights": "table"}
    INIT_KEYS = {"weights": "auto"}
    USES_DEFAULTS = False
    AUTO = {"name": "glorot_uniform"}
    AUTO_WHY = "keras_hub's PositionEmbedding default"

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 2:
            raise ShapeError(f"{self.type} needs an input (sequence, features), got {list(shape)}")
        self.check_length(shape[0])
        return shape

    def check_length(self, sequence: int | None) -> None:
        """The sequence fits the table (a length known only at run time is checked by :meth:`forward`)."""
        if sequence is not None and sequence > self.options["length"]:
            raise ShapeError(f"the sequence ({sequence}) is longer than length {self.options['length']}")

    def params(self, shape: Shape) -> list[ParamSpec]:
        self.output_shape(shape)
        table = (self.options["length"], known(shape[1], f"{self.type}'s features"))
        return [ParamSpec("weights", table, self.initializers["weights"], compute_fans(table))]

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        self.check_length(x.shape[1])
        return x + params["weights"][: x.shape[1]]
