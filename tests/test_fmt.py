"""netspec fmt: idempotent, keeps comments, never changes what a spec builds; --check for CI."""

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings

import netspec
from netspec.cli import main
from netspec.spec.imports import is_library
from netspec.spec.loader import load_text
from netspec.testing import specs
from netspec.vcs.fmt import format_text

SPECS = sorted((Path(__file__).parent.parent / "specs").rglob("*.yaml"))


def _tensors(net):
    return {name: (p.shape, p.declared()) for name, p in net.parameters()}


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_example_specs_format_idempotently_keeping_comments_and_bytes(path):
    text = path.read_text()
    once = format_text(text, str(path))
    assert format_text(once, str(path)) == once
    comments = [line.strip() for line in text.splitlines() if line.strip().startswith("#")]
    assert comments == [line.strip() for line in once.splitlines() if line.strip().startswith("#")]
    if is_library(load_text(text, str(path)).data):  # a block library builds nothing: the same data
        assert load_text(once, str(path)).data == load_text(text, str(path)).data
        return
    a, b = netspec.loads(text, str(path)), netspec.loads(once, str(path))
    assert _tensors(a) == _tensors(b) and a.seed == b.seed and a.outputs == b.outputs


@settings(max_examples=30, deadline=None)
@given(specs())
def test_generated_specs_format_to_the_same_data(spec):
    text = yaml.safe_dump(spec, sort_keys=False)
    once = format_text(text)
    assert load_text(once, "x").data == load_text(text, "x").data
    assert format_text(once) == once


def test_canonical_layout():
    text = ("# top\nlayers:\n  - units: 3   # three\n    type: dense\n    name: a\ninput:\n  - 4\nnetspec: 1\n"
            "defaults: {weights: {std: 0.1, name: normal}}\n")  # fmt: skip
    out = format_text(text)
    assert out.splitlines()[:3] == ["# top", "netspec: 1", "input: [4]"]
    assert "weights: {name: normal, std: 0.1}" in out and "# three" in out
    assert out.index("type: dense") < out.index("name: a") < out.index("units: 3")


QUOTED = """\
netspec: 1
constants: {d_model: 8, n_layers: 2}
input: [8]
layers:
  - repeat: "${n_layers}"
    layers:
      - {type: dense, name: up, units: "${d_model * index}"}
      - {type: dense, name: down, units: '${d_model}', weights: {name: normal, std: "${0.02 / sqrt(n_layers)}"}}
"""


def test_quoted_scalars_keep_their_quotes(tmp_path, capsys):
    """Expressions written as the README writes them ("${...}", double-quoted) pass fmt --check, single
    quotes stay single; a plain ${n} that moves into a flow mapping is quoted there (YAML needs it)."""
    assert format_text(QUOTED, "q.yaml") == QUOTED
    path = tmp_path / "q.yaml"
    path.write_text(QUOTED)
    assert main(["fmt", "--check", str(path)]) == 0, capsys.readouterr().err
    exploded = QUOTED.replace("      - {type: dense, name: up, units: \"${d_model * index}\"}\n",
                              "      - type: dense\n        name: up\n        units: ${d_model * index}\n")  # fmt: skip
    out = format_text(exploded, "q.yaml")
    assert "      - {type: dense, name: up, units: '${d_model * index}'}\n" in out
    assert load_text(out, "q.yaml").data == load_text(QUOTED, "q.yaml").data


def test_check_and_rewrite(tmp_path, capsys):
    messy = tmp_path / "m.yaml"
    messy.write_text("layers: [{units: 2, type: dense}]\ninput: [3]\nnetspec: 1\n")
    assert main(["fmt", "--check", str(messy)]) == 1 and "not in the canonical layout" in capsys.readouterr().err
    assert main(["fmt", str(messy)]) == 0
    assert messy.read_text().startswith("netspec: 1\ninput: [3]\nlayers:\n  - {type: dense, units: 2}")
    assert main(["fmt", "--check", str(tmp_path)]) == 0
    assert not list(tmp_path.glob(".netspec-*"))
    broken = tmp_path / "b.yaml"
    broken.write_text("netspec: 1\nnetspec: 2\n")
    assert main(["fmt", str(broken)]) == 1
    assert "b.yaml:2:1" in capsys.readouterr().err and broken.read_text() == "netspec: 1\nnetspec: 2\n"
    workflow = tmp_path / "ci.yaml"
    workflow.write_text("on:   push\njobs: {}\n")  # YAML that is not a spec: left alone, not a failure
    broken.unlink()
    assert main(["fmt", str(tmp_path)]) == 0 and workflow.read_text() == "on:   push\njobs: {}\n"
    assert "not a netspec spec" in capsys.readouterr().err


ANCHORED = """\
netspec: 1
name: unet
input: [64, 64, 1]
x-conv: &conv {type: conv2d, kernel: 3, padding: same, activation: relu}
x-pool: &pool {type: max_pool2d, pool: 2}
layers:
  - {<<: *conv, name: e1a, filters: 16}
  - {<<: *conv, name: e1b, filters: 16}
  - {<<: *pool, name: p1}
  - {<<: *conv, name: e2a, filters: 32, weights: {name: he_normal}}
  - *pool
  - {type: flatten, name: flat}
  - {type: dense, name: head, units: 3}
"""


def test_the_readmes_anchor_pattern_is_canonical():
    """x- keys with their anchors stay before the layers that use them, merge-key layers on one line."""
    assert format_text(ANCHORED, "u.yaml") == ANCHORED
    moved = ANCHORED.replace("x-conv: &conv {type: conv2d, kernel: 3, padding: same, activation: relu}\n", "")
    moved = moved.replace("name: unet\n", "name: unet\nx-conv: &conv {type: conv2d, kernel: 3, padding: same, "
                          "activation: relu}\n")  # fmt: skip
    out = format_text(moved.replace("layers:\n", "seed: 3\nlayers:\n"), "u.yaml")  # seed goes up, x- keys stay
    assert out.splitlines()[:6] == ["netspec: 1", "name: unet", "seed: 3", "input: [64, 64, 1]",
                                    "x-conv: &conv {type: conv2d, kernel: 3, padding: same, activation: relu}",
                                    "x-pool: &pool {type: max_pool2d, pool: 2}"]  # fmt: skip
    exploded = ANCHORED.replace("  - {<<: *conv, name: e1b, filters: 16}\n",
                                "  - <<: *conv\n    name: e1b\n    filters: 16\n")  # fmt: skip
    assert format_text(exploded, "u.yaml") == ANCHORED  # joined onto one line again
    long = ANCHORED.replace("filters: 32, weights: {name: he_normal}", "filters: 32, weights: {name: "
                            "variance_scaling, scale: 2.0, mode: fan_in, distribution: truncated_normal}, "
                            "bias: {name: constant, value: 0.1}")  # fmt: skip
    text = format_text(long, "u.yaml")
    assert "  - <<: *conv\n    name: e2a\n    filters: 32\n" in text  # too long for a line: block style
    assert load_text(text, "u.yaml").data == load_text(long, "u.yaml").data
