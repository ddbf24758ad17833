"""bfloat16 and float16: the float32 tensors rounded to nearest even, bit for bit, in every writer and
exporter, and judged against the rounded law by verify (valid false-alarm rate, still catches mistakes)."""

import json
import struct

import numpy as np
import pytest
from scipy import stats

import netspec
from netspec.check.verify import check_tensor, verify_network
from netspec.cli import main
from netspec.errors import InitializerError
from netspec.init.distributions import Normal, Uniform
from netspec.init.fans import compute_fans
from netspec.init.initializers import get_initializer
from netspec.init.precision import byte_view, round_bfloat16, round_float16, to_storage, widen
from netspec.init.rounding import stored
from netspec.init.streams import BlockStream
from netspec.io import weights as weights_io
from test_layer_registry import EXAMPLES, INTEGER_INPUTS

HALF = ("bfloat16", "float16")


def float32_patterns():
    """Every upper half-word with the rounding edges below it (ties, one below and above a tie, all ones),
    and two million random patterns; finite values only."""
    upper = np.arange(1 << 16, dtype=np.uint32) << 16
    lower = np.array([0, 1, 0x0FFF, 0x1000, 0x1001, 0x1FFF, 0x2000, 0x7FFF, 0x8000, 0x8001, 0xFFFF], np.uint32)
    words = (upper[:, None] | lower[None, :]).ravel()
    random = np.random.default_rng(7).integers(0, 2**32, 2_000_000, dtype=np.uint64).astype(np.uint32)
    x = np.concatenate([words, random]).view(np.float32)
    return x[np.isfinite(x)]


def test_bfloat16_rounding_is_ml_dtypes_and_torch():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = float32_patterns()
    x = x[np.abs(x) < 3.3e38]  # (larger ones round to infinity: refused, below)
    ours = round_bfloat16(x).view(np.uint16)
    assert np.array_equal(ours, x.astype(ml_dtypes.bfloat16).view(np.uint16))
    torch = pytest.importorskip("torch")
    theirs = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(ours, theirs)
    assert np.array_equal(widen(round_bfloat16(x)), x.astype(ml_dtypes.bfloat16).astype(np.float32))


def test_float16_rounding_is_ieee():
    x = float32_patterns()
    x = x[np.abs(x) < 65519]
    ours = round_float16(x).view(np.uint16)
    assert np.array_equal(ours, x.astype(np.float16).view(np.uint16))  # NumPy's cast: IEEE 754, to nearest even
    subnormal = np.abs(x) < 2.0**-14
    assert subnormal.sum() > 10_000 and np.array_equal(ours[subnormal], x[subnormal].astype(np.float16).view(np.uint16))
    torch = pytest.importorskip("torch")
    assert np.array_equal(ours, torch.from_numpy(x).to(torch.float16).view(torch.int16).numpy().view(np.uint16))


LIMITS = [(round_float16, 65519.996, 65520.0), (round_float16, -65519.996, -1e9), (round_bfloat16, 3.396e38, 3.4e38)]


@pytest.mark.parametrize(("fn", "largest", "value"), LIMITS)
def test_values_past_the_largest_finite_one_are_refused(fn, largest, value):
    assert np.isfinite(widen(fn(np.array([largest], np.float32)))).all()
    with pytest.raises(InitializerError, match="largest finite value"):
        fn(np.array([0.5, value], np.float32))


def test_a_float16_spec_whose_constant_overflows_is_exit_1(tmp_path, capsys):
    spec = tmp_path / "big.yaml"
    spec.write_text("netspec: 1\ninput: [3]\ndtype: float16\nlayers:\n"
                    "  - {type: dense, units: 2, bias: {name: constant, value: 70000}}\n")  # fmt: skip
    assert main(["build", str(spec), "-o", str(tmp_path / "w.safetensors")]) == 1
    assert "largest finite value" in capsys.readouterr().err
    assert not (tmp_path / "w.safetensors").exists()


SPEC = """netspec: 1
name: half
input: [5, 6]
rng: {rng}
layers:
  - {{type: lstm, name: rnn, units: 8, return_sequences: true}}
  - {{type: gru, name: gru, units: 4, return_sequences: true, convention: flax}}
  - {{type: multi_head_attention, name: att, heads: 2, key_dim: 3}}
  - {{type: layer_norm, name: norm}}
  - {{type: flatten}}
  - {{type: dense, name: a, units: 300, weights: {{name: normal, mean: 1.0, std: 0.01}}}}
  - {{type: dense, name: b, units: 300, weights: {{name: uniform, low: -0.3, high: 0.7}}}}
  - {{type: dense, name: c, units: 300, weights: {{name: he_normal, truncated: true}}}}
  - {{type: dense, name: d, units: 300, weights: {{name: identity, gain: 0.3}}, bias: {{name: constant, value: 0.1}}}}
"""


@pytest.mark.parametrize("rng", ["block", "block/2", "legacy"])
@pytest.mark.parametrize("precision", HALF)
def test_half_tensors_are_the_float32_tensors_rounded(rng, precision):
    f32 = netspec.loads(SPEC.format(rng=rng)).initialize()
    net = netspec.loads(SPEC.format(rng=rng) + f"dtype: {precision}\n")
    half = net.initialize()
    assert half.keys() == f32.keys() and net.nbytes == 2 * net.num_params
    for name, values in half.items():
        assert values.dtype.name == precision
        assert bytes(byte_view(values)) == bytes(byte_view(to_storage(f32[name], precision))), name
    report = verify_network(net, half)
    assert report.passed, [t.problems for t in report.tensors if t.problems]


def test_the_continuous_law_would_fail_a_correct_bfloat16_tensor():
    """N(1, 0.01²) in bfloat16 takes a few dozen values 2^-7 apart: the continuous fit test rejects it, the
    rounded law accepts it (what verify judges)."""
    values = widen(to_storage(Normal(1.0, 0.01).sample((20_000,), BlockStream(3, "w"), "float32"), "bfloat16"))
    assert len(np.unique(values)) < 40
    assert check_tensor("w", values, Normal(1.0, 0.01), 1e-3).verdict == "FAIL"
    assert check_tensor("w", values, stored(Normal(1.0, 0.01), "bfloat16"), 1e-3).verdict == "pass"


# Small tensors (20 values) of rounded laws, each test at A = 1e-3: failures stochastically below
# Binomial(N, A) per test, Binomial(N, 3A) per tensor; asserted at the one-sided 1 - 1e-6 quantile.
A = 1e-3
FALSE_ALARM_CASES = [
    ({"name": "normal", "mean": 1.0, "std": 0.01}, "bfloat16", 4000),
    ("he_normal", "bfloat16", 4000),
    ({"name": "uniform", "low": -0.3, "high": 0.7}, "float16", 4000),
    ({"name": "he_normal", "truncated": True}, "bfloat16", 4000),
]


@pytest.mark.parametrize(("config", "precision", "count"), FALSE_ALARM_CASES, ids=lambda v: str(v)[:24])
def test_rounded_laws_keep_their_false_alarm_rate(config, precision, count):
    shape = (4, 5)
    init = get_initializer(config)
    flat = init((count * 4, 5), BlockStream(2024, "false-alarms"), "float32", fans=compute_fans(shape))
    tensors = widen(to_storage(flat, precision)).reshape(count, *shape)
    law = stored(init.declared(shape), precision)
    failures = {"tensor": 0, "mean": 0, "variance": 0, "fit": 0}
    for values in tensors:
        report = check_tensor("w", values, law, A)
        assert report.tests["bounds"] == "pass"
        failures["tensor"] += report.verdict == "FAIL"
        for test in ("mean", "variance", "fit"):
            failures[test] += report.tests[test] == "FAIL"
    assert failures["tensor"] <= stats.binom.ppf(1 - 1e-6, count, 3 * A), failures
    assert max(failures[t] for t in ("mean", "variance", "fit")) <= stats.binom.ppf(1 - 1e-6, count, A), failures


MISTAKES = [  # (drawn, declared): a variance off by 2, a limit off by sqrt 2, uniform for normal at equal variance
    (Normal(0.0, 0.02 * 2**0.5), Normal(0.0, 0.02), "variance"),
    (Uniform(-0.05 * 2**0.5, 0.05 * 2**0.5), Uniform(-0.05, 0.05), "bounds"),
    (Uniform(-0.02 * 3**0.5, 0.02 * 3**0.5), Normal(0.0, 0.02), "fit"),
]


@pytest.mark.parametrize("precision", HALF)
@pytest.mark.parametrize(("drawn", "declared", "test"), MISTAKES, ids=lambda v: str(v)[:20])
def test_rounded_laws_still_catch_mistakes(drawn, declared, test, precision):
    values = widen(to_storage(drawn.sample((20_000,), BlockStream(5, "m"), "float32"), precision))
    report = check_tensor("w", values, stored(declared, precision), 1e-3 / 3)
    assert report.verdict == "FAIL" and report.tests[test] == "FAIL", report.problems


def _net(layer_type, precision):
    shape, layer = EXAMPLES[layer_type]
    return netspec.loads(f"netspec: 1\ninput: {shape}\ndtype: {precision}\nlayers:\n  - {layer}\n"), shape


def _x(layer_type, shape, n=3):
    rng = np.random.default_rng(0)
    if layer_type in INTEGER_INPUTS:
        return rng.integers(0, 11, (n, *shape))
    return rng.standard_normal((n, *shape)).astype(np.float32)


def _same(back, params):
    assert back.keys() == params.keys()
    for k in params:
        assert back[k].dtype == params[k].dtype and back[k].shape == params[k].shape, k
        assert bytes(byte_view(back[k])) == bytes(byte_view(params[k])), k


@pytest.mark.parametrize("precision", HALF)
@pytest.mark.parametrize("layer_type", sorted(EXAMPLES))
def test_every_layer_type_exports_the_half_type(layer_type, precision, tmp_path):
    """Every target stores the half type and reads back the same bytes; the runtimes compute in float32 from
    the stored values and agree with netspec's forward pass (which widens them the same way)."""
    net, shape = _net(layer_type, precision)
    params = net.initialize()
    x = _x(layer_type, shape)
    expected = net.forward(x, params)
    torch = pytest.importorskip("torch")
    from netspec.export import torch as ntorch

    module = ntorch.to_module(net, params)
    assert all(str(t.dtype) == f"torch.{precision}" for t in module.netspec_parameters().values())
    for suffix in (".pt", ".safetensors"):
        ntorch.save(net, params, str(tmp_path / f"m{suffix}"))
        _same(ntorch.read_file(net, str(tmp_path / f"m{suffix}")), params)
    with torch.no_grad():
        out = module.float()(torch.as_tensor(x))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
    pytest.importorskip("onnxruntime")
    from netspec.export import onnx as nonnx

    nonnx.save(net, params, str(tmp_path / "m.onnx"))
    _same(nonnx.read_file(net, str(tmp_path / "m.onnx")), params)
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    feeds = {session.get_inputs()[0].name: x if layer_type in INTEGER_INPUTS else x.astype(np.float32)}
    np.testing.assert_allclose(session.run(None, feeds)[0], expected, rtol=1e-5, atol=1e-5)
    pytest.importorskip("flax")
    from netspec.export import flax as nflax

    nflax.save(net, params, str(tmp_path / "v.msgpack"))
    _same(nflax.read_file(net, str(tmp_path / "v.msgpack")), params)
    if precision == "bfloat16":  # (each Flax apply compiles: one precision is enough for the arithmetic)
        out = nflax.to_module(net).apply(nflax.variables(net, params), x)
        np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=1e-5)


def test_safetensors_records_the_half_types(tmp_path):
    net = netspec.loads(SPEC.format(rng="block"))
    for precision, code in (("bfloat16", "BF16"), ("float16", "F16")):
        params = {k: to_storage(v, precision) for k, v in net.initialize().items()}
        path = tmp_path / f"{precision}.safetensors"
        weights_io.save(params, str(path))
        with open(path, "rb") as fh:
            header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {code}
        _same(weights_io.load(str(path)), params)
        pytest.importorskip("torch")
        from safetensors.torch import load_file

        from netspec.export.torch import to_array

        _same({k: to_array(v) for k, v in load_file(str(path)).items()}, params)


def test_npz_holds_float16_and_refuses_bfloat16(tmp_path, capsys):
    spec = tmp_path / "half.yaml"
    spec.write_text(SPEC.format(rng="block"))
    assert main(["build", str(spec), "--dtype", "float16", "-o", str(tmp_path / "w.npz")]) == 0
    assert main(["verify", str(spec), "--dtype", "float16", "--weights", str(tmp_path / "w.npz")]) == 0
    capsys.readouterr()
    assert main(["build", str(spec), "--dtype", "bfloat16", "-o", str(tmp_path / "b.npz")]) == 2
    assert "an .npz cannot hold bfloat16" in capsys.readouterr().err
    assert not (tmp_path / "b.npz").exists()
    params = netspec.loads(SPEC.format(rng="block") + "dtype: bfloat16\n").initialize()
    with pytest.raises(weights_io.WeightsError, match="cannot hold bfloat16"):
        weights_io.save(params, str(tmp_path / "b.npz"))


def test_cli_dtype_on_build_verify_export_and_lock(tmp_path, capsys):
    spec = tmp_path / "half.yaml"
    spec.write_text(SPEC.format(rng="block"))
    out = tmp_path / "w.safetensors"
    assert main(["build", str(spec), "--dtype", "bfloat16", "-o", str(out)]) == 0
    assert "bfloat16" in capsys.readouterr().out
    assert weights_io.load_metadata(str(out))["netspec_dtype"] == "bfloat16"
    assert main(["verify", str(spec), "--dtype", "bfloat16", "--weights", str(out)]) == 0
    capsys.readouterr()
    assert main(["verify", str(spec), "--weights", str(out)]) == 1  # the spec says float32
    assert "the spec says float32" in capsys.readouterr().err
    assert main(["eval", str(spec), "--dtype", "bfloat16", "--weights", str(out), "--input", "x.npy"]) == 1
    np.save(tmp_path / "x.npy", np.ones((2, 5, 6), np.float32))
    capsys.readouterr()
    assert main(["eval", str(spec), "--dtype", "bfloat16", "--weights", str(out), "--input",
                 str(tmp_path / "x.npy"), "--json"]) == 0  # fmt: skip
    pytest.importorskip("torch")
    assert main(["export", str(spec), "--to", "torch", "--dtype", "float16", "-o", str(tmp_path / "m.pt")]) == 0
    assert main(["export", str(spec), "--to", "torch", "--weights", str(out), "--dtype", "float16",
                 "-o", str(tmp_path / "n.pt")]) == 2  # fmt: skip
    (tmp_path / "half2.yaml").write_text(SPEC.format(rng="block") + "dtype: float16\n")
    assert main(["lock", str(tmp_path / "half2.yaml")]) == 0
    assert main(["lock", "--check", str(tmp_path / "half2.yaml")]) == 0
    lock = json.loads((tmp_path / "half2.yaml.lock").read_text())
    assert lock["dtype"] == "float16"
