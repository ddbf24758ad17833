"""Activation functions, their gains and the initializer each one recommends.

Gains follow PyTorch's ``torch.nn.init.calculate_gain``: linear/identity,
conv*, sigmoid: 1; tanh: 5/3; relu: sqrt(2); leaky_relu: sqrt(2 / (1 + alpha^2));
selu: 3/4. PyTorch defines no gain for the others and neither does netspec.

Recommended initializers follow the table in the blog post "Weight Initialization
Technique | Neural Network" the project grew from: Glorot for none, tanh, sigmoid
(hard_sigmoid too) and softmax (Glorot and Bengio 2010); He for the ReLU family, relu6 and
hard_swish included (He et al. 2015); LeCun for SELU (Klambauer et al. 2017).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from netspec.errors import InitializerError
from netspec.registry import Configurable, Registry, check_number

if TYPE_CHECKING:
    import numpy as np

ACTIVATIONS: Registry[type[Activation]] = Registry("activation")

TORCH_LINEAR_NAMES = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)

GAIN_NAMES = (*TORCH_LINEAR_NAMES, "sigmoid", "tanh", "relu", "leaky_relu", "selu")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """PyTorch's ``calculate_gain``: the recommended gain for a nonlinearity."""
    if nonlinearity in TORCH_LINEAR_NAMES or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)) or not math.isfinite(slope):
            raise InitializerError(f"leaky_relu negative_slope must be a finite number, got {slope!r}")
        return math.sqrt(2.0 / (1.0 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    known = ", ".join(GAIN_NAMES)
    raise InitializerError(f"no gain is defined for nonlinearity {nonlinearity!r}; known: {known}")


@dataclass(frozen=True)
class Activation(Configurable):
    """Base class: an elementwise (or last-axis) function with a config."""

    recommended: ClassVar[str] = "glorot_uniform"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def gain(self) -> float:
        """PyTorch's gain for this activation; an error where PyTorch defines none."""
        return calculate_gain(self.name)


@ACTIVATIONS.register
@dataclass(frozen=True)
class Linear(Activation):
    """f(x) = x."""

    name = "linear"
    aliases = ("identity", "none")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x


@ACTIVATIONS.register
@dataclass(frozen=True)
class Sigmoid(Activation):
    """f(x) = 1 / (1 + exp(-x)), evaluated without overflow."""

    name = "sigmoid"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


@ACTIVATIONS.register
@dataclass(frozen=True)
class Tanh(Activation):
    """f(x) = tanh(x)."""

    name = "tanh"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.tanh(x)


@ACTIVATIONS.register
@dataclass(frozen=True)
class Relu(Activation):
    """f(x) = max(0, x)."""

    name = "relu"
    recommended = "he_normal"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.maximum(x, 0)


@ACTIVATIONS.register
@dataclass(frozen=True)
class Relu6(Activation):
    """f(x) = min(max(x, 0), 6) (MobileNet v2; torch ``F.relu6``, ``jax.nn.relu6``)."""

    name = "relu6"
    recommended = "he_normal"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.minimum(np.maximum(x, 0), x.dtype.type(6))


@ACTIVATIONS.register
@dataclass(frozen=True)
class HardSigmoid(Activation):
    """f(x) = relu6(x + 3) / 6 (MobileNet v3; torch ``F.hardsigmoid``, Keras 3, ``jax.nn.hard_sigmoid``;
    not Keras 2's clip(0.2 x + 0.5, 0, 1))."""

    name = "hard_sigmoid"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        t = x.dtype.type
        return Relu6()(x + t(3)) / t(6)


@ACTIVATIONS.register
@dataclass(frozen=True)
class HardSwish(Activation):
    """f(x) = x * relu6(x + 3) / 6 (MobileNet v3; torch ``F.hardswish``, ``jax.nn.hard_swish``)."""

    name = "hard_swish"
    recommended = "he_normal"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x * HardSigmoid()(x)


@ACTIVATIONS.register
@dataclass(frozen=True)
class LeakyRelu(Activation):
    """f(x) = x if x >= 0 else alpha * x; gain sqrt(2 / (1 + alpha^2))."""

    alpha: float = 0.01
    name = "leaky_relu"
    recommended = "he_normal"

    def __post_init__(self) -> None:
        check_number("alpha", self.alpha)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.where(x >= 0, x, x * x.dtype.type(self.alpha))

    def gain(self) -> float:
        return calculate_gain("leaky_relu", self.alpha)


@ACTIVATIONS.register
@dataclass(frozen=True)
class Elu(Activation):
    """f(x) = x if x > 0 else alpha * (exp(x) - 1)."""

    alpha: float = 1.0
    name = "elu"
    recommended = "he_normal"

    def __post_init__(self) -> None:
        check_number("alpha", self.alpha)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.where(x > 0, x, x.dtype.type(self.alpha) * np.expm1(np.minimum(x, 0)))


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


@ACTIVATIONS.register
@dataclass(frozen=True)
class Selu(Activation):
    """f(x) = scale * (x if x > 0 else alpha * (exp(x) - 1)), Klambauer et al. constants."""

    name = "selu"
    recommended = "lecun_normal"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        t = x.dtype.type
        neg = t(SELU_ALPHA) * np.expm1(np.minimum(x, 0))
        return t(SELU_SCALE) * np.where(x > 0, x, neg)


@ACTIVATIONS.register
@dataclass(frozen=True)
class Gelu(Activation):
    """Exact: f(x) = x * (1 + erf(x / sqrt 2)) / 2.

    ``approximate: tanh``: f(x) = x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))).
    """

    approximate: str = "none"
    name = "gelu"
    choices = {"approximate": ("none", "tanh")}
    recommended = "he_normal"

    def __post_init__(self) -> None:
        if self.approximate not in ("none", "tanh"):
            raise InitializerError(f"gelu approximate must be 'none' or 'tanh', got {self.approximate!r}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        if self.approximate == "tanh":
            inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
            return (0.5 * x * (1.0 + np.tanh(inner))).astype(x.dtype)
        erf = np.vectorize(math.erf, otypes=[np.float64])
        return (0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))).astype(x.dtype)


@ACTIVATIONS.register
@dataclass(frozen=True)
class Silu(Activation):
    """f(x) = x * sigmoid(x) (swish)."""

    name = "silu"
    aliases = ("swish",)
    recommended = "he_normal"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x * Sigmoid()(x)


@ACTIVATIONS.register
@dataclass(frozen=True)
class Softplus(Activation):
    """f(x) = log(1 + exp(x)), as max(x, 0) + log1p(exp(-|x|))."""

    name = "softplus"
    recommended = "he_normal"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


@ACTIVATIONS.register
@dataclass(frozen=True)
class Softsign(Activation):
    """f(x) = x / (1 + |x|)."""

    name = "softsign"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        return x / (1 + np.abs(x))


@ACTIVATIONS.register
@dataclass(frozen=True)
class Softmax(Activation):
    """f(x)_i = exp(x_i - max x) / sum_j exp(x_j - max x) over the last axis."""

    name = "softmax"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        e = np.exp(x - np.max(x, axis=-1, keepdims=True, initial=-np.inf))  # initial: an empty axis is empty
        return e / np.sum(e, axis=-1, keepdims=True)

    def gain(self) -> float:
        return calculate_gain("softmax")


@ACTIVATIONS.register
@dataclass(frozen=True)
class LogSoftmax(Activation):
    """f(x)_i = (x_i - max x) - log sum_j exp(x_j - max x) over the last axis."""

    name = "log_softmax"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        shifted = x - np.max(x, axis=-1, keepdims=True, initial=-np.inf)
        return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def get_activation(spec: str | dict[str, Any] | Activation | None) -> Activation:
    """An activation from a name, a config mapping, an instance or None (linear)."""
    if spec is None:
        return Linear()
    if isinstance(spec, Activation):
        return spec
    return ACTIVATIONS.build(spec)
