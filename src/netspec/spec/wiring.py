"""Graph wiring: which outputs feed each layer, resolved and located before anything is built.

A layer takes the previous layer's output unless it says ``inputs:`` (a name or a
list of names). Names are the layers' names after expansion
(:mod:`netspec.spec.expansion`; a block instance's name means its last layer) and
the network inputs (``input`` for a spec with ``input:``, the keys of ``inputs:``
otherwise). Inside a ``repeat`` block, a name defined in the same block means
that repetition's layer (``inputs: conv`` in repetition 2 is ``conv_2``).
Layers run in the order written, so a layer can only take earlier outputs:
cycles cannot be written.
"""

from __future__ import annotations

from typing import Any

from netspec.errors import Diagnostic
from netspec.nn.layers import Shape
from netspec.registry import did_you_mean
from netspec.spec.expansion import INSTANCE_KEY
from netspec.spec.loader import Document, Path, format_path

Scope = dict[str, str]
"""Written reference -> expanded layer name, for the names of the enclosing repeat bodies."""


def network_inputs(data: dict[str, Any]) -> dict[str, Shape]:
    """The network inputs by name: ``{"input": shape}`` or the spec's ``inputs`` mapping."""
    if "inputs" in data:
        return {name: tuple(shape) for name, shape in data["inputs"].items()}
    return {"input": tuple(data["input"])}


class Wiring:
    """Tracks the outputs produced so far and resolves each layer's ``inputs``.

    Args:
        doc: the document, for positions.
        inputs: the network inputs' shapes.
        layer_names: every layer name after expansion, with its spec path (to tell a later layer
            from an unknown name).
        aliases: block instance names and the layer each one's output is.
    """

    def __init__(
        self,
        doc: Document,
        inputs: dict[str, Shape],
        layer_names: dict[str, Path],
        aliases: dict[str, str] | None = None,
        input_paths: dict[str, Path] | None = None,
    ):
        self.doc = doc
        self.aliases = aliases or {}
        self.input_paths = input_paths or {}
        """Block instance name -> where its ``inputs`` is written."""
        """Block instance name -> its last layer."""
        self.shapes: dict[str, Shape | None] = dict(inputs)
        self.network_inputs = list(inputs)
        self.layer_names = layer_names
        self.consumed: set[str] = set()
        self.previous: str | None = self.network_inputs[0] if len(inputs) == 1 else None
        self.diagnostics: list[Diagnostic] = []

    def _fail(self, message: str, where: Path, hint: str = "") -> None:
        """Report once per position: a mistake inside a repeat block is one mistake."""
        if any(d.path == format_path(where) for d in self.diagnostics):
            return
        line, col = self.doc.mark(where)
        self.diagnostics.append(Diagnostic(message, line, col, format_path(where), hint=hint))

    def inputs_of(self, name: str, options: dict[str, Any], path: Path, scope: Scope) -> list[str] | None:
        """The expanded names a layer takes (None after reporting why they cannot be resolved)."""
        written = options.get("inputs")
        if written is None:
            if self.previous is None:
                hint = "network inputs: " + ", ".join(self.network_inputs)
                self._fail("the first layer of a network with several inputs must say which with 'inputs:'", path, hint)
                return None
            self.consumed.add(self.previous)
            return [self.previous]
        refs = [written] if isinstance(written, str) else list(written)
        out = []
        for i, ref in enumerate(refs):
            where = (*path, "inputs") if isinstance(written, str) else (*path, "inputs", i)
            resolved = self._resolve(name, ref, scope, where)
            if resolved is None:
                return None
            out.append(resolved)
        self.consumed.update(out)
        return out

    def reference(self, name: str, ref: str, scope: Scope, where: Path) -> str | None:
        """The expanded name of an earlier layer that a layer option (``tie``) names, as ``inputs`` are
        resolved (None after reporting an unknown or later name); not counted as a use of its output."""
        return self._resolve(name, ref, scope, where)

    def _resolve(self, name: str, ref: str, scope: Scope, where: Path) -> str | None:
        if ref == "input" and INSTANCE_KEY in scope:  # the instance's own input: a mistake at its use
            ref, where, scope = scope["input"], self.input_paths[scope[INSTANCE_KEY]], {}
        expanded = scope.get(ref, ref)
        expanded = self.aliases.get(expanded, expanded)
        if expanded in self.shapes:
            return expanded
        if expanded == name:
            self._fail(f"layer {name!r} takes its own output: a layer can only take earlier layers' outputs", where)
        elif expanded in self.layer_names:
            line = self.doc.mark(self.layer_names[expanded])[0]
            self._fail(f"{ref!r} is a later layer (line {line}): layers run in the order written, so a layer can "
                       "only take the outputs of layers above it", where)  # fmt: skip
        else:
            known = [n for n in self.shapes if n not in self.network_inputs] + self.network_inputs + list(self.aliases)
            self._fail(f"unknown layer or input {ref!r}{did_you_mean(ref, [*scope, *known])}", where,
                       hint="known so far: " + ", ".join(known[-12:]))  # fmt: skip
        return None

    def produced(self, name: str, shape: Shape | None) -> None:
        """Record a layer's output (None: its shape is unknown after an error, so its users are skipped)."""
        self.shapes[name] = shape
        self.previous = name

    def outputs(self, data: dict[str, Any], last: str | None) -> list[str]:
        """The network outputs: the spec's ``outputs`` (checked) or the last layer."""
        written = data.get("outputs")
        if written is None:
            return [last] if last else []
        refs = [written] if isinstance(written, str) else list(written)
        out = []
        for i, ref in enumerate(refs):
            where: Path = ("outputs",) if isinstance(written, str) else ("outputs", i)
            if self.aliases.get(ref, ref) in self.shapes:
                out.append(self.aliases.get(ref, ref))
            else:
                self._fail(f"unknown layer or input {ref!r}{did_you_mean(ref, list(self.shapes))}", where)
        return out

    def unused_warnings(self, outputs: list[str], paths: dict[str, Path]) -> list[Diagnostic]:
        """A warning for each layer or network input whose output nothing takes and that is not an output."""
        used = self.consumed | set(outputs)
        warnings = []
        for name in self.shapes:
            if name in used:
                continue
            where: Path = paths.get(name, ("inputs", name) if "inputs" in self.doc.data else ("input",))
            line, col = self.doc.mark(where)
            kind = "network input" if name in self.network_inputs else "layer"
            msg = f"the output of {kind} {name!r} is never used (no later layer takes it and it is not an output)"
            warnings.append(Diagnostic(msg, line, col, format_path(where), severity="warning"))
        return warnings
