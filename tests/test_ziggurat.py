"""Stream version 2's normal sampler (the ziggurat, netspec.init.ziggurat): tables, exact distribution
checks, reproducibility.

Every statistical check runs at a fixed seed with a tolerance from the statistic's sampling distribution
at false-alarm probability ALPHA (Bonferroni over the checks that share a sample), so a correct sampler
fails with probability below ALPHA, and each check fails for a formula off by 2 or sqrt 2 (see the
numbers in each docstring).
"""

import math
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from statistics import NormalDist

import numpy as np
import pytest
from scipy import special, stats

from netspec.init import streams, ziggurat
from netspec.init.distributions import truncated_moments
from netspec.init.portable_math import log64
from netspec.init.streams import BLOCK, BlockStream

ALPHA = 1e-6
Z = NormalDist().inv_cdf(1 - ALPHA / 2)  # two-sided normal quantile, 4.89
N = 1 << 23  # 32 blocks


def f(x):
    return math.exp(-x * x / 2)


@pytest.fixture(scope="module")
def sample32():
    return BlockStream(2024, "zig.f32", version=2).normal((N,), 0.0, 1.0, np.float32).astype(np.float64)


@pytest.fixture(scope="module")
def sample64():
    return BlockStream(2024, "zig.f64", version=2).normal((N // 4,), 0.0, 1.0, np.float64)


# ---------------------------------------------------------------- tables


def test_layers_have_equal_area_and_the_base_holds_the_tail():
    """x_i (f(x_{i-1}) - f(x_i)) = V for every layer (x_0 = 0), R f(R) + int_R^inf f = V, Q f(R) = V."""
    edges = [0.0, *ziggurat.EDGES]
    assert len(ziggurat.EDGES) == ziggurat.LAYERS - 1 and ziggurat.EDGES[-1] == ziggurat.R
    assert all(np.diff(edges) > 0)
    for i in range(1, ziggurat.LAYERS):
        assert edges[i] * (f(edges[i - 1]) - f(edges[i])) == pytest.approx(ziggurat.V, rel=1e-12), i
    tail = math.sqrt(math.pi / 2) * math.erfc(ziggurat.R / math.sqrt(2))
    assert ziggurat.R * f(ziggurat.R) + tail == pytest.approx(ziggurat.V, rel=1e-13)
    assert ziggurat.Q * f(ziggurat.R) == pytest.approx(ziggurat.V, rel=1e-14)
    for x, fx in zip(ziggurat.EDGES, ziggurat.DENSITY, strict=True):
        assert fx == pytest.approx(f(x), rel=1e-14)


def test_tables_are_mpmaths_to_the_last_bit():
    pytest.importorskip("mpmath")
    r, v, edges, density = ziggurat.derive_tables()
    assert (r, v) == (ziggurat.R, ziggurat.V)
    assert edges == list(ziggurat.EDGES) and density == list(ziggurat.DENSITY)


def test_fast_path_limits_are_the_inner_fractions():
    """limit[i] = floor(2^P inner_i / width_i): |j| < limit  <=>  the point lies in the inner part."""
    for dtype, bits in ((np.float32, 24), (np.float64, 53)):
        t = ziggurat.tables(np.dtype(dtype), 1.0)
        widths, inners = [ziggurat.Q, *ziggurat.EDGES], [ziggurat.R, 0.0, *ziggurat.EDGES[:-1]]
        for i in (0, 1, 2, 100, 255):
            exact = Fraction(inners[i]) / Fraction(widths[i]) * 2**bits
            assert int(t.limit[i]) <= exact < int(t.limit[i]) + 1
        assert t.limit[1] == 0  # the top layer has no inner part
        # fast acceptance: 98.5 %, the mean inner fraction
        assert np.mean(t.limit / 2.0**bits) == pytest.approx(0.98508, abs=1e-5)


def test_log64_is_within_two_units_in_the_last_place():
    u = np.random.default_rng(0).random(100_000)
    u = np.concatenate([u[u > 0], [2.0**-53, 1 - 2.0**-53, 1.0, 0.5, 2.0, 1e-300, 3.7e300]])
    exact = np.array([math.log(x) for x in u])
    got = log64(u)
    ulps = np.abs(got - exact) / np.spacing(np.maximum(np.abs(exact), 1e-300))
    assert ulps.max() <= 2.0
    assert got[u == 1.0][0] == 0.0


# ---------------------------------------------------------------- distribution


def test_moments(sample32, sample64):
    """Mean ~ N(0, 1/n), variance ~ N(1, 2/n), fourth moment ~ N(3, 96/n) (E z^8 = 105): with n = 2^23 the
    variance tolerance is 0.003, so a scale off by sqrt 2 (or by 1 %) fails."""
    for x in (sample32, sample64):
        n, z = x.size, Z * 1.2  # three checks per sample (Bonferroni, rounded up)
        assert abs(x.mean()) < z / math.sqrt(n)
        assert abs((x * x).mean() - 1.0) < z * math.sqrt(2.0 / n)
        assert abs((x**4).mean() - 3.0) < z * math.sqrt(96.0 / n)


def test_ks_against_the_normal_cdf(sample32, sample64):
    """Kolmogorov-Smirnov distance to Phi within the DKW bound sqrt(ln(2 / alpha) / (2 n)) (0.0013 at
    n = 2^23): valid at every n, whatever the distribution of the statistic."""
    for x in (sample32, sample64):
        s = np.sort(x)
        cdf = special.ndtr(s)
        n = s.size
        d = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
        assert d < math.sqrt(math.log(2 / ALPHA) / (2 * n))


def test_mass_of_every_layer_and_of_the_tail(sample32):
    """Counts of |z| in each layer's x-range [x_{i-1}, x_i) and beyond R against the exact normal masses:
    Pearson's chi^2 with 255 degrees of freedom (a wrong wedge test or wedge height in any layer moves
    mass across these very edges)."""
    edges = np.array([0.0, *ziggurat.EDGES, np.inf])
    counts = np.histogram(np.abs(sample32), edges)[0]
    probs = np.diff(2 * special.ndtr(edges) - 1)
    expected = probs * sample32.size
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < stats.chi2.isf(ALPHA, edges.size - 2)
    # the tail alone: P(|z| > R) = 2.58e-4, binomial
    p = probs[-1]
    assert abs(counts[-1] - expected[-1]) < Z * math.sqrt(sample32.size * p * (1 - p))


def test_tail_shape(sample32):
    """Given |z| > R, |z| follows the normal tail: DKW bound on the ~2,200 tail values (0.06), so
    Marsaglia's x = -ln(u) / R written as times R, or the tail drawn uniform, fails."""
    tail = np.sort(np.abs(sample32[np.abs(sample32) > ziggurat.R]))
    assert tail.size > 1000
    cdf = (special.ndtr(-ziggurat.R) - special.ndtr(-tail)) / special.ndtr(-ziggurat.R)
    n = tail.size
    d = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
    assert d < math.sqrt(math.log(2 / ALPHA) / (2 * n))
    assert tail[-1] > 4.5  # the tail is reached, not capped at the base strip


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tail_method_alone(dtype):
    """2^18 values that all start as base-strip rejections (layer 0, |x| beyond R) are resolved by the tail
    method: |z| follows the normal tail beyond R within the DKW bound (0.0054), so an acceptance test
    off by a factor 2 (-ln u2 > x^2 instead of -2 ln u2 > x^2) or a tail x = -ln(u) R fails; signs kept."""
    t = ziggurat.tables(np.dtype(dtype), 1.0)
    n = 1 << 18
    itype = np.int32 if dtype == np.float32 else np.int64
    signs = np.where(np.arange(n) % 2 == 0, 1, -1)
    words = ((signs * (int(t.limit[0]) + 1)).astype(itype) << t.shift) & ~itype(255)  # layer 0, beyond R
    bits = streams.BlockBits(streams.tensor_key(0, "tail"), 0)
    out = np.zeros(n, dtype)
    ziggurat._resolve([bits], out, np.arange(n), words, np.zeros(n, np.intp), t)
    assert np.all(np.sign(out) == signs)
    tail = np.sort(np.abs(out.astype(np.float64)))
    assert tail[0] > ziggurat.R * (1 - 1e-7)
    cdf = (special.ndtr(-ziggurat.R) - special.ndtr(-tail)) / special.ndtr(-ziggurat.R)
    d = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
    assert d < math.sqrt(math.log(2 / ALPHA) / (2 * n))


def test_symmetry(sample32):
    """Signs are Binomial(n, 1/2); |z| of the positive and of the negative values have the same law (two-
    sample distance within the sum of their DKW bounds)."""
    pos, neg = np.sort(sample32[sample32 > 0]), np.sort(-sample32[sample32 < 0])
    n = sample32.size
    assert pos.size + neg.size == n  # no zeros: j is odd
    assert abs(pos.size - n / 2) < Z * math.sqrt(n / 4)
    grid = np.linspace(0, 5, 2001)
    gap = np.max(np.abs(np.searchsorted(pos, grid) / pos.size - np.searchsorted(neg, grid) / neg.size))
    eps = math.sqrt(math.log(4 / ALPHA) / (2 * pos.size)) + math.sqrt(math.log(4 / ALPHA) / (2 * neg.size))
    assert gap < eps


def test_loc_and_scale_and_values_stay_on_the_declared_grid():
    """normal(loc, scale): moments at scale 0.02 and loc 0.5 (n = 2^20), exact in every block."""
    x = BlockStream(7, "w", version=2).normal((1 << 20,), 0.5, 0.02, np.float32).astype(np.float64)
    n = x.size
    assert abs(x.mean() - 0.5) < Z * 0.02 / math.sqrt(n)
    assert abs(((x - 0.5) ** 2).mean() / 0.02**2 - 1) < Z * math.sqrt(2 / n)


@pytest.mark.parametrize(("a", "b"), [(-2.0, 2.0), (0.0, 0.75), (-3.0, 1.0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_truncated_normal_on_ziggurat_proposals(a, b, dtype):
    """Truncated normal (normal proposals, version 2): support, mean and variance within z * their standard
    errors (from the truncated law's own moments), KS distance within the DKW bound."""
    n = 1 << 19
    x = BlockStream(11, "tn", version=2).truncated_normal((n,), 0.0, 1.0, a, b, dtype).astype(np.float64)
    assert x.min() >= a and x.max() <= b
    mass, mean, var = truncated_moments(a, b)
    mu4 = stats.truncnorm(a, b).moment(4) - 4 * mean * stats.truncnorm(a, b).moment(3)
    mu4 += 6 * mean**2 * stats.truncnorm(a, b).moment(2) - 3 * mean**4
    assert abs(x.mean() - mean) < Z * math.sqrt(var / n)
    assert abs(((x - mean) ** 2).mean() - var) < Z * math.sqrt((mu4 - var**2) / n)
    s = np.sort(x)
    cdf = (special.ndtr(s) - special.ndtr(a)) / mass
    d = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
    assert d < math.sqrt(math.log(2 / ALPHA) / (2 * n))


# ---------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_seed_and_path_reproduce_and_differ(dtype):
    a = BlockStream(3, "p", version=2).normal((5000,), 0.0, 1.0, dtype)
    assert a.tobytes() == BlockStream(3, "p", version=2).normal((5000,), 0.0, 1.0, dtype).tobytes()
    assert not np.array_equal(a, BlockStream(4, "p", version=2).normal((5000,), 0.0, 1.0, dtype))
    assert not np.array_equal(a, BlockStream(3, "q", version=2).normal((5000,), 0.0, 1.0, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bytes_do_not_depend_on_tiles_groups_threads_or_size(monkeypatch, dtype):
    """Value p of block b takes word p of block b's stream: tiling, grouping of blocks, thread count and
    the tensor's total size change nothing."""
    shape = (9 * BLOCK + 777,)
    base = BlockStream(5, "big", version=2).normal(shape, 0.1, 2.0, dtype)
    with ThreadPoolExecutor(2) as pool:
        assert base.tobytes() == BlockStream(5, "big", pool, 2).normal(shape, 0.1, 2.0, dtype).tobytes()
    monkeypatch.setattr(ziggurat, "TILE", 4098)
    monkeypatch.setattr(streams, "GROUP", 1)
    assert base.tobytes() == BlockStream(5, "big", version=2).normal(shape, 0.1, 2.0, dtype).tobytes()
    small = BlockStream(5, "big", version=2).normal((BLOCK + 3,), 0.1, 2.0, dtype)
    assert small[:BLOCK].tobytes() == base[:BLOCK].tobytes()


def test_rejections_come_from_the_second_stream_of_their_block():
    """Resolving the rejected values of a group together equals resolving each block on its own."""
    key = streams.tensor_key(1, "g")
    together = np.empty(3 * BLOCK, np.float32)
    ziggurat.fill([streams.BlockBits(key, i) for i in range(3)], together, 1.0, BLOCK)
    for i in range(3):
        alone = np.empty(BLOCK, np.float32)
        ziggurat.fill([streams.BlockBits(key, i)], alone, 1.0)
        assert alone.tobytes() == together[i * BLOCK : (i + 1) * BLOCK].tobytes()


def test_version_1_is_still_box_muller():
    """Version 1 stays available, byte for byte (its goldens are in test_golden.py), and differs from 2."""
    v1 = BlockStream(3, "p", version=1).normal((5000,), 0.0, 1.0, np.float32)
    v2 = BlockStream(3, "p", version=2).normal((5000,), 0.0, 1.0, np.float32)
    assert not np.array_equal(v1, v2)
    with pytest.raises(Exception, match="no block stream version 3"):
        BlockStream(3, "p", version=3)
