"""Layer types: static shape inference, parameter declarations and NumPy forward passes.

Shapes exclude the batch axis and are channels-last: dense ``(features,)``,
conv1d ``(length, channels)``, conv2d ``(height, width, channels)``. Each
layer declares its options as JSON-Schema fragments (``OPTIONS``), which the
published schema is generated from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from netspec.errors import NetspecError
from netspec.init.fans import Fans, compute_fans
from netspec.init.gates import Gates
from netspec.init.initializers import Initializer, get_initializer
from netspec.init.recipes import ROLES
from netspec.nn.activations import Activation, get_activation

if TYPE_CHECKING:
    import numpy as np

    from netspec.init.distributions import Distribution
    from netspec.init.streams import Stream

Shape = tuple[int | None, ...]
"""A value's sizes without the batch axis; None: a size known only at run time (a sequence length that varies)."""
Dims = tuple[int, ...]
"""A tensor's sizes, all known (parameters)."""


def concrete(shape: Shape) -> Dims:
    """The sizes of a shape computed from an array's shape (every size known)."""
    return tuple(known(n, "an array axis") for n in shape)


OPEN = 1 << 20
"""The size shape inference lends an axis known only at run time while it works out a window layer's
other axes (each axis's padding and output depend on its own size only); that axis's result is None."""


def open_axes(sizes: Sequence[int | None], compute: Callable[[Dims], Sequence[int]]) -> Shape:
    """``compute`` (sizes -> per-axis outputs) with each open axis (None) lent :data:`OPEN`, its output None
    again: the known axes are computed and checked as ever, the open ones when the network runs."""
    out = compute(lend(sizes))
    return tuple(None if n is None else o for n, o in zip(sizes, out, strict=True))


def pads_vary(padding: Any, sizes: Sequence[int | None], stride: Sequence[int]) -> bool:
    """Whether a window layer's padding depends on a size known only at run time: 'same' with a stride
    above 1 over an open axis (stride 1 pads k' - 1 whatever the size; explicit padding is fixed)."""
    return padding == "same" and any(n is None and s != 1 for n, s in zip(sizes, stride, strict=True))


def lend(sizes: Sequence[int | None]) -> Dims:
    """``sizes`` with each open axis lent :data:`OPEN` (for what does not depend on that axis's size)."""
    return tuple(OPEN if n is None else n for n in sizes)


def known(size: int | None, what: str) -> int:
    """``size``, which a layer needs to know when the network is compiled (ShapeError if it varies)."""
    if size is None:
        raise ShapeError(f"{what} must have a known size (null in the input shape: known only at run time)")
    return size


class ShapeError(NetspecError, ValueError):
    """A layer cannot take its input shape (the compiler locates it)."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter tensor a layer owns, before allocation."""

    name: str
    shape: Dims
    initializer: Initializer
    fans: Fans
    key: str = ""
    """The layer's initializer key it follows (``weights``, ``bias``, ...); empty: the same as ``name``."""
    convention: str = ""
    """How the layer computed ``fans``, when not from the plain kernel layout (e.g. 'fused gates')."""
    gates: Gates | None = None
    """For gate-structured recurrent tensors: how the gate slices are initialized."""
    trainable: bool = True
    """False for state that training updates without gradients (batch norm's moving statistics)."""
    zero_rows: tuple[int, ...] = ()
    """Rows (first-axis indices) set to 0 after the draw: an embedding's padding row (:mod:`netspec.init.rows`)."""

    def declared(self) -> Distribution:
        """The distribution the tensor is declared to follow (its initializer's, gate structure and zero rows
        applied)."""
        if self.gates is not None:
            dist = self.gates.declared(self.initializer, self.shape, self.fans)
        else:
            dist = self.initializer.declared(self.shape, self.fans)
        if self.zero_rows:
            from netspec.init.rows import ZeroRows

            return ZeroRows(dist, self.zero_rows, self.shape)
        return dist

    def draw(self, stream: Stream, dtype: Any) -> np.ndarray:
        """The tensor, drawn from ``stream`` (the initializer's own call unless gate-structured) in ``dtype``'s
        stream type and stored in ``dtype`` (the half types: rounded, :mod:`netspec.init.precision`)."""
        from netspec.init.precision import stream_dtype, to_storage
        from netspec.init.rows import zero_rows

        precision = str(getattr(dtype, "name", dtype))
        drawn = stream_dtype(precision)
        if self.gates is not None:
            values = self.gates.declared(self.initializer, self.shape, self.fans).sample(self.shape, stream, drawn)
        else:
            values = self.initializer(self.shape, stream, drawn, fans=self.fans)
        return to_storage(zero_rows(values, self.zero_rows), precision)

    @property
    def blockwise(self) -> bool:
        """Whether any window of the tensor's blocks can be drawn alone (:meth:`window`, constant memory):
        i.i.d. laws, constants, identity and Dirac kernels; not orthogonal matrices (one QR of the whole),
        per-gate structured tensors, or plugin initializers that draw by their own ``__call__``."""
        own_call = self.gates is None and type(self.initializer).__call__ is not Initializer.__call__
        return not own_call and self.declared().blockwise

    def window(self, stream: Stream, dtype: Any, blocks: tuple[int, int]) -> np.ndarray:
        """The flat values of a window of the tensor's blocks, exactly those of :meth:`draw` there, stored in
        ``dtype``; only those blocks are drawn if :attr:`blockwise` (else the whole tensor, then sliced)."""
        from netspec.init.blocks import window_span
        from netspec.init.precision import stream_dtype, to_storage

        precision = str(getattr(dtype, "name", dtype))
        if self.blockwise:
            return to_storage(self.declared().window(self.shape, stream, stream_dtype(precision), blocks), precision)
        start, stop = window_span(self.size, blocks)
        return self.draw(stream, precision).reshape(-1)[start:stop].copy()

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def init_key(self) -> str:
        return self.key or self.name


@dataclass(frozen=True)
class Resolved:
    """What the compiler resolved for one layer before constructing it.

    ``activation`` is the layer's activation (linear for layers without one);
    ``initializers`` maps each key of the layer's :attr:`Layer.INIT_KEYS`
    (``weights``, ``bias``) to its initializer, ``auto`` already resolved.
    """

    activation: Activation = field(default_factory=lambda: get_activation("linear"))
    initializers: dict[str, Initializer] = field(default_factory=dict)
    auto: frozenset[str] = frozenset()
    """The initializer keys resolved from ``auto`` (a layer may refine those per parameter)."""


POS_INT = {"type": "integer", "minimum": 1, "maximum": 1 << 31}
SIZE_OR_LIST = {
    "oneOf": [POS_INT, {"type": "array", "items": POS_INT, "minItems": 1, "maxItems": 3}],
}
PAD = {"type": "integer", "minimum": 0, "maximum": 1 << 20}
EXPLICIT_PADDING = {
    "oneOf": [
        PAD,
        {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {"oneOf": [PAD, {"type": "array", "items": PAD, "minItems": 2, "maxItems": 2}]},
        },
    ]
}
"""Zeros added: n on both sides of every spatial axis, or per axis n or [before, after]."""
WINDOW_PADDING = {"oneOf": [{"enum": ["valid", "same"]}, *EXPLICIT_PADDING["oneOf"]]}
"""A convolution's or pool's ``padding``: 'valid', 'same', or explicit (:data:`EXPLICIT_PADDING`)."""
PADDING_TEXT = ("'valid' (none, default); 'same' (TensorFlow's rule: output ceil(n / stride), the total padding "
                "split with the odd one after, so a strided layer may pad (0, 1) where PyTorch pads (1, 1)); or "
                "explicit as PyTorch's padding: n on both sides of every spatial axis, or per axis n or "
                "[before, after].")  # fmt: skip
INIT_REF = {"$ref": "#/$defs/initializer"}
ACT_REF = {"$ref": "#/$defs/activation"}


def _opt(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {**schema, "description": description}


class Layer:
    """Base class: ``type`` names it, ``OPTIONS`` declares its spec keys.

    ``INIT_KEYS`` maps each initializer key the layer takes to its built-in
    default; ``USES_DEFAULTS`` says whether the spec's ``defaults`` apply;
    ``AUTO`` is what ``auto`` means for this layer type (None: the
    initializer recommended for the layer's activation).
    """

    type: ClassVar[str] = ""
    description: ClassVar[str] = ""
    OPTIONS: ClassVar[dict[str, dict[str, Any]]] = {}
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    INIT_KEYS: ClassVar[dict[str, str]] = {}
    INIT_FALLBACKS: ClassVar[dict[str, str]] = {}
    """Initializer keys that, when the layer does not write them, take another key's value
    (``query_weights`` -> ``weights``): the more specific key overrides the general one."""
    USES_DEFAULTS: ClassVar[bool] = True
    AUTO: ClassVar[dict[str, Any] | None] = None
    AUTO_WHY: ClassVar[str] = ""
    ARITY: ClassVar[int | tuple[int, int] | None] = 1
    """How many inputs the layer takes: 1, an exact number, a (fewest, most) range, or None for two or more."""
    DEFAULT_ROLE: ClassVar[str] = "hidden"
    """The layer's role for init recipes when it has no ``role:`` (:data:`netspec.init.recipes.ROLES`)."""
    KINDS: ClassVar[dict[str, str]] = {}
    """Parameter name (its last part) -> what it is to an init recipe: kernel, table, bias, gain, shift."""

    def __init__(self, name: str, options: dict[str, Any], resolved: Resolved | None = None):
        self.name = name
        self.options = options
        resolved = resolved or Resolved()
        self.activation: Activation = resolved.activation
        self.initializers = resolved.initializers
        self.auto_keys = resolved.auto

    @classmethod
    def auto(cls, key: str, options: dict[str, Any], activation: Activation) -> tuple[Any, str, str, str]:
        """What ``auto`` means for initializer ``key``: (initializer spec, what it follows, rule, why).

        The rule is ``activation`` (the activation's recommended initializer) or ``layer`` (the layer
        type's own default, stated in ``why``).
        """
        if cls.AUTO is not None:
            return cls.AUTO, cls.type, "layer", cls.AUTO_WHY
        return activation.recommended, activation.name, "activation", "the activation's recommended initializer"

    @classmethod
    def base_key(cls, key: str) -> str:
        """The general key a specific one falls back to (``query_weights`` -> ``weights``), else itself."""
        while key in cls.INIT_FALLBACKS:
            key = cls.INIT_FALLBACKS[key]
        return key

    @classmethod
    def has_activation(cls) -> bool:
        return "activation" in cls.OPTIONS

    def role_of(self, param: ParamSpec) -> str:
        """The role of a parameter's layer (or projection) for init recipes."""
        role = self.options.get("role", self.DEFAULT_ROLE)
        return role if isinstance(role, str) else self.DEFAULT_ROLE

    def kind_of(self, param: ParamSpec) -> str:
        """What a parameter is to an init recipe (``other``: recipes leave it alone)."""
        return self.KINDS.get(param.name.rsplit(".", 1)[-1], "other")

    def head_dim_of(self, param: ParamSpec) -> int | None:
        """The attention head width a parameter belongs to (None outside attention)."""
        return None

    def without_activation(self) -> Layer:
        """A copy that applies no activation (its output is the pre-activation)."""
        import copy

        clone = copy.copy(self)
        clone.activation = get_activation("linear")
        return clone

    @classmethod
    def has_parameters(cls) -> bool:
        """Whether the layer owns parameter tensors whose names come from the layer name."""
        return bool(cls.INIT_KEYS) or cls.params is not Layer.params

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def params(self, shape: Shape) -> list[ParamSpec]:
        return []

    def param_specs(self, shapes: list[Shape]) -> list[ParamSpec]:
        """The parameters, from every input's shape (layers with one input implement :meth:`params`)."""
        return self.params(shapes[0])

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        return x

    def tied(self) -> dict[str, str]:
        """Parameters the layer takes from another layer instead of owning: local name -> that layer's
        name as written (the compiler resolves it to the other layer's parameter)."""
        return {}

    def combine_shapes(self, shapes: list[Shape]) -> Shape:
        """The output shape from every input's shape (one input for all but merge layers); ShapeError if the
        layer cannot take them. The compiler calls it with the spec's sizes (None where known only at run
        time), :meth:`netspec.nn.network.Network.forward` again with the sizes it runs with, before
        :meth:`apply`, so a rule written here holds for every size."""
        return self.output_shape(shapes[0])

    def apply(self, xs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        """The forward pass on every input (one input for all but merge layers)."""
        return self.forward(xs[0], params)


class WeightedLayer(Layer):
    """Kernel ``weights`` plus optional ``bias`` (both get the kernel's fans)."""

    INIT_KEYS = {"weights": "auto", "bias": "zeros"}
    KINDS = {"weights": "kernel", "bias": "bias"}

    @property
    def use_bias(self) -> bool:
        return bool(self.options.get("use_bias", True))

    def kernel_shape(self, shape: Shape) -> Dims:
        raise NotImplementedError

    def params(self, shape: Shape) -> list[ParamSpec]:
        kernel = self.kernel_shape(shape)
        fans = compute_fans(kernel)
        specs = [ParamSpec("weights", kernel, self.initializers["weights"], fans)]
        if self.use_bias:
            specs.append(ParamSpec("bias", (kernel[-1],), self.initializers["bias"], fans))
        return specs


def role_option(default: str) -> dict[str, Any]:
    """The ``role:`` option: what the layer is to an init recipe (``init: {recipe: ...}``)."""
    return _opt({"enum": list(ROLES)}, f"The layer's role for the spec's init recipe (default {default}): "
                + "; ".join(f"{k}: {v}" for k, v in ROLES.items()) + ".")  # fmt: skip


WEIGHT_OPTIONS = {
    "activation": _opt(ACT_REF, "Activation applied to the output (default: defaults.activation or linear)."),
    "weights": _opt(INIT_REF, "Kernel initializer: a name or {name, ...params}; 'auto' follows the activation."),
    "bias": _opt(INIT_REF, "Bias initializer (gets the kernel's fans); default: defaults.bias or zeros."),
    "use_bias": _opt({"type": "boolean"}, "Whether the layer has a bias vector (default true)."),
    "role": role_option("hidden"),
}


TIE = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*$", "maxLength": 200}


class Dense(WeightedLayer):
    """Fully connected on the last axis: ``y = act(x @ W + b)``, ``W`` of shape ``(in, units)``.

    ``tie: <embedding layer>`` (weight tying, Press and Wolf 2017; GPT-2's ``lm_head``, Flax's
    ``Embed.attend``): the kernel is that embedding's table transposed, ``(dim, vocab)``. The layer owns
    no kernel tensor (only its bias, if any): the table is initialized, counted, exported and
    verified once, under the embedding's name.
    """

    type = "dense"
    description = "Fully connected: y = act(x @ W + b), W of shape (in, units), on the last axis."
    OPTIONS = {
        "units": _opt(POS_INT, "Number of output units."),
        **WEIGHT_OPTIONS,
        "tie": _opt(TIE, "An earlier embedding layer whose table, transposed, is this layer's kernel (weight tying: "
                    "no kernel of its own; units = the vocabulary, input features = the embedding's dim)."),
    }  # fmt: skip
    REQUIRED = ("units",)

    def kernel_shape(self, shape: Shape) -> Dims:
        return (known(shape[-1], f"{self.type}'s input features (the last axis)"), self.options["units"])

    def params(self, shape: Shape) -> list[ParamSpec]:
        specs = super().params(shape)
        return [p for p in specs if p.name != "weights"] if "tie" in self.options else specs

    def tied(self) -> dict[str, str]:
        """Local parameter -> the layer it is tied to (its table, transposed): ``{"weights": "tokens"}``."""
        return {"weights": self.options["tie"]} if "tie" in self.options else {}

    def output_shape(self, shape: Shape) -> Shape:
        return (*shape[:-1], self.options["units"])

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        y = x @ params["weights"]
        if "bias" in params:
            y = y + params["bias"]
        return self.activation(y)


def _tuple(value: int | list[int], rank: int, what: str) -> tuple[int, ...]:
    values = [value] * rank if isinstance(value, int) else list(value)
    if len(values) != rank:
        raise ShapeError(f"{what} needs {rank} value(s), got {len(values)}")
    return tuple(values)


def explicit_pads(value: Any, rank: int) -> list[tuple[int, int]]:
    """(before, after) per spatial axis from :data:`EXPLICIT_PADDING`: n (both sides of every axis), or a
    list with one n or [before, after] per axis."""
    values = list(value) if isinstance(value, list) else [value] * rank
    if len(values) != rank:
        raise ShapeError(f"padding needs {rank} value(s), one per spatial axis, got {len(values)}")
    return [(v, v) if isinstance(v, int) else (int(v[0]), int(v[1])) for v in values]


def same_padding(sizes: Sequence[int], kernel: Sequence[int], stride: Sequence[int]) -> list[tuple[int, int]]:
    """TensorFlow's 'same' padding, (before, after) per axis: the output has ceil(n / stride) positions, the
    total padding max((out - 1) * stride + kernel - n, 0) is split with the odd one after (the exporters use
    the same numbers)."""
    pads = []
    for n, k, s in zip(sizes, kernel, stride, strict=True):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def window_pads(padding: Any, sizes: Sequence[int], window: Sequence[int],
                stride: Sequence[int]) -> list[tuple[int, int]]:  # fmt: skip
    """(before, after) per spatial axis of a convolution's or pool's ``padding`` (:data:`WINDOW_PADDING`)
    for inputs of ``sizes``, with ``window`` the (effective, dilated) kernel."""
    if padding == "valid":
        return [(0, 0)] * len(sizes)
    if padding == "same":
        return same_padding(sizes, window, stride)
    return explicit_pads(padding, len(sizes))


def window_outputs(sizes: Sequence[int], window: Sequence[int], stride: Sequence[int],
                   pads: list[tuple[int, int]], what: str) -> tuple[int, ...]:  # fmt: skip
    """Output positions per axis: (n + before + after - window) // stride + 1 (for 'same' this is
    ceil(n / stride)); every axis needs a position (a window over padding alone has no value)."""
    positions(sizes, f"a {what.split()[-1]}'s input")
    out = []
    for n, k, s, (before, after) in zip(sizes, window, stride, pads, strict=True):
        if k > n + before + after:
            padded = f" padded to {n + before + after}" if before or after else " with padding 'valid'"
            raise ShapeError(f"the {what} {k} is larger than its input ({n}){padded}")
        out.append((n + before + after - k) // s + 1)
    return tuple(out)


def positions(sizes: Sequence[int | None], what: str) -> None:
    """ShapeError unless every axis of ``sizes`` has a position: the rule for layers that reduce or slide a
    window over an axis (a spec cannot write a size 0; an axis known only at run time can be empty)."""
    if 0 in sizes:
        raise ShapeError(f"{what} needs at least one position on every spatial axis, got {list(sizes)}")


MAX_OUTPUT_VALUES = 1 << 31
"""Values in one layer's output for one sample (as a dimension's bound): a forward pass holds every
layer's output, so a spec cannot ask ``eval`` for an absurd activation (upsample 400000x) with no
parameters at all."""


def check_output_size(shape: Shape) -> None:
    """ShapeError if one sample's output holds more than :data:`MAX_OUTPUT_VALUES` values (open axes not
    counted when compiling; counted at their run-time size when the network runs)."""
    values = math.prod(d for d in shape if d is not None)
    if values > MAX_OUTPUT_VALUES:
        raise ShapeError(f"the output {tuple(shape)} holds {values:,} values per sample, more than the limit of "
                         f"{MAX_OUTPUT_VALUES:,}")  # fmt: skip


def _pad(x: np.ndarray, pads: list[tuple[int, int]], value: float = 0.0) -> np.ndarray:
    """``x`` (batch, *spatial, channels) padded on its spatial axes."""
    import numpy as np

    if not any(b or a for b, a in pads):
        return x
    return np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=value)


def _windows(x: np.ndarray, window: tuple[int, ...], stride: tuple[int, ...]) -> np.ndarray:
    """(batch, *out, channels, *window) strided view."""
    import numpy as np

    axes = tuple(range(1, 1 + len(window)))
    view = np.lib.stride_tricks.sliding_window_view(x, window, axis=axes)
    return view[(slice(None), *(slice(None, None, s) for s in stride))]


class Pool(Layer):
    """Max or average pooling over windows of ``pool`` positions every ``stride``, after ``padding``.

    Padded positions never win a maximum; an average divides by the window's real positions, or by the
    whole window with ``count_include_pad: true`` (PyTorch's ``AvgPool`` default; TensorFlow's and
    Keras' ``same`` exclude the padding)."""

    rank: ClassVar[int] = 1
    reduce: ClassVar[str] = "max"
    OPTIONS = {
        "pool": _opt(SIZE_OR_LIST, "Window size: one integer or one per spatial axis."),
        "stride": _opt(SIZE_OR_LIST, "Stride (default: the window size)."),
        "padding": _opt(WINDOW_PADDING, PADDING_TEXT),
    }
    REQUIRED = ("pool",)

    def geometry(self) -> tuple[tuple[int, ...], tuple[int, ...], Any]:
        """(window, stride, padding as written)."""
        pool = _tuple(self.options["pool"], self.rank, "pool")
        stride = _tuple(self.options.get("stride", self.options["pool"]), self.rank, "stride")
        return pool, stride, self.options.get("padding", "valid")

    def pads(self, sizes: Sequence[int]) -> list[tuple[int, int]]:
        """(before, after) per spatial axis for inputs of ``sizes``; each below the window, so no window
        lies in the padding alone."""
        pool, stride, padding = self.geometry()
        pads = window_pads(padding, sizes, pool, stride)
        for k, (before, after) in zip(pool, pads, strict=True):
            if max(before, after) >= k:
                raise ShapeError(f"padding {max(before, after)} must be smaller than the pool window ({k})")
        return pads

    @property
    def count_include_pad(self) -> bool:
        return bool(self.options.get("count_include_pad", False))

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != self.rank + 1:
            raise ShapeError(f"{self.type} needs an input of rank {self.rank + 1}, got {list(shape)}")
        pool, stride, _ = self.geometry()
        spatial = open_axes(shape[:-1], lambda sizes: window_outputs(sizes, pool, stride, self.pads(sizes), "pool"))
        return (*spatial, shape[-1])

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        pool, stride, _ = self.geometry()
        fill = -np.inf if self.reduce == "max" else 0.0 if self.count_include_pad else np.nan
        win = _windows(_pad(x, self.pads(x.shape[1:-1]), fill), pool, stride)
        axes = tuple(range(win.ndim - self.rank, win.ndim))
        return win.max(axis=axes) if self.reduce == "max" else np.nanmean(win, axis=axes).astype(x.dtype)


AVG_OPTIONS = {
    **Pool.OPTIONS,
    "count_include_pad": _opt({"type": "boolean"}, "Divide by the whole window, padding included (PyTorch's "
                              "AvgPool default), instead of its real positions (default false: TensorFlow's)."),
}  # fmt: skip


def _pool(name: str, rank: int, reduce: str) -> type[Pool]:
    what = "maximum" if reduce == "max" else "average"
    description = f"{rank}-D {what} pooling, channels-last."
    attributes: dict[str, Any] = {"type": name, "rank": rank, "reduce": reduce, "description": description}
    if reduce == "avg":
        attributes["OPTIONS"] = AVG_OPTIONS
    return type(name.title().replace("_", ""), (Pool,), attributes)


class Flatten(Layer):
    type = "flatten"
    description = "Flattens every axis but the batch axis (C order)."

    def output_shape(self, shape: Shape) -> Shape:
        return (None,) if None in shape else (math.prod(s for s in shape if s is not None),)

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))  # explicit: a batch of 0 reshapes too


class Dropout(Layer):
    type = "dropout"
    description = "Dropout; the identity in evaluation (netspec's forward pass)."
    OPTIONS = {"rate": _opt({"type": "number", "minimum": 0, "exclusiveMaximum": 1}, "Fraction dropped in training.")}
    REQUIRED = ("rate",)


class Norm(Layer):
    OPTIONS = {"epsilon": _opt({"type": "number", "exclusiveMinimum": 0}, "Added to the variance for stability."),
               "role": role_option("norm")}  # fmt: skip
    default_epsilon: ClassVar[float] = 1e-5
    DEFAULT_ROLE = "norm"
    KINDS = {"gamma": "gain", "beta": "shift"}

    @property
    def epsilon(self) -> float:
        return float(self.options.get("epsilon", self.default_epsilon))

    def params(self, shape: Shape) -> list[ParamSpec]:
        n = known(shape[-1], f"{self.type}'s features (the last axis)")
        fans = Fans(n, n)
        return [
            ParamSpec("gamma", (n,), get_initializer("ones"), fans),
            ParamSpec("beta", (n,), get_initializer("zeros"), fans),
        ]


class BatchNorm(Norm):
    """Batch normalization on the channels (last) axis.

    Evaluation: ``y = (x - moving_mean) / sqrt(moving_variance + epsilon) * gamma + beta``. Training (the
    exported PyTorch module in ``train()`` mode) normalizes with the batch's mean and biased variance and
    updates ``moving = (1 - momentum) * moving + momentum * batch`` (the unbiased batch variance), as
    PyTorch's ``BatchNorm``; Keras' and Flax's ``momentum`` m is this ``1 - momentum``.
    """

    type = "batch_norm"
    description = "Batch normalization on the last axis; eval uses moving_mean / moving_variance."
    OPTIONS = {
        "epsilon": _opt({"type": "number", "exclusiveMinimum": 0},
                        "Added to the variance for stability (default 1e-5, PyTorch's and Flax's; Keras uses 1e-3)."),
        "momentum": _opt({"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                         "Weight of the batch statistics in the moving averages when training, PyTorch's convention "
                         "(default 0.1; Keras' momentum 0.99 is 0.01 here)."),
        "role": role_option("norm"),
    }  # fmt: skip
    default_momentum: ClassVar[float] = 0.1

    @property
    def momentum(self) -> float:
        return float(self.options.get("momentum", self.default_momentum))

    def params(self, shape: Shape) -> list[ParamSpec]:
        specs = super().params(shape)
        n, fans = specs[0].shape[0], specs[0].fans
        return [
            *specs,
            ParamSpec("moving_mean", (n,), get_initializer("zeros"), fans, trainable=False),
            ParamSpec("moving_variance", (n,), get_initializer("ones"), fans, trainable=False),
        ]

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        scale = params["gamma"] / np.sqrt(params["moving_variance"] + x.dtype.type(self.epsilon))
        return (x - params["moving_mean"]) * scale + params["beta"]


class LayerNorm(Norm):
    type = "layer_norm"
    description = "Layer normalization over the last axis with gamma and beta."

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        mean = x.mean(axis=-1, keepdims=True)
        var = x.var(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + x.dtype.type(self.epsilon)) * params["gamma"] + params["beta"]


RMS_EPSILON_NOTE = (
    "Added to the mean square (default 1e-6: Hugging Face LlamaConfig's rms_norm_eps, T5LayerNorm, Flax's "
    "nn.RMSNorm, Keras 3's RMSNormalization; Meta's Llama reference, torchtitan and TinyLlama's config use 1e-5; "
    "torch nn.RMSNorm's eps=None means torch.finfo(dtype).eps, 1.19e-7 for float32)."
)


class RMSNorm(Norm):
    """Root-mean-square normalization (Zhang and Sennrich 2019) over the last axis:
    ``y = x / sqrt(mean(x^2) + epsilon) * gamma``; no mean is subtracted and there is no beta.
    ``gamma`` starts at ones (every framework's default)."""

    type = "rms_norm"
    description = "RMS normalization over the last axis: x / sqrt(mean(x^2) + epsilon) * gamma (Llama, T5)."
    OPTIONS = {"epsilon": _opt({"type": "number", "exclusiveMinimum": 0}, RMS_EPSILON_NOTE),
               "role": role_option("norm")}  # fmt: skip
    default_epsilon = 1e-6

    def params(self, shape: Shape) -> list[ParamSpec]:
        return super().params(shape)[:1]

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        mean_square = np.mean(x * x, axis=-1, keepdims=True)
        return x / np.sqrt(mean_square + x.dtype.type(self.epsilon)) * params["gamma"]


class Embedding(Layer):
    type = "embedding"
    description = "Lookup table (vocab, dim) for integer token ids; input shape (sequence_length,)."
    OPTIONS = {
        "vocab": _opt(POS_INT, "Number of distinct token ids."),
        "dim": _opt(POS_INT, "Embedding width."),
        "weights": _opt(INIT_REF, "Table initializer; 'auto' is normal(0, 1) (PyTorch's nn.Embedding)."),
        "role": role_option("embedding"),
        "padding_idx": _opt({"type": "integer", "minimum": 0, "maximum": 1 << 31},
                            "A token id whose row is 0 after the draw (PyTorch's nn.Embedding(padding_idx)); "
                            "below vocab."),
    }
    REQUIRED = ("vocab", "dim")
    DEFAULT_ROLE = "embedding"
    KINDS = {"weights": "table"}
    INIT_KEYS = {"weights": "auto"}
    USES_DEFAULTS = False
    AUTO = {"name": "normal", "std": 1.0}
    AUTO_WHY = "PyTorch's nn.Embedding"

    def output_shape(self, shape: Shape) -> Shape:
        return (*shape, self.options["dim"])

    def params(self, shape: Shape) -> list[ParamSpec]:
        table = (self.options["vocab"], self.options["dim"])
        pad = self.options.get("padding_idx")
        if pad is not None and pad >= table[0]:
            raise ShapeError(f"padding_idx {pad} is not below vocab ({table[0]})")
        rows = () if pad is None else (pad,)
        return [ParamSpec("weights", table, self.initializers["weights"], compute_fans(table), zero_rows=rows)]

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        ids = np.asarray(x)
        vocab = self.options["vocab"]
        if ids.size and (not np.all(np.equal(np.mod(ids, 1), 0)) or ids.min() < 0 or ids.max() >= vocab):
            raise ShapeError(f"{self.name}: token ids must be integers in [0, {self.options['vocab']})")
        return params["weights"][ids.astype(np.int64)]


class Merge(Layer):
    """Combines several inputs of the same shape, or shapes that broadcast (NumPy's rules, over the
    axes without the batch axis: sizes equal or 1, aligned from the last axis)."""

    ARITY: ClassVar[int | tuple[int, int] | None] = None
    REQUIRED = ("inputs",)
    ufunc: ClassVar[str] = "add"

    def combine_shapes(self, shapes: list[Shape]) -> Shape:
        """Per axis the size other than 1; a size known only at run time (None) is taken to fit (NumPy checks
        it when the network runs) and gives None unless another input's size is known."""
        out: list[int | None] = []
        for axis in range(1, max(len(s) for s in shapes) + 1):
            sizes = {s[-axis] for s in shapes if len(s) >= axis} - {1}
            fixed = sizes - {None}
            if len(fixed) > 1:
                raise ShapeError(f"input shapes do not match or broadcast: {_shapes(shapes)}")
            out.insert(0, fixed.pop() if fixed else None if sizes else 1)
        return tuple(out)

    def apply(self, xs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        fn = getattr(np, self.ufunc)
        y = xs[0]
        for x in xs[1:]:
            y = fn(y, x)
        return y


def _fit(a: Shape, b: Shape) -> bool:
    """Equal where both sizes are known (None, known only at run time, fits any size)."""
    return all(x is None or y is None or x == y for x, y in zip(a, b, strict=True))


def _shapes(shapes: list[Shape]) -> str:
    return ", ".join("(" + ", ".join(map(str, s)) + ")" for s in shapes)


class Add(Merge):
    type = "add"
    description = "Element-wise sum of two or more inputs (same shapes, or shapes that broadcast)."


class Subtract(Merge):
    type = "subtract"
    description = "The first input minus the second (same shapes, or shapes that broadcast)."
    ARITY = 2
    ufunc = "subtract"


class Multiply(Merge):
    type = "multiply"
    description = "Element-wise product of two or more inputs (same shapes, or shapes that broadcast)."
    ufunc = "multiply"


class Concat(Layer):
    type = "concat"
    description = "Concatenates two or more inputs along an axis (every other axis equal)."
    OPTIONS = {
        "axis": _opt({"type": "integer", "minimum": -8, "maximum": 8},
                     "Axis over the per-sample axes (the batch axis not counted); default -1, the last."),
    }  # fmt: skip
    ARITY = None
    REQUIRED = ("inputs",)

    def axis(self, rank: int) -> int:
        axis = int(self.options.get("axis", -1))
        if not -rank <= axis < rank:
            raise ShapeError(f"axis {axis} is out of range for inputs of rank {rank}")
        return axis % rank

    def combine_shapes(self, shapes: list[Shape]) -> Shape:
        ranks = {len(s) for s in shapes}
        if len(ranks) > 1:
            raise ShapeError(f"inputs have different ranks: {_shapes(shapes)}")
        axis = self.axis(ranks.pop())
        rest = [s[:axis] + s[axis + 1 :] for s in shapes]
        if any(not _fit(a, b) for a in rest for b in rest):
            raise ShapeError(f"inputs differ on an axis other than {axis}: {_shapes(shapes)}")
        merged = tuple(next((n for n in sizes if n is not None), None) for sizes in zip(*rest, strict=True))
        joined = [s[axis] for s in shapes]
        total = None if None in joined else sum(n for n in joined if n is not None)
        return (*merged[:axis], total, *merged[axis:])

    def apply(self, xs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        return np.concatenate(xs, axis=1 + self.axis(xs[0].ndim - 1))


class ActivationLayer(Layer):
    type = "activation"
    description = "Applies an activation function alone."
    OPTIONS = {"activation": _opt(ACT_REF, "The activation to apply.")}
    REQUIRED = ("activation",)

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        return self.activation(x)


LAYER_TYPES: dict[str, type[Layer]] = {
    cls.type: cls
    for cls in (
        Dense,
        _pool("max_pool1d", 1, "max"),
        _pool("max_pool2d", 2, "max"),
        _pool("avg_pool1d", 1, "avg"),
        _pool("avg_pool2d", 2, "avg"),
        Flatten,
        Dropout,
        BatchNorm,
        LayerNorm,
        RMSNorm,
        Embedding,
        ActivationLayer,
        Add,
        Subtract,
        Multiply,
        Concat,
    )
}


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Add a layer type to :data:`LAYER_TYPES` (a decorator for the layer families' modules)."""
    if cls.type in LAYER_TYPES and LAYER_TYPES[cls.type] is not cls:
        raise ValueError(f"layer type {cls.type!r} is already registered")
    LAYER_TYPES[cls.type] = cls
    return cls

