"""Mean-field prediction of a dense stack's activation statistics (Poole et al. 2016; Schoenholz et al.
2017): what ``netspec diagnose`` measures should match it for wide layers.

For a dense layer with i.i.d. zero-mean weights, zero biases and Gaussian pre-activations (the central
limit over fan_in inputs), the pre-activation variance is

    v_l = fan_in * Var(W_l) * E[y_{l-1}^2]

(the second moment, not the variance, of the previous outputs: their mean passes through zero-mean
weights as variance), and the outputs ``y_l = f(sqrt(v_l) z)``, z ~ N(0, 1), have mean ``E f`` and
second moment ``E f^2``, evaluated by Gauss-Hermite quadrature. ``fan_in * Var(W)`` is 1 for
lecun and glorot with equal fans, 2 for he, 1/3 for ``xavier_simple`` U(±1/sqrt(n)).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

QUADRATURE_POINTS = 200


@dataclass(frozen=True)
class Prediction:
    """One layer's predicted output moments: E y, E y^2, E y^4 (over units and samples)."""

    mean: float
    second: float
    fourth: float

    @property
    def std(self) -> float:
        return math.sqrt(max(self.second - self.mean**2, 0.0))

    def log_second_variance(self, width: int) -> float:
        """Var(log of the layer's empirical second moment) from averaging ``width`` i.i.d. units:
        (E y^4 / (E y^2)^2 - 1) / width (5 / width for ReLU: Hanin and Rolnick 2018)."""
        return (self.fourth / self.second**2 - 1.0) / width if self.second > 0 else 0.0


def mean_field(
    activation: Callable[[np.ndarray], np.ndarray], gains: Sequence[float], input_second_moment: float = 1.0
) -> list[Prediction]:
    """Each layer's predicted output moments; ``gains[l]`` is layer l's ``fan_in * Var(W)``."""
    import numpy as np

    z, w = np.polynomial.hermite_e.hermegauss(QUADRATURE_POINTS)
    w = w / w.sum()  # probabilists' Hermite weights integrate against the N(0, 1) density
    second = input_second_moment
    out = []
    for gain in gains:
        y = activation(math.sqrt(gain * second) * z)
        y2 = y * y
        mean, second = float(w @ y), float(w @ y2)
        out.append(Prediction(mean, second, float(w @ (y2 * y2))))
    return out
