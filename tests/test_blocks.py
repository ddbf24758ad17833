"""Reusable, parameterized blocks: instances, $NAME substitution, naming, wiring and located errors."""

from pathlib import Path

import numpy as np
import pytest

import netspec
from netspec.errors import SpecError

ROOT = Path(__file__).resolve().parents[1]
RESNET = (ROOT / "specs" / "resnet-tiny.yaml").read_text()

FLAT = """netspec: 1
seed: 7
input: [16, 16, 3]
layers:
  - {type: conv2d, name: stem, filters: 8, kernel: 3, padding: 1, activation: relu}
  - {type: conv2d, name: s1c1, filters: 8, kernel: 3, stride: 1, padding: 1, activation: relu}
  - {type: conv2d, name: s1c2, filters: 8, kernel: 3, padding: 1}
  - {type: conv2d, name: s1sc, filters: 8, kernel: 1, stride: 1, inputs: stem}
  - {type: add, name: s1sum, inputs: [s1c2, s1sc]}
  - {type: activation, name: s1out, activation: relu}
  - {type: conv2d, name: s2c1, filters: 16, kernel: 3, stride: 2, padding: 1, activation: relu}
  - {type: conv2d, name: s2c2, filters: 16, kernel: 3, padding: 1}
  - {type: conv2d, name: s2sc, filters: 16, kernel: 1, stride: 2, inputs: s1out}
  - {type: add, name: s2sum, inputs: [s2c2, s2sc]}
  - {type: activation, name: s2out, activation: relu}
  - {type: avg_pool2d, name: pool, pool: 8}
  - {type: flatten, name: flat}
  - {type: dense, name: head, units: 10, activation: softmax}
"""
RENAME = {"stage1.conv1": "s1c1", "stage1.conv2": "s1c2", "stage1.shortcut": "s1sc",
          "stage2.conv1": "s2c1", "stage2.conv2": "s2c2", "stage2.shortcut": "s2sc"}  # fmt: skip


def diagnostics(text):
    with pytest.raises(SpecError) as info:
        netspec.loads(text, "b.yaml")
    return info.value.diagnostics


def test_instances_expand_to_named_layers_with_state_dict_style_paths():
    net = netspec.loads(RESNET)
    names = [cl.name for cl in net.layers]
    assert names[1:6] == ["stage1.conv1", "stage1.conv2", "stage1.shortcut", "stage1.sum", "stage1.out"]
    params = dict(net.parameters())
    assert params["stage2.conv1.weights"].shape == (3, 3, 8, 16)  # $filters = 16, in = stage1's 8
    assert net.layers[8].sources == ["stage1.out"]  # stage2's shortcut takes stage2's input: stage1's output
    assert net.shape_of("stage2.out") == (8, 8, 16)  # $stride = 2


def test_an_instance_computes_what_the_same_layers_written_out_compute():
    net, flat = netspec.loads(RESNET), netspec.loads(FLAT)
    p = net.initialize()
    q = {}
    for key, value in p.items():
        layer, param = key.rsplit(".", 1)
        q[f"{RENAME.get(layer, layer)}.{param}"] = value
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(net.forward(x, p), flat.forward(x, q), rtol=1e-6, atol=1e-7)


def test_an_instance_name_means_its_output():
    text = RESNET.replace("  - {type: avg_pool2d, name: pool, pool: 8}",
                          "  - {type: avg_pool2d, name: pool, pool: 8, inputs: stage2}")  # fmt: skip
    assert netspec.loads(text).layers[11].sources == ["stage2.out"]
    both = RESNET + "outputs: [head, stage1]\n"
    assert netspec.loads(both).outputs == ["head", "stage1.out"]


def test_blocks_in_repeat_and_blocks_in_blocks():
    text = """netspec: 1
input: [4]
blocks:
  pair:
    params: {units: {type: integer, default: 3}}
    layers:
      - {type: dense, name: a, units: $units}
      - {type: dense, name: b, units: $units}
  quad:
    layers:
      - {block: pair, name: first}
      - {block: pair, name: second, units: 5}
layers:
  - repeat: 2
    layers:
      - {block: quad, name: q}
"""
    net = netspec.loads(text)
    assert [cl.name for cl in net.layers] == [
        "q_1.first.a", "q_1.first.b", "q_1.second.a", "q_1.second.b",
        "q_2.first.a", "q_2.first.b", "q_2.second.a", "q_2.second.b",
    ]  # fmt: skip
    assert net.layers[4].sources == ["q_1.second.b"] and net.output_shape == (5,)


def test_block_layer_bytes_depend_only_on_their_names():
    a = netspec.loads(RESNET).initialize()
    b = netspec.loads(RESNET.replace("  - {type: avg_pool2d", "  - {type: dropout, name: drop, rate: 0.1}\n"
                                                             "  - {type: avg_pool2d")).initialize()  # fmt: skip
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)


def line_of(text, needle):
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "needle", "where"),
    [
        ("{block: basic, name: stage1, filters: 8}", "{block: basik, name: stage1, filters: 8}",
         "unknown block 'basik' (did you mean 'basic'?)", "layers[1].block"),
        ("{block: basic, name: stage1, filters: 8}", "{block: basic, name: stage1, filterz: 8}",
         "block 'basic' has no parameter 'filterz' (did you mean 'filters'?)", "layers[1].filterz"),
        ("{block: basic, name: stage1, filters: 8}", "{block: basic, name: stage1, filters: 8.5}",
         "parameter 'filters' of block 'basic' is integer, got 8.5", "layers[1].filters"),
        ("{block: basic, name: stage1, filters: 8}", "{block: basic, name: stage1}",
         "block 'basic' needs parameter 'filters' (it has no default)", "layers[1]"),
        ("stride: {type: integer, default: 1}", "stride: {type: integer, default: one}",
         "the default of parameter 'stride' is string 'one', not integer", "blocks.basic.params.stride.default"),
    ],
)
def test_instance_errors_are_located_at_the_use(old, new, needle, where):
    text = RESNET.replace(old, new)
    messages = {(d.path, d.message) for d in diagnostics(text)}
    assert any(path == where and needle in m for path, m in messages), messages


def test_an_error_inside_an_instance_shows_the_definition_and_the_use():
    text = RESNET.replace("{block: basic, name: stage1, filters: 8}", "{block: basic, name: stage1, filters: 0}")
    d = diagnostics(text)[0]  # and the other two layers that use $filters
    assert d.path == "blocks.basic.layers[0].filters" and d.line == line_of(text, "name: conv1")
    use = f"block instance 'stage1' used on line {line_of(text, 'stage1')}"
    assert "out of range" in d.message and use in d.message
    text = RESNET.replace("inputs: [conv2, shortcut]", "inputs: [conv2, shortcutt]")
    errors = diagnostics(text)
    assert errors[0].path == "blocks.basic.layers[3].inputs[1]" and "did you mean 'shortcut'" in errors[0].message
    assert "block instance 'stage1'" in errors[0].message


def test_an_unknown_placeholder_is_located():
    (d,) = diagnostics(RESNET.replace("kernel: 1, stride: $stride", "kernel: 1, stride: $strid"))  # once, not per use
    assert d.path == "blocks.basic.layers[2].stride"
    assert "$strid names no parameter of block 'basic' (did you mean 'stride'?)" in d.message


def test_recursive_blocks_are_refused():
    text = """netspec: 1
input: [4]
blocks:
  a: {layers: [{block: b}]}
  b: {layers: [{type: dense, units: 2}, {block: a}]}
layers:
  - {block: a}
"""
    messages = [d.message for d in diagnostics(text)]
    assert any("block 'a' uses itself (a -> b -> a)" in m for m in messages), messages


def test_block_bombs_are_refused_by_counting():
    text = "netspec: 1\ninput: [4]\nblocks:\n  b0: {layers: [{type: dense, units: 2}]}\n"
    for i in range(1, 8):
        text += f"  b{i}: {{layers: [{', '.join([f'{{block: b{i - 1}}}'] * 10)}]}}\n"
    (d,) = diagnostics(text + "layers:\n  - {block: b7}\n")
    assert "expand to more than 10,000" in d.message


def test_summary_counts_parameters_per_instance():
    from netspec.report.summary import as_json

    net = netspec.loads(RESNET)
    blocks = as_json(net)["blocks"]
    assert blocks == {"stage1": {"block": "basic", "params": 584 + 584 + 72},
                      "stage2": {"block": "basic", "params": 1168 + 2320 + 144}}  # fmt: skip
    assert "  stage1  basic  1,240\n  stage2  basic  3,632\n" in net.summary()


def test_a_layer_inside_an_instance_is_referenced_by_its_dotted_name():
    net = netspec.loads(
        "netspec: 1\ninput: [4]\nblocks:\n  b:\n    layers:\n"
        "      - {type: dense, name: hidden, units: 3}\n      - {type: dense, name: out, units: 2}\n"
        "layers:\n  - {block: b, name: one}\n  - {type: dense, name: side, units: 5, inputs: one.hidden}\n"
        "outputs: [one, one.hidden, side]\n",
        "dotted.yaml",
    )
    assert net.outputs == ["one.out", "one.hidden", "side"]
    assert net.shape_of("side") == (5,) and net.layers[-1].sources == ["one.hidden"]
