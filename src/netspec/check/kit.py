"""Test kit: Hypothesis strategies and property checks for initializers and specs.

Needs the ``test`` extra (Hypothesis; SciPy for the goodness-of-fit check).

>>> from math import sqrt
>>> from netspec.testing import check_initializer
>>> check_initializer(MyHe())                                          # doctest: +SKIP
>>> check_initializer(MyHe(), std=lambda f: sqrt(2 / f.fan_in))        # doctest: +SKIP

Two kinds of guarantee, and the kit says which one each check gives:

* **self-consistency** — the values follow the distribution the initializer
  *declares*. An initializer that declares the wrong law and draws from it
  passes: ``std = 2 / fan_in`` where ``sqrt(2 / fan_in)`` was meant is
  self-consistent.
* **an independent law** — the caller states what the values should follow,
  independently of the initializer's code: ``expected=`` (a distribution as a
  function of the fans), ``std=`` or ``limit=`` (a formula of the fans), or
  ``reference=`` (another initializer). Both the declaration (exactly, up to
  float rounding) and the drawn values (statistically) are compared with it.

Contents:

* :func:`assert_follows` — values vs. a distribution (bounds exact, mean and
  variance tests valid at every n, KS fit);
* :func:`assert_same_distribution` — one declaration vs. another (family,
  support, mean, variance to :data:`DECLARATION_RTOL`);
* :func:`check_initializer` — the property battery over Hypothesis-chosen
  shapes, with or without an independent law;
* strategies: :func:`fans`, :func:`dense_shapes`, :func:`conv_shapes`,
  :func:`initializer_configs`, :func:`specs`.

Every strategy and check validates its arguments when called and raises
Hypothesis' :class:`~hypothesis.errors.InvalidArgument` naming the argument;
shapes are built within their bounds, never filtered.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import hypothesis
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from netspec.check.checks import Z_CRIT, check_values
from netspec.errors import NetspecError
from netspec.init.distributions import Distribution, Uniform
from netspec.init.fans import Fans, compute_fans
from netspec.init.initializers import INITIALIZERS, Initializer
from netspec.init.streams import BlockStream

__all__ = [
    "DECLARATION_RTOL",
    "FIT_ALPHA",
    "SAMPLE",
    "InvalidArgument",
    "NotFollowing",
    "assert_follows",
    "assert_same_distribution",
    "check_initializer",
    "conv_shapes",
    "dense_shapes",
    "fans",
    "initializer_configs",
    "sample_values",
    "specs",
    "structured_checks",
]

FIT_ALPHA = 1e-6
"""Per-check false-alarm probability of the KS fit check in the kit."""

SAMPLE = 20_000
"""Values drawn per statistical property check (see :func:`sample_values`)."""

DECLARATION_RTOL = 1e-9
"""Relative tolerance when two declarations are compared (:func:`assert_same_distribution`).

Two correct declarations of one law evaluate the same formula in float64, perhaps
in another order or form (``sqrt(2 / n)`` vs ``sqrt(2) / sqrt(n)``, a constant
typed to 17 digits vs one computed with ``erf``). Each operation rounds by at
most 2⁻⁵³ ≈ 1.1e-16 relative, so a few dozen of them stay below 1e-14. The
smallest real error in scope, fans n and n + 1 swapped, changes the variance by
1/n: 2.4e-4 at n = 4096, 1e-6 at n = 10⁶. 1e-9 sits orders of magnitude from both.
"""

MAX_STRUCTURED_SIDE = 256
"""Structured initializers (orthogonal, identity, dirac) are drawn with in/out capped at this."""

PATH = "testing.values"


class NotFollowing(AssertionError):
    """Values or a declaration do not follow the law they were checked against."""


# ------------------------------------------------------------------ argument validation


def _check_int(where: str, name: str, value: object, least: int) -> None:
    """Raise InvalidArgument unless ``value`` is an int (not a bool) >= ``least``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{where}: {name} must be an integer, got {name}={value!r}")
    if value < least:
        raise InvalidArgument(f"{where}: {name} must be at least {least}, got {name}={value!r}")


def _check_positive(where: str, name: str, value: object) -> None:
    """Raise InvalidArgument unless ``value`` is a finite real number > 0."""
    if not _positive(value):
        raise InvalidArgument(f"{where}: {name} must be a finite number > 0, got {name}={value!r}")


def _check_type(where: str, name: str, value: object, kind: type | tuple[type, ...], what: str) -> None:
    if not isinstance(value, kind):
        raise InvalidArgument(f"{where}: {name} must be {what}, got {name}={value!r}")


# ------------------------------------------------------------------ strategies


def fans(max_fan: int = 4096) -> st.SearchStrategy[Fans]:
    """Arbitrary fan-in / fan-out pairs in 1..max_fan (receptive field 1)."""
    _check_int("fans()", "max_fan", max_fan, 1)
    side = st.integers(1, max_fan)
    return st.builds(Fans, side, side)


def dense_shapes(max_fan: int = 4096, max_size: int = 1 << 16) -> st.SearchStrategy[tuple[int, int]]:
    """(fan_in, fan_out) dense kernel shapes, each side <= ``max_fan``, at most ``max_size`` entries.

    Built, not filtered: fan_in <= min(max_fan, max_size), then
    fan_out <= min(max_fan, max_size // fan_in).
    """
    _check_int("dense_shapes()", "max_fan", max_fan, 1)
    _check_int("dense_shapes()", "max_size", max_size, 1)
    return st.integers(1, min(max_fan, max_size)).flatmap(
        lambda fi: st.tuples(st.just(fi), st.integers(1, min(max_fan, max_size // fi)))
    )


def conv_shapes(
    max_spatial: int = 3, max_size: int = 1 << 16, *, max_kernel: int = 7, max_channels: int = 64
) -> st.SearchStrategy[tuple[int, ...]]:
    """(*kernel, in, out) conv kernel shapes: 1..max_spatial spatial dims of 1..max_kernel,
    channels 1..max_channels, at most ``max_size`` entries.

    Built, not filtered: the dims are drawn in a random order, each bounded by
    what the product still allows, so every bound holds by construction and
    small ``max_size`` values draw as fast as large ones.
    """
    where = "conv_shapes()"
    _check_int(where, "max_spatial", max_spatial, 1)
    _check_int(where, "max_size", max_size, 1)
    _check_int(where, "max_kernel", max_kernel, 1)
    _check_int(where, "max_channels", max_channels, 1)
    return st.integers(1, max_spatial).flatmap(
        lambda rank: _bounded_product([max_kernel] * rank + [max_channels, max_channels], max_size)
    )


@st.composite
def _bounded_product(draw: st.DrawFn, bounds: list[int], max_size: int) -> tuple[int, ...]:
    """A tuple with dims[i] in 1..bounds[i] and prod(dims) <= max_size.

    Each dim takes at most ``budget // (product so far)``; after d is drawn the
    rest is bounded by floor(budget / d), so d * rest <= budget.
    """
    dims = [1] * len(bounds)
    budget = max_size
    for i in draw(st.permutations(range(len(bounds)))):
        dims[i] = draw(st.integers(1, min(bounds[i], budget)))
        budget //= dims[i]
    return tuple(dims)


def initializer_configs(names: Iterable[str] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Configs of registered initializers with valid parameters (default: every random one)."""
    if names is None:
        return st.sampled_from(sorted(n for n in INITIALIZERS if n not in STRUCTURED)).flatmap(_config_for)
    where = "initializer_configs()"
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise InvalidArgument(f"{where}: names must be a list of initializer names, got names={names!r}")
    chosen = list(names)
    if not chosen:
        raise InvalidArgument(f"{where}: names must not be empty (None means every random initializer)")
    canonical = []
    for name in chosen:
        try:
            canonical.append(INITIALIZERS.canonical(name))
        except NetspecError as exc:
            raise InvalidArgument(f"{where}: {exc}") from None
    return st.sampled_from(sorted(set(canonical))).flatmap(_config_for)


STRUCTURED = ("orthogonal", "identity", "dirac")


def _config_for(name: str) -> st.SearchStrategy[dict[str, Any]]:
    positive = st.floats(0.1, 4.0)
    extra: dict[str, st.SearchStrategy[Any]] = {
        "constant": st.fixed_dictionaries({"value": st.floats(-3, 3)}),
        "uniform": st.floats(-2, 2).flatmap(
            lambda lo: st.fixed_dictionaries({"low": st.just(lo), "high": st.floats(lo + 0.01, lo + 4)})
        ),
        "normal": st.fixed_dictionaries({"mean": st.floats(-2, 2), "std": positive}),
        "truncated_normal": st.fixed_dictionaries(
            {"std": positive, "lower": st.floats(-3, -0.5), "upper": st.floats(0.5, 3)}
        ),
        "truncated_normal_abs": st.fixed_dictionaries({"std": positive}),
        "variance_scaling": st.fixed_dictionaries(
            {
                "scale": positive,
                "mode": st.sampled_from(["fan_in", "fan_out", "fan_avg", "fan_geo_avg"]),
                "distribution": st.sampled_from(["uniform", "normal", "truncated_normal"]),
            }
        ),
        "glorot_uniform": st.fixed_dictionaries({"gain": positive}),
        "glorot_normal": st.fixed_dictionaries({"gain": positive, "truncated": st.booleans()}),
        "he_normal": st.fixed_dictionaries({"truncated": st.booleans()}),
        "lecun_normal": st.fixed_dictionaries({"truncated": st.booleans()}),
        "caffe_xavier": st.fixed_dictionaries({"variance_norm": st.sampled_from(["fan_in", "fan_out", "average"])}),
        "caffe_msra": st.fixed_dictionaries({"variance_norm": st.sampled_from(["fan_in", "fan_out", "average"])}),
        "torch_kaiming_uniform": _torch_kaiming(),
        "torch_kaiming_normal": _torch_kaiming(),
    }
    params = extra.get(name, st.just({}))
    return params.map(lambda p: {"name": name, **p})


def _torch_kaiming() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "a": st.floats(0, 1),
            "mode": st.sampled_from(["fan_in", "fan_out"]),
            "nonlinearity": st.sampled_from(["leaky_relu", "relu", "tanh", "linear", "sigmoid", "selu"]),
        }
    )


def sample_values(
    init: Initializer,
    fans_: Fans,
    n: int = SAMPLE,
    seed: int = 0,
    dtype: Any = np.float32,
) -> np.ndarray:
    """``n`` values drawn with the given fans (the distribution depends on fans only)."""
    _check_type("sample_values()", "init", init, Initializer, "an Initializer")
    _check_type("sample_values()", "fans_", fans_, Fans, "a Fans")
    _check_int("sample_values()", "n", n, 1)
    _check_int("sample_values()", "seed", seed, 0)
    return init((n,), BlockStream(seed, PATH), dtype, fans=fans_)


def assert_follows(
    values: np.ndarray,
    expected: Initializer | Distribution,
    shape: tuple[int, ...] | None = None,
    fans: Fans | None = None,
    z_crit: float = Z_CRIT,
    fit_alpha: float | None = FIT_ALPHA,
) -> None:
    """Raise :class:`NotFollowing` unless ``values`` pass every check against ``expected``.

    ``expected`` is a distribution, or an initializer whose declaration for
    ``shape`` (default ``values.shape``) and ``fans`` is used — then this proves
    self-consistency only. Checks: support (exact); mean and variance, each at
    the two-sided level of |z| <= ``z_crit`` (exact for a normal, Bernstein's
    bound for bounded distributions: valid at every n); KS fit at ``fit_alpha``
    (skipped if None).
    """
    where = "assert_follows()"
    _check_type(where, "values", values, np.ndarray, "a NumPy array")
    _check_type(where, "expected", expected, (Initializer, Distribution), "an Initializer or a Distribution")
    _check_positive(where, "z_crit", z_crit)
    if fit_alpha is not None and not (isinstance(fit_alpha, float) and 0.0 < fit_alpha < 1.0):
        raise InvalidArgument(f"{where}: fit_alpha must be None or a float in (0, 1), got fit_alpha={fit_alpha!r}")
    dist = expected.declared(shape or values.shape, fans) if isinstance(expected, Initializer) else expected
    failed = [r for r in check_values(values, dist, z_crit, fit_alpha) if r.ok is False]
    if failed:
        details = "; ".join(f"{r.name}: {r.detail}" for r in failed)
        raise NotFollowing(f"values do not follow {dist.describe()}: {details}")


def assert_same_distribution(declared: Distribution, expected: Distribution, rel_tol: float = DECLARATION_RTOL) -> None:
    """Raise :class:`NotFollowing` unless two declarations state the same law.

    Compared: ``family`` (equal), ``support``, ``mean`` and ``variance`` (equal
    within ``rel_tol`` relative to the larger magnitude, or to the std for
    quantities that may be 0; infinite bounds exactly), and ``describe()`` for
    structured ones. Exact up to float rounding (see :data:`DECLARATION_RTOL`),
    so it catches a wrong formula however small the tensor.
    """
    where = "assert_same_distribution()"
    _check_type(where, "declared", declared, Distribution, "a Distribution")
    _check_type(where, "expected", expected, Distribution, "a Distribution")
    _check_positive(where, "rel_tol", rel_tol)
    problems = _declaration_problems(declared, expected, rel_tol)
    if problems:
        raise NotFollowing(f"declared {declared.describe()}, expected {expected.describe()}: {'; '.join(problems)}")


def _declaration_problems(declared: Distribution, expected: Distribution, rel_tol: float) -> list[str]:
    if declared.family != expected.family:
        return [f"family {declared.family} != {expected.family}"]
    std = max(declared.std, expected.std)  # locations may be 0: compared relative to the spread too
    checks = [
        ("support low", declared.support[0], expected.support[0], std),
        ("support high", declared.support[1], expected.support[1], std),
        ("mean", declared.mean, expected.mean, std),
        ("variance", declared.variance, expected.variance, 0.0),  # >= 0: relative to itself
    ]
    problems = [f"{name} {a:.17g} != {b:.17g}" for name, a, b, scale in checks if not _close(a, b, rel_tol, scale)]
    if declared.family == "structured" and declared.describe() != expected.describe():
        problems.append(f"{declared.describe()} != {expected.describe()}")
    return problems


def _close(a: float, b: float, rel_tol: float, scale: float) -> bool:
    """Equal within ``rel_tol`` of the larger of |a|, |b| and ``scale`` (infinities: exactly)."""
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=rel_tol * scale)


def _std_problems(values: np.ndarray, std: float, z_crit: float = Z_CRIT) -> list[str]:
    """Values vs. the law 'mean 0, standard deviation ``std``', any family.

    Mean: z = x̄ / (std / √n), N(0, 1) under the law (CLT). Variance: v = mean(x²)
    has expectation std² and standard error sd(x²) / √n, estimated from the
    values themselves (no family assumed; Wald z, N(0, 1) for large n). Both
    fail at |z| > ``z_crit``; at n = 20 000 a variance off by more than about
    5% (normal) fails.
    """
    x = values.reshape(-1).astype(np.float64)
    n = x.size
    mean_z = float(x.mean()) / (std / math.sqrt(n))
    sq = x * x
    se = float(sq.std()) / math.sqrt(n)
    var_z = (float(sq.mean()) - std**2) / se if se > 0 else math.inf
    problems = []
    if not abs(mean_z) <= z_crit:
        problems.append(f"mean: z = {mean_z:+.2f} against 0 (|z| <= {z_crit})")
    if not abs(var_z) <= z_crit:
        ratio = float(sq.mean()) / std**2
        problems.append(f"variance: ratio {ratio:.4f} to std² = {std**2:.6g}, z = {var_z:+.2f} (|z| <= {z_crit})")
    return problems


# ------------------------------------------------------------------ independent laws

LawValue = Distribution | float
"""What a law states for one tensor: a whole distribution, or (``std=``) only its std with mean 0."""


@dataclass(frozen=True)
class _Law:
    """A law stated independently of the initializer under test, evaluated per (shape, fans).

    ``std_only``: the law gives a standard deviation (mean 0, any family), else a Distribution.
    """

    label: str
    evaluate: Callable[[tuple[int, ...], Fans], object]
    std_only: bool = False

    def at(self, shape: tuple[int, ...], f: Fans) -> LawValue:
        """The law for one tensor; a malformed law is the caller's error (InvalidArgument)."""
        value = self.evaluate(shape, f)
        if self.std_only and _positive(value):
            return float(value)  # type: ignore[arg-type]
        if not self.std_only and isinstance(value, Distribution):
            return value
        kind = "finite number > 0" if self.std_only else "Distribution"
        raise InvalidArgument(f"check_initializer(): {self.label} gave {value!r} for {f}, not a {kind}")


def _positive(value: object) -> bool:
    """A finite real number > 0 (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _laws(
    expected: Callable[[Fans], Distribution] | None,
    std: Callable[[Fans], float] | None,
    limit: Callable[[Fans], float] | None,
    reference: Initializer | None,
) -> list[_Law]:
    """The independent laws the caller stated (validated)."""
    laws = []
    for name, fn in (("expected", expected), ("std", std), ("limit", limit)):
        if fn is not None and not callable(fn):
            raise InvalidArgument(f"check_initializer(): {name} must be a function of the fans, got {name}={fn!r}")
    if expected is not None:
        laws.append(_Law("expected(fans)", lambda shape, f: expected(f)))
    if std is not None:
        laws.append(_Law("std(fans)", lambda shape, f: std(f), std_only=True))
    if limit is not None:
        laws.append(_Law("limit(fans)", lambda shape, f: _uniform(limit(f))))
    if reference is not None:
        _check_type("check_initializer()", "reference", reference, Initializer, "an Initializer")
        laws.append(_Law(f"reference {reference!r}", reference.declared))
    return laws


def _uniform(limit: object) -> Uniform:
    """U(−limit, +limit)."""
    if not _positive(limit):
        raise InvalidArgument(f"check_initializer(): limit(fans) gave {limit!r}, not a finite number > 0")
    return Uniform(-float(limit), float(limit))  # type: ignore[arg-type]


def _law_problems(law: _Law, tensor: _Tensor, rel_tol: float) -> list[str]:
    """The declaration (on the real shape) and the values vs. one law."""
    problems = []
    stated = law.at(tensor.shape, tensor.fans)
    if isinstance(stated, float):
        problems += [f"declaration: {p}" for p in _declared_std_problems(tensor.declared, stated, rel_tol)]
    else:
        problems += [f"declaration: {p}" for p in _declaration_problems(tensor.declared, stated, rel_tol)]
    drawn = law.at(tensor.drawn_shape, tensor.drawn_fans)
    if isinstance(drawn, float):
        problems += [f"values: {p}" for p in _std_problems(tensor.values, drawn)]
    else:
        problems += [f"values: {p}" for p in _failures(assert_follows, tensor.values, drawn)]
    return [f"vs {law.label} = {_describe(stated)}: {p}" for p in problems]


def _declared_std_problems(declared: Distribution, std: float, rel_tol: float) -> list[str]:
    problems = []
    if not _close(declared.mean, 0.0, rel_tol, std):
        problems.append(f"mean {declared.mean:.17g} != 0")
    if not _close(declared.std, std, rel_tol, std):
        problems.append(f"std {declared.std:.17g} != {std:.17g}")
    return problems


def _describe(law: LawValue) -> str:
    return f"mean 0, std {law:.6g}" if isinstance(law, float) else law.describe()


def _failures(check: Callable[..., None], *args: Any) -> list[str]:
    """The message of the NotFollowing ``check(*args)`` raises, if any."""
    try:
        check(*args)
    except NotFollowing as exc:
        return [str(exc)]
    return []


# ------------------------------------------------------------------ the battery


@dataclass(frozen=True)
class _Tensor:
    """One example: the Hypothesis-chosen shape and fans, and the values drawn for it.

    Random initializers are drawn as SAMPLE values with the shape's fans
    (``drawn_shape = (SAMPLE,)``); structured ones as a real tensor whose in/out
    are capped at MAX_STRUCTURED_SIDE.
    """

    shape: tuple[int, ...]
    fans: Fans
    declared: Distribution
    seed: int
    drawn_shape: tuple[int, ...]
    drawn_fans: Fans
    values: np.ndarray


def _draw(init: Initializer, shape: tuple[int, ...], seed: int) -> _Tensor:
    f = compute_fans(shape)
    declared = init.declared(shape)
    if declared.family == "structured":
        small = (*shape[:-2], *(min(d, MAX_STRUCTURED_SIDE) for d in shape[-2:]))
        values = init(small, BlockStream(seed, PATH))
        return _Tensor(shape, f, declared, seed, small, compute_fans(small), values)
    return _Tensor(shape, f, declared, seed, (SAMPLE,), f, sample_values(init, f, SAMPLE, seed))


def _seed(shape: tuple[int, ...]) -> int:
    """The seed of one example, a function of its shape: Hypothesis then shrinks the shape alone."""
    return zlib.crc32(repr(tuple(shape)).encode()) % (2**32 - 1)


def _self_problems(init: Initializer, t: _Tensor) -> list[str]:
    """Self-consistency: values follow the declaration, same seed = same bytes, another seed differs;
    a random initializer declares the same law for the real shape and for (SAMPLE,) with its fans
    (layers pass a kernel's fans to its bias initializer: the fans, not the shape, set the law)."""
    declared = init.declared(t.drawn_shape, t.drawn_fans)
    problems = _failures(assert_follows, t.values, declared)
    if t.declared.family != "structured":  # structured ones are drawn on a capped real shape instead
        problems += [f"fans only: {p}" for p in _declaration_problems(declared, t.declared, DECLARATION_RTOL)]
    again = init(t.drawn_shape, BlockStream(t.seed, PATH), t.values.dtype, fans=t.drawn_fans)
    if again.tobytes() != t.values.tobytes():
        problems.append("the same seed gave different bytes")
    if declared.is_random and declared.family != "structured":  # a 1 x 1 orthogonal matrix is ±gain
        other = init(t.drawn_shape, BlockStream(t.seed + 1, PATH), t.values.dtype, fans=t.drawn_fans)
        if np.array_equal(t.values, other):
            problems.append("another seed gave identical values")
    return [f"self-consistency: {p}" for p in problems]


def _battery_settings(given_settings: hypothesis.settings | None, max_examples: int | None) -> hypothesis.settings:
    """The caller's settings as given, or the active profile made reproducible (see :func:`check_initializer`)."""
    if given_settings is None:
        phases = [p for p in hypothesis.settings().phases if p is not hypothesis.Phase.explain]
        given_settings = hypothesis.settings(derandomize=True, database=None, deadline=None, phases=phases)
    return given_settings if max_examples is None else hypothesis.settings(given_settings, max_examples=max_examples)


def check_initializer(
    init: Initializer,
    max_examples: int | None = None,
    max_fan: int | None = None,
    *,
    expected: Callable[[Fans], Distribution] | None = None,
    std: Callable[[Fans], float] | None = None,
    limit: Callable[[Fans], float] | None = None,
    reference: Initializer | None = None,
    shapes: st.SearchStrategy[tuple[int, ...]] | None = None,
    settings: hypothesis.settings | None = None,
    rel_tol: float = DECLARATION_RTOL,
) -> None:
    """Property battery for any initializer, built-in or custom; raises :class:`NotFollowing`.

    Always (**self-consistency only**): ``from_config(get_config())`` rebuilds an
    equal initializer, and over Hypothesis-chosen shapes — ``shapes``, default
    dense ``(fan_in, fan_out)`` with both in 1..max_fan (4096) — :data:`SAMPLE`
    values drawn with the shape's fans follow the initializer's *own*
    declaration, the same seed gives the same bytes, another seed other values,
    and the declaration depends on the fans only (the real shape and
    ``(SAMPLE,)`` with its fans declare the same law: layers hand a kernel's fans
    to its bias initializer). Structured initializers are drawn on the real
    shape, in/out capped at 256, and checked exactly. A wrong formula declared
    and drawn consistently passes all of this.

    With an **independent law** (any of these, each checked) it also proves the
    initializer implements that law: the declaration for the real shape must
    state it — :func:`assert_same_distribution`, exact up to float rounding
    (``rel_tol``), so any wrong factor or fan fails — and the drawn values must
    follow it statistically (|z| <= 5 on 20 000 values: a variance off by more
    than about 5% fails even if the declaration were right):

    * ``expected(fans) -> Distribution``: the whole law, e.g.
      ``lambda f: Normal(0.0, sqrt(2 / f.fan_in))`` (family, support, mean,
      variance; values: bounds, mean, variance, KS fit);
    * ``std(fans) -> float``: mean 0 and that standard deviation, any family
      (values: mean and variance tests with no family assumed);
    * ``limit(fans) -> float``: U(−limit, +limit);
    * ``reference``: another initializer's declaration for the same shape, e.g.
      ``get_initializer("he_normal")`` (for structured ones, on the real shape).

    Each example's seed is a function of its shape, so Hypothesis shrinks the
    shape alone; a failure names the check, the law and the numbers.

    Hypothesis settings: ``settings``, if given, is used as is. Otherwise the
    active profile (its ``max_examples``, health checks, phases...) with
    ``derandomize=True, database=None`` (the same examples on every run: CI
    stays reproducible and writes no ``.hypothesis`` folder), ``deadline=None``
    (an example samples 20 000 values; its time is not the property) and the
    ``explain`` phase off (it re-runs a failing example hundreds of times).
    ``max_examples``, if given, overrides either. No health check is suppressed.
    """
    where = "check_initializer()"
    _check_type(where, "init", init, Initializer, "an Initializer")
    if max_examples is not None:
        _check_int(where, "max_examples", max_examples, 1)
    if max_fan is not None:
        _check_int(where, "max_fan", max_fan, 1)
        if shapes is not None:
            raise InvalidArgument(f"{where}: give max_fan or shapes, not both (max_fan bounds the default shapes)")
    if shapes is not None:
        _check_type(where, "shapes", shapes, st.SearchStrategy, "a Hypothesis strategy of shapes")
    if settings is not None:
        _check_type(where, "settings", settings, hypothesis.settings, "a hypothesis.settings")
    _check_positive(where, "rel_tol", rel_tol)
    laws = _laws(expected, std, limit, reference)

    rebuilt = type(init).from_config(init.get_config())
    if rebuilt != init:
        raise NotFollowing(f"config does not round-trip: {init.get_config()} -> {rebuilt!r}")
    side = st.integers(1, max_fan or 4096)
    misuse: list[InvalidArgument] = []  # a malformed law is the caller's error: reported at once, not shrunk

    @_battery_settings(settings, max_examples)
    @given(shapes if shapes is not None else st.tuples(side, side))
    def battery(shape: tuple[int, ...]) -> None:
        if misuse:
            return
        tensor = _draw(init, tuple(shape), _seed(shape))
        problems = _self_problems(init, tensor)
        try:
            for law in laws:
                problems += _law_problems(law, tensor, rel_tol)
        except InvalidArgument as exc:
            misuse.append(exc)
            return
        if problems:  # one raise site: Hypothesis reports one bug, not one per message
            raise NotFollowing(f"{init!r} at shape {tensor.shape} ({tensor.fans}):\n  " + "\n  ".join(problems))

    battery()
    if misuse:
        raise misuse[0]


def structured_checks(init: Initializer, shape: tuple[int, ...], seed: int) -> None:
    """Exact checks of a structured initializer on a real shape, plus reproducibility (self-consistency)."""
    _check_type("structured_checks()", "init", init, Initializer, "an Initializer")
    _check_int("structured_checks()", "seed", seed, 0)
    values = init(shape, BlockStream(seed, PATH))
    assert_follows(values, init, shape)
    if values.tobytes() != init(shape, BlockStream(seed, PATH)).tobytes():
        raise NotFollowing("the same seed gave different bytes")


def _dense_layer(activations: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"type": st.just("dense"), "units": st.integers(1, 64)},
        optional={
            "activation": st.sampled_from(activations),
            "weights": st.one_of(st.just("auto"), initializer_configs()),
            "bias": st.sampled_from(["zeros", "ones", {"name": "constant", "value": 0.1}]),
            "use_bias": st.booleans(),
        },
    )


def specs(max_layers: int = 5) -> st.SearchStrategy[dict[str, Any]]:
    """Whole valid spec documents: dense stacks over a vector, conv stacks over an image,
    embedding -> conv1d -> pooling/normalization -> dense over token ids, graphs of dense and
    merge layers (add, subtract, multiply, concat) over a vector, graphs over a sequence (recurrent,
    attention, positional embedding, dense, layer norm, residual adds, a reusable block), and
    convolution stacks with groups, dilation and transposed convolutions."""
    from netspec.nn.activations import ACTIVATIONS

    _check_int("specs()", "max_layers", max_layers, 1)
    acts = sorted(ACTIVATIONS.names())
    mlp = st.fixed_dictionaries(
        {
            "netspec": st.just(1),
            "input": st.lists(st.integers(1, 32), min_size=1, max_size=1),
            "layers": st.lists(_dense_layer(acts), min_size=1, max_size=max_layers),
        },
        optional={
            "seed": st.integers(0, 2**32 - 1),  # rng: legacy (one RandomState) takes seeds below 2^32
            "rng": st.sampled_from(["block", "legacy"]),
            "dtype": st.sampled_from(["float32", "float64"]),
            "name": st.just("generated"),
        },
    )
    conv_layer = st.fixed_dictionaries(
        {"type": st.just("conv2d"), "filters": st.integers(1, 8), "kernel": st.integers(1, 3),
         "padding": st.just("same")},  # 'valid' could shrink a small input below the next kernel
        optional={
            "stride": st.integers(1, 2),
            "activation": st.sampled_from(acts),
            "weights": st.one_of(st.just("auto"), initializer_configs()),
        },
    )
    cnn = st.fixed_dictionaries(
        {
            "netspec": st.just(1),
            "input": st.tuples(st.integers(4, 12), st.integers(4, 12), st.integers(1, 3)).map(list),
            "layers": st.lists(conv_layer, min_size=1, max_size=min(3, max_layers)).map(
                lambda ls: [*ls, {"type": "flatten"}, {"type": "dense", "units": 3}]
            ),
        },
        optional={"seed": st.integers(0, 1000)},
    )
    seq = st.fixed_dictionaries(
        {
            "netspec": st.just(1),
            "input": st.integers(4, 32).map(lambda n: [n]),
            "layers": st.tuples(
                st.fixed_dictionaries({"type": st.just("embedding"), "vocab": st.integers(2, 500),
                                       "dim": st.integers(1, 16)}),
                st.fixed_dictionaries({"type": st.just("conv1d"), "filters": st.integers(1, 8),
                                       "kernel": st.integers(1, 3), "padding": st.just("same")},
                                      optional={"activation": st.sampled_from(acts)}),
                st.sampled_from([{"type": "max_pool1d", "pool": 2}, {"type": "avg_pool1d", "pool": 2},
                                 {"type": "layer_norm"}, {"type": "batch_norm"}]),
            ).map(lambda ls: [*ls, {"type": "flatten"}, {"type": "dropout", "rate": 0.1},
                              {"type": "dense", "units": 2, "activation": "softmax"}]),
        },
        optional={"seed": st.integers(0, 1000), "rng": st.sampled_from(["block", "legacy"])},
    )  # fmt: skip
    return st.one_of(mlp, cnn, seq, _graph_specs(acts, max_layers), _sequence_specs(max_layers),
                     _conv_specs(max_layers))


@st.composite
def _graph_specs(draw: st.DrawFn, acts: list[str], max_layers: int) -> dict[str, Any]:
    """A graph over a vector input: dense layers taking any earlier output, and merges (add, subtract,
    multiply of equal or broadcastable widths; concat of any) of earlier outputs, then a dense head."""
    widths = {"input": draw(st.integers(1, 16))}
    layers: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, max_layers))):
        name = f"n{i}"
        kind = draw(st.sampled_from(["dense", "add", "subtract", "multiply", "concat"]))
        first = draw(st.sampled_from(sorted(widths)))
        if kind == "dense":
            units = draw(st.integers(1, 16))
            layer: dict[str, Any] = {"type": "dense", "name": name, "units": units, "inputs": first}
            if draw(st.booleans()):
                layer["activation"] = draw(st.sampled_from(acts))
            widths[name] = units
        elif kind == "concat":
            second = draw(st.sampled_from(sorted(widths)))
            layer = {"type": "concat", "name": name, "inputs": [first, second]}
            widths[name] = widths[first] + widths[second]
        else:
            fits = sorted(n for n, w in widths.items() if w in (widths[first], 1) or widths[first] == 1)
            second = draw(st.sampled_from(fits))
            layer = {"type": kind, "name": name, "inputs": [first, second]}
            widths[name] = max(widths[first], widths[second])
        layers.append(layer)
    layers.append({"type": "dense", "name": "head", "units": draw(st.integers(1, 8)), "inputs": layers[-1]["name"]})
    return {"netspec": 1, "input": [widths["input"]], "layers": layers, "seed": draw(st.integers(0, 1000))}


@st.composite
def _sequence_specs(draw: st.DrawFn, max_layers: int) -> dict[str, Any]:
    """A graph over a (sequence, features) input: recurrent layers (returning sequences), self- and
    cross-attention, positional embedding, dense, layer norm, residual adds of equal widths and
    instances of a residual attention block; then global average pooling and a dense head."""
    steps = draw(st.integers(1, 6))
    widths = {"input": draw(st.integers(1, 8))}
    layers: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, max_layers))):
        name, first = f"s{i}", draw(st.sampled_from(sorted(widths)))
        kind = draw(st.sampled_from(["simple_rnn", "gru", "lstm", "attention", "positional_embedding", "dense",
                                     "layer_norm", "add", "block"]))  # fmt: skip
        layer: dict[str, Any] = {"name": name, "inputs": first}
        width = widths[first]
        if kind in ("simple_rnn", "gru", "lstm"):
            units = draw(st.integers(1, 6))
            bidirectional = draw(st.booleans())
            layer |= {"type": kind, "units": units, "return_sequences": True, "bidirectional": bidirectional,
                      "convention": draw(st.sampled_from(["keras", "flax", "torch"]))}  # fmt: skip
            width = units * (2 if bidirectional else 1)
        elif kind == "attention":
            context = draw(st.sampled_from(sorted(widths)))
            layer |= {"type": "multi_head_attention", "heads": draw(st.integers(1, 3)),
                      "key_dim": draw(st.integers(1, 4)), "causal": draw(st.booleans()),
                      "convention": draw(st.sampled_from(["keras", "torch"])),
                      "inputs": [first, context] if context != first else first}  # fmt: skip
        elif kind == "positional_embedding":
            layer |= {"type": kind, "length": steps + draw(st.integers(0, 3))}
        elif kind == "dense":
            width = draw(st.integers(1, 8))
            layer |= {"type": "dense", "units": width}
        elif kind == "layer_norm":
            layer |= {"type": "layer_norm"}
        elif kind == "add":
            second = draw(st.sampled_from(sorted(n for n, w in widths.items() if w == width)))
            layer |= {"type": "add", "inputs": [first, second]}
        else:
            layer = {"block": "residual_attention", "name": name, "inputs": first, "heads": draw(st.integers(1, 2))}
        layers.append(layer)
        widths[name] = width
    layers += [{"type": "global_avg_pool", "name": "pool", "inputs": layers[-1]["name"]},
               {"type": "dense", "name": "head", "units": draw(st.integers(1, 4))}]  # fmt: skip
    block = {"params": {"heads": {"type": "integer"}}, "layers": [
        {"type": "multi_head_attention", "name": "attention", "heads": "$heads", "key_dim": 2},
        {"type": "add", "name": "sum", "inputs": ["input", "attention"]},
        {"type": "layer_norm", "name": "norm"},
    ]}  # fmt: skip
    return {"netspec": 1, "input": [steps, widths["input"]], "blocks": {"residual_attention": block},
            "layers": layers, "seed": draw(st.integers(0, 1000))}  # fmt: skip


@st.composite
def _conv_specs(draw: st.DrawFn, max_layers: int) -> dict[str, Any]:
    """Channels-last convolutions over a 1-D or 2-D input: groups dividing the channels, dilation with
    'same' or explicit [before, after] padding (at least k' - 1 in all, so no axis shrinks below 1),
    transposed convolutions ('valid', 'same' or a symmetric crop below half the kernel); then global
    average pooling and a dense head."""
    rank = draw(st.integers(1, 2))
    shape = [*[draw(st.integers(3, 8)) for _ in range(rank)], draw(st.sampled_from([1, 2, 4]))]
    channels = shape[-1]
    layers: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, min(4, max_layers)))):
        groups = draw(st.sampled_from([g for g in (1, 2, 4) if channels % g == 0]))
        filters = groups * draw(st.integers(1, 3))
        layer: dict[str, Any] = {"name": f"c{i}", "filters": filters, "kernel": draw(st.integers(1, 3)),
                                 "groups": groups}  # fmt: skip
        if draw(st.booleans()):
            dilation = draw(st.integers(1, 2))
            effective = dilation * (layer["kernel"] - 1) + 1
            pads = [[b, effective - 1 - b + draw(st.integers(0, 1))]
                    for b in (draw(st.integers(0, effective - 1)) for _ in range(rank))]  # fmt: skip
            layer |= {"type": f"conv{rank}d", "dilation": dilation, "stride": draw(st.integers(1, 2)),
                      "padding": draw(st.sampled_from([pads, "same"]))}  # fmt: skip
        else:
            stride = draw(st.integers(1, 2))
            layer |= {"type": f"conv_transpose{rank}d", "stride": stride,
                      "padding": draw(st.sampled_from(["valid", "same", (layer["kernel"] - 1) // 2])),
                      "transpose_fans": draw(st.sampled_from(["netspec", "torch"]))}  # fmt: skip
        if draw(st.booleans()):
            layer["activation"] = draw(st.sampled_from(["relu", "tanh", "linear"]))
        layers.append(layer)
        channels = filters
    layers += [{"type": "global_avg_pool", "name": "pool"}, {"type": "dense", "name": "head", "units": 2}]
    return {"netspec": 1, "input": shape, "layers": layers, "seed": draw(st.integers(0, 1000))}
