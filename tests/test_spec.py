"""Spec loading, schema and compilation (library level; the CLI is in test_cli.py)."""

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import netspec
from netspec.errors import SpecError
from netspec.init.initializers import INITIALIZERS
from netspec.nn.activations import ACTIVATIONS
from netspec.nn.catalog import LAYER_TYPES
from netspec.spec.loader import load_text
from netspec.spec.schema import build_schema
from netspec.testing import specs

ROOT = Path(__file__).resolve().parents[1]


def test_committed_schema_is_the_generated_one():
    # a fresh interpreter: other tests register custom names in this one
    code = "import sys; from netspec.spec.schema import schema_json; sys.stdout.write(schema_json())"
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert (ROOT / "schemas" / "netspec-v1.schema.json").read_text() == fresh


def test_schema_names_and_registries_agree():
    schema = build_schema()
    defs = schema["$defs"]
    assert set(defs["layer"]["properties"]["type"]["enum"]) == set(LAYER_TYPES)
    assert set(defs["initializer"]["then"]["enum"]) == set(INITIALIZERS.names()) | {"auto", "auto_next"}
    assert set(defs["activation"]["then"]["enum"]) == set(ACTIVATIONS.names())
    for name in INITIALIZERS:
        branch = next(b for b in defs["initializer"]["else"]["allOf"] if name in b["if"]["properties"]["name"]["enum"])
        params = set(branch["then"]["properties"]) - {"name"}
        assert params == set(INITIALIZERS[name].parameters())


def test_every_schema_property_has_a_description():
    def walk(node, path):
        if isinstance(node, dict):
            for key, sub in node.get("properties", {}).items():
                assert "description" in sub, f"{path}.{key}"
            for key, sub in node.items():
                if key != "if":  # branch selectors, not properties an editor shows
                    walk(sub, f"{path}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{path}[{i}]")

    walk(build_schema(), "$")


def test_strict_objects_everywhere():
    defs = build_schema()["$defs"]
    assert build_schema()["additionalProperties"] is False
    for t in LAYER_TYPES:
        assert defs[f"layer.{t}"]["additionalProperties"] is False


def test_alias_bomb_is_refused_by_counting_not_by_expanding():
    """Ten levels of nine aliases: 9^10 nodes if expanded; the memoized count stops at 100,000."""
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 11)]
    with pytest.raises(SpecError, match="expands to more than 100000 nodes"):
        load_text("\n".join(lines) + "\n", "bomb.yaml")


def test_shared_aliases_within_the_budget_load():
    text = "a: &a [1, 2, 3]\nb: [*a, *a, *a]\n"
    assert load_text(text).data == {"a": [1, 2, 3], "b": [[1, 2, 3]] * 3}


def test_yaml_1_1_quirks_are_read_as_yaml_1_2_core():
    data = load_text("a: 1e-3\nb: no\nc: 2001-12-14\nd: 0o17\ne: ~\n").data
    assert data == {"a": 0.001, "b": "no", "c": "2001-12-14", "d": 15, "e": None}


def test_anchors_and_merge_keys_are_expanded():
    text = """
netspec: 1
input: [8]
defaults: {bias: zeros}
layers:
  - &block {type: dense, units: 8, activation: relu, weights: he_normal}
  - *block
  - {<<: *block, units: 2, activation: softmax}
"""
    net = netspec.loads(text, "anchors.yaml")
    assert [cl.name for cl in net.layers] == ["dense_1", "dense_2", "dense_3"]
    assert net.layers[2].output_shape == (2,)


def test_repeat_blocks_name_their_layers():
    text = """
netspec: 1
input: [4]
layers:
  - repeat: 2
    layers:
      - {type: dense, units: 4, name: block}
      - {type: dense, units: 4}
  - {type: dense, units: 1}
"""
    net = netspec.loads(text, "r.yaml")
    assert [cl.name for cl in net.layers] == ["block_1", "dense_2", "block_2", "dense_4", "dense_5"]


def test_renaming_or_adding_a_layer_leaves_other_weights_unchanged():
    head = "netspec: 1\ninput: [6]\nlayers:\n  - {type: dense, units: 5, name: a}\n"
    before = netspec.loads(head + "  - {type: dense, units: 3, name: b}\n").initialize()
    after = netspec.loads(
        head + "  - {type: dense, units: 7, name: new}\n  - {type: dense, units: 3, name: b2}\n"
    ).initialize()
    assert np.array_equal(before["a.weights"], after["a.weights"])  # untouched layer: same bytes
    assert not np.array_equal(before["b.weights"][:5, :3], after["b2.weights"][:5, :3])  # renamed: new stream


def test_all_errors_are_reported_at_once_sorted():
    text = (
        "netspec: 1\ninput: [4]\nlayers:\n"
        "  - {type: dense, units: 0}\n  - {type: dnese, units: 3}\n  - {type: dense, unit: 3}\n"
    )
    with pytest.raises(SpecError) as info:
        netspec.loads(text, "m.yaml")
    lines = [d.line for d in info.value.diagnostics]
    assert lines == sorted(lines) and {4, 5, 6} <= set(lines)


def _errors(text: str) -> list:
    with pytest.raises(SpecError) as info:
        netspec.loads(text, "m.yaml")
    return info.value.diagnostics


def test_pattern_and_one_of_messages_say_what_the_schema_accepts():
    """Review F9: every pattern failure said "(a letter or _, then letters, digits, _ and -)" and every oneOf
    failure "expected an integer or a list of integers", wrong for constants (no -) and padding; a bad
    constant name was located at the constants mapping, not at the key."""
    (d,) = _errors("netspec: 1\nconstants:\n  n_layers: 3\n  n-heads: 2\ninput: [4]\nlayers:\n"
                   "  - {type: dense, units: 2}\n")  # fmt: skip
    assert (d.line, d.column, d.path) == (4, 3, "constants.n-heads")
    assert "not an identifier" in d.message and "no -" in d.message and "_ and -" not in d.message
    conv = "netspec: 1\ninput: [8, 2]\nlayers:\n  - {type: conv1d, filters: 2, kernel: 3, padding: PAD}\n"
    for padding in ("foo", "[[1, 2, 3]]", "[1, 2, 3, 4]"):
        (d,) = _errors(conv.replace("PAD", padding))
        assert d.path == "layers[0].padding" and "expected 'valid' or 'same', an integer, or a list of 1 to 3 items, " \
            "each an integer or a list of 2 integers" in d.message, d.message  # fmt: skip
    (d,) = _errors(conv.replace("padding: PAD", "kernel: x").replace("kernel: 3, ", ""))
    assert "expected an integer or a list of 1 to 3 integers" in d.message
    (d,) = _errors("netspec: 1\ninput: [4]\nblocks:\n  a.b: {layers: [{type: dense, units: 2}]}\nlayers:\n"
                   "  - {type: dense, units: 2}\n")  # fmt: skip
    assert (d.line, d.column, d.path) == (4, 3, "blocks.a.b") and "is not a name (a letter or _" in d.message


def _schema_nodes(node, key):
    if isinstance(node, dict):
        if key in node:
            yield node
        for value in node.values():
            yield from _schema_nodes(value, key)
    elif isinstance(node, list):
        for value in node:
            yield from _schema_nodes(value, key)


def test_every_one_of_and_pattern_of_the_schema_has_words_naming_each_branch():
    """The messages are read from the schema: every pattern has its words, and the words for every oneOf
    name what each branch accepts (its enum values, its type, a list, a mapping's required keys)."""
    from netspec.spec.schema import PATTERN_WORDS
    from netspec.spec.validation import TYPE_WORDS, accepts

    schema = json.loads((Path(__file__).parent.parent / "schemas" / "netspec-v1.schema.json").read_text())
    for built in (build_schema(), schema):  # the validation schema, and the published one (expressions)
        for node in _schema_nodes(built, "pattern"):
            if isinstance(node["pattern"], str):
                assert node["pattern"] in PATTERN_WORDS, node["pattern"]
        for node in _schema_nodes(built, "oneOf"):
            words = accepts(node)
            for branch in node["oneOf"]:
                if "enum" in branch:
                    assert all(repr(v) in words for v in branch["enum"] if isinstance(v, str)), (words, branch)
                elif branch.get("type") == "array":
                    assert "a list" in words, (words, branch)
                elif branch.get("type") == "object":
                    assert "a mapping" in words and all(repr(k) in words for k in branch.get("required", ()))
                elif isinstance(branch.get("type"), str):
                    assert TYPE_WORDS[branch["type"]][0] in words, (words, branch)
                else:
                    assert "pattern" in branch or "oneOf" in branch or "anyOf" in branch, branch


def test_summary_lists_layers_shapes_params_and_initializers():
    text = netspec.load(str(ROOT / "specs" / "cifar-cnn.yaml")).summary()
    assert "conv2d_2 (conv2d)" in text and "(None, 14, 14, 64)" in text and "18,496" in text
    assert "variance_scaling U(±0.2085)" in text  # sqrt(6 / (128 + 10))
    assert text.endswith("Total params: 422,218 (1.61 MiB)\nTrainable params: 422,218\nNon-trainable params: 0")


def test_summary_splits_trainable_and_non_trainable_parameters():
    """ResNet-18 for CIFAR: torchvision's resnet18(num_classes=10) with a 3x3 stem has 11,689,512 - 9,408 + 1,728
    - 513,000 + 5,130 = 11,173,962 trainable parameters; its 20 batch norms hold 2 x 4,800 running statistics."""
    net = netspec.load(str(ROOT / "specs" / "resnet18-cifar.yaml"))
    text = net.summary()
    assert text.splitlines()[-3:] == ["Total params: 11,183,562 (42.66 MiB)", "Trainable params: 11,173,962",
                                      "Non-trainable params: 9,600"]  # fmt: skip
    assert net.num_trainable == 11_689_512 - 9_408 + 1_728 - 513_000 + 5_130
    lines = text.splitlines()
    start = lines.index("Block instances (block, params):")
    assert lines[start + 1 : start + 3] == ["  layer1_0  basic     74,240", "  layer1_1  basic     74,240"]
    assert lines[start + 8] == "  layer4_1  basic  4,722,688"  # one instance a line, counts aligned


def test_nested_block_instances_are_indented_under_theirs():
    spec = """\
netspec: 1
input: [4]
blocks:
  inner:
    layers:
      - {type: dense, name: fc, units: 2}
  outer:
    layers:
      - {block: inner, name: a}
      - {block: inner, name: b}
layers:
  - {block: outer, name: o}
"""
    net = netspec.loads(spec)
    lines = net.summary().splitlines()
    start = lines.index("Block instances (block, params):")
    assert lines[start + 1 : start + 4] == ["  o      outer  16", "    o.a  inner  10", "    o.b  inner   6"]


def test_forward_matches_hand_written_numpy():
    net = netspec.load(str(ROOT / "specs" / "glorot-demo-4-5-3.yaml"))
    p = net.initialize()
    x = np.array([[1, 2, 3, 4]], np.float32)
    h = np.tanh(x @ p["dense_1.weights"] + p["dense_1.bias"])
    o = h @ p["dense_2.weights"] + p["dense_2.bias"]
    e = np.exp(o - o.max())
    assert np.allclose(net.forward(x, p), e / e.sum(), atol=1e-6)


def test_conv_forward_matches_a_direct_loop():
    text = "netspec: 1\ninput: [6, 5, 2]\nlayers:\n  - {type: conv2d, filters: 3, kernel: [3, 2], stride: [2, 1]}\n"
    net = netspec.loads(text)
    p = net.initialize()
    x = np.random.default_rng(0).normal(size=(2, 6, 5, 2)).astype(np.float32)
    w, b = p["conv2d_1.weights"], p["conv2d_1.bias"]
    y = net.forward(x, p)
    assert y.shape == (2, 2, 4, 3)
    for i in range(2):
        for j in range(4):
            patch = x[:, 2 * i : 2 * i + 3, j : j + 2, :]
            assert np.allclose(y[:, i, j], np.einsum("bhwc,hwcf->bf", patch, w) + b, atol=1e-5)


@settings(max_examples=30)
@given(specs())
def test_generated_valid_specs_compile_and_build(spec):
    net = netspec.loads(yaml.safe_dump(spec), "generated.yaml")
    params = net.initialize(threads=1)
    assert sum(v.size for v in params.values()) == net.num_params
    assert all(v.dtype == np.dtype(spec.get("dtype", "float32")) for v in params.values())
    x = np.zeros((2, *net.input_shape))
    assert net.forward(x, params).shape == (2, *net.output_shape)  # static shapes match the forward pass


def _mutate(spec, rnd):
    spec = json.loads(json.dumps(spec))
    layer = rnd.choice(spec["layers"])
    choice = rnd.randrange(6)
    if choice == 0:
        layer["units" if "units" in layer else "filters"] = rnd.choice([-1, 0, "ten", 2.5, None, [1]])
    elif choice == 1:
        key = rnd.choice(sorted(layer))
        layer[key + "x"] = layer.pop(key)
    elif choice == 2:
        layer["type"] = layer["type"][:-1]
    elif choice == 3:
        layer["weights"] = rnd.choice(
            [{"name": "normal", "std": -1}, "nope", {"name": "uniform", "low": 2, "high": 1}, 5]
        )
    elif choice == 4:
        spec["input"] = rnd.choice([[], [0], "x", [1, 2, 3, 4, 5]])
    else:
        spec[rnd.choice(["netspec", "seed", "rng"])] = rnd.choice([2, -5, "fast", None])
    return spec


@settings(max_examples=60)
@given(specs(), st.integers(0, 2**32))
def test_mutated_specs_give_located_errors_never_exceptions(spec, seed):
    text = yaml.safe_dump(_mutate(spec, random.Random(seed)))
    try:
        netspec.loads(text, "mutated.yaml")
    except SpecError as exc:
        assert exc.diagnostics and all(d.line >= 1 and d.column >= 1 for d in exc.diagnostics)
        assert str(exc).startswith("mutated.yaml:")
