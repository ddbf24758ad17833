"""The build summary: a Keras-style table and its JSON form."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from netspec.spec.arithmetic import show

if TYPE_CHECKING:
    from netspec.nn.layers import ParamSpec
    from netspec.nn.network import CompiledLayer, Network, Provenance
    from netspec.spec.arithmetic import Evaluated


def _shape(shape: tuple[int | None, ...]) -> str:
    return "(None, " + ", ".join(map(str, shape)) + ")" if shape else "(None,)"


def rows(net: Network) -> list[dict[str, Any]]:
    """One row per layer: name, type, output shape, params, initializers, activation."""
    out = []
    for cl in net.layers:
        inits = {}
        for p in cl.params:
            dist = p.declared()
            fans = p.initializer.effective_fans(p.shape, p.fans)
            inits[p.name] = {"config": p.initializer.get_config(), "declared": dist.describe(),
                             "shape": list(p.shape), "fan_in": fans.fan_in, "fan_out": fans.fan_out}  # fmt: skip
        out.append(
            {
                "name": cl.name,
                "type": cl.layer.type,
                "output_shape": list(cl.output_shape),
                "params": cl.num_params,
                "parameters": inits,
                "activation": cl.layer.activation.name if cl.layer.has_activation() else None,
                "inputs": list(cl.sources),
                "line": cl.line,
                "tied": dict(cl.tied),
            }
        )
    return out


def _init_cell(row: dict[str, Any]) -> str:
    """The first kernel's initializer (``query.weights: ...`` when the layer has several kernels)."""
    kernels = [(k, v) for k, v in row["parameters"].items() if k == "weights" or k.endswith(".weights")]
    if not kernels and row.get("tied"):  # a tied kernel is another layer's tensor, counted there
        return ", ".join(f"tied to {owner}ᵀ" for owner in row["tied"].values())
    if not kernels:
        return "-"
    name, w = kernels[0]
    return ("" if name == "weights" else f"{name}: ") + f"{w['config']['name']} {w['declared']}"


def table(net: Network, data: list[dict[str, Any]] | None = None) -> str:
    """The summary table printed by ``netspec build`` (from ``rows(net)``, computed if not given)."""
    data = rows(net) if data is None else data
    graph = net.is_graph
    header = ("Layer (type)", "Output Shape", "Param #", "Weights init", "Activation", *(("Connected to",) * graph))
    body = [
        (
            f"{r['name']} ({r['type']})",
            _shape(tuple(r["output_shape"])),
            f"{r['params']:,}",
            _init_cell(r),
            r["activation"] or "-",
            *((", ".join(r["inputs"]),) * graph),
        )
        for r in data
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i == 2 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "-" * len(line(header))
    named = list(net.inputs) != ["input"]
    inputs = ", ".join(f"{k} {_shape(s)}" if named else _shape(s) for k, s in net.inputs.items())
    lines = [f'Network "{net.name}"  (input{"s" * (len(net.inputs) > 1)} {inputs}, {net.dtype}, rng {net.rng}, '
             f"seed {net.seed})"]  # fmt: skip
    lines += [rule, line(header), rule, *(line(b) for b in body), rule]
    if graph:
        lines.append("Outputs: " + ", ".join(f"{o} {_shape(net.shape_of(o))}" for o in net.outputs))
    lines += _instances_table(net)
    lines += totals(net)
    return "\n".join(lines)


def totals(net: Network) -> list[str]:
    """The summary's last lines: ``Total params: N (bytes)``, ``Trainable params: N``,
    ``Non-trainable params: M`` (batch norm's moving statistics)."""
    return [f"Total params: {net.num_params:,} ({human_bytes(net.nbytes)})",
            f"Trainable params: {net.num_trainable:,}",
            f"Non-trainable params: {net.num_params - net.num_trainable:,}"]  # fmt: skip


def _instances_table(net: Network) -> list[str]:
    """Block instances one per line (nested ones indented under theirs), with their parameter counts."""
    instances = block_params(net)
    if not instances:
        return []
    depth = {instance: i for cl in net.layers for i, (instance, _) in enumerate(cl.blocks)}
    names = {n: "  " * depth[n] + n for n in instances}
    width = max(len(v) for v in names.values())
    blocks = max(len(b) for b, _ in instances.values())
    counts = max(len(f"{c:,}") for _, c in instances.values())
    rows = [f"  {names[n].ljust(width)}  {b.ljust(blocks)}  {c:>{counts},}" for n, (b, c) in instances.items()]
    return ["Block instances (block, params):", *rows]


def block_params(net: Network) -> dict[str, tuple[str, int]]:
    """Parameters per block instance (nested instances count in every enclosing one): name -> (block, count)."""
    out: dict[str, tuple[str, int]] = {}
    for cl in net.layers:
        for instance, block in cl.blocks:
            out[instance] = (block, out.get(instance, (block, 0))[1] + cl.num_params)
    return out


def as_json(net: Network) -> dict[str, Any]:
    return {
        "name": net.name,
        "source": net.source,
        "input_shape": list(net.input_shape) if len(net.inputs) == 1 else None,
        "output_shape": list(net.output_shape) if len(net.outputs) == 1 else None,
        "inputs": {name: list(shape) for name, shape in net.inputs.items()},
        "outputs": {name: list(net.shape_of(name)) for name in net.outputs},
        "dtype": net.dtype,
        "rng": net.rng,
        "seed": net.seed,
        "total_params": net.num_params,
        "trainable_params": net.num_trainable,
        "non_trainable_params": net.num_params - net.num_trainable,
        "total_bytes": net.nbytes,
        "layers": rows(net),
        "blocks": {name: {"block": block, "params": count} for name, (block, count) in block_params(net).items()},
    }


def origin_of(net: Network, cl: CompiledLayer, p: ParamSpec) -> str:
    """Where a parameter's initializer came from: the recipe and role that decided it, or the layer key (over
    the recipe), ``defaults`` or ``auto``."""
    if p.name in cl.recipe:
        return cl.recipe[p.name].text()
    text = origin_text(cl.origin(p), p)
    if net.init is not None and cl.origin(p).source == "layer":
        text += f" (the layer's own key, over recipe {net.init['recipe']} for role {cl.layer.role_of(p)})"
    return text


def origin_text(prov: Provenance, param: ParamSpec) -> str:
    """Where an initializer came from, in words: ``defaults.weights; auto: relu -> he_normal (...)``."""
    if prov.source == "fixed":
        return "fixed by the layer type"
    key = prov.key
    text = {"layer": f"layer key '{key}'", "defaults": f"defaults.{key}"}.get(
        prov.source, f"built-in default ({prov.written})"
    )
    if param.init_key != key:  # a specific key (query_weights) the layer does not write: the general one decided
        text += f" ({param.init_key} not written)" if prov.source != "built-in" else (
            f" ({param.init_key} and {key} not written)")
    if prov.written in ("auto", "auto_next"):
        text += f"; {prov.written}: {prov.auto_from} -> {prov.auto_to}"
    return text + (" (kernel fans)" if param.name == "bias" or param.name.endswith(".bias") else "")


def fans_from(config: dict[str, Any], layer_fans: bool, convention: str = "") -> str:
    """Which convention gave a parameter's fans: the layer's kernel layout (or the layer's stated
    convention), or the initializer's own axes."""
    if layer_fans and convention:
        return f"the layer: {convention}"
    if layer_fans:
        return "the layer's kernel layout (netspec input-major: (*kernel, in, out); (in, out) for dense)"
    axes = ", ".join(f"{k}={config[k]}" for k in ("in_axis", "out_axis", "batch_axis") if k in config)
    return f"the initializer's axes ({axes})"


def expressions_of(net: Network, cl: CompiledLayer, p: ParamSpec) -> dict[str, Evaluated]:
    """The values written as expressions that decided a parameter: its layer's (shape and initializer) and
    those of the ``defaults`` entry or the ``init`` recipe it follows."""
    others = set(type(cl.layer).INIT_KEYS) - {p.init_key, cl.origin(p).key}
    out = {k: e for k, e in cl.expressions.items() if k.split(".")[0] not in others}
    origin = cl.origin(p)  # (its key: the general one it fell back to, weights for query_weights)
    prefix = "init" if p.name in cl.recipe else f"defaults.{origin.key}" if origin.source == "defaults" else ""
    if prefix:
        out.update({k: e for k, e in net.expressions.items() if k == prefix or k.startswith(prefix + ".")})
    return out


def constants_of(net: Network, cl: CompiledLayer, p: ParamSpec) -> frozenset[str]:
    """The constants a parameter depends on: through its layer (options, repeat counts, block arguments)
    and the expressions that decided its initializer."""
    return cl.depends.union(*(e.constants for e in expressions_of(net, cl, p).values()))


def _expressions_json(found: dict[str, Evaluated]) -> dict[str, Any]:
    return {k: {"expression": e.text, "value": e.value, "constants": sorted(e.constants)} for k, e in found.items()}


def explain(net: Network) -> list[dict[str, Any]]:
    """Per parameter: shape, fans, initializer, where it came from, its formula and declared distribution,
    and the expressions that decided it (with the constants they read)."""
    out = []
    origins = {f"{cl.name}.{p.name}": origin_of(net, cl, p) for cl in net.layers for p in cl.params}
    recipes = {f"{cl.name}.{p.name}": cl.recipe[p.name] for cl in net.layers for p in cl.params if p.name in cl.recipe}
    found = {f"{cl.name}.{p.name}": expressions_of(net, cl, p) for cl in net.layers for p in cl.params}
    reads = {f"{cl.name}.{p.name}": constants_of(net, cl, p) for cl in net.layers for p in cl.params}
    tied: dict[str, list[str]] = {}  # owner -> the tensors that are it, transposed (weight tying)
    for cl in net.layers:
        for local, owner in cl.tied.items():
            tied.setdefault(owner, []).append(f"{cl.name}.{local}")
    for path, p in net.parameters():
        dist = p.declared()
        fans = p.initializer.effective_fans(p.shape, p.fans)
        low, high = dist.support
        formula = (type(p.initializer).__doc__ or "").strip().splitlines()[0]
        out.append(
            {
                "parameter": path,
                "shape": list(p.shape),
                "fan_in": fans.fan_in,
                "fan_out": fans.fan_out,
                "receptive_field": fans.receptive_field,
                "fans_from": fans_from(p.initializer.get_config(), fans is p.fans, p.convention),
                "initializer": p.initializer.get_config(),
                "origin": origins[path],
                "formula": formula,
                "declared": dist.describe(),
                "mean": dist.mean,
                "std": dist.std,
                "support": [low, high],
                **({"recipe": asdict(recipes[path])} if path in recipes else {}),
                **({"expressions": _expressions_json(found[path])} if found[path] else {}),
                **({"constants": {k: net.constants[k] for k in sorted(reads[path])}} if reads[path] else {}),
                **({"tied": tied[path]} if path in tied else {}),
            }
        )
    return out


def explain_text(net: Network) -> str:
    blocks = []
    if net.init is not None:
        blocks.append("init         " + ", ".join(f"{k}: {v}" for k, v in net.init.items()))
    if net.constants:
        blocks.append("constants    " + ", ".join(f"{k} = {show(v)}" for k, v in net.constants.items()))
    blocks += [f"{k} = {e.describe()}" for k, e in net.expressions.items()]
    for e in explain(net):
        config = ", ".join(f"{k}={v}" for k, v in e["initializer"].items() if k != "name")
        blocks.append(
            f"{e['parameter']}  shape {tuple(e['shape'])}  fan_in {e['fan_in']}  fan_out {e['fan_out']}"
            f"  receptive field {e['receptive_field']}\n"
            f"  fans from    {e['fans_from']}\n"
            f"  initializer  {e['initializer']['name']}({config})  from {e['origin']}\n"
            f"  formula      {e['formula']}\n"
            f"  declared     {e['declared']}  (mean {e['mean']:.6g}, std {e['std']:.6g})"
            + "".join(f"\n  expression   {k} = {x['expression']} = {show(x['value'])}"
                      for k, x in e.get("expressions", {}).items())
            + ("\n  constants    " + ", ".join(f"{k} = {show(v)}" for k, v in e["constants"].items())
               if e.get("constants") else "")
            + "".join(f"\n  tied         {user} is this tensor, transposed (no tensor of its own)"
                      for user in e.get("tied", []))
        )
    return "\n".join(blocks)


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    exp = min(int(math.log(n, 1024)), 4)
    return f"{n / 1024**exp:.2f} {'BKMGT'[exp]}iB".replace("BiB", "B")
