"""Graph specs: named inputs of layers, merge layers, several network inputs and outputs."""

import json

import numpy as np
import pytest

import netspec
from netspec.errors import SpecError
from test_cli import netspec as run

RESIDUAL = """netspec: 1
name: residual-mlp
seed: 3
input: [16]
layers:
  - {type: dense, name: stem, units: 32, activation: relu}
  - repeat: 2
    layers:
      - {type: dense, name: fc, units: 32, activation: relu}
      - {type: dense, name: proj, units: 32}
      - {type: add, name: skip, inputs: [fc, proj]}
  - {type: concat, name: both, inputs: [stem, skip_2]}
  - {type: dense, name: head, units: 3, activation: softmax}
"""

TOWERS = """netspec: 1
inputs: {image: [8], meta: [3]}
outputs: [logits, aux]
layers:
  - {type: dense, name: a, units: 4, inputs: image, activation: tanh}
  - {type: dense, name: b, units: 4, inputs: meta}
  - {type: multiply, name: gate, inputs: [a, b]}
  - {type: subtract, name: diff, inputs: [a, b]}
  - {type: concat, name: joined, inputs: [gate, diff]}
  - {type: dense, name: logits, units: 2}
  - {type: dense, name: aux, units: 1, inputs: b}
"""


MINI = "netspec: 1\ninput: [4, 3]\nlayers:\n  - LAYER\n"


def diagnostics(text):
    with pytest.raises(SpecError) as info:
        netspec.loads(text, "g.yaml")
    return info.value.diagnostics


def dense(x, p, name, act=None):
    y = x @ p[f"{name}.weights"] + p[f"{name}.bias"]
    return act(y) if act else y


def test_residual_graph_matches_hand_written_numpy():
    net = netspec.loads(RESIDUAL)
    assert [cl.sources for cl in net.layers][3] == ["fc_1", "proj_1"]  # inside a repeat: the same repetition
    p = net.initialize()
    x = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32)
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    stem = dense(x, p, "stem", relu)
    h = stem
    for k in (1, 2):
        fc = dense(h, p, f"fc_{k}", relu)
        h = fc + dense(fc, p, f"proj_{k}")
    logits = dense(np.concatenate([stem, h], axis=1), p, "head")
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(net.forward(x, p), e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert net.output_shape == (3,) and net.is_graph and "Connected to" in net.summary()


def test_several_inputs_and_outputs():
    net = netspec.loads(TOWERS)
    assert net.inputs == {"image": (8,), "meta": (3,)} and net.outputs == ["logits", "aux"]
    p = net.initialize()
    rng = np.random.default_rng(1)
    x = {name: rng.standard_normal((2, n)).astype(np.float32) for name, n in (("image", 8), ("meta", 3))}
    out = net.forward(x, p)
    a, b = dense(x["image"], p, "a", np.tanh), dense(x["meta"], p, "b")
    np.testing.assert_allclose(out["logits"], dense(np.concatenate([a * b, a - b], 1), p, "logits"), rtol=1e-5)
    np.testing.assert_allclose(out["aux"], dense(b, p, "aux"), rtol=1e-5)
    with pytest.raises(netspec.errors.NetspecError, match="give a mapping"):
        net.forward(x["image"], p)


def test_eval_several_inputs_from_the_cli(tmp_path):
    spec = tmp_path / "towers.yaml"
    spec.write_text(TOWERS)
    r = run("eval", spec, "--input", "image=1,2,3,4,5,6,7,8", "--input", "meta=-1,0,1", "--json")
    assert r.returncode == 0, r.stderr
    outputs = json.loads(r.stdout)["outputs"]
    assert outputs["logits"]["shape"] == [2] and outputs["aux"]["shape"] == [1]
    r = run("eval", spec, "--input", "image=1,2,3,4,5,6,7,8")
    assert r.returncode == 1 and "missing --input for meta" in r.stderr


def test_existing_sequential_specs_are_plain_stacks():
    net = netspec.load("specs/cifar-cnn.yaml")
    assert not net.is_graph and "Connected to" not in net.summary()
    assert net.layers[0].sources == ["input"] and net.outputs == [net.layers[-1].name]


@pytest.mark.parametrize(
    ("old", "new", "needle", "path"),
    [
        ("[fc, proj]", "[fc, prj]", "unknown layer or input 'prj' (did you mean 'proj'?)",
         "layers[1].layers[2].inputs[1]"),
        ("[stem, skip_2]", "[stem, head]", "'head' is a later layer", "layers[2].inputs[1]"),
        ("[stem, skip_2]", "[stem, both]", "takes its own output", "layers[2].inputs[1]"),
    ],
)
def test_reference_errors_are_located(old, new, needle, path):
    (d,) = diagnostics(RESIDUAL.replace(old, new))
    assert needle in d.message and d.path == path and d.line > 1


def test_a_merge_of_mismatched_shapes_shows_every_input():
    text = RESIDUAL.replace("{type: dense, name: proj, units: 32}", "{type: dense, name: proj, units: 8}")
    d = diagnostics(text)[0]
    assert "skip_1 (add): input shapes do not match or broadcast" in d.message
    assert "fc_1 (32)" in d.message and "proj_1 (8)" in d.message and d.path == "layers[1].layers[2]"


def test_broadcasting_merges():
    text = MINI.replace("LAYER", "{type: dense, name: s, units: 1}\n  - {type: add, inputs: [input, s]}")
    net = netspec.loads(text)
    assert net.output_shape == (4, 3)
    x = np.ones((2, 4, 3), np.float32)
    p = net.initialize()
    np.testing.assert_allclose(net.forward(x, p), x + (x @ p["s.weights"] + p["s.bias"]), rtol=1e-6)


def test_concat_axis_and_its_errors():
    text = MINI.replace("LAYER", "{type: dense, name: d, units: 5}\n  - {type: concat, inputs: [input, d], axis: AX}")
    assert netspec.loads(text.replace("AX", "-1")).output_shape == (4, 8)
    (d,) = diagnostics(text.replace("AX", "0"))
    assert "inputs differ on an axis other than 0" in d.message
    (d,) = diagnostics(text.replace("AX", "2"))
    assert "axis 2 is out of range for inputs of rank 2" in d.message


def test_unused_outputs_warn():
    text = RESIDUAL.replace("inputs: [stem, skip_2]", "inputs: [stem, stem]")
    net = netspec.loads(text)
    unused = [w for w in net.warnings if "never used" in w.message]
    assert [w.path for w in unused] == ["layers[1].layers[2]"]  # skip_2; skip_1 feeds fc_2
    assert "'skip_2'" in unused[0].message and unused[0].severity == "warning"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (TOWERS.replace("inputs: image, ", ""), "must say which with 'inputs:'"),
        (TOWERS.replace("outputs: [logits, aux]", "outputs: [logits, aux2]"), "unknown layer or input 'aux2'"),
        (TOWERS.replace("name: b,", "name: meta,"), "duplicate layer name 'meta' (a network input)"),
        (TOWERS.replace("inputs: {image: [8], meta: [3]}", "inputs: {image: [8], meta: [3]}\ninput: [3]"),
         "either 'input'"),
        (TOWERS.replace("inputs: {image: [8], meta: [3]}\n", ""), "missing required key 'input'"),
        (TOWERS.replace("inputs: [a, b]}\n  - {type: concat", "inputs: [a, b, a]}\n  - {type: concat"),
         "expected at most 2 item(s), got 3"),
        (TOWERS.replace("{type: multiply, name: gate, inputs: [a, b]}", "{type: multiply, name: gate}"),
         "missing required key 'inputs'"),
    ],
)
def test_graph_spec_errors(text, needle):
    messages = [d.message for d in diagnostics(text)]
    assert any(needle in m for m in messages), messages


def test_adding_a_named_layer_leaves_other_named_tensors_unchanged():
    before = netspec.loads(RESIDUAL).initialize()
    layer = "{type: dense, name: extra, units: 32, inputs: stem}"
    extra = RESIDUAL.replace("  - {type: concat", f"  - {layer}\n  - {{type: concat")
    after = netspec.loads(extra).initialize()
    assert set(after) - set(before) == {"extra.weights", "extra.bias"}
    assert all(before[k].tobytes() == after[k].tobytes() for k in before)
