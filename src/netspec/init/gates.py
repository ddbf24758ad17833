"""Gate-structured tensors of recurrent layers: a kernel whose last axis holds ``count`` equal gate slices.

Frameworks disagree on how to initialize such a fused kernel (``(in, gates * units)``, or
``(units, gates * units)`` for the recurrent kernel):

* **fused** (Keras): one initializer call on the whole fused kernel. Its fans are the fused
  kernel's (fan_out = gates * units) and ``orthogonal`` draws one (units, gates * units) matrix
  whose *rows* are orthonormal.
* **per gate** (Flax, whose cells hold one Dense per gate): fans are one gate's (fan_out = units)
  and ``orthogonal`` (or ``identity``) builds one independent (units, units) matrix per gate.

For i.i.d. distributions (uniform, normal, ...) "per gate" only changes the fans, so the whole
tensor is drawn in one pass either way. ``fixed`` pins whole gate slices to a constant after the
draw (Keras' LSTM ``unit_forget_bias``: the forget-gate bias starts at 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from netspec.init.blocks import window_span
from netspec.init.distributions import Derived, Deterministic, Distribution, OrthogonalMatrix, Structured, check_dtype

if TYPE_CHECKING:
    import numpy as np

    from netspec.check.checks import CheckResult
    from netspec.init.fans import Fans
    from netspec.init.initializers import Initializer
    from netspec.init.streams import Stream


@dataclass(frozen=True)
class Gates:
    """How a tensor's last axis splits into ``count`` equal gate slices, and how they are initialized."""

    count: int
    per_gate: bool = False
    """Structured initializers (orthogonal, identity) build one matrix per gate (Flax) instead of one
    for the fused tensor (Keras)."""
    fixed: tuple[tuple[int, float], ...] = ()
    """(gate index, constant) pairs: those slices are set to the constant after the draw."""

    def declared(self, initializer: Initializer, shape: tuple[int, ...], fans: Fans) -> Distribution:
        """The declared distribution of a ``shape`` tensor initialized by ``initializer`` with ``fans``."""
        units = shape[-1] // self.count
        part_shape = (*shape[:-1], units) if self.per_gate else shape
        part = initializer.declared(part_shape, fans)
        if not self.fixed and not (self.per_gate and _structured(part)):
            return part
        return GateSlices(part, self.count, self.per_gate, self.fixed, tuple(shape))


def _structured(part: Distribution) -> bool:
    return isinstance(part, Structured)  # orthogonal, identity, dirac (and their half-type storage)


def _gate(values: np.ndarray, gate: int, count: int) -> np.ndarray:
    units = values.shape[-1] // count
    return values[..., gate * units : (gate + 1) * units]


@dataclass(frozen=True)
class GateSlices(Derived):
    """``part`` over the whole tensor, or per gate slice for structured parts; ``fixed`` slices constant."""

    count: int
    per_gate: bool
    fixed: tuple[tuple[int, float], ...]
    shape: tuple[int, ...]

    @property
    def support(self) -> tuple[float, float]:
        low, high = self.part.support
        values = [v for _, v in self.fixed]
        return min([low, *values]), max([high, *values])

    def describe(self) -> str:
        text = self.part.describe() + (f" per gate ({self.count} gates)" if self.per_gate else "")
        return text + "".join(f"; gate {g + 1} of {self.count} = {v:g}" for g, v in self.fixed)

    def sample(self, shape: tuple[int, ...], stream: Stream, dtype: Any) -> np.ndarray:
        """Per-gate orthogonal: one N(0, 1) draw of shape (gates, max, min), QR per gate; otherwise the
        part's own draw of the whole tensor. Then the fixed slices."""
        import numpy as np

        dt = check_dtype(dtype)
        part = self.part
        if self.per_gate and isinstance(part, OrthogonalMatrix):
            big, small = max(part.rows, part.cols), min(part.rows, part.cols)
            q, r = np.linalg.qr(stream.normal((self.count, big, small), 0.0, 1.0, dt))
            q *= np.where(np.diagonal(r, axis1=1, axis2=2) < 0, -1, 1).astype(dt)[:, None, :]
            if part.rows < part.cols:
                q = q.transpose(0, 2, 1)
            blocks = [(q[g] * dt.type(part.gain)).reshape(*shape[:-1], -1) for g in range(self.count)]
            out = np.concatenate(blocks, axis=-1).astype(dt, copy=False)
        elif self.per_gate and isinstance(part, Deterministic):
            out = np.concatenate([part.expected(dt)] * self.count, axis=-1)
        else:
            out = part.sample(shape, stream, dt)
        for gate, value in self.fixed:
            _gate(out, gate, self.count)[...] = dt.type(value)
        return np.ascontiguousarray(out)

    @property
    def blockwise(self) -> bool:  # type: ignore[override]
        return self.part.blockwise and not (self.per_gate and _structured(self.part))

    def window(self, shape: tuple[int, ...], stream: Stream, dtype: Any, blocks: tuple[int, int]) -> np.ndarray:
        """The part's window, with the fixed gates' positions (last-axis index // units) set; per-gate
        structured parts draw the whole tensor."""
        import numpy as np

        if not self.blockwise:
            return super().window(shape, stream, dtype, blocks)
        dt = check_dtype(dtype)
        out = self.part.window(shape, stream, dt, blocks)
        start, stop = window_span(math.prod(shape), blocks)
        gate = np.arange(start, stop, dtype=np.int64) % shape[-1] // (shape[-1] // self.count)
        for g, value in self.fixed:
            out[gate == g] = dt.type(value)
        return out

    def checks(self, values: np.ndarray, alpha: float, fit_alpha: float | None) -> list[CheckResult]:
        """The fixed slices exactly; structured parts gate by gate; i.i.d. parts over every free value."""
        import numpy as np

        from netspec.check.checks import check_expected

        out = []
        for gate, value in self.fixed:
            sliced = _gate(values, gate, self.count)
            out.append(check_expected(sliced, np.full_like(sliced, value), f"gate {gate + 1} = {value:g}", "gate"))
        free = [g for g in range(self.count) if g not in dict(self.fixed)]
        if self.per_gate and _structured(self.part):
            for g in free:
                for check in self.part.checks(_gate(values, g, self.count), alpha, fit_alpha):
                    out.append(replace(check, name=f"gate {g + 1}: {check.name}"))
            return out
        if free:
            rest = np.concatenate([_gate(values, g, self.count).ravel() for g in free])
            out += self.part.checks(rest, alpha, fit_alpha)
        return out
