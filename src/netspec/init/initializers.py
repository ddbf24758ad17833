"""Initializers: one variance-scaling core, thin named presets, and the rest.

Every initializer is a frozen dataclass whose fields are its parameters.
``get_config()`` returns ``{"name": ..., **fields}`` and ``from_config`` takes it
back (Keras style). ``distribution(shape, fans)`` declares what the values
follow; ``__call__(shape, stream, dtype, fans)`` draws them from a
:mod:`netspec.init.streams` stream. Shapes are input-major (see :mod:`netspec.init.fans`).

Where frameworks disagree, each variant has its own name:

==========================  ===============================================
``glorot_uniform``          U(±gain·sqrt(6 / (fan_in + fan_out)))  (Keras, torch ``xavier_uniform_``)
``glorot_normal``           N(0, gain·sqrt(2 / (fan_in + fan_out))) untruncated (torch, seed 001);
                            ``truncated: true`` gives Keras' truncated, variance-corrected version
``he_uniform``              U(±sqrt(6 / fan_in))
``he_normal``               N(0, sqrt(2 / fan_in)); ``truncated: true`` as Keras
``lecun_uniform``           U(±sqrt(3 / fan_in))
``lecun_normal``            N(0, sqrt(1 / fan_in)); ``truncated: true`` as Keras
``xavier_simple``           U(±1 / sqrt(fan_in)): seed 002's "xavier", PyTorch's nn.Linear default
``caffe_xavier``            U(±sqrt(3 / n)), n by ``variance_norm`` (Caffe's ``xavier`` filler)
``caffe_msra``              N(0, sqrt(2 / n)), n by ``variance_norm`` (Caffe's ``msra`` filler)
``torch_kaiming_*``         PyTorch ``kaiming_*_(a, mode, nonlinearity)``: std = gain / sqrt(fan)
``truncated_normal``        bounds in std units (Keras, JAX); ``truncated_normal_abs``: absolute (PyTorch)
==========================  ===============================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from netspec.errors import InitializerError
from netspec.init.distributions import (
    Constant,
    DiracKernel,
    Distribution,
    IdentityMatrix,
    Normal,
    OrthogonalMatrix,
    TruncatedNormal,
    Uniform,
    check_truncation,
    truncated_moments,
)
from netspec.init.fans import MODES, Fans, axis_fans, compute_fans
from netspec.nn.activations import GAIN_NAMES, calculate_gain
from netspec.registry import Configurable, Registry, check_choice, check_number

if TYPE_CHECKING:
    import numpy as np

    from netspec.init.streams import Stream

INITIALIZERS: Registry[type[Initializer]] = Registry("initializer")

VS_DISTRIBUTIONS = ("uniform", "normal", "truncated_normal")
VS_TRUNCATION = (-2.0, 2.0)
"""Truncation bounds (std units) of the variance-scaling ``truncated_normal``."""


def sample(dist: Distribution, shape: tuple[int, ...], stream: Stream, dtype: np.dtype) -> np.ndarray:
    """Draw an array of ``shape`` that follows a declared distribution (each distribution samples itself)."""
    return dist.sample(shape, stream, dtype)


@dataclass(frozen=True)
class Initializer(Configurable):
    """Base class. Subclasses set ``name`` and implement :meth:`distribution`."""

    def distribution(self, shape: tuple[int, ...], fans: Fans) -> Distribution:
        raise NotImplementedError

    def effective_fans(self, shape: tuple[int, ...], fans: Fans) -> Fans:
        """The fans the initializer actually uses for ``shape`` (the layer's, unless it states its own axes)."""
        return fans

    def declared(self, shape: tuple[int, ...], fans: Fans | None = None) -> Distribution:
        """The declared distribution, with fans computed from ``shape`` if not given."""
        shape = tuple(shape)
        return self.distribution(shape, fans or compute_fans(shape))

    def __call__(
        self,
        shape: tuple[int, ...],
        stream: Stream,
        dtype: Any = "float32",
        fans: Fans | None = None,
    ) -> np.ndarray:
        shape = tuple(shape)
        return sample(self.declared(shape, fans), shape, stream, dtype)


# ------------------------------------------------------------------ constants


@INITIALIZERS.register
@dataclass(frozen=True)
class Zeros(Initializer):
    """w = 0."""

    name = "zeros"

    def distribution(self, shape: tuple[int, ...], fans: Fans) -> Distribution:
        return Constant(0.0)


@INITIALIZERS.register
@dataclass(frozen=True)
class Ones(Initializer):
    """w = 1."""

    name = "ones"

    def distribution(self, shape: tuple[int, ...], fans: Fans) -> Distribution:
        return Constant(1.0)


@INITIALIZERS.register
@dataclass(frozen=True)
class ConstantInit(Initializer):
    """w = value."""

    value: float = 0.0
    name = "constant"

    def __post_init__(self) -> None:
        check_number("value", self.value)

    def distribution(self, shape: tuple[int, ...], fans: Fans) -> Distribution:
        return Constant(float(self.value))


# ------------------------------------------------------------------ fixed-parameter random


@INITIALIZERS.register
@dataclass(frozen=True)
class RandomUniform(Initializer):
    """w ~ U(low, high); defaults ±0.05 as Keras."""

    low: float = -0.05
    high: float = 0.05
    name = "uniform"
    aliases = ("random_uniform",)

    def __post_init__(self) -> None:
        check_number("low", self.low)
        check_number("high", self.high)
        if not self.low < self.high:
            raise InitializerError(f"uniform needs low < high, got low={self.low!r}, high={self.high!r}")

    def distribution(self, shape: tuple[int, ...], fans: Fans) -> Distribution:
        return Uniform(float(self.low), float(self.high))


@INITIALIZERS.register
@dataclass(frozen=True)
class RandomNormal(Initializer):
    """w ~ N(mean, std^2), untruncated; defaults mean 0, std 0.05 as Keras."""

    mean: float = 0.0
    std: float = 0.05
    name = "normal"
    aliases = ("random_normal",)

    def __post_init__(self) -> None:
        check_number("mean", self.mean)
        check_number("std", self.std, positive=True)

    def distribution(self, shape: tuple[int, ...], fans: Fans) -> Distribution:
        return Normal(float(self.mean), float(self.std))


@INITIALIZERS.register
@dataclass(frozen=True)
class TruncatedNormalInit(Initializer):
    """w ~ N(mean, std^2) truncated to [mean + lower*std, mean + upper*std].

    Bounds in std units, as Keras ``TruncatedNormal`` (lower = -2, upper = 2)
    and JAX ``truncated_normal``. ``std`` is the parent's std: no variance
    correction, so the std after truncation is ``std * sqrt(var_trunc)``
    (0.8796 std for ±2).
    """

    mean: float = 0.0
    std: float = 0.05
    lower: float = -2.0
    upper: float = 2.0
    name = "truncated_normal"

    def __post_init__(self) -> None:
        check_number("mean", self.mean)
        check_number("std", self.std, positive=True)
        check_number("lower", self.lower)
        check_number("upper", self.upper)
        check_truncation(self.lower, self.upper)

    def distribution(self, shape: tuple[int, ...], fans: Fans) -> Distribution:
        return TruncatedNormal(float(self.mean), float(self.std), float(self.lower), float(self.upper))


@INITIALIZERS.register
@dataclass(frozen=True)
class TruncatedNormalAbs(Initializer):
    """w ~ N(mean, std^2) truncated to the ABSOLUTE interval [a, b], as PyTorch ``trunc_normal_``.

    With PyTorch's defaults (std 1, a = -2, b = 2) it equals ``truncated_normal``
    with std 1; with ``std: 0.02`` the bounds ±2 are 100 std away and cut nothing.
    """

    mean: float = 0.0
    std: float = 1.0
    a: float = -2.0
    b: float = 2.0
    name = "truncated_normal_abs"
    aliases = ("torch_trunc_normal",)

    def __post_init__(self) -> None:
        for key in ("mean", "a", "b"):
            check_number(key, getattr(self, key))
        check_number("std", self.std, positive=True)
        if not self.a < self.b:
            raise InitializerError(f"truncated_normal_abs needs a < b, got a={self.a!r}, b={self.b!r}")
        check_truncation(*self._std_units())

    def _std_units(self) -> tuple[float, float]:
        return (self.a - self.mean) / self.std, (self.b - self.mean) / self.std

    def distribution(self, shape: tuple[int, ...], fans: Fans) -> Distribution:
        lower, upper = self._std_units()
        return TruncatedNormal(float(self.mean), float(self.std), lower, upper)


# ------------------------------------------------------------------ variance scaling core


def _check_axes(name: str, value: Any, allow_none: bool) -> None:
    axes = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    ok = (allow_none and value is None) or (
        isinstance(axes, tuple) and all(isinstance(a, int) and not isinstance(a, bool) for a in axes)
    )
    if not ok:
        raise InitializerError(f"{name} must be an integer axis or a list of them, got {value!r}")


@INITIALIZERS.register
@dataclass(frozen=True)
class VarianceScaling(Initializer):
    """Target variance ``scale / n``, n = fans.for_mode(mode).

    * ``uniform``: U(±sqrt(3 * scale / n));
    * ``normal``: N(0, sqrt(scale / n)), untruncated;
    * ``truncated_normal``: N(0, s) truncated to ±2 s with
      ``s = sqrt(scale / n) / sqrt(var_trunc(-2, 2))`` so that the std AFTER
      truncation is sqrt(scale / n) (Keras, JAX; the divisor 0.87962566 is
      computed from the bounds, not hard-coded).

    The default distribution is ``truncated_normal`` as in Keras and JAX; note
    that Keras' ``distribution="normal"`` means truncated, netspec's does not.

    Fans: by default the layer's (its kernel's, in netspec's layout). ``in_axis``,
    ``out_axis`` and ``batch_axis`` (each an axis or a list of axes, as JAX's
    ``variance_scaling``) state them for any layout instead:
    ``fan_in = prod(shape[in_axis]) * receptive`` and ``fan_out =
    prod(shape[out_axis]) * receptive``, ``receptive`` the product of the other
    non-batch axes (:func:`netspec.init.fans.axis_fans`).
    """

    scale: float = 1.0
    mode: str = "fan_in"
    distribution_name: str = "truncated_normal"
    in_axis: int | tuple[int, ...] | None = None
    out_axis: int | tuple[int, ...] | None = None
    batch_axis: int | tuple[int, ...] = ()
    name = "variance_scaling"
    choices = {"mode": MODES, "distribution": VS_DISTRIBUTIONS}

    def __post_init__(self) -> None:
        check_number("scale", self.scale, positive=True)
        check_choice("mode", self.mode, MODES)
        check_choice("distribution", self.distribution_name, VS_DISTRIBUTIONS)
        for name in ("in_axis", "out_axis", "batch_axis"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))  # configs from YAML give lists
            _check_axes(name, getattr(self, name), allow_none=name != "batch_axis")
        if isinstance(self.batch_axis, int):
            object.__setattr__(self, "batch_axis", (self.batch_axis,))

    def get_config(self) -> dict[str, Any]:
        config = {"name": self.name, "scale": self.scale, "mode": self.mode, "distribution": self.distribution_name}
        for name in ("in_axis", "out_axis", "batch_axis"):
            value = getattr(self, name)
            if value not in (None, ()):
                config[name] = list(value) if isinstance(value, tuple) else value
        return config

    @property
    def explicit_axes(self) -> bool:
        return self.in_axis is not None or self.out_axis is not None or bool(self.batch_axis)

    def effective_fans(self, shape: tuple[int, ...], fans: Fans) -> Fans:
        """The layer's fans, or those of the explicit axes."""
        if not self.explicit_axes:
            return fans
        in_axis = -2 if self.in_axis is None else self.in_axis
        out_axis = -1 if self.out_axis is None else self.out_axis
        return axis_fans(shape, in_axis, out_axis, self.batch_axis)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Initializer:
        params = {k: v for k, v in config.items() if k != "name"}
        if "distribution" in params:
            params["distribution_name"] = params.pop("distribution")
        return cls(**params)

    @classmethod
    def parameters(cls) -> tuple[str, ...]:
        return ("scale", "mode", "distribution", "in_axis", "out_axis", "batch_axis")

    @classmethod
    def parameter_defaults(cls) -> dict[str, Any]:
        return {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal", "in_axis": None,
                "out_axis": None, "batch_axis": []}  # fmt: skip

    def target_std(self, fans: Fans) -> float:
        """sqrt(scale / n)."""
        return math.sqrt(self.scale / fans.for_mode(self.mode))

    def distribution(self, shape: tuple[int, ...], fans: Fans) -> Distribution:
        std = self.target_std(self.effective_fans(shape, fans))
        if self.distribution_name == "uniform":
            limit = math.sqrt(3.0) * std
            return Uniform(-limit, limit)
        if self.distribution_name == "normal":
            return Normal(0.0, std)
        a, b = VS_TRUNCATION
        return TruncatedNormal(0.0, std / math.sqrt(truncated_moments(a, b)[2]), a, b)


@dataclass(frozen=True)
class Preset(Initializer):
    """A named special case of :class:`VarianceScaling`."""

    def core(self) -> VarianceScaling:
        raise NotImplementedError

    def distribution(self, shape: tuple[int, ...], fans: Fans) -> Distribution:
        return self.core().distribution(shape, fans)


def _normal_kind(truncated: bool) -> str:
    if not isinstance(truncated, bool):
        raise InitializerError(f"truncated must be true or false, got {truncated!r}")
    return "truncated_normal" if truncated else "normal"


@INITIALIZERS.register
@dataclass(frozen=True)
class GlorotUniform(Preset):
    """U(±gain * sqrt(6 / (fan_in + fan_out))) = VS(gain^2, fan_avg, uniform).

    Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural networks", AISTATS 2010.
    """

    gain: float = 1.0
    name = "glorot_uniform"
    aliases = ("xavier_uniform",)

    def __post_init__(self) -> None:
        check_number("gain", self.gain, positive=True)

    def core(self) -> VarianceScaling:
        return VarianceScaling(self.gain**2, "fan_avg", "uniform")


@INITIALIZERS.register
@dataclass(frozen=True)
class GlorotNormal(Preset):
    """N(0, gain^2 * 2 / (fan_in + fan_out)) = VS(gain^2, fan_avg, normal); truncated: Keras.

    Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural networks", AISTATS 2010.
    """

    gain: float = 1.0
    truncated: bool = False
    name = "glorot_normal"
    aliases = ("xavier_normal",)

    def __post_init__(self) -> None:
        check_number("gain", self.gain, positive=True)
        _normal_kind(self.truncated)

    def core(self) -> VarianceScaling:
        return VarianceScaling(self.gain**2, "fan_avg", _normal_kind(self.truncated))


@INITIALIZERS.register
@dataclass(frozen=True)
class HeUniform(Preset):
    """U(±sqrt(6 / fan_in)) = VS(2, fan_in, uniform).

    He et al., "Delving Deep into Rectifiers: Surpassing Human-Level Performance on ImageNet
    Classification", ICCV 2015.
    """

    name = "he_uniform"
    aliases = ("kaiming_uniform",)

    def core(self) -> VarianceScaling:
        return VarianceScaling(2.0, "fan_in", "uniform")


@INITIALIZERS.register
@dataclass(frozen=True)
class HeNormal(Preset):
    """N(0, 2 / fan_in) = VS(2, fan_in, normal); truncated: Keras.

    He et al., "Delving Deep into Rectifiers: Surpassing Human-Level Performance on ImageNet
    Classification", ICCV 2015.
    """

    truncated: bool = False
    name = "he_normal"
    aliases = ("kaiming_normal",)

    def __post_init__(self) -> None:
        _normal_kind(self.truncated)

    def core(self) -> VarianceScaling:
        return VarianceScaling(2.0, "fan_in", _normal_kind(self.truncated))


@INITIALIZERS.register
@dataclass(frozen=True)
class LecunUniform(Preset):
    """U(±sqrt(3 / fan_in)) = VS(1, fan_in, uniform).

    LeCun et al., "Efficient BackProp", 1998; Klambauer et al., "Self-Normalizing Neural Networks",
    NeurIPS 2017 (with SELU).
    """

    name = "lecun_uniform"

    def core(self) -> VarianceScaling:
        return VarianceScaling(1.0, "fan_in", "uniform")


@INITIALIZERS.register
@dataclass(frozen=True)
class LecunNormal(Preset):
    """N(0, 1 / fan_in) = VS(1, fan_in, normal); truncated: Keras.

    LeCun et al., "Efficient BackProp", 1998; Klambauer et al., "Self-Normalizing Neural Networks",
    NeurIPS 2017 (with SELU).
    """

    truncated: bool = False
    name = "lecun_normal"

    def __post_init__(self) -> None:
        _normal_kind(self.truncated)

    def core(self) -> VarianceScaling:
        return VarianceScaling(1.0, "fan_in", _normal_kind(self.truncated))


@INITIALIZERS.register
@dataclass(frozen=True)
class XavierSimple(Preset):
    """U(±1 / sqrt(fan_in)) = VS(1/3, fan_in, uniform).

    Seed 002's "xavier" and PyTorch's ``nn.Linear``/``ConvNd`` weight default
    (``kaiming_uniform_(a=sqrt(5))``).
    """

    name = "xavier_simple"
    aliases = ("torch_linear_default",)

    def core(self) -> VarianceScaling:
        return VarianceScaling(1.0 / 3.0, "fan_in", "uniform")


CAFFE_NORMS = {"fan_in": "fan_in", "fan_out": "fan_out", "average": "fan_avg"}


@INITIALIZERS.register
@dataclass(frozen=True)
class CaffeXavier(Preset):
    """Caffe's ``xavier`` filler: U(±sqrt(3 / n)), n = fan_in | fan_out | average.

    With the default ``fan_in`` it is LeCun uniform, not Glorot (caffe#1537).
    """

    variance_norm: str = "fan_in"
    name = "caffe_xavier"
    choices = {"variance_norm": tuple(CAFFE_NORMS)}

    def __post_init__(self) -> None:
        check_choice("variance_norm", self.variance_norm, tuple(CAFFE_NORMS))

    def core(self) -> VarianceScaling:
        return VarianceScaling(1.0, CAFFE_NORMS[self.variance_norm], "uniform")


@INITIALIZERS.register
@dataclass(frozen=True)
class CaffeMsra(Preset):
    """Caffe's ``msra`` filler: N(0, 2 / n), n = fan_in | fan_out | average."""

    variance_norm: str = "fan_in"
    name = "caffe_msra"
    choices = {"variance_norm": tuple(CAFFE_NORMS)}

    def __post_init__(self) -> None:
        check_choice("variance_norm", self.variance_norm, tuple(CAFFE_NORMS))

    def core(self) -> VarianceScaling:
        return VarianceScaling(2.0, CAFFE_NORMS[self.variance_norm], "normal")


TORCH_MODES = ("fan_in", "fan_out")


@dataclass(frozen=True)
class TorchKaiming(Preset):
    """PyTorch ``kaiming_*_``: std = gain / sqrt(fan), gain = calculate_gain(nonlinearity, a)."""

    a: float = 0.0
    mode: str = "fan_in"
    nonlinearity: str = "leaky_relu"
    family: ClassVar[str] = "normal"
    choices = {"mode": TORCH_MODES, "nonlinearity": GAIN_NAMES}

    def __post_init__(self) -> None:
        check_number("a", self.a)
        check_choice("mode", self.mode, TORCH_MODES)
        self.gain()

    def gain(self) -> float:
        return calculate_gain(self.nonlinearity, self.a)

    def core(self) -> VarianceScaling:
        return VarianceScaling(self.gain() ** 2, self.mode, self.family)


@INITIALIZERS.register
@dataclass(frozen=True)
class TorchKaimingUniform(TorchKaiming):
    """PyTorch ``kaiming_uniform_``: U(±gain * sqrt(3 / fan))."""

    name = "torch_kaiming_uniform"
    family = "uniform"


@INITIALIZERS.register
@dataclass(frozen=True)
class TorchKaimingNormal(TorchKaiming):
    """PyTorch ``kaiming_normal_``: N(0, gain^2 / fan), untruncated."""

    name = "torch_kaiming_normal"
    family = "normal"


# ------------------------------------------------------------------ structured


@INITIALIZERS.register
@dataclass(frozen=True)
class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain``.

    Saxe et al., "Exact solutions to the nonlinear dynamics of learning in deep linear neural networks",
    ICLR 2014.

    The tensor is viewed as ``rows = prod(shape[:-1])`` by ``cols = shape[-1]``.
    Draw Z ~ N(0, 1) of shape (max, min), QR-decompose, Q <- Q * sign(diag R)
    (so Q is Haar-distributed), transpose if rows < cols. Then
    ``Q^T Q = gain^2 I`` (rows >= cols) or ``Q Q^T = gain^2 I``; each entry has
    mean 0 and variance gain^2 / max(rows, cols).
    """

    gain: float = 1.0
    name = "orthogonal"

    def __post_init__(self) -> None:
        check_number("gain", self.gain, positive=True)

    @staticmethod
    def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int]:
        if len(shape) < 2:
            raise InitializerError(f"orthogonal needs a tensor of rank >= 2, got shape {shape}")
        return math.prod(shape[:-1]), shape[-1]

    def distribution(self, shape: tuple[int, ...], fans: Fans) -> Distribution:
        """The QR construction lives in :class:`~netspec.init.distributions.OrthogonalMatrix`."""
        rows, cols = self.matrix_shape(shape)
        return OrthogonalMatrix(float(self.gain), rows, cols)


@INITIALIZERS.register
@dataclass(frozen=True)
class Identity(Initializer):
    """w = gain * I for a 2-D tensor (rectangular: ones on the main diagonal)."""

    gain: float = 1.0
    name = "identity"
    aliases = ("eye",)

    def __post_init__(self) -> None:
        check_number("gain", self.gain)

    def distribution(self, shape: tuple[int, ...], fans: Fans) -> Distribution:
        if len(shape) != 2:
            raise InitializerError(f"identity needs a 2-D tensor, got shape {shape}")
        return IdentityMatrix(float(self.gain), shape[0], shape[1])


@INITIALIZERS.register
@dataclass(frozen=True)
class Dirac(Initializer):
    """Dirac delta for conv kernels ``(*kernel, in, out)``: w[center, i, i] = gain.

    For i < min(in, out); every other entry is 0, so a stride-1 'same'
    convolution passes its first min(in, out) channels through (PyTorch ``dirac_``).
    """

    gain: float = 1.0
    name = "dirac"
    aliases = ("delta",)

    def __post_init__(self) -> None:
        check_number("gain", self.gain)

    def distribution(self, shape: tuple[int, ...], fans: Fans) -> Distribution:
        if len(shape) < 3:
            raise InitializerError(f"dirac needs a conv kernel (*kernel, in, out), got shape {shape}")
        return DiracKernel(float(self.gain), tuple(shape))


def get_initializer(spec: str | dict[str, Any] | Initializer) -> Initializer:
    """An initializer from a name, a config mapping or an instance."""
    if isinstance(spec, Initializer):
        return spec
    return INITIALIZERS.build(spec)
