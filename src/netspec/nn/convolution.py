"""Convolutions: ``conv1d``, ``conv2d``, ``conv3d`` (with ``groups`` and ``dilation``) and the
transposed ``conv_transpose1d``, ``conv_transpose2d``.

Channels-last inputs ``(*spatial, channels)``; kernels input-major ``(*kernel, in / groups, filters)``
for both kinds (the output channels of group g are ``filters`` slice g). PyTorch stores a
convolution kernel as ``(filters, in / groups, *kernel)`` and a transposed one as
``(in, filters / groups, *kernel)``; Keras stores a transposed kernel as ``(*kernel, filters, in)``.

Fans (``receptive = prod(kernel)``):

* convolution: fan_in = ``in / groups * receptive``, fan_out = ``filters * receptive`` (Keras' and
  PyTorch's rule, read off their kernels). With groups, each input channel only reaches the
  ``filters / groups`` outputs of its group; ``group_fan_out: per_group`` divides fan_out by
  ``groups`` (timm's EfficientNet/MobileNet init, ``fan_out //= groups``);
* transposed convolution: netspec's default (``transpose_fans: netspec``) applies the input-major
  rule to the input-major kernel, fan_in = ``in / groups * receptive``, fan_out =
  ``filters * receptive``. PyTorch and Keras read fans off their own storage, which puts the
  *output* channels first, so their fan_in is ``filters / groups * receptive`` and their fan_out
  ``in * receptive``: ``transpose_fans: torch`` gives exactly those numbers (also Keras' for
  groups = 1).

Padding: ``valid`` (none), ``same`` (TensorFlow's rule) or explicit, PyTorch's ``padding``: n on both
sides of every spatial axis, or per axis n or ``[before, after]``. Output lengths per spatial axis
(effective kernel ``k' = dilation * (k - 1) + 1``): convolution ``(n + before + after - k') // stride + 1``
(``same``: ``ceil(n / stride)``, the total padding split with the odd one after, so a strided ``same``
layer may pad (0, 1) where PyTorch's ``padding=1`` pads (1, 1)); transposed ``(n - 1) * stride + k' +
output_padding - before - after``, explicit padding cropping the full output as PyTorch's
``ConvTranspose`` (``same``: ``n * stride``, TensorFlow's: the gradient of a ``same`` convolution,
cropping ``(k' - stride) // 2`` at the start).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from netspec.init.fans import Fans, compute_fans
from netspec.nn.layers import (
    PADDING_TEXT,
    POS_INT,
    SIZE_OR_LIST,
    WEIGHT_OPTIONS,
    WINDOW_PADDING,
    Dims,
    ParamSpec,
    Shape,
    ShapeError,
    WeightedLayer,
    _opt,
    _pad,
    _tuple,
    concrete,
    explicit_pads,
    known,
    open_axes,
    positions,
    register_layer,
    window_outputs,
    window_pads,
)

if TYPE_CHECKING:
    import numpy as np

NON_NEGATIVE = {"type": "integer", "minimum": 0, "maximum": 1 << 20}
NON_NEGATIVE_OR_LIST = {"oneOf": [NON_NEGATIVE, {"type": "array", "items": NON_NEGATIVE, "minItems": 1, "maxItems": 3}]}
SPATIAL = {1: "(length, channels)", 2: "(height, width, channels)", 3: "(depth, height, width, channels)"}


class Conv(WeightedLayer):
    """A convolution of rank ``rank`` (see the module doc)."""

    rank: ClassVar[int] = 1
    OPTIONS = {
        "filters": _opt(POS_INT, "Number of output channels."),
        "kernel": _opt(SIZE_OR_LIST, "Kernel size: one integer or one per spatial axis."),
        "stride": _opt(SIZE_OR_LIST, "Stride: one integer or one per spatial axis (default 1)."),
        "padding": _opt(WINDOW_PADDING, PADDING_TEXT),
        "dilation": _opt(SIZE_OR_LIST, "Spacing between kernel taps: one integer or one per axis (default 1)."),
        "groups": _opt(POS_INT, "Channel groups: in and filters split into this many independent convolutions; "
                       "groups = input channels is a depthwise convolution (default 1)."),
        "group_fan_out": _opt({"enum": ["all", "per_group"]}, "fan_out from all filters (Keras, PyTorch; default) "
                              "or from one group's filters (timm)."),
        **WEIGHT_OPTIONS,
    }  # fmt: skip
    REQUIRED = ("filters", "kernel")

    def geometry(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], Any]:
        """(kernel, stride, dilation, padding as written), one value per spatial axis."""
        kernel = _tuple(self.options["kernel"], self.rank, "kernel")
        stride = _tuple(self.options.get("stride", 1), self.rank, "stride")
        dilation = _tuple(self.options.get("dilation", 1), self.rank, "dilation")
        return kernel, stride, dilation, self.options.get("padding", "valid")

    def effective_kernel(self) -> tuple[int, ...]:
        kernel, _, dilation, _ = self.geometry()
        return tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))

    @property
    def groups(self) -> int:
        return int(self.options.get("groups", 1))

    def check_input(self, shape: Shape) -> int:
        """The input channels, checked against the groups (spatial sizes may be known only at run time)."""
        if len(shape) != self.rank + 1:
            raise ShapeError(f"{self.type} needs input {SPATIAL[self.rank]}, got {list(shape)}")
        channels = known(shape[-1], f"{self.type}'s input channels (the last axis)")
        groups, filters = self.groups, self.options["filters"]
        if channels % groups or filters % groups:
            raise ShapeError(f"groups {groups} must divide the input channels ({channels}) and filters ({filters})")
        return channels

    def kernel_shape(self, shape: Shape) -> Dims:
        return (*self.geometry()[0], self.check_input(shape) // self.groups, self.options["filters"])

    def params(self, shape: Shape) -> list[ParamSpec]:
        kernel = self.kernel_shape(shape)
        fans, how = self.fans(kernel)
        specs = [ParamSpec("weights", kernel, self.initializers["weights"], fans, "", how)]
        if self.use_bias:
            specs.append(ParamSpec("bias", (kernel[-1],), self.initializers["bias"], fans, "", how))
        return specs

    def fans(self, kernel: Dims) -> tuple[Fans, str]:
        """The kernel's fans and, when not the plain input-major rule, how they were computed."""
        fans = compute_fans(kernel)
        if self.options.get("group_fan_out", "all") == "per_group" and self.groups > 1:
            per_group = Fans(fans.fan_in, fans.fan_out // self.groups, fans.receptive_field)
            return per_group, f"group_fan_out per_group: fan_out = filters / groups ({self.groups}) * receptive (timm)"
        if self.groups > 1:
            return fans, "fan_out from all filters (Keras, PyTorch), though each input reaches one group's"
        return fans, ""

    def pads(self, sizes: Sequence[int]) -> list[tuple[int, int]]:
        """(before, after) zeros per spatial axis for inputs of ``sizes``."""
        _, stride, _, padding = self.geometry()
        return window_pads(padding, sizes, self.effective_kernel(), stride)

    def output_shape(self, shape: Shape) -> Shape:
        self.check_input(shape)
        _, stride, _, _ = self.geometry()

        def spatial(sizes: Dims) -> tuple[int, ...]:
            return window_outputs(sizes, self.effective_kernel(), stride, self.pads(sizes), "(dilated) kernel")

        return (*open_axes(shape[:-1], spatial), self.options["filters"])

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        """Sum over kernel taps m of x[s * o + d * m] @ W[m], group by group (x padded first)."""
        import numpy as np

        kernel, stride, dilation, _ = self.geometry()
        out = concrete(self.output_shape(x.shape[1:]))[:-1]
        x = _pad(x, self.pads(x.shape[1:-1]))
        w = params["weights"]
        y = np.zeros((x.shape[0], *out, w.shape[-1]), dtype=x.dtype)
        for tap in np.ndindex(*kernel):
            taps = tuple(slice(d * m, d * m + s * (o - 1) + 1, s) for m, d, s, o in zip(tap, dilation, stride, out,
                                                                                    strict=True))  # fmt: skip
            y += _grouped(x[(slice(None), *taps)], w[tap], self.groups)
        if "bias" in params:
            y = y + params["bias"]
        return self.activation(y)


def _grouped(x: np.ndarray, w: np.ndarray, groups: int) -> np.ndarray:
    """x (..., in) times a kernel tap w (in / groups, filters), each group's channels with its own filters."""
    import numpy as np

    if groups == 1:
        return x @ w
    cin, filters = w.shape
    xs = x.reshape(*x.shape[:-1], groups, cin)
    ws = w.reshape(cin, groups, filters // groups)
    return np.einsum("...gc,cgf->...gf", xs, ws).reshape(*x.shape[:-1], filters)


class ConvTranspose(Conv):
    """A transposed convolution (the gradient of a convolution with respect to its input)."""

    OPTIONS = {
        **{k: v for k, v in Conv.OPTIONS.items() if k != "group_fan_out"},
        "output_padding": _opt(NON_NEGATIVE_OR_LIST,
                               "Extra output length at the end of each axis, below the stride (padding 'valid' only; "
                               "default 0), as PyTorch's output_padding."),
        "transpose_fans": _opt({"enum": ["netspec", "torch"]}, "netspec (default): fans of the input-major kernel, "
                               "fan_in from the input channels; torch: PyTorch's and Keras' numbers, fan_in from "
                               "the output channels."),
    }  # fmt: skip

    def output_padding(self) -> tuple[int, ...]:
        value = self.options.get("output_padding", 0)
        if any(_tuple(value, self.rank, "output_padding")) and self.options.get("padding", "valid") == "same":
            raise ShapeError("output_padding needs padding 'valid' or explicit ('same' gives input length * stride)")
        padding = _tuple(value, self.rank, "output_padding")
        _, stride, dilation, _ = self.geometry()
        for p, s, d in zip(padding, stride, dilation, strict=True):
            if p >= max(s, d):
                raise ShapeError(f"output_padding {p} must be smaller than the stride ({s}) or the dilation ({d})")
        return padding

    def fans(self, kernel: Dims) -> tuple[Fans, str]:
        fans = compute_fans(kernel)
        if self.options.get("transpose_fans", "netspec") == "torch":
            receptive, cin, filters = fans.receptive_field, kernel[-2] * self.groups, kernel[-1]
            torch_fans = Fans(filters // self.groups * receptive, cin * receptive, receptive)
            return torch_fans, ("transpose_fans torch: PyTorch's (in, filters / groups, *kernel) storage, fan_in from "
                                "the output channels")  # fmt: skip
        return fans, "transpose_fans netspec: the input-major kernel (*kernel, in / groups, filters)"

    def crops(self, sizes: Sequence[int]) -> list[tuple[int, int]]:
        """(before, after) cut from each spatial axis of the full output ``(n - 1) * stride + k'`` extended by
        ``output_padding`` zeros: explicit padding as PyTorch's ``ConvTranspose``; 'same' TensorFlow's
        ``(k' - stride) // 2`` at the start and the output ``n * stride`` (an ``after`` below zero extends)."""
        _, stride, _, padding = self.geometry()
        if padding == "valid":
            return [(0, 0)] * len(sizes)
        if padding == "same":
            out = []
            for n, k, s in zip(sizes, self.effective_kernel(), stride, strict=True):
                before = max(k - s, 0) // 2
                out.append((before, (n - 1) * s + k - n * s - before))
            return out
        return explicit_pads(padding, len(sizes))

    def output_shape(self, shape: Shape) -> Shape:
        self.check_input(shape)
        _, stride, _, _ = self.geometry()
        extra = self.output_padding()

        def spatial(sizes: Dims) -> list[int]:
            positions(sizes, f"{self.type}'s input")
            out = []
            for n, k, s, p, (before, after) in zip(sizes, self.effective_kernel(), stride, extra, self.crops(sizes),
                                                   strict=True):  # fmt: skip
                size = (n - 1) * s + k + p - before - after
                if size < 1:
                    raise ShapeError(f"padding ({before}, {after}) crops the whole output ({(n - 1) * s + k + p})")
                out.append(size)
            return out

        return (*open_axes(shape[:-1], spatial), self.options["filters"])

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        """Scatter: y[s * i + d * m] += x[i] @ W[m] over every tap m, then crop (same) or extend (output_padding)."""
        import numpy as np

        kernel, stride, dilation, _ = self.geometry()
        n = x.shape[1:-1]
        w = params["weights"]
        full = [(a - 1) * s + k for a, s, k in zip(n, stride, self.effective_kernel(), strict=True)]
        y = np.zeros((x.shape[0], *full, w.shape[-1]), dtype=x.dtype)
        for tap in np.ndindex(*kernel):
            taps = tuple(slice(d * m, d * m + s * (a - 1) + 1, s) for m, d, s, a in zip(tap, dilation, stride, n,
                                                                                    strict=True))  # fmt: skip
            y[(slice(None), *taps)] += _grouped(x, w[tap], self.groups)
        out = concrete(self.output_shape(x.shape[1:]))[:-1]
        starts = [before for before, _ in self.crops(n)]
        y = y[(slice(None), *(slice(b, b + o) for b, o in zip(starts, out, strict=True)))]
        short = [o - size for o, size in zip(out, y.shape[1:-1], strict=True)]
        if any(short):
            y = _pad(y, [(0, m) for m in short])
        if "bias" in params:
            y = y + params["bias"]
        return self.activation(y)


def _conv(name: str, rank: int, base: type[Conv]) -> type[Conv]:
    what = "transposed convolution" if base is ConvTranspose else "convolution"
    layout = SPATIAL[rank]
    kernel = "(" + ", ".join(["k"] * rank) + ", in/groups, filters)"
    return register_layer(type(name.title().replace("_", ""), (base,), {
        "type": name, "rank": rank, "description": f"{rank}-D {what} over {layout}; kernel {kernel}.",
    }))  # type: ignore[return-value]  # fmt: skip


CONVOLUTIONS = [_conv(f"conv{r}d", r, Conv) for r in (1, 2, 3)] + [
    _conv(f"conv_transpose{r}d", r, ConvTranspose) for r in (1, 2)
]
