"""Padding on every convolution and pool: explicit integers and [before, after] pairs per spatial axis
(PyTorch's numbers), TensorFlow's 'same' with a validate warning where it is asymmetric, every exporter
computing the NumPy forward, and the shipped ResNet-18 spec computing what torchvision's ResNet computes.

Tolerance: float32 sums of at most a few thousand products in other orders, rtol = atol = 1e-5 as in
tests/test_convolution.py (1e-4 for the 18-layer ResNet, whose errors accumulate over depth); a padding
off by one position shifts every output window and changes outputs at O(0.1)."""

import importlib.util

import numpy as np
import pytest

import netspec
from netspec.errors import SpecError
from test_convolution import _channels_first, _channels_last, _torch_kernel, _torch_transposed_kernel

RTOL = ATOL = 1e-5


def _net(shape, layer, source="pad.yaml"):
    return netspec.loads(f"netspec: 1\nseed: 5\ninput: {list(shape)}\nlayers:\n  - {layer}\n", source)


def _x(shape, n=2, seed=0):
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


CONVS = [  # (input shape, options, torch F.pad list (last axis first) or None, torch padding)
    ((9, 4), "kernel: 3, filters: 3, padding: 1", None, 1),
    ((8, 8, 3), "kernel: 3, filters: 4, stride: 2, padding: 1", None, 1),  # torchvision's strided 3x3
    ((8, 7, 3), "kernel: [3, 5], filters: 4, padding: [1, 2]", None, (1, 2)),
    ((8, 7, 2), "kernel: 3, filters: 2, dilation: 2, padding: 2", None, 2),
    ((8, 7, 2), "kernel: 3, filters: 4, stride: 2, padding: [[0, 1], [2, 1]]", [2, 1, 0, 1], 0),
    ((5, 6, 4, 2), "kernel: 3, filters: 2, padding: [1, 0, [1, 0]]", [1, 0, 0, 0, 1, 1], 0),
]


@pytest.mark.parametrize("shape,options,torch_pad,torch_padding", CONVS)
def test_explicit_convolution_padding_is_pytorchs(shape, options, torch_pad, torch_padding):
    torch = pytest.importorskip("torch")
    rank = len(shape) - 1
    net = _net(shape, f"{{type: conv{rank}d, name: c, {options}, bias: {{name: normal, std: 0.5}}}}")
    p = net.initialize()
    _, stride, dilation, _ = net.layers[0].layer.geometry()
    x = _x(shape)
    t = torch.from_numpy(_channels_first(x))
    if torch_pad:
        t = torch.nn.functional.pad(t, torch_pad)
    conv = getattr(torch.nn.functional, f"conv{rank}d")
    with torch.no_grad():
        y = conv(t, torch.from_numpy(_torch_kernel(p["c.weights"])), torch.from_numpy(p["c.bias"]), stride=stride,
                 padding=torch_padding, dilation=dilation)  # fmt: skip
    theirs = _channels_last(y.numpy())
    assert theirs.shape[1:] == net.output_shape
    np.testing.assert_allclose(net.forward(x, p), theirs, rtol=RTOL, atol=ATOL)


TRANSPOSED = [  # (input shape, options, torch padding, torch output_padding)
    ((5, 3), "kernel: 3, filters: 4, stride: 2, padding: 1", 1, 0),
    ((5, 3), "kernel: 3, filters: 4, stride: 2, padding: 1, output_padding: 1", 1, 1),  # doubles the length
    ((4, 3, 2), "kernel: 4, filters: 2, stride: 2, padding: [1, 2]", (1, 2), 0),
    ((4, 3, 2), "kernel: 3, filters: 2, stride: 2, padding: [[1, 0], 0], output_padding: [1, 0]", None, 0),
]


@pytest.mark.parametrize("shape,options,torch_padding,output_padding", TRANSPOSED)
def test_explicit_transposed_padding_crops_as_pytorch(shape, options, torch_padding, output_padding):
    torch = pytest.importorskip("torch")
    rank = len(shape) - 1
    net = _net(shape, f"{{type: conv_transpose{rank}d, name: t, {options}, bias: {{name: normal, std: 0.3}}}}")
    p = net.initialize()
    layer = net.layers[0].layer
    _, stride, dilation, _ = layer.geometry()
    x = _x(shape, seed=1)
    conv = getattr(torch.nn.functional, f"conv_transpose{rank}d")
    args = (torch.from_numpy(_channels_first(x)), torch.from_numpy(_torch_transposed_kernel(p["t.weights"], 1)),
            torch.from_numpy(p["t.bias"]))  # fmt: skip
    with torch.no_grad():
        if torch_padding is not None:
            y = conv(*args, stride=stride, padding=torch_padding, output_padding=output_padding, dilation=dilation)
        else:  # asymmetric: PyTorch cannot say it; the full output (output_padding 1 on axis 0), cut [1:] there
            y = conv(*args, stride=stride, output_padding=(1, 0), dilation=dilation)[:, :, 1:]
    theirs = _channels_last(y.numpy())
    assert theirs.shape[1:] == net.output_shape
    np.testing.assert_allclose(net.forward(x, p), theirs, rtol=RTOL, atol=ATOL)


POOLS = [  # (layer, torch function, keyword arguments)
    ("{type: max_pool2d, pool: 3, stride: 2, padding: 1}", "max_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("{type: avg_pool2d, pool: 3, stride: 1, padding: 1, count_include_pad: true}", "avg_pool2d",
     {"kernel_size": 3, "stride": 1, "padding": 1}),  # PyTorch's default: the padding counts
    ("{type: avg_pool2d, pool: 3, stride: 2, padding: [1, 0]}", "avg_pool2d",
     {"kernel_size": 3, "stride": 2, "padding": (1, 0), "count_include_pad": False}),
    ("{type: max_pool1d, pool: 2, padding: 1}", "max_pool1d", {"kernel_size": 2, "padding": 1}),
]  # fmt: skip


@pytest.mark.parametrize("layer,function,kwargs", POOLS)
def test_explicit_pool_padding_is_pytorchs(layer, function, kwargs):
    torch = pytest.importorskip("torch")
    shape = (7, 3) if "1d" in layer else (7, 6, 3)
    net = _net(shape, layer)
    x = _x(shape)
    with torch.no_grad():
        y = getattr(torch.nn.functional, function)(torch.from_numpy(_channels_first(x)), **kwargs)
    theirs = _channels_last(y.numpy())
    assert theirs.shape[1:] == net.output_shape
    np.testing.assert_allclose(net.forward(x, {}), theirs, rtol=RTOL, atol=ATOL)


EXPORTED = [
    ([9, 8, 3], "{type: conv2d, filters: 4, kernel: 3, stride: 2, padding: 1}"),
    ([9, 8, 3], "{type: conv2d, filters: 4, kernel: 3, stride: 2, padding: [[0, 2], 1]}"),
    ([9, 8, 3], "{type: conv2d, filters: 4, kernel: 3, stride: 2, padding: same}"),
    ([7, 3], "{type: conv1d, filters: 2, kernel: 5, dilation: 2, padding: [[3, 1]]}"),
    ([4, 3, 2], "{type: conv_transpose2d, filters: 3, kernel: 3, stride: 2, padding: 1, output_padding: 1}"),
    ([4, 3, 2], "{type: conv_transpose2d, filters: 3, kernel: 3, stride: 2, padding: [[2, 0], [0, 1]]}"),
    ([5, 2], "{type: conv_transpose1d, filters: 3, kernel: 4, stride: 2, padding: 1}"),
    ([7, 6, 2], "{type: max_pool2d, pool: 3, stride: 2, padding: 1}"),
    ([7, 6, 2], "{type: avg_pool2d, pool: 3, stride: 2, padding: [1, [0, 2]]}"),
    ([7, 6, 2], "{type: avg_pool2d, pool: 3, stride: 2, padding: [1, [0, 2]], count_include_pad: true}"),
    ([7, 2], "{type: avg_pool1d, pool: 2, padding: same, count_include_pad: true}"),
]


@pytest.mark.parametrize("shape,layer", EXPORTED)
def test_every_exporter_pads_as_the_numpy_forward(shape, layer):
    from test_export_targets import _close, _flax_outputs, _onnx_outputs

    net = _net(shape, layer)
    params = net.initialize()
    x = _x(shape, n=3)
    ours = net.forward(x, params)
    if importlib.util.find_spec("torch"):
        import torch

        from netspec.torch import to_module

        with torch.no_grad():
            _close(ours, to_module(net, params)(torch.from_numpy(x)).numpy())
    _close(ours, _onnx_outputs(net, params, x))
    _close(ours, _flax_outputs(net, params, x))


def test_the_torch_module_uses_pytorchs_own_padding_where_it_can_say_it():
    pytest.importorskip("torch")
    from netspec.torch import to_module

    symmetric = to_module(_net([9, 8, 3], "{type: conv2d, name: c, filters: 4, kernel: 3, stride: 2, padding: 1}"))
    assert symmetric.c.padding == (1, 1)  # an nn.Conv2d as torchvision's conv3x3
    same = to_module(_net([9, 8, 3], "{type: conv2d, name: c, filters: 4, kernel: 3, stride: 2, padding: same}"))
    assert same.c.padding == (0, 0)  # TensorFlow's (1, 1) and (0, 1): padded by hand


def test_asymmetric_same_padding_is_a_validate_warning_naming_the_layers(tmp_path, capsys):
    from netspec.cli import main

    net = _net([32, 32, 3], "{type: conv2d, name: down, filters: 4, kernel: 3, stride: 2, padding: same}\n"
               "  - {type: conv2d, name: keep, filters: 4, kernel: 3, padding: same}\n"
               "  - {type: max_pool2d, name: pool, pool: 2, padding: same}")  # fmt: skip
    (warning,) = [w for w in net.warnings if "same" in w.message]
    assert warning.severity == "warning" and warning.line == 5  # the first such layer
    assert "down pads (0, 1) on axes 1, 2" in warning.message and "keep" not in warning.message
    assert "TensorFlow's rule" in warning.message and "padding: 1" in (warning.hint or "")
    spec = tmp_path / "s.yaml"
    spec.write_text("netspec: 1\ninput: [32, 32, 3]\nlayers:\n"
                    "  - {type: conv2d, name: down, filters: 4, kernel: 3, stride: 2, padding: same}\n")  # fmt: skip
    assert main(["validate", str(spec)]) == 0
    assert "warning: padding 'same' is TensorFlow's rule" in capsys.readouterr().err
    even = _net([8, 8, 3], "{type: conv2d, filters: 4, kernel: 3, padding: same}")  # (1, 1): PyTorch's too
    assert not [w for w in even.warnings if "same" in w.message]


@pytest.mark.parametrize("shape,layer,expected", [
    ([8, 3], "{type: conv1d, filters: 2, kernel: 3, padding: [1, 2]}", "needs 1 value(s)"),
    ([8, 8, 3], "{type: max_pool2d, pool: 2, padding: 2}", "smaller than the pool window"),
    ([2, 3], "{type: conv1d, filters: 2, kernel: 6, padding: 1}", "larger than its input (2) padded to 4"),
    ([2, 3], "{type: conv_transpose1d, filters: 2, kernel: 2, padding: 2}", "crops the whole output"),
    ([8, 3], "{type: conv1d, filters: 2, kernel: 3, padding: half}", "padding"),
    ([8, 3], "{type: max_pool1d, pool: 2, count_include_pad: true}", "count_include_pad"),
])  # fmt: skip
def test_padding_errors_are_located(shape, layer, expected):
    with pytest.raises(SpecError) as e:
        _net(shape, layer)
    assert "pad.yaml:5:" in str(e.value) and expected in str(e.value), str(e.value)


class TorchvisionBasicBlock:
    """torchvision.models.resnet.BasicBlock (conv3x3: padding 1, no bias; the downsample a strided 1x1 conv
    and a BatchNorm2d), written out because torchvision needs a newer torch than the pinned one."""

    @staticmethod
    def make(torch, inplanes, planes, stride):
        nn = torch.nn

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
                self.bn1 = nn.BatchNorm2d(planes)
                self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
                self.bn2 = nn.BatchNorm2d(planes)
                self.downsample = None
                if stride != 1 or inplanes != planes:
                    self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                                    nn.BatchNorm2d(planes))  # fmt: skip

            def forward(self, x):
                out = torch.relu(self.bn1(self.conv1(x)))
                out = self.bn2(self.conv2(out))
                return torch.relu(out + (x if self.downsample is None else self.downsample(x)))

        return Block()


def _torchvision_resnet18_cifar(torch):
    """torchvision's resnet18(num_classes=10) with the CIFAR stem (3x3 conv, stride 1, no max pool)."""
    nn = torch.nn

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            widths, inplanes = [64, 128, 256, 512], 64
            for i, planes in enumerate(widths, start=1):
                stride = 1 if i == 1 else 2
                blocks = [TorchvisionBasicBlock.make(torch, inplanes, planes, stride),
                          TorchvisionBasicBlock.make(torch, planes, planes, 1)]  # fmt: skip
                self.add_module(f"layer{i}", nn.Sequential(*blocks))
                inplanes = planes
            self.fc = nn.Linear(512, 10)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return torch.softmax(self.fc(x.mean(dim=(2, 3))), dim=-1)

    return ResNet()


def _resnet_names(key):
    """netspec's state_dict keys (layer2_0.shortcut_bn.weight) -> torchvision's (layer2.0.downsample.1.weight)."""
    key = key.replace("stem_bn.", "bn1.").replace("stem.", "conv1.")
    if key.startswith("layer"):
        block, rest = key.split(".", 1)
        stage, index = block[len("layer"):].split("_")
        rest = rest.replace("shortcut_bn.", "downsample.1.").replace("shortcut.", "downsample.0.")
        key = f"layer{stage}.{index}.{rest}"
    return key


def test_the_resnet18_spec_computes_torchvisions_resnet():
    torch = pytest.importorskip("torch")
    from netspec.torch import load_into

    net = netspec.load("specs/resnet18-cifar.yaml")
    params = net.initialize()
    rng = np.random.default_rng(3)  # running statistics away from 0 and 1, so every batch norm's eps matters
    for name in params:
        if name.endswith("moving_mean"):
            params[name] = rng.normal(0.0, 0.1, params[name].shape).astype(np.float32)
        if name.endswith("moving_variance"):
            params[name] = rng.uniform(0.5, 1.5, params[name].shape).astype(np.float32)
    model = _torchvision_resnet18_cifar(torch).eval()
    load_into(model, net, params, mapping=_resnet_names)
    x = _x((32, 32, 3), n=2, seed=4)
    with torch.no_grad():
        theirs = model(torch.from_numpy(_channels_first(x))).numpy()
    ours = net.forward(x, params)
    assert ours.std(axis=-1).min() > 0.01  # the probabilities differ by class: the comparison can see a change
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
