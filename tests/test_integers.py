"""The one boundary for integer-valued options (netspec.spec.integers), and the expansion count it feeds.

JSON Schema's ``integer`` accepts 3.0; the red team's ``kernel: 3.0`` and ``repeat: 2.0`` crashed the
compiler (exit 70), and fuzzing found a crash in the expansion count (issue 22, finding 1)."""

import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import netspec
from netspec.errors import SpecError
from netspec.spec.integers import integral
from netspec.spec.loader import load_file
from test_cli import netspec as run

SPECS = sorted((Path(__file__).parent.parent / "specs").glob("*.yaml"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3), (3.0, 3), (-2.0, -2), (2.0**62, 2**62), (1e300, None), (2.5, None), (math.inf, None),
     (math.nan, None), (True, None), ("3", None), (None, None)],
)  # fmt: skip
def test_integral(value, expected):
    result = integral(value)
    assert result == expected and (result is None or type(result) is int)


def floats_for_ints(node, top=True):
    """Every int in ``node`` as the equal float (``netspec: 1`` kept: it is the format version)."""
    if isinstance(node, dict):
        return {k: v if top and k == "netspec" else floats_for_ints(v, False) for k, v in node.items()}
    if isinstance(node, list):
        return [floats_for_ints(v, False) for v in node]
    return float(node) if isinstance(node, int) and not isinstance(node, bool) else node


def shape_of_network(net) -> str:
    """Everything a compiled network is, as JSON text: 3 and 3.0 print differently."""
    return json.dumps({
        "seed": net.seed, "inputs": {k: list(v) for k, v in net.inputs.items()},
        "layers": [[cl.name, cl.layer.options, list(cl.output_shape)] for cl in net.layers],
        "params": [[name, list(p.shape), p.initializer.get_config(), [p.fans.fan_in, p.fans.fan_out]]
                   for name, p in net.parameters()],
    }, sort_keys=True, default=str)  # fmt: skip


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_integral_floats_everywhere_give_the_same_network(spec, tmp_path):
    """Every integer of every example spec written as a float (units, kernels, strides, repeat counts,
    block arguments, seeds, shapes, initializer axes) compiles to the identical network, with ints."""
    data = load_file(str(spec)).data
    as_floats = yaml.safe_dump(floats_for_ints(data), sort_keys=False)
    assert re.search(r"\b[1-9][0-9]*\.0\b", as_floats)
    original = netspec.load(str(spec))
    shutil.copytree(spec.parent, tmp_path / "specs")  # a spec may name other files beside it (init.base)
    (tmp_path / "specs" / "floats.yaml").write_text(as_floats)
    floated = netspec.load(str(tmp_path / "specs" / "floats.yaml"))
    assert shape_of_network(floated) == shape_of_network(original)


def test_the_red_team_specs_build(tmp_path):
    conv = tmp_path / "conv.yaml"
    conv.write_text("netspec: 1\ninput: [8, 8, 3]\nlayers:\n  - {type: conv2d, filters: 4, kernel: 3.0}\n")
    repeat = tmp_path / "repeat.yaml"
    repeat.write_text("netspec: 1\ninput: [4]\nlayers:\n  - repeat: 2.0\n    layers:\n      - {type: dense, units: 3}")
    for spec in (conv, repeat):
        r = run("build", spec, "-o", tmp_path / "w.npz")
        assert r.returncode == 0, r.stderr


def test_integer_block_parameters_take_integral_floats_and_give_ints():
    text = ("netspec: 1\ninput: [4]\nblocks:\n  b:\n"
            "    params: {n: {type: integer}, k: {type: integer, default: 2.0}}\n"
            "    layers:\n      - repeat: $k\n        layers:\n          - {type: dense, units: $n}\n"
            "layers:\n  - {block: b, n: 3.0}\n")  # fmt: skip
    net = netspec.loads(text)
    assert [(cl.name, cl.layer.options["units"]) for cl in net.layers] == [("b_1.dense_1", 3), ("b_1.dense_2", 3)]
    assert all(type(cl.layer.options["units"]) is int for cl in net.layers)
    with pytest.raises(SpecError, match=r"parameter 'n' of block 'b' is integer, got 3\.5"):
        netspec.loads(text.replace("n: 3.0", "n: 3.5"))


def test_a_non_integral_number_reaching_an_integer_option_is_located():
    """A ``number`` block parameter substituted into ``units``: the value is only known after expansion."""
    text = ("netspec: 1\ninput: [4]\nblocks:\n  b:\n    params: {n: {type: number}}\n    layers:\n"
            "      - {type: dense, units: $n}\nlayers:\n  - {block: b, n: 3.5}\n")  # fmt: skip
    with pytest.raises(SpecError) as info:
        netspec.loads(text)
    (d,) = info.value.diagnostics
    assert (d.line, d.column, d.path) == (7, 30, "blocks.b.layers[0].units")
    assert "expected an integer, got 3.5" in d.message
    assert netspec.loads(text.replace("3.5", "3.0")).layers[0].layer.options["units"] == 3


def test_plugin_initializer_integers_are_normalized_as_built_in_ones():
    from netspec.plugins import Initializer, Normal, register_initializer

    @dataclass(frozen=True)
    class EveryKth(Initializer):
        """N(0, 1/k): ``k`` is an int parameter."""

        k: int = 1
        name = "integers_test_every_kth"

        def distribution(self, shape, fans):
            assert type(self.k) is int, self.k  # the boundary hands over an int
            return Normal(0.0, 1.0 / self.k)

    register_initializer(EveryKth)
    layer = "{type: dense, units: 3, weights: {name: integers_test_every_kth, k: 4.0}}"
    text = f"netspec: 1\ninput: [4]\nlayers:\n  - {layer}\n"
    net = netspec.loads(text)
    assert net.layers[0].layer.options["weights"] == {"name": "integers_test_every_kth", "k": 4}
    assert net.layers[0].params[0].declared().std == 0.25
    with pytest.raises(SpecError, match=r"expected an integer, got 4\.5"):
        netspec.loads(text.replace("k: 4.0", "k: 4.5"))


def test_repeat_counts_from_block_parameters_are_counted_with_their_values():
    """``repeat: $n`` inside a block crashed the expansion count (str * int); it counts with n's value."""
    body = ("    params: {n: {type: integer}}\n    layers:\n      - repeat: $n\n        layers:\n"
            "          - repeat: $n\n            layers:\n              - {type: dense, units: 4}\n")  # fmt: skip
    text = f"netspec: 1\ninput: [4]\nblocks:\n  b:\n{body}layers:\n  - {{block: b, n: 3}}\n"
    assert len(netspec.loads(text).layers) == 9
    with pytest.raises(SpecError, match="the layers expand to more than 10,000"):
        netspec.loads(text.replace("n: 3", "n: 101"))


def _expression_chain(k: int, n: int) -> str:
    """Blocks b0..b(k-1), each repeating the next ``"${n}"`` times (2^k layers for n = 2), used once."""
    chain = "".join(f'  b{i}:\n    layers:\n      - repeat: "${{n}}"\n        layers:\n'
                    f"          - {{block: b{i + 1}}}\n" for i in range(k - 1))  # fmt: skip
    return (f"netspec: 1\nconstants: {{n: {n}}}\ninput: [4]\nblocks:\n{chain}  b{k - 1}:\n    layers:\n"
            "      - {type: dense, name: d, units: 2}\nlayers:\n  - {block: b0, name: top}\n")  # fmt: skip


def test_expression_repeat_counts_are_counted_before_expanding():
    """Review F4: ``repeat: "${n}"`` inside blocks counted once up front, so a chain of 16 blocks each repeating
    the next "${n}" = 2 times was expanded layer by layer until 10,000 layers existed (seconds of CPU) and
    refused at the innermost dense layer. Counted with n's value, it is refused before any expansion, at the
    top-level use that multiplies, as the same spec with literal counts is; n = 1 builds."""
    text = _expression_chain(16, 2)
    with pytest.raises(SpecError, match="the layers expand to more than 10,000") as info:
        netspec.loads(text, "chain.yaml")
    (d,) = info.value.diagnostics
    assert (d.path, d.line) == ("layers[0]", len(text.splitlines()))
    assert "repeat blocks and block instances multiply" in d.message
    assert len(netspec.loads(_expression_chain(16, 1), "chain.yaml").layers) == 1


def test_expression_arguments_count_a_bodys_repeat():
    """A block argument written as an expression over constants (``depth: "${2 * n}"``) counts a body's
    ``repeat: $depth`` with its value; a count that reads ``index`` is known only at expansion."""
    body = ("    params: {depth: {type: integer}}\n    layers:\n      - repeat: $depth\n        layers:\n"
            '          - repeat: "${depth}"\n            layers:\n'
            "              - {type: dense, units: 4}\n")  # fmt: skip
    text = (f"netspec: 1\nconstants: {{n: 2}}\ninput: [4]\nblocks:\n  b:\n{body}layers:\n"
            '  - {block: b, depth: "${2 * n}"}\n')  # fmt: skip
    assert len(netspec.loads(text).layers) == 16
    with pytest.raises(SpecError, match="the layers expand to more than 10,000") as info:
        netspec.loads(text.replace("n: 2", "n: 51"))
    assert info.value.diagnostics[0].path == "layers[0]"
    by_index = ('netspec: 1\ninput: [4]\nlayers:\n  - repeat: 3\n    layers:\n      - repeat: "${index}"\n'
                "        layers:\n          - {type: dense, units: 2}\n")  # fmt: skip
    assert len(netspec.loads(by_index).layers) == 1 + 2 + 3


def test_a_repeat_without_layers_in_a_block_is_located():
    """The fuzzer's KeyError: 'layers' in the expansion count (a mutated resnet18-cifar.yaml)."""
    text = "netspec: 1\ninput: [4]\nblocks:\n  b:\n    layers:\n      - {repeat: 2}\nlayers:\n  - {block: b}\n"
    with pytest.raises(SpecError) as info:
        netspec.loads(text)
    (d,) = info.value.diagnostics
    assert (d.line, d.path) == (6, "blocks.b.layers[0]") and "missing required key 'layers'" in d.message


def test_blocks_that_use_each_other_twice_over_are_counted_once_each():
    """40 blocks, each using the next twice, ending in an invalid body: 2^40 instances to expand and find
    invalid. The count is memoized per block and counts an invalid body as one layer, so the spec is
    refused before any expansion (this test would not finish otherwise)."""
    twice = "      - {{block: b{}}}\n" * 2
    chain = "".join(f"  b{i}:\n    layers:\n" + twice.format(i + 1, i + 1) for i in range(40))
    text = f"netspec: 1\ninput: [4]\nblocks:\n{chain}  b40:\n    layers:\n      - {{repeat: 1, layers: []}}\n" \
           "layers:\n  - {block: b0}\n"  # fmt: skip
    with pytest.raises(SpecError, match="the layers expand to more than 10,000"):
        netspec.loads(text)
