"""Convolutions with groups and dilation, conv3d and transposed convolutions: forward parity with
PyTorch (kernels transposed to torch's layouts), fans against torch's rule, located errors."""

import numpy as np
import pytest

import netspec
from netspec.errors import SpecError

# float32: sums of <= 3*3*3*4 products of O(1) terms, each rounded at 2^-24 relative
RTOL, ATOL = 1e-5, 1e-5


def _net(shape, layer):
    return netspec.loads(f"netspec: 1\nseed: 4\ninput: {list(shape)}\nlayers:\n  - {layer}\n", "conv.yaml")


def _torch_kernel(w: np.ndarray) -> np.ndarray:
    """netspec (*k, in/groups, filters) -> torch conv (filters, in/groups, *k)."""
    rank = w.ndim - 2
    return np.ascontiguousarray(np.transpose(w, (rank + 1, rank, *range(rank))))


def _torch_transposed_kernel(w: np.ndarray, groups: int) -> np.ndarray:
    """netspec (*k, in/groups, filters) -> torch transposed (in, filters/groups, *k)."""
    rank = w.ndim - 2
    cin, filters = w.shape[-2:]
    per = w.reshape(*w.shape[:-1], groups, filters // groups)  # (*k, cin, g, f/g)
    per = np.moveaxis(per, rank + 1, 0)  # (g, *k, cin, f/g)
    t = np.transpose(per, (0, rank + 1, rank + 2, *range(1, rank + 1)))  # (g, cin, f/g, *k)
    return np.ascontiguousarray(t.reshape(groups * cin, filters // groups, *w.shape[:rank]))


def _channels_first(x):
    return np.ascontiguousarray(np.moveaxis(x, -1, 1))


def _channels_last(y):
    return np.moveaxis(y, 1, -1)


CONVS = [  # (input shape, options, torch padding for 'same' with stride 1 or None)
    ((9, 4), "kernel: 3, filters: 6, groups: 2, dilation: 2", 0),
    ((9, 4), "kernel: 3, filters: 4, groups: 4, padding: same", "same"),  # depthwise
    ((8, 7, 6), "kernel: [3, 2], filters: 6, groups: 3, stride: [2, 1]", 0),
    ((8, 7, 4), "kernel: 3, filters: 8, dilation: [1, 2], padding: same", "same"),
    ((5, 6, 4, 2), "kernel: [2, 3, 2], filters: 4, stride: [1, 2, 1], groups: 2", 0),
]


@pytest.mark.parametrize("shape,options,padding", CONVS)
def test_convolution_matches_torch(shape, options, padding):
    torch = pytest.importorskip("torch")
    rank = len(shape) - 1
    net = _net(shape, f"{{type: conv{rank}d, name: c, {options}, bias: {{name: uniform, low: -0.5, high: 0.5}}}}")
    p = net.initialize()
    layer = net.layers[0].layer
    _, stride, dilation, _ = layer.geometry()
    conv = getattr(torch.nn.functional, f"conv{rank}d")
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    with torch.no_grad():
        y = conv(torch.from_numpy(_channels_first(x)), torch.from_numpy(_torch_kernel(p["c.weights"])),
                 torch.from_numpy(p["c.bias"]), stride=stride, padding=padding, dilation=dilation,
                 groups=layer.groups)  # fmt: skip
    theirs = _channels_last(y.numpy())
    assert theirs.shape[1:] == net.output_shape
    np.testing.assert_allclose(net.forward(x, p), theirs, rtol=RTOL, atol=ATOL)


TRANSPOSED = [  # (input shape, options, torch output_padding)
    ((5, 3), "kernel: 3, filters: 4, stride: 2", 0),
    ((5, 3), "kernel: 3, filters: 4, stride: 2, output_padding: 1", 1),
    ((5, 4), "kernel: 2, filters: 6, stride: 3, groups: 2, dilation: 2", 0),
    ((4, 3, 2), "kernel: [3, 2], filters: 3, stride: [2, 1]", 0),
    ((4, 3, 4), "kernel: 3, filters: 2, stride: 2, padding: same", None),
    ((4, 3, 2), "kernel: 4, filters: 2, stride: 3, padding: same", None),
]


@pytest.mark.parametrize("shape,options,output_padding", TRANSPOSED)
def test_transposed_convolution_matches_torch(shape, options, output_padding):
    torch = pytest.importorskip("torch")
    rank = len(shape) - 1
    net = _net(shape, f"{{type: conv_transpose{rank}d, name: t, {options}, bias: {{name: normal, std: 0.3}}}}")
    p = net.initialize()
    layer = net.layers[0].layer
    _, stride, dilation, padding = layer.geometry()
    conv = getattr(torch.nn.functional, f"conv_transpose{rank}d")
    x = np.random.default_rng(1).standard_normal((2, *shape)).astype(np.float32)
    with torch.no_grad():
        y = conv(torch.from_numpy(_channels_first(x)),
                 torch.from_numpy(_torch_transposed_kernel(p["t.weights"], layer.groups)),
                 torch.from_numpy(p["t.bias"]), stride=stride, output_padding=output_padding or 0,
                 dilation=dilation, groups=layer.groups).numpy()  # fmt: skip
    theirs = _channels_last(y)
    if padding == "same":  # TensorFlow's 'same': crop (k' - s) // 2 at the start, keep n * s
        starts = [max(k - s, 0) // 2 for k, s in zip(layer.effective_kernel(), stride, strict=True)]
        theirs = theirs[(slice(None), *(slice(b, b + n * s) for b, n, s in zip(starts, shape[:-1], stride,
                                                                               strict=True)))]  # fmt: skip
    assert theirs.shape[1:] == net.output_shape
    np.testing.assert_allclose(net.forward(x, p), theirs, rtol=RTOL, atol=ATOL)


def test_fans_against_torch_rule():
    torch = pytest.importorskip("torch")
    from torch.nn.init import _calculate_fan_in_and_fan_out as torch_fans

    def fans(shape, layer):
        return next((p.fans.fan_in, p.fans.fan_out) for p in _net(shape, layer).layers[0].params if p.name == "weights")

    # grouped conv: torch's (filters, in/groups, *k) gives the same numbers as netspec's default
    w = torch.empty(12, 2, 3, 3)  # filters 12, in 6, groups 3
    assert fans((8, 8, 6), "{type: conv2d, filters: 12, kernel: 3, groups: 3}") == torch_fans(w) == (18, 108)
    assert fans((8, 8, 6), "{type: conv2d, filters: 12, kernel: 3, groups: 3, group_fan_out: per_group}") == (18, 36)
    # depthwise: fan_in = receptive field, fan_out = multiplier * receptive with per_group
    assert fans((8, 8, 6), "{type: conv2d, filters: 6, kernel: 3, groups: 6, group_fan_out: per_group}") == (9, 9)
    # transposed: torch's (in, filters/groups, *k) reads fan_in off the output channels
    wt = torch.empty(4, 3, 3, 3)  # in 4, filters 6, groups 2
    layer = "{type: conv_transpose2d, filters: 6, kernel: 3, groups: 2%s}"
    assert fans((5, 5, 4), layer % ", transpose_fans: torch") == torch_fans(wt) == (27, 36)
    assert fans((5, 5, 4), layer % "") == (18, 54)  # netspec: (k*k*in/groups, k*k*filters)


@pytest.mark.parametrize("shape,layer,expected", [
    ((8, 6), "{type: conv1d, filters: 4, kernel: 3, groups: 4}", "groups 4 must divide"),
    ((4, 6), "{type: conv1d, filters: 4, kernel: 3, dilation: 2}", "larger than its input"),
    ((4, 6), "{type: conv_transpose1d, filters: 4, kernel: 3, stride: 2, output_padding: 2}", "smaller than"),
    ((4, 6), "{type: conv_transpose1d, filters: 4, kernel: 3, padding: same, output_padding: 1}", "padding 'valid'"),
    ((4, 4, 6), "{type: conv3d, filters: 4, kernel: 3}", "(depth, height, width, channels)"),
])  # fmt: skip
def test_convolution_errors_are_located(shape, layer, expected):
    with pytest.raises(SpecError) as e:
        _net(shape, layer)
    assert "conv.yaml:5:" in str(e.value) and expected in str(e.value)
