"""variance_scaling with explicit fan axes (JAX's in_axis / out_axis / batch_axis) for any kernel layout."""

import math

import pytest

import netspec
from netspec.errors import InitializerError, SpecError
from netspec.init.fans import axis_fans, compute_fans
from netspec.init.initializers import get_initializer
from netspec.report.summary import explain


@pytest.mark.parametrize("shape", [(3, 4), (3, 3, 16, 32), (5, 2, 7), (2, 3, 4, 5, 6)])
def test_default_axes_are_the_layout_rule(shape):
    assert axis_fans(shape) == compute_fans(shape)


def test_attention_style_kernels():
    # (d_model, heads, key_dim): input axis 0, output axes (1, 2) -> fans (d, heads*key_dim), as Keras' explicit axes
    assert axis_fans((64, 4, 16), 0, (1, 2)) == axis_fans((64, 64), 0, 1)
    # (heads, key_dim, d_model) output projection: inputs (0, 1), output 2
    fans = axis_fans((4, 16, 64), (0, 1), 2)
    assert (fans.fan_in, fans.fan_out, fans.receptive_field) == (64, 64, 1)
    # a batch axis (e.g. stacked experts) counts nowhere
    fans = axis_fans((8, 3, 3, 16, 32), -2, -1, 0)
    assert (fans.fan_in, fans.fan_out, fans.receptive_field) == (16 * 9, 32 * 9, 9)


@pytest.mark.parametrize(("args", "needle"), [((5, -1), "out of range"), ((-1, -1), "different axes"),
                                               (((), -1), "at least one axis")])  # fmt: skip
def test_bad_axes(args, needle):
    with pytest.raises(InitializerError, match=needle):
        axis_fans((3, 4), *args)


def test_variance_scaling_uses_its_axes_and_round_trips():
    vs = get_initializer({"name": "variance_scaling", "scale": 2.0, "distribution": "normal",
                          "in_axis": 0, "out_axis": [1, 2]})  # fmt: skip
    assert vs.declared((64, 4, 16)).std == pytest.approx(math.sqrt(2.0 / 64), rel=1e-12)
    layer_rule = get_initializer({"name": "variance_scaling", "scale": 2.0, "distribution": "normal"})
    assert layer_rule.declared((64, 4, 16)).std == pytest.approx(math.sqrt(2.0 / (4 * 64)), rel=1e-12)  # fan_in = 4*64
    assert type(vs).from_config(vs.get_config()) == vs
    assert vs.get_config()["out_axis"] == [1, 2] and "in_axis" not in layer_rule.get_config()


def test_explain_shows_the_fans_used_and_where_they_came_from():
    spec = """netspec: 1
input: [8]
layers:
  - {type: dense, name: a, units: 6, use_bias: false,
     weights: {name: variance_scaling, distribution: uniform, in_axis: -1, out_axis: 0}}
  - {type: dense, name: b, units: 2}
"""
    rows = {r["parameter"]: r for r in explain(netspec.loads(spec))}
    assert (rows["a.weights"]["fan_in"], rows["a.weights"]["fan_out"]) == (6, 8)  # swapped on purpose
    assert "axes (in_axis=-1, out_axis=0)" in rows["a.weights"]["fans_from"]
    assert "kernel layout" in rows["b.weights"]["fans_from"]


def test_axes_that_do_not_fit_the_tensor_are_located():
    spec = """netspec: 1
input: [8]
layers:
  - {type: dense, name: a, units: 6, weights: {name: variance_scaling, in_axis: 2}}
"""
    with pytest.raises(SpecError) as info:
        netspec.loads(spec)
    (d,) = info.value.diagnostics
    assert d.path == "layers[0].weights" and "in_axis 2 is out of range for a tensor of rank 2" in d.message
