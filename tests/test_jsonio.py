"""The bounded JSON reader (netspec.io.jsonio): limits, located errors, and agreement with json.loads."""

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netspec.io import jsonio
from netspec.io.files import NotARegularFile
from netspec.io.jsonio import JSONError


def error(data, **limits) -> JSONError:
    with pytest.raises(JSONError) as info:
        jsonio.loads(data, "doc.json", **limits)
    return info.value


def test_deep_nesting_is_refused_where_it_happens_without_recursion():
    e = error(b"[" * 100_000 + b"]" * 100_000)
    assert (e.line, e.column) == (1, jsonio.MAX_DEPTH + 1) and "nesting deeper than 64 levels" in str(e)
    e = error(b'{"a": ' * 100_000 + b"1" + b"}" * 100_000)
    assert e.line == 1 and "nesting deeper" in e.message
    e = error(b"[\n" * 10 + b" [" * 100_000, max_depth=12)  # never closed, deep: located on its line
    assert (e.line, e.column) == (11, 6)  # the third bracket on line 11 opens level 13


def test_depth_is_counted_on_structure_only():
    assert jsonio.loads(json.dumps({"k": "[" * 10_000}), "x") == {"k": "[" * 10_000}
    tricky = ['\\"[[[[', "\\\\", "\\\\\\\"{{{{", "]]]]"]  # escaped quotes and backslashes before brackets
    assert jsonio.loads(json.dumps(tricky), "x", max_depth=1) == tricky
    nested = [[[[]]]]
    assert jsonio.loads(json.dumps(nested), "x", max_depth=4) == nested
    assert "nesting deeper than 3" in error(json.dumps(nested), max_depth=3).message


def test_limits_on_size_and_values():
    assert "larger than the limit of 10" in error(b"[" + b"1," * 10 + b"1]", max_bytes=10).message
    assert "more than 5 values" in error(b"[1,2,3,4,5,6]", max_values=5).message
    assert "more than 2 values" in error(b'["a", "b", "c"]', max_values=2).message
    assert jsonio.loads(b"[1,2,3,4]", "x", max_values=5) == [1, 2, 3, 4]
    assert jsonio.loads(b'{"a": [1, {"b": 2}]}', "x", max_values=7) == {"a": [1, {"b": 2}]}  # keys count


@pytest.mark.parametrize(
    ("data", "needle", "where"),
    [
        (b'{"a": 1,\n "a": 2}', "duplicate key 'a'", (0, 0)),
        (b"[NaN]", "NaN is not JSON", (0, 0)),
        (b"[1, -Infinity]", "-Infinity is not JSON", (0, 0)),
        (b"[1e999]", "overflows to infinity", (0, 0)),
        (b"[" + b"9" * 5000 + b"]", "a number cannot be read", (0, 0)),
        (b'{"a": \xff}', "not UTF-8: byte 0xff", (1, 7)),
        (b'{\n  "a": 1,\n}', "Expecting property name", (3, 1)),
        (b"", "Expecting value", (1, 1)),
        (b'["unterminated', "Unterminated string", (1, 2)),
    ],
)
def test_malformed_documents_are_located_errors(data, needle, where):
    e = error(data)
    assert needle in e.message and (e.line, e.column) == where, e
    assert str(e).startswith("doc.json" + (f":{where[0]}:{where[1]}: " if where[0] else ": "))


def test_load_reads_regular_files_only_and_no_further_than_the_limit(tmp_path):
    import os

    path = tmp_path / "big.json"
    path.write_text("[" + "0," * 1000 + "0]")
    with pytest.raises(JSONError, match="larger than the limit of 100 bytes"):
        jsonio.load(str(path), max_bytes=100)
    assert len(jsonio.load(str(path))) == 1001
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFile, match="a FIFO"):  # would block forever if it were opened for reading
        jsonio.load(str(fifo))
    with pytest.raises(NotARegularFile, match="a folder"):
        jsonio.load(str(tmp_path))


scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
documents = st.recursive(
    scalars | st.text(alphabet='ab"\\[]{}\n\u00e9\U0001f600', max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(alphabet='k"\\[{', max_size=3), inner,
                                                                max_size=4),
    max_leaves=30,
)  # fmt: skip


def depth(value) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


@given(documents, st.integers(1, 6))
def test_valid_documents_read_as_json_loads_reads_them(value, max_depth):
    text = json.dumps(value)
    if depth(value) > max_depth:
        assert "nesting deeper" in error(text, max_depth=max_depth).message
    else:
        assert jsonio.loads(text, "x", max_depth=max_depth) == json.loads(text)


def reference(text: str) -> tuple[int, int, bool]:
    """Reading character by character: the deepest level of brackets outside strings, the level left open at
    the end (a closing bracket with none open is skipped, as removing innermost pairs does), and whether the
    text has a backslash outside a string, where the parser stops (then the levels are those before it)."""
    level = top = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            in_string, escaped = (True, False) if escaped else (c != '"', c == "\\")
        elif c == "\\":
            return top, level, True
        elif c == '"':
            in_string = True
        elif c in "[{":
            level += 1
            top = max(top, level)
        elif c in "]}":
            level = max(level - 1, 0)
    return top, level, False


@given(st.text(alphabet='[]{}"\\ a,:', max_size=40), st.integers(1, 5))
def test_the_depth_check_agrees_with_a_character_by_character_reading(text, max_depth):
    blanked = text.encode().replace(b"\\\\", b"__").replace(b'\\"', b"__")
    skeleton = b"".join(jsonio._without_strings(blanked, chunk=3))  # tiny pieces: every cut is exercised
    shallow = jsonio._shallow(skeleton, max_depth)
    top, open_, stops = reference(text)
    if stops:  # invalid JSON: what matters is that the parser, stopping there, never goes deeper
        assert not shallow or top <= max_depth
    else:
        assert shallow == (top <= max_depth and open_ == 0)


@given(st.binary(max_size=60) | st.text(alphabet='[]{}"\\ 1e-9,:.tnul', max_size=60))
def test_any_bytes_give_a_value_or_a_json_error(data):
    try:
        value = jsonio.loads(data, "x", max_depth=4)
    except JSONError as exc:
        assert exc.message
        return
    assert value == json.loads(data) and not (isinstance(value, float) and not math.isfinite(value))


def test_no_module_parses_json_but_the_bounded_reader():
    """``json.load``/``json.loads`` recurse once per nesting level with no size or value limit: netspec reads
    every JSON document it did not write through netspec.io.jsonio (a new reader must too)."""
    import ast
    from pathlib import Path

    src = Path(jsonio.__file__).resolve().parents[1]
    parsers = {"load", "loads", "JSONDecoder", "decoder", "raw_decode"}
    found = []
    for path in sorted(src.rglob("*.py")):
        if path.name == "jsonio.py":
            continue
        aliases = {"json"}  # `import json as j` counts too
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                aliases |= {a.asname for a in node.names if a.name == "json" and a.asname}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "json" and \
                    (node.module != "json" or any(a.name in parsers for a in node.names)):  # fmt: skip
                found.append(f"{path.relative_to(src)}:{node.lineno}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in parsers and \
                    isinstance(node.value, ast.Name) and node.value.id in aliases:  # fmt: skip
                found.append(f"{path.relative_to(src)}:{node.lineno}")
    assert not found, f"use netspec.io.jsonio instead of json.load(s) at {found}"
