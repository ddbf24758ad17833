"""Text and JSON reporters: chosen once per command (``--json``), shared by every command.

Modelled on check-jsonschema's ``Reporter`` classes: a command computes its
result and hands it to the reporter; the reporter alone decides how it looks.
Results go to ``out`` (stdout), diagnostics and progress to ``err`` (stderr).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from netspec.check.verify import Report
    from netspec.errors import Diagnostic, SpecError
    from netspec.nn.network import Network


@dataclass
class Validation:
    """The outcome of validating one spec file."""

    path: str
    network: Network | None = None
    error: SpecError | None = None
    problem: str = ""
    """A problem that has no location inside the file (missing file, not a spec)."""
    warnings: list[Diagnostic] = field(default_factory=list)
    blocks: list[str] | None = None
    """For a block library (blocks, no layers): the names of the blocks it defines."""

    @property
    def ok(self) -> bool:
        return self.error is None and not self.problem


def _diagnostic_json(d: Diagnostic) -> dict[str, Any]:
    return {"line": d.line, "column": d.column, "path": d.path, "severity": d.severity, "message": d.message,
            "hint": d.hint}  # fmt: skip


class Reporter:
    """Base: where output goes. Subclasses decide how each result looks."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None, quiet: bool = False):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.quiet = quiet

    def print(self, text: str) -> None:
        print(text, file=self.out)

    def build_started(self, net: Network, report: dict[str, Any]) -> None:
        """Called before anything is allocated (the summary comes first in text)."""

    def build_done(self, report: dict[str, Any], text: str) -> None:
        raise NotImplementedError

    def validated(self, results: list[Validation]) -> None:
        raise NotImplementedError

    def explained(self, net: Network) -> None:
        raise NotImplementedError

    def verified(self, reports: list[Report]) -> None:
        raise NotImplementedError

    def evaluated(self, y: Any) -> None:
        raise NotImplementedError


class TextReporter(Reporter):
    """Tables and located messages for people."""

    def build_started(self, net: Network, report: dict[str, Any]) -> None:
        from netspec.report.summary import table

        self.print(table(net, report["layers"]))

    def build_done(self, report: dict[str, Any], text: str) -> None:
        self.print(text)

    def validated(self, results: list[Validation]) -> None:
        from netspec.spec.diagnostics import render_diagnostics

        for r in results:
            if r.problem:
                print(f"{r.path}: error: {r.problem}", file=self.err)
            elif r.error is not None:
                print(r.error, file=self.err)
            elif r.blocks is not None and not self.quiet:
                self.print(f"{r.path}: ok (block library: {len(r.blocks)} block{'' if len(r.blocks) == 1 else 's'})")
            elif not self.quiet:
                net = r.network
                assert net is not None
                self.print(f"{r.path}: ok ({len(net.layers)} layers, {net.num_params:,} parameters)")
            if r.warnings and not self.quiet:
                print(render_diagnostics(r.path, r.warnings), file=self.err)
        if len(results) > 1 and not self.quiet:
            failed = sum(not r.ok for r in results)
            self.print(f"{len(results) - failed} valid, {failed} invalid")

    def explained(self, net: Network) -> None:
        from netspec.report.summary import explain_text

        self.print(explain_text(net))

    def verified(self, reports: list[Report]) -> None:
        from netspec.check.verify import render

        for i, report in enumerate(reports):
            if len(reports) > 1:
                self.print(("\n" if i else "") + f"== {report.spec}")
            self.print(render(report))

    def evaluated(self, y: Any) -> None:
        import numpy as np

        if isinstance(y, dict):
            for name, value in y.items():
                self.print(f"{name}: " + np.array2string(value, precision=4, floatmode="fixed", suppress_small=False))
            return
        self.print(np.array2string(y, precision=4, floatmode="fixed", suppress_small=False))


class JsonReporter(Reporter):
    """One JSON document per command on stdout, for scripts and CI."""

    def dump(self, data: Any) -> None:
        self.print(json.dumps(data, indent=2))

    def build_done(self, report: dict[str, Any], text: str) -> None:
        self.dump(report)

    def validated(self, results: list[Validation]) -> None:
        docs = []
        for r in results:
            diags = [*(r.error.diagnostics if r.error is not None else []), *r.warnings]
            doc: dict[str, Any] = {"path": r.path, "valid": r.ok, "diagnostics": [_diagnostic_json(d) for d in diags]}
            if r.problem:
                doc["error"] = r.problem
            if r.network is not None:
                doc.update(layers=len(r.network.layers), parameters=r.network.num_params)
            if r.blocks is not None:
                doc["blocks"] = r.blocks
            docs.append(doc)
        self.dump({"valid": all(r.ok for r in results), "specs": docs})

    def explained(self, net: Network) -> None:
        from netspec.report.summary import explain

        self.dump(explain(net))

    def verified(self, reports: list[Report]) -> None:
        self.dump(reports[0].as_json() if len(reports) == 1 else [r.as_json() for r in reports])

    def evaluated(self, y: Any) -> None:
        if isinstance(y, dict):
            outputs = {k: {"output": v.tolist(), "shape": list(v.shape)} for k, v in y.items()}
            self.print(json.dumps({"outputs": outputs}))
            return
        self.print(json.dumps({"output": y.tolist(), "shape": list(y.shape)}))


def reporter(json_output: bool, quiet: bool = False) -> Reporter:
    """The reporter for a command: JSON if asked for, else text."""
    return JsonReporter(quiet=quiet) if json_output else TextReporter(quiet=quiet)
