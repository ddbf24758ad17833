"""Arithmetic in specs: a string value ``"${expr}"`` is an expression, evaluated once at compile time.

The language is arithmetic and nothing else:

* numbers (integers and decimals; no strings, booleans, complex numbers),
* names: the spec's ``constants``, the enclosing block's parameters and ``index`` (the 1-based index
  of the innermost enclosing ``repeat``), bound by the caller,
* ``+ - * / // % **`` and unary ``+ -``, parentheses,
* the functions ``sqrt log exp min max abs floor ceil`` (``log`` is natural; ``min``/``max`` take two
  or more arguments).

Each value follows Python's arithmetic exactly (``7 / 2`` is 3.5, ``7 // 2`` is 3, ``-7 % 3`` is 2,
``2 ** -1`` is 0.5, ``floor`` and ``ceil`` give integers), so an expression means what it would mean
in Python. The text is parsed with :mod:`ast` and every node is checked against an allow-list before
anything is evaluated: attribute access, subscripts, calls of anything but the eight functions,
keyword arguments, comparisons, conditionals, lambdas, comprehensions and every other construct are
refused with a message naming it. Nothing is ever passed to ``eval``, ``exec`` or ``compile``: the
evaluator walks the checked tree itself, so no expression can run code or read a file.

Work is bounded: at most :data:`MAX_CHARS` characters and :data:`MAX_NODES` nodes, nesting at most
:data:`MAX_DEPTH`; every intermediate integer must stay within ±(2**63 - 1) (:data:`INT_LIMIT`) and
every float must be finite. An integer power is checked *before* it is computed
(``9 ** 9 ** 9`` is refused at once, never computed), float overflow, division by zero, NaN, a
negative number's fractional power (complex in Python) and the domain errors of ``sqrt`` and
``log`` are errors. Every error is an :class:`ExpressionError` with the offset, within the
expression, of the part at fault.
"""

from __future__ import annotations

import ast
import math
import operator
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from netspec.errors import NetspecError
from netspec.registry import did_you_mean

Number = int | float

OPEN, CLOSE = "${", "}"
MAX_CHARS = 400
"""Characters of an expression (between ``${`` and ``}``)."""
MAX_NODES = 200
"""Syntax-tree nodes of an expression."""
MAX_DEPTH = 40
"""Nesting of an expression's syntax tree."""
INT_LIMIT = 2**63 - 1
"""Largest magnitude of an integer result or intermediate (int64)."""
MAX_ARGS = 16
"""Arguments of ``min`` / ``max``."""

FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int]] = {
    "sqrt": (math.sqrt, 1, 1),
    "log": (math.log, 1, 1),
    "exp": (math.exp, 1, 1),
    "abs": (abs, 1, 1),
    "floor": (math.floor, 1, 1),
    "ceil": (math.ceil, 1, 1),
    "min": (min, 2, MAX_ARGS),
    "max": (max, 2, MAX_ARGS),
}
"""Name -> (function, fewest arguments, most arguments)."""

BINARY: dict[type[ast.operator], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
    ast.FloorDiv: ("//", operator.floordiv),
    ast.Mod: ("%", operator.mod),
    ast.Pow: ("**", operator.pow),
}
UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}

ALLOWED = "numbers, names, + - * / // % ** and parentheses, and the functions " + " ".join(FUNCTIONS)

_REFUSED: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access (a.b)",
    ast.Subscript: "indexing (a[b])",
    ast.Compare: "comparisons",
    ast.BoolOp: "'and' / 'or'",
    ast.IfExp: "conditional expressions (a if b else c)",
    ast.Lambda: "lambda",
    ast.NamedExpr: "assignment (:=)",
    ast.Starred: "unpacking (*a)",
    ast.Tuple: "tuples (a, b)",
    ast.List: "lists",
    ast.Set: "sets",
    ast.Dict: "mappings",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.JoinedStr: "strings",
    ast.FormattedValue: "strings",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Slice: "slices",
}
_OPERATOR_NAMES: dict[type[ast.AST], str] = {
    ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&",
    ast.Invert: "~", ast.Not: "not",
}  # fmt: skip


class ExpressionError(NetspecError, ValueError):
    """An expression that cannot be parsed, is not allowed, or has no value.

    ``offset`` is the 0-based position of the part at fault within the expression text (the text
    between ``${`` and ``}``).
    """

    def __init__(self, message: str, offset: int = 0):
        super().__init__(message)
        self.offset = offset


def is_expression(value: Any) -> bool:
    """Whether a spec value is written as an expression: a string starting with ``${``."""
    return isinstance(value, str) and value.startswith(OPEN)


@dataclass(frozen=True)
class Expression:
    """A parsed and checked expression; :attr:`names` are the free names it reads."""

    text: str
    """The value as written, ``${...}``."""
    tree: ast.expr
    names: frozenset[str]
    shift: int = 0
    """Leading spaces inside ``${`` (node offsets count from the first non-space)."""

    @property
    def source(self) -> str:
        """The expression between ``${`` and ``}``."""
        return self.text[len(OPEN) : -len(CLOSE)]

    def offset_of(self, name: str) -> int:
        """Where ``name`` is first read in the expression (0 if it is not)."""
        found = [n.col_offset for n in ast.walk(self.tree) if isinstance(n, ast.Name) and n.id == name]
        return min(found) + self.shift if found else 0

    def evaluate(self, names: Mapping[str, Number]) -> Number:
        """The value, with ``names`` bound (see the module doc).

        Raises:
            ExpressionError: an unknown name, division by zero, overflow, a domain error.
        """
        return _Evaluator(names, self.shift).value(self.tree)


def parse(text: str) -> Expression:
    """Parse and check ``"${expr}"`` (the whole value, with its ``${`` and ``}``).

    Raises:
        ExpressionError: not an expression, too long, invalid syntax or a construct not allowed.
    """
    if not is_expression(text) or not text.endswith(CLOSE):
        raise ExpressionError(f"an expression is written ${{...}}: {_clip(text)!r} has no closing '}}'")
    source = text[len(OPEN) : -len(CLOSE)]
    if len(source) > MAX_CHARS:
        raise ExpressionError(f"the expression is {len(source)} characters long; at most {MAX_CHARS} are allowed")
    if not source.strip():
        raise ExpressionError("the expression is empty")
    if "\n" in source or "\r" in source:
        raise ExpressionError("an expression is written on one line")
    try:
        with warnings.catch_warnings():  # (Python warns about some odd literals on stderr: not for a spec's reader)
            warnings.simplefilter("ignore")
            tree = ast.parse(source.strip(), mode="eval").body
    except SyntaxError as exc:
        offset = (exc.offset - 1 if exc.offset else len(source.strip())) + (len(source) - len(source.lstrip()))
        raise ExpressionError(f"invalid expression: {exc.msg}", offset) from None
    except (ValueError, MemoryError, RecursionError):
        raise ExpressionError("invalid expression: it cannot be parsed") from None
    shift = len(source) - len(source.lstrip())
    names = _check(tree, shift)
    return Expression(text, tree, frozenset(names), shift)


def evaluate(text: str, names: Mapping[str, Number]) -> Number:
    """Parse and evaluate ``"${expr}"`` with ``names`` bound (errors as :func:`parse` and
    :meth:`Expression.evaluate`)."""
    return parse(text).evaluate(names)


def _clip(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _offset(node: ast.AST, shift: int) -> int:
    return (node.col_offset if isinstance(node, ast.expr) else 0) + shift


def _check(tree: ast.expr, shift: int) -> set[str]:
    """Every node allowed (raises ExpressionError otherwise); returns the free names."""
    names: set[str] = set()
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(f"the expression has more than {MAX_NODES} parts")
        if depth > MAX_DEPTH:
            raise ExpressionError(f"the expression is nested more than {MAX_DEPTH} levels deep", _offset(node, shift))
        children = _allowed_children(node, shift)
        if isinstance(node, ast.Name):
            names.add(node.id)
        stack.extend((child, depth + 1) for child in children)
    return names


def _allowed_children(node: ast.AST, shift: int) -> list[ast.AST]:
    """The sub-expressions of an allowed node (raises ExpressionError for a node not allowed)."""
    where = _offset(node, shift)
    if isinstance(node, ast.Constant):
        _check_constant(node.value, where)
        return []
    if isinstance(node, ast.Name):
        return []
    if isinstance(node, ast.BinOp):
        if type(node.op) not in BINARY:
            raise ExpressionError(f"operator '{_OPERATOR_NAMES.get(type(node.op), '?')}' is not allowed; "
                                  f"an expression has {ALLOWED}", where)  # fmt: skip
        return [node.left, node.right]
    if isinstance(node, ast.UnaryOp):
        if type(node.op) not in UNARY:
            raise ExpressionError(f"operator '{_OPERATOR_NAMES.get(type(node.op), '?')}' is not allowed; "
                                  f"an expression has {ALLOWED}", where)  # fmt: skip
        return [node.operand]
    if isinstance(node, ast.Call):
        return _call_arguments(node, where)
    what = _REFUSED.get(type(node), type(node).__name__)
    raise ExpressionError(f"{what} not allowed in an expression; it has {ALLOWED}", where)


def _check_constant(value: Any, where: int) -> None:
    if isinstance(value, bool) or value is None or value is Ellipsis:
        raise ExpressionError(f"{value!r} is not allowed in an expression: only numbers", where)
    if isinstance(value, (str, bytes)):
        raise ExpressionError("strings are not allowed in an expression: only numbers", where)
    if isinstance(value, complex):
        raise ExpressionError("complex numbers are not allowed in an expression", where)
    if isinstance(value, int) and abs(value) > INT_LIMIT:
        raise ExpressionError(f"integer {_clip(str(value))} is too large (the limit is 2**63 - 1)", where)
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError(f"{value!r} is not a finite number", where)


def _call_arguments(node: ast.Call, where: int) -> list[ast.AST]:
    if not isinstance(node.func, ast.Name):
        raise ExpressionError(f"only the functions {' '.join(FUNCTIONS)} can be called, by name", where)
    name = node.func.id
    if name not in FUNCTIONS:
        hint = did_you_mean(name, list(FUNCTIONS))
        raise ExpressionError(f"unknown function {name!r}{hint}; the functions are {' '.join(FUNCTIONS)}", where)
    if node.keywords:
        raise ExpressionError(f"{name}() takes no keyword arguments", where)
    if any(isinstance(a, ast.Starred) for a in node.args):
        raise ExpressionError(f"unpacking (*a) not allowed in {name}()", where)
    _, fewest, most = FUNCTIONS[name]
    if not fewest <= len(node.args) <= most:
        count = f"{fewest}" if fewest == most else f"{fewest} to {most}"
        raise ExpressionError(f"{name}() takes {count} argument(s), got {len(node.args)}", where)
    return list(node.args)


class _Evaluator:
    """Walks a checked tree; every intermediate result is bounded."""

    def __init__(self, names: Mapping[str, Number], shift: int):
        self.names = names
        self.shift = shift

    def value(self, node: ast.AST) -> Number:
        where = _offset(node, self.shift)
        if isinstance(node, ast.Constant):
            return _bounded(node.value, where)
        if isinstance(node, ast.Name):
            return self.name(node.id, where)
        if isinstance(node, ast.UnaryOp):
            return _bounded(UNARY[type(node.op)](self.value(node.operand)), where)
        if isinstance(node, ast.BinOp):
            left, right = self.value(node.left), self.value(node.right)
            return _binary(type(node.op), left, right, where)
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            return _call(node.func.id, [self.value(a) for a in node.args], where)
        raise ExpressionError(f"{type(node).__name__} not allowed in an expression", where)  # checked at parse

    def name(self, name: str, where: int) -> Number:
        if name not in self.names:
            if name in FUNCTIONS:
                raise ExpressionError(f"{name} is a function: call it, {name}(...)", where)
            hint = did_you_mean(name, list(self.names))
            raise ExpressionError(f"unknown name {name!r}{hint}", where)
        value = self.names[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ExpressionError(f"{name!r} is {_kind(value)}, not a number", where)
        return _bounded(value, where)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {_clip(value)!r}"
    return type(value).__name__


def _bounded(value: Any, where: int) -> Number:
    """``value`` if it is a bounded integer or a finite float (ExpressionError otherwise)."""
    if isinstance(value, bool):
        raise ExpressionError("true/false is not a number", where)
    if isinstance(value, int):
        if abs(value) > INT_LIMIT:
            raise ExpressionError("integer overflow: a result is beyond ±(2**63 - 1)", where)
        return value
    if isinstance(value, float):
        if math.isnan(value):
            raise ExpressionError("the result is not a number (NaN)", where)
        if math.isinf(value):
            raise ExpressionError("overflow: a result is infinite", where)
        return value
    if isinstance(value, complex):
        raise ExpressionError("the result is a complex number (a negative number to a fractional power)", where)
    raise ExpressionError(f"the result is {_kind(value)}, not a number", where)


def _binary(op: type[ast.operator], left: Number, right: Number, where: int) -> Number:
    symbol, fn = BINARY[op]
    if op is ast.Pow:
        _check_power(left, right, where)
    try:
        result = fn(left, right)
    except ZeroDivisionError:
        what = "zero to a negative power" if op is ast.Pow else "division by zero"
        raise ExpressionError(f"{what} ({_show(left)} {symbol} {_show(right)})", where) from None
    except OverflowError:
        raise ExpressionError(f"overflow: {_show(left)} {symbol} {_show(right)} is too large", where) from None
    return _bounded(result, where)


def _check_power(base: Number, exponent: Number, where: int) -> None:
    """Refuse an integer power whose result would pass the integer limit, before computing it."""
    exact = isinstance(base, int) and isinstance(exponent, int)
    if exact and exponent > 0 and abs(base) > 1 and exponent * math.log2(abs(base)) > 64:
        raise ExpressionError(f"integer overflow: {_show(base)} ** {_show(exponent)} is beyond ±(2**63 - 1)", where)


def _call(name: str, args: list[Number], where: int) -> Number:
    fn = FUNCTIONS[name][0]
    if name == "sqrt" and args[0] < 0:
        raise ExpressionError(f"sqrt of a negative number ({_show(args[0])})", where)
    if name == "log" and args[0] <= 0:
        raise ExpressionError(f"log of {_show(args[0])}: defined for positive numbers only", where)
    try:
        result = fn(*args)
    except OverflowError:
        raise ExpressionError(f"overflow: {name}({', '.join(map(_show, args))}) is too large", where) from None
    except ValueError:
        raise ExpressionError(f"{name}({', '.join(map(_show, args))}) has no value", where) from None
    return _bounded(result, where)


def _show(value: Number) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
