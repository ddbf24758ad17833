"""Hardened YAML loading: spec bytes -> plain data plus the position of every node.

Safety rules, all enforced before anything large is built:

* at most :data:`MAX_BYTES` of input, UTF-8 only (a BOM is allowed);
* PyYAML's *composer* only (no constructor ever runs): no Python tags, no
  custom tags; explicit tags limited to the YAML core schema;
* plain scalars resolved with the YAML 1.2 core schema: ``1e-3`` is a float,
  ``no`` and ``2001-12-14`` are strings, ``~``/``null`` is null;
* aliases are shared nodes: the expanded size is counted with a memo over the
  node graph and refused past :data:`MAX_NODES` (an alias bomb costs
  milliseconds), and nesting deeper than :data:`MAX_DEPTH` is refused;
* duplicate keys, non-string keys, integers of more than :data:`MAX_INT_DIGITS`
  digits and multi-document streams are errors.

Every problem is a :class:`~netspec.errors.Diagnostic` with line and column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from netspec.errors import Diagnostic, SpecError

MAX_BYTES = 1 << 20
MAX_NODES = 100_000
MAX_DEPTH = 64
MAX_INT_DIGITS = 19

CORE = "tag:yaml.org,2002:"
ALLOWED_TAGS = {CORE + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "merge")}

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)

Path = tuple[str | int, ...]


@dataclass
class Document:
    """Loaded spec data with the 1-based (line, column) of every value and key."""

    data: Any
    source: str
    text: str
    marks: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Path, tuple[int, int]] = field(default_factory=dict)
    arithmetic: Any = None
    """What :func:`netspec.spec.arithmetic.resolve` evaluated (set once, before validation)."""

    def mark(self, path: Path, key: bool = False) -> tuple[int, int]:
        """The position of ``path``, or of its nearest ancestor that has one."""
        table = self.key_marks if key else self.marks
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if p in self.marks:
                return self.marks[p]
            p = p[:-1]
        return self.marks.get((), (1, 1))


def format_path(path: Path) -> str:
    """``("layers", 2, "units")`` -> ``layers[2].units``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_path(text: str) -> Path:
    """``layers[2].layers[0]`` -> ``("layers", 2, "layers", 0)`` (the inverse of :func:`format_path`)."""
    parts: list[str | int] = []
    for token in re.findall(r"\[(\d+)\]|\.?([^.\[\]]+)", text):
        parts.append(int(token[0]) if token[0] else token[1])
    return tuple(parts)


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Fail(Exception):
    def __init__(self, message: str, where: tuple[int, int], path: Path = ()):
        super().__init__(message)
        self.diagnostic = Diagnostic(message, where[0], where[1], format_path(path))


def decode(raw: bytes, source: str) -> str:
    """UTF-8 text of ``raw``, or a located error for the first invalid byte."""
    if len(raw) > MAX_BYTES:
        raise SpecError(source, [Diagnostic(f"file is {len(raw)} bytes; the limit is {MAX_BYTES}", 1, 1)])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        msg = f"not UTF-8 text: byte 0x{raw[exc.start]:02x} cannot be decoded"
        raise SpecError(source, [Diagnostic(msg, line, col)]) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise SpecError(source, [Diagnostic("binary data: the file contains NUL bytes", line, 1)], text)
    return text


def load_text(text: str, source: str = "<string>") -> Document:
    """Compose, check and convert spec text (see the module doc)."""
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise SpecError(source, [Diagnostic(f"spec is larger than {MAX_BYTES} bytes", 1, 1)], text)
    root = _compose(text, source)
    doc = Document(None, source, text)
    try:
        _expanded_size(root, {}, 0)
        doc.data = _convert(root, (), doc, 0)
    except _Fail as exc:
        raise SpecError(source, [exc.diagnostic], text) from None
    return doc


def load_file(path: str) -> Document:
    """Load the spec file ``path`` (a regular file: a FIFO or device is refused, never opened for reading).

    Raises:
        SpecError: as :func:`load_text`. NotARegularFile, OSError: the file cannot be read.
    """
    from netspec.io.files import open_regular

    with open_regular(path) as fh:
        raw = fh.read(MAX_BYTES + 1)
    return load_text(decode(raw, path), path)


class _Loader(yaml.SafeLoader):
    """Records on every scalar whether its tag was written in the file."""

    def compose_scalar_node(self, anchor: str | None) -> ScalarNode:  # type: ignore[override]  # stubs say dict
        event = self.peek_event()
        node = super().compose_scalar_node(anchor)  # type: ignore[arg-type]
        node.explicit = event.tag not in (None, "!")  # type: ignore[attr-defined]
        return node


def _compose(text: str, source: str) -> Node:
    try:
        _check_depth(text)
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "invalid YAML"
        if ("\t" in text and "tab" in problem.lower()) or "\\t" in problem:
            problem += " (YAML does not allow tabs for indentation; use spaces)"
        context = f" {exc.context}" if exc.context and not problem.startswith(exc.context) else ""
        raise SpecError(
            source, [Diagnostic(f"YAML syntax error: {problem}{context}".strip(), line, col)], text
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(source, [Diagnostic(f"YAML error: {exc}", 1, 1)], text) from None
    except RecursionError:
        raise SpecError(source, [Diagnostic(f"nesting deeper than {MAX_DEPTH} levels", 1, 1)], text) from None
    if not nodes:
        raise SpecError(source, [Diagnostic("the spec is empty", 1, 1)], text)
    if len(nodes) > 1:
        line, col = _mark(nodes[1])
        raise SpecError(source, [Diagnostic("one spec per file: found a second YAML document", line, col)], text)
    return nodes[0]


def _check_depth(text: str) -> None:
    """Refuse deep nesting with the iterative parser, before the recursive composer runs."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise yaml.MarkedYAMLError(problem=f"nesting deeper than {MAX_DEPTH} levels", problem_mark=mark)  # type: ignore[arg-type]
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _expanded_size(node: Node, memo: dict[int, int], depth: int) -> int:
    """Nodes in the tree after alias expansion, memoized over shared nodes."""
    key = id(node)
    if key in memo:
        if memo[key] < 0:
            raise _Fail("recursive alias: a node contains itself", _mark(node))
        return memo[key]
    if depth > MAX_DEPTH:
        raise _Fail(f"nesting deeper than {MAX_DEPTH} levels", _mark(node))
    memo[key] = -1
    total = 1
    if isinstance(node, SequenceNode):
        total += sum(_expanded_size(child, memo, depth + 1) for child in node.value)
    elif isinstance(node, MappingNode):
        for k, v in node.value:
            total += _expanded_size(k, memo, depth + 1) + _expanded_size(v, memo, depth + 1)
    if total > MAX_NODES:
        raise _Fail(
            f"the document expands to more than {MAX_NODES} nodes (alias expansion); refusing to load it",
            _mark(node),
        )
    memo[key] = total
    return total


def _check_tag(node: Node, path: Path) -> None:
    if node.tag in ALLOWED_TAGS:
        return
    if isinstance(node, ScalarNode) and node.tag.startswith(CORE) and node.tag[len(CORE) :] in ("timestamp", "binary"):
        return  # implicit YAML 1.1 resolutions; re-resolved below with the 1.2 core schema
    raise _Fail(f"tag {node.tag!r} is not allowed (only YAML core tags: !!str, !!int, !!float, ...)", _mark(node), path)


def _convert(node: Node, path: Path, doc: Document, depth: int) -> Any:
    _check_tag(node, path)
    doc.marks.setdefault(path, _mark(node))
    if isinstance(node, ScalarNode):
        return _scalar(node, path)
    if isinstance(node, SequenceNode):
        return [_convert(child, (*path, i), doc, depth + 1) for i, child in enumerate(node.value)]
    assert isinstance(node, MappingNode)
    return _mapping(node, path, doc, depth)


def _mapping(
    node: MappingNode, path: Path, doc: Document, depth: int, taken: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Convert a mapping; keys in ``taken`` (already set by the mapping that merges this one) are skipped,
    so neither their values nor their positions replace the explicit ones."""
    out: dict[str, Any] = {}
    first: dict[str, tuple[int, int]] = {}
    merged: list[MappingNode] = []
    for key_node, value_node in node.value:
        if key_node.tag == CORE + "merge" or (
            isinstance(key_node, ScalarNode) and key_node.value == "<<" and key_node.style is None
        ):
            merged.extend(_merge_sources(value_node, path))
            continue
        if not isinstance(key_node, ScalarNode):
            raise _Fail("keys must be plain strings, not collections", _mark(key_node), path)
        key = _scalar(key_node, path)
        if not isinstance(key, str):
            key = key_node.value
        if key in first:
            line = first[key][0]
            raise _Fail(f"duplicate key {key!r} (first defined on line {line})", _mark(key_node), (*path, key))
        first[key] = _mark(key_node)
        if key in taken:
            continue
        doc.key_marks[(*path, key)] = _mark(key_node)
        out[key] = _convert(value_node, (*path, key), doc, depth + 1)
    for source in merged:  # earlier sources win, and explicit keys win over all of them
        out.update(_mapping(source, path, doc, depth, taken | frozenset(out)))
    return out


def _merge_sources(node: Node, path: Path) -> list[MappingNode]:
    if isinstance(node, MappingNode):
        return [node]
    if isinstance(node, SequenceNode) and all(isinstance(n, MappingNode) for n in node.value):
        return list(node.value)
    raise _Fail("a merge key '<<' takes a mapping or a list of mappings", _mark(node), path)


def _scalar(node: ScalarNode, path: Path) -> Any:
    text = node.value
    tag = node.tag if getattr(node, "explicit", False) else None
    if node.style is not None or tag == CORE + "str":  # quoted, block or explicitly !!str
        return text
    if tag in (None, CORE + "null") and _NULL.match(text):
        return None
    if tag in (None, CORE + "bool") and _BOOL.match(text):
        return text.lower() == "true"
    if tag in (None, CORE + "int") and _INT.match(text):
        digits = text.lstrip("+-")
        if len(digits) > MAX_INT_DIGITS:
            raise _Fail(f"integer {text[:24]}{'...' if len(text) > 24 else ''} is too large", _mark(node), path)
        return int(text, 0) if text.startswith(("0o", "0x")) else int(text)
    if tag in (None, CORE + "float") and (_FLOAT.match(text) or (tag and _INT.match(text))):
        return float(text.lower().replace(".inf", "inf").replace(".nan", "nan"))
    if tag is not None and tag != CORE + "str":
        raise _Fail(f"{text!r} is not a valid {tag[len(CORE) :]}", _mark(node), path)
    return text
