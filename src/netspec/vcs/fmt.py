"""``netspec fmt``: one canonical layout for spec files, keeping comments (ruamel.yaml's round trip).

The layout: top-level keys in the schema's order (``netspec``, ``name``, ``seed``, ... ``defaults``),
then the ``x-`` keys as written (where anchors are defined once, before their aliases), then
``imports``, ``blocks`` and ``layers`` (definitions before use; unknown keys after, as written); in a
layer ``type`` (or ``block``/``repeat``), ``name``, ``inputs``, then the layer type's own keys in the
order its documentation lists them; ``name`` first in an initializer or activation mapping; a layer (or
block parameter) on one line in flow style when it fits in :data:`FLOW_WIDTH` columns and holds no
comment, else block style; shapes and other lists of scalars in flow style; a quoted scalar keeps its
quotes (``"${n}"`` and ``'${n}'`` both stay as written), and quotes are added only where YAML needs them;
2-space indentation.

The result is checked before anything is written: the formatted text must load (with netspec's own
safe loader) to exactly the same data as the original, so formatting cannot change what a spec builds.
Mappings that use YAML merge keys (``<<``) keep their key order, and go on one line as ``{<<: *conv, name:
c1, filters: 16}`` when that fits (their merged keys are not written out).
"""

from __future__ import annotations

import io
import re
from typing import Any

from netspec.errors import NetspecError

FLOW_WIDTH = 120
"""A layer mapping is written on one line when it fits in this many columns (with its indentation)."""
LAYER_HEAD = ("type", "block", "repeat", "name", "inputs")
BLOCK_ORDER = ("description", "params", "layers")


def _yaml() -> Any:
    try:
        from ruamel.yaml import YAML
    except ImportError:
        raise NetspecError("netspec fmt needs ruamel.yaml: pip install ruamel.yaml") from None
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True  # a quoted scalar keeps its quotes: "${n}" and '${n}' both stay as written
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def format_text(text: str, source: str = "<string>") -> str:
    """The canonical form of spec ``text``.

    Raises:
        SpecError: the text is not YAML netspec accepts (located, as any spec error).
        NetspecError: formatting would change the data (a bug; nothing is written).
    """
    from netspec.spec.loader import load_text

    if not re.search(r"^netspec\s*:", text, re.M):  # other YAML (CI workflows, templates) is not ours to judge
        raise NotASpec(f"{source}: not a netspec spec (no top-level 'netspec:' key); left as it is")
    before = load_text(text, source).data  # netspec's safe loader first: limits, duplicate keys, tags
    if not isinstance(before, dict) or "netspec" not in before:
        raise NotASpec(f"{source}: not a netspec spec (no top-level 'netspec:' key); left as it is")
    yaml = _yaml()
    from ruamel.yaml.error import YAMLError

    try:
        data = yaml.load(text)
        if isinstance(data, dict):
            _canonical(data)
        out = io.StringIO()
        yaml.dump(data, out)
    except YAMLError as exc:  # YAML that PyYAML's composer takes but the round-trip parser reads otherwise
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise NetspecError(f"{source}{where}: cannot format this YAML (the round-trip parser reads it otherwise: "
                           f"{problem}); left as it is") from None  # fmt: skip
    result = out.getvalue()
    if load_text(result, source).data != before:
        raise NetspecError(f"{source}: formatting would change the spec's data; left as it is (please report)")
    return result


class NotASpec(NetspecError):
    """A YAML file that is not a spec (fmt leaves it alone)."""


def _canonical(doc: Any) -> None:
    from netspec.spec.schema import build_schema

    top = [k for k in build_schema()["properties"] if k not in ("imports", "blocks", "layers")]
    anchors = [k for k in doc if isinstance(k, str) and k.startswith("x-")]
    _reorder(doc, [*top, *anchors, "imports", "blocks", "layers"])
    for key, value in doc.items():
        if key == "layers":
            _layers(value, 2)
        elif key == "blocks" and _is_map(value):
            for block in value.values():
                if _is_map(block):
                    _reorder(block, list(BLOCK_ORDER))
                    _block_style(block)
                    if _is_map(block.get("params")) and not _flow_if_short(block["params"], 6):
                        _block_style(block["params"])
                        for param in block["params"].values():
                            _flow_if_short(param, 8)
                    _layers(block.get("layers"), 6)
        elif key in ("input", "inputs", "outputs", "defaults"):
            _flow_if_short(value, 2) if key != "defaults" else _style_defaults(value)


def _style_defaults(value: Any) -> None:
    if _is_map(value):
        _block_style(value)
        for v in value.values():
            if _is_map(v):
                _reorder(v, ["name"])
            _flow_if_short(v, 4)


def _layers(layers: Any, indent: int) -> None:
    if not _is_seq(layers):
        return
    _block_style(layers)
    from netspec.nn.catalog import LAYER_TYPES

    for layer in layers:
        if not _is_map(layer):
            continue
        cls = LAYER_TYPES.get(layer.get("type")) if isinstance(layer.get("type"), str) else None
        _reorder(layer, [*LAYER_HEAD, *(cls.OPTIONS if cls else ())])
        for value in layer.values():
            if _is_map(value):
                _reorder(value, ["name"])
        if "repeat" in layer and _is_seq(layer.get("layers")):
            _block_style(layer)
            _layers(layer["layers"], indent + 4)
        elif not _flow_if_short(layer, indent + 2):
            _block_style(layer)
            for value in layer.values():
                _flow_if_short(value, indent + 4)


def _is_map(node: Any) -> bool:
    from ruamel.yaml.comments import CommentedMap

    return isinstance(node, CommentedMap)


def _is_seq(node: Any) -> bool:
    from ruamel.yaml.comments import CommentedSeq

    return isinstance(node, CommentedSeq)


def _reorder(m: Any, order: list[str]) -> None:
    """Put ``m``'s keys in ``order`` (the others after, as written), keeping their comments."""
    if getattr(m, "merge", None):
        return
    keys = list(m.keys())
    wanted = [k for k in order if k in m] + [k for k in keys if k not in order]
    if wanted == keys:
        return
    comments = dict(m.ca.items)
    for k in wanted:
        m.move_to_end(k)
    m.ca.items.clear()
    m.ca.items.update(comments)


def _has_comments(node: Any) -> bool:
    if _is_map(node) or _is_seq(node):
        if node.ca.items or node.ca.comment:
            return True
        children = node.values() if _is_map(node) else node
        return any(_has_comments(c) for c in children)
    return False


def _own(node: Any) -> list[Any]:
    """A mapping's own keys, in order (not those a merge key ``<<`` brings in)."""
    own = getattr(node, "_ok", None)
    return [k for k in node if k in own] if getattr(node, "merge", None) and own is not None else list(node)


def _merged(node: Any) -> list[Any]:
    """The mappings a merge key ``<<`` brings into ``node`` (ruamel keeps (position, map) pairs in older
    versions, the maps in newer ones)."""
    return [m[1] if isinstance(m, tuple) else m for m in getattr(node, "merge", None) or []]


def _merge_width(node: Any) -> int:
    """The width of ``<<: *a`` (or ``<<: [*a, *b]``) and its separator, 0 without a merge key."""
    merged = _merged(node)
    if not merged:
        return 0
    names = [len(m.anchor.value or "") + 1 for m in merged]
    return 4 + (names[0] if len(names) == 1 else 2 + sum(names) + 2 * (len(names) - 1)) + 2 * bool(_own(node))


def _flow_width(node: Any) -> int:
    """The width of ``node`` written in flow style on one line (plain scalars assumed)."""
    if _is_map(node):
        own = _own(node)
        return (2 + _merge_width(node) + sum(len(str(k)) + 2 + _flow_width(node[k]) for k in own)
                + 2 * max(len(own) - 1, 0))  # fmt: skip
    if _is_seq(node):
        return 2 + sum(_flow_width(v) for v in node) + 2 * max(len(node) - 1, 0)
    if isinstance(node, str):
        return len(node)
    return len(str(node).lower() if isinstance(node, bool) else str(node))


def _flow_if_short(node: Any, indent: int) -> bool:
    """Flow style for ``node`` (and everything in it) if it fits and holds no comment."""
    if not (_is_map(node) or _is_seq(node)) or _has_comments(node):
        return False
    if any(m.anchor.value is None for m in _merged(node)):  # merged without an alias: keep it as written
        return False
    if indent + _flow_width(node) > FLOW_WIDTH:
        return False
    _set_flow(node)
    return True


def _set_flow(node: Any) -> None:
    node.fa.set_flow_style()
    for child in [node[k] for k in _own(node)] if _is_map(node) else node:  # not the merged anchors' values
        if _is_map(child) or _is_seq(child):
            _set_flow(child)


def _block_style(node: Any) -> None:
    node.fa.set_block_style()
