"""``netspec audit DIR``: does a Hugging Face checkpoint hold the initialization its architecture declares?

The checkpoint's ``config.json`` is imported (:mod:`netspec.importers.hf`), which gives every stored
tensor's law: the one transformers' ``_init_weights`` declares (the architecture's recipe: ``hf_llama``,
``gpt2``), or another recipe's (``recipe=``, e.g. a torchtitan ``llama_depth`` run saved in Hugging Face
layout). Each stored tensor is read on its own (a folder with ``model.safetensors.index.json``, a single
``model.safetensors``, or one shard file) and mapped back to netspec's tensors (a GPT-2 ``c_attn`` is its
q, k and v), each checked with ``verify``'s tests: exact checks for laws that are not random (norm
weights 1, biases 0), and for random ones the bounds, mean, variance and Kolmogorov-Smirnov fit, all
statistical tests together at family-wise false-alarm probability ``alpha`` (Bonferroni, each test valid
at every size), so a checkpoint drawn as declared fails with probability at most ``alpha``.

The reproduction check does not apply (the checkpoint was not drawn from netspec's streams).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netspec.errors import NetspecError
from netspec.spec.compiler import DEFAULT_MAX_PARAMS

if TYPE_CHECKING:
    from netspec.check.verify import TensorReport
    from netspec.importers.hf import HFModel
    from netspec.nn.network import Network


@dataclass
class AuditRecord:
    """One stored tensor: its name as stored, the verdict, the law expected and what was measured."""

    name: str
    passed: bool
    expected: str
    mean: float
    std: float
    max_abs: float
    n: int
    parts: list[TensorReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        def finite(x: float) -> float | None:  # JSON has no NaN: an unread tensor's statistics are null
            return x if math.isfinite(x) else None

        return {"name": self.name, "passed": self.passed, "expected": self.expected, "mean": finite(self.mean),
                "std": finite(self.std), "max_abs": finite(self.max_abs), "n": self.n,
                "problems": self.problems}  # fmt: skip


@dataclass
class AuditReport:
    source: str
    architecture: str
    recipe: str
    alpha: float
    per_test_alpha: float
    tensors: list[AuditRecord]

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tensors)

    @property
    def failed(self) -> list[str]:
        return [t.name for t in self.tensors if not t.passed]

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "architecture": self.architecture, "recipe": self.recipe,
                "alpha": self.alpha, "per_test_alpha": self.per_test_alpha, "passed": self.passed,
                "tensors": [t.as_json() for t in self.tensors]}  # fmt: skip


def network_for(src: str, recipe: str | None = None, dtype: str | None = None,
                max_params: int = DEFAULT_MAX_PARAMS) -> tuple[HFModel, Network, str]:
    """The imported architecture of checkpoint ``src``, its compiled network (initialization by ``recipe`` if
    given; stored in ``dtype`` if given; refused over ``max_params`` parameters) and the config's path."""
    import netspec
    from netspec.importers.hf import describe, read_config
    from netspec.importers.hf_spec import spec_text

    config, path = read_config(src)
    model = describe(config, path)
    text = spec_text(model, "audit", path, recipe=recipe)
    net = netspec.loads(text, os.path.join(os.path.dirname(path), "imported.yaml"), dtype=dtype,
                       max_params=max_params)
    return model, net, path


def audit(src: str, recipe: str | None = None, alpha: float = 1e-3,
          max_params: int = DEFAULT_MAX_PARAMS) -> AuditReport:
    """Check every tensor of the checkpoint in folder ``src`` (or one shard file beside its config.json): see
    the module doc.

    Raises:
        NetspecError: the config cannot be imported, the checkpoint cannot be read, or a stored tensor has
            another shape than the architecture's (named).
    """
    from netspec.check.verify import verify_stream
    from netspec.importers.hf_layout import HFReader, stored_tensors

    if not 0 < alpha < 1:
        raise NetspecError(f"alpha must be in (0, 1), got {alpha}")
    folder = src if os.path.isdir(src) else os.path.dirname(os.path.abspath(src))
    weights = src if os.path.isfile(src) and src.endswith(".safetensors") else folder
    model, net, _ = network_for(folder, recipe, max_params=max_params)
    shapes = {name: tuple(p.shape) for name, p in net.parameters()}
    stored = stored_tensors(model)
    reader = HFReader(weights, stored, shapes)
    try:
        dtype = _stored_dtype(reader, stored)
        if dtype != net.dtype:  # judge the law of the type actually stored (bfloat16: the rounded law)
            model, net, _ = network_for(folder, recipe, dtype, max_params)
        present = set(reader.names())
        wanted = [s for s in stored if s.name in present or os.path.isdir(weights)]
        reader.where = {p: w for p, w in reader.where.items() if w[0] in wanted}
        reader.check()
        report = verify_stream(net.restricted({p for s in wanted for p in s.parts}), reader, alpha)
    finally:
        reader.close()
    by_name = {t.name: t for t in report.tensors}
    records = [_record(s.name, [by_name[p] for p in s.parts], [reader.stats.get(p) for p in s.parts])
               for s in wanted]  # fmt: skip
    records += [_unexpected(name) for name in sorted(present - {s.name for s in stored})]
    return AuditReport(src, model.architecture, _recipe_name(net), alpha, report.per_test_alpha, records)


def _stored_dtype(reader: Any, stored: list[Any]) -> str:
    """The precision the checkpoint stores its tensors in (the first architecture tensor's)."""
    for s in stored:
        if s.name in reader.file.tensors:
            return str(reader.file.tensors[s.name][1].name)
    return "float32"


def _recipe_name(net: Network) -> str:
    init = net.spec.get("init")
    return str(init.get("recipe", "")) if isinstance(init, dict) else ""


def _record(name: str, reports: list[TensorReport], stats: list[list[float] | None]) -> AuditRecord:
    n = sum(int(s[0]) for s in stats if s)
    s1 = sum(s[1] for s in stats if s)
    s2 = sum(s[2] for s in stats if s)
    top = max((s[3] for s in stats if s), default=math.nan)
    mean = s1 / n if n else math.nan
    std = math.sqrt(max(s2 / n - mean * mean, 0.0)) if n else math.nan
    expected = "; ".join(dict.fromkeys(r.declared for r in reports))
    problems = [f"{r.name}: {p}" if len(reports) > 1 else p for r in reports for p in r.problems]
    return AuditRecord(name, not problems, expected, mean, std, top, n, reports, problems)


def _unexpected(name: str) -> AuditRecord:
    return AuditRecord(name, False, "(not a tensor of the architecture)", math.nan, math.nan, math.nan, 0, [],
                       ["the checkpoint holds a tensor the architecture does not have"])


def render(report: AuditReport) -> str:
    """One line per stored tensor, its problems, and a summary."""
    rows = [(t.name, f"{t.n:,}", t.expected, f"{t.mean:+.3g}", f"{t.std:.4g}", "pass" if t.passed else "FAIL")
            for t in report.tensors]  # fmt: skip
    header = ("tensor", "n", "expected", "mean", "std", "verdict")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    for t in report.tensors:
        lines += [f"{t.name}: {p}" for p in t.problems]
    failed = report.failed
    lines.append(f"{report.architecture}, recipe {report.recipe}: {len(report.tensors) - len(failed)} passed, "
                 f"{len(failed)} failed; family-wise alpha {report.alpha:g}, per test {report.per_test_alpha:.2g}")
    return "\n".join(lines)

