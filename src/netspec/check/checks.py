"""Statistical and exact checks of values against a declared distribution.

Used by the test-suite, by :mod:`netspec.testing` and by ``netspec verify``.
Every random check is a test statistic whose null distribution is stated:

* bounds: exact — every value lies in the declared support;
* mean: ``z = (xbar - mu) / sqrt(sigma^2 / n)``, ~ N(0, 1) for large n (CLT);
* variance about the declared mean: ``v = mean((x - mu)^2)`` has expectation
  ``sigma^2`` and variance ``(mu4 - sigma^4) / n`` exactly (mu4 the declared
  fourth central moment), so ``z = (v - sigma^2) / sqrt((mu4 - sigma^4) / n)``
  ~ N(0, 1) for large n;
* fit: the one-sample Kolmogorov-Smirnov test against the declared CDF
  (SciPy, optional).

A z-check fails when ``|z| > z_crit``; the default 5.0 is a two-sided false
alarm probability of 5.7e-7 per check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from netspec.init.distributions import (
    Constant,
    Distribution,
    Normal,
    Structured,
    TruncatedNormal,
    Uniform,
    central_moment4,
)

Z_CRIT = 5.0
CHUNK = 1 << 20


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: ``ok`` is None when it was not run or is inconclusive."""

    name: str
    ok: bool | None
    statistic: float | None = None
    detail: str = ""


def central_sums(values: np.ndarray, mu: float) -> tuple[int, float, float]:
    """n, sum(x - mu), sum((x - mu)^2) in float64, in chunks (no full-size copy)."""
    flat = values.reshape(-1)
    s1 = s2 = 0.0
    for start in range(0, flat.size, CHUNK):
        d = flat[start : start + CHUNK].astype(np.float64) - mu
        s1 += float(d.sum())
        s2 += float(np.dot(d, d))
    return flat.size, s1, s2


def check_bounds(values: np.ndarray, dist: Distribution) -> CheckResult:
    low, high = dist.support
    vmin, vmax = float(values.min()), float(values.max())
    ok = low <= vmin and vmax <= high
    return CheckResult("bounds", ok, None, f"[{vmin:.6g}, {vmax:.6g}] within [{low:.6g}, {high:.6g}]")


@dataclass(frozen=True)
class Moments:
    """Both moment tests from one pass over the values (see the module doc).

    ``ratio_se`` is the standard error of ``variance_ratio`` under the null,
    sqrt((mu4 / sigma^4 - 1) / n).
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
    """sqrt((mu4 / sigma^4 - 1) / n): the null SE of mean((x - mu)^2) / sigma^2."""
    return math.sqrt((central_moment4(dist) / dist.variance**2 - 1.0) / n)


def check_moments(values: np.ndarray, dist: Distribution, z_crit: float = Z_CRIT) -> list[CheckResult]:
    m = moments(values, dist)
    return [
        CheckResult("mean", abs(m.mean_z) <= z_crit, m.mean_z, f"z = {m.mean_z:+.2f} (|z| <= {z_crit})"),
        CheckResult(
            "variance",
            abs(m.variance_z) <= z_crit,
            m.variance_z,
            f"ratio {m.variance_ratio:.4f}, z = {m.variance_z:+.2f} (|z| <= {z_crit})",
        ),
    ]


def scipy_distribution(dist: Distribution):  # type: ignore[no-untyped-def]
    """The frozen ``scipy.stats`` distribution of a declared one."""
    from scipy import stats

    if isinstance(dist, Uniform):
        return stats.uniform(loc=dist.low, scale=dist.high - dist.low)
    if isinstance(dist, Normal):
        return stats.norm(loc=dist.loc, scale=dist.scale)
    if isinstance(dist, TruncatedNormal):
        return stats.truncnorm(dist.a, dist.b, loc=dist.loc, scale=dist.scale)
    raise TypeError(f"no continuous distribution for {dist!r}")


def ks_pvalue(values: np.ndarray, dist: Distribution) -> float:
    """Kolmogorov-Smirnov p-value of the values against the declared CDF."""
    from scipy import stats

    return float(stats.kstest(values.reshape(-1).astype(np.float64), scipy_distribution(dist).cdf).pvalue)


def check_fit(values: np.ndarray, dist: Distribution, alpha: float) -> CheckResult:
    p = ks_pvalue(values, dist)
    return CheckResult("fit", p >= alpha, p, f"KS p = {p:.3g} (>= {alpha:g})")


def check_constant(values: np.ndarray, dist: Constant) -> CheckResult:
    target = values.dtype.type(dist.value)
    bad = int(np.count_nonzero(values != target))
    return CheckResult("values", bad == 0, float(bad), f"{bad} values differ from {dist.value:g}")


def orthogonality_error(values: np.ndarray, gain: float) -> float:
    """max |Q^T Q - gain^2 I| (or Q Q^T for wide matrices), Q the (rows, cols) view."""
    q = values.reshape(-1, values.shape[-1]).astype(np.float64)
    gram = q.T @ q if q.shape[0] >= q.shape[1] else q @ q.T
    return float(np.abs(gram - gain**2 * np.eye(gram.shape[0])).max())


def check_structured(values: np.ndarray, dist: Structured) -> CheckResult:
    if dist.kind == "orthogonal":
        err = orthogonality_error(values, dist.gain)
        rows = values.size // values.shape[-1]
        eps = float(np.finfo(values.dtype).eps)
        tol = 50.0 * eps * math.sqrt(max(rows, values.shape[-1])) * dist.gain**2
        return CheckResult("orthogonal", err <= tol, err, f"max|Q^T Q - g^2 I| = {err:.3g} (<= {tol:.3g})")
    from netspec.init.initializers import INITIALIZERS

    # identity and dirac are deterministic: the initializer that defines them builds the expected tensor
    expected = INITIALIZERS[dist.kind](gain=dist.gain)(values.shape, stream=None, dtype=values.dtype)
    bad = int(np.count_nonzero(values != expected))
    return CheckResult(dist.kind, bad == 0, float(bad), f"{bad} values differ from {dist.kind} x {dist.gain:g}")


def check_values(
    values: np.ndarray, dist: Distribution, z_crit: float = Z_CRIT, fit_alpha: float | None = None
) -> list[CheckResult]:
    """Every applicable check of ``values`` against ``dist``."""
    if isinstance(dist, Constant):
        return [check_constant(values, dist)]
    if isinstance(dist, Structured):
        return [check_structured(values, dist)]
    results = [check_bounds(values, dist), *check_moments(values, dist, z_crit)]
    if fit_alpha is not None:
        results.append(check_fit(values, dist, fit_alpha))
    return results
