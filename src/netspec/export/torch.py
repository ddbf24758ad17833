"""PyTorch export: an ``nn.Module`` whose ``forward`` follows the compiled graph, with netspec's weights
in torch's layouts under predictable names (the ``torch`` extra, imported lazily).

Names: a layer's parameters sit under its name, dotted names nesting as modules
(``layer1_0.conv1.weight``), so the ``state_dict`` reads like a hand-written model's. Each layer type
has one converter in :data:`CONVERTERS`: ``converter(compiled_layer, params) -> (module, tensors)``
where ``module`` takes the layer's inputs (channels-last tensors, as netspec's) and ``tensors`` maps
each netspec parameter name to ``(torch parameter name, array in torch layout)``. Adding a layer type
means adding one converter; ``tests/test_export_torch.py`` walks the layer registry.

Layouts (netspec -> torch): dense ``(in, out)`` -> ``weight (out, in)``; conv ``(*k, in/g, out)`` ->
``(out, in/g, *k)``; transposed conv ``(*k, in/g, out)`` -> ``(in, out/g, *k)``; recurrent kernels
transposed with GRU gates reordered ``z, r, h`` -> ``r, z, n`` (``bias_hh`` = ``recurrent_bias``,
zeros for LSTM and RNN); batch norm -> ``BatchNorm1d`` (``weight``, ``bias``, ``running_mean``,
``running_var``); attention -> ``query``/``key``/``value``/``output`` ``Linear`` modules.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from netspec.errors import NetspecError
from netspec.extras import install_hint
from netspec.nn.layers import lend, pads_vary
from netspec.registry import registrar

if TYPE_CHECKING:
    import numpy as np

    from netspec.nn.network import CompiledLayer, Network

Tensors = dict[str, tuple[str, "np.ndarray"]]
Converter = Callable[["CompiledLayer", dict[str, "np.ndarray"]], tuple[Any, Tensors]]
CONVERTERS: dict[str, Converter] = {}


def torch_module() -> Any:
    """The torch package, or a clear error (exit 1) when the extra is missing."""
    try:
        import torch
    except ImportError:
        raise NetspecError(f"PyTorch export needs torch: {install_hint('torch')}") from None
    return torch


converter = registrar(CONVERTERS)


def to_tensor(array: np.ndarray) -> Any:
    """A torch tensor over ``array``'s memory (no copy); a bfloat16 array (``ml_dtypes``, which torch does
    not read) through its 16-bit patterns."""
    import numpy as np

    torch = torch_module()
    if array.dtype.name == "bfloat16":
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(array)


def to_array(tensor: Any) -> np.ndarray:
    """A CPU tensor's NumPy array over its memory (no copy); bfloat16 as ``ml_dtypes.bfloat16``."""
    torch = torch_module()
    if tensor.dtype == torch.bfloat16:
        from netspec.init.precision import numpy_dtype

        return tensor.view(torch.int16).numpy().view(numpy_dtype("bfloat16"))  # type: ignore[no-any-return]
    return tensor.numpy()  # type: ignore[no-any-return]


def to_module(spec_or_network: Any, params: dict[str, np.ndarray] | None = None) -> Any:
    """The network as a ``torch.nn.Module`` in evaluation mode, holding ``params`` (default: initialized
    from the spec's seed). ``spec_or_network`` is a :class:`Network` or a spec file path.

    The module follows ``self.training``: after ``module.train()`` batch norm normalizes with the batch's
    statistics and updates its running ones with the layer's ``momentum`` (PyTorch's convention), and
    dropout drops with torch's generator; ``module.eval()`` computes netspec's forward pass.

    The module's ``forward`` takes the network input as one tensor (or keyword arguments by input name)
    of shape ``(batch, *input)``, channels last as in the spec, and returns the output (a dict by name
    for several outputs). ``module.netspec_parameters()`` maps netspec names to the torch parameters.

    Raises:
        NetspecError: torch is missing, or a layer or activation has no torch equivalent.
    """
    torch = torch_module()
    from netspec.nn.network import Network

    net = spec_or_network if isinstance(spec_or_network, Network) else _load(spec_or_network)
    params = net.initialize() if params is None else params
    module = _build(torch, net, params)
    return module.eval()


def _load(path: Any) -> Network:
    from netspec.spec.compiler import compile_file

    return compile_file(str(path))


def state_dict(net: Network, params: dict[str, np.ndarray]) -> dict[str, Any]:
    """The torch ``state_dict`` of :func:`to_module` (tensors sharing nothing with ``params``)."""
    return {k: v.detach().clone() for k, v in to_module(net, params).state_dict().items()}


def _layers(torch: Any, net: Network, params: dict[str, np.ndarray]) -> Any:
    """Per layer: ``(compiled layer, module on the meta device, state, mapping)``, where ``state`` is the
    module's whole state_dict as tensors over the converters' arrays (no copy where the layout is
    netspec's; PyTorch's own extra tensors, e.g. an LSTM's ``bias_hh``, zero) and ``mapping`` maps
    netspec names to state_dict keys."""
    for cl in net.layers:
        fn = CONVERTERS.get(cl.layer.type)
        if fn is None:
            raise NetspecError(f"{cl.name}: layer type {cl.layer.type!r} has no PyTorch export")
        from netspec.nn.network import layer_tensors

        with torch.device("meta"):  # no memory and no torch initialization: the tensors come from netspec
            module, tensors = fn(cl, layer_tensors(cl, params))
        expected = module.state_dict()
        state, mapping = {}, {}
        for local, (torch_name, array) in tensors.items():
            if torch_name not in expected or tuple(expected[torch_name].shape) != array.shape:
                raise NetspecError(f"{cl.name}.{local}: converter gave {torch_name} {array.shape}")
            # torch's transposing copy is faster than NumPy's; torch will not wrap a read-only array quietly
            state[torch_name] = to_tensor(array if array.flags.writeable else array.copy()).contiguous()
            if local not in cl.tied:  # a tied tensor is the owner's: shared once the modules exist (_build)
                mapping[f"{cl.name}.{local}"] = f"{cl.name}.{torch_name}"
        dtype = getattr(torch, net.dtype)
        for k, v in expected.items():  # PyTorch's own extras (an LSTM's bias_hh) are zero
            if k not in state:
                state[k] = torch.zeros(v.shape, dtype=dtype if v.is_floating_point() else v.dtype)
        yield cl, module, {k: state[k] for k in expected}, mapping


def _build(torch: Any, net: Network, params: dict[str, np.ndarray]) -> Any:
    import numpy as np

    root = torch.nn.Module()
    mapping: dict[str, str] = {}
    runners: list[tuple[str, list[str], Any]] = []
    sources = list(params.values())
    for cl, module, state, names in _layers(torch, net, params):
        for k, t in state.items():  # the module's tensors are its own: training it leaves ``params`` alone
            if any(np.may_share_memory(to_array(t), a) for a in sources):
                state[k] = t.clone()
        module.load_state_dict(state, strict=True, assign=True)  # the meta tensors become these
        if any(t.is_meta for t in [*module.parameters(), *module.buffers()]):
            raise NetspecError(f"{cl.name}: the {cl.layer.type} converter left tensors outside its state_dict")
        _attach(root, cl.name, module)
        mapping |= names
        runners.append((cl.name, list(cl.sources), module))
    for key, owner in _ties(net, mapping).items():  # weight tying: the tied module holds the owner's Parameter
        parent, _, leaf = key.rpartition(".")
        setattr(root.get_submodule(parent), leaf, root.get_parameter(owner))
    return _Network(torch, root, runners, dict(net.inputs), list(net.outputs), mapping)


def _state(torch: Any, net: Network, params: dict[str, np.ndarray], tied: bool = True) -> dict[str, Any]:
    """The whole state_dict of :func:`to_module` without building it: tensors over netspec's arrays
    where the layout is the same (for writing files, not for handing out). A tied key is the owner's
    tensor object (``torch.save`` stores it once), or left out with ``tied=False`` (as Hugging Face's
    safetensors files leave out ``lm_head.weight``)."""
    out: dict[str, Any] = {}
    names: dict[str, str] = {}
    for cl, _, state, mapping in _layers(torch, net, params):
        out |= {f"{cl.name}.{k}": v for k, v in state.items()}
        names |= mapping
    for key, owner in _ties(net, names).items():
        if tied:
            out[key] = out[owner]
        else:
            del out[key]
    return out


def _ties(net: Network, names: dict[str, str]) -> dict[str, str]:
    """Tied state_dict keys -> the key of the tensor they are (``lm_head.weight`` -> ``tokens.weight``:
    torch's ``Linear`` weight ``(out, in)`` is the embedding's table as it is stored), from ``names``
    (netspec parameter -> state_dict key); the tied layers' converters run on the meta device."""
    import numpy as np

    torch = torch_module()
    shapes = dict(net.parameters())
    out: dict[str, str] = {}
    for cl in net.layers:
        if not cl.tied:
            continue
        blank = {p.name: np.broadcast_to(np.int64(0), p.shape) for p in cl.params}
        blank |= {local: np.broadcast_to(np.int64(0), shapes[owner].shape[::-1]) for local, owner in cl.tied.items()}
        with torch.device("meta"):
            _, tensors = CONVERTERS[cl.layer.type](cl, blank)
        out |= {f"{cl.name}.{tensors[local][0]}": names[owner] for local, owner in cl.tied.items()}
    return out


def _attach(root: Any, dotted: str, module: Any) -> None:
    """Register ``module`` under a dotted name, creating the parent modules (``a.b`` -> root.a.b)."""
    torch = torch_module()
    parent = root
    *parents, last = dotted.split(".")
    for part in parents:
        if part not in parent._modules:
            parent.add_module(part, torch.nn.Module())
        parent = parent._modules[part]
    try:
        parent.add_module(last, module)
    except (KeyError, AttributeError, TypeError) as exc:
        raise NetspecError(f"layer name {dotted!r} cannot be a torch module name: {exc}") from None


def input_problem(name: str, shape: tuple[int, ...], expected: tuple[Any, ...]) -> str | None:
    """Why a tensor of ``shape`` (batch axis first) cannot be the input ``name`` of per-sample shape
    ``expected`` (``None`` axes take any length), saying how to permute a channels-first tensor; None if it can."""
    fits = len(shape) == len(expected) + 1 and all(e is None or e == n for n, e in zip(shape[1:], expected,
                                                                                          strict=True))  # fmt: skip
    if fits:
        return None
    want = "(batch, " + ", ".join("any" if e is None else str(e) for e in expected) + ")"
    message = f"input {name!r} has shape {tuple(shape)}; the module takes {want}, channels last as in the spec"
    rank = len(expected)
    if rank >= 2 and len(shape) == rank + 1:
        first = (shape[0], *shape[2:], shape[1])  # what a channels-first tensor is once its channels move last
        if all(e is None or e == n for n, e in zip(first[1:], expected, strict=True)):
            order = ", ".join(map(str, [0, *range(2, rank + 1), 1]))
            message += f": it looks channels first; pass x.permute({order}) (or x.movedim(1, -1))"
    return message


def _Network(torch: Any, root: Any, runners: list[Any], inputs: dict[str, tuple[int | None, ...]], outputs: list[str],
             mapping: dict[str, str]) -> Any:  # fmt: skip
    class NetspecModule(torch.nn.Module):  # type: ignore[name-defined]
        """The compiled network: children are the layers (see :func:`to_module`)."""

        def __init__(self) -> None:
            super().__init__()
            self._runners = runners
            self._inputs, self._outputs, self._mapping = inputs, outputs, mapping
            for name, child in root.named_children():
                if hasattr(self, name):  # forward, training, netspec_parameters, _mapping, ...
                    raise NetspecError(f"layer name {name!r} is taken by the torch module itself; rename the "
                                       "layer to export it to PyTorch")  # fmt: skip
                self.add_module(name, child)

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            if args:
                kwargs = {**dict(zip(self._inputs, args, strict=False)), **kwargs}
            if set(kwargs) != set(self._inputs):
                raise ValueError(f"the network takes inputs {', '.join(self._inputs)}")
            for name, x in kwargs.items():  # a clear message, not a conv's bare shape error
                problem = input_problem(name, tuple(x.shape), self._inputs[name])
                if problem:
                    raise ValueError(problem)
            values = dict(kwargs)
            for name, sources, module in self._runners:
                values[name] = module(*[values[s] for s in sources])
            out = {name: values[name] for name in self._outputs}
            return out[self._outputs[0]] if len(out) == 1 else out

        def netspec_parameters(self) -> dict[str, Any]:
            """netspec parameter name -> the torch tensor holding it (parameters and buffers)."""
            tensors = dict(self.named_parameters()) | dict(self.named_buffers())
            return {ours: tensors[theirs] for ours, theirs in self._mapping.items()}

        def netspec_names(self) -> dict[str, str]:
            """netspec parameter name -> torch state_dict key."""
            return dict(self._mapping)

    return NetspecModule()


# ----------------------------------------------------------------------------- activations


def activation_fn(act: Any) -> Callable[[Any], Any]:
    """The torch function of a netspec activation (NetspecError for one torch does not have)."""
    torch = torch_module()
    f = torch.nn.functional
    name = act.name
    table: dict[str, Callable[[Any], Any]] = {
        "linear": lambda x: x, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": f.relu,
        "selu": f.selu, "silu": f.silu, "softplus": f.softplus, "softsign": f.softsign, "relu6": f.relu6,
        "hard_sigmoid": f.hardsigmoid, "hard_swish": f.hardswish,
        "softmax": lambda x: f.softmax(x, dim=-1), "log_softmax": lambda x: f.log_softmax(x, dim=-1),
    }  # fmt: skip
    if name == "leaky_relu":
        return lambda x: f.leaky_relu(x, act.alpha)
    if name == "elu":
        return lambda x: f.elu(x, act.alpha)
    if name == "gelu":
        return lambda x: f.gelu(x, approximate=act.approximate)
    if name not in table:
        raise NetspecError(f"activation {name!r} has no PyTorch export")
    return table[name]


def _lambda(fn: Callable[..., Any]) -> Any:
    torch = torch_module()

    class Function(torch.nn.Module):  # type: ignore[name-defined]
        def forward(self, *xs: Any) -> Any:
            return fn(*xs)

    return Function()


def _then(module: Any, act: Any) -> Any:
    """``module`` followed by an activation, as the same module (its tensors keep their names)."""
    fn = activation_fn(act)
    base = type(module).forward
    module.forward = types.MethodType(lambda self, *xs: fn(base(self, *xs)), module)
    return module


def _torch_pads(pads: list[tuple[int, int]]) -> list[int]:
    """(before, after) per spatial axis -> ``F.pad``'s flat list, last axis first."""
    return [v for before, after in reversed(pads) for v in (before, after)]


def _channels_first(x: Any) -> Any:
    return x.movedim(-1, 1)


def _channels_last(x: Any) -> Any:
    return x.movedim(1, -1)


# ----------------------------------------------------------------------------- converters


@converter("dense")
def _dense(cl: CompiledLayer, p: dict[str, np.ndarray]) -> tuple[Any, Tensors]:
    torch = torch_module()
    w = p["weights"]
    linear = torch.nn.Linear(w.shape[0], w.shape[1], bias="bias" in p)
    tensors: Tensors = {"weights": ("weight", w.T)}
    if "bias" in p:
        tensors["bias"] = ("bias", p["bias"])
    return _then(linear, cl.layer.activation), tensors


@converter("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d")
def _conv(cl: CompiledLayer, p: dict[str, np.ndarray]) -> tuple[Any, Tensors]:
    import numpy as np

    torch = torch_module()
    layer = cl.layer
    kernel, stride, dilation, _ = layer.geometry()  # type: ignore[attr-defined]
    groups, rank = layer.groups, layer.rank  # type: ignore[attr-defined]
    w = p["weights"]
    cin, filters = w.shape[-2] * groups, w.shape[-1]
    transposed = layer.type.startswith("conv_transpose")
    in_shape = cl.input_shape[:-1]
    # (before, after) padded (a cropped for transposed convolutions); equal on both sides: PyTorch's own padding;
    # 'same' with a stride over a size known only at run time: worked out for each input (``vary``)
    vary = pads_vary(layer.options.get("padding", "valid"), in_shape, stride)
    pads = layer.crops(lend(in_shape)) if transposed else layer.pads(lend(in_shape))  # type: ignore[attr-defined]
    symmetric = not vary and all(b == a >= 0 for b, a in pads)
    padding = tuple(b for b, _ in pads) if symmetric else 0
    if transposed:
        cls = getattr(torch.nn, f"ConvTranspose{rank}d")
        conv = cls(cin, filters, kernel, stride=stride, dilation=dilation, groups=groups, bias="bias" in p,
                   padding=padding, output_padding=layer.output_padding())  # type: ignore[attr-defined]  # fmt: skip
        per = w.reshape(*w.shape[:-1], groups, filters // groups)  # (*k, in/g, g, out/g)
        per = np.moveaxis(per, rank + 1, 0)  # (g, *k, in/g, out/g)
        torch_w = np.transpose(per, (0, rank + 1, rank + 2, *range(1, rank + 1))).reshape(cin, filters // groups,
                                                                                          *kernel)  # fmt: skip
    else:
        cls = getattr(torch.nn, f"Conv{rank}d")
        conv = cls(cin, filters, kernel, stride=stride, dilation=dilation, groups=groups, bias="bias" in p,
                   padding=padding)  # fmt: skip
        torch_w = np.transpose(w, (rank + 1, rank, *range(rank)))
    tensors: Tensors = {"weights": ("weight", np.ascontiguousarray(torch_w))}
    if "bias" in p:
        tensors["bias"] = ("bias", p["bias"])
    f = torch.nn.functional
    act = activation_fn(layer.activation)

    base = type(conv).forward

    def forward(self: Any, x: Any) -> Any:  # channels last in and out, padding PyTorch cannot say, the activation
        out_shape = layer.output_shape(tuple(x.shape[1:]))[:-1]  # this input's (the spec may leave sizes open)
        here = layer.pads(tuple(x.shape[1:-1])) if vary else pads  # type: ignore[attr-defined]
        x = _channels_first(x)
        if not symmetric and not transposed:
            x = f.pad(x, _torch_pads(here))
        y = base(self, x)
        if not symmetric and transposed:  # crop the full output (TensorFlow's 'same', or [before, after])
            y = y[(slice(None), slice(None), *(slice(b, b + o) for (b, _), o in zip(pads, out_shape, strict=True)))]
            short = [o - size for o, size in zip(out_shape, y.shape[2:], strict=True)]
            if any(short):
                y = f.pad(y, [v for m in reversed(short) for v in (0, m)])
        return act(_channels_last(y))

    conv.forward = types.MethodType(forward, conv)
    return conv, tensors


@converter("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d")
def _pool(cl: CompiledLayer, p: dict[str, np.ndarray]) -> tuple[Any, Tensors]:
    torch = torch_module()
    f = torch.nn.functional
    layer = cl.layer
    window, stride, _ = layer.geometry()  # type: ignore[attr-defined]
    rank, is_max = layer.rank, layer.reduce == "max"  # type: ignore[attr-defined]
    pool = getattr(f, f"{'max' if is_max else 'avg'}_pool{rank}d")
    vary = pads_vary(layer.options.get("padding", "valid"), cl.input_shape[:-1], stride)
    fixed = _torch_pads(layer.pads(lend(cl.input_shape[:-1])))  # type: ignore[attr-defined]
    include = layer.count_include_pad  # type: ignore[attr-defined]

    def forward(x: Any) -> Any:  # padded by hand: PyTorch's pools take at most half a window, on both sides
        pads = _torch_pads(layer.pads(tuple(x.shape[1:-1]))) if vary else fixed  # type: ignore[attr-defined]
        x = _channels_first(x)
        if not any(pads):
            return _channels_last(pool(x, window, stride))
        if is_max:
            return _channels_last(pool(f.pad(x, pads, value=-math.inf), window, stride))
        total = pool(f.pad(x, pads), window, stride)
        if include:  # divided by the whole window, as PyTorch's count_include_pad=True
            return _channels_last(total)
        count = pool(f.pad(torch.ones_like(x[:1, :1]), pads), window, stride)
        return _channels_last(total / count)  # the mean over the window's real values, as netspec's

    return _lambda(forward), {}


@converter("flatten")
def _flatten(cl: CompiledLayer, p: dict[str, np.ndarray]) -> tuple[Any, Tensors]:
    return _lambda(lambda x: x.flatten(1)), {}  # no -1: an empty batch flattens too


@converter("dropout")
def _dropout(cl: CompiledLayer, p: dict[str, np.ndarray]) -> tuple[Any, Tensors]:
    """``torch.nn.Dropout``: the identity in ``eval()``; in ``train()`` zeroes each value with probability
    ``rate`` (torch's generator) and scales the rest by ``1 / (1 - rate)``."""
    torch = torch_module()
    return torch.nn.Dropout(float(cl.layer.options["rate"])), {}


@converter("activation")
def _activation(cl: CompiledLayer, p: dict[str, np.ndarray]) -> tuple[Any, Tensors]:
    return _lambda(activation_fn(cl.layer.activation)), {}


@converter("batch_norm")
def _batch_norm(cl: CompiledLayer, p: dict[str, np.ndarray]) -> tuple[Any, Tensors]:
    """Channels-last batch norm: ``eval()`` uses the running statistics; ``train()`` normalizes with the
    batch's statistics over every axis but the last and updates the running ones with ``momentum``
    (``torch.nn.functional.batch_norm``, as ``nn.BatchNorm2d`` on the channels-first tensor)."""
    torch = torch_module()
    n = p["gamma"].shape[0]
    layer = cl.layer
    bn = torch.nn.BatchNorm1d(n, eps=layer.epsilon, momentum=layer.momentum)  # type: ignore[attr-defined]

    class ChannelsLastBatchNorm(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.weight, self.bias = bn.weight, bn.bias
            self.register_buffer("running_mean", bn.running_mean)
            self.register_buffer("running_var", bn.running_var)
            self.eps, self.momentum = bn.eps, bn.momentum

        def forward(self, x: Any) -> Any:
            return torch.nn.functional.batch_norm(x.reshape(-1, n), self.running_mean, self.running_var,
                                                  self.weight, self.bias, self.training, self.momentum,
                                                  self.eps).reshape(x.shape)  # fmt: skip

        def extra_repr(self) -> str:
            return f"{n}, eps={self.eps}, momentum={self.momentum}, channels last"

    return ChannelsLastBatchNorm(), {"gamma": ("weight", p["gamma"]), "beta": ("bias", p["beta"]),
                                     "moving_mean": ("running_mean", p["moving_mean"]),
                                     "moving_variance": ("running_var", p["moving_variance"])}  # fmt: skip


@converter("layer_norm")
def _layer_norm(cl: CompiledLayer, p: dict[str, np.ndarray]) -> tuple[Any, Tensors]:
    torch = torch_module()
    norm = torch.nn.LayerNorm(p["gamma"].shape[0], eps=cl.layer.epsilon)  # type: ignore[attr-defined]
    return norm, {"gamma": ("weight", p["gamma"]), "beta": ("bias", p["beta"])}


@converter("rms_norm")
def _rms_norm(cl: CompiledLayer, p: dict[str, np.ndarray]) -> tuple[Any, Tensors]:
    torch = torch_module()
    norm = torch.nn.RMSNorm(p["gamma"].shape[0], eps=cl.layer.epsilon)  # type: ignore[attr-defined]
    return norm, {"gamma": ("weight", p["gamma"])}


@converter("embedding")
def _embedding(cl: CompiledLayer, p: dict[str, np.ndarray]) -> tuple[Any, Tensors]:
    torch = torch_module()
    table = p["weights"]
    emb = torch.nn.Embedding(*table.shape)
    pad = cl.layer.options.get("padding_idx")  # its row gets no gradient, as nn.Embedding(padding_idx)'s

    class TokenEmbedding(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.weight = emb.weight

        def forward(self, ids: Any) -> Any:
            return torch.nn.functional.embedding(ids.long(), self.weight, padding_idx=pad)

    return TokenEmbedding(), {"weights": ("weight", table)}


@converter("positional_embedding")
def _positional(cl: CompiledLayer, p: dict[str, np.ndarray]) -> tuple[Any, Tensors]:
    torch = torch_module()
    table = p["weights"]

    class PositionalEmbedding(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(table.shape))

        def forward(self, x: Any) -> Any:
            return x + self.weight[: x.shape[1]]

    return PositionalEmbedding(), {"weights": ("weight", table)}


@converter("add", "subtract", "multiply", "concat")
def _merge(cl: CompiledLayer, p: dict[str, np.ndarray]) -> tuple[Any, Tensors]:
    torch = torch_module()
    kind = cl.layer.type

    def forward(*xs: Any) -> Any:
        if kind == "concat":
            return torch.cat(xs, dim=1 + cl.layer.axis(xs[0].dim() - 1))  # type: ignore[attr-defined]
        y = xs[0]
        for x in xs[1:]:
            y = y + x if kind == "add" else y - x if kind == "subtract" else y * x
        return y

    return _lambda(forward), {}


@converter("global_avg_pool", "global_max_pool")
def _global_pool(cl: CompiledLayer, p: dict[str, np.ndarray]) -> tuple[Any, Tensors]:
    mean = cl.layer.type == "global_avg_pool"

    def forward(x: Any) -> Any:
        axes = tuple(range(1, x.dim() - 1))
        return x.mean(dim=axes) if mean else x.amax(dim=axes)

    return _lambda(forward), {}


@converter("zero_pad")
def _zero_pad(cl: CompiledLayer, p: dict[str, np.ndarray]) -> tuple[Any, Tensors]:
    torch = torch_module()
    pads = cl.layer.pads(cl.input_shape)  # type: ignore[attr-defined]
    flat = [0, 0] + [v for before, after in reversed(pads) for v in (before, after)]
    return _lambda(lambda x: torch.nn.functional.pad(x, flat)), {}


@converter("upsample")
def _upsample(cl: CompiledLayer, p: dict[str, np.ndarray]) -> tuple[Any, Tensors]:
    factors = cl.layer.factors(cl.input_shape)  # type: ignore[attr-defined]

    def forward(x: Any) -> Any:
        for axis, k in enumerate(factors, start=1):
            x = x.repeat_interleave(k, dim=axis)
        return x

    return _lambda(forward), {}


@converter("reshape")
def _reshape(cl: CompiledLayer, p: dict[str, np.ndarray]) -> tuple[Any, Tensors]:
    shape = cl.output_shape
    return _lambda(lambda x: x.reshape(x.shape[0], *shape)), {}


@converter("permute")
def _permute(cl: CompiledLayer, p: dict[str, np.ndarray]) -> tuple[Any, Tensors]:
    axes = [int(a) for a in cl.layer.options["axes"]]
    return _lambda(lambda x: x.permute(0, *axes)), {}


TORCH_GATES = {"lstm": [0, 1, 2, 3], "gru": [1, 0, 2], "simple_rnn": [0]}
"""netspec gate slice order -> PyTorch's (GRU z, r, h -> r, z, n)."""


def gate_order(a: np.ndarray, kind: str) -> np.ndarray:
    """Reorder the gate slices of the last axis into PyTorch's order."""
    import numpy as np

    slices = np.split(a, len(TORCH_GATES[kind]), axis=-1)
    return np.concatenate([slices[i] for i in TORCH_GATES[kind]], axis=-1)


@converter("simple_rnn", "gru", "lstm")
def _recurrent(cl: CompiledLayer, p: dict[str, np.ndarray]) -> tuple[Any, Tensors]:
    import numpy as np

    torch = torch_module()
    layer, kind = cl.layer, cl.layer.type
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "simple_rnn": torch.nn.RNN}[kind]
    bidirectional = layer.directions == 2  # type: ignore[attr-defined]
    use_bias = "bias" in p
    rnn = cls(cl.input_shape[-1], layer.units, batch_first=True, bidirectional=bidirectional,  # type: ignore[attr-defined]
              bias=use_bias)  # fmt: skip
    tensors: Tensors = {}
    for prefix, suffix in [("", ""), ("reverse.", "_reverse")][: 2 if bidirectional else 1]:
        tensors[f"{prefix}weights"] = (f"weight_ih_l0{suffix}", gate_order(p[f"{prefix}weights"], kind).T.copy())
        recurrent = gate_order(p[f"{prefix}recurrent_weights"], kind).T.copy()
        tensors[f"{prefix}recurrent_weights"] = (f"weight_hh_l0{suffix}", recurrent)
        if use_bias:
            tensors[f"{prefix}bias"] = (f"bias_ih_l0{suffix}", gate_order(p[f"{prefix}bias"], kind))
            if f"{prefix}recurrent_bias" in p:
                tensors[f"{prefix}recurrent_bias"] = (f"bias_hh_l0{suffix}",
                                                      gate_order(p[f"{prefix}recurrent_bias"], kind))  # fmt: skip
    sequences = bool(layer.options.get("return_sequences", False))

    class Recurrent(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.rnn = rnn

        def forward(self, x: Any) -> Any:
            seq, h = self.rnn(x)
            if sequences:
                return seq
            h = h[0] if kind == "lstm" else h
            return torch.cat(list(h), dim=-1)

    module = Recurrent()
    if use_bias and kind != "gru":  # PyTorch adds bias_hh; netspec has one bias: keep torch's at zero
        for suffix in ("", "_reverse")[: 2 if bidirectional else 1]:
            getattr(rnn, f"bias_hh_l0{suffix}").data.zero_()
    return module, {k: (f"rnn.{name}", np.ascontiguousarray(a)) for k, (name, a) in tensors.items()}


@converter("multi_head_attention")
def _attention(cl: CompiledLayer, p: dict[str, np.ndarray]) -> tuple[Any, Tensors]:
    torch = torch_module()
    layer = cl.layer
    heads, _, _ = layer.dims()  # type: ignore[attr-defined]
    kv_heads, rotary = layer.kv_heads, layer.rotary  # type: ignore[attr-defined]
    causal = bool(layer.options.get("causal", False))
    projections = {name: torch.nn.Linear(*p[f"{name}.weights"].shape, bias=f"{name}.bias" in p)
                   for name in ("query", "key", "value", "output")}  # fmt: skip
    f = torch.nn.functional

    class Attention(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            for name, module in projections.items():
                self.add_module(name, module)

        def forward(self, x: Any, context: Any = None) -> Any:
            c = x if context is None else context

            def split(t: Any, n: int) -> Any:  # (b, t, n*d) -> (b, n, t, d)
                return t.reshape(t.shape[0], t.shape[1], n, t.shape[-1] // n).transpose(1, 2)  # sizes, no -1: empty too

            q, k, v = split(self.query(x), heads), split(self.key(c), kv_heads), split(self.value(c), kv_heads)
            if rotary is not None:
                q, k = _rotate(torch, rotary, q), _rotate(torch, rotary, k)
            o = f.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=kv_heads != heads)
            return self.output(o.transpose(1, 2).reshape(x.shape[0], x.shape[1], o.shape[1] * o.shape[3]))

    tensors: Tensors = {}
    for name in projections:
        tensors[f"{name}.weights"] = (f"{name}.weight", p[f"{name}.weights"].T.copy())
        if f"{name}.bias" in p:
            tensors[f"{name}.bias"] = (f"{name}.bias", p[f"{name}.bias"])
    return Attention(), tensors


def _rotate(torch: Any, rotary: Any, t: Any) -> Any:
    """Rotary embedding of ``(batch, heads, positions, features)`` (the angles in float64, as netspec's)."""
    frequencies = 1.0 / rotary.theta ** (torch.arange(0, rotary.dims, 2, dtype=torch.float64) / rotary.dims)
    angles = torch.arange(t.shape[2], dtype=torch.float64)[:, None] * frequencies[None, :]
    cos, sin = angles.cos().to(t.dtype), angles.sin().to(t.dtype)
    return rotary.rotate(t, cos, sin, lambda xs: torch.cat(xs, dim=-1), lambda xs: torch.stack(xs, dim=-1))


# ----------------------------------------------------------------------------- files and round trips

LAYOUT_KEY = "netspec_layout"
"""Metadata key of an exported safetensors file: ``torch`` (torch names and layouts)."""


def torch_arrays(net: Network, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every tensor of the torch ``state_dict`` as a NumPy array, by torch key (the converters' arrays;
    PyTorch's own extra tensors, e.g. an LSTM's zero ``bias_hh``, included)."""
    return {k: to_array(v).copy() for k, v in _state(torch_module(), net, params).items()}


def layouts(net: Network) -> dict[str, tuple[str, np.ndarray]]:
    """netspec parameter name -> (torch key, index array): the torch tensor's element i is the netspec
    tensor's flat element ``index[i]`` (found by converting arrays of element numbers, int64: every layout
    change is a permutation of elements; a converter that computes instead is an error)."""
    import numpy as np

    torch = torch_module()
    out: dict[str, tuple[str, np.ndarray]] = {}
    shapes = dict(net.parameters())
    for cl in net.layers:
        if not cl.params:
            continue
        own = {p.name: np.arange(p.size, dtype=np.int64).reshape(p.shape) for p in cl.params}
        own |= {local: np.broadcast_to(np.int64(-1), shapes[owner].shape[::-1]) for local, owner in cl.tied.items()}
        with torch.device("meta"):  # the module is thrown away: no memory, no torch initialization
            _, tensors = CONVERTERS[cl.layer.type](cl, own)
        for local, (torch_name, index) in tensors.items():
            if local in cl.tied:  # the owner's tensor, read back under the owner's name
                continue
            if np.asarray(index).dtype != np.int64:  # arithmetic on the weights, not a layout: cannot be undone
                raise NetspecError(f"{cl.name}.{local}: the {cl.layer.type} converter computes {torch_name} "
                                   "from netspec's tensor instead of moving its elements")  # fmt: skip
            out[f"{cl.name}.{local}"] = (f"{cl.name}.{torch_name}", np.asarray(index))
    return out


def read_state_dict(net: Network, state: dict[str, Any]) -> dict[str, np.ndarray]:
    """netspec's arrays from a torch ``state_dict`` of :func:`to_module` (tensors or arrays), byte for byte.

    Raises:
        NetspecError: listing every missing, unexpected or mis-shaped tensor.
    """
    import numpy as np

    from netspec.init.precision import numpy_dtype

    plan = layouts(net)
    keys = [k for k in state if not isinstance(k, str)]
    if keys:
        raise NetspecError(f"the state_dict has keys that are not names: {keys[:5]!r}")
    arrays = {k: (to_array(v.detach().cpu()) if hasattr(v, "detach") else np.asarray(v)) for k, v in state.items()}
    expected = {key: index.shape for key, index in plan.values()}
    problems = [f"missing {k} {list(s)}" for k, s in expected.items() if k not in arrays]
    problems += [f"{k} has shape {list(arrays[k].shape)}, expected {list(s)}"
                 for k, s in expected.items() if k in arrays and arrays[k].shape != s]  # fmt: skip
    problems += [f"{k} is {arrays[k].dtype}, expected {net.dtype}"
                 for k in expected if k in arrays and arrays[k].dtype != numpy_dtype(net.dtype)]  # fmt: skip
    tied = _ties(net, {name: key for name, (key, _) in plan.items()})
    extra = sorted(set(arrays) - set(expected) - set(torch_extras(net)) - set(tied))
    problems += [f"unexpected {k}" for k in extra]
    problems += [f"{k} is not {owner} (tied to it), so the file's model would not be the spec's"
                 for k, owner in tied.items() if k in arrays and owner in arrays and not (
                     arrays[k].shape == arrays[owner].shape and arrays[k].tobytes() == arrays[owner].tobytes())]
    problems += [f"{k} is not zero (netspec's {k.rsplit('.', 2)[0]} has no such bias)"
                 for k in torch_extras(net) if k in arrays and np.any(arrays[k])]  # fmt: skip
    if problems:
        raise NetspecError("the state_dict does not match the spec: " + "; ".join(problems))
    out = {}
    for name, (key, index) in plan.items():
        flat = np.empty(index.size, dtype=arrays[key].dtype)
        flat[index.ravel()] = arrays[key].ravel()
        out[name] = flat.reshape(dict(net.parameters())[name].shape)
    return out


def torch_extras(net: Network) -> list[str]:
    """State-dict keys PyTorch keeps that netspec has no parameter for (an LSTM's or RNN's bias_hh)."""
    extras = []
    for cl in net.layers:
        if cl.layer.type in ("lstm", "simple_rnn") and any(p.name == "bias" for p in cl.params):
            reverse = ["", "_reverse"][: cl.layer.directions]  # type: ignore[attr-defined]
            extras += [f"{cl.name}.rnn.bias_hh_l0{s}" for s in reverse]
    return extras


def save(net: Network, params: dict[str, np.ndarray], path: str) -> None:
    """Write the torch ``state_dict`` atomically: ``.pt`` with ``torch.save`` (readable with
    ``torch.load(path, weights_only=True)``), ``.safetensors`` with torch names and layouts."""
    import os

    from netspec.io.weights import atomic_write, metadata_for
    from netspec.io.weights import save as save_arrays

    torch = torch_module()
    if os.path.splitext(path)[1].lower() == ".safetensors":  # a tied key is left out, as Hugging Face does
        arrays = {k: to_array(v) for k, v in _state(torch, net, params, tied=False).items()}  # written: no copy
        save_arrays(arrays, path, {**metadata_for(net), LAYOUT_KEY: "torch"})
        return
    state = _state(torch, net, params)
    with atomic_write(path) as fh:
        torch.save(state, fh)


def read_file(net: Network, path: str) -> dict[str, np.ndarray]:
    """netspec's arrays from an exported ``.pt`` or torch-layout ``.safetensors`` file.

    Raises:
        NetspecError: the file is too large for the spec, unreadable, or does not match it.
    """
    import os

    from netspec.io.files import open_regular
    from netspec.io.weights import load

    limit = net.nbytes + (1 << 20) * (1 + len(net.layers))
    if os.path.splitext(path)[1].lower() == ".safetensors":
        return read_state_dict(net, load(path, max_bytes=limit))
    if os.path.getsize(path) > limit:
        raise NetspecError(f"{path}: {os.path.getsize(path):,} bytes is more than the spec's weights can take")
    torch = torch_module()
    try:
        with open_regular(path) as fh:
            state = torch.load(fh, weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises many types for a corrupt file
        raise NetspecError(f"{path}: not a readable torch file: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict):
        raise NetspecError(f"{path}: holds a {type(state).__name__}, not a state_dict")
    return read_state_dict(net, state)


def expected_options(cl: CompiledLayer) -> dict[str, Any]:
    """The attributes a PyTorch module computing layer ``cl`` has: convolutions' ``stride``, ``dilation``,
    ``groups``, ``output_padding`` and ``padding`` (as (before, after) per axis), norms' ``eps`` and batch
    norm's ``momentum``; empty for other layers."""
    layer = cl.layer
    if hasattr(layer, "effective_kernel"):  # a convolution
        _, stride, dilation, _ = layer.geometry()  # type: ignore[attr-defined]
        transposed = hasattr(layer, "crops")
        sizes = lend(cl.input_shape[:-1])
        out = {"stride": tuple(stride), "dilation": tuple(dilation), "groups": layer.groups,  # type: ignore[attr-defined]
               "padding": tuple(layer.crops(sizes) if transposed else layer.pads(sizes))}  # type: ignore[attr-defined]  # fmt: skip
        if transposed:
            out["output_padding"] = tuple(layer.output_padding())  # type: ignore[attr-defined]
        return out
    out = {}
    if hasattr(layer, "epsilon"):
        out["eps"] = float(layer.epsilon)
    if hasattr(layer, "momentum"):
        out["momentum"] = float(layer.momentum)
    return out


def _module_padding(target: Any, rank: int) -> tuple[tuple[int, int], ...] | None:
    """A torch convolution's padding as (before, after) per axis (None if it does not say)."""
    padding = getattr(target, "padding", None)
    if padding == "valid":
        return ((0, 0),) * rank
    if not isinstance(padding, tuple) or len(padding) != rank or getattr(target, "padding_mode", "zeros") != "zeros":
        return None
    return tuple((int(p), int(p)) for p in padding)


def option_differences(net: Network, module: Any, rename: Callable[[str], str]) -> list[str]:
    """Every layer option in which the modules of a hand-written ``module`` differ from the spec's layers
    (:func:`expected_options`; a module's ``padding='same'`` is compared as PyTorch computes it)."""
    out = []
    for cl in net.layers:
        expected = expected_options(cl)
        path = rename(f"{cl.name}.weight").rpartition(".")[0]
        if not expected:
            continue
        try:
            target = module.get_submodule(path)
        except AttributeError:
            continue
        for name, ours in expected.items():
            theirs = getattr(target, name, None)
            if name == "padding":
                if theirs == "same" and all(s == 1 for s in expected["stride"]):
                    total = [d * (k - 1) for d, k in zip(expected["dilation"], target.kernel_size, strict=True)]
                    theirs = tuple((t // 2, t - t // 2) for t in total)  # PyTorch's 'same' (stride 1)
                else:
                    theirs = _module_padding(target, len(ours))
                if theirs is not None and theirs != ours:
                    shown = ", ".join(f"({b}, {a})" for b, a in ours)
                    their = ", ".join(f"({b}, {a})" for b, a in theirs)
                    out.append(f"{path}: padding: netspec (before, after) {shown}, the module {their}")
            elif theirs is not None and (theirs != ours if not isinstance(ours, float)
                                         else abs(float(theirs) - ours) > 1e-12 * max(abs(ours), 1)):  # fmt: skip
                out.append(f"{path}: {name}: netspec {ours}, the module {theirs}")
        if getattr(target, "momentum", 0.0) is None and "momentum" in expected:
            out.append(f"{path}: momentum: netspec {expected['momentum']}, the module None (a cumulative average)")
    return out


def load_into(module: Any, spec_or_network: Any, params: dict[str, np.ndarray] | str | None = None,
              mapping: dict[str, str] | Callable[[str], str] | None = None,
              options: str = "error") -> None:  # fmt: skip
    """Copy netspec's weights into a hand-written torch ``module`` whose tensors have torch layouts.

    ``params``: netspec's arrays, a netspec weights file (``.npz``, ``.safetensors``), or None to
    build them from the spec's seed. ``mapping`` renames the keys of :func:`to_module`'s
    ``state_dict`` (``stem.weight``) to the module's own (a dict, or a function); keys it leaves out
    keep their names.

    The layer options that change what a module computes are compared too: convolutions' stride,
    padding, dilation, groups and output_padding, norms' eps and batch norm's momentum (bias presence is
    a tensor and compared with them). ``options``: ``"error"`` (default) refuses a module that differs,
    ``"warn"`` copies and warns naming each difference (for a module that pads by hand in ``forward``),
    ``"ignore"`` does not compare.

    Raises:
        NetspecError: listing every missing, unexpected or mis-shaped tensor, and with ``options="error"``
            every differing option (nothing is copied then).
    """
    from netspec.nn.network import Network

    torch = torch_module()
    net = spec_or_network if isinstance(spec_or_network, Network) else _load(spec_or_network)
    if isinstance(params, str):
        from netspec.io.weights import load_for

        params = load_for(net, params)
    params = net.initialize() if params is None else params
    table = {} if mapping is None or callable(mapping) else mapping
    rename: Callable[[str], str] = mapping if callable(mapping) else (lambda k: table.get(k, k))
    extras = {rename(k) for k in torch_extras(net)}  # zero where the module has them (torch initialized them)
    ours = {rename(k): v for k, v in torch_arrays(net, params).items()}
    theirs = module.state_dict()
    problems = [f"the module has no {k}" for k in ours if k not in theirs and k not in extras]
    problems += [f"{k}: netspec {list(v.shape)}, module {list(theirs[k].shape)}"
                 for k, v in ours.items() if k in theirs and tuple(theirs[k].shape) != v.shape]  # fmt: skip
    problems += [f"netspec has nothing for {k}" for k in theirs
                 if k not in ours and not k.endswith("num_batches_tracked")]  # fmt: skip
    if options not in ("error", "warn", "ignore"):
        raise ValueError(f"options must be 'error', 'warn' or 'ignore', not {options!r}")
    differences = [] if options == "ignore" or problems else option_differences(net, module, rename)
    if options == "error":
        problems += differences
    if problems:
        raise NetspecError(f"cannot load into {type(module).__name__}: " + "; ".join(problems))
    if differences:
        import warnings

        warnings.warn(f"{type(module).__name__} computes something else than the spec: " + "; ".join(differences),
                      stacklevel=2)  # fmt: skip
    with torch.no_grad():
        for k, v in ours.items():
            if k in theirs:
                theirs[k].copy_(to_tensor(v))


def fill_(tensor: Any, net: Network, name: str, perm: tuple[int, ...] | None = None, seed: int | None = None) -> Any:
    """Fill a torch tensor with netspec's values of parameter ``name`` and return it: ``tensor`` holds
    ``np.transpose(netspec_tensor, perm)`` (``perm=(1, 0)`` for a dense kernel in ``nn.Linear``'s
    ``(out, in)``; None: netspec's own layout). A DTensor (FSDP2's ``fully_shard``, tensor parallelism)
    gets only its local shard, which is all this rank generates (:func:`netspec.nn.slices.initialize_slice`);
    the values are the same bytes on any mesh and world size. For ``reset_parameters``::

        def reset_parameters(self):
            with torch.no_grad():
                netspec.torch.fill_(self.weight, net, "fc1.weights", perm=(1, 0))
                netspec.torch.fill_(self.bias, net, "fc1.bias")

    Raises:
        NetspecError: the shapes disagree. InitializerError: ``rng: legacy`` (no part can be drawn alone).
    """
    import numpy as np

    from netspec.nn.slices import initialize_slice

    torch = torch_module()
    shape = tuple(dict(net.parameters())[name].shape)
    perm = tuple(range(len(shape))) if perm is None else tuple(perm)
    if sorted(perm) != list(range(len(shape))) or tuple(shape[p] for p in perm) != tuple(tensor.shape):
        raise NetspecError(f"{name} {list(shape)} transposed by {list(perm)} is not {list(tensor.shape)}")
    local, offset = _local_part(torch, tensor)
    torch_index = [slice(o, o + n) for o, n in zip(offset, local.shape, strict=True)]
    index = [slice(None)] * len(shape)
    for axis, p in enumerate(perm):
        index[p] = torch_index[axis]
    values = np.transpose(initialize_slice(net, name, tuple(index), seed), perm)
    with torch.no_grad():
        local.copy_(to_tensor(np.ascontiguousarray(values)))
    return tensor


def _local_part(torch: Any, tensor: Any) -> tuple[Any, tuple[int, ...]]:
    """The tensor this rank holds and its offset in the global tensor (a plain tensor: itself, at 0)."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # a torch built without distributed: no DTensor can be given
        return tensor, (0,) * tensor.dim()
    if not isinstance(tensor, DTensor):
        return tensor, (0,) * tensor.dim()
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    _, offset = compute_local_shape_and_global_offset(tensor.shape, tensor.device_mesh, tensor.placements)
    return tensor.to_local(), tuple(offset)
