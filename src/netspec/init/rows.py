"""Tensors with rows pinned to zero after the draw: an embedding's padding row.

PyTorch's ``nn.Embedding(num, dim, padding_idx=p)`` draws the whole table, then zeroes row ``p`` (its
``reset_parameters`` calls ``_fill_padding_idx_with_zero``; transformers' ``_init_weights`` does the same
after ``normal_``), and that row gets no gradient. netspec draws the table from its stream as without the
padding row, then sets the row to 0: every other value keeps its bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from netspec.init.distributions import Derived

if TYPE_CHECKING:
    import numpy as np

    from netspec.check.checks import CheckResult
    from netspec.init.streams import Stream


def zero_rows(values: np.ndarray, rows: tuple[int, ...]) -> np.ndarray:
    """``values`` with ``rows`` (first-axis indices) set to 0, in place."""
    if rows:
        values[list(rows)] = 0
    return values


@dataclass(frozen=True)
class ZeroRows(Derived):
    """``part`` for every value outside ``rows``; the rows (first-axis indices) exactly 0."""

    rows: tuple[int, ...]
    shape: tuple[int, ...]

    @property
    def support(self) -> tuple[float, float]:
        low, high = self.part.support
        return min(low, 0.0), max(high, 0.0)

    def describe(self) -> str:
        rows = ", ".join(map(str, self.rows))
        return f"{self.part.describe()}; row{'s' * (len(self.rows) > 1)} {rows} = 0"

    def sample(self, shape: tuple[int, ...], stream: Stream, dtype: Any) -> np.ndarray:
        return zero_rows(self.part.sample(shape, stream, dtype), self.rows)

    def window(self, shape: tuple[int, ...], stream: Stream, dtype: Any, blocks: tuple[int, int]) -> np.ndarray:
        """The part's window, with the elements of the zero rows inside it set to 0."""
        from netspec.init.blocks import window_span

        if not self.blockwise:
            return super().window(shape, stream, dtype, blocks)
        out = self.part.window(shape, stream, dtype, blocks)
        start, stop = window_span(math.prod(shape), blocks)
        row = math.prod(shape[1:])
        for r in self.rows:
            lo, hi = max(r * row, start), min((r + 1) * row, stop)
            if lo < hi:
                out[lo - start : hi - start] = 0
        return out

    def checks(self, values: np.ndarray, alpha: float, fit_alpha: float | None) -> list[CheckResult]:
        """The rows exactly; the part's checks over every other row."""
        import numpy as np

        from netspec.check.checks import check_expected

        rows = values[list(self.rows)]
        out = [check_expected(rows, np.zeros_like(rows), f"row{'s' * (len(self.rows) > 1)} "
                              f"{', '.join(map(str, self.rows))} = 0", "padding")]  # fmt: skip
        keep = np.ones(values.shape[0], bool)
        keep[list(self.rows)] = False
        return out + self.part.checks(values[keep], alpha, fit_alpha)
