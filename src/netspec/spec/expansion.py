"""Expansion of a spec's layer list: ``repeat`` blocks and instances of reusable ``blocks``.

The result is one flat list of named layers, each with the scope its ``inputs``
references resolve in, before anything is compiled:

* ``repeat: k`` copies its layers k times; names inside get ``_<j>`` (1-based),
  and a name of the same block means the same repetition's layer;
* ``{block: NAME, name: stage1, PARAM: value, inputs: x}`` instantiates the
  top-level ``blocks.NAME``: every ``$PARAM`` (a whole scalar value) in its
  layers is replaced by the value (whole values only: no expressions, no
  templating inside strings), its layers are named ``stage1.<layer>``, ``input``
  inside it is the instance's input (``inputs:``, default the previous layer),
  and the instance's output, which ``stage1`` names, is its last layer.

Blocks compose with ``repeat`` and with each other; a block that uses itself,
directly or not, is refused. The number of layers after expansion is counted
before anything is expanded and refused past :data:`MAX_LAYERS`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from netspec.errors import Diagnostic, SpecError
from netspec.registry import did_you_mean
from netspec.spec.loader import Document, Path, format_path

MAX_LAYERS = 10_000
"""Layers after expansion; counted before anything is expanded."""

Scope = dict[str, str]
"""Written reference -> expanded layer name, for the names of the enclosing repeat and block bodies."""

PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
}


INSTANCE_KEY = " instance"
"""A scope key no name can spell: the block instance whose written ``inputs`` the scope's ``input`` is."""


@dataclass
class Expanded:
    """One layer after expansion."""

    name: str
    options: dict[str, Any]
    path: Path
    """Where the layer is written (inside ``blocks`` for a block's layers)."""
    scope: Scope
    instances: list[tuple[str, Path]] = field(default_factory=list)
    """The block instances it belongs to, outermost first: (instance name, where it is used)."""
    blocks: list[tuple[str, str]] = field(default_factory=list)
    """The same instances as (instance name, block name)."""


@dataclass
class Expansion:
    layers: list[Expanded] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    input_paths: dict[str, Path] = field(default_factory=dict)
    """Block instance name -> where its ``inputs`` is written (errors about an instance's input go there)."""
    """Instance name -> its last layer (what the instance's name means as an input)."""
    diagnostics: list[Diagnostic] = field(default_factory=list)


def expand(doc: Document, first_input: str | None) -> Expansion:
    """Flatten ``doc``'s layers (see the module doc); ``first_input`` is the single network input, if one.

    Raises:
        SpecError: the layers would expand past :data:`MAX_LAYERS`.
    """
    blocks = doc.data.get("blocks", {})
    _check_count(doc, blocks)
    expander = _Expander(doc, blocks, first_input)
    expander.items(doc.data["layers"], ("layers",), _Context())
    return expander.result


def check_definitions(doc: Document, names: list[str]) -> list[Diagnostic]:
    """Schema errors in the layers of the blocks ``names`` without an instance (a block library checked on
    its own): every ``$NAME`` must name a parameter; parameters with a default are substituted; a value
    still waiting for its argument is not judged (each instance's substitution is)."""
    out: list[Diagnostic] = []
    expander = _Expander(doc, doc.data.get("blocks") or {}, None)
    for name in names:
        block = expander.blocks[name]
        if expander.definition_broken(name):
            continue
        params = block.get("params", {})
        path: Path = ("blocks", name, "layers")
        waiting = {p for p, v in _placeholders(block["layers"], path) if "default" not in params[v[1:]]}
        body = _substitute(block["layers"], {k: v["default"] for k, v in params.items() if "default" in v})
        out += [d for d in _validate_body(doc, body, path, "") if not any(d.path == format_path(p) for p in waiting)]
    return out + expander.result.diagnostics


@dataclass
class _Context:
    suffix: str = ""
    prefix: str = ""
    scope: Scope = field(default_factory=dict)
    base: int = 0
    """How many layers came before the current block instance (positional names count from there)."""
    instances: list[tuple[str, Path]] = field(default_factory=list)
    stack: tuple[str, ...] = ()
    blocks: list[tuple[str, str]] = field(default_factory=list)


class _Expander:
    def __init__(self, doc: Document, blocks: dict[str, Any], first_input: str | None):
        self.doc = doc
        self.blocks = blocks
        self.first_input = first_input
        self.result = Expansion()
        self.broken: dict[str, bool] = {}
        """Block name -> whether its definition has an unknown $NAME (checked once, reported once)."""

    def fail(self, message: str, where: Path, ctx: _Context, hint: str = "") -> None:
        line, col = self.doc.mark(where)
        text = message + instance_context(self.doc, ctx.instances)
        self.result.diagnostics.append(Diagnostic(text, line, col, format_path(where), hint=hint))

    def items(self, items: list[dict[str, Any]], path: Path, ctx: _Context) -> None:
        for i, item in enumerate(items):
            where = (*path, i)
            if "repeat" in item:
                self.repeat(item, where, ctx)
            elif "block" in item:
                self.instance(item, where, ctx)
            else:
                self.layer(item, where, ctx)

    def layer(self, item: dict[str, Any], where: Path, ctx: _Context) -> None:
        layers = self.result.layers
        name = item["name"] + ctx.suffix if "name" in item else f"{item['type']}_{len(layers) + 1 - ctx.base}"
        if "inputs" not in item and len(layers) == ctx.base and "input" in ctx.scope:
            item = {**item, "inputs": "input"}  # the first layer of a block instance takes the instance's input
        layers.append(Expanded(ctx.prefix + name, item, where, ctx.scope, ctx.instances, ctx.blocks))

    def repeat(self, item: dict[str, Any], where: Path, ctx: _Context) -> None:
        body = item["layers"]
        for k in range(1, item["repeat"] + 1):
            suffix = f"{ctx.suffix}_{k}"
            local = {n: ctx.prefix + n + suffix for n in _names(body)}
            inner = _Context(suffix, ctx.prefix, {**ctx.scope, **local}, ctx.base, ctx.instances, ctx.stack, ctx.blocks)
            self.items(body, (*where, "layers"), inner)

    def instance(self, use: dict[str, Any], where: Path, ctx: _Context) -> None:
        name = use["block"]
        if name not in self.blocks:
            hint = "blocks: " + (", ".join(self.blocks) or "none defined")
            self.fail(f"unknown block {name!r}{did_you_mean(name, list(self.blocks))}", (*where, "block"), ctx, hint)
            return
        if name in ctx.stack:
            cycle = " -> ".join((*ctx.stack[ctx.stack.index(name) :], name))
            self.fail(f"block {name!r} uses itself ({cycle}); blocks cannot be recursive", (*where, "block"), ctx)
            return
        if self.definition_broken(name):
            return
        values = self.arguments(name, use, where, ctx)
        if values is None:
            return
        layers = self.result.layers
        instance = ctx.prefix + (use["name"] + ctx.suffix if "name" in use else f"{name}_{len(layers) + 1 - ctx.base}")
        body = _substitute(copy.deepcopy(self.blocks[name]["layers"]), values)
        source = self.source(use, ctx)
        body_path: Path = ("blocks", name, "layers")
        before = len(self.result.diagnostics)
        context = instance_context(self.doc, [*ctx.instances, (instance, where)])
        self.result.diagnostics += _validate_body(self.doc, body, body_path, context)
        if len(self.result.diagnostics) > before:
            return
        scope = {n: f"{instance}.{n}" for n in _names(body)}
        if source is not None:
            scope["input"] = source
        if "inputs" in use:
            scope[INSTANCE_KEY] = instance
            self.result.input_paths[instance] = (*where, "inputs")
        inner = _Context("", f"{instance}.", scope, len(layers), [*ctx.instances, (instance, where)],
                         (*ctx.stack, name), [*ctx.blocks, (instance, name)])  # fmt: skip
        self.items(body, body_path, inner)
        if len(layers) > inner.base:
            self.result.aliases[instance] = layers[-1].name

    def definition_broken(self, name: str) -> bool:
        """Report, once per block, every ``$NAME`` in its layers that names no parameter."""
        if name not in self.broken:
            params = self.blocks[name].get("params", {})
            unknown = [(p, v) for p, v in _placeholders(self.blocks[name]["layers"], ("blocks", name, "layers"))
                       if v[1:] not in params]  # fmt: skip
            for path, value in unknown:
                line, col = self.doc.mark(path)
                hint = "parameters: " + (", ".join(params) or "none")
                msg = f"{value} names no parameter of block {name!r}{did_you_mean(value[1:], list(params))}"
                self.result.diagnostics.append(Diagnostic(msg, line, col, format_path(path), hint=hint))
            self.broken[name] = bool(unknown)
        return self.broken[name]

    def source(self, use: dict[str, Any], ctx: _Context) -> str | None:
        """The expanded name the instance takes: its ``inputs``, else the previous layer, else the
        enclosing instance's input, else the network's single input (None if it has several)."""
        layers = self.result.layers
        written = use.get("inputs")
        if isinstance(written, list):
            written = written[0]
        if written is not None:
            expanded = ctx.scope.get(written, written)
            return self.result.aliases.get(expanded, expanded)
        if len(layers) > ctx.base:
            return layers[-1].name
        if "input" in ctx.scope:
            return ctx.scope["input"]
        return layers[-1].name if layers else self.first_input

    def arguments(self, name: str, use: dict[str, Any], where: Path, ctx: _Context) -> dict[str, Any] | None:
        """The instance's parameter values (defaults filled in), or None after reporting every problem."""
        params = self.blocks[name].get("params", {})
        values: dict[str, Any] = {}
        ok = True
        for key, value in use.items():
            if key in ("block", "name", "inputs"):
                continue
            if key not in params:
                known = ", ".join(params) or "none"
                self.fail(f"block {name!r} has no parameter {key!r}{did_you_mean(key, list(params))}", (*where, key),
                          ctx, hint=f"parameters: {known}")  # fmt: skip
                ok = False
            elif not _has_type(value, params[key]["type"]):
                self.fail(f"parameter {key!r} of block {name!r} is {params[key]['type']}, got {_show(value)}",
                          (*where, key), ctx)  # fmt: skip
                ok = False
            else:
                values[key] = value
        for key, spec in params.items():
            if key in values or not ok:
                continue
            if "default" not in spec:
                self.fail(f"block {name!r} needs parameter {key!r} (it has no default)", where, ctx)
                ok = False
            elif _has_type(spec["default"], spec["type"]):
                values[key] = spec["default"]
            else:
                self.fail(f"the default of parameter {key!r} is {_show(spec['default'])}, not {spec['type']}",
                          ("blocks", name, "params", key, "default"), ctx)  # fmt: skip
                ok = False
        return values if ok else None


def instance_context(doc: Document, instances: list[tuple[str, Path]]) -> str:
    """`` (in block instance 'a' used on line 23, ...)`` for messages located inside a block's definition:
    the message points at the definition, this names every use it came through."""
    if not instances:
        return ""
    uses = [f"block instance {n!r} used on line {doc.mark(p)[0]}" for n, p in instances]
    return " (in " + ", in ".join(uses) + ")"


def _names(body: list[dict[str, Any]]) -> list[str]:
    """Names a body defines directly: its layers' and its block instances' names."""
    return [item["name"] for item in body if "name" in item and "repeat" not in item]


def _has_type(value: Any, kind: str) -> bool:
    return isinstance(value, PARAM_TYPES[kind]) and (kind == "boolean" or not isinstance(value, bool))


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else f"string {value!r}"


def _placeholders(node: Any, path: Path) -> list[tuple[Path, str]]:
    """Every whole-scalar ``$NAME`` in ``node`` with its path."""
    if isinstance(node, dict):
        return [found for k, v in node.items() for found in _placeholders(v, (*path, k))]
    if isinstance(node, list):
        return [found for i, v in enumerate(node) for found in _placeholders(v, (*path, i))]
    return [(path, node)] if isinstance(node, str) and node.startswith("$") and len(node) > 1 else []


def _substitute(node: Any, values: dict[str, Any]) -> Any:
    """Replace every whole-scalar ``$NAME`` with ``values[NAME]`` (unknown names are left for the schema)."""
    if isinstance(node, dict):
        return {k: _substitute(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, values) for v in node]
    if isinstance(node, str) and node.startswith("$") and node[1:] in values:
        return values[node[1:]]
    return node


def _validate_body(doc: Document, body: list[Any], path: Path, context: str) -> list[Diagnostic]:
    """Schema errors of a block's layers after substitution, located in the definition."""
    from netspec.spec.validation import validate_fragment

    diags = validate_fragment(doc, body, "layers", path)
    return [Diagnostic(d.message + context, d.line, d.column, d.path, d.hint, d.severity) for d in diags]


def _count(items: list[dict[str, Any]], blocks: dict[str, Any], stack: tuple[str, ...]) -> int:
    """Layers after expansion, saturating just above MAX_LAYERS (no big numbers, no expansion)."""
    total = 0
    for item in items:
        if "repeat" in item:
            total += item["repeat"] * _count(item["layers"], blocks, stack)
        elif "block" in item:
            name = item["block"]
            known = name in blocks and name not in stack and isinstance(blocks[name].get("layers"), list)
            total += _count(blocks[name]["layers"], blocks, (*stack, name)) if known else 1
        else:
            total += 1
        if total > MAX_LAYERS:
            return MAX_LAYERS + 1
    return total


def _check_count(doc: Document, blocks: dict[str, Any]) -> None:
    """Refuse specs whose ``repeat`` blocks and block instances expand to more than MAX_LAYERS layers."""
    total = 0
    for i, item in enumerate(doc.data["layers"]):
        total += _count([item], blocks, ())
        if total > MAX_LAYERS:
            line, col = doc.mark(("layers", i))
            msg = (f"the layers expand to more than {MAX_LAYERS:,} (repeat blocks and block instances multiply); "
                   "refusing to expand them")  # fmt: skip
            raise SpecError(doc.source, [Diagnostic(msg, line, col, format_path(("layers", i)))], doc.text)
