"""The compiled network: layers with known shapes and parameters, initialization and forward pass."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netspec.nn.inputs import matches
from netspec.nn.layers import Layer, ParamSpec, Shape, ShapeError, check_output_size

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from netspec.errors import Diagnostic
    from netspec.init.streams import Stream
    from netspec.spec.arithmetic import Evaluated
    from netspec.spec.init_recipe import Decided


@dataclass(frozen=True)
class Provenance:
    """Where one of a layer's initializers came from (rendered by :mod:`netspec.report.summary`).

    ``key`` is the spec key that decided: the parameter's own key, or the general key it falls back to
    when the layer does not write it (``weights`` for an attention layer's ``query_weights``).
    ``source`` is ``layer`` (the layer's own key), ``defaults`` (the spec's
    ``defaults``), ``built-in`` (the layer type's default) or ``fixed`` (not
    configurable, e.g. batch-norm statistics); ``written`` is the value as
    written (a name or a mapping); ``auto_from`` names the activation that
    ``auto`` followed, or the layer type whose own rule it used.
    """

    key: str
    source: str
    written: Any = None
    auto_from: str | None = None
    auto_rule: str = "activation"
    auto_to: str = ""
    """What ``auto`` resolved to, and why (``he_normal (the activation's recommended initializer)``)."""


FIXED = Provenance("", "fixed")


@dataclass
class CompiledLayer:
    """A layer with its place in the spec, its static shapes and its initializers' provenance."""

    layer: Layer
    input_shape: Shape
    output_shape: Shape
    params: list[ParamSpec]
    spec_path: str = ""
    line: int = 0
    provenance: dict[str, Provenance] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    """The names of the outputs it takes (layers or network inputs), in order."""
    input_shapes: list[Shape] = field(default_factory=list)
    blocks: list[tuple[str, str]] = field(default_factory=list)
    """The block instances it belongs to, outermost first: (instance name, block name)."""
    index: int | None = None
    """The 1-based index of the innermost ``repeat`` it is in (None outside any)."""
    expressions: dict[str, Evaluated] = field(default_factory=dict)
    """Its options written as expressions ``${...}``: option path (``units``, ``weights.std``) -> value."""
    depends: frozenset[str] = frozenset()
    """The constants its options, enclosing repeat counts and block arguments depend on."""
    tied: dict[str, str] = field(default_factory=dict)
    """Tensors it uses but does not own: local name -> the owner's parameter (``lm_head`` ``weights`` ->
    ``tokens.weights``), used transposed (see :func:`layer_tensors`)."""
    recipe: dict[str, Decided] = field(default_factory=dict)
    """Parameter -> what the spec's init recipe decided for it (absent: the recipe did not decide it)."""
    column: int = 0
    """The column of the layer in the spec (with :attr:`line`: where run-time shape errors point)."""

    def origin(self, param: ParamSpec) -> Provenance:
        """The provenance of a parameter's initializer (from the layer key it follows)."""
        return self.provenance.get(param.init_key, FIXED)

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def num_params(self) -> int:
        return sum(p.size for p in self.params)


@dataclass
class Network:
    """Everything a spec says, compiled; nothing allocated until :meth:`initialize`."""

    name: str
    inputs: dict[str, Shape]
    """Network inputs by name (``input`` for a spec with ``input:``)."""
    layers: list[CompiledLayer]
    outputs: list[str] = field(default_factory=list)
    """The names whose values :meth:`forward` returns (default: the last layer)."""
    seed: int = 0
    rng: str = "block"
    """``block`` (the default block stream), ``block/N`` (stream version N, pinned) or ``legacy``."""
    dtype: str = "float32"
    source: str = ""
    spec: dict[str, Any] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)
    """Imported block libraries: path (relative to the repository root) -> SHA-256 of the file."""
    warnings: list[Diagnostic] = field(default_factory=list)
    """Located warnings from compilation (e.g. parameter names that depend on layer positions)."""
    constants: dict[str, int | float] = field(default_factory=dict)
    """The spec's ``constants``, resolved."""
    expressions: dict[str, Evaluated] = field(default_factory=dict)
    """Values written as expressions outside the layers (``defaults.weights.std``, ``init.layers``, ...)."""
    init: dict[str, Any] | None = None
    """The init recipe, resolved (``{recipe: gpt2, std: 0.02, layers: 12}``), or None."""
    width_mult: dict[str, float] = field(default_factory=dict)
    """Tensor -> muP width multiplier (a ``mup`` recipe with a base spec), written to weights metadata."""

    def parameters(self) -> Iterator[tuple[str, ParamSpec]]:
        """``("layer.param", spec)`` in initialization order: layer by layer, weights then bias."""
        for cl in self.layers:
            for p in cl.params:
                yield f"{cl.name}.{p.name}", p

    @property
    def num_params(self) -> int:
        """Every parameter value, batch norm's moving statistics included (what the weights file holds)."""
        return sum(cl.num_params for cl in self.layers)

    @property
    def num_trainable(self) -> int:
        """The values training changes by gradients: :attr:`num_params` less the non-trainable state
        (batch norm's moving statistics), as PyTorch's ``parameters()`` against its buffers."""
        return sum(p.size for _, p in self.parameters() if p.trainable)

    @property
    def nbytes(self) -> int:
        """The parameters' size in bytes, in their stored dtype."""
        from netspec.init.precision import ITEMSIZE

        return self.num_params * ITEMSIZE[self.dtype]

    @property
    def compute_dtype(self) -> str:
        """The type :meth:`forward` computes in: the stored dtype, float32 for the half types (their values
        are float32 values, widened exactly)."""
        from netspec.init.precision import stream_dtype

        return stream_dtype(self.dtype)

    @property
    def input_shape(self) -> Shape:
        """The shape of the one network input (networks with several have :attr:`inputs`)."""
        if len(self.inputs) != 1:
            raise ShapeError(f"the network has {len(self.inputs)} inputs: {', '.join(self.inputs)}")
        return next(iter(self.inputs.values()))

    def shape_of(self, name: str) -> Shape:
        """The output shape of a layer or the shape of a network input."""
        if name in self.inputs:
            return self.inputs[name]
        return next(cl.output_shape for cl in self.layers if cl.name == name)

    @property
    def output_shape(self) -> Shape:
        """The shape of the one network output."""
        if len(self.outputs) != 1:
            raise ShapeError(f"the network has {len(self.outputs)} outputs: {', '.join(self.outputs)}")
        return self.shape_of(self.outputs[0])

    @property
    def is_graph(self) -> bool:
        """True unless every layer takes the one before it (a plain stack)."""
        previous = list(self.inputs)
        for cl in self.layers:
            if cl.sources != previous[-1:]:
                return True
            previous = [cl.name]
        return len(self.inputs) != 1 or self.outputs != previous[-1:]

    def restricted(self, names: set[str]) -> Network:
        """The same network holding only the parameter tensors ``names`` (verifying one shard of a checkpoint)."""
        import dataclasses

        if names >= {name for name, _ in self.parameters()}:
            return self
        layers = [dataclasses.replace(cl, params=[p for p in cl.params if f"{cl.name}.{p.name}" in names])
                  for cl in self.layers]  # fmt: skip
        return dataclasses.replace(self, layers=layers)

    def initialize(
        self,
        seed: int | None = None,
        threads: int | None = None,
        progress: Callable[[int], None] | None = None,
        digests: dict[str, str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Every parameter, drawn from its stream (see :mod:`netspec.init.streams`).

        Args:
            seed: overrides the spec's seed.
            threads: generation threads (default: all cores; the bytes do not depend on it).
            progress: called with the number of values after each tensor.
            digests: if given, filled with each tensor's SHA-256 (hex, of its C-order bytes), computed on
                a separate thread while the next tensor is generated (no second pass after the build).
        """
        return dict(self.generate(seed, threads, progress, digests))

    def generate(
        self,
        seed: int | None = None,
        threads: int | None = None,
        progress: Callable[[int], None] | None = None,
        digests: dict[str, str] | None = None,
    ) -> Iterator[tuple[str, np.ndarray]]:
        """``(path, array)`` one parameter at a time, in initialization order.

        Yields the same bytes as :meth:`initialize` (arguments as there); a
        caller that checks or writes each tensor and drops it holds one tensor
        at a time. With ``rng: legacy`` the single generator is consumed in
        order, so every tensor must be drawn, even those the caller skips.
        ``digests`` is complete when the iteration ends.
        """
        from netspec.init.streams import BlockStream, LegacyStream, block_version

        seed = self.seed if seed is None else seed
        legacy = LegacyStream(seed) if self.rng == "legacy" else None
        version = 0 if legacy else block_version(self.rng)
        with _pool(1 if legacy else threads) as pool, _hasher(digests) as hash_later:
            for path, p in self.parameters():
                stream: Stream = legacy or BlockStream(seed, path, pool, version)
                array = p.draw(stream, self.dtype)
                hash_later(path, array)
                yield path, array
                if progress:
                    progress(p.size)

    def summary(self) -> str:
        """The Keras-style summary table that ``netspec build`` prints."""
        from netspec.report.summary import table

        return table(self)

    def forward(self, x: Any, params: dict[str, np.ndarray] | None = None) -> Any:
        """Evaluation-mode forward pass of a batch ``(batch, *input_shape)`` (or one sample).

        Args:
            x: the input, array-like; for a network with several inputs, a mapping name -> array
                (all batched, or all single samples).
            params: the weights (default: :meth:`initialize`).

        Returns:
            The output array, or for several outputs a dict name -> array.

        Raises:
            ShapeError: the input does not fit the network (shape, or token ids outside the vocabulary).
        """
        params = self.initialize() if params is None else params
        values, single = self._batched_inputs(x)
        for cl in self.layers:
            xs = [values[s] for s in cl.sources]
            self.check_sizes(cl, xs)
            values[cl.name] = cl.layer.apply(xs, _own(cl, params))
        out = {name: values[name][0] if single else values[name] for name in self.outputs}
        return out[self.outputs[0]] if len(out) == 1 else out

    def trace(
        self, x: Any, params: dict[str, np.ndarray]
    ) -> Iterator[tuple[CompiledLayer, np.ndarray | None, np.ndarray]]:
        """Every layer in order with its pre-activation (None if it applies no activation) and output,
        for a batch ``x`` (as :meth:`forward`)."""
        values, _ = self._batched_inputs(x)
        for cl in self.layers:
            own = _own(cl, params)
            xs = [values[s] for s in cl.sources]
            self.check_sizes(cl, xs)
            pre = None
            if cl.layer.has_activation() and cl.layer.activation.name != "linear":
                pre = cl.layer.without_activation().apply(xs, own)
                values[cl.name] = cl.layer.activation(pre)
            else:
                values[cl.name] = cl.layer.apply(xs, own)
            yield cl, pre, values[cl.name]

    def check_sizes(self, cl: CompiledLayer, xs: list[np.ndarray]) -> None:
        """The compile-time shape rule of ``cl`` (:meth:`Layer.combine_shapes`, the output size limit) fed
        the sizes it is about to run with: sizes known only at run time (a window longer than the sequence,
        an empty sequence where the layer needs a position) fail here, located at the layer in the spec, as
        the compiler would have for a spec that wrote those sizes.

        Raises:
            ShapeError: ``source:line:col: name (type): why (at layers[i]; input [...])``.
        """
        shapes = [tuple(x.shape[1:]) for x in xs]
        try:
            check_output_size(cl.layer.combine_shapes(list(shapes)))
        except ShapeError as exc:
            given = "; ".join(f"input {list(s)}" for s in shapes)
            where = f"{self.source or '<spec>'}:{cl.line}:{cl.column}"
            raise ShapeError(f"{where}: {cl.name} ({cl.layer.type}): {exc} (at {cl.spec_path}; {given})") from None

    def _batched_inputs(self, x: Any) -> tuple[dict[str, np.ndarray], bool]:
        import numpy as np

        given = x if isinstance(x, dict) else {next(iter(self.inputs)): x} if len(self.inputs) == 1 else None
        if given is None or set(given) != set(self.inputs):
            raise ShapeError(f"the network takes inputs {', '.join(self.inputs)}; give a mapping name -> array")
        values = {name: np.asarray(given[name], dtype=np.dtype(self.compute_dtype)) for name in self.inputs}
        singles = {name: matches(v.shape, self.inputs[name]) for name, v in values.items()}
        single = all(singles.values())
        for name, v in values.items():
            batched = v[None] if single else v
            if not matches(batched.shape[1:], self.inputs[name]):
                wanted = ", ".join("any" if n is None else str(n) for n in self.inputs[name])
                raise ShapeError(f"input {name!r} has shape {list(v.shape)}, the network takes [{wanted}] "
                                 "(or a batch of it)")  # fmt: skip
            values[name] = batched
        return values, single


def layer_tensors(cl: CompiledLayer, params: dict[str, Any]) -> dict[str, Any]:
    """A layer's tensors by local name: its own parameters, and the tensors it is tied to (the owner's,
    transposed: a view, no copy)."""
    own = {p.name: params[f"{cl.name}.{p.name}"] for p in cl.params}
    return own | {local: params[owner].T for local, owner in cl.tied.items()}


def _own(cl: CompiledLayer, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A layer's tensors (:func:`layer_tensors`), half-type values widened to float32 (exactly) to compute with."""
    from netspec.init.precision import widen

    return {k: widen(v) for k, v in layer_tensors(cl, params).items()}


@contextmanager
def _pool(threads: int | None) -> Iterator[ThreadPoolExecutor | None]:
    from concurrent.futures import ThreadPoolExecutor

    n = default_threads() if threads is None else max(1, int(threads))
    if n == 1:
        yield None
        return
    with ThreadPoolExecutor(n, thread_name_prefix="netspec-init") as pool:
        yield pool


@contextmanager
def _hasher(digests: dict[str, str] | None) -> Iterator[Callable[[str, np.ndarray], None]]:
    """``hash_later(path, array)``: SHA-256 of each array on one background thread (hashlib releases
    the GIL), so hashing overlaps generation; ``digests`` is filled when the block exits."""
    if digests is None:
        yield lambda path, array: None
        return
    import hashlib
    from concurrent.futures import Future, ThreadPoolExecutor

    from netspec.init.precision import byte_view

    pending: dict[str, Future[str]] = {}
    with ThreadPoolExecutor(1, thread_name_prefix="netspec-sha256") as pool:

        def hash_later(path: str, array: np.ndarray) -> None:
            pending[path] = pool.submit(lambda: hashlib.sha256(byte_view(array)).hexdigest())

        yield hash_later
        digests.update({path: future.result() for path, future in pending.items()})


def default_threads() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
