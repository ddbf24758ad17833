"""ONNX export: a model built with the ``onnx`` package's helpers (the ``onnx`` extra, imported lazily).

The model takes the spec's own inputs, ``(batch, *input)`` channels last with a symbolic batch axis
(int64 token ids for inputs that feed an embedding), transposing inside the graph where an operator
wants channels first. Opset :data:`OPSET`. Weights are initializers named ``<layer>.<param>``, in
netspec's layout where the operator allows (``MatMul`` takes the input-major ``(in, out)`` kernel as
it is) and in the operator's layout otherwise (``Conv``: ``(out, in/groups, *k)``; ``LSTM``: ``W``
``(directions, 4*units, in)`` in ONNX's ``i, o, f, c`` gate order, ``R``, ``B`` = bias then the
recurrent bias). Metadata properties carry the spec name, netspec version, seed, stream and every
tensor's SHA-256 (of netspec's bytes). Past 2 GB of weights they go to an external data file beside
the model.

Converters: each layer type has one entry in :data:`CONVERTERS`, registered with
``@converter("type", ...)``: ``converter(g, compiled_layer, inputs) -> output`` where ``inputs`` are
the names of the layer's input values (channels last, ``(batch, *shape)``) and ``output`` is the name
of the value it produces, in the same layout. It adds nodes with ``g.node(op, inputs, **attrs)``,
constants with ``g.const``/``g.ints``, and each weight with ``g.weight(netspec_name, array)``, reading
netspec's arrays from ``g.params[f"{layer}.{param}"]``. The array it passes to ``g.weight`` must be
netspec's tensor with its elements moved (transposed, reordered, reshaped, stacked, padded with
``g.blank``) and never computed from: :func:`layouts` runs every converter on arrays of element
numbers to learn where each element went, which is how ``verify`` undoes the layout of an exported
file. ``tests/test_export_targets.py`` walks the layer registry and runs each type through
onnxruntime.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from netspec.errors import NetspecError
from netspec.extras import install_hint
from netspec.init.precision import HALF
from netspec.nn.layers import concrete, lend, pads_vary
from netspec.registry import registrar

if TYPE_CHECKING:
    import numpy as np

    from netspec.nn.network import CompiledLayer, Network

OPSET = 21
EXTERNAL_DATA_BYTES = 1 << 31
"""Weights past this many bytes go to an external data file (ONNX's protobuf limit is 2 GB)."""


def onnx_module() -> Any:
    try:
        import onnx
    except ImportError:
        raise NetspecError(f"ONNX export needs onnx: {install_hint('onnx')}") from None
    return onnx


class Graph:
    """The graph being built: nodes, initializers, and which netspec tensor each initializer holds."""

    def __init__(self, params: dict[str, np.ndarray], dtype: str, build: bool = True):
        self.params = params
        self.dtype = dtype
        self.build = build
        self.blank = 0.0 if build else -1.0
        """The value of initializer elements that hold no netspec value (-1 marks them when tracing layouts)."""
        self.nodes: list[Any] = []
        self.initializers: dict[str, np.ndarray] = {}
        self.layout: dict[str, tuple[str, np.ndarray]] = {}
        """netspec tensor -> (initializer, its array in the operator's layout)."""
        self.values: dict[str, str] = {}
        """netspec tensor -> the graph value holding it (its initializer, or the Cast of a half type)."""
        self.counter = 0

    def name(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}/{self.counter}"

    def weight(self, netspec_name: str | list[str], array: np.ndarray, name: str | None = None) -> str:
        """An initializer holding (a layout of) one netspec tensor, or of several (``name`` required)."""
        import numpy as np

        names = [netspec_name] if isinstance(netspec_name, str) else netspec_name
        key = name or names[0]
        self.initializers[key] = np.ascontiguousarray(array)
        value = key
        if array.dtype.name in HALF:  # stored in the half type, computed in float32 (a Cast the runtime folds)
            value = self.node("Cast", [key], to=helper_type(self.dtype))
        for n in names:
            self.layout[n] = (key, self.initializers[key])
            self.values[n] = value
        return value

    def const(self, array: Any, hint: str = "const", dtype: str | None = None) -> str:
        import numpy as np

        name = self.name(hint)
        self.initializers[name] = np.asarray(array, dtype=dtype or self.dtype)
        return name

    def ints(self, values: list[int]) -> str:
        return self.const(values, "shape", "int64")

    def node(self, op: str, inputs: list[str], outputs: int = 1, **attrs: Any) -> Any:
        names = [self.name(op) for _ in range(outputs)]
        if self.build:
            import onnx

            self.nodes.append(onnx.helper.make_node(op, inputs, names, **attrs))
        return names[0] if outputs == 1 else names


Converter = Callable[[Graph, "CompiledLayer", list[str]], str]
CONVERTERS: dict[str, Converter] = {}


converter = registrar(CONVERTERS)


def build_model(net: Network, params: dict[str, np.ndarray], check: bool = True) -> Any:
    """The ONNX ModelProto of ``net`` holding ``params`` (see the module doc), checked with
    ``onnx.checker.check_model(full_check=True)`` unless ``check`` is false (the tests check every layer
    type and example spec; :func:`save` skips the checker's second serialization of the weights)."""
    onnx = onnx_module()
    from concurrent.futures import ThreadPoolExecutor

    from onnx import TensorProto, helper

    from netspec import __version__
    from netspec.io.weights import metadata_for, tensor_digests

    with ThreadPoolExecutor(1) as pool:  # hashlib releases the GIL: the digests come while the graph is built
        digests = pool.submit(tensor_digests, params)
        model = _model(net, params, helper, TensorProto, __version__)
        meta = {**metadata_for(net), "netspec_version": __version__}
        meta.update({f"sha256:{k}": v for k, v in digests.result().items()})
    helper.set_model_props(model, meta)
    if check:
        onnx.checker.check_model(model, full_check=True)
    return model


def helper_type(dtype: str) -> int:
    """ONNX's element type of a NumPy dtype name."""
    from onnx import helper

    from netspec.init.precision import numpy_dtype

    return int(helper.np_dtype_to_tensor_dtype(numpy_dtype(dtype)))


def _model(net: Network, params: dict[str, np.ndarray], helper: Any, TensorProto: Any, version: str) -> Any:
    g = _trace(net, params, build=True)
    elem = helper_type(net.compute_dtype)
    inputs = [helper.make_tensor_value_info(name, TensorProto.INT64 if _ids(net, name) else elem,
                                            _dims(name, shape)) for name, shape in net.inputs.items()]  # fmt: skip
    outputs = [helper.make_tensor_value_info(name, elem, _dims(name, net.shape_of(name))) for name in net.outputs]
    nodes = [*g.nodes, *(helper.make_node("Identity", [g.values[n]], [n]) for n in net.outputs)]  # type: ignore[attr-defined]
    graph = helper.make_graph(nodes, net.name, inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="netspec",
                              producer_version=version)  # fmt: skip
    model.ir_version = min(model.ir_version, 10)
    for name, array in g.initializers.items():
        _initializer(model.graph, name, array, helper)
    return model


def _dims(name: str, shape: tuple[int | None, ...]) -> list[int | str]:
    """A value's ONNX dimensions: the symbolic ``batch``, then its sizes; a size known only at run time is
    symbolic too, ``<value>_axis<i>`` (i counts from the batch axis, 0)."""
    return ["batch", *(f"{name}_axis{i}" if n is None else n for i, n in enumerate(shape, start=1))]


def _initializer(graph: Any, name: str, array: np.ndarray, helper: Any) -> None:
    """Add ``array`` as an initializer of ``graph`` in place: what ``numpy_helper.from_array`` makes (raw
    little-endian bytes), without the two further copies of every weight that passing tensors to
    ``make_graph`` and the graph to ``make_model`` would take."""
    from netspec.init.precision import little_endian_bytes

    tensor = graph.initializer.add()
    tensor.name = name
    tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
    tensor.dims.extend(array.shape)
    tensor.raw_data = bytes(little_endian_bytes(array))


def _ids(net: Network, input_name: str) -> bool:
    return any(input_name in cl.sources and cl.layer.type == "embedding" for cl in net.layers)


def _trace(net: Network, params: dict[str, np.ndarray], build: bool) -> Graph:
    g = Graph(params, net.compute_dtype, build)
    values = {name: name for name in net.inputs}
    for cl in net.layers:
        fn = CONVERTERS.get(cl.layer.type)
        if fn is None:
            raise NetspecError(f"{cl.name}: layer type {cl.layer.type!r} has no ONNX export")
        values[cl.name] = fn(g, cl, [values[s] for s in cl.sources])
    g.values = values  # type: ignore[attr-defined]
    return g


def layouts(net: Network) -> dict[str, tuple[str, np.ndarray, int]]:
    """netspec tensor -> (initializer name, index array, offset): element i of the initializer holds
    element ``index[i] - offset`` of the tensor's flat array when ``0 <= index[i] - offset < size`` (every
    layout change is a permutation, found by exporting arrays of global element numbers)."""
    import numpy as np

    index, offsets, start = {}, {}, 0
    for name, p in net.parameters():
        index[name] = np.arange(start, start + p.size, dtype=np.int64).reshape(p.shape)
        offsets[name], start = start, start + p.size
    g = _trace(net, index, build=False)
    computed = [k for k, (_, a) in g.layout.items() if np.asarray(a).dtype != np.int64]
    if computed:  # arithmetic on the weights, not a layout: it cannot be undone
        raise NetspecError(f"the ONNX converters compute {', '.join(computed)} instead of moving its elements")
    return {k: (key, np.asarray(a), offsets[k]) for k, (key, a) in g.layout.items()}


def save(net: Network, params: dict[str, np.ndarray], path: str) -> None:
    """Write the model atomically; weights past :data:`EXTERNAL_DATA_BYTES` to ``<path>.data`` beside it
    (written to a temporary file, synced and renamed before the model that names it is)."""
    onnx = onnx_module()
    from netspec.io.weights import atomic_write

    model = build_model(net, params, check=False)
    if sum(a.nbytes for a in params.values()) >= EXTERNAL_DATA_BYTES:
        _write_external_data(onnx, model, path)
    with atomic_write(path) as fh:
        fh.write(model.SerializeToString())


def _write_external_data(onnx: Any, model: Any, path: str) -> None:
    """Move the initializers' bytes to ``<path>.data`` (the model keeps each one's offset and length).

    Written here rather than by ``convert_model_to_external_data``, which refuses when a file of that
    name exists relative to the working directory (a second export beside the first)."""
    from netspec.io.weights import atomic_write

    data = os.path.basename(path) + ".data"
    offset = 0
    with atomic_write(os.path.join(os.path.dirname(os.path.abspath(path)), data)) as fh:
        for tensor in model.graph.initializer:
            if len(tensor.raw_data) < 1024:  # small constants stay in the model, as onnx's own threshold
                continue
            raw = tensor.raw_data  # one read: each access may copy the bytes
            fh.write(raw)
            onnx.external_data_helper.set_external_data(tensor, data, offset, len(raw))
            tensor.ClearField("raw_data")
            offset += len(raw)
            del raw


def read_file(net: Network, path: str) -> dict[str, np.ndarray]:
    """netspec's arrays from an exported ``.onnx`` file's initializers (layouts undone by name).

    Raises:
        NetspecError: the file is unreadable, too large, or its initializers do not match the spec.
    """
    from netspec.io.files import open_regular

    onnx = onnx_module()
    limit = net.nbytes + (64 << 20) + (1 << 20) * len(net.layers)
    if os.path.getsize(path) > limit:
        raise NetspecError(f"{path}: {os.path.getsize(path):,} bytes is more than the spec's model can take")
    try:
        with open_regular(path) as fh:
            model = onnx.load(fh, load_external_data=False)
        _load_external_initializers(onnx, model, os.path.dirname(os.path.abspath(path)), limit, path)
    except NetspecError:
        raise
    except Exception as exc:  # protobuf and the external data reader raise several types for a corrupt file
        raise NetspecError(f"{path}: not a readable ONNX model: {type(exc).__name__}: {exc}") from None
    return read_model(net, model, path)


def read_model(net: Network, model: Any, where: str = "the model") -> dict[str, np.ndarray]:
    """netspec's arrays from the initializers of an ONNX ``ModelProto`` (external data loaded), byte for
    byte: each initializer's layout is undone by name (:func:`layouts`).

    Raises:
        NetspecError: listing every missing or mis-shaped initializer, and any whose elements that hold no
            netspec value (an LSTM's recurrent bias) are not zero.
    """
    import numpy as np
    from onnx import numpy_helper

    from netspec.init.precision import numpy_dtype

    found = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    shapes = {name: p.shape for name, p in net.parameters()}
    out, problems = {}, []
    for name, (key, index, offset) in layouts(net).items():
        if key not in found:
            problems.append(f"missing initializer {key}")
            continue
        array = found[key]
        if array.shape != index.shape or array.dtype != numpy_dtype(net.dtype):
            problems.append(f"{key} is {array.dtype}{list(array.shape)}, expected {net.dtype}{list(index.shape)}")
            continue
        local = index.ravel() - offset
        mine = (local >= 0) & (local < math.prod(shapes[name]))
        flat = np.empty(math.prod(shapes[name]), dtype=array.dtype)
        flat[local[mine]] = array.ravel()[mine]
        out[name] = flat.reshape(shapes[name])
        if np.any(array[index < 0]):  # elements no netspec tensor fills (LSTM's recurrent bias): zero, as exported
            problems.append(f"{key}: {int(np.count_nonzero(array[index < 0]))} elements netspec has no parameter "
                            "for are not zero")  # fmt: skip
    if problems:
        raise NetspecError(f"{where} does not match the spec: " + "; ".join(dict.fromkeys(problems)))
    return out


def _load_external_initializers(onnx: Any, model: Any, folder: str, limit: int, path: str) -> None:
    """Load the initializers' external data (onnx confines it to ``folder`` and to the file's size),
    first refusing more than ``limit`` bytes in all (a length left out counts as the rest of the file) and
    any data file that is not a regular file (onnx would open a FIFO and wait forever)."""
    from netspec.io.files import check_regular

    helper = onnx.external_data_helper
    external = [t for t in model.graph.initializer if helper.uses_external_data(t)]
    total = 0
    for tensor in external:
        info = helper.ExternalDataInfo(tensor)
        where = os.path.join(folder, info.location)
        check_regular(where)
        rest = os.path.getsize(where) - int(info.offset or 0) if os.path.isfile(where) else 0
        total += int(info.length) if info.length is not None else max(rest, 0)
    if total > limit:
        raise NetspecError(f"{path}: its external data ({total:,} bytes) is more than the spec's model can take")
    for tensor in external:
        helper.load_external_data_for_tensor(tensor, folder)


# ----------------------------------------------------------------------------- helpers


def _act(g: Graph, act: Any, x: str) -> str:
    name = act.name
    if name == "linear":
        return x
    simple = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "softplus": "Softplus", "softsign": "Softsign"}
    if name in simple:
        return g.node(simple[name], [x])
    if name == "leaky_relu":
        return g.node("LeakyRelu", [x], alpha=float(act.alpha))
    if name == "elu":
        return g.node("Elu", [x], alpha=float(act.alpha))
    if name == "selu":
        from netspec.nn.activations import SELU_ALPHA, SELU_SCALE

        return g.node("Selu", [x], alpha=float(SELU_ALPHA), gamma=float(SELU_SCALE))
    if name == "gelu":
        return g.node("Gelu", [x], approximate=act.approximate)
    if name == "relu6":
        return g.node("Clip", [x, g.const(0.0), g.const(6.0)])
    if name == "hard_sigmoid":  # ONNX's max(0, min(1, alpha x + beta)) = relu6(x + 3) / 6
        return g.node("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)
    if name == "hard_swish":  # x * HardSigmoid(x) with alpha 1/6, beta 0.5 (opset 14)
        return g.node("HardSwish", [x])
    if name == "silu":
        return g.node("Mul", [x, g.node("Sigmoid", [x])])
    if name == "softmax":
        return g.node("Softmax", [x], axis=-1)
    if name == "log_softmax":
        return g.node("LogSoftmax", [x], axis=-1)
    raise NetspecError(f"activation {name!r} has no ONNX export")


def _bias(g: Graph, cl: CompiledLayer, x: str, key: str = "bias") -> str:
    full = f"{cl.name}.{key}"
    return g.node("Add", [x, g.weight(full, g.params[full])]) if full in g.params else x


def _onnx_pads(cl: CompiledLayer) -> dict[str, Any]:
    """ONNX's padding attribute of a convolution or pool: ``pads``, every axis's begin, then every axis's
    end; or, for 'same' padding that depends on a size known only at run time (:func:`_open_same`),
    ``auto_pad: SAME_UPPER`` (the same numbers, the odd one after; onnxruntime takes it for pools, not for
    dilated convolutions, which pad in the graph, :func:`_same_pad`)."""
    if _open_same(cl):
        return {"auto_pad": "SAME_UPPER"}
    pads = cl.layer.pads(lend(cl.input_shape[:-1]))  # type: ignore[attr-defined]  # they depend on no open size
    return {"pads": [b for b, _ in pads] + [a for _, a in pads]}


def _open_same(cl: CompiledLayer) -> bool:
    """'same' padding with a stride, over an axis whose size is known only at run time."""
    _, stride, *_ = cl.layer.geometry()  # type: ignore[attr-defined]
    return pads_vary(cl.layer.options.get("padding", "valid"), cl.input_shape[:-1], stride)


def _same_pad(g: Graph, x: str, effective: Any, stride: Any) -> str:
    """TensorFlow's 'same' padding of a channels-first ``x``, from its sizes when the model runs:
    total = max((ceil(n / s) - 1) s + k' - n, 0), the odd one after."""
    rank = len(stride)
    n = g.node("Shape", [x], start=2, end=2 + rank)
    s, k = g.ints(list(stride)), g.ints(list(effective))
    out = g.node("Div", [g.node("Add", [n, g.ints([v - 1 for v in stride])]), s])  # ceil(n / s)
    total = g.node("Sub", [g.node("Add", [g.node("Mul", [g.node("Sub", [out, g.ints([1])]), s]), k]), n])
    total = g.node("Max", [total, g.ints([0])])
    before = g.node("Div", [total, g.ints([2])])
    pads = g.node("Concat", [g.ints([0, 0]), before, g.ints([0, 0]), g.node("Sub", [total, before])], axis=0)
    return g.node("Pad", [x, pads])


def _first(rank: int) -> list[int]:
    """Channels last -> channels first: (b, *s, c) -> (b, c, *s)."""
    return [0, rank + 1, *range(1, rank + 1)]


def _last(rank: int) -> list[int]:
    return [0, *range(2, rank + 2), 1]


# ----------------------------------------------------------------------------- converters


@converter("dense")
def _dense(g: Graph, cl: CompiledLayer, xs: list[str]) -> str:
    if "weights" in cl.tied:  # weight tying: the embedding's initializer itself, transposed in the graph
        kernel = g.node("Transpose", [g.values[cl.tied["weights"]]], perm=[1, 0])
    else:
        kernel = g.weight(f"{cl.name}.weights", g.params[f"{cl.name}.weights"])
    y = g.node("MatMul", [xs[0], kernel])
    return _act(g, cl.layer.activation, _bias(g, cl, y))


@converter("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d")
def _conv(g: Graph, cl: CompiledLayer, xs: list[str]) -> str:
    import numpy as np

    layer = cl.layer
    kernel, stride, dilation, _ = layer.geometry()  # type: ignore[attr-defined]
    rank, groups = layer.rank, layer.groups  # type: ignore[attr-defined]
    effective = layer.effective_kernel()  # type: ignore[attr-defined]
    w = g.params[f"{cl.name}.weights"]
    x = g.node("Transpose", [xs[0]], perm=_first(rank))
    transposed = layer.type.startswith("conv_transpose")
    if transposed:
        cin, filters = w.shape[-2] * groups, w.shape[-1]
        per = np.moveaxis(w.reshape(*w.shape[:-1], groups, filters // groups), rank + 1, 0)
        onnx_w = np.transpose(per, (0, rank + 1, rank + 2, *range(1, rank + 1)))
        onnx_w = onnx_w.reshape(cin, filters // groups, *kernel)
        extra = layer.output_padding()  # type: ignore[attr-defined]
        y = g.node("ConvTranspose", [x, g.weight(f"{cl.name}.weights", onnx_w)], strides=list(stride),
                   dilations=list(dilation), group=groups, output_padding=list(extra))  # fmt: skip
        crops = layer.crops(lend(cl.input_shape[:-1]))  # type: ignore[attr-defined]  # no crop depends on n
        if any(b or a for b, a in crops):  # cut (before, after) from the full output, or extend it by -after
            starts = [b for b, _ in crops]
            ends = [-a if a > 0 else 1 << 62 for _, a in crops]  # from the end: any length
            y = g.node("Slice", [y, g.ints(starts), g.ints(ends), g.ints(list(range(2, rank + 2)))])
            short = [max(-a, 0) for _, a in crops]
            if any(short):
                y = g.node("Pad", [y, g.ints([0] * (rank + 2) + [0, 0, *short])])
    else:
        onnx_w = np.transpose(w, (rank + 1, rank, *range(rank)))
        pads = _onnx_pads(cl)
        if _open_same(cl):  # onnxruntime refuses SAME_UPPER with dilation: pad in the graph
            x, pads = _same_pad(g, x, effective, stride), {"pads": [0] * (2 * rank)}
        y = g.node("Conv", [x, g.weight(f"{cl.name}.weights", onnx_w)], strides=list(stride),
                   dilations=list(dilation), group=groups, **pads)  # fmt: skip
    y = g.node("Transpose", [y], perm=_last(rank))
    return _act(g, layer.activation, _bias(g, cl, y))


@converter("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d")
def _pool(g: Graph, cl: CompiledLayer, xs: list[str]) -> str:
    layer = cl.layer
    window, stride, _ = layer.geometry()  # type: ignore[attr-defined]
    rank = layer.rank  # type: ignore[attr-defined]
    x = g.node("Transpose", [xs[0]], perm=_first(rank))
    attrs: dict[str, Any] = {"kernel_shape": list(window), "strides": list(stride), **_onnx_pads(cl)}
    if layer.reduce == "max":  # type: ignore[attr-defined]
        y = g.node("MaxPool", [x], **attrs)
    else:
        y = g.node("AveragePool", [x], count_include_pad=int(layer.count_include_pad), **attrs)  # type: ignore[attr-defined]
    return g.node("Transpose", [y], perm=_last(rank))


@converter("flatten")
def _flatten(g: Graph, cl: CompiledLayer, xs: list[str]) -> str:
    return g.node("Flatten", [xs[0]], axis=1)


@converter("dropout")
def _identity(g: Graph, cl: CompiledLayer, xs: list[str]) -> str:
    return g.node("Identity", [xs[0]])


@converter("activation")
def _activation(g: Graph, cl: CompiledLayer, xs: list[str]) -> str:
    return _act(g, cl.layer.activation, xs[0])


@converter("batch_norm")
def _batch_norm(g: Graph, cl: CompiledLayer, xs: list[str]) -> str:
    p = {k: g.weight(f"{cl.name}.{k}", g.params[f"{cl.name}.{k}"])
         for k in ("gamma", "beta", "moving_mean", "moving_variance")}  # fmt: skip
    eps = g.const(cl.layer.epsilon)  # type: ignore[attr-defined]
    scale = g.node("Div", [p["gamma"], g.node("Sqrt", [g.node("Add", [p["moving_variance"], eps])])])
    return g.node("Add", [g.node("Mul", [g.node("Sub", [xs[0], p["moving_mean"]]), scale]), p["beta"]])


@converter("layer_norm")
def _layer_norm(g: Graph, cl: CompiledLayer, xs: list[str]) -> str:
    gamma = g.weight(f"{cl.name}.gamma", g.params[f"{cl.name}.gamma"])
    beta = g.weight(f"{cl.name}.beta", g.params[f"{cl.name}.beta"])
    return g.node("LayerNormalization", [xs[0], gamma, beta], axis=-1, epsilon=float(cl.layer.epsilon))  # type: ignore[attr-defined]


@converter("rms_norm")
def _rms_norm(g: Graph, cl: CompiledLayer, xs: list[str]) -> str:
    """x / sqrt(mean(x^2) + epsilon) * gamma, in opset 21's operators (RMSNormalization is opset 23's)."""
    x = xs[0]
    mean_square = g.node("ReduceMean", [g.node("Mul", [x, x]), g.ints([-1])], keepdims=1)
    rms = g.node("Sqrt", [g.node("Add", [mean_square, g.const(cl.layer.epsilon)])])  # type: ignore[attr-defined]
    return g.node("Mul", [g.node("Div", [x, rms]), g.weight(f"{cl.name}.gamma", g.params[f"{cl.name}.gamma"])])


@converter("embedding")
def _embedding(g: Graph, cl: CompiledLayer, xs: list[str]) -> str:
    table = g.weight(f"{cl.name}.weights", g.params[f"{cl.name}.weights"])
    return g.node("Gather", [table, g.node("Cast", [xs[0]], to=7)], axis=0)  # 7: INT64


@converter("positional_embedding")
def _positional(g: Graph, cl: CompiledLayer, xs: list[str]) -> str:
    table = g.weight(f"{cl.name}.weights", g.params[f"{cl.name}.weights"])
    length = g.node("Shape", [xs[0]], start=1, end=2)  # the sequence's, known when the model runs
    rows = g.node("Slice", [table, g.ints([0]), length, g.ints([0])])
    return g.node("Add", [xs[0], rows])


@converter("add", "subtract", "multiply", "concat")
def _merge(g: Graph, cl: CompiledLayer, xs: list[str]) -> str:
    kind = cl.layer.type
    if kind == "concat":
        return g.node("Concat", xs, axis=1 + cl.layer.axis(len(cl.input_shape)))  # type: ignore[attr-defined]
    op = {"add": "Add", "subtract": "Sub", "multiply": "Mul"}[kind]
    y = xs[0]
    for x in xs[1:]:
        y = g.node(op, [y, x])
    return y


@converter("global_avg_pool", "global_max_pool")
def _global(g: Graph, cl: CompiledLayer, xs: list[str]) -> str:
    op = "ReduceMean" if cl.layer.type == "global_avg_pool" else "ReduceMax"
    return g.node(op, [xs[0], g.ints(list(range(1, len(cl.input_shape))))], keepdims=0)


@converter("zero_pad")
def _zero_pad(g: Graph, cl: CompiledLayer, xs: list[str]) -> str:
    pads = cl.layer.pads(cl.input_shape)  # type: ignore[attr-defined]
    begin = [0, *(a for a, _ in pads), 0]
    end = [0, *(b for _, b in pads), 0]
    return g.node("Pad", [xs[0], g.ints(begin + end)])


@converter("upsample")
def _upsample(g: Graph, cl: CompiledLayer, xs: list[str]) -> str:
    factors = cl.layer.factors(cl.input_shape)  # type: ignore[attr-defined]
    x, rank = xs[0], len(cl.input_shape)
    for axis, k in enumerate(factors, start=1):
        if k == 1:
            continue
        scale = [1] * (rank + 1)
        scale[axis] = k
        target = g.node("Mul", [g.node("Shape", [x]), g.ints(scale)])  # the input's sizes (any), one axis times k
        x = g.node("Unsqueeze", [x, g.ints([axis + 1])])
        x = g.node("Expand", [x, g.ints([1] * (axis + 1) + [k] + [1] * (rank - axis))])
        x = g.node("Reshape", [x, target], allowzero=1)  # a size 0 in target is 0 (an empty axis), not "copy"
    return x


@converter("reshape")
def _reshape(g: Graph, cl: CompiledLayer, xs: list[str]) -> str:
    return g.node("Reshape", [xs[0], g.ints([-1, *concrete(cl.output_shape)])])  # reshape's sizes are known


@converter("permute")
def _permute(g: Graph, cl: CompiledLayer, xs: list[str]) -> str:
    return g.node("Transpose", [xs[0]], perm=[0, *(int(a) for a in cl.layer.options["axes"])])


ONNX_GATES = {"lstm": [0, 3, 1, 2], "gru": [0, 1, 2], "simple_rnn": [0]}
"""netspec gate slice order -> ONNX's: LSTM i, f, c, o -> i, o, f, c; GRU z, r, h is ONNX's z, r, h."""


def _onnx_gates(a: np.ndarray, kind: str) -> np.ndarray:
    import numpy as np

    slices = np.split(a, len(ONNX_GATES[kind]), axis=-1)
    return np.concatenate([slices[i] for i in ONNX_GATES[kind]], axis=-1)


@converter("simple_rnn", "gru", "lstm")
def _recurrent(g: Graph, cl: CompiledLayer, xs: list[str]) -> str:
    import numpy as np

    layer, kind = cl.layer, cl.layer.type
    units, directions = layer.units, layer.directions  # type: ignore[attr-defined]
    prefixes = ["", "reverse."][:directions]
    p = g.params
    w = np.stack([_onnx_gates(p[f"{cl.name}.{q}weights"], kind).T for q in prefixes])
    r = np.stack([_onnx_gates(p[f"{cl.name}.{q}recurrent_weights"], kind).T for q in prefixes])
    inputs = [g.node("Transpose", [xs[0]], perm=[1, 0, 2])]  # (seq, batch, features)
    inputs += [g.weight([f"{cl.name}.{q}weights" for q in prefixes], w, f"{cl.name}.W"),
               g.weight([f"{cl.name}.{q}recurrent_weights" for q in prefixes], r, f"{cl.name}.R")]  # fmt: skip
    if f"{cl.name}.bias" in p:
        blank = np.full_like(p[f"{cl.name}.bias"], g.blank)  # ONNX's recurrent bias: netspec's GRU has one
        b = np.stack([np.concatenate([_onnx_gates(p[f"{cl.name}.{q}bias"], kind),
                                      _onnx_gates(p.get(f"{cl.name}.{q}recurrent_bias", blank), kind)])
                      for q in prefixes])  # fmt: skip
        held = [f"{cl.name}.{q}{b}" for q in prefixes for b in ("bias", "recurrent_bias") if f"{cl.name}.{q}{b}" in p]
        inputs.append(g.weight(held, b, f"{cl.name}.B"))
    attrs: dict[str, Any] = {"hidden_size": units, "direction": "bidirectional" if directions == 2 else "forward"}
    if kind == "gru":
        attrs["linear_before_reset"] = 1
    op = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "RNN"}[kind]
    y, y_h = g.node(op, inputs, outputs=3 if kind == "lstm" else 2, **attrs)[:2]
    if layer.options.get("return_sequences", False):
        y = g.node("Transpose", [y], perm=[2, 0, 1, 3])  # (seq, dir, batch, h) -> (batch, seq, dir, h)
        return g.node("Reshape", [y, g.ints([0, 0, directions * units])])  # any sequence length
    y_h = g.node("Transpose", [y_h], perm=[1, 0, 2])  # (dir, batch, h) -> (batch, dir, h)
    return g.node("Reshape", [y_h, g.ints([-1, directions * units])])


@converter("multi_head_attention")
def _attention(g: Graph, cl: CompiledLayer, xs: list[str]) -> str:
    """Any sequence lengths: head splits reshape with 0 (copy the batch and length axes), the causal mask
    and the rotary angles are computed from the inputs' shapes."""
    layer = cl.layer
    heads, qk, vd = layer.dims()  # type: ignore[attr-defined]
    kv_heads, rotary = layer.kv_heads, layer.rotary  # type: ignore[attr-defined]
    x, c = xs[0], xs[-1]

    def project(a: str, proj: str, n: int) -> str:  # (b, t, n * w) -> (b, t, n, w); w written: empty arrays too
        weights = g.params[f"{cl.name}.{proj}.weights"]
        y = g.node("MatMul", [a, g.weight(f"{cl.name}.{proj}.weights", weights)])
        return g.node("Reshape", [_bias(g, cl, y, f"{proj}.bias"), g.ints([0, 0, n, weights.shape[-1] // n])])

    q, k, v = project(x, "query", heads), project(c, "key", kv_heads), project(c, "value", kv_heads)
    if rotary is not None:
        q, k = (_rotate(g, rotary, t, layer.options["key_dim"]) for t in (q, k))
    if kv_heads != heads:  # query head h uses key/value head h // group: repeat each kv head group times
        group = heads // kv_heads
        k, v = (g.node("Reshape", [g.node("Expand", [g.node("Unsqueeze", [t, g.ints([3])]),
                                                      g.ints([1, 1, 1, group, 1])]), g.ints([0, 0, heads, width])])
                for t, width in ((k, qk // heads), (v, vd // heads)))  # fmt: skip
    q, k, v = (g.node("Transpose", [t], perm=[0, 2, 1, 3]) for t in (q, k, v))  # (b, heads, t, w)
    scores = g.node("MatMul", [q, g.node("Transpose", [k], perm=[0, 1, 3, 2])])
    scores = g.node("Div", [scores, g.const(math.sqrt(qk // heads))])
    if layer.options.get("causal", False):
        rows = g.node("Unsqueeze", [_positions(g, x), g.ints([1])])
        allowed = g.node("GreaterOrEqual", [rows, _positions(g, c)])  # (tq, tk): key j <= query i
        scores = g.node("Where", [allowed, scores, g.const(-math.inf)])
    attn = g.node("Softmax", [scores], axis=-1)
    o = g.node("Transpose", [g.node("MatMul", [attn, v])], perm=[0, 2, 1, 3])
    o = g.node("Reshape", [o, g.ints([0, 0, vd])])
    y = g.node("MatMul", [o, g.weight(f"{cl.name}.output.weights", g.params[f"{cl.name}.output.weights"])])
    return _bias(g, cl, y, "output.bias")


def _positions(g: Graph, x: str, axis: int = 1) -> str:
    """0, 1, ..., n - 1 (int64) for the size n of ``x``'s ``axis``, known only when the graph runs."""
    n = g.node("Squeeze", [g.node("Shape", [x], start=axis, end=axis + 1), g.ints([0])])
    return g.node("Range", [g.const(0, "start", "int64"), n, g.const(1, "step", "int64")])


def _rotate(g: Graph, rotary: Any, t: str, key_dim: int) -> str:
    """Rotary embedding of ``(batch, positions, heads, features)``: the angles in float64 (as netspec's),
    their cosines and sines cast to the dtype."""
    import numpy as np

    half, dims = rotary.dims // 2, rotary.dims
    frequencies = 1.0 / rotary.theta ** (np.arange(0, dims, 2, dtype=np.float64) / dims)
    positions = g.node("Cast", [g.node("Unsqueeze", [_positions(g, t), g.ints([1, 2])])], to=11)  # 11: DOUBLE
    angles = g.node("Mul", [positions, g.const(frequencies, "frequencies", "float64")])  # (t, 1, dims / 2)
    to = 1 if g.dtype == "float32" else 11  # FLOAT or DOUBLE
    cos, sin = (g.node("Cast", [g.node(op, [angles])], to=to) for op in ("Cos", "Sin"))

    def part(start: int, end: int, step: int = 1) -> str:
        return g.node("Slice", [t, g.ints([start]), g.ints([end]), g.ints([-1]), g.ints([step])])

    def turn(a: str, b: str) -> tuple[str, str]:  # (a cos - b sin, b cos + a sin)
        return (g.node("Sub", [g.node("Mul", [a, cos]), g.node("Mul", [b, sin])]),
                g.node("Add", [g.node("Mul", [b, cos]), g.node("Mul", [a, sin])]))  # fmt: skip

    if rotary.layout == "half_split":
        rotated = g.node("Concat", list(turn(part(0, half), part(half, dims))), axis=-1)
    else:
        pairs = [g.node("Unsqueeze", [r, g.ints([-1])]) for r in turn(part(0, dims, 2), part(1, dims, 2))]
        rotated = g.node("Reshape", [g.node("Concat", pairs, axis=-1), g.ints([0, 0, 0, dims])])
    return rotated if dims == key_dim else g.node("Concat", [rotated, part(dims, key_dim)], axis=-1)
