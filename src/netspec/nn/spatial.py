"""Spatial layers without parameters: global pooling, zero padding, nearest upsampling, reshape, permute.

Shapes are channels-last without the batch axis: ``(*spatial, channels)``.
Each type registers itself into :data:`netspec.nn.layers.LAYER_TYPES`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from netspec.nn.layers import (
    EXPLICIT_PADDING,
    POS_INT,
    Layer,
    Shape,
    ShapeError,
    _opt,
    explicit_pads,
    known,
    positions,
    register_layer,
)

if TYPE_CHECKING:
    import numpy as np

PER_AXIS = {"oneOf": [POS_INT, {"type": "array", "items": POS_INT, "minItems": 1, "maxItems": 3}]}
PADDING = EXPLICIT_PADDING


def _spatial(layer: Layer, shape: Shape) -> int:
    """The number of spatial axes of a ``(*spatial, channels)`` input (at least one)."""
    if len(shape) < 2:
        raise ShapeError(f"{layer.type} needs an input (*spatial, channels) with a spatial axis, got {list(shape)}")
    return len(shape) - 1


def _per_axis(value: Any, rank: int, what: str) -> list[Any]:
    values = list(value) if isinstance(value, list) else [value] * rank
    if len(values) != rank:
        raise ShapeError(f"{what} needs {rank} value(s), one per spatial axis, got {len(values)}")
    return values


class GlobalPool(Layer):
    reduce: ClassVar[str] = "mean"

    def output_shape(self, shape: Shape) -> Shape:
        _spatial(self, shape)
        positions(shape[:-1], f"{self.type}'s input")
        return (shape[-1],)

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        axes = tuple(range(1, x.ndim - 1))
        return x.mean(axis=axes) if self.reduce == "mean" else x.max(axis=axes)


@register_layer
class GlobalAvgPool(GlobalPool):
    type = "global_avg_pool"
    description = "Average over every spatial axis: (*spatial, channels) -> (channels,)."


@register_layer
class GlobalMaxPool(GlobalPool):
    type = "global_max_pool"
    description = "Maximum over every spatial axis: (*spatial, channels) -> (channels,)."
    reduce = "max"


@register_layer
class ZeroPad(Layer):
    type = "zero_pad"
    description = "Pads every spatial axis with zeros: an integer (both sides), or per axis n or [before, after]."
    OPTIONS = {"padding": _opt(PADDING, "Zeros added: n on both sides of every spatial axis, or per axis.")}
    REQUIRED = ("padding",)

    def pads(self, shape: Shape) -> list[tuple[int, int]]:
        return explicit_pads(self.options["padding"], _spatial(self, shape))

    def output_shape(self, shape: Shape) -> Shape:
        pads = self.pads(shape)
        return (*(None if n is None else n + a + b for n, (a, b) in zip(shape[:-1], pads, strict=True)), shape[-1])

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        return np.pad(x, [(0, 0), *self.pads(x.shape[1:]), (0, 0)])


@register_layer
class Upsample(Layer):
    type = "upsample"
    description = "Nearest-neighbour upsampling: every spatial axis repeated 'size' times."
    OPTIONS = {"size": _opt(PER_AXIS, "Integer factor: one, or one per spatial axis.")}
    REQUIRED = ("size",)

    def factors(self, shape: Shape) -> list[int]:
        return [int(v) for v in _per_axis(self.options["size"], _spatial(self, shape), "size")]

    def output_shape(self, shape: Shape) -> Shape:
        return (*(None if n is None else n * f for n, f in zip(shape[:-1], self.factors(shape), strict=True)),
                shape[-1])  # fmt: skip

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        for axis, factor in enumerate(self.factors(x.shape[1:]), start=1):
            x = x.repeat(factor, axis=axis)
        return x


@register_layer
class Reshape(Layer):
    type = "reshape"
    description = "Gives each sample a new shape with the same number of values (C order); one -1 is inferred."
    OPTIONS = {
        "shape": _opt({"type": "array", "minItems": 1, "maxItems": 4,
                       "items": {"type": "integer", "minimum": -1, "maximum": 1 << 31, "not": {"const": 0}}},
                      "The new per-sample shape (without the batch axis), e.g. [16, 64] or [-1, 8]."),
    }  # fmt: skip
    REQUIRED = ("shape",)

    def output_shape(self, shape: Shape) -> Shape:
        target = [int(v) for v in self.options["shape"]]
        size = math.prod(known(n, "every axis of a reshape's input") for n in shape)
        known_part = math.prod(v for v in target if v != -1)
        if target.count(-1) > 1:
            raise ShapeError(f"at most one -1 in shape {target}")
        if -1 in target:
            if size % known_part:
                raise ShapeError(f"cannot infer the -1 in {target}: {size} values are not a multiple of {known_part}")
            target[target.index(-1)] = size // known_part
        if math.prod(target) != size:
            raise ShapeError(f"shape {target} holds {math.prod(target)} values, the input {list(shape)} has {size}")
        return tuple(target)

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        return x.reshape(x.shape[0], *self.output_shape(x.shape[1:]))


@register_layer
class Permute(Layer):
    type = "permute"
    description = "Reorders the per-sample axes; 'axes' lists them 1-based, as Keras' Permute (the batch axis stays)."
    OPTIONS = {
        "axes": _opt({"type": "array", "minItems": 1, "maxItems": 4,
                      "items": {"type": "integer", "minimum": 1, "maximum": 4}},
                     "A permutation of 1..rank: [2, 1] swaps the axes of a (length, features) input."),
    }  # fmt: skip
    REQUIRED = ("axes",)

    def order(self, shape: Shape) -> list[int]:
        axes = [int(a) for a in self.options["axes"]]
        if sorted(axes) != list(range(1, len(shape) + 1)):
            raise ShapeError(f"axes {axes} is not a permutation of 1..{len(shape)} for an input {list(shape)}")
        return [a - 1 for a in axes]

    def output_shape(self, shape: Shape) -> Shape:
        return tuple(shape[a] for a in self.order(shape))

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        return x.transpose(0, *(a + 1 for a in self.order(x.shape[1:])))
