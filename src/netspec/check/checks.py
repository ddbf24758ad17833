"""Statistical and exact checks of values against a declared distribution.

One pipeline, used by the test-suite, by :mod:`netspec.testing` and by
``netspec verify``: :func:`check_values` asks the distribution which checks
apply (:meth:`~netspec.init.distributions.Distribution.checks`). Every
statistical check is a test whose false-alarm probability is at most its
``alpha`` at every sample size n (not only asymptotically):

* bounds: exact — every value lies in the declared support;
* mean and variance about the declared mean, ``xbar`` and
  ``v = mean((x - mu)^2)`` (expectation sigma^2, variance (mu4 - sigma^4) / n):

  - N(mu, sigma^2) (:data:`NORMAL_THEORY`, exact): ``z = (xbar - mu) / (sigma / sqrt n)``
    ~ N(0, 1) and ``n v / sigma^2`` ~ chi^2_n, two-sided at ``alpha`` each;
  - bounded distributions (uniform, truncated normal; :data:`BERNSTEIN`):
    Bernstein's inequality, which needs only the variance and a bound of the
    terms, ``P(mean(Y) - E Y >= t) <= exp(-n t^2 / (2 Var Y + 2 b t / 3))``
    for i.i.d. ``Y <= E Y + b``; applied to ``Y = x`` and to
    ``Y = (x - mu)^2`` (``Var Y = mu4 - sigma^4``), each side at ``alpha / 2``.
    Conservative (slightly less power than a z-test at large n), valid at every n;

* fit: the one-sample Kolmogorov-Smirnov distance D to the declared CDF, with
  the p-value bound ``2 exp(-2 n D^2)`` (Massart's DKW inequality, valid at
  every n). The CDFs use ``scipy.special``, imported by this test only;
  without SciPy the result is *skipped*, never passed.

The kit's ``z_crit`` (default 5.0) is turned into the per-test false-alarm
probability ``2 (1 - Phi(z_crit))`` (5.7e-7 at 5.0).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from netspec.init.distributions import Constant, Continuous, Distribution

Z_CRIT = 5.0
CHUNK = 1 << 20
KS_MAX = 1 << 20
"""The KS fit test reads at most this many values (a systematic subsample of larger tensors)."""
POWER = 0.8
SQRT2 = math.sqrt(2.0)
SKIPPED_FIT = "skipped: SciPy is not installed (install scipy to enable it)"


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: ``ok`` is None when it could not run (skipped).

    ``accept`` is the interval the statistic had to fall in; ``method`` names
    the test (e.g. ``exact``, ``Bernstein``, ``KS``).
    """

    name: str
    ok: bool | None
    statistic: float | None = None
    detail: str = ""
    accept: tuple[float, float] | None = None
    method: str = ""

    @property
    def status(self) -> str:
        """``pass``, ``FAIL`` or ``skipped``."""
        return "skipped" if self.ok is None else ("pass" if self.ok else "FAIL")


def two_sided_alpha(z_crit: float) -> float:
    """2 (1 - Phi(z_crit)): the two-sided false-alarm probability of |z| <= z_crit."""
    return math.erfc(z_crit / SQRT2)


def check_values(
    values: np.ndarray,
    dist: Distribution,
    z_crit: float = Z_CRIT,
    fit_alpha: float | None = None,
    *,
    alpha: float | None = None,
) -> list[CheckResult]:
    """Every check of ``values`` that ``dist`` declares.

    Each statistical check has false-alarm probability ``alpha`` (default
    :func:`two_sided_alpha` of ``z_crit``); the KS fit runs at ``fit_alpha``
    (not at all if None).
    """
    return dist.checks(values, two_sided_alpha(z_crit) if alpha is None else alpha, fit_alpha)


def continuous_checks(
    values: np.ndarray, dist: Continuous, alpha: float, fit_alpha: float | None
) -> list[CheckResult]:
    """Bounds, mean, variance (each at ``alpha``) and, if ``fit_alpha`` is given, the KS fit."""
    results = [check_bounds(values, dist), *moment_checks(values, dist, alpha)]
    if fit_alpha is not None:
        results.append(check_fit(values, dist, fit_alpha))
    return results


# ---------------------------------------------------------------- exact checks


def check_bounds(values: np.ndarray, dist: Distribution) -> CheckResult:
    """Exact: low <= min(x) and max(x) <= high."""
    return bounds_result(float(values.min()), float(values.max()), dist)


def bounds_result(vmin: float, vmax: float, dist: Distribution) -> CheckResult:
    """:func:`check_bounds` from the values' extremes."""
    low, high = dist.support
    ok = low <= vmin and vmax <= high
    return CheckResult("bounds", ok, None, f"[{vmin:.6g}, {vmax:.6g}] within [{low:.6g}, {high:.6g}]",
                       (low, high), "exact")  # fmt: skip


def check_constant(values: np.ndarray, dist: Constant) -> CheckResult:
    """Exact: every value equals ``dist.value`` in the values' dtype."""
    target = values.dtype.type(dist.value)
    return constant_result(int(np.count_nonzero(values != target)), dist.value)


def constant_result(bad: int, value: float) -> CheckResult:
    """:func:`check_constant` from the number of values that differ."""
    return CheckResult("values", bad == 0, float(bad), f"{bad} values differ from {value:g}", method="exact")


def check_expected(values: np.ndarray, expected: np.ndarray, what: str, name: str) -> CheckResult:
    """Exact: ``values`` equal ``expected`` element by element."""
    if values.shape != expected.shape:
        return CheckResult(name, False, None, f"shape {values.shape} is not {what}'s {expected.shape}", method="exact")
    return expected_result(int(np.count_nonzero(values != expected)), what, name)


def expected_result(bad: int, what: str, name: str) -> CheckResult:
    """:func:`check_expected` from the number of values that differ."""
    return CheckResult(name, bad == 0, float(bad), f"{bad} values differ from {what}", method="exact")


def orthogonality_error(values: np.ndarray, gain: float) -> float:
    """max |Q^T Q - gain^2 I| (or Q Q^T for wide matrices), Q the (rows, cols) view, in float64."""
    q = values.reshape(-1, values.shape[-1]).astype(np.float64)
    gram = q.T @ q if q.shape[0] >= q.shape[1] else q @ q.T
    return float(np.abs(gram - gain**2 * np.eye(gram.shape[0])).max())


def orthogonality_tolerance(shape: tuple[int, ...], dtype: Any, gain: float, roundoff: float | None = None) -> float:
    """Bound on max |Q^T Q - gain^2 I| from rounding alone: ``gain^2 (4 u + (8 sqrt(m k) + m) u64)``.

    m = max(rows, cols), k = min(rows, cols), u the unit roundoff of ``dtype``
    (2^-24 float32, 2^-53 float64; ``roundoff`` if given: a half type's, whose values are the float32
    ones rounded, so their entries carry ``|d_ij| <= 2 u`` with u the half type's), u64 = 2^-53. NumPy
    computes the QR in float64 for both dtypes (LAPACK dgeqrf/dorgqr), then the result is
    rounded to ``dtype`` and multiplied by gain in ``dtype``: each stored
    entry is ``gain q_ij (1 + d_ij)``, |d_ij| <= 2u + u^2, so each Gram entry
    moves by at most ``(2|d| + d^2) gain^2 |q_i| |q_j| <= (4u + O(u^2)) gain^2``
    (Cauchy-Schwarz, unit columns). Householder QR's own loss of orthogonality
    in float64 is ``<= 8 sqrt(m k) u64`` (the probabilistic rounding-error
    bound, sqrt(m k) for m k rounded operations, Higham & Mary 2019; measured
    <= 0.5 sqrt(m k) u64 for shapes up to 4608 x 128), and the float64 Gram
    sums of m terms add ``<= m u64``. For a float32 64 x 64 matrix that is
    2.4e-7: a 1e-4 change of one entry moves the Gram by ~2e-5 and fails.
    """
    rows = math.prod(shape[:-1])
    cols = shape[-1]
    m, k = max(rows, cols), min(rows, cols)
    u = float(np.finfo(np.dtype(dtype)).eps) / 2 if roundoff is None else roundoff
    u64 = 2.0**-53
    return gain**2 * (4 * u + (8 * math.sqrt(m * k) + m) * u64)


def check_orthogonal(values: np.ndarray, gain: float, roundoff: float | None = None) -> CheckResult:
    """Exact up to rounding: max |Q^T Q - gain^2 I| <= :func:`orthogonality_tolerance` (the values' dtype's
    unit roundoff, or ``roundoff``: a half type's, for values widened from it)."""
    err = orthogonality_error(values, gain)
    tol = orthogonality_tolerance(values.shape, values.dtype, gain, roundoff)
    return CheckResult("orthogonal", err <= tol, err, f"max|Q^T Q - g^2 I| = {err:.3g} (<= {tol:.3g})",
                       (0.0, tol), "exact")  # fmt: skip


def check_structured(values: np.ndarray, dist: Any) -> CheckResult:
    """The exact check of a structured distribution (orthogonal, identity, dirac)."""
    return dist.exact_check(values)


# ---------------------------------------------------------------- moments


def central_sums(values: np.ndarray, mu: float) -> tuple[int, float, float]:
    """n, sum(x - mu), sum((x - mu)^2) in float64, in chunks (no full-size copy)."""
    flat = values.reshape(-1)
    s1 = s2 = 0.0
    for start in range(0, flat.size, CHUNK):
        d = flat[start : start + CHUNK].astype(np.float64) - mu
        s1 += float(d.sum())
        s2 += float(np.dot(d, d))
    return flat.size, s1, s2


@dataclass(frozen=True)
class Moments:
    """Standardized moment statistics from one pass over the values.

    ``mean_z = (xbar - mu) / (sigma / sqrt n)``; ``variance_ratio = v / sigma^2``;
    ``ratio_se = sqrt((mu4 / sigma^4 - 1) / n)`` is its standard deviation under
    the null, ``variance_z = (ratio - 1) / ratio_se`` (descriptive: the tests
    use :class:`MomentTests`, valid at every n).
    """

    n: int
    mean_z: float
    variance_z: float
    variance_ratio: float
    ratio_se: float


def moments(values: np.ndarray, dist: Distribution) -> Moments:
    n, s1, s2 = central_sums(values, dist.mean)
    var = dist.variance
    ratio_se = ratio_standard_error(dist, n)
    ratio = s2 / n / var
    return Moments(n, (s1 / n) / math.sqrt(var / n), (ratio - 1.0) / ratio_se, ratio, ratio_se)


def ratio_standard_error(dist: Distribution, n: int) -> float:
    """sqrt((mu4 / sigma^4 - 1) / n): the null standard deviation of mean((x - mu)^2) / sigma^2."""
    return math.sqrt((dist.central_moment4() / dist.variance**2 - 1.0) / n)


class MomentTests(Protocol):
    """Acceptance regions of the mean and variance tests for one kind of distribution."""

    name: str

    def mean_interval(self, dist: Distribution, n: int, alpha: float) -> tuple[float, float]:
        """Interval of ``xbar - mu`` that holds with probability >= 1 - alpha under the null."""
        ...

    def ratio_interval(self, dist: Distribution, n: int, alpha: float) -> tuple[float, float]:
        """Interval of ``v / sigma^2`` that holds with probability >= 1 - alpha under the null."""
        ...

    def ratio_quantile(self, dist: Distribution, n: int, p: float) -> float:
        """The null ``p``-quantile of ``v / sigma^2`` (for the power figure only)."""
        ...


class NormalTheory:
    """Exact tests for X ~ N(mu, sigma^2): xbar - mu ~ N(0, sigma^2 / n), n v / sigma^2 ~ chi^2_n."""

    name = "exact"

    def mean_interval(self, dist: Distribution, n: int, alpha: float) -> tuple[float, float]:
        """±z sigma / sqrt(n), z = Phi^-1(1 - alpha / 2)."""
        half = -NormalDist().inv_cdf(alpha / 2) * dist.std / math.sqrt(n)
        return -half, half

    def ratio_interval(self, dist: Distribution, n: int, alpha: float) -> tuple[float, float]:
        """[chi^2_n quantile(alpha / 2), chi^2_n quantile(1 - alpha / 2)] / n."""
        return chi2_quantile(n, alpha / 2) / n, chi2_upper_quantile(n, alpha / 2) / n

    def ratio_quantile(self, dist: Distribution, n: int, p: float) -> float:
        return chi2_quantile(n, p) / n


class BernsteinBound:
    """Tests for a bounded X, valid at every n (see :func:`bernstein_deviation`).

    Mean: Y = x, Var Y = sigma^2, Y - mu <= high - mu (and mu - Y <= mu - low).
    Variance: Y = (x - mu)^2, Var Y = mu4 - sigma^4, Y - sigma^2 <= max(high - mu,
    mu - low)^2 - sigma^2, sigma^2 - Y <= sigma^2. Each side at alpha / 2.
    """

    name = "Bernstein"

    def mean_interval(self, dist: Distribution, n: int, alpha: float) -> tuple[float, float]:
        low, high = dist.support
        mu, var = dist.mean, dist.variance
        return (-bernstein_deviation(n, var, mu - low, alpha / 2), bernstein_deviation(n, var, high - mu, alpha / 2))

    def ratio_interval(self, dist: Distribution, n: int, alpha: float) -> tuple[float, float]:
        low, high = dist.support
        mu, var = dist.mean, dist.variance
        var_y = dist.central_moment4() - var**2
        top = max(high - mu, mu - low) ** 2 - var
        return (1 - bernstein_deviation(n, var_y, var, alpha / 2) / var,
                1 + bernstein_deviation(n, var_y, top, alpha / 2) / var)  # fmt: skip

    def ratio_quantile(self, dist: Distribution, n: int, p: float) -> float:
        """1 + Phi^-1(p) sqrt((mu4 / sigma^4 - 1) / n): normal approximation (power figure only)."""
        return 1 + NormalDist().inv_cdf(p) * ratio_standard_error(dist, n)


NORMAL_THEORY = NormalTheory()
BERNSTEIN = BernsteinBound()


def bernstein_deviation(n: int, variance: float, bound: float, p: float) -> float:
    """t with exp(-n t^2 / (2 V + 2 b t / 3)) = p, so P(mean(Y) - E Y >= t) <= p.

    Bernstein's inequality for n i.i.d. Y with Var Y = V and Y - E Y <= b:
    ``t = (b L / 3 + sqrt((b L / 3)^2 + 2 n V L)) / n``, L = ln(1 / p).
    """
    log_p = math.log(1 / p)
    c = max(bound, 0.0) * log_p / 3
    return (c + math.sqrt(c * c + 2 * n * variance * log_p)) / n


def moment_checks(values: np.ndarray, dist: Distribution, alpha: float) -> list[CheckResult]:
    """The mean and variance tests of ``dist.moment_tests()``, each with false-alarm probability <= alpha."""
    return moment_results(*central_sums(values, dist.mean), dist, alpha)


def moment_results(n: int, s1: float, s2: float, dist: Distribution, alpha: float) -> list[CheckResult]:
    """:func:`moment_checks` from n, sum(x - mean) and sum((x - mean)^2) about ``dist.mean``."""
    tests = dist.moment_tests()
    if tests is None:
        raise TypeError(f"{dist.describe()} declares no moment tests")
    se = dist.std / math.sqrt(n)
    lo, hi = tests.mean_interval(dist, n, alpha)
    z, z_accept = s1 / n / se, (lo / se, hi / se)
    ratio = s2 / n / dist.variance
    r_lo, r_hi = tests.ratio_interval(dist, n, alpha)
    return [
        CheckResult("mean", lo <= s1 / n <= hi, z, f"z = {z:+.2f}, accepted [{z_accept[0]:.2f}, {z_accept[1]:.2f}] "
                    f"({tests.name})", z_accept, tests.name),
        CheckResult("variance", r_lo <= ratio <= r_hi, ratio, f"ratio {ratio:.4f}, accepted [{r_lo:.4f}, "
                    f"{r_hi:.4f}] ({tests.name})", (r_lo, r_hi), tests.name),
    ]  # fmt: skip


def check_moments(
    values: np.ndarray, dist: Distribution, z_crit: float = Z_CRIT, *, alpha: float | None = None
) -> list[CheckResult]:
    """:func:`moment_checks` at ``alpha`` (default: the two-sided tail of ``z_crit``)."""
    return moment_checks(values, dist, two_sided_alpha(z_crit) if alpha is None else alpha)


def detectable_ratio(dist: Distribution, n: int, alpha: float) -> float | None:
    """Smallest variance ratio r > 1 the variance test finds with probability :data:`POWER` at n values.

    Scaling the values by sqrt(r) scales v / sigma^2 by r, so
    ``r = upper acceptance limit / null (1 - POWER)-quantile of v / sigma^2``
    (inf if that quantile is <= 0; None if ``dist`` has no moment tests).
    """
    tests = dist.moment_tests()
    if tests is None:
        return None
    low_quantile = tests.ratio_quantile(dist, n, 1 - POWER)
    return math.inf if low_quantile <= 0 else tests.ratio_interval(dist, n, alpha)[1] / low_quantile


# ---------------------------------------------------------------- chi-square, exact (standard library only)


def gamma_tails(s: float, x: float) -> tuple[float, float]:
    """The regularized incomplete gamma functions (P(s, x), Q(s, x)), P + Q = 1 (see :func:`log_gamma_tail`)."""
    if x <= 0:
        return 0.0, 1.0
    return math.exp(log_gamma_tail(s, x, upper=False)), math.exp(log_gamma_tail(s, x, upper=True))


def log_gamma_tail(s: float, x: float, upper: bool) -> float:
    """log Q(s, x) if ``upper`` else log P(s, x), P(s, x) = gamma(s, x) / Gamma(s), x > 0.

    For x < s + 1 the series ``P = x^s e^-x / Gamma(s) * sum_k x^k / (s (s+1) ... (s+k))``,
    otherwise Legendre's continued fraction for Q (modified Lentz); the tail
    computed directly is the smaller one, accurate to a few ulps relative;
    the other is ``log1p(-that)``.
    """
    log_front = s * math.log(x) - x - math.lgamma(s)
    if x < s + 1:
        log_p = log_front + math.log(_gamma_series(s, x))
        return math.log1p(-math.exp(log_p)) if upper else log_p
    log_q = log_front + math.log(_gamma_fraction(s, x))
    return log_q if upper else math.log1p(-math.exp(log_q))


def _gamma_series(s: float, x: float) -> float:
    """sum_k x^k / (s (s+1) ... (s+k)), k = 0, 1, ... (x < s + 1: terms decrease)."""
    term = total = 1.0 / s
    k = s
    while term > total * 1e-17:
        k += 1
        term *= x / k
        total += term
    return total


def _gamma_fraction(s: float, x: float) -> float:
    """1 / (x + 1 - s - 1 (1 - s) / (x + 3 - s - 2 (2 - s) / (x + 5 - s - ...))) by modified Lentz."""
    tiny = 1e-300
    b = x + 1.0 - s
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    i = 0
    while True:
        i += 1
        an = -i * (i - s)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            return h


def chi2_tails(x: float, n: int) -> tuple[float, float]:
    """(P(chi^2_n <= x), P(chi^2_n > x)) = (P(n/2, x/2), Q(n/2, x/2))."""
    return gamma_tails(n / 2, x / 2)


def chi2_quantile(n: int, p: float) -> float:
    """x with P(chi^2_n <= x) = p."""
    return _chi2_solve(n, p, False)


def chi2_upper_quantile(n: int, p: float) -> float:
    """x with P(chi^2_n > x) = p."""
    return _chi2_solve(n, p, True)


@functools.lru_cache(maxsize=1024)
def _chi2_solve(n: int, p: float, upper: bool) -> float:
    """Newton's method in log x on log(tail) - log(p), safeguarded by bisection.

    Starts from Wilson-Hilferty's estimate, or for a lower tail it cannot
    reach from P(chi^2_n <= x) ~ (x/2)^(n/2) / Gamma(n/2 + 1) (x -> 0).
    """
    s = n / 2
    z = NormalDist().inv_cdf(p) * (-1 if upper else 1)
    c = 2.0 / (9.0 * n)
    cube = 1 - c + z * math.sqrt(c)
    u = math.log(n * cube**3) if cube > 0 else math.log(2.0) + (math.log(p) + math.lgamma(s + 1)) / s
    lo, hi = -math.inf, math.inf
    for _ in range(300):
        g, slope = _chi2_log_tail_gap(u, n, p, upper)
        if g == 0:
            break
        lo, hi = (lo, u) if g > 0 else (u, hi)
        step = u - g / slope if slope > 0 else math.nan
        new = step if lo < step < hi else (0.5 * (lo + hi) if math.isfinite(lo + hi) else u + (-1 if g > 0 else 1))
        if abs(new - u) <= 1e-15:
            return math.exp(new)
        u = new
    return math.exp(u)


def _chi2_log_tail_gap(u: float, n: int, p: float, upper: bool) -> tuple[float, float]:
    """g(u) = ±(log tail(e^u) - log p), increasing in u, and dg/du = x pdf(x) / tail(x), x = e^u."""
    x, s = math.exp(u), n / 2
    log_tail = log_gamma_tail(s, x / 2, upper)
    log_x_pdf = s * math.log(x / 2) - x / 2 - math.lgamma(s)
    slope = math.exp(log_x_pdf - log_tail)
    gap = log_tail - math.log(p)
    return (-gap, slope) if upper else (gap, slope)


# ---------------------------------------------------------------- fit (SciPy)


def scipy_distribution(dist: Continuous) -> Any:
    """The frozen ``scipy.stats`` distribution of a declared one (imports SciPy)."""
    return dist.scipy_distribution()


def ks_statistic(values: np.ndarray, dist: Continuous, max_values: int = KS_MAX) -> tuple[int, float]:
    """n and D = sup |F_n - F| = max_i max(i/n - F(x_(i)), F(x_(i)-) - (i-1)/n), F = ``dist.cdf`` and its left
    limit ``dist.cdf_left`` (the same for a continuous law; at an atom of a discrete one the jump counts).

    Tensors of more than ``max_values`` values are read through a systematic subsample.
    """
    flat = values.reshape(-1)
    if flat.size > max_values:
        flat = flat[:: math.ceil(flat.size / max_values)]
    x = np.sort(flat.astype(np.float64))
    n, d = x.size, 0.0
    for start in range(0, n, 1 << 16):  # in slices: the CDFs' temporaries stay small
        part = x[start : start + (1 << 16)]
        i = np.arange(start + 1, start + 1 + part.size, dtype=np.float64)
        d = max(d, float((i / n - dist.cdf(part)).max()), float((dist.cdf_left(part) - (i - 1) / n).max()))
    return n, d


def ks_pvalue(values: np.ndarray, dist: Continuous, max_values: int = KS_MAX) -> float:
    """min(1, 2 exp(-2 n D^2)): a Kolmogorov-Smirnov p-value valid at every n.

    Massart's (1990) Dvoretzky-Kiefer-Wolfowitz inequality P(D_n > d) <= 2 exp(-2 n d^2)
    holds for every n and d when F is continuous, so P(p <= alpha) <= alpha.
    It is the leading term of Kolmogorov's limit law: at large n it equals
    the asymptotic KS p-value; at n = 20 it is about twice the exact one.
    """
    n, d = ks_statistic(values, dist, max_values)
    return min(1.0, 2.0 * math.exp(-2.0 * n * d * d))


def check_fit(values: np.ndarray, dist: Continuous, alpha: float, max_values: int = KS_MAX) -> CheckResult:
    """KS p >= alpha (:func:`ks_pvalue`); *skipped* (ok None) when SciPy, which the CDF needs, is missing."""
    try:
        p = ks_pvalue(values, dist, max_values)
    except ImportError:
        return CheckResult("fit", None, None, SKIPPED_FIT, method="KS")
    return CheckResult("fit", p >= alpha, p, f"KS p = {p:.3g} (>= {alpha:.3g})", (alpha, 1.0), "KS")


# ---------------------------------------------------------------- one pass over a tensor's chunks


@dataclass(frozen=True)
class Summary:
    """What the checks need from a tensor, gathered in one pass over its chunks (:class:`Accumulator`): the
    extremes, sums about ``center``, the KS fit's systematic subsample and how many values differ from the
    expected ones (None: nothing expected)."""

    n: int
    low: float
    high: float
    center: float
    s1: float
    s2: float
    sample: np.ndarray
    differ: int | None = None

    def central_sums(self, mu: float) -> tuple[int, float, float]:
        """n, sum(x - mu), sum((x - mu)^2), from the sums about the center (x - mu = (x - c) + (c - mu))."""
        d = self.center - mu
        return self.n, self.s1 + self.n * d, self.s2 + 2 * d * self.s1 + self.n * d * d


class Accumulator:
    """Gathers a :class:`Summary` of an n-value tensor from its chunks, in order, holding none of them: sums
    in float64 about ``center`` in pieces of :data:`CHUNK` (as :func:`central_sums`), the elements
    ``0, s, 2s, ...`` with ``s = ceil(n / KS_MAX)`` (:func:`ks_statistic`'s subsample), and the count of
    values unequal to ``expected`` (a number, or a function of the chunk's element range)."""

    def __init__(
        self,
        n: int,
        center: float = 0.0,
        expected: float | Callable[[int, int], np.ndarray] | None = None,
        ks_max: int = KS_MAX,
    ):
        self.n, self.center, self.expected = n, center, expected
        self.step = math.ceil(n / ks_max) if n > ks_max else 1
        self.low, self.high, self.s1, self.s2, self.differ = math.inf, -math.inf, 0.0, 0.0, 0
        self.parts: list[np.ndarray] = []

    def add(self, start: int, values: np.ndarray) -> Accumulator:
        """The tensor's elements ``[start, start + values.size)``."""
        flat = values.reshape(-1)
        if not flat.size:
            return self
        self.low, self.high = min(self.low, float(flat.min())), max(self.high, float(flat.max()))
        for first in range(0, flat.size, CHUNK):
            d = flat[first : first + CHUNK].astype(np.float64) - self.center
            self.s1 += float(d.sum())
            self.s2 += float(np.dot(d, d))
        self.parts.append(flat[(-start) % self.step :: self.step].copy())
        if self.expected is not None:
            target = self.expected(start, start + flat.size) if callable(self.expected) else (
                flat.dtype.type(self.expected))  # fmt: skip
            self.differ += int(np.count_nonzero(flat != target))
        return self

    def summary(self) -> Summary:
        sample = np.concatenate(self.parts) if self.parts else np.empty(0)
        differ = None if self.expected is None else self.differ
        return Summary(self.n, self.low, self.high, self.center, self.s1, self.s2, sample, differ)


def summary_checks(summary: Summary, dist: Continuous, alpha: float, fit_alpha: float | None) -> list[CheckResult]:
    """:func:`continuous_checks` from a :class:`Summary`."""
    results = [bounds_result(summary.low, summary.high, dist)]
    results += moment_results(*summary.central_sums(dist.mean), dist, alpha)
    if fit_alpha is not None:
        results.append(check_fit(summary.sample, dist, fit_alpha, max(1, summary.sample.size)))
    return results
