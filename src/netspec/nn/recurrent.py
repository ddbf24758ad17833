"""Recurrent layers: ``simple_rnn``, ``gru`` and ``lstm`` over ``(sequence, features)`` inputs.

Layouts are Keras' (input-major, gates fused along the last axis):

* ``weights`` ``(in, gates * units)``, ``recurrent_weights`` ``(units, gates * units)``,
  ``bias`` ``(gates * units,)``; a GRU also has ``recurrent_bias`` ``(3 * units,)`` (Keras'
  ``reset_after=True`` bias row 2, PyTorch's ``bias_hh``);
* gate order: LSTM ``i, f, c, o`` (PyTorch's ``i, f, g, o``: the same order); GRU ``z, r, h``
  (PyTorch's order is ``r, z, n``: swap the first two slices). PyTorch stores each kernel
  transposed, ``(gates * units, in)``, and an LSTM with two biases whose sum is ``bias``;
* ``bidirectional: true`` adds ``reverse.weights``, ``reverse.recurrent_weights``, ... (PyTorch's
  ``*_reverse``) and concatenates the forward and backward outputs (Keras' ``Bidirectional``
  with ``merge_mode='concat'``).

Cells (evaluation; tanh and sigmoid, as both frameworks' defaults):

* simple_rnn: ``h = tanh(x W + h U + b)``;
* lstm: ``[i, f, c~, o] = x W + h U + b``; ``c = s(f) c + s(i) tanh(c~)``; ``h = s(o) tanh(c)``;
* gru (reset after, the Keras 2+ / PyTorch / Flax form): ``[xz, xr, xh] = x W + b``,
  ``[hz, hr, hh] = h U + b_r``; ``z = s(xz + hz)``, ``r = s(xr + hr)``,
  ``h~ = tanh(xh + r hh)``, ``h = z h + (1 - z) h~``.

Initialization conventions (``convention``; ``auto`` resolves per convention):

* ``keras`` (default): ``weights`` glorot_uniform, ``recurrent_weights`` orthogonal, ``bias`` zeros,
  LSTM ``unit_forget_bias`` (forget-gate bias 1, Jozefowicz et al. 2015); fans of the *fused*
  kernels, and one orthogonal matrix for the whole ``(units, gates * units)`` recurrent kernel;
* ``flax``: ``weights`` lecun_normal, ``recurrent_weights`` orthogonal, ``bias`` zeros; fans and
  orthogonal matrices *per gate* (Flax's cells hold one Dense per gate);
* ``torch``: every tensor U(-1/sqrt(units), 1/sqrt(units)) (``nn.RNN``/``nn.GRU``/``nn.LSTM``
  ``reset_parameters``). PyTorch draws two biases and adds them, so its summed LSTM bias is
  triangular on ±2/sqrt(units); netspec's single ``bias`` is U(±1/sqrt(units)).

``gate_fans: fused | per_gate`` overrides the convention's choice of fans (and of orthogonal
matrices); it matters for every initializer that reads fans (glorot, he, lecun, ...).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from netspec.init.fans import Fans
from netspec.init.gates import Gates
from netspec.nn.activations import Activation, get_activation
from netspec.nn.layers import INIT_REF, POS_INT, Layer, ParamSpec, Shape, ShapeError, _opt, known, register_layer

if TYPE_CHECKING:
    import numpy as np

CONVENTIONS = ("keras", "flax", "torch")
KERAS_AUTO = {"weights": "glorot_uniform", "recurrent_weights": "orthogonal", "bias": "zeros"}
FLAX_AUTO = {"weights": "lecun_normal", "recurrent_weights": "orthogonal", "bias": "zeros"}
WHY = {
    "keras": "Keras' default for recurrent layers",
    "flax": "Flax's default for recurrent cells",
    "torch": "PyTorch's nn.RNN/GRU/LSTM default U(±1/sqrt(units))",
}


class Recurrent(Layer):
    """Base of the recurrent layers (see the module doc)."""

    gates: ClassVar[int] = 1
    gate_names: ClassVar[str] = "h"
    OPTIONS = {
        "units": _opt(POS_INT, "Size of the hidden state."),
        "return_sequences": _opt({"type": "boolean"}, "Output every step (sequence, units) instead of the last "
                                 "state (units,); default false."),
        "bidirectional": _opt({"type": "boolean"}, "Also run backwards and concatenate both directions' outputs "
                              "(reverse.* parameters); default false."),
        "convention": _opt({"enum": list(CONVENTIONS)}, "Which framework's initialization 'auto' follows: keras "
                           "(default), flax or torch (see the docs)."),
        "gate_fans": _opt({"enum": ["fused", "per_gate"]}, "Fans (and orthogonal matrices) of the whole fused "
                          "kernel (Keras) or of one gate's slice (Flax); default from the convention."),
        "weights": _opt(INIT_REF, "Input kernel (in, gates*units) initializer; 'auto' follows the convention."),
        "recurrent_weights": _opt(INIT_REF, "Recurrent kernel (units, gates*units) initializer; 'auto' follows the "
                                  "convention (orthogonal for keras and flax)."),
        "bias": _opt(INIT_REF, "Bias initializer; 'auto' follows the convention (zeros for keras and flax)."),
        "use_bias": _opt({"type": "boolean"}, "Whether the layer has bias vectors (default true)."),
    }  # fmt: skip
    REQUIRED = ("units",)
    INIT_KEYS = {"weights": "auto", "recurrent_weights": "auto", "bias": "auto"}
    USES_DEFAULTS = False

    @classmethod
    def auto(cls, key: str, options: dict[str, Any], activation: Activation) -> tuple[Any, str, str, str]:
        convention = options.get("convention", "keras")
        if convention == "torch":
            bound = 1.0 / math.sqrt(options["units"])
            target: Any = {"name": "uniform", "low": -bound, "high": bound}
            return target, f"{cls.type} ({convention})", "layer", WHY[convention]
        target = (FLAX_AUTO if convention == "flax" else KERAS_AUTO)[key]
        return target, f"{cls.type} ({convention})", "layer", WHY[convention]

    @property
    def units(self) -> int:
        return int(self.options["units"])

    @property
    def directions(self) -> int:
        return 2 if self.options.get("bidirectional", False) else 1

    @property
    def per_gate(self) -> bool:
        default = "fused" if self.options.get("convention", "keras") == "keras" else "per_gate"
        return self.options.get("gate_fans", default) == "per_gate"

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 2:
            raise ShapeError(f"{self.type} needs an input (sequence, features), got {list(shape)}")
        if shape[0] == 0:  # PyTorch's RNN modules refuse it too; onnxruntime's kernels abort
            raise ShapeError(f"{self.type} needs a sequence of at least one step, got 0")
        width = self.directions * self.units
        return (shape[0], width) if self.options.get("return_sequences", False) else (width,)

    def bias_names(self) -> tuple[str, ...]:
        return ("bias",)

    def fixed_bias(self) -> tuple[tuple[int, float], ...]:
        return ()

    def params(self, shape: Shape) -> list[ParamSpec]:
        self.output_shape(shape)
        u, g, n_in = self.units, self.gates, known(shape[-1], f"{self.type}'s input features (the last axis)")
        width = u if self.per_gate else g * u
        how = (f"per gate: fans of one gate's ({{rows}}, {u}) slice (Flax)" if self.per_gate else
               f"fused gates: fans of the whole ({{rows}}, {g}x{u}) kernel (Keras)")  # fmt: skip
        kernel, recurrent = Fans(n_in, width), Fans(u, width)
        gates = Gates(g, self.per_gate) if g > 1 else None
        one = [
            ParamSpec("weights", (n_in, g * u), self.initializers["weights"], kernel, "", how.format(rows=n_in), gates),
            ParamSpec("recurrent_weights", (u, g * u), self.initializers["recurrent_weights"], recurrent, "",
                      how.format(rows=u), gates),
        ]  # fmt: skip
        if self.options.get("use_bias", True):
            for name in self.bias_names():
                fixed = self.fixed_bias() if name == "bias" else ()
                one.append(ParamSpec(name, (g * u,), self.initializers["bias"], kernel, "bias", how.format(rows=n_in),
                                     Gates(g, self.per_gate, fixed) if g > 1 else None))  # fmt: skip
        if self.directions == 1:
            return one
        back = [ParamSpec(f"reverse.{p.name}", p.shape, p.initializer, p.fans, p.init_key, p.convention, p.gates)
                for p in one]  # fmt: skip
        return one + back

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        outs = [self.run(x, params, "")]
        if self.directions == 2:
            outs.append(self.run(x[:, ::-1], params, "reverse.")[:, ::-1])
        seq = np.concatenate(outs, axis=-1) if len(outs) > 1 else outs[0]
        if self.options.get("return_sequences", False):
            return seq
        last = [outs[0][:, -1]] + ([outs[1][:, 0]] if len(outs) > 1 else [])  # the backward pass ends at step 0
        return np.concatenate(last, axis=-1)

    def run(self, x: np.ndarray, params: dict[str, np.ndarray], prefix: str) -> np.ndarray:
        """Every step's output (batch, sequence, units) of one direction."""
        import numpy as np

        w, rw = params[prefix + "weights"], params[prefix + "recurrent_weights"]
        xw = x @ w
        if prefix + "bias" in params:
            xw = xw + params[prefix + "bias"]
        rb = params.get(prefix + "recurrent_bias")
        state = self.initial_state(x)
        out = np.empty((x.shape[0], x.shape[1], self.units), dtype=x.dtype)
        for t in range(x.shape[1]):
            state = self.step(xw[:, t], state, rw, rb)
            out[:, t] = state[0]
        return out

    def initial_state(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        import numpy as np

        return (np.zeros((x.shape[0], self.units), dtype=x.dtype),)

    def step(
        self, xw: np.ndarray, state: tuple[np.ndarray, ...], rw: np.ndarray, rb: np.ndarray | None
    ) -> tuple[np.ndarray, ...]:
        raise NotImplementedError


def _split(z: np.ndarray, count: int) -> list[np.ndarray]:
    units = z.shape[-1] // count
    return [z[..., i * units : (i + 1) * units] for i in range(count)]


@register_layer
class SimpleRNN(Recurrent):
    type = "simple_rnn"
    description = "Fully connected recurrent layer: h = tanh(x W + h U + b) (Keras SimpleRNN, PyTorch nn.RNN)."

    def step(
        self, xw: np.ndarray, state: tuple[np.ndarray, ...], rw: np.ndarray, rb: np.ndarray | None
    ) -> tuple[np.ndarray, ...]:
        import numpy as np

        return (np.tanh(xw + state[0] @ rw),)


@register_layer
class LSTM(Recurrent):
    type = "lstm"
    description = "Long short-term memory, gates i, f, c, o (Keras LSTM, PyTorch nn.LSTM)."
    gates = 4
    OPTIONS = {
        **Recurrent.OPTIONS,
        "unit_forget_bias": _opt({"type": "boolean"}, "Set the forget gate's bias to 1 after the bias initializer "
                                 "(Keras; default true for the keras convention, false otherwise)."),
    }  # fmt: skip

    def fixed_bias(self) -> tuple[tuple[int, float], ...]:
        default = self.options.get("convention", "keras") == "keras"
        return ((1, 1.0),) if self.options.get("unit_forget_bias", default) else ()

    def initial_state(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        h = super().initial_state(x)[0]
        return (h, h.copy())

    def step(
        self, xw: np.ndarray, state: tuple[np.ndarray, ...], rw: np.ndarray, rb: np.ndarray | None
    ) -> tuple[np.ndarray, ...]:
        import numpy as np

        sigmoid = get_activation("sigmoid")
        h, c = state
        i, f, g, o = _split(xw + h @ rw, 4)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        return (sigmoid(o) * np.tanh(c), c)


@register_layer
class GRU(Recurrent):
    type = "gru"
    description = "Gated recurrent unit, gates z, r, h, reset after the recurrent product (Keras GRU, PyTorch nn.GRU)."
    gates = 3

    def bias_names(self) -> tuple[str, ...]:
        return ("bias", "recurrent_bias")

    def step(
        self, xw: np.ndarray, state: tuple[np.ndarray, ...], rw: np.ndarray, rb: np.ndarray | None
    ) -> tuple[np.ndarray, ...]:
        import numpy as np

        sigmoid = get_activation("sigmoid")
        h = state[0]
        hw = h @ rw
        if rb is not None:
            hw = hw + rb
        xz, xr, xh = _split(xw, 3)
        hz, hr, hh = _split(hw, 3)
        z = sigmoid(xz + hz)
        candidate = np.tanh(xh + sigmoid(xr + hr) * hh)
        return (z * h + (1 - z) * candidate,)
