"""netspec diagnose and netspec plot: statistics against a direct NumPy computation, --compare,
--fail-if, plots read back from the figure data, atomic files, missing extras."""

import json
import struct
import sys

import numpy as np
import pytest

import netspec
from netspec.cli import main
from netspec.diagnose.report import Condition, diagnose
from netspec.diagnose.stats import layer_stats, reinitialized
from netspec.errors import UsageError

SPEC = """netspec: 1
seed: 3
input: [6]
layers:
  - {type: dense, name: a, units: 8, activation: tanh}
  - {type: dense, name: b, units: 8, activation: relu, bias: {name: constant, value: -0.3}}
  - {type: dense, name: c, units: 3, activation: sigmoid, weights: {name: normal, std: 3.0}}
  - {type: dense, name: out, units: 2, activation: softmax}
"""


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(SPEC)
    return path


def test_layer_statistics_equal_a_direct_computation():
    net = netspec.loads(SPEC, "small.yaml")
    p = net.initialize()
    x = np.random.default_rng(1).standard_normal((50, 6)).astype(np.float32)
    stats = {s.name: s for s in layer_stats(net, p, x)}
    pre_a = x @ p["a.weights"] + p["a.bias"]
    a = np.tanh(pre_a)
    pre_b = a @ p["b.weights"] + p["b.bias"]
    b = np.maximum(pre_b, 0)
    pre_c = b @ p["c.weights"] + p["c.bias"]
    c = 1 / (1 + np.exp(-pre_c))
    assert stats["a"].pre_std == pytest.approx(pre_a.std(), rel=1e-5)
    assert stats["a"].std == pytest.approx(a.std(), rel=1e-5) and stats["a"].mean == pytest.approx(a.mean(), abs=1e-6)
    assert stats["a"].saturated == pytest.approx((np.abs(a) > 0.99).mean())
    assert stats["b"].dead == pytest.approx((b <= 0).all(axis=0).mean()) and stats["b"].saturated is None
    assert stats["c"].saturated == pytest.approx(((c < 0.01) | (c > 0.99)).mean())
    assert stats["c"].saturated > 0  # std 3 weights saturate the sigmoid: the statistic is not vacuous
    assert stats["out"].dead is None


def test_compare_replaces_only_the_weights_initializers():
    net = netspec.loads(SPEC, "small.yaml")
    other = reinitialized(net, "he_uniform")
    before, after = dict(net.parameters()), dict(other.parameters())
    for name, p in after.items():
        if name.endswith(".weights"):
            assert p.initializer.get_config()["name"] == "he_uniform"
        else:
            assert p.initializer == before[name].initializer
    with pytest.raises(UsageError, match="did you mean"):
        reinitialized(net, "he_unifrom")
    runs = diagnose(net, np.ones((4, 6), dtype=np.float32), ["he_uniform", "orthogonal"], "auto", gradients=False)
    assert [r.initializer for r in runs] == ["spec", "he_uniform", "orthogonal"]


def test_conditions_parse_and_name_the_layer():
    net = netspec.loads(SPEC, "small.yaml")
    run = diagnose(net, np.random.default_rng(0).standard_normal((64, 6)).astype(np.float32), [], "auto",
                   gradients=False)[0]  # fmt: skip
    hidden = [s for s in run.layers if s.pre_std is not None and s.name != "out"]  # not the softmax output
    assert run.std_ratio == pytest.approx(hidden[-1].std / hidden[0].std)
    assert Condition.parse("std_ratio > 0").failures(run) and not Condition.parse("std_ratio<0").failures(run)
    saturated = Condition.parse("saturated>0").failures(run)
    assert saturated and all(m.startswith("layer ") for m in saturated)
    for bad in ("ratio<1", "dead>>1", "dead>", "std_ratio<x"):
        with pytest.raises(UsageError):
            Condition.parse(bad)


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_json_fail_if_and_usage_errors(spec_file, capsys):
    code, out, _ = _cli(capsys, "diagnose", spec_file, "--no-gradients", "--json", "--compare", "lecun_normal")
    doc = json.loads(out)
    assert code == 0 and [r["initializer"] for r in doc["runs"]] == ["spec", "lecun_normal"]
    assert [layer["name"] for layer in doc["runs"][0]["layers"]] == ["a", "b", "c", "out"]
    code, _, err = _cli(capsys, "diagnose", spec_file, "--no-gradients", "--fail-if", "saturated>0")
    assert code == 1 and "check failed: layer c: saturated" in err
    code, _, err = _cli(capsys, "diagnose", spec_file, "--no-gradients", "--fail-if", "nonsense")
    assert code == 2 and "METRIC OP NUMBER" in err
    code, _, err = _cli(capsys, "diagnose", spec_file, "--plot", "out.pdf")
    assert code == 2 and ".png" in err
    code, _, err = _cli(capsys, "diagnose", spec_file.parent / "missing.yaml")
    assert code == 1 and "no such file" in err


def test_missing_torch_reports_forward_statistics_says_gradients_were_skipped_and_exits_0(spec_file, capsys,
                                                                                         monkeypatch):  # fmt: skip
    monkeypatch.setitem(sys.modules, "torch", None)
    code, out, err = _cli(capsys, "diagnose", spec_file)
    assert code == 0 and "Traceback" not in err
    assert "gradients skipped: PyTorch is not installed" in err and "pip install" in err
    assert "tanh" in out and "gradients: PyTorch is not installed" in out  # the forward statistics came out
    code, out, _ = _cli(capsys, "diagnose", spec_file, "--json")
    assert code == 0 and "PyTorch is not installed" in json.loads(out)["runs"][0]["gradients_missing"]
    code, _, err = _cli(capsys, "diagnose", spec_file, "--fail-if", "saturated>0")  # checks still decide
    assert code == 1 and "check failed" in err


def test_std_ratio_leaves_out_a_softmax_output_layer(capsys):
    """specs/deep-relu-mlp-he.yaml: 8 He-initialized ReLU layers, a softmax head. He keeps E[y^2] through
    the ReLU layers (mean field), so the hidden std ratio is near 1 (measured 0.90 at batch 256); the
    softmax output's std is near 0.1 (10 classes), and counting it gave 0.14, failing 'std_ratio<0.5'."""
    net = netspec.load("specs/deep-relu-mlp-he.yaml")
    x = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    run = diagnose(net, x, [], "auto", gradients=False)[0]
    assert run.layers[-1].output and run.layers[-1].activation == "softmax"
    assert run.std_ratio == run.layers[-2].std / run.layers[0].std
    assert run.layers[-1].std / run.layers[0].std < 0.5 < run.std_ratio < 2
    code, _, err = _cli(capsys, "diagnose", "specs/deep-relu-mlp-he.yaml", "--no-gradients",
                        "--fail-if", "std_ratio<0.5", "--fail-if", "std_ratio>2")  # fmt: skip
    assert code == 0, err
    log = netspec.loads("netspec: 1\ninput: [4]\nlayers:\n  - {type: dense, units: 3, activation: log_softmax}\n")
    only = diagnose(log, np.ones((2, 4), np.float32), [], "auto", gradients=False)[0]
    assert only.std_ratio == 1.0  # nothing else to compare: the output layer is kept


def test_missing_matplotlib_is_a_message_and_exit_1(spec_file, capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = _cli(capsys, "diagnose", spec_file, "--no-gradients", "--plot", tmp_path / "x.png")
    assert code == 1 and "pip install 'netspec-nn[plot]'" in err and "tanh" in out
    assert not (tmp_path / "x.png").exists()


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_diagnose_plot_has_one_line_per_initializer(spec_file, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from netspec.diagnose import plots

    net = netspec.loads(SPEC, "small.yaml")
    runs = diagnose(net, np.ones((8, 6), dtype=np.float32), ["he_normal", "glorot_normal"], "auto", gradients=False)
    fig = plots.diagnose_figure(runs)
    std_axis = fig.axes[0]
    assert [line.get_label() for line in std_axis.get_lines()] == ["spec", "he_normal", "glorot_normal"]
    np.testing.assert_allclose(std_axis.get_lines()[1].get_ydata(), [s.std for s in runs[1].layers])
    lines = std_axis.get_lines()
    assert lines[0].get_zorder() > max(line.get_zorder() for line in lines[1:])  # the spec's line on top
    assert len({line.get_linestyle() for line in lines}) == 3  # coinciding lines stay visible
    assert len(fig.axes) == 1 + 4  # no empty gradient panel; a histogram per layer (4 layers)
    hists = fig.axes[1:]
    assert all(ax.get_yscale() == "log" for ax in hists)
    assert len({ax.get_xlim() for ax in hists}) == 1  # one shared x axis
    assert hists[1].get_title() == "b\n" + f"{np.mean(runs[0].layers[1].sample == 0):.0%} zeros"
    tanh = netspec.loads("netspec: 1\ninput: [6]\nlayers:\n  - {type: dense, units: 8, activation: tanh}\n")
    same = diagnose(tanh, np.ones((8, 6), dtype=np.float32), ["glorot_uniform"], "auto", gradients=False)
    labels = [line.get_label() for line in plots.diagnose_figure(same).axes[0].get_lines()]
    assert labels == ["spec", "glorot_uniform (= spec)"]  # auto chose glorot_uniform: the lines coincide
    code, _, _ = _cli(capsys, "diagnose", spec_file, "--no-gradients", "--plot", tmp_path / "d.png",
                      "--html", tmp_path / "r.html", "--compare", "he_normal")  # fmt: skip
    assert code == 0 and _png_size(tmp_path / "d.png") == (1200, 800)
    page = (tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") == 1 and "<pre>" in page
    assert not list(tmp_path.glob(".netspec-*"))  # no temporary files left


def test_plot_bounds_reproduces_seed_002_with_the_right_formulas(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from netspec.diagnose import plots

    fig = plots.bounds_figure(["xavier_simple", "glorot_uniform", "he_normal"], range(1, 101), 10)
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["xavier_simple (bound)", "glorot_uniform (bound)",
                                                    "he_normal (std)"]  # fmt: skip
    n = np.arange(1, 101)
    np.testing.assert_allclose(lines[0].get_ydata(), 1 / np.sqrt(n), rtol=1e-12)
    np.testing.assert_allclose(lines[1].get_ydata(), np.sqrt(6) / np.sqrt(n + 10), rtol=1e-12)  # with the sqrt(6)
    np.testing.assert_allclose(lines[2].get_ydata(), np.sqrt(2 / n), rtol=1e-12)
    svg = tmp_path / "b.svg"
    code, _, _ = _cli(capsys, "plot", "bounds", "--init", "glorot_uniform,he_uniform", "--fan-in", "1..50", "-o", svg)
    assert code == 0 and svg.read_text().lstrip().startswith("<?xml") and 'width="864pt"' in svg.read_text()
    code, _, err = _cli(capsys, "plot", "bounds", "--init", "glorot_unifrom", "-o", tmp_path / "c.png")
    assert code == 2 and "did you mean" in err and not (tmp_path / "c.png").exists()
    code, _, err = _cli(capsys, "plot", "bounds", "--init", "he_normal", "--fan-in", "5..2", "-o", svg)
    assert code == 2 and "A..B" in err



@pytest.mark.parametrize("loss", ["mean", "cross_entropy"])
def test_gradient_statistics_equal_finite_differences(loss):
    pytest.importorskip("torch")
    from netspec.diagnose.gradients import loss_for, parameter_stats

    text = SPEC.replace("seed: 3", "seed: 3\ndtype: float64")
    if loss == "mean":  # the mean of softmax outputs is constant: use a tanh head so the gradients are not all 0
        text = text.replace("activation: softmax", "activation: tanh")
    net = netspec.loads(text, "small.yaml")
    params = net.initialize()
    x = np.random.default_rng(4).standard_normal((5, 6))
    labels = np.random.default_rng(0).integers(0, 2, 5)  # the labels parameter_stats draws (seed 0)

    def value(p):
        y = net.forward(x, p)
        return float(y.mean()) if loss == "mean" else float(-np.log(y[np.arange(5), labels]).mean())

    stats = {s.name: s for s in parameter_stats(net, params, x, loss)[0]}
    assert loss_for(net, "auto") == loss and set(stats) == set(params)
    h = 1e-6
    for name, w in params.items():
        grad = np.empty_like(w)
        for i in np.ndindex(w.shape):
            up, down = dict(params), dict(params)
            up[name], down[name] = w.copy(), w.copy()
            up[name][i] += h
            down[name][i] -= h
            grad[i] = (value(up) - value(down)) / (2 * h)
        # central differences: error O(h^2 f''') + rounding O(eps / h) ~ 1e-10 on O(0.1) gradients
        assert stats[name].grad_std == pytest.approx(grad.std(), rel=1e-5, abs=1e-9), name
        if np.any(w):
            ratio = np.linalg.norm(grad) / np.linalg.norm(w)
            assert ratio > 1e-4 and stats[name].grad_to_weight == pytest.approx(ratio, rel=1e-5), name


def test_one_sample_and_a_dead_network(tmp_path, capsys):
    dead = tmp_path / "dead.yaml"
    dead.write_text("netspec: 1\ninput: [4]\nlayers:\n  - {type: dense, units: 3, activation: relu, weights: zeros}\n"
                    "  - {type: dense, units: 2, activation: relu}\n")  # fmt: skip
    code, out, err = _cli(capsys, "diagnose", dead, "--no-gradients", "--json", "--fail-if", "std_ratio<0.5")
    assert code == 1 and "std_ratio 0" in err and json.loads(out)["runs"][0]["std_ratio"] == 0.0
    code, out, _ = _cli(capsys, "diagnose", dead, "--input", "1,2,3,4", "--json")  # one sample, not a batch of 4
    assert code == 0 and json.loads(out)["batch"] == 1


def test_a_network_without_parameters_and_an_empty_input_are_not_internal_errors(tmp_path, capsys):
    pytest.importorskip("torch")
    spec = tmp_path / "pools.yaml"
    spec.write_text("netspec: 1\ninput: [null, 4]\nlayers:\n  - {type: max_pool1d, pool: 2}\n"
                    "  - {type: global_max_pool}\n")  # fmt: skip
    np.save(tmp_path / "x.npy", np.ones((2, 5, 4), np.float32))
    assert main(["diagnose", str(spec), "--input", str(tmp_path / "x.npy")]) == 0
    assert "gradients skipped: the network has no trainable parameters" in capsys.readouterr().err
    np.save(tmp_path / "empty.npy", np.ones((0, 5, 4), np.float32))
    assert main(["diagnose", str(spec), "--input", str(tmp_path / "empty.npy")]) == 1
    assert "nothing to diagnose, the input is empty (input [0, 5, 4])" in capsys.readouterr().err
