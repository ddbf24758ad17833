"""Hypothesis over generated graphs (netspec.testing.specs(): sequences with recurrent, attention and
block layers; convolutions with groups, dilation and transposed kernels): static shapes equal the
forward pass's, and every graph error is a located SpecError, never a traceback."""

import json
import random

import numpy as np
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import netspec
from netspec.check.kit import _conv_specs, _graph_specs, _sequence_specs
from netspec.errors import SpecError


@settings(max_examples=40, deadline=None)
@given(st.one_of(_sequence_specs(5), _conv_specs(4)))
def test_static_shapes_equal_the_forward_pass(spec):
    net = netspec.loads(yaml.safe_dump(spec), "generated.yaml")
    params = net.initialize(threads=1)
    x = np.random.default_rng(0).standard_normal((3, *net.input_shape)).astype(np.float32)
    for cl in net.layers:  # every layer's output, not only the network's
        probe = netspec.loads(yaml.safe_dump({**spec, "outputs": cl.name}), "generated.yaml")
        y = probe.forward(x, {k: v for k, v in params.items() if k in dict(probe.parameters())})
        assert y.shape == (3, *cl.output_shape), cl.name
        assert np.all(np.isfinite(y)), cl.name


def _break_reference(spec, rnd):
    """One wrong reference: an unknown name (a typo of a real one), or a layer further down."""
    spec = json.loads(json.dumps(spec))
    layers = spec["layers"]
    i = rnd.randrange(len(layers) - 1)
    later = [layer["name"] for layer in layers[i + 1 :] if "name" in layer]
    current = layers[i]["inputs"]
    first = current if isinstance(current, str) else current[0]
    target = rnd.choice(later) if later and rnd.random() < 0.5 else first + "x"
    layers[i]["inputs"] = target if isinstance(current, str) else [target, *current[1:]]
    return spec, target in later, i


@settings(max_examples=60, deadline=None)
@given(st.one_of(_sequence_specs(5), _graph_specs(["relu", "tanh"], 5)), st.integers(0, 2**32))
def test_graph_errors_are_located(spec, seed):
    broken, is_later, broken_at = _break_reference(spec, random.Random(seed))
    text = yaml.safe_dump(broken, sort_keys=False)
    try:
        netspec.loads(text, "graph.yaml")
    except SpecError as exc:
        assert all(d.line >= 1 and d.column >= 1 for d in exc.diagnostics)
        first = exc.diagnostics[0]
        assert first.path == f"layers[{broken_at}].inputs" or first.path.startswith(f"layers[{broken_at}].inputs[")
        assert str(exc).startswith("graph.yaml:") and len(exc.diagnostics) == 1
        assert ("is a later layer" if is_later else "unknown layer or input") in str(exc)
    else:
        raise AssertionError(f"a broken reference was accepted:\n{text}")
