"""Expansion of a spec's layer list: ``repeat`` blocks and instances of reusable ``blocks``.

The result is one flat list of named layers, each with the scope its ``inputs``
references resolve in, before anything is compiled:

* ``repeat: k`` copies its layers k times; names inside get ``_<j>`` (1-based),
  and a name of the same block means the same repetition's layer;
* ``{block: NAME, name: stage1, PARAM: value, inputs: x}`` instantiates the
  top-level ``blocks.NAME``: every ``$PARAM`` (a whole scalar value) in its
  layers is replaced by the value (whole values only: no templating inside
  strings), its layers are named ``stage1.<layer>``, ``input``
  inside it is the instance's input (``inputs:``, default the previous layer),
  and the instance's output, which ``stage1`` names, is its last layer.

Expressions ``"${...}"`` left for expansion (:mod:`netspec.spec.arithmetic`) are evaluated here, where
their names are known: in a block's layers over its parameters and the constants, and ``index`` is
the 1-based index of the innermost enclosing ``repeat`` (visible inside the block instances expanded
there). A layer holding such values is checked against the schema after they are evaluated.

Blocks compose with ``repeat`` and with each other; a block that uses itself,
directly or not, is refused. The number of layers after expansion is counted
before anything is expanded and refused past :data:`MAX_LAYERS`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from netspec.errors import Diagnostic, SpecError
from netspec.registry import did_you_mean
from netspec.spec.arithmetic import (
    INDEX,
    Evaluated,
    arithmetic,
    check_names,
    evaluate_tree,
    expression_paths,
    integral,
)
from netspec.spec.arithmetic import Scope as Names
from netspec.spec.expressions import ExpressionError, Number, evaluate, is_expression
from netspec.spec.loader import Document, Path, format_path

MAX_LAYERS = 10_000
"""Layers after expansion; counted before anything is expanded."""
MAX_REPEAT = 1000
"""The largest repeat count (the schema's bound, checked again for counts evaluated at expansion)."""

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
    index: int | None = None
    """The 1-based index of the innermost enclosing ``repeat`` (None outside any)."""
    expressions: dict[Path, Evaluated] = field(default_factory=dict)
    """The layer's values written as expressions, by where they are written."""
    depends: frozenset[str] = frozenset()
    """The constants its options, its enclosing repeat counts and block arguments depend on."""


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
    expander.items(doc.data["layers"], ("layers",), _Context(names=arithmetic(doc).scope()))
    return expander.result


def check_definitions(doc: Document, names: list[str]) -> list[Diagnostic]:
    """Schema errors in the layers of the blocks ``names`` without an instance (a block library checked on
    its own): every ``$NAME`` must name a parameter; parameters with a default are substituted; a value
    still waiting for its argument is not judged (each instance's substitution is)."""
    out: list[Diagnostic] = []
    expander = _Expander(doc, doc.data.get("blocks") or {}, None)
    expander.library = True
    for name in names:
        block = expander.blocks[name]
        if expander.definition_broken(name):
            continue
        params = block.get("params", {})
        path: Path = ("blocks", name, "layers")
        waiting = {p for p, v in _placeholders(block["layers"], path) if "default" not in params[v[1:]]}
        waiting |= set(expression_paths(block["layers"], path))
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
    names: Names = field(default_factory=Names)
    """What expressions read here: constants, the block's parameters, ``index``."""
    index: int | None = None
    depends: frozenset[str] = frozenset()


class _Expander:
    def __init__(self, doc: Document, blocks: dict[str, Any], first_input: str | None):
        self.doc = doc
        self.blocks = blocks
        self.first_input = first_input
        self.result = Expansion()
        self.broken: dict[str, bool] = {}
        """Block name -> whether its definition has an unknown $NAME (checked once, reported once)."""
        self.library = False
        """Whether blocks are checked without a spec that uses them (their constants unknown)."""
        self._checked: dict[tuple[str, Path, str], list[Diagnostic]] = {}

    def check(self, value: Any, definition: str, path: Path) -> list[Diagnostic]:
        """Schema errors of ``value`` (a block body or a layer after substitution) against ``$defs/definition``,
        located at ``path``; each distinct value is checked once (instances with equal arguments, repetitions
        whose expressions do not read ``index``, share one check)."""
        from netspec.spec.validation import validate_fragment

        key = (definition, path, json.dumps(value, sort_keys=True))
        if key not in self._checked:
            self._checked[key] = validate_fragment(self.doc, value, definition, path)
        return self._checked[key]

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
        if len(layers) >= MAX_LAYERS:  # (repeat counts known only now are not in the count made up front)
            line, col = self.doc.mark(where)
            msg = f"the layers expand to more than {MAX_LAYERS:,}; refusing to expand them"
            raise SpecError(self.doc.source, [Diagnostic(msg, line, col, format_path(where))], self.doc.text)
        found = {p: e for p in _value_paths(item, where) if (e := arithmetic(self.doc).values.get(p)) is not None}
        if expression_paths(item, where):
            evaluated = self.evaluate_layer(item, where, ctx)
            if evaluated is None:
                return
            item, more = evaluated
            found.update(more)
        name = item["name"] + ctx.suffix if "name" in item else f"{item['type']}_{len(layers) + 1 - ctx.base}"
        if "inputs" not in item and len(layers) == ctx.base and "input" in ctx.scope:
            item = {**item, "inputs": "input"}  # the first layer of a block instance takes the instance's input
        depends = ctx.depends.union(*(e.constants for e in found.values()))
        layers.append(Expanded(ctx.prefix + name, item, where, ctx.scope, ctx.instances, ctx.blocks, ctx.index,
                               found, depends))  # fmt: skip

    def evaluate_layer(self, item: dict[str, Any], where: Path, ctx: _Context
                       ) -> tuple[dict[str, Any], dict[Path, Evaluated]] | None:  # fmt: skip
        """The layer with its expressions evaluated here and checked against the schema (None after
        reporting its errors)."""
        from netspec.spec.validation import from_expression, integer_paths, set_at

        context = self.context(ctx)
        item, found, diags = evaluate_tree(self.doc, item, where, ctx.names, context)
        if diags:
            self.result.diagnostics += diags
            return None
        candidates = {p for p, e in found.items() if isinstance(e.value, float) and e.value.is_integer()}
        for path in integer_paths(item, candidates, "layer", where):
            found[path] = Evaluated(found[path].text, int(found[path].value), found[path].constants)
            set_at(item, path[len(where) :], found[path].value)
        written = {format_path(p): e for p, e in found.items()}
        problems = [from_expression(d, written) for d in self.check(item, "layer", where)]
        if problems:
            self.result.diagnostics += [replace(d, message=d.message + context) for d in problems]
            return None
        return item, found

    def context(self, ctx: _Context) -> str:
        """The block instances and repeat index an expression is evaluated in, for messages."""
        index = f" (index {ctx.index})" if ctx.index is not None else ""
        return index + instance_context(self.doc, ctx.instances)

    def repeat(self, item: dict[str, Any], where: Path, ctx: _Context) -> None:
        body = item["layers"]
        count, depends = self.count(item["repeat"], (*where, "repeat"), ctx)
        if count is None:
            return
        for k in range(1, count + 1):
            suffix = f"{ctx.suffix}_{k}"
            local = {n: ctx.prefix + n + suffix for n in _names(body)}
            names = ctx.names.with_names({INDEX: k}, {INDEX: frozenset()})
            inner = _Context(suffix, ctx.prefix, {**ctx.scope, **local}, ctx.base, ctx.instances, ctx.stack, ctx.blocks,
                             names, k, ctx.depends | depends)  # fmt: skip
            self.items(body, (*where, "layers"), inner)

    def count(self, written: Any, where: Path, ctx: _Context) -> tuple[int | None, frozenset[str]]:
        """A repeat count (an expression evaluated here), with the constants it depends on; None after an
        error."""
        evaluated = arithmetic(self.doc).values.get(where)
        if is_expression(written):
            _, found, diags = evaluate_tree(self.doc, written, where, ctx.names, self.context(ctx))
            if diags:
                self.result.diagnostics += diags
                return None, frozenset()
            evaluated = found[where]
        count = integral(evaluated.value if evaluated else written)
        if count is None or not 1 <= count <= MAX_REPEAT:
            shown = evaluated.describe() if evaluated else repr(written)
            self.fail(f"a repeat count is an integer from 1 to {MAX_REPEAT}, got {shown}", where, ctx)
            return None, frozenset()
        return count, evaluated.constants if evaluated else frozenset()

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
        arguments = self.arguments(name, use, where, ctx)
        if arguments is None:
            return
        values = arguments[0]
        layers = self.result.layers
        instance = ctx.prefix + (use["name"] + ctx.suffix if "name" in use else f"{name}_{len(layers) + 1 - ctx.base}")
        body = _substitute(copy.deepcopy(self.blocks[name]["layers"]), values)
        source = self.source(use, ctx)
        body_path: Path = ("blocks", name, "layers")
        before = len(self.result.diagnostics)
        context = instance_context(self.doc, [*ctx.instances, (instance, where)])
        waiting = {format_path(p) for p in expression_paths(body, body_path)}  # judged once evaluated
        problems = [d for d in self.check(body, "layers", body_path) if d.path not in waiting]
        self.result.diagnostics += [replace(d, message=d.message + context) for d in problems]
        if len(self.result.diagnostics) > before:
            return
        scope = {n: f"{instance}.{n}" for n in _names(body)}
        if source is not None:
            scope["input"] = source
        if "inputs" in use:
            scope[INSTANCE_KEY] = instance
            self.result.input_paths[instance] = (*where, "inputs")
        values, depends = arguments
        names = ctx.names.with_names(values, depends)
        inner = _Context("", f"{instance}.", scope, len(layers), [*ctx.instances, (instance, where)],
                         (*ctx.stack, name), [*ctx.blocks, (instance, name)], names, ctx.index,
                         ctx.depends.union(*depends.values()))  # fmt: skip
        self.items(body, body_path, inner)
        if len(layers) > inner.base:
            self.result.aliases[instance] = layers[-1].name

    def definition_broken(self, name: str) -> bool:
        """Report, once per block, every ``$NAME`` in its layers that names no parameter, and every expression
        that cannot be parsed or reads a name that is neither a parameter, a constant nor ``index`` (a block
        library checked on its own does not know the constants of the specs that import it)."""
        if name not in self.broken:
            params = self.blocks[name].get("params", {})
            path: Path = ("blocks", name, "layers")
            unknown = [(p, v) for p, v in _placeholders(self.blocks[name]["layers"], path) if v[1:] not in params]
            for where, value in unknown:
                line, col = self.doc.mark(where)
                hint = "parameters: " + (", ".join(params) or "none")
                msg = f"{value} names no parameter of block {name!r}{did_you_mean(value[1:], list(params))}"
                self.result.diagnostics.append(Diagnostic(msg, line, col, format_path(where), hint=hint))
            known = None if self.library else {*params, *arithmetic(self.doc).constants, INDEX}
            problems = check_names(self.doc, self.blocks[name]["layers"], path, known)
            self.result.diagnostics += problems
            self.broken[name] = bool(unknown or problems)
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

    def arguments(self, name: str, use: dict[str, Any], where: Path, ctx: _Context
                  ) -> tuple[dict[str, Any], dict[str, frozenset[str]]] | None:  # fmt: skip
        """The instance's parameter values (defaults filled in; expressions evaluated here) with the constants
        each depends on, or None after reporting every problem."""
        params = self.blocks[name].get("params", {})
        values: dict[str, Any] = {}
        depends: dict[str, frozenset[str]] = {}
        ok = True
        for key, value in use.items():
            if key in ("block", "name", "inputs"):
                continue
            evaluated = self.argument(value, (*where, key), ctx)
            if evaluated is None:
                ok = False
                continue
            value, depends[key] = evaluated
            if key in params and params[key]["type"] == "integer" and integral(value) is not None:
                value = integral(value)  # 3.0, written or computed, is the integer 3 (as JSON Schema's integer)
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
                continue
            default = self.argument(spec["default"], ("blocks", name, "params", key, "default"), ctx)
            if default is None:
                ok = False
                continue
            if spec["type"] == "integer" and integral(default[0]) is not None:
                default = (integral(default[0]), default[1])
            if _has_type(default[0], spec["type"]):
                values[key], depends[key] = default
            else:
                self.fail(f"the default of parameter {key!r} is {_show(default[0])}, not {spec['type']}",
                          ("blocks", name, "params", key, "default"), ctx)  # fmt: skip
                ok = False
        return (values, depends) if ok else None

    def argument(self, value: Any, where: Path, ctx: _Context) -> tuple[Any, frozenset[str]] | None:
        """A block argument's value, its expression evaluated here (with the constants it depends on)."""
        evaluated = arithmetic(self.doc).values.get(where)
        if evaluated is not None:  # evaluated before validation
            return value, evaluated.constants
        if not is_expression(value):
            return value, frozenset()
        _, found, diags = evaluate_tree(self.doc, value, where, ctx.names, self.context(ctx))
        if diags:
            self.result.diagnostics += diags
            return None
        return found[where].value, found[where].constants


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
    """Every whole-scalar ``$NAME`` in ``node`` with its path (``${...}`` is an expression, not one)."""
    if isinstance(node, dict):
        return [found for k, v in node.items() for found in _placeholders(v, (*path, k))]
    if isinstance(node, list):
        return [found for i, v in enumerate(node) for found in _placeholders(v, (*path, i))]
    is_name = isinstance(node, str) and node.startswith("$") and len(node) > 1 and not is_expression(node)
    return [(path, node)] if is_name else []


def _value_paths(node: Any, path: Path) -> list[Path]:
    """Where ``node`` (written at ``path``) holds scalar values."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _value_paths(v, (*path, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _value_paths(v, (*path, i))]
    return [path]


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


def _count(items: Any, blocks: dict[str, Any], stack: tuple[str, ...], values: dict[str, Any],
           memo: dict[tuple[str, str], int], constants: Mapping[str, Number]) -> int:  # fmt: skip
    """Layers after expansion, saturating just above MAX_LAYERS (no big numbers, no expansion).

    Block bodies are not schema-checked yet (each instance's is, after substitution), so anything may
    be found in them: what is not a valid count counts as one, and so does an empty body (the check
    after substitution reports both; counted as one, a chain of blocks that each use the next twice and
    end in an invalid body is refused before 2^depth instances are expanded and found invalid).
    ``values`` are the enclosing instance's arguments (a body's ``repeat: $depth`` counts with its
    value); an expression count (or argument) is evaluated here over ``constants`` and those arguments,
    so ``repeat: "${n}"`` counts n times. Only a count that reads ``index`` (or fails to evaluate: the
    expansion reports it) counts once here; the expansion stops at MAX_LAYERS itself. Each block is
    counted once per distinct argument set (``memo``), so blocks that use each other many times over
    cost no more than their definitions."""
    if not isinstance(items, list):
        return 1
    total = 0
    for item in items:
        total += _count_item(item, blocks, stack, values, memo, constants)
        if total > MAX_LAYERS:
            return MAX_LAYERS + 1
    return total


def _count_item(item: Any, blocks: dict[str, Any], stack: tuple[str, ...], values: dict[str, Any],
                memo: dict[tuple[str, str], int], constants: Mapping[str, Number]) -> int:  # fmt: skip
    if not isinstance(item, dict):
        return 1
    if "repeat" in item:
        known = integral(_known(item["repeat"], values, constants))
        times = known if known is not None and known > 0 else 1
        return times * max(_count(item.get("layers"), blocks, stack, values, memo, constants), 1)
    name = item.get("block")
    if not isinstance(name, str) or not isinstance(blocks.get(name), dict) or name in stack:
        return 1
    params = blocks[name].get("params")
    params = params if isinstance(params, dict) else {}
    arguments = {k: _known(v, values, constants) for k, v in item.items() if k not in ("block", "name", "inputs")}
    for key, spec in params.items():
        if key not in arguments and isinstance(spec, dict) and "default" in spec:
            arguments[key] = spec["default"]
    key = (name, json.dumps(arguments, sort_keys=True, default=str))
    if key not in memo:
        memo[key] = max(_count(blocks[name].get("layers"), blocks, (*stack, name), arguments, memo, constants), 1)
    return memo[key]


def _known(value: Any, values: dict[str, Any], constants: Mapping[str, Number]) -> Any:
    """``value`` with ``$NAME`` substituted from ``values`` and an expression evaluated over ``constants`` and
    the numbers among ``values`` (the enclosing instance's arguments, which shadow constants), if it can be
    evaluated before expansion; as it is otherwise (it reads ``index``, or is wrong: the expansion says how)."""
    value = _substitute(value, values)
    if not is_expression(value):
        return value
    names = dict(constants)
    for key, argument in values.items():
        if isinstance(argument, (int, float)) and not isinstance(argument, bool):
            names[key] = argument
        else:
            names.pop(key, None)
    try:
        return evaluate(value, names)
    except ExpressionError:
        return value


def _check_count(doc: Document, blocks: dict[str, Any]) -> None:
    """Refuse specs whose ``repeat`` blocks and block instances expand to more than MAX_LAYERS layers."""
    total = 0
    memo: dict[tuple[str, str], int] = {}
    constants = arithmetic(doc).constants
    for i, item in enumerate(doc.data["layers"]):
        total += _count([item], blocks, (), {}, memo, constants)
        if total > MAX_LAYERS:
            line, col = doc.mark(("layers", i))
            msg = (f"the layers expand to more than {MAX_LAYERS:,} (repeat blocks and block instances multiply); "
                   "refusing to expand them")  # fmt: skip
            raise SpecError(doc.source, [Diagnostic(msg, line, col, format_path(("layers", i)))], doc.text)
