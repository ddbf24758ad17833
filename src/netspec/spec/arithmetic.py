"""Where a spec's expressions (``"${expr}"``, :mod:`netspec.spec.expressions`) are evaluated, and what
each value depends on.

* ``constants: {name: number}`` (top level) are evaluated first, in order: a constant may be an
  expression over the constants above it (``d_ff: "${4 * d_model}"``).
* Every other expression outside ``blocks`` is evaluated before the spec is validated, over the
  constants, so the schema checks the values. An expression that reads ``index`` inside a ``repeat``
  is *deferred*: it is evaluated at expansion, once per repetition (:mod:`netspec.spec.expansion`), as
  are the expressions in a block's layers (over the block's parameters, the constants and ``index``).
* Where the schema requires an integer (units, heads, ...), an integral result becomes a Python ``int``
  (``${768 / 12}`` is 64); a result that is not integral is an error there.

Every value keeps where it is written: an error points at the part of the expression at fault
(``file:line:col``), and each evaluated value (:class:`Evaluated`) records its text and the constants
it depends on, for ``explain``, lock files and ``diff``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netspec.errors import Diagnostic
from netspec.registry import did_you_mean
from netspec.spec.expressions import (
    FUNCTIONS,
    INT_LIMIT,
    OPEN,
    ExpressionError,
    Number,
    is_expression,
    parse,
)
from netspec.spec.loader import Document, Path, format_path

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INDEX = "index"
RESERVED = frozenset({INDEX, *FUNCTIONS})
"""Names a constant cannot take."""
MAX_CONSTANTS = 256


@dataclass(frozen=True)
class Evaluated:
    """An expression and its value; ``constants`` are the constants the value depends on (directly or
    through other constants and block parameters)."""

    text: str
    value: Number
    constants: frozenset[str] = frozenset()

    def describe(self) -> str:
        """``${4 * d_model} = 3072``."""
        return f"{self.text} = {show(self.value)}"


def show(value: Number) -> str:
    return repr(value) if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Scope:
    """The names an expression may read, and the constants each name's value depends on."""

    values: Mapping[str, Number] = field(default_factory=dict)
    depends: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def with_names(self, values: Mapping[str, Number], depends: Mapping[str, frozenset[str]]) -> Scope:
        """This scope with ``values`` added (shadowing names it already has)."""
        return Scope({**self.values, **values}, {**self.depends, **depends})

    def evaluate(self, text: str) -> Evaluated:
        """The value of ``"${expr}"`` here (ExpressionError as :mod:`netspec.spec.expressions`)."""
        expr = parse(text)
        value = expr.evaluate(self.values)
        depends = frozenset().union(*(self.depends.get(name, frozenset()) for name in expr.names))
        return Evaluated(text, value, depends)


@dataclass
class Arithmetic:
    """What the top-level pass found: constants, the values it evaluated, the ones left for expansion."""

    constants: dict[str, Number] = field(default_factory=dict)
    depends: dict[str, frozenset[str]] = field(default_factory=dict)
    """Constant -> the constants its value depends on (itself included)."""
    values: dict[Path, Evaluated] = field(default_factory=dict)
    """Expressions evaluated before validation, by where they are written."""
    deferred: set[Path] = field(default_factory=set)
    """Expressions that read ``index`` inside a repeat: evaluated at expansion."""
    failed: set[Path] = field(default_factory=set)
    """Values whose expression was reported as an error (the schema does not report them again)."""
    broken: set[str] = field(default_factory=set)
    """Constants that have no value after an error (expressions reading them are not reported again)."""

    def scope(self) -> Scope:
        return Scope(self.constants, self.depends)


def arithmetic(doc: Document) -> Arithmetic:
    """The document's arithmetic (empty until :func:`resolve` ran)."""
    found = doc.arithmetic
    return found if isinstance(found, Arithmetic) else Arithmetic()


def resolve(doc: Document) -> list[Diagnostic]:
    """Evaluate the constants and every expression outside ``blocks`` that does not read ``index``, in
    place (once per document); returns the located errors."""
    if isinstance(doc.arithmetic, Arithmetic):
        return []
    arith = Arithmetic()
    doc.arithmetic = arith
    if not isinstance(doc.data, dict):
        return []
    diags = _constants(doc, arith)
    for key in list(doc.data):
        if key not in ("constants", "blocks") and not str(key).startswith("x-"):
            diags += _resolve_tree(doc, arith, doc.data, key, (key,), False)
    return diags


def _constants(doc: Document, arith: Arithmetic) -> list[Diagnostic]:
    written = doc.data.get("constants")
    if not isinstance(written, dict):
        return []  # the schema says what it should be
    diags: list[Diagnostic] = []
    for i, (name, value) in enumerate(list(written.items())):
        path: Path = ("constants", name)
        if i >= MAX_CONSTANTS or not IDENTIFIER.match(name) or len(name) > 64 or name in RESERVED:
            if name in RESERVED:  # (the schema reports the others, at the key: not skipped as a failed value)
                what = "the repeat index" if name == INDEX else "a function"
                line, col = doc.mark(path, key=True)
                msg = f"{name!r} cannot be a constant: it is {what} in expressions"
                diags.append(Diagnostic(msg, line, col, format_path(path)))
                arith.failed.add(path)
            elif is_expression(value):  # its value is judged as any other's; the name is not usable
                evaluated, diag = _constant_value(doc, arith, path, value)
                if evaluated is not None:
                    written[name] = evaluated.value
            arith.broken.add(str(name))
            continue
        evaluated, diag = _constant_value(doc, arith, path, value)
        if evaluated is None:
            if diag is not None:
                diags.append(diag)
            arith.failed.add(path)
            arith.broken.add(name)
            continue
        arith.constants[name] = evaluated.value
        arith.depends[name] = evaluated.constants | {name}
        if is_expression(value):
            arith.values[path] = evaluated
        written[name] = evaluated.value
    return diags


def _constant_value(
    doc: Document, arith: Arithmetic, path: Path, value: Any
) -> tuple[Evaluated | None, Diagnostic | None]:
    line, col = doc.mark(path)
    if is_expression(value):
        return _evaluate_at(doc, arith, path, value, arith.scope(), "")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"constant {path[-1]!r} must be a number or an expression \"${{...}}\", got {_kind(value)}"
        return None, Diagnostic(msg, line, col, format_path(path))
    if isinstance(value, float) and not math.isfinite(value):
        return None, Diagnostic(f"constant {path[-1]!r} must be finite, got {value!r}", line, col, format_path(path))
    if isinstance(value, int) and abs(value) > INT_LIMIT:
        return None, Diagnostic(f"constant {path[-1]!r} is beyond ±(2**63 - 1)", line, col, format_path(path))
    return Evaluated(repr(value), value), None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the string {value!r}"
    return "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else repr(value)


def _resolve_tree(doc: Document, arith: Arithmetic, parent: Any, key: Any, path: Path, in_repeat: bool
                  ) -> list[Diagnostic]:  # fmt: skip
    """Evaluate the expressions under ``parent[key]`` in place (``index`` ones inside a repeat deferred)."""
    value = parent[key]
    if isinstance(value, dict):
        out: list[Diagnostic] = []
        for k in list(value):
            inner = in_repeat or (k == "layers" and "repeat" in value and path[:1] == ("layers",))
            out += _resolve_tree(doc, arith, value, k, (*path, k), inner)
        return out
    if isinstance(value, list):
        return [d for i in range(len(value)) for d in _resolve_tree(doc, arith, value, i, (*path, i), in_repeat)]
    if not is_expression(value):
        return []
    try:
        names = parse(value).names
    except ExpressionError as exc:
        arith.failed.add(path)
        return [locate(doc, path, value, exc)]
    if INDEX in names and in_repeat:
        arith.deferred.add(path)
        return []
    evaluated, diag = _evaluate_at(doc, arith, path, value, arith.scope(), "")
    if evaluated is None:
        arith.failed.add(path)
        return [diag] if diag else []
    parent[key] = evaluated.value
    arith.values[path] = evaluated
    return []


def _evaluate_at(doc: Document, arith: Arithmetic, path: Path, text: str, scope: Scope, context: str
                 ) -> tuple[Evaluated | None, Diagnostic | None]:  # fmt: skip
    """The value of ``text`` written at ``path`` (None with the located error, or with none when it reads a
    constant already reported)."""
    try:
        if parse(text).names & arith.broken:
            return None, None
        return scope.evaluate(text), None
    except ExpressionError as exc:
        return None, locate(doc, path, text, exc, context, scope)


def evaluate_tree(doc: Document, node: Any, path: Path, scope: Scope, context: str = ""
                  ) -> tuple[Any, dict[Path, Evaluated], list[Diagnostic]]:  # fmt: skip
    """A copy of ``node`` (written at ``path``) with every expression evaluated in ``scope``: the copy, the
    evaluated values by path, and the located errors (``context`` is appended to their messages)."""
    found: dict[Path, Evaluated] = {}
    diags: list[Diagnostic] = []
    arith = arithmetic(doc)

    def walk(value: Any, where: Path) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*where, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*where, i)) for i, v in enumerate(value)]
        if not is_expression(value):
            return value
        evaluated, diag = _evaluate_at(doc, arith, where, value, scope, context)
        if evaluated is None:
            diags.extend([diag] if diag else [])
            return value
        found[where] = evaluated
        return evaluated.value

    return walk(node, path), found, diags


def expression_paths(node: Any, path: Path) -> list[Path]:
    """Where ``node`` (written at ``path``) holds an expression."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in expression_paths(v, (*path, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in expression_paths(v, (*path, i))]
    return [path] if is_expression(node) else []


def check_names(doc: Document, node: Any, path: Path, known: set[str] | None) -> list[Diagnostic]:
    """Located errors of the expressions under ``node`` (written at ``path``) that cannot be parsed or,
    when ``known`` is given, read a name not in it (each reported once, where it is written)."""
    out = []
    for where in expression_paths(node, path):
        value: Any = node
        for part in where[len(path) :]:
            value = value[part]
        try:
            expr = parse(value)
        except ExpressionError as exc:
            out.append(locate(doc, where, value, exc))
            continue
        for name in sorted(expr.names - known if known is not None else set()):
            if name in arithmetic(doc).broken:
                continue
            hint = did_you_mean(name, sorted(known or ()))
            unknown = ExpressionError(f"unknown name {name!r}{hint}", expr.offset_of(name))
            out.append(locate(doc, where, value, unknown, "", Scope(dict.fromkeys(known or (), 0))))
    return out


def locate(doc: Document, path: Path, text: str, exc: ExpressionError, context: str = "",
           scope: Scope | None = None) -> Diagnostic:  # fmt: skip
    """The error of the expression ``text`` written at ``path``, at the column of the part at fault."""
    line, col = expression_column(doc, path, exc.offset)
    message = f"{exc} in {_clip(text)}{context}"
    hint = ""
    if "unknown name" in str(exc):
        if f"'{INDEX}'" in str(exc):
            hint = "index is the 1-based index of the innermost repeat: it is defined only inside one"
        elif scope is not None:
            hint = "names here: " + (", ".join(sorted(scope.values)) or "none (define constants: at the top)")
    return Diagnostic(message, line, col, format_path(path), hint=hint)


def expression_column(doc: Document, path: Path, offset: int) -> tuple[int, int]:
    """Line and column of character ``offset`` of the expression written at ``path`` (the value's own
    position when the text there is not the expression on one line)."""
    line, col = doc.mark(path)
    lines = doc.text.splitlines()
    if 1 <= line <= len(lines):
        src = lines[line - 1]
        i = col - 1
        if i < len(src) and src[i] in "\"'":
            i += 1
        if src.startswith(OPEN, i):
            return line, i + len(OPEN) + offset + 1
    return line, col


def _clip(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "...}"


def integral(value: Any) -> int | None:
    """``value`` as an int if it is an integral number (int, or a float with no fraction), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) <= INT_LIMIT:
        return int(value)
    return None
