"""Every activation in every target: the torch module, onnxruntime and Flax compute netspec's values.

The activation registry is walked, so an activation without an export in one target fails here.
Tolerance as tests/test_export_targets.py: rtol = atol = 1e-5 (a few ulps per operation; a wrong formula,
e.g. Keras 2's hard sigmoid 0.2 x + 0.5, differs by 0.1 at x = 2)."""

import numpy as np
import pytest

import netspec
from netspec.nn.activations import ACTIVATIONS

RTOL = ATOL = 1e-5
X = np.linspace(-8, 8, 161, dtype=np.float32).reshape(7, 23)  # through every kink (-3, 0, 3, 6)


def _net(name):
    return netspec.loads(f"netspec: 1\ninput: [23]\nlayers:\n  - {{type: activation, activation: {name}}}\n",
                         f"{name}.yaml")  # fmt: skip


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_in_torch(name):
    torch = pytest.importorskip("torch")
    from netspec.export.torch import to_module

    net = _net(name)
    with torch.no_grad():
        theirs = to_module(net, {})(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(net.forward(X, {}), theirs, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_in_onnxruntime(name):
    ort = pytest.importorskip("onnxruntime")
    from netspec.export.onnx import build_model

    net = _net(name)
    session = ort.InferenceSession(build_model(net, {}).SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(net.forward(X, {}), session.run(None, {"input": X})[0], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_in_flax(name):
    pytest.importorskip("flax")
    from netspec.export.flax import to_module, variables

    net = _net(name)
    theirs = np.asarray(to_module(net).apply(variables(net, {}), X))
    np.testing.assert_allclose(net.forward(X, {}), theirs, rtol=RTOL, atol=ATOL)
