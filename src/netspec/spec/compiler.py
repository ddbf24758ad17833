"""Validated document -> :class:`~netspec.nn.network.Network`, with every semantic error located.

Expands ``repeat`` blocks, names layers (``<type>_<position>``, 1-based),
resolves initializers and activations, infers shapes and counts parameters
without allocating anything, and refuses networks over ``max_params``.
"""

from __future__ import annotations

import os
from typing import Any

from netspec.errors import Diagnostic, InitializerError, SpecError
from netspec.nn.layers import LAYER_TYPES, ShapeError
from netspec.nn.network import CompiledLayer, Network
from netspec.spec.loader import Document, Path, format_path, load_file, load_text
from netspec.spec.validation import validate

DEFAULT_MAX_PARAMS = 2_000_000_000
MAX_LAYERS = 10_000
"""Layers after ``repeat`` expansion; counted before anything is expanded."""


def compile_file(path: str, **options: Any) -> Network:
    return compile_document(load_file(path), **options)


def compile_text(text: str, source: str = "<string>", **options: Any) -> Network:
    return compile_document(load_text(text, source), **options)


def compile_document(doc: Document, seed: int | None = None, max_params: int = DEFAULT_MAX_PARAMS) -> Network:
    diags = validate(doc)
    if diags:
        raise SpecError(doc.source, diags, doc.text)
    data = doc.data
    _check_expansion(doc, data["layers"], ("layers",))
    defaults = data.get("defaults", {})
    diags = _check_defaults(doc, defaults)
    layers: list[CompiledLayer] = []
    shape = tuple(data["input"])
    total = 0
    names: dict[str, Path] = {}
    for position, (options, path, suffix) in enumerate(_expand(data["layers"], ("layers",), ""), start=1):
        name = options["name"] + suffix if "name" in options else f"{options['type']}_{position}"
        line, col = doc.mark(path)
        if name in names:
            first = doc.mark(names[name])[0]
            diags.append(
                Diagnostic(f"duplicate layer name {name!r} (first used on line {first})", line, col, format_path(path))
            )
            continue
        names[name] = path
        try:
            layer = LAYER_TYPES[options["type"]](name, options, defaults)
        except InitializerError as exc:
            diags.append(_locate_init_error(doc, exc, options, defaults, path))
            continue
        if shape is None:
            continue
        try:
            params = layer.params(shape)
            out_shape = layer.output_shape(shape)
        except (ShapeError, InitializerError) as exc:
            diags.append(Diagnostic(f"{name} ({options['type']}): {exc}", line, col, format_path(path)))
            shape = None
            continue
        count = sum(p.size for p in params)
        if total <= max_params < total + count:
            msg = f"{name} brings the parameter count to {total + count:,}, over the limit of {max_params:,}"
            diags.append(Diagnostic(msg, line, col, format_path(path), hint="raise --max-params if this is intended"))
        total += count
        layers.append(CompiledLayer(layer, shape, out_shape, params, format_path(path), line))
        shape = out_shape
    if diags:
        raise SpecError(doc.source, diags, doc.text)
    stem = os.path.splitext(os.path.basename(doc.source))[0]
    return Network(
        name=data.get("name", stem),
        input_shape=tuple(data["input"]),
        layers=layers,
        seed=data.get("seed", 0) if seed is None else seed,
        rng=data.get("rng", "block"),
        dtype=data.get("dtype", "float32"),
        source=doc.source,
        spec=data,
    )


def _expanded_count(items: list[dict[str, Any]]) -> int:
    """Layers after expansion, saturating just above MAX_LAYERS (no big numbers, no expansion)."""
    total = 0
    for item in items:
        total += item["repeat"] * _expanded_count(item["layers"]) if "repeat" in item else 1
        if total > MAX_LAYERS:
            return MAX_LAYERS + 1
    return total


def _check_expansion(doc: Document, items: list[dict[str, Any]], path: Path) -> None:
    """Refuse specs whose ``repeat`` blocks expand to more than MAX_LAYERS layers."""
    total = 0
    for i, item in enumerate(items):
        total += _expanded_count([item])
        if total > MAX_LAYERS:
            line, col = doc.mark((*path, i))
            msg = f"the layers expand to more than {MAX_LAYERS:,} (repeat blocks multiply); refusing to expand them"
            raise SpecError(doc.source, [Diagnostic(msg, line, col, format_path((*path, i)))], doc.text)


def _expand(items: list[dict[str, Any]], path: Path, suffix: str) -> list[tuple[dict[str, Any], Path, str]]:
    """Flatten ``repeat`` blocks; names inside get ``_<k>`` (1-based) per repetition."""
    out = []
    for i, item in enumerate(items):
        if "repeat" in item:
            for k in range(1, item["repeat"] + 1):
                out.extend(_expand(item["layers"], (*path, i, "layers"), f"{suffix}_{k}"))
        else:
            out.append((item, (*path, i), suffix))
    return out


def _check_defaults(doc: Document, defaults: dict[str, Any]) -> list[Diagnostic]:
    from netspec.init.initializers import get_initializer
    from netspec.nn.activations import get_activation

    diags = []
    for key in ("weights", "bias", "activation"):
        if key not in defaults or defaults[key] == "auto":
            continue
        try:
            (get_activation if key == "activation" else get_initializer)(defaults[key])
        except InitializerError as exc:
            line, col = doc.mark(("defaults", key))
            diags.append(Diagnostic(str(exc), line, col, f"defaults.{key}"))
    return diags


def _locate_init_error(
    doc: Document, exc: InitializerError, options: dict[str, Any], defaults: dict[str, Any], path: Path
) -> Diagnostic:
    """Point at the layer key (or the default) whose initializer or activation is invalid."""
    from netspec.init.initializers import get_initializer
    from netspec.nn.activations import get_activation

    for key in ("activation", "weights", "bias"):
        spec, where = (options[key], (*path, key)) if key in options else (defaults.get(key), ("defaults", key))
        if spec is None or spec == "auto":
            continue
        try:
            (get_activation if key == "activation" else get_initializer)(spec)
        except InitializerError:
            if where[0] == "defaults":
                break  # already reported once by _check_defaults
            line, col = doc.mark(where)
            return Diagnostic(str(exc), line, col, format_path(where))
    line, col = doc.mark(path)
    return Diagnostic(str(exc), line, col, format_path(path))
