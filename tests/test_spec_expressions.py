"""Expressions in specs: constants, block parameters, the repeat index, integers, located errors, and what
explain, lock and diff say about them."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import netspec
import netspec.report.summary
from netspec.errors import SpecError
from netspec.vcs.diff import diff_networks
from netspec.vcs.lock import build_lock, compare

GPT = """netspec: 1
name: tiny-gpt
constants:
  d_model: 16
  heads: 4
  n_layers: {n_layers}
  std: 0.02
input: [8, 16]
blocks:
  block:
    params: {{width: {{type: integer}}}}
    layers:
      - {{type: layer_norm, name: ln1}}
      - {{type: multi_head_attention, name: attn, heads: "${{heads}}", key_dim: "${{width / heads}}",
         weights: {{name: normal, std: "${{std}}"}}}}
      - {{type: add, name: res1, inputs: [input, attn]}}
      - {{type: dense, name: fc, units: "${{4 * width}}", activation: gelu, weights: {{name: normal, std: "${{std}}"}}}}
      - {{type: dense, name: proj, units: "$width", weights: {{name: normal, std: "${{std / sqrt(2 * n_layers)}}"}}}}
      - {{type: add, name: res2, inputs: [res1, proj]}}
layers:
  - repeat: "${{n_layers}}"
    layers:
      - {{block: block, name: h, width: "${{d_model}}"}}
"""


def diagnostics(text: str) -> list:
    with pytest.raises(SpecError) as info:
        netspec.loads(text, "e.yaml")
    return info.value.diagnostics


def test_constants_block_parameters_and_the_repeat_index() -> None:
    net = netspec.loads("""netspec: 1
constants: {d: 8, d_ff: "${4 * d}", n: 3}
input: ["${d}"]
blocks:
  grow:
    params: {w: {type: integer}}
    layers:
      - {type: dense, name: fc, units: "${w * index}"}
      - repeat: 2
        layers:
          - {type: dense, name: inner, units: "${w + index}"}
layers:
  - repeat: "${n}"
    layers:
      - {type: dense, name: h, units: "${d_ff // index}"}
      - {block: grow, name: g, w: "${d + index}"}
""")
    shapes = {cl.name: cl.output_shape[-1] for cl in net.layers}
    assert net.input_shape == (8,)
    for k in (1, 2, 3):
        assert shapes[f"h_{k}"] == 32 // k  # index of the enclosing repeat
        assert shapes[f"g_{k}.fc"] == (8 + k) * k  # a block instance sees the index of the repeat it is in
        assert [shapes[f"g_{k}.inner_{j}"] for j in (1, 2)] == [8 + k + 1, 8 + k + 2]  # the innermost repeat's
    assert all(type(cl.layer.options.get("units", 0)) is int for cl in net.layers)


def test_an_integral_result_is_an_int_where_an_integer_is_required() -> None:
    net = netspec.loads(GPT.format(n_layers=2))
    attn = next(cl for cl in net.layers if cl.name == "h_1.attn")
    assert attn.layer.options["key_dim"] == 4 and type(attn.layer.options["key_dim"]) is int  # ${16 / 4}
    assert type(net.layers[0].layer.options.get("epsilon", 1.0)) is float
    proj = dict(net.parameters())["h_1.proj.weights"]
    assert proj.declared().std == pytest.approx(0.02 / math.sqrt(4), rel=1e-15)


def test_a_fractional_result_where_an_integer_is_required_is_a_located_error() -> None:
    (d,) = diagnostics("netspec: 1\nconstants: {d: 10}\ninput: [4]\nlayers:\n  - {type: dense, units: \"${d / 4}\"}\n")
    assert (d.line, d.column) == (5, 26) and d.path == "layers[0].units"
    assert "expected an integer, got 2.5" in d.message and "${d / 4}" in d.message


@pytest.mark.parametrize(
    ("value", "column", "words"),
    [
        ('"${2 * d_modle}"', 33, "unknown name 'd_modle' (did you mean 'd_model'?)"),
        ('"${d_model / (d_model - 16)}"', 29, "division by zero"),
        ('"${d_model.real}"', 29, "attribute access"),
        ('"${open(\'f\')}"', 29, "unknown function 'open'"),
        ('"${index}"', 29, "unknown name 'index'"),
        ('"${9 ** 9 ** 9}"', 29, "integer overflow"),
        ('"${d_model ** 0.5 * 1e308}"', 29, "infinite"),
        ('"${sqrt(2 - d_model)}"', 29, "sqrt of a negative number"),
        ('"${2 * (d_model}"', 33, "was never closed"),
    ],
)
def test_errors_are_located_at_the_part_of_the_expression_at_fault(value: str, column: int, words: str) -> None:
    text = f"netspec: 1\nconstants: {{d_model: 16}}\ninput: [4]\nlayers:\n  - {{type: dense, units: {value}}}\n"
    (d,) = diagnostics(text)
    assert (d.line, d.column) == (5, column), d
    assert words in d.message


def test_a_type_error_names_the_expression() -> None:
    (d,) = diagnostics('netspec: 1\ninput: [4]\nlayers:\n  - {type: dense, units: 2, name: "${1 + 1}"}\n')
    assert "expected a string, got 2" in d.message and "${1 + 1}" in d.message


def test_errors_inside_blocks_name_the_instance_and_the_index() -> None:
    text = """netspec: 1
input: [4]
blocks:
  b:
    params: {w: {type: integer}}
    layers:
      - {type: dense, name: fc, units: "${w // (3 - index)}"}
layers:
  - repeat: 3
    layers:
      - {block: b, name: x, w: 8}
"""
    (d,) = diagnostics(text)
    assert (d.line, d.column) == (7, 43) and d.path == "blocks.b.layers[0].units"
    assert "division by zero" in d.message and "(index 3)" in d.message and "'x_3' used on line 11" in d.message


def test_an_unknown_name_in_a_block_is_reported_once_at_its_definition() -> None:
    text = GPT.format(n_layers=3).replace('"${{4 * width}}"'.replace("{{", "{").replace("}}", "}"), '"${4 * widht}"')
    (d,) = diagnostics(text)
    assert "unknown name 'widht' (did you mean 'width'?)" in d.message and d.path == "blocks.block.layers[3].units"


@pytest.mark.parametrize(
    ("constants", "words"),
    [("{index: 3}", "'index' cannot be a constant"), ("{sqrt: 3}", "'sqrt' cannot be a constant"),
     ("{a: x}", "must be a number"), ("{a: .inf}", "must be finite"), ("{a: '${b}', b: 1}", "unknown name 'b'"),
     ("{a: true}", "must be a number")],
)  # fmt: skip
def test_constants_are_numbers_over_earlier_constants(constants: str, words: str) -> None:
    found = diagnostics(f"netspec: 1\nconstants: {constants}\ninput: [4]\nlayers:\n  - {{type: dense, units: 2}}\n")
    assert any(words in d.message for d in found), found


def test_repeat_counts_evaluated_at_expansion_are_checked() -> None:
    text = """netspec: 1
input: [4]
layers:
  - repeat: 2
    layers:
      - repeat: "${index - 1}"
        layers:
          - {type: dense, units: 2}
"""
    (d,) = diagnostics(text)
    assert "a repeat count is an integer from 1 to 1000, got ${index - 1} = 0" in d.message
    assert d.path == "layers[0].layers[0].repeat"


def test_a_string_parameter_cannot_take_a_number_from_an_expression() -> None:
    text = """netspec: 1
input: [4]
blocks:
  b:
    params: {act: {type: string}}
    layers: [{type: dense, units: 2, activation: $act}]
layers:
  - {block: b, act: "${1}"}
"""
    (d,) = diagnostics(text)
    assert "parameter 'act' of block 'b' is string, got 1" in d.message


def test_dollar_parameters_keep_working_beside_expressions() -> None:
    net = netspec.loads(GPT.format(n_layers=2))
    assert dict(net.parameters())["h_2.proj.weights"].shape == (64, 16)  # units: $width


def test_explain_shows_each_expression_and_its_value() -> None:
    net = netspec.loads(GPT.format(n_layers=4))
    entry = next(e for e in netspec.report.summary.explain(net) if e["parameter"] == "h_3.proj.weights")
    assert entry["expressions"]["weights.std"] == {"expression": "${std / sqrt(2 * n_layers)}",
                                                   "value": 0.02 / math.sqrt(8), "constants": ["n_layers", "std"]}
    assert entry["constants"] == {"d_model": 16, "n_layers": 4, "std": 0.02}
    text = netspec.report.summary.explain_text(net)
    assert "constants    d_model = 16, heads = 4, n_layers = 4, std = 0.02" in text
    assert f"expression   weights.std = ${{std / sqrt(2 * n_layers)}} = {0.02 / math.sqrt(8)!r}" in text


def test_lock_records_resolved_values_and_diff_explains_a_changed_constant() -> None:
    a, b = netspec.loads(GPT.format(n_layers=2)), netspec.loads(GPT.format(n_layers=4))
    lock_a, lock_b = build_lock(a), build_lock(b)
    assert lock_a["constants"] == {"d_model": 16, "heads": 4, "n_layers": 2, "std": 0.02}
    assert lock_a["tensors"]["h_1.proj.weights"]["initializer"]["std"] == 0.01  # resolved: 0.02 / sqrt(4)
    d = diff_networks(a, b, "a", "b")
    # the 2 existing blocks' proj kernels change std; the 2 new blocks bring 14 tensors each
    assert d.constants == {"n_layers": [2, 4, "2 tensors change std, 28 tensors added"]}
    assert "constant n_layers 2 -> 4: 2 tensors change std, 28 tensors added" in d.text()
    drifts = {x.tensor: x.reason for x in compare(lock_a, lock_b)}
    assert drifts["h_1.proj.weights"].endswith("(constant n_layers 2 -> 4)")
    assert "h_1.fc.weights" not in drifts  # std 0.02 does not read n_layers: same bytes


def test_a_defaults_expression_is_read_by_every_tensor_that_follows_it() -> None:
    """An attention projection follows defaults.weights when it writes neither query_weights nor weights: the
    constants read there are its constants too (they were looked up under defaults.query_weights, so a
    changed std was not said to change the attention kernels, and their lock entries did not list it)."""
    text = ("netspec: 1\nconstants: {{std: {std}}}\ninput: [6, 8]\n"
            "defaults:\n  weights: {{name: normal, std: '${{std}}'}}\n"
            "layers:\n  - {{type: multi_head_attention, name: attn, heads: 2, key_dim: 4}}\n"
            "  - {{type: dense, name: head, units: 3}}\n")  # fmt: skip
    a, b = netspec.loads(text.format(std=0.02)), netspec.loads(text.format(std=0.05))
    kernels = [f"attn.{p}.weights" for p in ("query", "key", "value", "output")] + ["head.weights"]
    assert all(build_lock(a)["tensors"][k]["constants"] == ["std"] for k in kernels)
    assert diff_networks(a, b, "a", "b").constants == {"std": [0.02, 0.05, "5 tensors change std"]}


def test_a_spec_without_constants_locks_as_before() -> None:
    lock = build_lock(netspec.loads("netspec: 1\ninput: [4]\nlayers:\n  - {type: dense, units: 2}\n"))
    assert "constants" not in lock and all("constants" not in t for t in lock["tensors"].values())


def test_the_cli_reports_expression_errors_with_exit_1(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text('netspec: 1\ninput: [4]\nlayers:\n  - {type: dense, units: "${().__class__}"}\n')
    done = subprocess.run([sys.executable, "-m", "netspec.cli", "validate", str(spec)], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "bad.yaml:4:29: error: attribute access" in done.stdout + done.stderr


def test_explain_json_lists_expressions(tmp_path: Path) -> None:
    spec = tmp_path / "gpt.yaml"
    spec.write_text(GPT.format(n_layers=2))
    done = subprocess.run([sys.executable, "-m", "netspec.cli", "explain", "--json", str(spec)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    entries = {e["parameter"]: e for e in json.loads(done.stdout)}
    assert entries["h_2.fc.weights"]["expressions"]["units"]["value"] == 64


def test_the_readme_example_compiles() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("* **Arithmetic**") :]
    block = section[section.index("```yaml\n") + 8 : section.index("```\n", section.index("```yaml\n") + 8)]
    text = "netspec: 1\ninput: [768]\n" + "\n".join(line[2:] for line in block.splitlines())
    net = netspec.loads(text)
    assert net.shape_of("up_2") == (1536,) and net.shape_of("mlp_12.fc") == (3072,)
    std = dict(net.parameters())["mlp_3.proj.weights"].declared().std
    assert std == pytest.approx(0.02 / math.sqrt(24), rel=1e-15)


def test_the_published_schema_lets_editors_accept_expressions_where_numbers_go() -> None:
    import jsonschema
    import yaml

    from netspec.spec.schema import build_schema, published_schema

    root = Path(__file__).resolve().parents[1]
    raw = yaml.safe_load((root / "specs" / "mup-gpt.yaml").read_text())  # as an editor reads it: unevaluated
    editor = jsonschema.Draft202012Validator(published_schema())
    assert list(editor.iter_errors(raw)) == []
    assert list(jsonschema.Draft202012Validator(build_schema()).iter_errors(raw))  # netspec's: numbers only
    raw["layers"][0]["vocab"] = "many"
    assert any("many" in e.message for e in editor.iter_errors(raw))
