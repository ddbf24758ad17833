"""Sizes known only at run time (``null`` in ``input:`` / ``inputs:``): one compiled network, one export,
any length; layers that need a size refuse null where it is written, or check it when the network runs.

Every target computes netspec's outputs at several lengths from one module / one ONNX file (tolerance as
tests/test_export_targets.py: rtol = atol = 1e-5)."""

import json

import numpy as np
import pytest

import netspec
from netspec.cli import main
from netspec.errors import SpecError
from netspec.nn.layers import ShapeError
from test_layer_registry import CASES, integer_input, kind

RTOL = ATOL = 1e-5
DYNAMIC = sorted(case for case in CASES if case.endswith(":dynamic"))
LENGTHS = (1, 4, 9)


def _net(case):
    shape, layer = CASES[case]
    return netspec.loads(f"netspec: 1\ninput: {json.dumps(shape)}\nlayers:\n  - {layer}\n", f"{kind(case)}.yaml")


def _inputs(case, net, length):
    rng = np.random.default_rng(length)
    shape = (2, *(length if n is None else n for n in net.input_shape))
    return rng.integers(0, 11, shape) if integer_input(case) else rng.standard_normal(shape).astype(np.float32)


def _lengths(case):
    return (3, 4, 9) if case == "conv2d:dynamic" else LENGTHS  # a 'valid' kernel of 3 needs 3 positions


@pytest.mark.parametrize("case", DYNAMIC)
def test_one_export_takes_any_length(case):
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("flax")
    from netspec.export.flax import to_module as flax_module
    from netspec.export.flax import variables
    from netspec.export.onnx import build_model
    from netspec.export.torch import to_module

    net = _net(case)
    assert None in net.input_shape
    params = net.initialize()
    session = ort.InferenceSession(build_model(net, params).SerializeToString(), providers=["CPUExecutionProvider"])
    module, flax, tree = to_module(net, params), flax_module(net), variables(net, params)
    shapes = set()
    for length in _lengths(case):
        x = _inputs(case, net, length)
        ours = net.forward(x, params)
        shapes.add(ours.shape)
        with torch.no_grad():
            np.testing.assert_allclose(ours, module(torch.from_numpy(x)).numpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(ours, session.run(None, {"input": x})[0], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(ours, np.asarray(flax.apply(tree, x)), rtol=RTOL, atol=ATOL)
    assert len(shapes) == len(_lengths(case)) or kind(case) in ("global_avg_pool", "lstm")  # the length flows through


def test_onnx_names_open_axes_symbolically():
    onnx = pytest.importorskip("onnx")
    from netspec.export.onnx import build_model

    net = _net("multi_head_attention:dynamic")
    model = build_model(net, net.initialize())
    dims = [(d.dim_param, d.dim_value) for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [("batch", 0), ("input_axis1", 0), ("", 8)]
    onnx.checker.check_model(model, full_check=True)


@pytest.mark.parametrize(("shape", "layer", "expected", "at"), [
    ("[null]", "{type: dense, units: 3}", "dense's input features (the last axis) must have a known size",
     "layers[0]"),
    ("[4, null]", "{type: layer_norm}", "layer_norm's features (the last axis) must have a known size", "layers[0]"),
    ("[null, 3]", "{type: flatten}\n  - {type: dense, units: 2}", "dense's input features", "layers[1]"),
    ("[null, 3]", "{type: reshape, shape: [-1]}", "every axis of a reshape's input must have a known size",
     "layers[0]"),
    ("[5, null]", "{type: conv1d, filters: 2, kernel: 3}", "conv1d's input channels", "layers[0]"),
    ("[5, null]", "{type: multi_head_attention, heads: 1, key_dim: 2}", "the query's features", "layers[0]"),
    ("[0]", "{type: dense, units: 3}", "out of range", "input[0]"),
    ("[1.5]", "{type: dense, units: 3}", "expected an integer or null", "input[0]"),
])  # fmt: skip
def test_layers_that_need_a_size_refuse_null_with_a_located_error(shape, layer, expected, at):
    with pytest.raises(SpecError) as e:
        netspec.loads(f"netspec: 1\ninput: {shape}\nlayers:\n  - {layer}\n", "d.yaml")
    assert expected in str(e.value) and f"(at {at})" in str(e.value)


def test_sizes_the_spec_leaves_open_are_checked_when_the_network_runs():
    pos = netspec.loads("netspec: 1\ninput: [null, 3]\nlayers:\n  - {type: positional_embedding, length: 4}\n")
    p = pos.initialize()
    assert pos.forward(np.zeros((1, 4, 3), np.float32), p).shape == (1, 4, 3)
    with pytest.raises(ShapeError, match="the sequence \\(5\\) is longer than length 4"):
        pos.forward(np.zeros((1, 5, 3), np.float32), p)
    causal = netspec.loads("netspec: 1\ninputs: {q: [null, 4], c: [null, 4]}\nlayers:\n  - {type: "
                           "multi_head_attention, heads: 1, key_dim: 2, causal: true, inputs: [q, c]}\n")  # fmt: skip
    x = np.zeros((1, 3, 4), np.float32)
    assert causal.forward({"q": x, "c": x}, causal.initialize()).shape == (1, 3, 4)
    with pytest.raises(ShapeError, match="one length, got 3 and 2"):
        causal.forward({"q": x, "c": x[:, :2]}, causal.initialize())
    with pytest.raises(ShapeError, match=r"takes \[any, 3\]"):
        pos.forward(np.zeros((1, 4, 2), np.float32), p)
    conv = _net("conv2d:dynamic")
    with pytest.raises(ShapeError, match="kernel 3 is larger than its input \\(2\\)"):
        conv.forward(np.zeros((1, 2, 5, 2), np.float32), conv.initialize())


def test_eval_reads_any_length(tmp_path, capsys):
    spec = tmp_path / "seq.yaml"
    spec.write_text("netspec: 1\ninput: [null]\nlayers:\n  - {type: embedding, name: tok, vocab: 7, dim: 2}\n"
                    "  - {type: global_avg_pool, name: pool}\n")  # fmt: skip
    net = netspec.load(str(spec))
    p = net.initialize()
    assert main(["eval", str(spec), "--input", "1,2,3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["output"]
    np.testing.assert_allclose(out, p["tok.weights"][[1, 2, 3]].mean(axis=0), rtol=1e-6)
    ids = np.array([[0, 1, 2, 3, 4, 5, 6, 0, 1], [6, 5, 4, 3, 2, 1, 0, 6, 5]])
    np.save(tmp_path / "ids.npy", ids)
    assert main(["eval", str(spec), "--input", str(tmp_path / "ids.npy"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["output"]
    np.testing.assert_allclose(out, p["tok.weights"][ids].mean(axis=1), rtol=1e-6)
    two = tmp_path / "two.yaml"
    two.write_text("netspec: 1\ninput: [null, null]\nlayers:\n  - {type: activation, activation: relu}\n")
    assert main(["eval", str(two), "--input", "1,2,3"]) == 1
    assert "several sizes left open; give a .npy file" in capsys.readouterr().err


def test_diagnose_gives_open_axes_a_length(tmp_path, capsys):
    from netspec.diagnose.stats import DEFAULT_LENGTH, default_batch

    net = _net("multi_head_attention:dynamic")
    assert default_batch(net, 3, 0).shape == (3, DEFAULT_LENGTH, 8)
    spec = tmp_path / "a.yaml"
    spec.write_text("netspec: 1\ninput: [null, 8]\nlayers:\n  - " + CASES["multi_head_attention:dynamic"][1] + "\n")
    np.save(tmp_path / "x.npy", np.ones((2, 11, 8), np.float32))
    assert main(["diagnose", str(spec), "--input", str(tmp_path / "x.npy"), "--no-gradients"]) == 0


def _open_variants():
    """(case, input shape) for every registry case and every choice of open axes its layer accepts: each axis
    alone, and every axis but the last together (the walk finds which layer types take an open axis)."""
    for case, (shape, layer) in sorted(CASES.items()):
        choices = {(i,) for i in range(len(shape))} | {tuple(range(len(shape) - 1))} - {()}
        for axes in sorted(choices):
            open_shape = [None if i in axes else n for i, n in enumerate(shape)]
            try:
                netspec.loads(f"netspec: 1\ninput: {json.dumps(open_shape)}\nlayers:\n  - {layer}\n", "o.yaml")
            except SpecError:
                continue  # the layer needs these sizes known (tested above: a located error)
            yield case, open_shape


OPEN_VARIANTS = list(_open_variants())


def _window(layer):
    """The largest window (kernel * dilation, pool) of a case's layer line, 1 for layers without one."""
    import yaml

    options = yaml.safe_load(layer.split("\n")[0])
    sizes = [options.get(k, 1) for k in ("kernel", "pool", "dilation")]
    flat = [[v] if isinstance(v, int) else v for v in sizes]
    return max(flat[0]) * max(flat[2]) if "kernel" in options else max(flat[1])


def test_the_walk_finds_every_layer_type_that_takes_an_open_axis():
    from netspec.nn.catalog import LAYER_TYPES

    walked = {kind(case) for case, _ in OPEN_VARIANTS}
    assert {kind(case) for case in DYNAMIC} <= walked
    assert set(LAYER_TYPES) - walked == {"reshape"}  # it needs every size known (a located error above)


@pytest.mark.parametrize(("case", "shape"), OPEN_VARIANTS, ids=[f"{c}{s}" for c, s in OPEN_VARIANTS])
def test_eval_at_every_run_time_size_is_an_output_or_a_located_error(case, shape, tmp_path, capsys):
    """Lengths 0, 1, every length below the layer's window, and a batch of 0: `netspec eval` prints an output
    (exit 0) or says where the spec cannot take the size (exit 1), never an internal error (exit 70)."""
    layer = CASES[case][1]
    spec = tmp_path / "open.yaml"
    spec.write_text(f"netspec: 1\ninput: {json.dumps(shape)}\nlayers:\n  - {layer}\n")
    window = _window(layer)
    runs = [(1, n) for n in sorted({0, 1, *range(window)})] + [(0, window), (0, 0), (2, window + 2)]
    codes = {}
    for batch, length in runs:
        sizes = (batch, *(length if n is None else n for n in shape))
        x = np.zeros(sizes, np.int64) if integer_input(case) else np.ones(sizes, np.float32)
        np.save(tmp_path / "x.npy", x)
        codes[batch, length] = code = main(["eval", str(spec), "--input", str(tmp_path / "x.npy")])
        err = capsys.readouterr().err
        assert code in (0, 1), f"batch {batch}, length {length}: exit {code}: {err}"
        if code == 1:  # located at the layer, with the sizes it was given
            assert f"{spec}:4:5: " in err and "(at layers[0]; input [" in err, err
    assert codes[2, window + 2] == 0 and codes[0, window] == 0  # a length the window fits; an empty batch


def test_attention_needs_a_context_position_for_each_query():
    net = netspec.loads("netspec: 1\ninputs: {q: [null, 4], c: [null, 4]}\nlayers:\n  - {type: multi_head_attention, "
                        "name: att, heads: 2, key_dim: 2, inputs: [q, c]}\n", "x.yaml")  # fmt: skip
    p = net.initialize()
    q, c = np.ones((1, 2, 4), np.float32), np.ones((1, 0, 4), np.float32)
    with pytest.raises(ShapeError, match=r"^x.yaml:4:5: att \(multi_head_attention\): the context has no position"):
        net.forward({"q": q, "c": c}, p)
    assert net.forward({"q": q[:, :0], "c": c}, p).shape == (1, 0, 4)  # no query, no context: the empty output
    assert net.forward({"q": q[:0], "c": q[:0]}, p).shape == (0, 2, 4)  # an empty batch


@pytest.mark.parametrize("case", [*DYNAMIC, "flatten", "reshape", "lstm", "multi_head_attention:gqa_rotary"])
def test_every_target_gives_the_empty_output_netspec_gives(case):
    """An empty batch, and an empty sequence where netspec's forward gives an output (not a located refusal):
    the torch module, the ONNX file and the Flax module give an output of the same shape (no -1 reshapes)."""
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("flax")
    from netspec.export.flax import to_module as flax_module
    from netspec.export.flax import variables
    from netspec.export.onnx import build_model
    from netspec.export.torch import to_module

    shape, layer = CASES[case]
    net = netspec.loads(f"netspec: 1\ninput: {json.dumps(shape)}\nlayers:\n  - {layer}\n", f"{kind(case)}.yaml")
    params = net.initialize()
    session = ort.InferenceSession(build_model(net, params).SerializeToString(), providers=["CPUExecutionProvider"])
    module, flax, tree = to_module(net, params), flax_module(net), variables(net, params)
    ran = 0
    for batch, length in [(0, max(_lengths(case))), (2, 0)]:
        sizes = (batch, *(length if n is None else n for n in net.input_shape))
        if batch and None not in net.input_shape:
            continue
        x = np.zeros(sizes, np.int64) if integer_input(case) else np.ones(sizes, np.float32)
        try:
            ours = net.forward(x, params)
        except ShapeError:
            continue  # refused where the layer needs a position (located; tests above)
        ran += 1
        with torch.no_grad():
            assert module(torch.from_numpy(x)).shape == ours.shape, "torch"
        if kind(case) not in RECURRENT:
            assert session.run(None, {"input": x})[0].shape == ours.shape, "onnx"
        assert np.asarray(flax.apply(tree, x)).shape == ours.shape, "flax"
    assert ran  # an empty batch at least


RECURRENT = {"gru", "lstm", "simple_rnn"}
"""onnxruntime's RNN, GRU and LSTM kernels abort the process (a native abort, not an exception) on an empty
batch or sequence: the exported file is valid ONNX, the runtime cannot run it on empty inputs."""
