"""Fan-in / fan-out of parameter tensors.

netspec stores kernels input-major, like Keras and JAX:

* dense kernel ``(fan_in, fan_out)`` — ``W`` in ``y = x @ W`` (McCaffrey's Glorot article:
  ``ih_weights[i, j]``);
* convolution kernel ``(*kernel, in_channels, out_channels)`` of any rank:
  ``receptive_field = prod(kernel)``, ``fan_in = in_channels * receptive_field``,
  ``fan_out = out_channels * receptive_field``;
* embedding table ``(vocab, dim)``: ``fan_in = vocab``, ``fan_out = dim`` (the
  rank-2 rule, as Keras; PyTorch's ``nn.Embedding`` stores the same
  ``(num_embeddings, dim)`` array but reads it as ``(out, in)`` and so reports
  ``fan_in = dim``);
* a vector ``(n,)``: ``fan_in = fan_out = n`` (Keras); layers pass their
  kernel's fans to bias initializers instead, as PyTorch's layer defaults do.

PyTorch stores the same kernels as ``(out, in, *kernel)`` and computes
``fan_in = size(1) * prod(kernel)``, ``fan_out = size(0) * prod(kernel)``: the
numbers are identical once the layout is transposed, which the conformance
tests check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from netspec.errors import InitializerError

MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")


@dataclass(frozen=True)
class Fans:
    """Fan-in, fan-out and receptive field of one parameter tensor."""

    fan_in: int
    fan_out: int
    receptive_field: int = 1

    def __post_init__(self) -> None:
        for name in ("fan_in", "fan_out", "receptive_field"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InitializerError(f"{name} must be a positive integer, got {value!r}")

    def for_mode(self, mode: str) -> float:
        """The ``n`` of a variance-scaling mode.

        ``fan_in``; ``fan_out``; ``fan_avg = (fan_in + fan_out) / 2``;
        ``fan_geo_avg = sqrt(fan_in * fan_out)`` (JAX).
        """
        if mode == "fan_in":
            return float(self.fan_in)
        if mode == "fan_out":
            return float(self.fan_out)
        if mode == "fan_avg":
            return (self.fan_in + self.fan_out) / 2.0
        if mode == "fan_geo_avg":
            return math.sqrt(self.fan_in * self.fan_out)
        raise InitializerError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")


def compute_fans(shape: tuple[int, ...]) -> Fans:
    """Fans of a tensor stored in netspec's input-major layout (see module doc)."""
    shape = tuple(shape)
    if any(not isinstance(d, int) or d < 1 for d in shape):
        raise InitializerError(f"every dimension must be a positive integer, got shape {shape}")
    if len(shape) == 0:
        return Fans(1, 1)
    if len(shape) == 1:
        return Fans(shape[0], shape[0])
    if len(shape) == 2:
        return Fans(shape[0], shape[1])
    receptive = math.prod(shape[:-2])
    return Fans(shape[-2] * receptive, shape[-1] * receptive, receptive)


def torch_layout(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The PyTorch shape ``(out, in, *kernel)`` of a netspec ``(*kernel, in, out)`` shape."""
    if len(shape) < 2:
        return tuple(shape)
    return (shape[-1], shape[-2], *shape[:-2])


Axes = int | tuple[int, ...]


def axis_fans(shape: tuple[int, ...], in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = ()) -> Fans:
    """Fans from explicit axes, for any kernel layout (JAX's ``variance_scaling`` rule).

    ``fan_in = prod(shape[in_axis]) * receptive``, ``fan_out = prod(shape[out_axis]) * receptive``,
    where ``receptive`` is the product of every axis that is neither an input, an output nor a
    batch axis (batch axes count nowhere). Each axis argument is one axis or a tuple of axes,
    negative from the end. With the defaults it equals :func:`compute_fans` for rank >= 2.

    Raises:
        InitializerError: an axis is out of range or used twice.
    """
    shape = tuple(shape)
    groups = [_axes(a, len(shape), name) for a, name in ((in_axis, "in_axis"), (out_axis, "out_axis"),
                                                           (batch_axis, "batch_axis"))]  # fmt: skip
    used = [a for g in groups for a in g]
    if len(set(used)) != len(used):
        raise InitializerError(f"in_axis, out_axis and batch_axis must be different axes, got {used} of shape {shape}")
    if not groups[0] or not groups[1]:
        raise InitializerError("in_axis and out_axis must name at least one axis each")
    receptive = math.prod(d for i, d in enumerate(shape) if i not in used)
    fan_in = math.prod(shape[a] for a in groups[0]) * receptive
    fan_out = math.prod(shape[a] for a in groups[1]) * receptive
    return Fans(fan_in, fan_out, receptive)


def _axes(value: Axes, rank: int, name: str) -> tuple[int, ...]:
    axes = (value,) if isinstance(value, int) else tuple(value)
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, int) or not -rank <= a < rank:
            raise InitializerError(f"{name} {a!r} is out of range for a tensor of rank {rank}")
    return tuple(a % rank for a in axes)
