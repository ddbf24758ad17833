"""The expression evaluator (netspec.spec.expressions): Python's arithmetic, nothing else, bounded work."""

from __future__ import annotations

import ast
import builtins
import inspect
import math
import operator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netspec.spec import expressions
from netspec.spec.expressions import INT_LIMIT, ExpressionError, evaluate, parse

NAMES = ("a", "b", "d_model", "n_layers")
OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
FUNCTIONS = {"sqrt": 1, "log": 1, "exp": 1, "abs": 1, "floor": 1, "ceil": 1, "min": 2, "max": 3}
PYTHON = {"sqrt": math.sqrt, "log": math.log, "exp": math.exp, "abs": abs, "floor": math.floor, "ceil": math.ceil,
          "min": min, "max": max}  # fmt: skip
PYTHON_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}  # fmt: skip
ERROR = object()


def _leaf() -> st.SearchStrategy[ast.expr]:
    numbers = st.one_of(
        st.integers(0, 10**6),
        st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
        st.sampled_from([0, 1, 2, 0.5, 1e-300, 1e300, 2**62]),
    )
    return st.one_of(numbers.map(lambda v: ast.Constant(v)), st.sampled_from(NAMES).map(lambda n: ast.Name(n)))


def _exponent() -> st.SearchStrategy[ast.expr]:
    """Small exponents, so Python's own evaluation (the reference) stays quick."""
    small = st.one_of(st.integers(0, 7), st.floats(0, 4, allow_nan=False)).map(lambda v: ast.Constant(v))
    return st.one_of(small, small.map(lambda c: ast.UnaryOp(ast.USub(), c)))


def _tree(children: st.SearchStrategy[ast.expr]) -> st.SearchStrategy[ast.expr]:
    binary = st.tuples(st.sampled_from(OPS), children, children).map(
        lambda t: ast.BinOp(t[1], t[0](), t[2]) if t[0] is not ast.Pow else None
    )
    power = st.tuples(children, _exponent()).map(lambda t: ast.BinOp(t[0], ast.Pow(), t[1]))
    unary = st.tuples(st.sampled_from([ast.USub, ast.UAdd]), children).map(lambda t: ast.UnaryOp(t[0](), t[1]))
    call = st.sampled_from(sorted(FUNCTIONS)).flatmap(
        lambda f: st.lists(children, min_size=FUNCTIONS[f], max_size=FUNCTIONS[f]).map(
            lambda args: ast.Call(ast.Name(f), args, [])
        )
    )
    return st.one_of(binary.filter(lambda n: n is not None), power, unary, call)


TREES = st.recursive(_leaf(), _tree, max_leaves=12)
CONSTANTS = st.fixed_dictionaries({n: st.one_of(st.integers(-(10**9), 10**9),
                                                st.floats(-1e9, 1e9, allow_nan=False)) for n in NAMES})  # fmt: skip


def _python(source: str, constants: dict[str, Any]) -> Any:
    """Python's own value of the expression (the reference), or ERROR where Python has none we accept."""
    try:
        value = eval(source, {"__builtins__": {}}, {**PYTHON, **constants})  # the reference, in the test only
    except (ZeroDivisionError, OverflowError, ValueError, TypeError):  # TypeError: a math function given a complex
        return ERROR
    if isinstance(value, complex) or (isinstance(value, float) and not math.isfinite(value)):
        return ERROR
    if isinstance(value, int) and abs(value) > INT_LIMIT:
        return ERROR
    return value


def _bounded_throughout(node: ast.AST, constants: dict[str, Any]) -> bool:
    """Whether every intermediate result is within netspec's bounds (Python's operators, node by node)."""
    values: list[Any] = []

    def walk(n: ast.AST) -> Any:
        if isinstance(n, ast.Constant):
            return n.value
        if isinstance(n, ast.Name):
            return constants[n.id]
        if isinstance(n, ast.UnaryOp):
            v = -walk(n.operand) if isinstance(n.op, ast.USub) else +walk(n.operand)
        elif isinstance(n, ast.BinOp):
            v = PYTHON_OPS[type(n.op)](walk(n.left), walk(n.right))
        else:
            assert isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
            v = PYTHON[n.func.id](*[walk(a) for a in n.args])
        values.append(v)
        return v

    try:
        walk(node)
    except (ZeroDivisionError, OverflowError, ValueError, TypeError):
        return False
    return all(not isinstance(v, complex) and (math.isfinite(v) if isinstance(v, float) else abs(v) <= INT_LIMIT)
               for v in values)  # fmt: skip


@settings(max_examples=400)
@given(tree=TREES, constants=CONSTANTS)
def test_random_arithmetic_equals_pythons_value(tree: ast.expr, constants: dict[str, Any]) -> None:
    source = ast.unparse(tree)
    expected = _python(source, constants)
    try:
        got: Any = evaluate("${" + source + "}", constants)
    except ExpressionError:
        got = ERROR
    if got is ERROR:  # refused: Python has no value either, or an intermediate result passed the bounds
        assert expected is ERROR or not _bounded_throughout(tree, constants), source
        return
    assert expected is not ERROR, source
    assert got == expected and type(got) is type(expected), (source, got, expected)


@pytest.mark.parametrize(
    ("text", "value"),
    [("${7 / 2}", 3.5), ("${7 // 2}", 3), ("${-7 % 3}", 2), ("${2 ** -1}", 0.5), ("${2 ** 3 ** 2}", 512),
     ("${-2 ** 2}", -4), ("${floor(2.5)}", 2), ("${ceil(-2.5)}", -2), ("${min(3, 1.5, 2)}", 1.5),
     ("${max(2, 2.0)}", 2), ("${abs(-3)}", 3), ("${sqrt(16)}", 4.0), ("${log(exp(2))}", 2.0),
     ("${ 0.02 / sqrt(2 * 12) }", 0.02 / math.sqrt(24)), ("${1e-3}", 0.001), ("${0x10}", 16)],
)  # fmt: skip
def test_values_follow_python(text: str, value: float) -> None:
    got = evaluate(text, {})
    assert got == value and type(got) is type(value)


REFUSED = [
    "${a.b}", "${a[0]}", "${a[1:2]}", "${1 < 2}", "${1 and 2}", "${not 1}", "${~1}", "${1 if a else 2}",
    "${lambda: 1}", "${(lambda: 1)()}", "${(a := 1)}", "${(1, 2)}", "${[1]}", "${{1}}", "${{1: 2}}",
    "${[x for x in a]}", "${(x for x in a)}", "${'a'}", "${b'a'}", "${f'{a}'}", "${1j}", "${True}", "${None}",
    "${...}", "${1 @ 2}", "${1 << 2}", "${1 >> 2}", "${1 | 2}", "${1 ^ 2}", "${1 & 2}", "${sqrt(x=1)}",
    "${sqrt(*a)}", "${min(1)}", "${sqrt(1, 2)}", "${open('x')}", "${eval('1')}", "${exec('1')}",
    "${__import__('os')}", "${__import__('os').system('touch pwned')}", "${().__class__.__base__.__subclasses__()}",
    "${globals()}", "${getattr(a, 'b')}", "${max(1, 2).real}", "${sqrt.__call__(4)}", "${1e999}",
    "${" + "9" * 20 + "}", "${(yield)}", "${await a}", "${sqrt}", "${}", "${ }", "${1 +}", "${(1}", "${1",
    "${1}x", "${a; b}", "${a\n+ 1}", "${" + "1+" * 300 + "1}", "${" + "(1+" * 45 + "1" + ")" * 45 + "}",
    "${" + "-" * 60 + "1}",
]  # fmt: skip


@pytest.mark.parametrize("text", REFUSED)
def test_every_disallowed_construct_is_refused(text: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ExpressionError):
        evaluate(text, {"a": 1, "b": 2})
    assert list(tmp_path.iterdir()) == []  # nothing ran: no file written


def test_refusals_name_the_construct() -> None:
    cases = {"${a.b}": "attribute access", "${1 < 2}": "comparisons", "${'x'}": "strings",
             "${open('f')}": "unknown function 'open'", "${flor(2.5)}": "did you mean 'floor'",
             "${d_modle}": "did you mean 'd_model'", "${1 / (a - a)}": "division by zero",
             "${1 << 2}": "operator '<<'", "${sqrt(-1)}": "sqrt of a negative number"}  # fmt: skip
    for text, words in cases.items():
        with pytest.raises(ExpressionError, match=words.replace("(", r"\(")):
            evaluate(text, {"a": 1, "d_model": 8})


def test_errors_point_at_the_part_at_fault() -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate("${2 * d_modle + 1}", {"d_model": 8})
    assert info.value.offset == 4
    with pytest.raises(ExpressionError) as info:
        evaluate("${  1 + 2 + a.b}", {"a": 1})
    assert info.value.offset == len("  1 + 2 + ")


TOKENS = ["a", "b", "1", "2.5", "+", "-", "*", "/", "//", "%", "**", "(", ")", ",", "sqrt", "min", ".", "[", "]",
          "'x'", "__import__", "open", "lambda", ":", "if", "else", "<", " ", "=", "__class__", "1e400",
          "j"]  # fmt: skip


@settings(max_examples=300)
@given(tokens=st.lists(st.sampled_from(TOKENS), max_size=24))
def test_no_expression_runs_code(tokens: list[str]) -> None:
    """Any text is a number or an ExpressionError; nothing is imported, opened, compiled to code or executed on
    the way."""
    ran: list[str] = []
    watching = [False]

    def watched(name: str) -> Any:
        original = getattr(builtins, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            parse_only = name == "compile" and kwargs.get("flags", args[3] if len(args) > 3 else 0) & ast.PyCF_ONLY_AST
            if watching[0] and not parse_only:  # (ast.parse is compile(..., flags=PyCF_ONLY_AST): a tree, no code)
                ran.append(name)
            return original(*args, **kwargs)

        return call

    with pytest.MonkeyPatch.context() as patch:
        for name in ("open", "__import__", "eval", "exec", "compile", "getattr", "input", "breakpoint"):
            patch.setattr(builtins, name, watched(name))
        watching[0] = True
        try:
            value: Any = evaluate("${" + "".join(tokens) + "}", {"a": 3, "b": 0.5})
        except ExpressionError:
            value = None
        finally:
            watching[0] = False
    assert ran == []
    assert value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def test_the_evaluator_never_calls_eval_exec_or_compile() -> None:
    tree = ast.parse(inspect.getsource(expressions))
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert not called & {"eval", "exec", "compile", "__import__", "getattr", "open"}


@pytest.mark.parametrize("text", ["${9 ** 9 ** 9}", "${10 ** 10 ** 10}", "${2 ** 2 ** 2 ** 2 ** 2}",
                                  "${(2 ** 62) ** 62}", "${3 ** 41}", "${-2 ** 64}"])  # fmt: skip
def test_powers_are_refused_before_they_are_computed(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    symbol, power = expressions.BINARY[ast.Pow]

    def checked(base: Any, exponent: Any) -> Any:
        if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
            assert exponent * math.log2(abs(base)) <= 64, f"computed {base} ** {exponent}"
        return power(base, exponent)

    monkeypatch.setitem(expressions.BINARY, ast.Pow, (symbol, checked))
    with pytest.raises(ExpressionError, match="overflow"):
        evaluate(text, {})


@pytest.mark.parametrize(("text", "words"), [("${1e308 * 10}", "infinite"), ("${exp(1000)}", "too large"),
                                             ("${2.0 ** 5000}", "too large"), ("${floor(1e300)}", "overflow"),
                                             ("${(-8) ** 0.5}", "complex"), ("${log(0)}", "positive"),
                                             ("${0.0 ** -1}", "negative power"), ("${5 % 0}", "division by zero"),
                                             ("${2 ** 63}", "overflow"), ("${a}", "is the string")])  # fmt: skip
def test_overflow_nan_and_domain_errors(text: str, words: str) -> None:
    with pytest.raises(ExpressionError, match=words):
        evaluate(text, {"a": "x"})  # type: ignore[dict-item]


def test_limits_on_size() -> None:
    with pytest.raises(ExpressionError, match="characters"):
        parse("${" + "1+" * 250 + "1}")
    chunk = "(" + "+".join(["a"] * 30) + ")"
    with pytest.raises(ExpressionError, match="parts"):
        parse("${" + "+".join([chunk] * 4) + "}")
    with pytest.raises(ExpressionError, match="nested"):
        parse("${" + "+".join(["a"] * 60) + "}")
    assert parse("${a + b * c}").names == {"a", "b", "c"}
