"""Declared distributions: what an initializer promises about its values.

The summary table, the samplers, the statistical tests and ``netspec verify``
all read from here, so each decision has one place: every distribution class
states its support, mean, variance and fourth central moment, draws its values
(:meth:`Distribution.sample`), names its SciPy distribution (for the fit
test), and says which checks apply to it (:meth:`Distribution.checks`; the
checks themselves are in :mod:`netspec.check.checks`).

Only the standard library is imported at module level (``math.erf``); NumPy,
the streams and the checks are imported where they are used, SciPy only by the
fit test.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from netspec.errors import InitializerError
from netspec.init.blocks import window_span

if TYPE_CHECKING:
    import numpy as np

    from netspec.check.checks import Accumulator, CheckResult, MomentTests, Summary
    from netspec.init.streams import Stream

SQRT2 = math.sqrt(2.0)

MIN_ACCEPTANCE = 0.01
"""Truncation intervals whose rejection sampler accepts less than this are refused."""

DTYPES = ("float32", "float64")


def check_dtype(dtype: object) -> np.dtype:
    """The NumPy dtype of a parameter dtype name: float32 or float64."""
    import numpy as np

    dt = np.dtype(dtype)  # type: ignore[call-overload]
    if dt.name not in DTYPES:
        raise InitializerError(f"dtype must be one of {', '.join(DTYPES)}, got {dt.name!r}")
    return dt


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


@functools.lru_cache(maxsize=1024)
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
    """Base of every declared distribution.

    ``statistical_tests`` is how many tests with a false-alarm probability
    :meth:`checks` runs (``netspec verify`` divides its alpha among them).
    """

    family = "distribution"
    statistical_tests: ClassVar[int] = 0
    blockwise: ClassVar[bool] = False
    """Whether :meth:`window` draws only the blocks it is asked for (constant memory whatever the tensor's
    size); otherwise it draws the whole tensor and slices it (its memory is the tensor's)."""

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

    def central_moment4(self) -> float:
        """mu4 = E[(X - mean)^4]: sets the sampling variance of the sample variance."""
        raise NotImplementedError(f"{type(self).__name__} declares no fourth central moment")

    def sample(self, shape: tuple[int, ...], stream: Stream, dtype: Any) -> np.ndarray:
        """An array of ``shape`` and ``dtype`` that follows this distribution, drawn from ``stream``."""
        raise InitializerError(f"cannot sample {type(self).__name__}")

    def window(self, shape: tuple[int, ...], stream: Stream, dtype: Any, blocks: tuple[int, int]) -> np.ndarray:
        """The flat values of a window of the tensor's blocks (:mod:`netspec.init.blocks`): exactly those of
        :meth:`sample` there. This default draws the whole tensor (see :attr:`blockwise`)."""
        start, stop = window_span(math.prod(shape), blocks)
        return self.sample(shape, stream, dtype).reshape(-1)[start:stop].copy()

    def moment_tests(self) -> MomentTests | None:
        """The mean and variance tests valid for this distribution at every n (None: not tested so)."""
        return None

    def checks(self, values: np.ndarray, alpha: float, fit_alpha: float | None) -> list[CheckResult]:
        """Every check of ``values`` against this distribution; each statistical one at false-alarm ``alpha``
        (the fit test at ``fit_alpha``, not run if None)."""
        raise NotImplementedError(f"{type(self).__name__} declares no checks")

    def accumulator(self, n: int, dtype: Any) -> Accumulator | None:
        """What :meth:`summary_checks` needs, gathered chunk by chunk from an n-value tensor of ``dtype``
        (constant memory); None if the checks need the whole tensor at once (orthogonal matrices, gates)."""
        return None

    def summary_checks(self, summary: Summary, alpha: float, fit_alpha: float | None) -> list[CheckResult]:
        """The checks of :meth:`checks`, from the :class:`~netspec.check.checks.Summary` of the values."""
        raise NotImplementedError(f"{type(self).__name__} checks whole tensors")



@dataclass(frozen=True)
class Derived(Distribution):
    """``part``'s law with some positions set apart (an embedding's padding rows, a recurrent kernel's fixed
    gates): family, tests, moments, randomness and block-wise drawing are the part's; subclasses say what
    they set, and how it is drawn and checked."""

    part: Distribution

    @property
    def family(self) -> str:  # type: ignore[override]
        return self.part.family

    @property
    def statistical_tests(self) -> int:  # type: ignore[override]
        return self.part.statistical_tests

    @property
    def mean(self) -> float:
        return self.part.mean

    @property
    def variance(self) -> float:
        return self.part.variance

    @property
    def is_random(self) -> bool:
        return self.part.is_random

    def central_moment4(self) -> float:
        return self.part.central_moment4()

    @property
    def blockwise(self) -> bool:  # type: ignore[override]
        return self.part.blockwise

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

    def central_moment4(self) -> float:
        """0: no spread."""
        return 0.0

    blockwise: ClassVar[bool] = True

    def sample(self, shape: tuple[int, ...], stream: Stream, dtype: Any) -> np.ndarray:
        import numpy as np

        return np.full(shape, self.value, dtype=check_dtype(dtype))

    def window(self, shape: tuple[int, ...], stream: Stream, dtype: Any, blocks: tuple[int, int]) -> np.ndarray:
        import numpy as np

        start, stop = window_span(math.prod(shape), blocks)
        return np.full(stop - start, self.value, dtype=check_dtype(dtype))

    def checks(self, values: np.ndarray, alpha: float, fit_alpha: float | None) -> list[CheckResult]:
        """Exact: every value equals ``value`` in the values' dtype."""
        from netspec.check.checks import check_constant

        return [check_constant(values, self)]

    def accumulator(self, n: int, dtype: Any) -> Accumulator:
        from netspec.check.checks import Accumulator

        return Accumulator(n, self.value, self.value)

    def summary_checks(self, summary: Summary, alpha: float, fit_alpha: float | None) -> list[CheckResult]:
        from netspec.check.checks import constant_result

        return [constant_result(summary.differ or 0, self.value)]


@dataclass(frozen=True)
class Continuous(Distribution):
    """A random distribution with a density: bounds, mean, variance and fit tests apply.

    Subclasses give :meth:`moment_tests` (which tests are valid at every n)
    and :meth:`scipy_distribution` (the CDF for the fit test).
    """

    statistical_tests: ClassVar[int] = 3
    """mean, variance and fit (bounds are exact)."""
    blockwise: ClassVar[bool] = True

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """P(X <= x), vectorized (the fit test's CDF; may import ``scipy.special``)."""
        raise NotImplementedError

    def cdf_left(self, x: np.ndarray) -> np.ndarray:
        """P(X < x): the CDF's left limit, which differs from :meth:`cdf` only at atoms (none here)."""
        return self.cdf(x)

    def scipy_distribution(self) -> Any:
        """The same law as a frozen ``scipy.stats`` distribution (imports SciPy)."""
        raise NotImplementedError

    def checks(self, values: np.ndarray, alpha: float, fit_alpha: float | None) -> list[CheckResult]:
        """Bounds (exact), mean and variance tests at ``alpha``, the KS fit at ``fit_alpha``."""
        from netspec.check.checks import continuous_checks

        return continuous_checks(values, self, alpha, fit_alpha)

    def accumulator(self, n: int, dtype: Any) -> Accumulator:
        from netspec.check.checks import Accumulator

        return Accumulator(n, self.mean)

    def summary_checks(self, summary: Summary, alpha: float, fit_alpha: float | None) -> list[CheckResult]:
        from netspec.check.checks import summary_checks

        return summary_checks(summary, self, alpha, fit_alpha)


@dataclass(frozen=True)
class Uniform(Continuous):
    """U(low, high): mean (low + high) / 2, variance (high - low)^2 / 12, mu4 (high - low)^4 / 80."""

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

    def central_moment4(self) -> float:
        """(high - low)^4 / 80 (the integral of x^4 over ±w/2, divided by w)."""
        return (self.high - self.low) ** 4 / 80.0

    def sample(self, shape: tuple[int, ...], stream: Stream, dtype: Any) -> np.ndarray:
        return stream.uniform(shape, self.low, self.high, dtype)

    def window(self, shape: tuple[int, ...], stream: Stream, dtype: Any, blocks: tuple[int, int]) -> np.ndarray:
        return stream.uniform(shape, self.low, self.high, dtype, blocks)

    def moment_tests(self) -> MomentTests:
        """Bounded: Bernstein's inequality (valid at every n)."""
        from netspec.check.checks import BERNSTEIN

        return BERNSTEIN

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """(x - low) / (high - low), clipped to [0, 1]."""
        import numpy as np

        return np.clip((x - self.low) / (self.high - self.low), 0.0, 1.0)

    def scipy_distribution(self) -> Any:
        from scipy import stats

        return stats.uniform(loc=self.low, scale=self.high - self.low)


@dataclass(frozen=True)
class Normal(Continuous):
    """N(loc, scale²), untruncated: mu4 = 3 scale^4."""

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
        return f"N({_g(self.loc)}, {_g(self.scale)}²)"

    def central_moment4(self) -> float:
        """3 scale^4."""
        return 3.0 * self.scale**4

    def sample(self, shape: tuple[int, ...], stream: Stream, dtype: Any) -> np.ndarray:
        return stream.normal(shape, self.loc, self.scale, dtype)

    def window(self, shape: tuple[int, ...], stream: Stream, dtype: Any, blocks: tuple[int, int]) -> np.ndarray:
        return stream.normal(shape, self.loc, self.scale, dtype, blocks)

    def moment_tests(self) -> MomentTests:
        """Exact normal theory: the mean z-test and n v / sigma^2 ~ chi^2_n."""
        from netspec.check.checks import NORMAL_THEORY

        return NORMAL_THEORY

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """Phi((x - loc) / scale)."""
        from scipy.special import ndtr

        return ndtr((x - self.loc) / self.scale)

    def scipy_distribution(self) -> Any:
        from scipy import stats

        return stats.norm(loc=self.loc, scale=self.scale)


@dataclass(frozen=True)
class TruncatedNormal(Continuous):
    """N(loc, scale²) truncated to [loc + a*scale, loc + b*scale] (a, b in std units).

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

    def central_moment4(self) -> float:
        """scale^4 (m4 - 4 m1 m3 + 6 m1^2 m2 - 3 m1^4), m_k the raw moments of N(0, 1) on [a, b]."""
        m = truncated_raw_moments(self.a, self.b, 4)
        mu = m[1]
        return (m[4] - 4 * mu * m[3] + 6 * mu**2 * m[2] - 3 * mu**4) * self.scale**4

    def sample(self, shape: tuple[int, ...], stream: Stream, dtype: Any) -> np.ndarray:
        return stream.truncated_normal(shape, self.loc, self.scale, self.a, self.b, dtype)

    def window(self, shape: tuple[int, ...], stream: Stream, dtype: Any, blocks: tuple[int, int]) -> np.ndarray:
        return stream.truncated_normal(shape, self.loc, self.scale, self.a, self.b, dtype, blocks)

    def moment_tests(self) -> MomentTests:
        """Bounded: Bernstein's inequality (valid at every n)."""
        from netspec.check.checks import BERNSTEIN

        return BERNSTEIN

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """(Phi(z) - Phi(a)) / mass, z = (x - loc) / scale in [a, b]; from upper tails when a >= 0."""
        import numpy as np
        from scipy.special import ndtr

        z = np.clip((x - self.loc) / self.scale, self.a, self.b)
        mass = _interval_mass(self.a, self.b)
        if self.a >= 0:
            return (ndtr(-self.a) - ndtr(-z)) / mass
        return (ndtr(z) - ndtr(self.a)) / mass

    def scipy_distribution(self) -> Any:
        from scipy import stats

        return stats.truncnorm(self.a, self.b, loc=self.loc, scale=self.scale)


@dataclass(frozen=True)
class Structured(Distribution):
    """A deterministic or matrix-valued construction (orthogonal, identity, dirac), times ``gain``.

    It carries what it needs to build or check a tensor exactly (its shape),
    so no check calls back into the initializers.
    """

    gain: float
    kind: ClassVar[str] = "structured"
    family = "structured"

    @property
    def mean(self) -> float:
        return 0.0

    @property
    def variance(self) -> float:
        return 0.0

    @property
    def is_random(self) -> bool:
        return False

    def describe(self) -> str:
        return f"{self.kind} gain {_g(self.gain)}"

    def exact_check(self, values: np.ndarray) -> CheckResult:
        raise NotImplementedError

    def checks(self, values: np.ndarray, alpha: float, fit_alpha: float | None) -> list[CheckResult]:
        """The exact check only (no false alarms)."""
        return [self.exact_check(values)]


@dataclass(frozen=True)
class OrthogonalMatrix(Structured):
    """gain times a Haar-random (semi-)orthogonal ``rows`` x ``cols`` matrix, viewed from the tensor.

    Draw Z ~ N(0, 1) of shape (max, min), QR-decompose, Q <- Q sign(diag R)
    (so Q is Haar-distributed), transpose if rows < cols, times ``gain``.
    Then ``Q^T Q = gain^2 I`` (rows >= cols) or ``Q Q^T = gain^2 I``; each
    entry has mean 0 and variance gain^2 / max(rows, cols).
    """

    rows: int
    cols: int
    kind: ClassVar[str] = "orthogonal"

    @property
    def variance(self) -> float:
        return self.gain**2 / max(self.rows, self.cols)

    @property
    def is_random(self) -> bool:
        return True

    def sample(self, shape: tuple[int, ...], stream: Stream, dtype: Any) -> np.ndarray:
        import numpy as np

        dt = check_dtype(dtype)
        z = stream.normal((max(self.rows, self.cols), min(self.rows, self.cols)), 0.0, 1.0, dt)
        q, r = np.linalg.qr(z)
        q *= np.where(np.diagonal(r) < 0, -1, 1).astype(dt)
        if self.rows < self.cols:
            q = q.T
        q *= dt.type(self.gain)
        return np.ascontiguousarray(q, dtype=dt).reshape(shape)

    def exact_check(self, values: np.ndarray) -> CheckResult:
        """max |Q^T Q - gain² I| within the rounding-error tolerance (see :func:`orthogonality_tolerance`)."""
        from netspec.check.checks import check_orthogonal

        return check_orthogonal(values, self.gain)


@dataclass(frozen=True)
class Deterministic(Structured):
    """A structured tensor with no randomness: it equals :meth:`expected` exactly."""

    blockwise: ClassVar[bool] = True

    def expected(self, dtype: Any) -> np.ndarray:
        raise NotImplementedError

    def expected_at(self, dtype: Any, start: int, stop: int) -> np.ndarray:
        """The expected tensor's flat elements ``[start, stop)``, computed from their positions alone."""
        raise NotImplementedError

    def sample(self, shape: tuple[int, ...], stream: Stream, dtype: Any) -> np.ndarray:
        return self.expected(dtype)

    def window(self, shape: tuple[int, ...], stream: Stream, dtype: Any, blocks: tuple[int, int]) -> np.ndarray:
        return self.expected_at(dtype, *window_span(math.prod(shape), blocks))

    def exact_check(self, values: np.ndarray) -> CheckResult:
        """Every value equals the expected tensor's, in the values' dtype."""
        from netspec.check.checks import check_expected

        return check_expected(values, self.expected(values.dtype), f"{self.kind} x {self.gain:g}", self.kind)

    def accumulator(self, n: int, dtype: Any) -> Accumulator:
        from netspec.check.checks import Accumulator

        return Accumulator(n, 0.0, lambda start, stop: self.expected_at(dtype, start, stop))

    def summary_checks(self, summary: Summary, alpha: float, fit_alpha: float | None) -> list[CheckResult]:
        from netspec.check.checks import expected_result

        return [expected_result(summary.differ or 0, f"{self.kind} x {self.gain:g}", self.kind)]


@dataclass(frozen=True)
class IdentityMatrix(Deterministic):
    """w = gain * I, ``rows`` x ``cols`` (rectangular: ones on the main diagonal)."""

    rows: int
    cols: int
    kind: ClassVar[str] = "identity"

    def expected(self, dtype: Any) -> np.ndarray:
        import numpy as np

        dt = check_dtype(dtype)
        out = np.eye(self.rows, self.cols, dtype=dt)
        out *= dt.type(self.gain)
        return out

    def expected_at(self, dtype: Any, start: int, stop: int) -> np.ndarray:
        """gain where the row (position // cols) equals the column (position % cols)."""
        import numpy as np

        dt = check_dtype(dtype)
        row, col = np.divmod(np.arange(start, stop, dtype=np.int64), self.cols)
        return np.where(row == col, dt.type(self.gain), dt.type(0))


@dataclass(frozen=True)
class DiracKernel(Deterministic):
    """Conv kernel ``(*kernel, in, out)``: w[center, i, i] = gain for i < min(in, out), else 0."""

    shape: tuple[int, ...]
    kind: ClassVar[str] = "dirac"

    def expected(self, dtype: Any) -> np.ndarray:
        import numpy as np

        out = np.zeros(self.shape, dtype=check_dtype(dtype))
        center = tuple(k // 2 for k in self.shape[:-2])
        d = np.arange(min(self.shape[-2], self.shape[-1]))
        index: tuple[Any, ...] = (*center, d, d)
        out[index] = self.gain
        return out

    def expected_at(self, dtype: Any, start: int, stop: int) -> np.ndarray:
        """gain where the position's kernel index is the center and its input index equals its output index."""
        import numpy as np

        dt = check_dtype(dtype)
        *spatial, ins, outs = np.unravel_index(np.arange(start, stop, dtype=np.int64), self.shape)
        hit = ins == outs
        for axis, k in zip(spatial, self.shape[:-2], strict=True):
            hit &= axis == k // 2
        return np.where(hit, dt.type(self.gain), dt.type(0))


@functools.lru_cache(maxsize=1024)
def truncated_raw_moments(a: float, b: float, k_max: int) -> tuple[float, ...]:
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
    return tuple(m[: k_max + 1])


def central_moment4(dist: Distribution) -> float:
    """E[(X - mean)^4] of a declared distribution (each class states its own)."""
    return dist.central_moment4()


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
