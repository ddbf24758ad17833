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
