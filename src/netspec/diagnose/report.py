"""``netspec diagnose`` as a whole: runs (the spec's initialization and each ``--compare``), the text
table, the JSON document and the ``--fail-if`` checks."""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from netspec.diagnose.stats import Run, layer_stats, reinitialized
from netspec.errors import UsageError

if TYPE_CHECKING:
    from netspec.nn.network import Network

OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
CONDITION = re.compile(r"^\s*(std_ratio|dead|saturated)\s*(<=|>=|<|>)\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")
LOSSES = ("auto", "mean", "cross_entropy")


@dataclass(frozen=True)
class Condition:
    """A ``--fail-if`` condition: the run fails when ``metric OP value`` holds (for ``dead`` and
    ``saturated``: for some layer)."""

    metric: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Condition:
        match = CONDITION.match(text)
        if not match:
            raise UsageError(f"--fail-if {text!r}: expected METRIC OP NUMBER with METRIC std_ratio, dead or "
                             "saturated and OP one of < <= > >= (e.g. 'std_ratio<0.1', 'dead>0.5')")  # fmt: skip
        return cls(match[1], match[2], float(match[3]))

    def failures(self, run: Run) -> list[str]:
        """A message per violation (the layer named for per-layer metrics)."""
        test = OPERATORS[self.op]
        if self.metric == "std_ratio":
            ratio = run.std_ratio
            return [f"std_ratio {ratio:.4g} {self.op} {self.value:g} (last / first activation std)"] if test(
                ratio, self.value) else []  # fmt: skip
        out = []
        for s in run.layers:
            value = getattr(s, self.metric)
            if value is not None and test(value, self.value):
                out.append(f"layer {s.name}: {self.metric} {value:.4g} {self.op} {self.value:g}")
        return out


def diagnose(net: Network, x: Any, compare: list[str], loss: str, gradients: bool = True) -> list[Run]:
    """One run for the spec's own initialization, then one per ``compare`` initializer."""
    from netspec.diagnose.gradients import parameter_stats

    nets = [("spec", net)] + [(name, reinitialized(net, name)) for name in compare]
    runs = []
    for label, n in nets:
        params = n.initialize()
        run = Run(label, layer_stats(n, params, x))
        if gradients:
            run.parameters, run.gradients = parameter_stats(n, params, x, loss)
        else:
            run.gradients = "not asked for (--no-gradients)"
        runs.append(run)
    return runs


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def table(runs: list[Run]) -> str:
    """Per layer and run: output mean/std, pre-activation std, saturated and dead fractions; then per
    parameter the gradient std and ||grad|| / ||w||."""
    lines = []
    for run in runs:
        lines.append(f"== initialization: {run.initializer}  (std_ratio {run.std_ratio:.4g})")
        rows: list[tuple[str, ...]] = [("layer", "type", "act", "mean", "std", "pre std", "saturated", "dead")]
        rows += [(s.name, s.type, s.activation or "-", _g(s.mean), _g(s.std), _g(s.pre_std), _g(s.saturated),
                  _g(s.dead)) for s in run.layers]  # fmt: skip
        lines += _columns(rows)
        if run.parameters:
            rows = [("parameter", "grad std", "|grad|/|w|")]  # a new table
            rows += [(p.name, _g(p.grad_std), _g(p.grad_to_weight)) for p in run.parameters]
            lines += _columns(rows)
        else:
            lines.append(f"gradients: {run.gradients}")
    return "\n".join(lines)


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def as_json(net: Network, runs: list[Run], batch: int, data_seed: int | None, loss: str) -> dict[str, Any]:
    """``data_seed`` is the random batch's seed (None for the user's data); ``seed`` the weights'."""
    return _finite({"spec": net.source, "name": net.name, "batch": batch, "seed": net.seed, "data_seed": data_seed,
                    "loss": loss, "runs": [r.as_json() for r in runs]})  # fmt: skip


def _finite(value: Any) -> Any:
    """The document with NaN and infinities as null (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
