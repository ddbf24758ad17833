"""``netspec verify``: do the weights follow what their spec declares?

For every parameter tensor, against the distribution its initializer declares
(:mod:`netspec.init.distributions`):

* **reproduction** (exact): the tensor equals the one the spec and its seed
  produce, byte for byte (skipped with ``--statistical-only``);
* **bounds** (exact): every value lies in the declared support;
* **mean**: ``z = (xbar - mu) / sqrt(sigma^2 / n)``, N(0, 1) under the null;
* **variance**: ``z = (v - sigma^2) / sqrt((mu4 - sigma^4) / n)`` with
  ``v = mean((x - mu)^2)``, N(0, 1) under the null (see :mod:`netspec.check.checks`);
* **fit**: Kolmogorov-Smirnov against the declared CDF (SciPy; at most
  :data:`KS_MAX` values, a systematic subsample of larger tensors);
* constant, identity, dirac: exact values; orthogonal: ``Q^T Q = gain^2 I``.

Family-wise false-alarm rate: the statistical tests (mean, variance, fit of
every random tensor; m in all) each run at ``alpha / m`` (Bonferroni), so the
probability that correct weights fail anywhere is at most ``alpha``.

Power: per tensor, the smallest variance ratio ``r`` the variance test detects
with 80% probability at that n is ``(1 + z_c k) / (1 - z_0.8 k)``,
``k = sqrt((mu4 / sigma^4 - 1) / n)``. A tensor that passes but cannot detect
a factor of :data:`POWER_RATIO` is reported *inconclusive*, not passed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from netspec.check.checks import check_bounds, check_structured, moments, ratio_standard_error
from netspec.init.distributions import Constant, Distribution, Structured
from netspec.nn.network import Network

KS_MAX = 1 << 20
POWER = 0.8
POWER_RATIO = 2.0


@dataclass
class TensorReport:
    name: str
    n: int
    declared: str
    family: str
    verdict: str = "pass"
    bounds_ok: bool | None = None
    reproduces: bool | None = None
    mean_z: float | None = None
    variance_ratio: float | None = None
    variance_interval: tuple[float, float] | None = None
    fit_p: float | None = None
    detectable_ratio: float | None = None
    exact: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass
class Report:
    spec: str
    alpha: float
    per_test_alpha: float
    z_crit: float
    tensors: list[TensorReport]

    @property
    def passed(self) -> bool:
        return all(t.verdict != "FAIL" for t in self.tensors)

    def as_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "alpha": self.alpha,
            "per_test_alpha": self.per_test_alpha,
            "z_crit": self.z_crit,
            "passed": self.passed,
            "tensors": [asdict(t) for t in self.tensors],
        }


def detectable_ratio(dist: Distribution, n: int, z_crit: float) -> float:
    """Smallest variance ratio detected with probability POWER at n values (inf if none)."""
    k = ratio_standard_error(dist, n)
    z_power = NormalDist().inv_cdf(POWER)
    return math.inf if z_power * k >= 1 else (1 + z_crit * k) / (1 - z_power * k)


def _fit_pvalue(values: np.ndarray, dist: Distribution) -> float | None:
    try:
        from netspec.check.checks import ks_pvalue
    except ImportError:  # pragma: no cover
        return None
    flat = values.reshape(-1)
    if flat.size > KS_MAX:
        flat = flat[:: math.ceil(flat.size / KS_MAX)]
    try:
        return ks_pvalue(flat, dist)
    except ImportError:
        return None


def _random_report(rep: TensorReport, values: np.ndarray, dist: Distribution, z_crit: float, a: float) -> None:
    bounds = check_bounds(values, dist)
    rep.bounds_ok = bounds.ok
    if not bounds.ok:
        rep.problems.append(f"values {bounds.detail.replace(' within ', ' leave the support ')}")
    m = moments(values, dist)
    rep.mean_z, rep.variance_ratio = m.mean_z, m.variance_ratio
    if abs(m.mean_z) > z_crit:
        rep.problems.append(f"mean z = {m.mean_z:+.2f} beyond ±{z_crit:.2f}")
    rep.variance_interval = (1 - z_crit * m.ratio_se, 1 + z_crit * m.ratio_se)
    if abs(m.variance_z) > z_crit:
        rep.problems.append(f"variance ratio {m.variance_ratio:.4f} outside [{rep.variance_interval[0]:.4f}, "
                            f"{rep.variance_interval[1]:.4f}]")  # fmt: skip
    rep.fit_p = _fit_pvalue(values, dist)
    if rep.fit_p is not None and rep.fit_p < a:
        rep.problems.append(f"KS p = {rep.fit_p:.3g} below {a:.3g}")
    rep.detectable_ratio = detectable_ratio(dist, values.size, z_crit)


def verify_network(net: Network, params: dict[str, np.ndarray], alpha: float = 1e-3, reproduce: bool = True) -> Report:
    """Check every parameter of ``net`` in ``params`` (see the module doc)."""
    specs = list(net.parameters())
    declared = {name: p.initializer.declared(p.shape, p.fans) for name, p in specs}
    random = [n for n, d in declared.items() if d.is_random and not isinstance(d, Structured)]
    m = max(1, 3 * len(random))
    a = alpha / m
    z_crit = NormalDist().inv_cdf(1 - a / 2)
    expected = net.initialize() if reproduce else {}
    tensors = []
    for name, _p in specs:
        dist = declared[name]
        values = np.asarray(params[name])
        rep = TensorReport(name, int(values.size), dist.describe(), dist.family)
        if reproduce:
            rep.reproduces = values.dtype == expected[name].dtype and values.tobytes() == expected[name].tobytes()
            if not rep.reproduces:
                rep.problems.append(f"not the bytes seed {net.seed} produces")
        if isinstance(dist, Constant):
            bad = int(np.count_nonzero(values != values.dtype.type(dist.value)))
            rep.exact = f"{bad} values differ from {dist.value:g}"
            if bad:
                rep.problems.append(rep.exact)
        elif isinstance(dist, Structured):
            result = check_structured(values, dist)
            rep.exact = result.detail
            if not result.ok:
                rep.problems.append(result.detail)
        else:
            _random_report(rep, values, dist, z_crit, a)
        if rep.problems:
            rep.verdict = "FAIL"
        elif rep.detectable_ratio is not None and rep.detectable_ratio > POWER_RATIO and not rep.reproduces:
            rep.verdict = "inconclusive"
        tensors.append(rep)
    return Report(net.source, alpha, a, z_crit, tensors)


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def render(report: Report) -> str:
    header = ("tensor", "n", "declared", "bounds", "mean z", "var ratio [accept]", "KS p", "detects", "verdict")
    rows = []
    for t in report.tensors:
        interval = (f"{t.variance_ratio:.3f} [{t.variance_interval[0]:.2f}, {t.variance_interval[1]:.2f}]"
                    if t.variance_ratio is not None and t.variance_interval else (t.exact or "-"))  # fmt: skip
        bounds = "-" if t.bounds_ok is None else ("ok" if t.bounds_ok else "OUT")
        detects = "-" if t.detectable_ratio is None else f"x{t.detectable_ratio:.2f}"
        verdict = t.verdict + (" (reproduces)" if t.reproduces else "")
        rows.append((t.name, f"{t.n:,}", t.declared, bounds, _num(t.mean_z, "+.2f"), interval, _num(t.fit_p, ".3g"),
                     detects, verdict))  # fmt: skip
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    for t in report.tensors:
        lines += [f"{t.name}: {p}" for p in t.problems]
    failed = sum(t.verdict == "FAIL" for t in report.tensors)
    inconclusive = sum(t.verdict == "inconclusive" for t in report.tensors)
    lines.append(
        f"{len(report.tensors) - failed - inconclusive} passed, {failed} failed, {inconclusive} inconclusive "
        f"(family-wise alpha {report.alpha:g}, per test {report.per_test_alpha:.2g}, |z| <= {report.z_crit:.2f}; "
        f"'detects': smallest variance ratio found with {POWER:.0%} power)"
    )
    return "\n".join(lines)
