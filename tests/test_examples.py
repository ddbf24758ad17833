"""Every example spec in specs/ builds and runs: a forward pass on a batch gives its static output shape,
finite values, and probabilities where the head is a softmax or sigmoid."""

from pathlib import Path

import numpy as np
import pytest

import netspec
from netspec.nn.inputs import matches

SPECS = sorted((Path(__file__).parent.parent / "specs").glob("*.yaml"))


OPEN_LENGTH = 7
"""The size the examples' inputs get on an axis their spec leaves open (null)."""


def batch(net, rng, n=2):
    """Random inputs of the network's shapes: token ids below the vocabulary for embedding inputs."""
    out = {}
    for name, spec_shape in net.inputs.items():
        shape = tuple(OPEN_LENGTH if size is None else size for size in spec_shape)
        first = next(cl for cl in net.layers if name in cl.sources)
        if first.layer.type == "embedding":
            out[name] = rng.integers(0, first.layer.options["vocab"], (n, *shape))
        else:
            out[name] = rng.standard_normal((n, *shape)).astype(net.dtype)
    return out if len(out) > 1 else next(iter(out.values()))


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_example_spec_runs(path):
    net = netspec.load(str(path))
    params = net.initialize()
    y = net.forward(batch(net, np.random.default_rng(0)), params)
    assert y.shape[0] == 2 and matches(y.shape[1:], net.output_shape)
    assert np.all(np.isfinite(y))
    head = net.layers[-1].layer
    if head.has_activation() and head.activation.name in ("softmax", "sigmoid"):
        assert np.all((y >= 0) & (y <= 1))
