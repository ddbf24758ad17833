"""The law of a tensor stored in a half type: its declared law pushed through rounding to nearest even.

A bfloat16 or float16 tensor is its float32 tensor rounded (:mod:`netspec.init.precision`), so its values
follow the *rounded* law: a discrete law on the type's representable values ``v_k``, atom ``v_k`` holding
the declared law's mass between the midpoints to its neighbours, ``p_k = F(m_k+) - F(m_k-)``. With 8 bits of
significand (bfloat16) a N(1, 0.01²) tensor takes a few dozen distinct values; the continuous law's tests
would fail a correct build. ``netspec verify`` therefore judges the rounded law (:func:`stored`):

* **bounds**: the support widened to the rounded float32 bounds ``[r(lo), r(hi)]`` (rounding is monotone,
  so every stored value lies there exactly);
* **fit**: the Kolmogorov-Smirnov distance to the rounded law's CDF, whose jumps the statistic takes into
  account (``F(x-)`` on the left of each atom); Massart's ``P(D > d) <= 2 exp(-2 n d²)`` holds for a
  discontinuous F too (D is then the continuous case's statistic over a subset of points), so the
  p-value stays valid at every n;
* **mean and variance**: Bernstein's inequality with the rounded law's exact mean, variance and fourth
  central moment (sums over its atoms). A rounded *normal* is unbounded: its test uses the atoms within
  ``mu ± T sigma``, ``T`` such that all n values fall there except with probability ``alpha / 2``
  (``2 Phi(-T) = alpha / (2 n)``), and Bernstein's bound for the law restricted there at ``alpha / 2``:
  together at most ``alpha``, at every n.

Constants, identity and Dirac tensors compare with the rounded values exactly; orthogonal ones with the
rounding-error bound of the half type's unit roundoff.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, ClassVar

from netspec.check.checks import CheckResult
from netspec.init.distributions import Constant, Continuous, Deterministic, Distribution, OrthogonalMatrix, Structured
from netspec.init.precision import HALF, UNIT_ROUNDOFF, round_scalar

if TYPE_CHECKING:
    import numpy as np

    from netspec.check.checks import Accumulator, MomentTests, Summary
    from netspec.init.streams import Stream


def stored(dist: Distribution, precision: str) -> Distribution:
    """The law of the values as stored in ``precision``: ``dist`` itself for float32 and float64; for the
    half types ``dist`` rounded to nearest even (see the module doc)."""
    return dist if precision not in HALF else rounded(dist, precision)


def rounded(dist: Distribution, precision: str) -> Distribution:
    """``dist`` as stored in the half type ``precision`` (see the module doc)."""
    from netspec.init.gates import GateSlices

    if isinstance(dist, Constant):
        return Constant(round_scalar(dist.value, precision))
    if isinstance(dist, Continuous):
        return Rounded(dist, precision)
    if isinstance(dist, (OrthogonalMatrix, Deterministic)):
        return StoredStructured(dist.gain, dist, precision)
    if isinstance(dist, GateSlices):
        fixed = tuple((gate, round_scalar(value, precision)) for gate, value in dist.fixed)
        return replace(dist, part=rounded(dist.part, precision), fixed=fixed)
    raise TypeError(f"{type(dist).__name__} declares no law for {precision} storage")


@dataclass(frozen=True)
class DiscreteLaw(Distribution):
    """A law on finitely many atoms in [low, high], given by its moments: what Bernstein's tests need."""

    low: float
    high: float
    mean_: float
    variance_: float
    mu4: float
    family = "discrete"

    @property
    def support(self) -> tuple[float, float]:
        return (self.low, self.high)

    @property
    def mean(self) -> float:
        return self.mean_

    @property
    def variance(self) -> float:
        return self.variance_

    def central_moment4(self) -> float:
        return self.mu4

    def moment_tests(self) -> MomentTests:
        """Bounded: Bernstein's inequality (valid at every n)."""
        from netspec.check.checks import BERNSTEIN

        return BERNSTEIN


@dataclass(frozen=True)
class Rounded(Continuous):
    """``base`` (a continuous law) drawn in float32 and rounded to nearest even in ``precision``."""

    base: Continuous
    precision: str

    @property
    def family(self) -> str:  # type: ignore[override]
        return self.base.family

    @property
    def support(self) -> tuple[float, float]:
        low, high = self.base.support
        return (_round_bound(low, self.precision, up=False), _round_bound(high, self.precision, up=True))

    @property
    def mean(self) -> float:
        return self.whole().mean

    @property
    def variance(self) -> float:
        return self.whole().variance

    def central_moment4(self) -> float:
        return self.whole().central_moment4()

    def describe(self) -> str:
        return f"{self.base.describe()} in {self.precision}"

    def sample(self, shape: tuple[int, ...], stream: Stream, dtype: Any) -> np.ndarray:
        from netspec.init.precision import to_storage

        return to_storage(self.base.sample(shape, stream, "float32"), self.precision)

    def whole(self) -> DiscreteLaw:
        """The rounded law's moments over all its atoms (a normal's beyond ±40 sigma hold nothing in float64)."""
        return _law(self.base, self.precision, 40.0)

    def tested(self, n: int, alpha: float) -> tuple[DiscreteLaw, float]:
        """The law the moment tests use for n values at false-alarm ``alpha``, and the alpha left for them:
        the whole law for a bounded base; for an unbounded one the atoms within ``mu ± T sigma``, where all
        n values fall except with probability alpha / 2 (the tests then run at alpha / 2)."""
        if all(math.isfinite(b) for b in self.base.support):
            return self.whole(), alpha
        t = -NormalDist().inv_cdf(alpha / (4 * n))
        return _law(self.base, self.precision, t), alpha / 2

    def moment_tests(self) -> MomentTests:
        return _WindowTests(self)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """P(X <= x) at atoms x: the base CDF at the midpoint above."""
        return self.base.cdf(_midpoints(x, self.precision)[1])

    def cdf_left(self, x: np.ndarray) -> np.ndarray:
        """P(X < x) at atoms x: the base CDF at the midpoint below."""
        return self.base.cdf(_midpoints(x, self.precision)[0])

    def scipy_distribution(self) -> Any:
        raise NotImplementedError("a rounded law has no SciPy distribution; use cdf and cdf_left")

    def checks(self, values: np.ndarray, alpha: float, fit_alpha: float | None) -> list[CheckResult]:
        """Bounds (exact), the mean and variance tests of :meth:`tested` at ``alpha``, the KS fit at ``fit_alpha``."""
        acc = self.accumulator(int(values.size), values.dtype)
        return self.summary_checks(acc.add(0, values).summary(), alpha, fit_alpha)

    def accumulator(self, n: int, dtype: Any) -> Accumulator:
        from netspec.check.checks import Accumulator

        return Accumulator(n, self.whole().mean)

    def summary_checks(self, summary: Summary, alpha: float, fit_alpha: float | None) -> list[CheckResult]:
        from netspec.check.checks import bounds_result, check_fit, moment_results

        law, a = self.tested(summary.n, alpha)
        results = [bounds_result(summary.low, summary.high, self)]
        if law.variance > 0:
            results += moment_results(*summary.central_sums(law.mean), law, a)
        else:  # all the mass on one value: the values must all be it
            one = summary.low == summary.high == law.mean
            results.append(CheckResult("values", one, None, f"values in [{summary.low:g}, {summary.high:g}]; the "
                                       f"rounded law holds only {law.mean:g}", method="exact"))  # fmt: skip
        if fit_alpha is not None:
            results.append(check_fit(summary.sample, self, fit_alpha, max(1, summary.sample.size)))
        return results


class _WindowTests:
    """The mean and variance tests of a rounded law for n values (``Rounded.tested``), as MomentTests."""

    name = "Bernstein"

    def __init__(self, dist: Rounded):
        self.dist = dist

    def mean_interval(self, dist: Distribution, n: int, alpha: float) -> tuple[float, float]:
        law, a = self.dist.tested(n, alpha)
        return law.moment_tests().mean_interval(law, n, a)

    def ratio_interval(self, dist: Distribution, n: int, alpha: float) -> tuple[float, float]:
        law, a = self.dist.tested(n, alpha)
        return law.moment_tests().ratio_interval(law, n, a)

    def ratio_quantile(self, dist: Distribution, n: int, p: float) -> float:
        law = self.dist.whole()
        return law.moment_tests().ratio_quantile(law, n, p)


@dataclass(frozen=True)
class StoredStructured(Structured):
    """An orthogonal, identity or Dirac tensor stored in a half type: ``base``'s float32 tensor, rounded."""

    base: Structured
    precision: str
    kind: ClassVar[str] = "structured"

    @property
    def variance(self) -> float:
        return self.base.variance

    @property
    def is_random(self) -> bool:
        return self.base.is_random

    def describe(self) -> str:
        return f"{self.base.describe()} in {self.precision}"

    def sample(self, shape: tuple[int, ...], stream: Stream, dtype: Any) -> np.ndarray:
        from netspec.init.precision import to_storage

        return to_storage(self.base.sample(shape, stream, "float32"), self.precision)

    def accumulator(self, n: int, dtype: Any) -> Accumulator | None:
        """Deterministic bases: compared chunk by chunk with the rounded float32 values (orthogonal: None)."""
        from netspec.check.checks import Accumulator
        from netspec.init.precision import to_storage, widen

        base = self.base
        if not isinstance(base, Deterministic):
            return None
        precision = self.precision
        return Accumulator(n, 0.0, lambda a, b: widen(to_storage(base.expected_at("float32", a, b), precision)))

    def summary_checks(self, summary: Summary, alpha: float, fit_alpha: float | None) -> list[CheckResult]:
        from netspec.check.checks import expected_result

        return [expected_result(summary.differ or 0, f"{self.base.describe()} in {self.precision}", self.base.kind)]

    def exact_check(self, values: np.ndarray) -> CheckResult:
        """Orthogonal: ``max |Q^T Q - g² I|`` within the bound for the half type's unit roundoff; the
        deterministic ones: equal to the rounded float32 tensor (``values`` widened to float32)."""
        from netspec.check.checks import check_expected, check_orthogonal
        from netspec.init.precision import to_storage, widen

        base = self.base
        if isinstance(base, OrthogonalMatrix):
            return check_orthogonal(values, base.gain, UNIT_ROUNDOFF[self.precision])
        assert isinstance(base, Deterministic)
        expected = widen(to_storage(base.expected("float32"), self.precision))
        return check_expected(values, expected, f"{base.kind} x {base.gain:g} in {self.precision}", base.kind)


# ---------------------------------------------------------------- atoms


@functools.lru_cache(maxsize=4)
def _table(precision: str) -> tuple[np.ndarray, np.ndarray]:
    """Every finite value of the type, ascending, and the midpoints between neighbours (±inf at the ends)."""
    import numpy as np

    from netspec.init.precision import representable

    atoms = representable(precision)
    mids = np.concatenate([[-np.inf], (atoms[:-1] + atoms[1:]) / 2, [np.inf]])
    return atoms, mids


def _midpoints(x: np.ndarray, precision: str) -> tuple[np.ndarray, np.ndarray]:
    """The midpoints below and above each atom ``x`` (a value of the type)."""
    import numpy as np

    atoms, mids = _table(precision)
    index = np.clip(np.searchsorted(atoms, np.asarray(x, np.float64)), 0, atoms.size - 1)
    return mids[index], mids[index + 1]


def _round_bound(bound: float, precision: str, up: bool) -> float:
    """A support bound as the stored values reach it: the streams' float32 clip bound inside it, rounded."""
    import numpy as np

    from netspec.init.streams import float_bounds

    if not math.isfinite(bound):
        return bound
    lo, hi = float_bounds(bound, bound, np.dtype(np.float32))
    return round_scalar(float(hi if up else lo), precision)


@functools.lru_cache(maxsize=256)
def _law(base: Continuous, precision: str, t: float) -> DiscreteLaw:
    """The rounded law of ``base`` restricted to its atoms within ``mean ± t std`` and the support."""
    import numpy as np

    atoms, mids = _table(precision)
    low, high = base.support
    mu, sigma = base.mean, base.std
    lo = max(_round_bound(low, precision, up=False), round_scalar(mu - t * sigma, precision))
    hi = min(_round_bound(high, precision, up=True), round_scalar(mu + t * sigma, precision))
    first, last = np.searchsorted(atoms, [lo, hi])
    v = atoms[first : last + 1]
    edges = mids[first : last + 2].copy()
    if lo == _round_bound(low, precision, up=False):  # the support's end: values below it are clipped onto it
        edges[0] = -np.inf
    if hi == _round_bound(high, precision, up=True):
        edges[-1] = np.inf
    p = np.clip(np.diff(base.cdf(edges)), 0.0, None)
    p /= p.sum()  # restricted to the window (a normal's tails beyond mu ± t sigma)
    mean = float(np.dot(p, v))
    d = v - mean
    var = float(np.dot(p, d * d))
    mu4 = float(np.dot(p, (d * d) ** 2))
    return DiscreteLaw(float(v[0]), float(v[-1]), mean, var, mu4)
