"""The declared moments, CDFs and the exact small-sample machinery against SciPy, an independent implementation.

No sampling here: every comparison is deterministic, at a relative tolerance set by float64
rounding (1e-9, or 1e-8 where raw moments of a tail interval cancel). A sign flip in the
truncated-normal moment recursion, a wrong uniform mu4 (/40 for /80) or a chi^2 quantile off by
one degree of freedom moves the compared value by far more than that.
"""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from netspec.check.checks import (
    BERNSTEIN,
    NORMAL_THEORY,
    bernstein_deviation,
    chi2_quantile,
    chi2_tails,
    chi2_upper_quantile,
    ks_pvalue,
)
from netspec.init.distributions import Normal, TruncatedNormal, Uniform

# (a, b) in std units: symmetric (Keras' ±2), uneven, one tail, the other tail, narrow around 0,
# just under 25% mass (uniform proposals), 29% mass (normal proposals), wide (no truncation in effect)
INTERVALS = [(-2.0, 2.0), (-1.0, 3.0), (-1.0, 0.5), (2.0, 3.0), (-3.0, -2.5), (-0.1, 0.1), (-0.3, 0.3),
             (0.0, 0.8), (0.5, 4.0), (-100.0, 100.0)]  # fmt: skip
TRUNCATED = [TruncatedNormal(0.5, 2.0, a, b) for a, b in INTERVALS]
UNIFORMS = [Uniform(-1.0, 1.0), Uniform(-0.3, 0.7), Uniform(2.0, 2.5)]
NORMALS = [Normal(0.0, 1.0), Normal(1.0, 0.5)]


def central4_by_quadrature(dist):
    """E[(X - mean)^4] by numerical integration of the SciPy density (independent of both closed forms)."""
    ref = dist.scipy_distribution()
    low, high = ref.support()
    mean = ref.mean()
    low, high = max(low, mean - 12 * ref.std()), min(high, mean + 12 * ref.std())
    value, _err = integrate.quad(lambda x: (x - mean) ** 4 * ref.pdf(x), low, high, epsabs=0, epsrel=1e-12, limit=200)
    return value


@pytest.mark.parametrize("dist", TRUNCATED + UNIFORMS + NORMALS, ids=lambda d: d.describe())
def test_mean_variance_and_fourth_moment_match_scipy(dist):
    ref = dist.scipy_distribution()
    mean, var, _skew, kurt = (float(v) for v in ref.stats(moments="mvsk"))
    assert dist.mean == pytest.approx(mean, rel=1e-9, abs=1e-12)
    assert dist.variance == pytest.approx(var, rel=1e-9)
    assert dist.central_moment4() == pytest.approx((kurt + 3.0) * var**2, rel=1e-8)
    assert dist.central_moment4() == pytest.approx(central4_by_quadrature(dist), rel=1e-8)


def test_uniform_fourth_moment_is_width_to_the_fourth_over_80():
    # kurtosis 9/5: mu4 = 1.8 sigma^4 = 1.8 w^4 / 144 = w^4 / 80
    assert Uniform(-1.0, 3.0).central_moment4() == pytest.approx(4.0**4 / 80, rel=1e-15)


@pytest.mark.parametrize("dist", TRUNCATED + UNIFORMS + NORMALS, ids=lambda d: d.describe())
def test_cdf_matches_scipy(dist):
    ref = dist.scipy_distribution()
    low, high = dist.support
    x = np.linspace(max(low, dist.mean - 8 * dist.std), min(high, dist.mean + 8 * dist.std), 501)
    np.testing.assert_allclose(dist.cdf(x), ref.cdf(x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n", [1, 2, 5, 15, 20, 100, 4096, 10**6])
@pytest.mark.parametrize("p", [0.2, 1e-3, 1e-7, 1e-12])
def test_chi2_quantiles_and_tails_match_scipy(n, p):
    lower, upper = chi2_quantile(n, p), chi2_upper_quantile(n, p)
    assert lower == pytest.approx(stats.chi2.ppf(p, n), rel=1e-9)
    assert upper == pytest.approx(stats.chi2.isf(p, n), rel=1e-9)
    assert chi2_tails(lower, n)[0] == pytest.approx(p, rel=1e-9)
    assert chi2_tails(upper, n)[1] == pytest.approx(p, rel=1e-9)


def test_normal_theory_variance_interval_is_the_chi2_interval():
    dist = Normal(0.0, 3.0)
    lo, hi = NORMAL_THEORY.ratio_interval(dist, 20, 1e-4)
    assert lo == pytest.approx(stats.chi2.ppf(5e-5, 20) / 20, rel=1e-9)
    assert hi == pytest.approx(stats.chi2.isf(5e-5, 20) / 20, rel=1e-9)


def test_bernstein_deviation_solves_the_bound():
    n, var, bound, p = 20, 0.25, 1.5, 1e-5
    t = bernstein_deviation(n, var, bound, p)
    assert math.exp(-n * t * t / (2 * var + 2 * bound * t / 3)) == pytest.approx(p, rel=1e-12)


@pytest.mark.parametrize("dist", [TRUNCATED[0], TRUNCATED[3], UNIFORMS[1]], ids=lambda d: d.describe())
def test_bernstein_intervals_cover_the_exact_tail_probability(dist):
    """Bernstein's interval for the mean must hold with probability >= 1 - alpha: compare its half-widths with
    the exact-at-large-n normal quantile (Bernstein is wider) at n = 10^4, where the CLT is accurate."""
    n, alpha = 10_000, 1e-3
    lo, hi = BERNSTEIN.mean_interval(dist, n, alpha)
    z = stats.norm.isf(alpha / 2) * dist.std / math.sqrt(n)
    assert -lo > z and hi > z
    assert -lo < 1.3 * z and hi < 1.3 * z  # and not uselessly wide: power kept at large n
    r_lo, r_hi = BERNSTEIN.ratio_interval(dist, n, alpha)
    se = math.sqrt((dist.central_moment4() / dist.variance**2 - 1) / n)
    assert 1 - r_lo > stats.norm.isf(alpha / 2) * se and r_hi - 1 > stats.norm.isf(alpha / 2) * se


def test_ks_pvalue_is_massarts_bound_on_the_exact_ks_distance():
    dist = Normal(0.0, 1.0)
    x = stats.norm.ppf((np.arange(50) + 0.3) / 50)  # a deterministic near-fit
    d = stats.kstest(x, stats.norm.cdf).statistic
    assert ks_pvalue(x, dist) == pytest.approx(min(1.0, 2 * math.exp(-2 * 50 * d * d)), rel=1e-12)
    assert ks_pvalue(x, dist) >= stats.kstest(x, stats.norm.cdf).pvalue  # conservative
