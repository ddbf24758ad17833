"""Validated document -> :class:`~netspec.nn.network.Network`, with every semantic error located.

Expands ``repeat`` blocks, names layers (``<type>_<position>``, 1-based),
resolves initializers and activations, infers shapes and counts parameters
without allocating anything, and refuses networks over ``max_params``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from netspec.errors import Diagnostic, InitializerError, NetspecError, SpecError
from netspec.nn.catalog import LAYER_TYPES
from netspec.nn.layers import Layer, ParamSpec, Resolved, Shape, ShapeError, check_output_size, lend, pads_vary
from netspec.nn.network import CompiledLayer, Network, Provenance
from netspec.spec import auto_next, integers
from netspec.spec.arithmetic import Evaluated, arithmetic
from netspec.spec.expansion import Expanded, expand, instance_context
from netspec.spec.imports import Files, attribute, is_library, not_a_network, resolve_imports
from netspec.spec.init_recipe import Decided, SpecRecipe, apply_recipe, check_base, load_recipe, recipe_config
from netspec.spec.loader import Document, Path, format_path, load_file, load_text, parse_path
from netspec.spec.validation import validate
from netspec.spec.wiring import Wiring, network_inputs

AUTOS = ("auto", auto_next.AUTO_NEXT)
DEFAULT_MAX_PARAMS = 2_000_000_000
LEGACY_SEED_LIMIT = 2**32
"""np.random.RandomState takes seeds below 2^32."""


def compile_file(path: str, **options: Any) -> Network:
    """Load and compile a spec file (``options`` as :func:`compile_document`).

    Raises:
        SpecError: the file is not a valid spec (every problem, located).
        OSError: the file cannot be read.
    """
    return compile_document(load_file(path), **options)


def compile_text(text: str, source: str = "<string>", **options: Any) -> Network:
    """Compile spec text; ``source`` names it in messages (``options`` as :func:`compile_document`).

    Raises:
        SpecError: the text is not a valid spec (every problem, located).
    """
    return compile_document(load_text(text, source), **options)


def compile_document(
    doc: Document,
    seed: int | None = None,
    max_params: int = DEFAULT_MAX_PARAMS,
    files: Files | None = None,
    dtype: str | None = None,
    recipes: bool = True,
) -> Network:
    """Compile a loaded document (see the module doc).

    Args:
        doc: the loaded spec.
        seed: overrides the spec's ``seed``.
        dtype: overrides the spec's ``dtype`` (a name of :data:`~netspec.init.precision.PRECISIONS`).
        max_params: refuse networks with more parameters, before anything is allocated.
        files: where ``imports`` (and ``init.base``) are read from (default: the working tree around the spec
            file).
        recipes: apply the spec's ``init`` recipe (False: shapes only, as for a muP base spec).

    Raises:
        SpecError: every located problem of the spec (schema, names, shapes, initializers).
        NetspecError: ``seed`` is out of range for the spec's ``rng``.
    """
    if is_library(doc.data):
        raise not_a_network(doc)
    diags = validate(doc)
    if diags:
        raise SpecError(doc.source, diags, doc.text)
    integers.document(doc)  # seed, input shapes, defaults: integral floats where integers go become ints
    imported = resolve_imports(doc, files)
    data = doc.data
    diags = _check_seed(doc, data, seed)
    recipe, problems = load_recipe(doc, files, _base_shapes) if recipes else (None, [])
    resolver = Resolver(doc, data.get("defaults", {}), recipe)
    compiled = _compile_layers(doc, resolver, max_params, data.get("names", "positional"))
    shapes = {f"{cl.name}.{p.name}": tuple(p.shape) for cl in compiled.layers for p in cl.params}
    diags += problems + resolver.diagnostics + compiled.diagnostics + check_base(recipe, shapes, doc)
    if not diags:
        diags += auto_next.apply(doc, compiled.layers)
        compiled.warnings += auto_next.warnings(doc, compiled.layers)
    if diags:
        raise SpecError(doc.source, attribute(_unique(diags), doc, imported), doc.text)
    stem = os.path.splitext(os.path.basename(doc.source))[0]
    layers = compiled.layers
    return Network(
        name=data.get("name", stem),
        inputs=compiled.inputs,
        outputs=compiled.outputs,
        layers=layers,
        seed=data.get("seed", 0) if seed is None else seed,
        rng=data.get("rng", "block"),
        dtype=data.get("dtype", "float32") if dtype is None else _precision(dtype),
        source=doc.source,
        spec=data,
        warnings=_positional_name_warnings(doc, layers, data.get("names", "positional")) + compiled.warnings,
        imports=imported.digests,
        constants=dict(arithmetic(doc).constants),
        expressions=_network_expressions(doc),
        init=recipe_config(recipe),
        width_mult=dict(recipe.width_mult) if recipe is not None and recipe.base_shapes is not None else {},
    )


def _base_shapes(doc: Document, files: Files) -> dict[str, tuple[int, ...]]:
    """Every parameter's shape in a muP base-width spec (compiled without its own recipe)."""
    net = compile_document(doc, files=files, recipes=False)
    return {name: tuple(p.shape) for name, p in net.parameters()}


def _precision(dtype: str) -> str:
    from netspec.init.precision import PRECISIONS

    if dtype not in PRECISIONS:
        raise NetspecError(f"dtype {dtype!r} is not one of {', '.join(PRECISIONS)}")
    return dtype


def _network_expressions(doc: Document) -> dict[str, Evaluated]:
    """The expressions written outside the layers and constants (``defaults``, ``init``, ``input``, ...)."""
    values = arithmetic(doc).values.items()
    return {format_path(p): e for p, e in values if p[0] not in ("layers", "constants")}


def _unique(diags: list[Diagnostic]) -> list[Diagnostic]:
    """One diagnostic per (position, message): a shared mistake is reported once."""
    return list({(d.line, d.column, d.message): d for d in diags}.values())


def _check_seed(doc: Document, data: dict[str, Any], override: int | None) -> list[Diagnostic]:
    """``rng: legacy`` seeds one np.random.RandomState, which takes seeds below 2^32."""
    if data.get("rng", "block") != "legacy":
        return []
    if override is not None and override >= LEGACY_SEED_LIMIT:
        raise NetspecError(f"seed {override} is too large for rng: legacy (one np.random.RandomState takes "
                           f"seeds below 2^32); use rng: block or a smaller seed")  # fmt: skip
    if override is None and data.get("seed", 0) >= LEGACY_SEED_LIMIT:
        line, col = doc.mark(("seed",))
        msg = (f"seed {data['seed']} is too large for rng: legacy: one np.random.RandomState takes seeds below "
               f"2^32 (it would reuse seed {data['seed'] % LEGACY_SEED_LIMIT}'s weights)")  # fmt: skip
        return [Diagnostic(msg, line, col, "seed", hint="use rng: block, or a seed below 4294967296")]
    return []


def _compile_layers(doc: Document, resolver: Resolver, max_params: int, names_rule: str) -> _Compiled:
    inputs = network_inputs(doc.data)
    expansion = expand(doc, next(iter(inputs)) if len(inputs) == 1 else None)
    wiring = Wiring(doc, inputs, {e.name: e.path for e in expansion.layers}, expansion.aliases, expansion.input_paths)
    out = _Compiled(inputs=inputs, diagnostics=list(expansion.diagnostics))
    state = _State(names_rule=names_rule, max_params=max_params)
    for item in expansion.layers:
        before = (len(out.diagnostics), len(wiring.diagnostics), len(resolver.diagnostics))
        _compile_one(doc, item, resolver, wiring, out, state)
        if item.instances:
            _add_context(doc, item, before, out, wiring, resolver)
    out.outputs = wiring.outputs(doc.data, expansion.layers[-1].name if expansion.layers else None)
    out.diagnostics += wiring.diagnostics
    out.warnings = wiring.unused_warnings(out.outputs, state.names) + _same_padding_warnings(doc, out.layers)
    return out


@dataclass
class _State:
    names_rule: str
    max_params: int
    total: int = 0
    names: dict[str, Path] = field(default_factory=dict)


def _add_context(doc: Document, item: Expanded, before: tuple[int, ...], *sinks: Any) -> None:
    """Name the block instances a layer came through in its new diagnostics (they point at the definition)."""
    context = instance_context(doc, item.instances)
    for start, sink in zip(before, sinks, strict=True):
        sink.diagnostics[start:] = [
            Diagnostic(d.message + context, d.line, d.column, d.path, d.hint, d.severity)
            for d in sink.diagnostics[start:]
        ]


def _compile_one(
    doc: Document, item: Expanded, resolver: Resolver, wiring: Wiring, out: _Compiled, state: _State
) -> None:
    """Compile one expanded layer into ``out`` (or its diagnostics)."""
    name, path = item.name, item.path
    options = integers.layer_options(item.options, path)  # the one boundary for integers, on final values
    cls = LAYER_TYPES[options["type"]]
    line, col = doc.mark(path)
    where = format_path(path)
    if name in state.names or name in out.inputs:
        first = f"first used on line {doc.mark(state.names[name])[0]}" if name in state.names else "a network input"
        out.diagnostics.append(Diagnostic(f"duplicate layer name {name!r} ({first})", line, col, where))
        return
    state.names[name] = path
    if state.names_rule == "explicit" and "name" not in options and cls.has_parameters():
        msg = f"this {options['type']} layer has parameters but no name ('names: explicit' requires one)"
        hint = f"add name: to it (its positional name is {name})"
        out.diagnostics.append(Diagnostic(msg, line, col, where, hint=hint))
    sources = wiring.inputs_of(name, options, path, item.scope)
    resolved = resolver.layer(cls, options, path)
    shapes = _known_shapes(wiring, sources)
    if resolved is None or sources is None or shapes is None:
        wiring.produced(name, None)
        return
    layer = cls(name, options, resolved[0])
    try:
        params = layer.param_specs(shapes)
        out_shape = layer.combine_shapes(shapes)
        check_output_size(out_shape)
    except (ShapeError, InitializerError) as exc:
        shown = "" if len(shapes) == 1 else " (inputs: " + ", ".join(map(_shape_text, sources, shapes)) + ")"
        out.diagnostics.append(Diagnostic(f"{name} ({options['type']}): {exc}{shown}", line, col, where))
        wiring.produced(name, None)
        return
    tied = _tied(doc, item, layer, shapes, wiring, out)
    if tied is None:
        wiring.produced(name, None)
        return
    decided: dict[str, Decided] = {}
    if resolver.recipe is not None:  # below the layer's own keys, above defaults and auto
        params, decided, problems = apply_recipe(resolver.recipe, layer, params, resolved[1], item.index, path, doc)
        out.diagnostics += problems
    out.diagnostics += resolver.check_shapes(name, params, resolved[1], path)
    count = sum(p.size for p in params)
    if state.total <= state.max_params < state.total + count:
        msg = f"{name} brings the parameter count to {state.total + count:,}, over the limit of {state.max_params:,}"
        out.diagnostics.append(Diagnostic(msg, line, col, where, hint="raise --max-params if this is intended"))
    state.total += count
    expressions = {format_path(p[len(path) :]): e for p, e in item.expressions.items()}
    compiled = CompiledLayer(layer, shapes[0], out_shape, params, where, line, resolved[1], sources, shapes,
                             item.blocks, item.index, expressions, item.depends, tied, decided, col)  # fmt: skip
    out.layers.append(compiled)
    wiring.produced(name, out_shape)


def _tied(
    doc: Document, item: Expanded, layer: Layer, shapes: list[Shape], wiring: Wiring, out: _Compiled
) -> dict[str, str] | None:
    """The tensors ``layer`` ties to (local name -> owner parameter), each checked: an earlier embedding
    whose table, transposed, has the kernel's shape; None after reporting why not (located at ``tie``)."""
    tied: dict[str, str] = {}
    for local, ref in layer.tied().items():
        where: Path = (*item.path, "tie")
        line, col = doc.mark(where)

        def fail(message: str, hint: str = "", where: Path = where, line: int = line, col: int = col) -> None:
            out.diagnostics.append(Diagnostic(f"{layer.name}: {message}", line, col, format_path(where), hint=hint))

        if "weights" in layer.options:
            wline, wcol = doc.mark((*item.path, "weights"))
            msg = f"{layer.name}: a tied layer has no kernel of its own to initialize (its kernel is {ref}'s table)"
            out.diagnostics.append(Diagnostic(msg, wline, wcol, format_path((*item.path, "weights")),
                                              hint="remove weights: (the embedding's weights initialize the table)"))
            return None
        owner = wiring.reference(layer.name, ref, item.scope, where)
        if owner is None:
            return None
        found = next((cl for cl in out.layers if cl.name == owner), None)
        if found is None or found.layer.type != "embedding":
            what = "a network input" if found is None else f"a {found.layer.type} layer"
            fail(f"tie takes an embedding layer; {ref!r} is {what}")
            return None
        table = next(p.shape for p in found.params if p.name == "weights")
        kernel = layer.kernel_shape(shapes[0])  # type: ignore[attr-defined]
        if kernel != table[::-1]:
            fail(f"the kernel ({kernel[0]}, {kernel[1]}) is not {ref}'s table ({table[0]}, {table[1]}) transposed",
                 hint=f"a tied layer takes {table[1]} input features and has units: {table[0]} (the vocabulary)")
            return None
        tied[local] = f"{owner}.weights"
    return tied


def _known_shapes(wiring: Wiring, sources: list[str] | None) -> list[Shape] | None:
    """The input shapes, or None if a source is unresolved or its shape unknown after an earlier error."""
    if sources is None:
        return None
    shapes = [wiring.shapes[s] for s in sources]
    return None if any(s is None for s in shapes) else [s for s in shapes if s is not None]


def _shape_text(name: str, shape: Shape) -> str:
    return f"{name} ({', '.join(map(str, shape))})"


@dataclass
class _Compiled:
    inputs: dict[str, Shape]
    layers: list[CompiledLayer] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)


def _positional_name_warnings(doc: Document, layers: list[CompiledLayer], names_rule: str) -> list[Diagnostic]:
    """One warning listing parameterized layers whose names (and so weights) depend on their position."""
    if names_rule == "explicit":
        return []
    positional = [cl for cl in layers if cl.params and "name" not in cl.layer.options]
    if not positional:
        return []
    shown = ", ".join(cl.name for cl in positional[:4]) + (", ..." if len(positional) > 4 else "")
    msg = (f"{len(positional)} layer(s) with parameters rely on positional names ({shown}): inserting a layer "
           "before them renames them and changes their weights")  # fmt: skip
    first = positional[0]
    line, col = doc.mark(parse_path(first.spec_path))
    hint = "give them a name:, or set 'names: explicit' to require one"
    return [Diagnostic(msg, line, col, first.spec_path, hint=hint, severity="warning")]


def _same_padding_warnings(doc: Document, layers: list[CompiledLayer]) -> list[Diagnostic]:
    """One warning listing the layers whose ``padding: same`` pads (or crops) unequally on some axis: TensorFlow's
    rule puts the odd row after, where PyTorch's ``padding=n`` is symmetric, so a model copied from PyTorch
    computes something else."""
    uneven = []
    for cl in layers:
        layer = cl.layer
        if layer.options.get("padding") != "same" or not hasattr(layer, "pads"):
            continue
        if pads_vary("same", cl.input_shape[:-1], layer.geometry()[1]):  # type: ignore[attr-defined]
            continue  # the padding depends on a size known only at run time
        sizes = lend(cl.input_shape[:-1])
        pads = layer.crops(sizes) if hasattr(layer, "crops") else layer.pads(sizes)
        axes = [i for i, (before, after) in enumerate(pads, start=1) if before != after]
        if axes:
            what = ", ".join(f"({b}, {a})" for b, a in sorted({pads[i - 1] for i in axes}))
            uneven.append((cl, f"{cl.name} pads {what} on ax{'is' if len(axes) == 1 else 'es'} "
                               f"{', '.join(map(str, axes))}"))  # fmt: skip
    if not uneven:
        return []
    shown = "; ".join(text for _, text in uneven[:4]) + ("; ..." if len(uneven) > 4 else "")
    msg = (f"padding 'same' is TensorFlow's rule, uneven here ({shown}: before, after); PyTorch pads both sides "
           "equally, so a model copied from PyTorch computes something else")  # fmt: skip
    first = uneven[0][0]
    line, col = doc.mark(parse_path(first.spec_path))
    hint = "write the padding PyTorch uses (padding: 1 for a 3x3 kernel), or [before, after] per axis"
    return [Diagnostic(msg, line, col, first.spec_path, hint=hint, severity="warning")]


class Resolver:
    """Resolves and locates every activation and initializer once per spec key.

    A value written once (a layer key, or ``defaults.weights`` used by many
    layers) is built once; if it is invalid, it is reported once, at the line
    where it is written.
    """

    def __init__(self, doc: Document, defaults: dict[str, Any], recipe: SpecRecipe | None = None):
        self.doc = doc
        self.defaults = defaults
        self.recipe = recipe
        """The spec's init recipe: it decides after the layer's shapes are known (:func:`apply_recipe`)."""
        self.diagnostics: list[Diagnostic] = []
        self._built: dict[tuple[Path, str], Any] = {}

    def _build(self, where: Path, spec: Any, factory: Any) -> Any:
        key = (where, json.dumps(spec, sort_keys=True))  # a block's key may hold other values per instance
        if key not in self._built:
            try:
                self._built[key] = factory(spec)
            except InitializerError as exc:
                self._built[key] = None
                line, col = self.doc.mark(where)
                self.diagnostics.append(Diagnostic(str(exc), line, col, format_path(where)))
        return self._built[key]

    def _written(self, cls: type[Layer], options: dict[str, Any], path: Path, key: str) -> tuple[Any, Path | None, str]:
        """The value for ``key``, where it is written, and which source it came from."""
        if key in options:
            return options[key], (*path, key), "layer"
        if cls.USES_DEFAULTS and key in self.defaults:
            return self.defaults[key], ("defaults", key), "defaults"
        return None, None, "built-in"

    def layer(
        self, cls: type[Layer], options: dict[str, Any], path: Path
    ) -> tuple[Resolved, dict[str, Provenance]] | None:
        """The layer's resolved activation and initializers with their provenance (None if any is invalid)."""
        from netspec.init.initializers import get_initializer
        from netspec.nn.activations import get_activation

        activation = get_activation("linear")
        if cls.has_activation():
            spec, where, _ = self._written(cls, options, path, "activation")
            activation = self._build(where, spec, get_activation) if where else activation
            if activation is None:
                return None
        inits: dict[str, Any] = {}
        auto: set[str] = set()
        provenance: dict[str, Provenance] = {}
        for key, fallback in cls.INIT_KEYS.items():
            spec, where, source = self._written(cls, options, path, key)
            general = cls.INIT_FALLBACKS.get(key)
            if where is None and general is not None:  # not written: the general key decides (listed before it)
                decided = provenance[general]
                if decided.written in AUTOS:  # auto is resolved for this key (its own rule may differ)
                    target, follows, rule, why = cls.auto(key, options, activation)
                    inits[key] = get_initializer(target)
                    auto.add(key)
                    to = f"{auto_next.initializer_text(target)} ({why})"
                    provenance[key] = Provenance(general, decided.source, decided.written, follows, rule, to)
                else:
                    inits[key], provenance[key] = inits[general], decided
                continue
            written = fallback if where is None else spec
            if written in AUTOS:  # auto_next: resolved as auto here, then by auto_next.apply once the graph is known
                target, follows, rule, why = cls.auto(key, options, activation)
                inits[key] = get_initializer(target)
                auto.add(key)
                to = f"{auto_next.initializer_text(target)} ({why})"
                provenance[key] = Provenance(key, source, written, follows, rule, to)
            else:
                inits[key] = self._build(where, spec, get_initializer) if where else get_initializer(written)
                provenance[key] = Provenance(key, source, written)
        if any(v is None for v in inits.values()):
            return None
        return Resolved(activation, inits, frozenset(auto)), provenance

    def check_shapes(
        self, name: str, params: list[ParamSpec], provenance: dict[str, Provenance], path: Path
    ) -> list[Diagnostic]:
        """Every initializer accepts its tensor's shape (identity needs 2-D, dirac a conv kernel, ...)."""
        diags = []
        for p in params:
            try:
                p.declared()
            except InitializerError as exc:
                prov = provenance.get(p.init_key)
                where: Path = path
                if prov is not None and prov.source == "layer":
                    where = (*path, prov.key)
                elif prov is not None and prov.source == "defaults":
                    where = ("defaults", prov.key)
                line, col = self.doc.mark(where)
                diags.append(Diagnostic(f"{name}.{p.name}: {exc}", line, col, format_path(where)))
        return diags
