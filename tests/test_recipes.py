"""Init recipes (netspec.init.recipes): each builds a spec and every role's tensors follow the recipe's formula,
written out here independently of the code, with depth and layer-index scaling; precedence, explain, verify."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

import netspec
from netspec.check.checks import detectable_ratio
from netspec.check.kit import NotFollowing, assert_follows, assert_same_distribution
from netspec.check.verify import render, verify_network
from netspec.errors import SpecError
from netspec.init.distributions import Constant, Distribution, Normal, TruncatedNormal
from netspec.init.recipes import RECIPES, ROLES
from netspec.report.summary import explain

FAMILY_ALPHA = 1e-6
"""Probability that any statistical check in one test fails for correct weights (Bonferroni over tensors)."""
RATIO = 1.6
"""Every tensor checked is large enough that its variance test detects a variance ratio of RATIO (< 2, so a
std off by √2 fails) with 80% power."""

GPT = """netspec: 1
seed: 3
constants: {{d: 64, heads: 4, n_layers: 4, vocab: 256, seq: 16}}
init: {init}
input: ["${{seq}}"]
blocks:
  block:
    params: {{d: {{type: integer}}}}
    layers:
      - {{type: layer_norm, name: ln_1}}
      - {{type: multi_head_attention, name: attn, heads: "${{heads}}", key_dim: "${{d // heads}}", causal: true}}
      - {{type: add, name: res_1, inputs: [input, attn]}}
      - {{type: layer_norm, name: ln_2}}
      - {{type: dense, name: c_fc, units: "${{4 * d}}", activation: gelu, role: residual_in}}
      - {{type: dense, name: c_proj, units: $d, role: residual_out}}
      - {{type: add, name: res_2, inputs: [res_1, c_proj]}}
layers:
  - {{type: embedding, name: wte, vocab: "${{vocab}}", dim: "${{d}}"}}
  - {{type: positional_embedding, name: wpe, length: "${{seq}}"}}
  - repeat: "${{n_layers}}"
    layers:
      - {{block: block, name: h, d: "${{d}}"}}
  - {{type: layer_norm, name: ln_f}}
  - {{type: dense, name: lm_head, units: "${{vocab}}", use_bias: false, role: readout}}
"""

LLAMA = """netspec: 1
seed: 5
constants: {{d: 64, heads: 4, n_layers: 3, ff: 128, vocab: 256}}
init: {init}
input: [8]
blocks:
  block:
    layers:
      - {{type: rms_norm, name: attention_norm}}
      - {{type: multi_head_attention, name: attention, heads: "${{heads}}", key_dim: "${{d // heads}}",
         use_bias: false, causal: true}}
      - {{type: add, name: res_1, inputs: [input, attention]}}
      - {{type: rms_norm, name: ffn_norm}}
      - {{type: dense, name: w1, units: "${{ff}}", activation: silu, use_bias: false, role: residual_in}}
      - {{type: dense, name: w3, units: "${{ff}}", use_bias: false, role: residual_up, inputs: ffn_norm}}
      - {{type: multiply, name: gated, inputs: [w1, w3]}}
      - {{type: dense, name: w2, units: "${{d}}", use_bias: false, role: residual_out}}
      - {{type: add, name: res_2, inputs: [res_1, w2]}}
layers:
  - {{type: embedding, name: tok_embeddings, vocab: "${{vocab}}", dim: "${{d}}"}}
  - repeat: "${{n_layers}}"
    layers:
      - {{block: block, name: layers}}
  - {{type: rms_norm, name: norm}}
  - {{type: dense, name: output, units: "${{vocab}}", use_bias: false, role: readout}}
"""

RESNET = """netspec: 1
seed: 11
init: {init}
input: [8, 8, 16]
blocks:
  basic:
    layers:
      - {{type: conv2d, name: conv1, filters: 16, kernel: 3, padding: same, activation: relu, use_bias: false,
         role: residual_in}}
      - {{type: conv2d, name: conv2, filters: 16, kernel: 3, padding: same, use_bias: false, role: residual_out}}
      - {{type: batch_norm, name: bn2, role: gate}}
      - {{type: add, name: sum, inputs: [input, bn2]}}
layers:
  - {{type: conv2d, name: stem, filters: 16, kernel: 3, padding: same, activation: relu}}
  - {{type: batch_norm, name: stem_bn}}
  - repeat: 3
    layers:
      - {{block: basic, name: block}}
  - {{type: global_avg_pool, name: pool}}
  - {{type: dense, name: fc, units: 100, role: readout}}
"""


def build(template: str, init: str) -> tuple[Any, dict[str, np.ndarray]]:
    net = netspec.loads(template.format(init=init), "recipe.yaml")
    return net, net.initialize()


def scaled(dist: Distribution, factor: float) -> Distribution:
    if isinstance(dist, Normal):
        return Normal(dist.loc, dist.scale * factor)
    assert isinstance(dist, TruncatedNormal)
    return TruncatedNormal(dist.loc, dist.scale * factor, dist.a, dist.b)


def check_laws(net: Any, params: dict[str, np.ndarray], expected: dict[str, Distribution]) -> None:
    """Each tensor's declaration equals the law (float rounding only) and its values follow it; a law off by
    √2 in std, up or down, fails (each test at FAMILY_ALPHA / m: |z| <= z_crit)."""
    declared = dict(net.parameters())
    random = [n for n, d in expected.items() if not isinstance(d, Constant)]
    z_crit = -NormalDist().inv_cdf(FAMILY_ALPHA / max(1, len(random)) / 2)
    for name, law in expected.items():
        assert_same_distribution(declared[name].declared(), law)
        values = params[name].astype(np.float64).ravel()
        if isinstance(law, Constant):
            assert np.all(values == law.value), name
            continue
        alpha = 2 * (1 - NormalDist().cdf(z_crit))
        ratio = detectable_ratio(law, values.size, alpha)
        assert ratio is not None and ratio < RATIO, (name, values.size, ratio)  # strong enough to fail at √2
        assert_follows(values, law, z_crit=z_crit, fit_alpha=FAMILY_ALPHA / len(random))
        for factor in (math.sqrt(2), 1 / math.sqrt(2)):
            with pytest.raises(NotFollowing):
                assert_follows(values, scaled(law, factor), z_crit=z_crit, fit_alpha=None)


def trunc(std: float, cut: float = 3.0) -> TruncatedNormal:
    return TruncatedNormal(0.0, std, -cut, cut)


def gpt_laws(residual_std: float, std: float) -> dict[str, Distribution]:
    laws: dict[str, Distribution] = {"wte.weights": Normal(0, std), "wpe.weights": Normal(0, std),
                                     "lm_head.weights": Normal(0, std), "ln_f.gamma": Constant(1.0)}  # fmt: skip
    for k in (1, 4):
        h = f"h_{k}"
        laws |= {f"{h}.attn.{p}.weights": Normal(0, std) for p in ("query", "key", "value")}
        laws |= {f"{h}.attn.output.weights": Normal(0, residual_std), f"{h}.c_fc.weights": Normal(0, std),
                 f"{h}.c_proj.weights": Normal(0, residual_std), f"{h}.c_proj.bias": Constant(0.0),
                 f"{h}.attn.output.bias": Constant(0.0), f"{h}.ln_1.gamma": Constant(1.0),
                 f"{h}.ln_2.beta": Constant(0.0)}  # fmt: skip
    return laws


def test_gpt2_scales_residual_outputs_by_depth() -> None:
    net, params = build(GPT, '{recipe: gpt2, std: 0.02, layers: "${n_layers}"}')
    check_laws(net, params, gpt_laws(0.02 / math.sqrt(2 * 4), 0.02))


def test_megatron_is_gpt2_with_megatrons_names() -> None:
    net, params = build(GPT, "{recipe: megatron, init_method_std: 0.03, num_layers: 6}")
    check_laws(net, params, gpt_laws(0.03 / math.sqrt(2 * 6), 0.03))
    net, params = build(GPT, "{recipe: megatron, num_layers: 6, multiplier: 1.0}")
    check_laws(net, params, {"h_2.c_proj.weights": Normal(0, 0.02 / math.sqrt(6))})


def test_small_init_and_wang_init() -> None:
    net, params = build(GPT, "{recipe: small_init, width: 64, layers: 4}")
    small = math.sqrt(2 / (5 * 64))
    check_laws(net, params, {"wte.weights": Normal(0, small), "h_1.c_fc.weights": Normal(0, small),
                             "h_3.attn.query.weights": Normal(0, small), "lm_head.weights": Normal(0, small),
                             "h_2.c_proj.weights": Normal(0, 2 / (4 * math.sqrt(64))),
                             "h_2.attn.output.weights": Normal(0, 2 / (4 * math.sqrt(64)))})  # fmt: skip
    net, params = build(GPT, "{recipe: small_init, width: 64}")  # without layers: small_init everywhere
    check_laws(net, params, {"h_2.c_proj.weights": Normal(0, small)})


def test_olmo_mitchell_scales_residual_outputs_by_layer_index() -> None:
    net, params = build(GPT, "{recipe: olmo_mitchell}")
    laws: dict[str, Distribution] = {"wte.weights": trunc(1 / math.sqrt(64)), "wpe.weights": trunc(1 / math.sqrt(64)),
                                     "lm_head.weights": trunc(1 / math.sqrt(64))}  # fmt: skip
    for k in (1, 2, 4):  # index k is the 0-based layer l = k - 1
        laws[f"h_{k}.attn.query.weights"] = trunc(1 / math.sqrt(64))
        laws[f"h_{k}.c_fc.weights"] = trunc(1 / math.sqrt(64))
        laws[f"h_{k}.attn.output.weights"] = trunc(1 / math.sqrt(2 * 64 * k))
        laws[f"h_{k}.c_proj.weights"] = trunc(1 / math.sqrt(2 * 256 * k))  # d_in of ff_out: the MLP width
    check_laws(net, params, laws)


def test_llama_depth_scales_wo_w2_and_w3_by_layer_index() -> None:
    net, params = build(LLAMA, "{recipe: llama_depth}")
    laws: dict[str, Distribution] = {"tok_embeddings.weights": Normal(0, 1.0), "output.weights": trunc(64**-0.5),
                                     "norm.gamma": Constant(1.0)}  # fmt: skip
    for k in (1, 2, 3):
        deep = 0.02 / math.sqrt(2 * k)
        laws |= {f"layers_{k}.attention.{p}.weights": trunc(0.02) for p in ("query", "key", "value")}
        laws |= {f"layers_{k}.w1.weights": trunc(0.02), f"layers_{k}.attention.output.weights": trunc(deep),
                 f"layers_{k}.w2.weights": trunc(deep), f"layers_{k}.w3.weights": trunc(deep),
                 f"layers_{k}.ffn_norm.gamma": Constant(1.0)}  # fmt: skip
    check_laws(net, params, laws)


T5_BLOCK = """netspec: 1
seed: 9
init: {init}
input: [8]
layers:
  - {{type: embedding, name: shared, vocab: 512, dim: 64}}
  - repeat: 2
    layers:
      - {{type: layer_norm, name: ln}}
      - {{type: multi_head_attention, name: attn, heads: 4, key_dim: 16, use_bias: false}}
      - {{type: dense, name: wi, units: 256, activation: relu, use_bias: false, role: residual_in}}
      - {{type: dense, name: wo, units: 64, use_bias: false, role: residual_out}}
  - {{type: dense, name: lm_head, units: 512, use_bias: false, role: readout}}
"""


def test_t5_per_projection_factors() -> None:
    f, d, d_kv, heads, d_ff = 1.5, 64, 16, 4, 256
    net, params = build(T5_BLOCK, "{recipe: t5, factor: 1.5}")
    check_laws(net, params, {
        "shared.weights": Normal(0, f), "lm_head.weights": Normal(0, f),
        "attn_1.query.weights": Normal(0, f / math.sqrt(d * d_kv)), "attn_2.key.weights": Normal(0, f / math.sqrt(d)),
        "attn_1.value.weights": Normal(0, f / math.sqrt(d)),
        "attn_2.output.weights": Normal(0, f / math.sqrt(heads * d_kv)),
        "wi_1.weights": Normal(0, f / math.sqrt(d)), "wo_2.weights": Normal(0, f / math.sqrt(d_ff)),
        "ln_1.gamma": Constant(f), "ln_2.beta": Constant(0.0),
    })  # fmt: skip


def test_deepnet_beta_on_ffn_value_and_output() -> None:
    beta = (8 * 4) ** -0.25

    def xavier(gain: float, fan_in: int, fan_out: int) -> Normal:
        return Normal(0, gain * math.sqrt(2 / (fan_in + fan_out)))

    net, params = build(GPT, "{recipe: deepnet, layers: 4}")
    check_laws(net, params, {
        "h_1.c_fc.weights": xavier(beta, 64, 256), "h_2.c_proj.weights": xavier(beta, 256, 64),
        "h_3.attn.value.weights": xavier(beta, 64, 64), "h_4.attn.output.weights": xavier(beta, 64, 64),
        "h_1.attn.query.weights": xavier(1.0, 64, 64), "h_1.attn.key.weights": xavier(1.0, 64, 64),
    })  # fmt: skip
    table = dict(net.parameters())["wte.weights"].declared()
    assert table == Normal(0.0, 1.0)  # left to the spec: the embedding's own auto, N(0, 1)


def test_fixup_scales_branches_and_zeros_their_last_layer() -> None:
    net, params = build(RESNET, "{recipe: fixup, layers: 3}")
    he_fan_out = math.sqrt(2 / (16 * 9))  # Fixup's std: sqrt(2 / (out channels * kernel area)) ...
    check_laws(net, params, {
        "block_1.conv1.weights": Normal(0, he_fan_out * 3**-0.5),  # ... times L^(-1/(2m-2)), m = 2
        "block_3.conv1.weights": Normal(0, he_fan_out * 3**-0.5),
        "block_2.conv2.weights": Constant(0.0), "fc.weights": Constant(0.0), "fc.bias": Constant(0.0),
    })  # fmt: skip
    net, params = build(RESNET, "{recipe: fixup, layers: 3, branch_layers: 3}")
    check_laws(net, params, {"block_2.conv1.weights": Normal(0, he_fan_out * 3**-0.25)})
    assert dict(net.parameters())["stem.weights"].initializer.name == "he_normal"  # not a branch: its own auto


def test_zero_residual_zeros_the_gates_only() -> None:
    net, params = build(RESNET, "{recipe: zero_residual}")
    check_laws(net, params, {"block_1.bn2.gamma": Constant(0.0), "block_3.bn2.gamma": Constant(0.0),
                             "stem_bn.gamma": Constant(1.0), "block_2.bn2.beta": Constant(0.0)})  # fmt: skip
    declared = dict(net.parameters())
    assert declared["block_1.conv2.weights"].initializer.name == "glorot_uniform"  # not a gate: auto as before
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 16)).astype(np.float32)
    outputs = {cl.name: y for cl, _, y in net.trace(x, params)}
    assert np.array_equal(outputs["block_3.sum"], outputs["stem_bn"])  # every block starts as the identity


def mup_specs(tmp_path: Path, base_width: int, width: int) -> Path:
    template = """netspec: 1
seed: 2
constants: {{d: {d}}}
init: {{recipe: mup, std: 0.05{base}}}
input: [4, 32]
layers:
  - {{type: dense, name: input_layer, units: "${{d}}", activation: relu}}
  - repeat: 2
    layers:
      - {{type: dense, name: hidden, units: "${{d}}", activation: relu}}
  - {{type: multi_head_attention, name: attn, heads: 4, key_dim: "${{d // 4}}", inputs: hidden_2}}
  - {{type: dense, name: readout, units: 10, role: readout}}
"""
    (tmp_path / "mup-base.yaml").write_text(template.format(d=base_width, base=""))
    spec = tmp_path / "mup.yaml"
    spec.write_text(template.format(d=width, base=", base: mup-base.yaml"))
    return spec


def test_mups_width_multiplier_reads_kernels_in_the_torch_exporters_layout(monkeypatch) -> None:
    """Review F8: muP's width multiplier (the last width dimension in PyTorch's layout) used a copy of the
    layout rule; it uses netspec.init.fans.torch_layout, the rule the torch exporter and the conformance
    tests check. Shown by changing that rule: the multiplier follows it for kernels, not for tables."""
    from netspec.init import fans
    from netspec.init.fans import Fans
    from netspec.init.recipes import MuP, Tensor

    mup = MuP()
    kernel = Tensor("k", "hidden", "kernel", (3, 3, 64, 256), Fans(576, 2304, 9), base_shape=(3, 3, 16, 32))
    table = Tensor("e", "embedding", "table", (1000, 256), Fans(1000, 256), base_shape=(1000, 32))
    assert mup.width_multiplier(kernel) == 64 / 16 and mup.width_multiplier(table) == 256 / 32  # (out, in, *k)
    monkeypatch.setattr(fans, "torch_layout", lambda shape: tuple(shape))  # netspec's own (*k, in, out) order
    assert mup.width_multiplier(kernel) == 256 / 32 and mup.width_multiplier(table) == 256 / 32


def test_mup_scales_hidden_std_by_the_width_multiplier_and_records_it(tmp_path: Path) -> None:
    spec = mup_specs(tmp_path, 32, 128)
    net = netspec.load(str(spec))
    params = net.initialize()
    m = 128 / 32
    check_laws(net, params, {
        "input_layer.weights": Normal(0, 0.05),  # (32, d): one width dimension
        "hidden_1.weights": Normal(0, 0.05 / math.sqrt(m)), "hidden_2.weights": Normal(0, 0.05 / math.sqrt(m)),
        "attn.key.weights": Normal(0, 0.05 / math.sqrt(m)), "attn.output.weights": Normal(0, 0.05 / math.sqrt(m)),
        "attn.query.weights": Constant(0.0), "readout.weights": Constant(0.0), "readout.bias": Constant(0.0),
        "hidden_1.bias": Constant(0.0),
    })  # fmt: skip
    assert net.width_mult["hidden_1.weights"] == m and net.width_mult["readout.weights"] == m  # fan_in is the width
    assert net.width_mult["input_layer.weights"] == m and net.width_mult["hidden_1.bias"] == m
    from netspec.io.weights import load_metadata, save

    out = tmp_path / "w.safetensors"
    save(params, str(out), netspec.io.weights.metadata_for(net))
    assert json.loads(load_metadata(str(out))["netspec_width_mult"])["hidden_2.weights"] == m
    base = netspec.load(str(tmp_path / "mup-base.yaml"))  # the base itself: no base, every multiplier 1
    assert base.width_mult == {}
    assert dict(base.parameters())["hidden_1.weights"].declared() == Normal(0.0, 0.05)


def test_mup_base_must_be_the_same_network(tmp_path: Path) -> None:
    spec = mup_specs(tmp_path, 32, 128)
    (tmp_path / "mup-base.yaml").write_text("netspec: 1\ninput: [4, 32]\nlayers:\n  - {type: dense, name: input_layer, "
                                            "units: 8}\n")  # fmt: skip
    with pytest.raises(SpecError, match=r"the base spec has no tensor hidden_1\.weights"):
        netspec.load(str(spec))
    spec.write_text(spec.read_text().replace("mup-base.yaml", "../outside.yaml"))
    with pytest.raises(SpecError, match=r"outside the repository|no such file"):
        netspec.load(str(spec))


def test_precedence_layer_key_then_recipe_then_defaults_then_auto() -> None:
    text = """netspec: 1
init: {recipe: gpt2, layers: 2}
defaults: {weights: he_normal, bias: ones}
input: [16]
layers:
  - {type: dense, name: own, units: 32, weights: {name: normal, std: 0.5}, role: residual_out}
  - {type: dense, name: recipe, units: 32, role: residual_out}
  - {type: lstm, name: rnn, units: 8, inputs: input}
"""
    net = netspec.loads(text.replace("inputs: input}", "inputs: recipe}").replace("input: [16]", "input: [4, 16]"))
    declared = {n: p.declared() for n, p in net.parameters()}
    assert declared["own.weights"] == Normal(0.0, 0.5)  # the layer's own key
    assert declared["own.bias"] == Constant(0.0)  # the recipe, over defaults.bias
    assert declared["recipe.weights"] == Normal(0.0, 0.02 / 2)  # the recipe, over defaults.weights
    assert dict(net.parameters())["rnn.weights"].initializer.name == "glorot_uniform"  # no recipe rule: auto
    entries = {e["parameter"]: e for e in explain(net)}
    assert entries["recipe.weights"]["recipe"] == {"recipe": "gpt2", "role": "residual_out",
                                                   "rule": "N(0, (σ/√(2L))²)", "values": "σ = 0.02, L = 2"}
    assert entries["recipe.weights"]["origin"] == ("recipe gpt2, role residual_out: N(0, (σ/√(2L))²) with σ = 0.02, "
                                                   "L = 2")  # fmt: skip
    assert "over recipe gpt2 for role residual_out" in entries["own.weights"]["origin"]
    assert "recipe" not in entries["rnn.weights"]


def test_attention_roles_can_be_overridden_per_projection() -> None:
    text = GPT.format(init="{recipe: gpt2, layers: 4}").replace(
        "causal: true}", "causal: true, role: {output: hidden, query: residual_out}}")
    declared = {n: p.declared() for n, p in netspec.loads(text).parameters()}
    assert declared["h_1.attn.output.weights"] == Normal(0.0, 0.02)
    assert declared["h_1.attn.query.weights"] == Normal(0.0, 0.02 / math.sqrt(8))


def test_verify_catches_a_scaling_that_did_not_apply() -> None:
    """The transformers#47458 failure: every c_proj drawn at 0.02 instead of 0.02/sqrt(2L)."""
    net, params = build(GPT, '{recipe: gpt2, layers: "${n_layers}"}')
    rng = np.random.default_rng(0)
    broken = dict(params)
    for k in range(1, 5):
        broken[f"h_{k}.c_proj.weights"] = (rng.standard_normal((256, 64)) * 0.02).astype(np.float32)
    report = verify_network(net, broken, reproduce=False)
    failed = {t.name for t in report.tensors if t.verdict == "FAIL"}
    assert failed == {f"h_{k}.c_proj.weights" for k in range(1, 5)}
    assert "declared by recipe gpt2, role residual_out: N(0, (σ/√(2L))²) with σ = 0.02, L = 4" in render(report)
    assert verify_network(net, params, reproduce=False).passed


@pytest.mark.parametrize(
    ("init", "found"),
    [("recipe: gtp2\n  layers: 2", [(3, "init.recipe", "did you mean 'gpt2'?")]),
     ("recipe: gpt2", [(3, "init", "missing required key 'layers'")]),
     ("recipe: gpt2\n  layers: 2\n  sdt: 0.1", [(5, "init.sdt", "unknown key 'sdt'")]),
     ("recipe: gpt2\n  layers: 0\n  std: -1", [(4, "init.layers", "0 is out of range: must be >= 1"),
                                             (5, "init.std", "-1 is out of range: must be > 0")]),
     ("recipe: fixup\n  layers: 2\n  branch_layers: 1", [(5, "init.branch_layers", "must be >= 2")])],
)  # fmt: skip
def test_recipe_errors_are_located(init: str, found: list[tuple[int, str, str]]) -> None:
    """Each error at the parameter at fault (review F7: value errors were all reported at init.recipe, and only
    the first of them), written in block style so that every parameter has a line of its own."""
    with pytest.raises(SpecError) as info:
        netspec.loads(f"netspec: 1\ninit:\n  {init}\ninput: [4]\nlayers:\n  - {{type: dense, units: 2}}\n", "r.yaml")
    got = info.value.diagnostics
    assert [(d.line, d.path) for d in got] == [(line, path) for line, path, _ in found], got
    assert all(words in d.message for d, (_, _, words) in zip(got, found, strict=True)), got


def test_a_recipes_parameter_errors_are_all_located_where_the_schema_cannot_see_them() -> None:
    """Built from the document directly (what the schema would have refused first), every problem the recipe
    finds is located at its parameter, and a missing required one at 'recipe'."""
    from netspec.init.recipes import RecipeParameterError
    from netspec.spec.init_recipe import load_recipe
    from netspec.spec.loader import load_text

    doc = load_text("netspec: 1\ninit:\n  recipe: megatron\n  multiplier: 0\n  init_method_std: .nan\n", "r.yaml")
    _, diags = load_recipe(doc, None, lambda *_: {})
    assert [(d.line, d.path) for d in diags] == [(5, "init.init_method_std"), (4, "init.multiplier"),
                                                 (3, "init.recipe")]  # fmt: skip
    assert "finite number" in diags[0].message and "> 0" in diags[1].message
    assert "needs 'num_layers'" in diags[2].message
    with pytest.raises(RecipeParameterError) as info:
        RECIPES.build({"name": "fixup", "layers": 0, "branch_layers": 1})
    assert [key for key, _ in info.value.problems] == ["layers", "branch_layers"]


def test_a_recipe_that_needs_the_layer_index_outside_a_repeat_says_so() -> None:
    with pytest.raises(SpecError) as info:
        netspec.loads("netspec: 1\ninit: {recipe: llama_depth}\ninput: [4]\nlayers:\n"
                      "  - {type: dense, name: w2, units: 4, role: residual_out}\n", "r.yaml")  # fmt: skip
    (d,) = info.value.diagnostics
    assert (d.line, d.path) == (5, "layers[0]") and "layer index" in d.message and "repeat" in d.message


def test_every_recipe_documents_its_formula_and_source() -> None:
    for name in RECIPES:
        cls = RECIPES[name]
        doc = cls.__doc__ or ""
        assert "Follows" in doc and cls.SOURCE and cls.RULES, name
        assert set(ROLES) >= {r.strip() for key in cls.RULES for r in key.split(",")} - {
            "bias", "norm", "every other kernel", "every kernel", "embedding", "hidden (two width dims)",
            "one width dim", "residual_out (with layers)"}, name  # fmt: skip


def test_the_readme_table_lists_every_recipe_with_its_source() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("### Init recipes") : readme.index("### Reproducibility")]
    rows = {line.split("`")[1]: line for line in section.splitlines() if line.startswith("| `")}
    assert set(rows) == set(RECIPES)
    for name, row in rows.items():
        assert row.count("|") == 4 and len(row.split("|")[3].strip()) > 10, name  # a source named


def test_the_recipe_ranks_above_defaults_auto_next() -> None:
    text = """netspec: 1
init: {recipe: gpt2, layers: 2}
defaults: {weights: auto_next}
input: [16]
layers:
  - {type: dense, name: fc, units: 32, role: residual_out}
  - {type: batch_norm, name: bn}
  - {type: activation, name: act, activation: relu}
  - {type: dense, name: own, units: 8, weights: auto_next}
"""
    net = netspec.loads(text)
    declared = {n: p.declared() for n, p in net.parameters()}
    assert declared["fc.weights"] == Normal(0.0, 0.01)  # the recipe, not defaults' auto_next (He normal)
    assert dict(net.parameters())["own.weights"].initializer.name == "glorot_uniform"  # its own key: the output


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_git_revision_reads_its_own_mup_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from netspec.vcs.diff import diff_sides, read_side

    spec = mup_specs(tmp_path, 32, 128)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "one"]):
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=tmp_path, check=True,
                       capture_output=True)  # fmt: skip
    base = tmp_path / "mup-base.yaml"
    base.write_text(base.read_text().replace("d: 32", "d: 64"))  # only the base changes: m 4 -> 2
    monkeypatch.chdir(tmp_path)
    d = diff_sides(read_side(f"HEAD:{spec.name}"), read_side(spec.name))
    changed = dict(d.tensors)
    assert "hidden_1.weights" in changed and "input_layer.weights" not in changed  # σ/√m moved; σ did not
    assert "N(0, 0.025²) -> N(0, 0.03536²)" in changed["hidden_1.weights"]
