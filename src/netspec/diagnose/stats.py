"""Signal-propagation statistics of an initialized network (NumPy only; gradients are in
:mod:`netspec.diagnose.gradients`).

For each layer, on one batch in evaluation mode: the pre-activation's and the output's mean and std,
the fraction of saturated units (tanh: |y| > 0.99; sigmoid: y outside [0.01, 0.99]) and of dead ReLU
units (a unit, i.e. one output position and channel, that is 0 for every sample of the batch).

``std_ratio`` is the last layer's output std over the first's, among the layers that apply an
activation (all layers if none does): the quantity Glorot and Bengio (2010) plot against depth. A
softmax or log_softmax output layer is left out: its output is a probability (or its log), whose std
says nothing about signal propagation (a well-initialized He network's softmax head has std near 1/classes).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netspec.errors import NetspecError, UsageError

if TYPE_CHECKING:
    import numpy as np

    from netspec.nn.network import Network

PROBABILITY_HEADS = ("softmax", "log_softmax")
"""Output activations left out of ``std_ratio``."""
SATURATION = {"tanh": (-0.99, 0.99), "sigmoid": (0.01, 0.99)}
"""Activation -> the interval outside which a unit counts as saturated."""
HISTOGRAM_SAMPLE = 20_000
"""At most this many output values per layer are kept for histograms (an evenly spaced subsample)."""


@dataclass
class LayerStats:
    """One layer's statistics over the batch (``None``: not applicable)."""

    name: str
    type: str
    activation: str | None
    mean: float
    std: float
    pre_mean: float | None = None
    pre_std: float | None = None
    saturated: float | None = None
    dead: float | None = None
    output: bool = False
    """Whether the layer is a network output."""
    sample: Any = field(default=None, repr=False)
    """A subsample of the outputs (for histograms); not in the JSON."""

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "sample"}


@dataclass
class ParamStats:
    """One parameter's gradient statistics for the stated loss."""

    name: str
    grad_std: float
    grad_to_weight: float | None
    """||grad|| / ||weights|| (None for an all-zero tensor)."""


@dataclass
class Run:
    """The statistics of one initialization of the network."""

    initializer: str
    layers: list[LayerStats]
    parameters: list[ParamStats] = field(default_factory=list)
    gradients: str = ""
    """Why gradients are missing ('' when present)."""

    @property
    def std_ratio(self) -> float:
        """Last over first output std of the layers with an activation, a softmax or log_softmax output
        layer left out; 0 when the first is 0 (a dead signal: every ``std_ratio<X`` check fails, none
        passes by an infinite ratio)."""
        hidden = [s for s in self.signal_layers() if s.pre_std is not None] or self.signal_layers()
        return hidden[-1].std / hidden[0].std if hidden[0].std > 0 else 0.0

    def signal_layers(self) -> list[LayerStats]:
        """The layers whose std ``std_ratio`` compares: all but a softmax or log_softmax output layer
        (all of them if that leaves none)."""
        kept = [s for s in self.layers if not (s.output and s.activation in PROBABILITY_HEADS)]
        return kept or self.layers

    def as_json(self) -> dict[str, Any]:
        return {"initializer": self.initializer, "std_ratio": self.std_ratio,
                "layers": [s.as_json() for s in self.layers],
                "parameters": [dataclasses.asdict(p) for p in self.parameters],
                **({"gradients_missing": self.gradients} if self.gradients else {})}  # fmt: skip


DEFAULT_LENGTH = 16
"""The size :func:`default_batch` gives an input axis whose size the spec leaves to run time (null)."""


def default_batch(net: Network, batch: int, seed: int) -> Any:
    """Standard-normal inputs, or uniform token ids below the vocabulary for inputs that feed an embedding;
    an axis of unknown size (null in the spec) gets :data:`DEFAULT_LENGTH`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = {}
    for name, spec_shape in net.inputs.items():
        shape = tuple(DEFAULT_LENGTH if n is None else n for n in spec_shape)
        users = [cl.layer for cl in net.layers if name in cl.sources]
        vocab = [u.options["vocab"] for u in users if u.type == "embedding"]
        if vocab:
            out[name] = rng.integers(0, min(vocab), (batch, *shape)).astype(net.compute_dtype)
        else:
            out[name] = rng.standard_normal((batch, *shape)).astype(net.compute_dtype)
    return out if len(out) > 1 else next(iter(out.values()))


def layer_stats(net: Network, params: dict[str, np.ndarray], x: Any) -> list[LayerStats]:
    """Every layer's statistics on the batch ``x`` (see the module doc)."""
    out = []
    for cl, pre, y in net.trace(x, params):
        act = cl.layer.activation.name if cl.layer.has_activation() else None
        stats = LayerStats(cl.name, cl.layer.type, act, float(y.mean()), float(y.std()),
                           output=cl.name in net.outputs, sample=_sample(y))  # fmt: skip
        if pre is not None:
            stats.pre_mean, stats.pre_std = float(pre.mean()), float(pre.std())
        if act in SATURATION:
            low, high = SATURATION[act]
            stats.saturated = float(((y < low) | (y > high)).mean())
        if act == "relu":
            stats.dead = float((y.reshape(y.shape[0], -1) <= 0).all(axis=0).mean())
        out.append(stats)
    return out


def _sample(y: np.ndarray) -> np.ndarray:
    flat = y.reshape(-1)
    step = max(1, flat.size // HISTOGRAM_SAMPLE)
    return flat[::step][:HISTOGRAM_SAMPLE].copy()


def reinitialized(net: Network, initializer: str) -> Network:
    """The same network with ``initializer`` for every parameter that follows a layer's ``weights`` key
    (kernels and embedding tables; recurrent kernels, biases and norms keep theirs).

    Raises:
        UsageError: the initializer is unknown or cannot initialize one of those tensors.
    """
    from netspec.errors import InitializerError
    from netspec.init.initializers import get_initializer

    try:
        init = get_initializer(initializer)
    except (InitializerError, NetspecError) as exc:
        raise UsageError(f"--compare: {exc}") from None
    layers = []
    for cl in net.layers:
        kernels = [p.init_key for p in cl.params if cl.layer.base_key(p.init_key) == "weights"]
        params = [dataclasses.replace(p, initializer=init) if p.init_key in kernels else p for p in cl.params]
        for p in params:
            try:
                p.declared()
            except InitializerError as exc:
                raise UsageError(f"--compare {initializer}: {cl.name}.{p.name}: {exc}") from None
        layers.append(dataclasses.replace(cl, params=params))
    return dataclasses.replace(net, layers=layers)
