"""JAX/Flax export: the variables pytree in Flax naming, saved with ``flax.serialization``, and a
``flax.linen`` module whose ``apply`` with them computes the network (the ``flax`` extra, lazily).

Naming: a layer's variables sit under its name, dotted names nesting (``{"layer1_0": {"conv1":
{"kernel": ...}}}``); leaves are Flax's: ``kernel`` and ``bias`` (dense and convolutions: netspec's
input-major layouts are Flax's ``(in, out)`` and ``(*k, in/groups, out)``), ``embedding``, ``scale`` and
``bias`` for norms (``scale`` alone for RMS norm, as ``flax.linen.RMSNorm``) with batch norm's
``mean``/``var`` in the ``batch_stats`` collection, attention's
``query``/``key``/``value``/``out`` with ``DenseGeneral`` kernels ``(d, heads, head_dim)`` and
``(heads, head_dim, d_out)`` (``flax.linen.MultiHeadDotProductAttention``'s), recurrent layers'
fused ``kernel``, ``recurrent_kernel``, ``bias``, ``recurrent_bias`` (and ``reverse``), positional
tables as ``embedding``. Every leaf is a netspec tensor, reshaped at most, so the round trip is exact.

Adding a layer type: one entry in :data:`APPLY`, registered with ``@applies("type", ...)``:
``apply(compiled_layer, p, inputs) -> output`` computes the layer in JAX on channels-last arrays, where
``p`` is the layer's subtree of the variables (``p["kernel"]``, ``p["query"]["bias"]``;
``p["batch_stats"]`` holds its ``batch_stats`` collection). :func:`leaves` names the variables: the
default renames ``weights`` -> ``kernel``, ``recurrent_weights`` -> ``recurrent_kernel`` and keeps
``bias``, ``recurrent_bias`` and dotted prefixes (``reverse.``); a layer type whose variables Flax
names or shapes otherwise gets a branch there. ``tests/test_export_targets.py`` walks the layer registry.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from netspec.errors import NetspecError
from netspec.extras import install_hint
from netspec.nn.layers import concrete
from netspec.registry import registrar

if TYPE_CHECKING:
    import numpy as np

    from netspec.nn.network import CompiledLayer, Network

Leaves = dict[str, tuple[str, tuple[int, ...]]]
"""netspec parameter (within the layer) -> (Flax leaf path within the layer, leaf shape)."""


def flax_module() -> Any:
    try:
        import flax.linen
    except ImportError:
        raise NetspecError(f"Flax export needs flax: {install_hint('flax')}") from None
    return flax.linen


def leaves(cl: CompiledLayer) -> Leaves:
    """Where each of a layer's tensors goes in the Flax tree (see the module doc)."""
    kind = cl.layer.type
    shapes = {p.name: p.shape for p in cl.params}
    if kind == "embedding" or kind == "positional_embedding":
        return {"weights": ("embedding", shapes["weights"])}
    if kind in ("batch_norm", "layer_norm", "rms_norm"):
        names = {"gamma": "scale", "beta": "bias", "moving_mean": "batch_stats:mean",
                 "moving_variance": "batch_stats:var"}  # fmt: skip
        return {k: (names[k], s) for k, s in shapes.items()}
    if kind == "multi_head_attention":
        heads, kv_heads = cl.layer.options["heads"], cl.layer.kv_heads  # type: ignore[attr-defined]
        out: Leaves = {}
        for name, shape in shapes.items():
            proj, leaf = name.split(".")
            flax_proj = "out" if proj == "output" else proj
            n = kv_heads if proj in ("key", "value") else heads
            if leaf == "weights":
                new = (n, shape[0] // n, shape[1]) if proj == "output" else (shape[0], n, shape[1] // n)
                out[name] = (f"{flax_proj}.kernel", new)
            else:
                out[name] = (f"{flax_proj}.bias", shape if proj == "output" else (n, shape[0] // n))
        return out
    rename = {"weights": "kernel", "recurrent_weights": "recurrent_kernel", "bias": "bias",
              "recurrent_bias": "recurrent_bias"}  # fmt: skip
    out = {}
    for name, shape in shapes.items():
        *prefix, leaf = name.split(".")
        if leaf not in rename:
            raise NetspecError(f"{cl.name}.{name}: no Flax name for a {kind} layer's {leaf!r} "
                               "(netspec.export.flax.leaves names each layer type's variables)")  # fmt: skip
        out[name] = (".".join([*prefix, rename[leaf]]), shape)
    return out


def variables(net: Network, params: dict[str, np.ndarray]) -> dict[str, Any]:
    """``{"params": tree, "batch_stats": tree}`` (the latter only if the network has batch norm)."""
    out: dict[str, Any] = {"params": {}}
    for cl in net.layers:
        for local, (path, shape) in leaves(cl).items():
            collection, _, path = path.rpartition(":") if ":" in path else ("params", "", path)
            node = out.setdefault(collection, {})
            *parents, leaf = [*cl.name.split("."), *path.split(".")]
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = params[f"{cl.name}.{local}"].reshape(shape)
    return out


def read_variables(net: Network, tree: dict[str, Any]) -> dict[str, np.ndarray]:
    """netspec's arrays from a variables tree of :func:`variables` (NetspecError listing what is wrong)."""
    import numpy as np

    from netspec.init.precision import numpy_dtype

    out, problems = {}, []
    for cl in net.layers:
        shapes = {p.name: p.shape for p in cl.params}
        for local, (path, shape) in leaves(cl).items():
            collection, _, path = path.rpartition(":") if ":" in path else ("params", "", path)
            node: Any = tree.get(collection, {})
            keys = [*cl.name.split("."), *path.split(".")]
            for part in keys:
                node = node.get(part) if isinstance(node, dict) else None
            where = f"{collection}/{'/'.join(keys)}"
            if node is None:
                problems.append(f"missing {where}")
                continue
            array = np.asarray(node)
            if array.shape != shape or array.dtype != numpy_dtype(net.dtype):
                problems.append(f"{where} is {array.dtype}{list(array.shape)}, expected {net.dtype}{list(shape)}")
                continue
            out[f"{cl.name}.{local}"] = array.reshape(shapes[local])
    if problems:
        raise NetspecError("the Flax variables do not match the spec: " + "; ".join(problems))
    return out


def save(net: Network, params: dict[str, np.ndarray], path: str) -> None:
    """Write :func:`variables` with ``flax.serialization.to_bytes`` (msgpack), atomically."""
    flax_module()
    from flax import serialization

    from netspec.io.weights import atomic_write

    data = serialization.msgpack_serialize(variables(net, params))
    with atomic_write(path) as fh:
        fh.write(data)


def read_file(net: Network, path: str) -> dict[str, np.ndarray]:
    import os

    flax_module()
    from flax import serialization

    if os.path.getsize(path) > net.nbytes + (1 << 20) * (1 + len(net.layers)):
        raise NetspecError(f"{path}: {os.path.getsize(path):,} bytes is more than the spec's weights can take")
    from netspec.io.files import open_regular

    with open_regular(path) as fh:
        try:
            tree = serialization.msgpack_restore(fh.read())
        except Exception as exc:  # msgpack raises several types for a corrupt file
            raise NetspecError(f"{path}: not a Flax msgpack file: {type(exc).__name__}: {exc}") from None
    if not isinstance(tree, dict):
        raise NetspecError(f"{path}: holds a {type(tree).__name__}, not a variables tree")
    return read_variables(net, tree)


def to_module(spec_or_network: Any) -> Any:
    """A ``flax.linen`` module of a :class:`Network` or a spec file: ``module.apply(variables(net,
    params), x)`` (or keyword arguments by input name) gives the network's outputs for channels-last
    inputs ``(batch, *input)``; ``module.init`` returns the spec's own initial weights (from its seed),
    not Flax's.

    A float64 spec computes in float64 only with JAX's 64-bit types enabled (``with
    jax.enable_x64(True):`` around ``apply``, or the ``jax_enable_x64`` flag); without them JAX would
    quietly compute in float32, so ``apply`` raises :class:`NetspecError` instead."""
    nn = flax_module()
    from netspec.nn.network import Network
    from netspec.spec.compiler import compile_file

    net = spec_or_network if isinstance(spec_or_network, Network) else compile_file(str(spec_or_network))
    tops: dict[str, dict[str, None]] = {"params": {}, "batch_stats": {}}  # collection -> top-level names
    for cl in net.layers:
        for path, _ in leaves(cl).values():
            tops["batch_stats" if ":" in path else "params"][cl.name.split(".")[0]] = None

    @functools.cache
    def template() -> dict[str, Any]:  # the spec's weights, built only if ``init`` asks for them
        return variables(net, net.initialize())

    class NetspecFlax(nn.Module):  # type: ignore[name-defined]
        @nn.compact
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            import jax

            if net.dtype == "float64" and not jax.config.read("jax_enable_x64"):
                raise NetspecError(f"{net.name} is float64 but JAX computes in float32 unless 64-bit types are "
                                   "enabled: apply it inside 'with jax.enable_x64(True):'")  # fmt: skip
            inputs = {**dict(zip(net.inputs, args, strict=False)), **kwargs}
            tree = {top: self.param(top, lambda _rng, top=top: template()["params"][top])
                    for top in tops["params"]}  # fmt: skip
            stats = {top: self.variable("batch_stats", top, lambda top=top: template()["batch_stats"][top]).value
                     for top in tops["batch_stats"]}  # fmt: skip
            if net.compute_dtype != net.dtype:  # half-type weights: computed in float32, as the NumPy forward pass
                widen = functools.partial(jax.tree_util.tree_map, lambda a: a.astype(net.compute_dtype))
                tree, stats = widen(tree), widen(stats)
            values = dict(inputs)
            for cl in net.layers:
                p = _subtree(tree, cl.name) | {"batch_stats": _subtree(stats, cl.name)} | _tied(net, cl, tree)
                values[cl.name] = APPLY[cl.layer.type](cl, p, [values[s] for s in cl.sources])
            out = {name: values[name] for name in net.outputs}
            return out[net.outputs[0]] if len(out) == 1 else out

    return NetspecFlax()


def _tied(net: Network, cl: CompiledLayer, tree: dict[str, Any]) -> dict[str, Any]:
    """The leaves a layer is tied to, read from their owner's variables, transposed (as Flax's
    ``Embed.attend``: the tied layer has no variable of its own): ``{"kernel": embedding.T}``."""
    out = {}
    for local, owner in cl.tied.items():
        layer, _, param = owner.rpartition(".")
        path = leaves(next(c for c in net.layers if c.name == layer))[param][0]
        leaf: Any = _subtree(tree, ".".join([layer, path]))
        out[{"weights": "kernel"}[local]] = leaf.T
    return out


def _subtree(tree: dict[str, Any], dotted: str) -> dict[str, Any]:
    node: Any = tree
    for part in dotted.split("."):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node


# ----------------------------------------------------------------------------- forward in JAX

Apply = Callable[["CompiledLayer", dict[str, Any], list[Any]], Any]
APPLY: dict[str, Apply] = {}


applies = registrar(APPLY)


def activation(act: Any) -> Callable[[Any], Any]:
    import jax

    name = act.name
    table: dict[str, Callable[[Any], Any]] = {
        "linear": lambda x: x, "sigmoid": jax.nn.sigmoid, "tanh": jax.numpy.tanh, "relu": jax.nn.relu,
        "selu": jax.nn.selu, "silu": jax.nn.silu, "softplus": jax.nn.softplus, "softsign": jax.nn.soft_sign,
        "softmax": lambda x: jax.nn.softmax(x, axis=-1), "log_softmax": lambda x: jax.nn.log_softmax(x, axis=-1),
        "leaky_relu": lambda x: jax.nn.leaky_relu(x, act.alpha), "elu": lambda x: jax.nn.elu(x, act.alpha),
        "relu6": jax.nn.relu6, "hard_sigmoid": jax.nn.hard_sigmoid, "hard_swish": jax.nn.hard_swish,
    }  # fmt: skip
    if name == "gelu":
        return lambda x: jax.nn.gelu(x, approximate=act.approximate == "tanh")
    if name not in table:
        raise NetspecError(f"activation {name!r} has no Flax export")
    return table[name]


@applies("dense")
def _dense(cl: CompiledLayer, p: dict[str, Any], xs: list[Any]) -> Any:
    y = xs[0] @ p["kernel"]
    return activation(cl.layer.activation)(y + p["bias"] if "bias" in p else y)


def _dims(rank: int) -> tuple[str, str, str]:
    spatial = "DHW"[3 - rank :]
    return f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"


@applies("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d")
def _conv(cl: CompiledLayer, p: dict[str, Any], xs: list[Any]) -> Any:
    import jax

    layer = cl.layer
    _, stride, dilation, _ = layer.geometry()  # type: ignore[attr-defined]
    rank, groups = layer.rank, layer.groups  # type: ignore[attr-defined]
    effective = layer.effective_kernel()  # type: ignore[attr-defined]
    w = p["kernel"]
    if layer.type.startswith("conv_transpose"):  # a convolution of the stride-dilated input with the flipped kernel
        flipped = jax.numpy.flip(w, axis=tuple(range(rank)))
        full = [(k - 1, k - 1) for k in effective]
        y = jax.lax.conv_general_dilated(xs[0], flipped, (1,) * rank, full, lhs_dilation=stride,
                                         rhs_dilation=dilation, dimension_numbers=_dims(rank),
                                         feature_group_count=groups)  # fmt: skip
        sizes = xs[0].shape[1:-1]  # static when JAX traces (the spec's may be known only at run time)
        out = concrete(layer.output_shape(xs[0].shape[1:]))[:-1]
        starts = [b for b, _ in layer.crops(sizes)]  # type: ignore[attr-defined]
        y = y[(slice(None), *(slice(b, b + o) for b, o in zip(starts, out, strict=True)))]
        short = [o - size for o, size in zip(out, y.shape[1:-1], strict=True)]
        if any(short):
            y = jax.numpy.pad(y, [(0, 0), *((0, m) for m in short), (0, 0)])
    else:
        pads = layer.pads(xs[0].shape[1:-1])  # type: ignore[attr-defined]
        y = jax.lax.conv_general_dilated(xs[0], w, stride, pads, rhs_dilation=dilation,
                                         dimension_numbers=_dims(rank), feature_group_count=groups)  # fmt: skip
    if "bias" in p:
        y = y + p["bias"]
    return activation(layer.activation)(y)


@applies("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d")
def _pool(cl: CompiledLayer, p: dict[str, Any], xs: list[Any]) -> Any:
    import jax

    layer = cl.layer
    window, stride, _ = layer.geometry()  # type: ignore[attr-defined]
    pads = [(0, 0), *layer.pads(xs[0].shape[1:-1]), (0, 0)]  # type: ignore[attr-defined]
    dims, strides = (1, *window, 1), (1, *stride, 1)
    x = xs[0]
    if layer.reduce == "max":  # type: ignore[attr-defined]
        return jax.lax.reduce_window(x, -jax.numpy.inf, jax.lax.max, dims, strides, pads)
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, dims, strides, pads)
    if layer.count_include_pad:  # type: ignore[attr-defined]
        return total / math.prod(window)
    count = jax.lax.reduce_window(jax.numpy.ones_like(x), 0.0, jax.lax.add, dims, strides, pads)
    return total / count


@applies("flatten")
def _flatten(cl: CompiledLayer, p: dict[str, Any], xs: list[Any]) -> Any:
    return xs[0].reshape(xs[0].shape[0], math.prod(xs[0].shape[1:]))  # no -1: an empty batch reshapes too


@applies("dropout")
def _identity(cl: CompiledLayer, p: dict[str, Any], xs: list[Any]) -> Any:
    return xs[0]


@applies("activation")
def _activation(cl: CompiledLayer, p: dict[str, Any], xs: list[Any]) -> Any:
    return activation(cl.layer.activation)(xs[0])


@applies("batch_norm")
def _batch_norm(cl: CompiledLayer, p: dict[str, Any], xs: list[Any]) -> Any:
    import jax

    stats = p["batch_stats"]
    scale = p["scale"] / jax.numpy.sqrt(stats["var"] + cl.layer.epsilon)  # type: ignore[attr-defined]
    return (xs[0] - stats["mean"]) * scale + p["bias"]


@applies("layer_norm")
def _layer_norm(cl: CompiledLayer, p: dict[str, Any], xs: list[Any]) -> Any:
    import jax

    x = xs[0]
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / jax.numpy.sqrt(var + cl.layer.epsilon) * p["scale"] + p["bias"]  # type: ignore[attr-defined]


@applies("rms_norm")
def _rms_norm(cl: CompiledLayer, p: dict[str, Any], xs: list[Any]) -> Any:
    import jax

    x = xs[0]
    return x / jax.numpy.sqrt((x * x).mean(axis=-1, keepdims=True) + cl.layer.epsilon) * p["scale"]  # type: ignore[attr-defined]


@applies("embedding")
def _embedding(cl: CompiledLayer, p: dict[str, Any], xs: list[Any]) -> Any:
    return p["embedding"][xs[0].astype("int32")]


@applies("positional_embedding")
def _positional(cl: CompiledLayer, p: dict[str, Any], xs: list[Any]) -> Any:
    return xs[0] + p["embedding"][: xs[0].shape[1]]


@applies("add", "subtract", "multiply", "concat")
def _merge(cl: CompiledLayer, p: dict[str, Any], xs: list[Any]) -> Any:
    import jax

    kind = cl.layer.type
    if kind == "concat":
        return jax.numpy.concatenate(xs, axis=1 + cl.layer.axis(len(cl.input_shape)))  # type: ignore[attr-defined]
    y = xs[0]
    for x in xs[1:]:
        y = y + x if kind == "add" else y - x if kind == "subtract" else y * x
    return y


@applies("global_avg_pool", "global_max_pool")
def _global(cl: CompiledLayer, p: dict[str, Any], xs: list[Any]) -> Any:
    axes = tuple(range(1, xs[0].ndim - 1))
    return xs[0].mean(axis=axes) if cl.layer.type == "global_avg_pool" else xs[0].max(axis=axes)


@applies("zero_pad")
def _zero_pad(cl: CompiledLayer, p: dict[str, Any], xs: list[Any]) -> Any:
    import jax

    return jax.numpy.pad(xs[0], [(0, 0), *cl.layer.pads(cl.input_shape), (0, 0)])  # type: ignore[attr-defined]


@applies("upsample")
def _upsample(cl: CompiledLayer, p: dict[str, Any], xs: list[Any]) -> Any:
    x = xs[0]
    for axis, k in enumerate(cl.layer.factors(cl.input_shape), start=1):  # type: ignore[attr-defined]
        x = x.repeat(k, axis=axis)
    return x


@applies("reshape")
def _reshape(cl: CompiledLayer, p: dict[str, Any], xs: list[Any]) -> Any:
    return xs[0].reshape(xs[0].shape[0], *cl.output_shape)


@applies("permute")
def _permute(cl: CompiledLayer, p: dict[str, Any], xs: list[Any]) -> Any:
    return xs[0].transpose(0, *(int(a) for a in cl.layer.options["axes"]))


@applies("simple_rnn", "gru", "lstm")
def _recurrent(cl: CompiledLayer, p: dict[str, Any], xs: list[Any]) -> Any:
    import jax

    layer = cl.layer
    units = layer.units  # type: ignore[attr-defined]
    outs = [_direction(cl, p, xs[0], units)]
    if layer.directions == 2:  # type: ignore[attr-defined]
        outs.append(_direction(cl, p["reverse"], xs[0][:, ::-1], units)[:, ::-1])
    if layer.options.get("return_sequences", False):
        return jax.numpy.concatenate(outs, axis=-1)
    return jax.numpy.concatenate([outs[0][:, -1]] + ([outs[1][:, 0]] if len(outs) > 1 else []), axis=-1)


def _direction(cl: CompiledLayer, p: dict[str, Any], x: Any, units: int) -> Any:
    import jax

    jnp = jax.numpy
    kind = cl.layer.type
    xw = x @ p["kernel"]
    if "bias" in p:
        xw = xw + p["bias"]
    rb = p.get("recurrent_bias")

    def step(state: Any, xt: Any) -> tuple[Any, Any]:
        h, c = state
        if kind == "simple_rnn":
            h = jnp.tanh(xt + h @ p["recurrent_kernel"])
        elif kind == "lstm":
            i, f, g, o = jnp.split(xt + h @ p["recurrent_kernel"], 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
        else:
            hw = h @ p["recurrent_kernel"] + (rb if rb is not None else 0.0)
            xz, xr, xh = jnp.split(xt, 3, axis=-1)
            hz, hr, hh = jnp.split(hw, 3, axis=-1)
            z = jax.nn.sigmoid(xz + hz)
            h = z * h + (1 - z) * jnp.tanh(xh + jax.nn.sigmoid(xr + hr) * hh)
        return (h, c), h

    zeros = jnp.zeros((x.shape[0], units), dtype=x.dtype)
    _, hs = jax.lax.scan(step, (zeros, zeros), jnp.swapaxes(xw, 0, 1))
    return jnp.swapaxes(hs, 0, 1)


@applies("multi_head_attention")
def _attention(cl: CompiledLayer, p: dict[str, Any], xs: list[Any]) -> Any:
    import jax

    jnp = jax.numpy
    x, c = xs[0], xs[-1]

    def project(a: Any, proj: str) -> Any:
        y = jnp.einsum("btd,dhk->bthk", a, p[proj]["kernel"])
        return y + p[proj]["bias"] if "bias" in p[proj] else y

    q, k, v = project(x, "query"), project(c, "key"), project(c, "value")
    rotary = cl.layer.rotary  # type: ignore[attr-defined]
    if rotary is not None:
        from netspec.nn.attention import rotate_positions

        q, k = rotate_positions(rotary, q, jnp), rotate_positions(rotary, k, jnp)
    group = q.shape[2] // k.shape[2]  # grouped-query: query head h uses key/value head h // group
    k, v = jnp.repeat(k, group, axis=2), jnp.repeat(v, group, axis=2)
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])
    if cl.layer.options.get("causal", False):
        scores = jnp.where(jnp.tril(jnp.ones(scores.shape[-2:], dtype=bool)), scores, -jnp.inf)
    heads = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)
    y = jnp.einsum("bqhd,hdo->bqo", heads, p["out"]["kernel"])
    return y + p["out"]["bias"] if "bias" in p["out"] else y

