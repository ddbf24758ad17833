"""``netspec verify``: do the weights follow what their spec declares?

For every parameter tensor, against the distribution its initializer declares
(:mod:`netspec.init.distributions`), through the same checks as the test kit
(:func:`netspec.check.checks.check_values`):

* **reproduction** (exact): the tensor equals the one the spec and its seed
  produce, byte for byte (skipped with ``--statistical-only``); expected
  tensors are regenerated one at a time (:meth:`Network.generate`);
* **bounds** (exact): every value lies in the declared support;
* **mean** and **variance** about the declared mean (``v = mean((x - mu)^2)``),
  valid at every size n: for N(mu, sigma^2) the exact tests
  ``(xbar - mu) / (sigma / sqrt n)`` ~ N(0, 1) and ``n v / sigma^2`` ~ chi^2_n;
  for bounded distributions (uniform, truncated normal) Bernstein's inequality
  on ``xbar`` and on ``v`` (see :mod:`netspec.check.checks`);
* **fit**: the Kolmogorov-Smirnov distance D to the declared CDF, p-value
  ``2 exp(-2 n D^2)`` (Massart's DKW bound, valid at every n; at most
  :data:`KS_MAX` values, a systematic subsample of larger tensors). The CDFs
  use ``scipy.special``: without SciPy the fit test is reported *skipped*,
  never passed;
* constant, identity, dirac: exact values; orthogonal: ``Q^T Q = gain^2 I`` up
  to the rounding-error bound of :func:`~netspec.check.checks.orthogonality_tolerance`.

Family-wise false-alarm rate: the statistical tests (mean, variance, fit of
every random tensor; m in all) each run at ``alpha / m`` (Bonferroni), and
each has false-alarm probability at most its level at every n, so the
probability that correct weights fail anywhere is at most ``alpha``.

Power: per tensor, the smallest variance ratio ``r`` the variance test detects
with 80% probability at that n (``detects``). A tensor that passes but cannot
detect a factor of :data:`POWER_RATIO` is *inconclusive* (too small to judge),
unless it reproduces its seed's bytes exactly. ``Report.ok(strict=True)``
also fails on inconclusive tensors and on skipped tests.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from netspec.check.checks import KS_MAX, POWER, SKIPPED_FIT, CheckResult, check_values, detectable_ratio
from netspec.init.distributions import Distribution
from netspec.nn.network import Network

if TYPE_CHECKING:
    from netspec.check.checks import Accumulator

__all__ = ["KS_MAX", "POWER", "POWER_RATIO", "Report", "TensorReport", "check_tensor", "render", "verify_network"]

POWER_RATIO = 2.0
STATISTICAL = ("bounds", "mean", "variance", "fit")
"""Names of the checks shown in their own columns; any other check is an exact one (shown as ``exact``)."""


@dataclass
class TensorReport:
    """One tensor's checks. ``tests`` maps each check's name to pass / FAIL / skipped."""

    name: str
    n: int
    declared: str
    family: str
    verdict: str = "pass"
    bounds_ok: bool | None = None
    reproduces: bool | None = None
    mean_z: float | None = None
    mean_interval: tuple[float, float] | None = None
    variance_ratio: float | None = None
    variance_interval: tuple[float, float] | None = None
    fit_p: float | None = None
    detectable_ratio: float | None = None
    method: str = ""
    exact: str = ""
    tests: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> list[str]:
        """Checks that could not run (e.g. the fit test without SciPy)."""
        return [name for name, status in self.tests.items() if status == "skipped"]


@dataclass
class Report:
    spec: str
    alpha: float
    per_test_alpha: float
    z_crit: float
    tensors: list[TensorReport]
    stream: str = ""
    """The stream the exact reproduction check regenerated with (empty: no reproduction check)."""

    @property
    def passed(self) -> bool:
        """No tensor failed (inconclusive tensors and skipped tests do not fail; see :meth:`ok`)."""
        return all(t.verdict != "FAIL" for t in self.tensors)

    @property
    def inconclusive(self) -> list[str]:
        return [t.name for t in self.tensors if t.verdict == "inconclusive"]

    @property
    def skipped(self) -> dict[str, list[str]]:
        """Skipped check -> the tensors it could not run on."""
        out: dict[str, list[str]] = {}
        for t in self.tensors:
            for name in t.skipped:
                out.setdefault(name, []).append(t.name)
        return out

    def ok(self, strict: bool = False) -> bool:
        """:attr:`passed`; with ``strict`` also no inconclusive tensor and no skipped test."""
        return self.passed and not (strict and (self.inconclusive or self.skipped))

    def summary(self) -> str:
        """One line: counts, why tensors are inconclusive, which tests were skipped, the alpha used."""
        return summary_line(self)

    def as_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "alpha": self.alpha,
            "per_test_alpha": self.per_test_alpha,
            "z_crit": self.z_crit,
            "passed": self.passed,
            "passed_strict": self.ok(strict=True),
            "inconclusive": self.inconclusive,
            "skipped": self.skipped,
            "summary": self.summary(),
            "stream": self.stream,
            "tensors": [_finite({**asdict(t), "skipped": t.skipped}) for t in self.tensors],
        }


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    """JSON has no infinity: an unbounded number (a detectable ratio no size can reach) becomes null."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


def verify_spec(
    net: Network,
    weights: str | None = None,
    alpha: float = 1e-3,
    statistical_only: bool = False,
    digests: dict[str, str] | None = None,
) -> Report:
    """Verify a weights file against ``net``, or the weights ``net`` builds in memory.

    The rule for the exact reproduction check: it runs for a file (unless ``statistical_only``); for
    weights built in memory it would compare the seed's bytes with themselves, so only the statistics run.

    Raises:
        WeightsError: the file is missing, unreadable or does not match the spec.

    ``digests``, if given, is filled with each tensor's SHA-256 (to compare with a lock file).
    """
    from netspec.export.files import exported_layout, load_weights
    from netspec.importers.hf_layout import reader_for
    from netspec.io import zarr_store
    from netspec.io.weights import TensorReader, folder_index, size_limit

    reader: Reader | None = None
    zarr = weights is not None and zarr_store.is_store(weights)
    hf = reader_for(net, weights) if weights is not None and not zarr and os.path.exists(weights) else None
    if weights is not None and zarr:
        reader = zarr_store.ZarrReader(weights)
    elif hf is not None:  # a Hugging Face checkpoint: transformers' names and layouts, undone run by run
        reader, net = hf
    elif weights is not None and os.path.isfile(weights) and exported_layout(weights):
        reader = ArrayReader(load_weights(net, weights))  # a framework's layouts, undone in memory
    elif weights is not None:
        if not os.path.exists(weights):
            from netspec.errors import WeightsError

            raise WeightsError(f"{weights}: no such file")
        reader = TensorReader(weights, size_limit(net))
    recorded = folder_index(reader.path)[1] if isinstance(reader, TensorReader) and os.path.isdir(reader.path) else {}
    seen = digests if digests is not None else {}
    try:
        if reader is not None:
            reader.check(net)
        reproduce = weights is not None and not statistical_only
        source, note = stream_for_file(net, weights) if weights is not None and reproduce else (net, "")
        report = verify_stream(net, reader, alpha, source if reproduce else None, seen if recorded else digests)
    finally:
        if reader is not None:
            reader.close()
    report.stream = note
    _check_recorded(report, recorded, seen)
    return report


def _check_recorded(report: Report, recorded: dict[str, str], seen: dict[str, str]) -> None:
    """A tensor whose bytes are not the SHA-256 its folder's index records fails: its shard comes from
    another build than the index (a build that stopped midway, or a shard copied in)."""
    for tensor in report.tensors:
        if tensor.name in recorded and tensor.name in seen and seen[tensor.name] != recorded[tensor.name]:
            tensor.verdict = "FAIL"
            tensor.problems.append("not the tensor the folder's index records (another SHA-256): its shard "
                                   "comes from another build")  # fmt: skip


def stream_for_file(net: Network, weights: str) -> tuple[Network, str]:
    """The network whose streams regenerate a weights file's bytes, and which stream that is.

    A spec with plain ``rng: block`` (the default block stream) is checked against the block stream the
    file records in its metadata (e.g. ``netspec_stream: block/2``), so a file keeps verifying when the
    default changes; a spec that pins a stream (``rng: block/N``, ``legacy``) is taken at its word.
    """
    import dataclasses

    from netspec.init.streams import RNG_MODES
    from netspec.io.weights import metadata_for

    declared = metadata_for(net)["netspec_stream"]
    from netspec.export.files import recorded_metadata

    recorded = recorded_metadata(weights).get("netspec_stream", "")  # any format that records one (ONNX too)
    if net.rng == "block" and recorded.startswith("block/") and recorded in RNG_MODES:
        if recorded == declared:
            return net, declared
        return dataclasses.replace(net, rng=recorded), f"{recorded} (recorded in the file)"
    if recorded and recorded != declared:
        return net, f"{declared} (the spec's rng: {net.rng}; the file records {recorded})"
    return net, declared


def verify_network(
    net: Network, params: dict[str, np.ndarray], alpha: float = 1e-3, reproduce: bool = True, *, fit: bool = True
) -> Report:
    """Check every parameter of ``net`` in ``params`` (see the module doc); ``fit=False`` leaves out the KS test."""
    return verify_stream(net, ArrayReader(params), alpha, net if reproduce else None, fit=fit)


class Reader(Protocol):
    """Where verify reads a tensor's values from, a run at a time (:class:`netspec.io.weights.TensorReader`)."""

    def read(self, name: str, start: int, count: int) -> np.ndarray: ...

    def check(self, net: Network) -> None: ...

    def close(self) -> None: ...


class ArrayReader:
    """A :class:`Reader` over arrays in memory."""

    def __init__(self, params: dict[str, np.ndarray]):
        self.params = params

    def read(self, name: str, start: int, count: int) -> np.ndarray:
        return np.asarray(self.params[name]).reshape(-1)[start : start + count]

    def check(self, net: Network) -> None:
        from netspec.errors import WeightsError
        from netspec.io.weights import check_against

        problems = check_against(self.params, {name: p.shape for name, p in net.parameters()}, net.dtype)
        if problems:
            raise WeightsError("the weights do not match the spec: " + "; ".join(problems))

    def close(self) -> None:
        pass


def verify_stream(
    net: Network,
    reader: Reader | None,
    alpha: float = 1e-3,
    source: Network | None = None,
    digests: dict[str, str] | None = None,
    *,
    fit: bool = True,
    threads: int | None = None,
) -> Report:
    """Check every parameter of ``net``, read from ``reader`` (None: the tensors ``net`` generates), chunk by
    chunk: memory holds a few chunks and each tensor's checks' summary (:class:`~netspec.check.checks.Summary`),
    except for the laws whose checks need the whole tensor (orthogonal, gate-structured). With ``source``
    (the network whose streams made the file) every chunk is compared with the one it generates (the
    reproduction check). ``digests`` is filled with each tensor's SHA-256 as read."""
    from netspec.init.rounding import stored
    from netspec.nn.sources import chunks

    laws = {name: stored(p.declared(), net.dtype) for name, p in net.parameters()}
    shapes = {name: tuple(p.shape) for name, p in net.parameters()}
    sizes = {name: p.size for name, p in net.parameters()}
    m = max(1, sum(d.statistical_tests for d in laws.values()))
    a = alpha / m
    parts: Iterator[tuple[str, int, np.ndarray, np.ndarray | None]]
    if reader is None:
        parts = ((name, start, values, None) for name, start, values in chunks(net, threads=threads))
    elif source is not None:
        parts = ((n, s, reader.read(n, s, v.size), v) for n, s, v in chunks(source, threads=threads))
    else:
        parts = ((n, s, reader.read(n, s, c), None) for n, s, c in _runs(sizes))
    states: dict[str, _Tensor] = {}
    reports: dict[str, TensorReport] = {}
    for name, start, values, expected in parts:
        state = states.get(name) or states.setdefault(name, _Tensor(name, laws[name], shapes[name], digests))
        state.add(start, values, expected)
        if state.seen == state.n:
            reports[name] = state.report(a, fit, source)
            del states[name]
    for name in sizes:  # (a tensor of no elements comes as no chunk)
        if name not in reports:
            empty = np.asarray(reader.read(name, 0, 0) if reader else np.empty(0, net.compute_dtype))
            reports[name] = _Tensor(name, laws[name], shapes[name], digests).add(0, empty, None).report(a, fit, source)
    recipe_laws = {f"{cl.name}.{p}": d.text() for cl in net.layers for p, d in cl.recipe.items()}
    for name, rep in reports.items():  # whose law a failing tensor breaks: a scaling that did not apply shows
        if rep.problems and name in recipe_laws:
            rep.problems.append(f"declared by {recipe_laws[name]}")
    return Report(net.source, alpha, a, -NormalDist().inv_cdf(a / 2), [reports[name] for name in sizes])


def _runs(sizes: dict[str, int], run: int = 1 << 22) -> Iterator[tuple[str, int, int]]:
    """``(tensor, start, count)`` runs of at most ``run`` elements covering every tensor in order."""
    for name, size in sizes.items():
        for start in range(0, size, run):
            yield name, start, min(run, size - start)


class _Tensor:
    """One tensor being verified chunk by chunk: its checks' accumulator (or its chunks, for a law that
    checks the whole tensor), whether every chunk reproduced, and its SHA-256."""

    def __init__(self, name: str, law: Distribution, shape: tuple[int, ...], digests: dict[str, str] | None):
        self.name, self.law, self.shape, self.n, self.seen = name, law, tuple(shape), math.prod(shape), 0
        self.acc: Accumulator | None = None
        self.parts: list[np.ndarray] = []
        self.reproduces: bool | None = None
        self.digests = digests
        self.hasher = hashlib.sha256() if digests is not None else None

    def add(self, start: int, values: np.ndarray, expected: np.ndarray | None) -> _Tensor:
        from netspec.init.precision import byte_view, widen

        if start != self.seen:
            raise AssertionError(f"{self.name}: chunk at {start}, expected {self.seen}")
        wide = widen(values)  # half types: their values, exactly in float32
        if self.seen == 0:
            self.acc = self.law.accumulator(self.n, wide.dtype)
        if self.acc is not None:
            self.acc.add(start, wide)
        else:
            self.parts.append(wide)
        if expected is not None:
            same = values.dtype == expected.dtype and values.size == expected.size and np.array_equal(
                np.frombuffer(byte_view(values), np.uint8), np.frombuffer(byte_view(expected), np.uint8))
            self.reproduces = same if self.reproduces is None else self.reproduces and same
        if self.hasher is not None:
            self.hasher.update(byte_view(values))
        self.seen += values.size
        return self

    def report(self, alpha: float, fit: bool, source: Network | None) -> TensorReport:
        fit_alpha = alpha if fit else None
        if self.acc is not None:
            results = self.law.summary_checks(self.acc.summary(), alpha, fit_alpha)
        else:
            values = np.concatenate(self.parts) if self.parts else np.empty(0)
            results = self.law.checks(values.reshape(self.shape), alpha, fit_alpha)
        rep = tensor_report(self.name, self.n, self.law, results, alpha)
        if self.digests is not None and self.hasher is not None:
            self.digests[self.name] = self.hasher.hexdigest()
        if source is not None:
            _reproduction(rep, bool(self.reproduces) or self.n == 0, source)
        rep.verdict = _verdict(rep)
        return rep



def _reproduction(rep: TensorReport, same: bool, net: Network) -> None:
    rep.reproduces = same
    rep.tests["reproduction"] = "pass" if same else "FAIL"
    if not same:
        from netspec.io.weights import metadata_for

        rep.problems.append(f"not the bytes seed {net.seed} produces with stream {metadata_for(net)['netspec_stream']}")


def check_tensor(name: str, values: np.ndarray, dist: Distribution, alpha: float, *, fit: bool = True) -> TensorReport:
    """Every check of one tensor, each statistical one at false-alarm probability ``alpha`` (no reproduction)."""
    results = check_values(values, dist, alpha=alpha, fit_alpha=alpha if fit else None)
    return tensor_report(name, int(values.size), dist, results, alpha)


def tensor_report(name: str, n: int, dist: Distribution, results: list[CheckResult], alpha: float) -> TensorReport:
    """One tensor's report from its checks' results."""
    rep = TensorReport(name, n, dist.describe(), dist.family)
    for r in results:
        rep.tests[r.name] = r.status
        if r.ok is False:
            rep.problems.append(f"{r.name}: {r.detail}")
    _fill_columns(rep, {r.name: r for r in results})
    rep.detectable_ratio = detectable_ratio(dist, rep.n, alpha)
    rep.verdict = _verdict(rep)
    return rep


def _fill_columns(rep: TensorReport, by_name: dict[str, CheckResult]) -> None:
    bounds, mean, variance, fit = (by_name.get(k) for k in STATISTICAL)
    rep.bounds_ok = bounds.ok if bounds else None
    if mean:
        rep.mean_z, rep.mean_interval, rep.method = mean.statistic, mean.accept, mean.method
    if variance:
        rep.variance_ratio, rep.variance_interval = variance.statistic, variance.accept
    rep.fit_p = fit.statistic if fit else None
    rep.exact = "; ".join(r.detail for k, r in by_name.items() if k not in STATISTICAL)


def _verdict(rep: TensorReport) -> str:
    if rep.problems:
        return "FAIL"
    weak = rep.detectable_ratio is not None and rep.detectable_ratio > POWER_RATIO
    return "inconclusive" if weak and not rep.reproduces else "pass"


# ---------------------------------------------------------------- text


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _row(t: TensorReport) -> tuple[str, ...]:
    mean = "-"
    if t.mean_z is not None and t.mean_interval:
        mean = f"{t.mean_z:+.2f} [{t.mean_interval[0]:.2f}, {t.mean_interval[1]:.2f}]"
    if t.variance_ratio is not None and t.variance_interval:
        variance = f"{t.variance_ratio:.3f} [{t.variance_interval[0]:.2f}, {t.variance_interval[1]:.2f}]"
    else:
        variance = t.exact or "-"
    bounds = "-" if t.bounds_ok is None else ("ok" if t.bounds_ok else "OUT")
    fit = "skipped" if "fit" in t.skipped else _num(t.fit_p, ".3g")
    detects = "-" if t.detectable_ratio is None else f"x{t.detectable_ratio:.2f}"
    verdict = t.verdict + (" (reproduces)" if t.reproduces else "")
    return (t.name, f"{t.n:,}", t.declared, bounds, mean, variance, t.method or "-", fit, detects, verdict)


HEADER = ("tensor", "n", "declared", "bounds", "mean z [accept]", "var ratio [accept]", "test", "KS p", "detects",
          "verdict")  # fmt: skip


def render(report: Report) -> str:
    """The table, one line per problem, and the summary line."""
    if not report.tensors:
        return f"no parameter tensors to verify ({report.spec or 'the network'} has no layer with parameters)"
    rows = [_row(t) for t in report.tensors]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADER)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [HEADER, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    for t in report.tensors:
        lines += [f"{t.name}: {p}" for p in t.problems]
    lines.append(report.summary())
    return "\n".join(lines)


def summary_line(report: Report) -> str:
    """Counts, the reason for inconclusive tensors, skipped tests, the tests used and the alpha."""
    tensors = report.tensors
    if not tensors:
        return "no parameter tensors to verify"
    failed = sum(t.verdict == "FAIL" for t in tensors)
    weak = [t for t in tensors if t.verdict == "inconclusive"]
    parts = [f"{len(tensors) - failed - len(weak)} passed, {failed} failed, {len(weak)} inconclusive"]
    if weak:
        parts.append(f"{len(weak)} too small to judge: with n <= {max(t.n for t in weak):,} values the variance "
                     f"test finds a variance ratio of {POWER_RATIO:g} with less than {POWER:.0%} power "
                     f"(they pass only if they reproduce the seed's bytes)")  # fmt: skip
    for test, names in report.skipped.items():
        why = SKIPPED_FIT.removeprefix("skipped: ") if test == "fit" else "could not run"
        parts.append(f"{test} test skipped on {len(names)} tensor{'s' * (len(names) != 1)}: {why}")
    if report.stream:
        parts.append(f"reproduction: stream {report.stream}")
    methods = sorted({t.method for t in tensors if t.method})
    if methods:
        parts.append("mean/variance tests: " + ", ".join(METHODS.get(m, m) for m in methods))
    parts.append(f"family-wise alpha {report.alpha:g}, per test {report.per_test_alpha:.2g}; "
                 f"'detects': smallest variance ratio found with {POWER:.0%} power")  # fmt: skip
    return "; ".join(parts)


METHODS = {
    "exact": "exact (normal: z and chi^2_n)",
    "Bernstein": "Bernstein bound (bounded: valid at every n)",
}
