"""Declared distributions: what an initializer promises about its values.

The summary table, the statistical tests and ``netspec verify`` all read the
support, mean and variance from here, so there is one source of truth.
Only the standard library is used (``math.erf``); no SciPy at import time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from netspec.errors import InitializerError

SQRT2 = math.sqrt(2.0)

MIN_ACCEPTANCE = 0.01
"""Truncation intervals whose rejection sampler accepts less than this are refused."""


def std_normal_pdf(x: float) -> float:
    """phi(x) = exp(-x^2 / 2) / sqrt(2 pi)."""
    if math.isinf(x):
        return 0.0
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def std_normal_cdf(x: float) -> float:
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2, computed from the nearer tail."""
    if x < 0:
        return 0.5 * math.erfc(-x / SQRT2)
    return 1.0 - 0.5 * math.erfc(x / SQRT2)


def truncated_moments(a: float, b: float) -> tuple[float, float, float]:
    """Mass, mean and variance of N(0, 1) truncated to [a, b].

    Z = Phi(b) - Phi(a); mean = (phi(a) - phi(b)) / Z;
    var = 1 + (a phi(a) - b phi(b)) / Z - mean^2.
    """
    mass = _interval_mass(a, b)
    pa, pb = std_normal_pdf(a), std_normal_pdf(b)
    mean = (pa - pb) / mass
    apa = 0.0 if math.isinf(a) else a * pa
    bpb = 0.0 if math.isinf(b) else b * pb
    var = 1.0 + (apa - bpb) / mass - mean * mean
    return mass, mean, var


def _interval_mass(a: float, b: float) -> float:
    if a >= 0:  # both in the upper tail: subtract upper-tail masses
        return 0.5 * (math.erfc(a / SQRT2) - math.erfc(b / SQRT2))
    if b <= 0:
        return 0.5 * (math.erfc(-b / SQRT2) - math.erfc(-a / SQRT2))
    return std_normal_cdf(b) - std_normal_cdf(a)


@dataclass(frozen=True)
class Distribution:
    """Base of every declared distribution."""

    family = "distribution"

    @property
    def support(self) -> tuple[float, float]:
        return (-math.inf, math.inf)

    @property
    def mean(self) -> float:
        raise NotImplementedError

    @property
    def variance(self) -> float:
        raise NotImplementedError

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)

    @property
    def is_random(self) -> bool:
        return True

    def describe(self) -> str:
        raise NotImplementedError


def _g(x: float) -> str:
    return f"{x:.4g}"


@dataclass(frozen=True)
class Constant(Distribution):
    """Every value equals ``value``."""

    value: float
    family = "constant"

    @property
    def support(self) -> tuple[float, float]:
        return (self.value, self.value)

    @property
    def mean(self) -> float:
        return self.value

    @property
    def variance(self) -> float:
        return 0.0

    @property
    def is_random(self) -> bool:
        return False

    def describe(self) -> str:
        return f"const {_g(self.value)}"


@dataclass(frozen=True)
class Uniform(Distribution):
    """U(low, high): mean (low + high) / 2, variance (high - low)^2 / 12."""

    low: float
    high: float
    family = "uniform"

    @property
    def support(self) -> tuple[float, float]:
        return (self.low, self.high)

    @property
    def mean(self) -> float:
        return 0.5 * (self.low + self.high)

    @property
    def variance(self) -> float:
        return (self.high - self.low) ** 2 / 12.0

    def describe(self) -> str:
        if self.low == -self.high:
            return f"U(±{_g(self.high)})"
        return f"U({_g(self.low)}, {_g(self.high)})"


@dataclass(frozen=True)
class Normal(Distribution):
    """N(mean, std^2), untruncated."""

    loc: float
    scale: float
    family = "normal"

    @property
    def mean(self) -> float:
        return self.loc

    @property
    def variance(self) -> float:
        return self.scale**2

    def describe(self) -> str:
        return f"N({_g(self.loc)}, std {_g(self.scale)})"


@dataclass(frozen=True)
class TruncatedNormal(Distribution):
    """N(loc, scale^2) truncated to [loc + a*scale, loc + b*scale] (a, b in std units).

    ``scale`` is the parent's std; the variance after truncation is
    ``scale^2 * var_trunc(a, b)`` (see :func:`truncated_moments`).
    """

    loc: float
    scale: float
    a: float
    b: float
    family = "truncated_normal"

    @property
    def support(self) -> tuple[float, float]:
        return (self.loc + self.a * self.scale, self.loc + self.b * self.scale)

    @property
    def mean(self) -> float:
        return self.loc + self.scale * truncated_moments(self.a, self.b)[1]

    @property
    def variance(self) -> float:
        return self.scale**2 * truncated_moments(self.a, self.b)[2]

    def describe(self) -> str:
        low, high = self.support
        return f"TN(mean {_g(self.mean)}, std {_g(self.std)}, [{_g(low)}, {_g(high)}])"


@dataclass(frozen=True)
class Structured(Distribution):
    """A deterministic or matrix-valued construction (orthogonal, identity, dirac).

    ``kind`` names it; ``gain`` scales it. For orthogonal matrices the entries
    have mean 0 and variance ``gain^2 / max(rows, cols)``.
    """

    kind: str
    gain: float
    entry_variance: float = 0.0
    family = "structured"

    @property
    def mean(self) -> float:
        return 0.0

    @property
    def variance(self) -> float:
        return self.entry_variance

    @property
    def is_random(self) -> bool:
        return self.kind == "orthogonal"

    def describe(self) -> str:
        return f"{self.kind} gain {_g(self.gain)}"


def truncated_raw_moments(a: float, b: float, k_max: int) -> list[float]:
    """E[Z^k], k = 0..k_max, for Z ~ N(0, 1) truncated to [a, b].

    m_0 = 1, m_1 = (phi(a) - phi(b)) / mass,
    m_k = (k - 1) m_{k-2} + (a^{k-1} phi(a) - b^{k-1} phi(b)) / mass.
    """
    mass = _interval_mass(a, b)
    pa, pb = std_normal_pdf(a), std_normal_pdf(b)
    m = [1.0, (pa - pb) / mass]
    for k in range(2, k_max + 1):
        ta = 0.0 if math.isinf(a) else a ** (k - 1) * pa
        tb = 0.0 if math.isinf(b) else b ** (k - 1) * pb
        m.append((k - 1) * m[k - 2] + (ta - tb) / mass)
    return m[: k_max + 1]


def central_moment4(dist: Distribution) -> float:
    """E[(X - mean)^4]: sets the sampling variance of the sample variance.

    Uniform: (high - low)^4 / 80; normal: 3 std^4; truncated normal: from the
    raw moments of the standard truncated normal, times scale^4.
    """
    if isinstance(dist, Uniform):
        return (dist.high - dist.low) ** 4 / 80.0
    if isinstance(dist, Normal):
        return 3.0 * dist.scale**4
    if isinstance(dist, TruncatedNormal):
        m = truncated_raw_moments(dist.a, dist.b, 4)
        mu = m[1]
        central = m[4] - 4 * mu * m[3] + 6 * mu**2 * m[2] - 3 * mu**4
        return central * dist.scale**4
    return 0.0


def truncation_acceptance(a: float, b: float) -> tuple[str, float]:
    """The proposal used for [a, b] and its acceptance probability."""
    mass = truncated_moments(a, b)[0]
    if mass >= 0.25:
        return "normal", mass
    peak = std_normal_pdf(min(max(0.0, a), b))
    uniform_rate = mass / ((b - a) * peak) if math.isfinite(b - a) else 0.0
    if uniform_rate >= mass:
        return "uniform", uniform_rate
    return "normal", mass


def check_truncation(a: float, b: float) -> None:
    """Refuse intervals the samplers cannot serve in bounded time."""
    if not (a < b):
        raise InitializerError(f"truncation bounds need a < b, got a={a!r}, b={b!r}")
    _, rate = truncation_acceptance(a, b)
    if rate < MIN_ACCEPTANCE:
        raise InitializerError(
            f"truncation interval [{a:g}, {b:g}] (std units) holds too little probability "
            f"(acceptance {rate:.2g} < {MIN_ACCEPTANCE}); move it closer to the mean"
        )
