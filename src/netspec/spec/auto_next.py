"""``weights: auto_next``: the initializer recommended for the activation a layer's output meets next.

``auto`` follows the layer's own activation, so the standard ``conv -> batch_norm -> relu`` gets Glorot
(the conv is linear). ``auto_next`` follows the layer's own activation if it applies one, else walks the
graph forward from its output through layers that apply no weights of their own (norms, dropout,
pooling, reshapes, merges such as a residual ``add``) to the first that applies a non-linear activation;
a layer with weights (dense, conv, attention, ...) or the network output on the way means the output
meets no activation (linear: Glorot). When the paths from one output lead to activations that recommend
different initializers, the choice is the user's: a located error.

``auto`` keeps its meaning (existing specs' bytes are a contract): ``netspec validate`` warns where
``auto`` and ``auto_next`` would resolve differently, naming ``auto_next``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from netspec.errors import Diagnostic
from netspec.nn.layers import Norm

if TYPE_CHECKING:
    from netspec.nn.activations import Activation
    from netspec.nn.network import CompiledLayer, Provenance
    from netspec.spec.loader import Document

AUTO_NEXT = "auto_next"


def _applies(cl: CompiledLayer) -> Activation | None:
    """The non-linear activation a layer applies, if any."""
    act = cl.layer.activation
    return act if type(cl.layer).has_activation() and act.name != "linear" else None


def _transparent(cl: CompiledLayer) -> bool:
    """A layer the walk looks through: no weights of its own (norms' scale and shift do not count)."""
    return not type(cl.layer).has_parameters() or isinstance(cl.layer, Norm)


def next_activations(cl: CompiledLayer, consumers: dict[str, list[CompiledLayer]]) -> list[tuple[Any, str]]:
    """Every activation ``cl``'s output meets next, with the path to it (``bn1 -> relu1``); an activation of
    None where a path meets weights or the network output first."""
    own = _applies(cl)
    if own is not None:
        return [(own, cl.name)]
    found: list[tuple[Any, str]] = []
    seen: set[str] = set()
    stack: list[tuple[str, str]] = [(cl.name, "")]
    while stack:
        name, via = stack.pop()
        users = consumers.get(name, [])
        if not users:
            found.append((None, via or "the output"))
        for user in users:
            path = f"{via} -> {user.name}" if via else user.name
            act = _applies(user) if _transparent(user) else None
            if act is not None:
                found.append((act, path))
            elif not _transparent(user):
                found.append((None, path))
            elif user.name not in seen:
                seen.add(user.name)
                stack.append((user.name, path))
    return found


def consumers_of(layers: list[CompiledLayer]) -> dict[str, list[CompiledLayer]]:
    """Output name -> the layers that take it, in spec order."""
    out: dict[str, list[CompiledLayer]] = {}
    for cl in layers:
        for source in dict.fromkeys(cl.sources):
            out.setdefault(source, []).append(cl)
    return out


def resolve(layer_cls: Any, key: str, cl: CompiledLayer, consumers: dict[str, list[CompiledLayer]]) -> tuple[
        Any, str, str] | str:  # fmt: skip
    """What ``auto_next`` means for ``cl``'s initializer ``key``: (initializer spec, what it followed, why),
    or a message when the activations met next disagree."""
    from netspec.nn.activations import get_activation

    found = next_activations(cl, consumers)
    linear = get_activation("linear")
    choices: dict[str, tuple[Any, str, str]] = {}
    for act, path in found:
        target, follows, _, why = layer_cls.auto(key, cl.layer.options, act or linear)
        text = initializer_text(target)
        choices.setdefault(text, (target, f"{follows} via {path}" if path != cl.name else follows, why))
    if len(choices) > 1:
        shown = "; ".join(f"{follows}: {text}" for text, (_, follows, _) in choices.items())
        return (f"{cl.name}.{key}: auto_next: the output meets activations that recommend different "
                f"initializers ({shown})")  # fmt: skip
    return next(iter(choices.values()))


def initializer_text(spec: Any) -> str:
    """An initializer spec in words: ``he_normal`` or ``normal(std=1.0)``."""
    if isinstance(spec, str):
        return spec
    args = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "name")
    return f"{spec['name']}({args})"


def apply(doc: Document, layers: list[CompiledLayer]) -> list[Diagnostic]:
    """Resolve every ``auto_next`` key of the compiled ``layers`` in place (the compiler resolved it as
    ``auto`` while the graph after the layer was unknown); located errors where it is ambiguous."""
    from netspec.init.initializers import get_initializer
    from netspec.nn.layers import Resolved

    consumers = consumers_of(layers)
    diags: dict[tuple[str, str], Diagnostic] = {}
    for index, cl in enumerate(layers):
        keys = [k for k, prov in cl.provenance.items() if prov.written == AUTO_NEXT]
        if not keys:
            continue
        inits, provenance = dict(cl.layer.initializers), dict(cl.provenance)
        for key in keys:  # a key that falls back to another (INIT_FALLBACKS) applies its own auto rule
            resolved = resolve(type(cl.layer), key, cl, consumers)
            if isinstance(resolved, str):
                diags.setdefault((cl.name, provenance[key].key), _located(doc, cl, provenance[key], resolved))
                continue
            target, follows, why = resolved
            inits[key] = get_initializer(target)
            provenance[key] = dataclasses.replace(provenance[key], auto_from=follows,
                                                  auto_to=f"{initializer_text(target)} ({why})")  # fmt: skip
        layer = type(cl.layer)(cl.name, cl.layer.options, Resolved(cl.layer.activation, inits, cl.layer.auto_keys))
        decided = {p.name: p for p in cl.params if p.name in cl.recipe}  # the init recipe ranks above defaults
        params = [decided.get(p.name, p) for p in layer.param_specs(cl.input_shapes or [cl.input_shape])]
        layers[index] = dataclasses.replace(cl, layer=layer, params=params, provenance=provenance)
    return list(diags.values())


def _located(doc: Document, cl: CompiledLayer, prov: Provenance, message: str, **extra: Any) -> Diagnostic:
    """A diagnostic at the key that decided ``prov`` (the layer's own, ``defaults``, or the layer)."""
    from netspec.spec.loader import parse_path

    path = parse_path(cl.spec_path)
    where = {"layer": (*path, prov.key), "defaults": ("defaults", prov.key)}.get(prov.source, path)
    line, col = doc.mark(where)
    return Diagnostic(message, line, col, cl.spec_path, **{"hint": "write the initializer for this layer", **extra})


def warnings(doc: Document, layers: list[CompiledLayer]) -> list[Diagnostic]:
    """One warning listing the initializers that ``auto`` (the layer's own activation) and ``auto_next``
    (the activation its output meets next) would resolve differently."""
    consumers = consumers_of(layers)
    differ = []
    for cl in layers:
        for key, prov in cl.provenance.items():
            if prov.written != "auto" or prov.key != key or prov.auto_rule != "activation":
                continue
            resolved = resolve(type(cl.layer), key, cl, consumers)
            if isinstance(resolved, str):
                continue
            target, follows, _ = resolved
            auto = initializer_text(type(cl.layer).auto(key, cl.layer.options, cl.layer.activation)[0])
            if initializer_text(target) != auto:
                differ.append((cl, prov, f"{cl.name}.{key} {auto}, auto_next {initializer_text(target)} ({follows})"))
    if not differ:
        return []
    shown = "; ".join(text for _, _, text in differ[:3]) + (f"; {len(differ) - 3} more" if len(differ) > 3 else "")
    msg = (f"'auto' follows each layer's own activation; for {len(differ)} initializer(s) the activation the "
           f"output meets next recommends another, which 'auto_next' would give ({shown})")  # fmt: skip
    hint = ("write weights: auto_next (on the layers, or in defaults:) to follow the activation met next; "
            "'auto' keeps its meaning, so existing weights do not change")  # fmt: skip
    first, prov, _ = differ[0]
    return [_located(doc, first, prov, msg, hint=hint, severity="warning")]
