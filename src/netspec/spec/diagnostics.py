"""Rendering located errors for people.

``path/to/model.yaml:12:5: error: message (at layers[2].units)`` followed by a
code frame with a caret under the column, one block per diagnostic, sorted by
position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netspec.errors import Diagnostic, SpecError


def header(source: str, d: Diagnostic) -> str:
    where = f" (at {d.path})" if d.path else ""
    return f"{source}:{d.line}:{d.column}: {d.severity}: {d.message}{where}"


def code_frame(text: str, line: int, column: int) -> str:
    """The offending line with its number and a caret under ``column``."""
    lines = text.splitlines()
    if not (1 <= line <= len(lines)):
        return ""
    src = lines[line - 1].replace("\t", " ")
    if len(src) > 160:
        start = max(0, column - 80)
        src, column = src[start : start + 160], column - start
    gutter = f"{line:>5} | "
    return f"{gutter}{src}\n{' ' * (len(gutter) - 2)}| {' ' * max(0, column - 1)}^"


def render_diagnostics(source: str, diagnostics: list[Diagnostic], text: str = "") -> str:
    """Located blocks, one per diagnostic: header, code frame (when the text is known), help."""
    blocks = []
    for d in diagnostics:
        block = header(d.source or source, d)
        frame = code_frame(d.text if d.source else text, d.line, d.column) if (d.text if d.source else text) else ""
        if frame:
            block += "\n" + frame
        if d.hint:
            block += f"\n      = help: {d.hint}"
        blocks.append(block)
    return "\n".join(blocks)


def render(error: SpecError) -> str:
    return render_diagnostics(error.source, error.diagnostics, error.text)
