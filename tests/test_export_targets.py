"""ONNX and JAX/Flax export: every layer type converts, onnxruntime and Flax compute netspec's outputs,
exported tensors equal netspec's arrays after undoing the layout, files verify, missing extras.

Tolerance: float32 outputs of implementations that sum in different orders differ by a few ulps per
accumulated product; rtol 1e-5 / atol 1e-5 allows ~100 ulps on O(1) activations, while a wrong layout
(a transpose, a gate order) changes outputs at O(1)."""

import importlib.util
import json
import sys

import numpy as np
import pytest
import yaml
from hypothesis import given, settings

import netspec
from netspec.cli import main
from netspec.nn.catalog import LAYER_TYPES
from netspec.testing import specs
from test_examples import SPECS, batch
from test_layer_registry import CASES, integer_input, kind, sample

RTOL = ATOL = 1e-5


def _net(case):
    shape, layer = CASES[case]
    return netspec.loads(f"netspec: 1\ninput: {json.dumps(shape)}\nlayers:\n  - {layer}\n", f"{kind(case)}.yaml"), shape


def _x(case, shape, n=3):
    rng = np.random.default_rng(0)
    return rng.integers(0, 11, (n, *sample(shape))) if integer_input(case) else (
        rng.standard_normal((n, *sample(shape))).astype(np.float32))  # fmt: skip


def _session(net, params, path=None):
    """An onnxruntime session of the exported model: from the file ``path`` (written by ``save``), or in memory."""
    ort = pytest.importorskip("onnxruntime")
    from netspec.export.onnx import build_model, save

    if path is None:
        return ort.InferenceSession(build_model(net, params).SerializeToString(), providers=["CPUExecutionProvider"])
    save(net, params, str(path))
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _onnx_outputs(net, params, x, session=None):
    session = session or _session(net, params)
    inputs = x if isinstance(x, dict) else {next(iter(net.inputs)): x}
    kinds = {i.name: i.type for i in session.get_inputs()}
    types = {"tensor(int64)": np.int64, "tensor(double)": np.float64, "tensor(float)": np.float32}
    feeds = {k: np.asarray(v).astype(types[kinds[k]]) for k, v in inputs.items()}
    out = session.run(None, feeds)
    return out[0] if len(out) == 1 else dict(zip(net.outputs, out, strict=True))


def _same_bytes(back, params):
    assert back.keys() == params.keys()
    for k in params:
        assert back[k].dtype == params[k].dtype and back[k].shape == params[k].shape, k
        assert back[k].tobytes() == params[k].tobytes(), k


def _flax_outputs(net, params, x):
    pytest.importorskip("flax")
    from netspec.export.flax import to_module, variables

    inputs = x if isinstance(x, dict) else {next(iter(net.inputs)): x}
    out = to_module(net).apply(variables(net, params), **inputs)
    return {k: np.asarray(v) for k, v in out.items()} if isinstance(out, dict) else np.asarray(out)


def _close(ours, theirs):
    if isinstance(ours, dict):
        for k in ours:
            np.testing.assert_allclose(ours[k], theirs[k], rtol=RTOL, atol=ATOL)
    else:
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)


def test_every_layer_type_has_a_converter_in_every_target():
    from netspec.export import flax, onnx, torch

    for table in (onnx.CONVERTERS, flax.APPLY, torch.CONVERTERS):
        assert sorted(table) == sorted(LAYER_TYPES)


@pytest.mark.parametrize("layer_type", sorted(CASES))
def test_layer_type_onnx(layer_type, tmp_path):
    onnx = pytest.importorskip("onnx")
    from netspec.export.onnx import build_model, layouts, read_file

    net, shape = _net(layer_type)
    params = net.initialize()
    session = _session(net, params, tmp_path / "m.onnx")
    for n in (1, 7):  # one file, any batch size
        x = _x(layer_type, shape, n)
        _close(net.forward(x, params), _onnx_outputs(net, params, x, session))
    model = build_model(net, params)
    onnx.checker.check_model(model, full_check=True)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    found = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    for name, (key, index, offset) in layouts(net).items():  # each initializer holds netspec's exact values
        mine = (index >= offset) & (index < offset + params[name].size)
        assert np.array_equal(found[key][mine], params[name].ravel()[index[mine] - offset]), name
    _same_bytes(read_file(net, str(tmp_path / "m.onnx")), params)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["netspec_seed"] == "0" and meta["netspec_spec"] == net.name and meta["netspec_version"]
    assert {k[len("sha256:"):] for k in meta if k.startswith("sha256:")} == set(params)


@pytest.mark.parametrize("layer_type", sorted(CASES))
def test_layer_type_flax(layer_type):
    pytest.importorskip("flax")
    from netspec.export.flax import read_variables, variables

    net, shape = _net(layer_type)
    params = net.initialize()
    _close(net.forward(_x(layer_type, shape), params), _flax_outputs(net, params, _x(layer_type, shape)))
    _same_bytes(read_variables(net, variables(net, params)), params)


def _round_trips(net, params):
    """Every target's exported tensors are netspec's arrays once the layouts are undone."""
    if importlib.util.find_spec("onnx"):
        from netspec.export.onnx import build_model, read_model

        _same_bytes(read_model(net, build_model(net, params, check=False)), params)
    if importlib.util.find_spec("flax"):
        from netspec.export.flax import read_variables, variables

        _same_bytes(read_variables(net, variables(net, params)), params)


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_example_specs_agree_in_onnxruntime_and_flax(path, tmp_path):
    net = netspec.load(str(path))
    params = net.initialize()
    x = batch(net, np.random.default_rng(5), 2)
    ours = net.forward(x, params)
    _close(ours, _onnx_outputs(net, params, x, _session(net, params, tmp_path / "m.onnx")))
    _close(ours, _flax_outputs(net, params, x))
    from netspec.export.flax import read_variables, variables
    from netspec.export.onnx import read_file

    _same_bytes(read_file(net, str(tmp_path / "m.onnx")), params)  # the file that ships
    _same_bytes(read_variables(net, variables(net, params)), params)


def test_example_models_pass_the_onnx_checker():
    onnx = pytest.importorskip("onnx")
    from netspec.export.onnx import build_model

    for path in SPECS:
        net = netspec.load(str(path))
        onnx.checker.check_model(build_model(net, net.initialize(), check=False), full_check=True)


@settings(max_examples=15, deadline=None)
@given(specs())
def test_generated_specs_agree_in_onnxruntime_and_flax(spec):
    net = netspec.loads(yaml.safe_dump({**spec, "dtype": "float32"}), "generated.yaml")
    params = net.initialize(threads=1)
    x = batch(net, np.random.default_rng(6), 2)
    ours = net.forward(x, params)
    _close(ours, _onnx_outputs(net, params, x))
    _close(ours, _flax_outputs(net, params, x))
    _round_trips(net, params)


def test_flax_init_gives_the_specs_own_weights():
    jax = pytest.importorskip("jax")
    from netspec.flax import to_module, variables  # the public alias

    net, shape = _net("conv2d")
    params = net.initialize()
    got = to_module(net).init(jax.random.PRNGKey(0), _x("conv2d", shape, 1))
    want = variables(net, params)
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want),
                                                     strict=True))


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("target,suffix", [("onnx", ".onnx"), ("flax", ".msgpack")])
def test_exported_files_verify(target, suffix, tmp_path, capsys):
    pytest.importorskip(target)
    spec = SPECS[[p.stem for p in SPECS].index("lstm-text-classifier")]
    out = tmp_path / f"model{suffix}"
    code, _, err = _cli(capsys, "export", spec, "--to", target, "-o", out)
    assert code == 0, err
    code, text, err = _cli(capsys, "verify", spec, "--weights", out)
    assert code == 0, text + err
    assert _cli(capsys, "export", spec, "--to", target, "-o", tmp_path / "m.pt")[0] == 2


@pytest.mark.parametrize("target,module", [("onnx", "onnx"), ("flax", "flax.linen")])
def test_missing_extra_is_a_message_and_exit_1(target, module, tmp_path, capsys, monkeypatch):
    pytest.importorskip(module)
    suffix = {"onnx": ".onnx", "flax": ".msgpack"}[target]
    exported = tmp_path / f"exported{suffix}"
    assert _cli(capsys, "export", SPECS[0], "--to", target, "-o", exported)[0] == 0
    monkeypatch.setitem(sys.modules, module, None)  # as if the extra were not installed
    message = f"needs {target}: pip install 'netspec-nn[{target}]'"
    code, _, err = _cli(capsys, "export", SPECS[0], "--to", target, "-o", tmp_path / f"m{suffix}")
    assert code == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / f"m{suffix}").exists()
    code, out, err = _cli(capsys, "verify", SPECS[0], "--weights", exported)  # reading an export needs it too
    assert code == 1 and message in out + err and "Traceback" not in out + err


def test_large_onnx_weights_go_to_external_data(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from netspec.export import onnx as onnx_export

    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 1000)  # as if past 2 GB
    net = netspec.loads("netspec: 1\ninput: [16]\nlayers:\n  - {type: dense, name: fc, units: 32}\n", "big.yaml")
    params = net.initialize()
    path = tmp_path / "big.onnx"
    onnx_export.save(net, params, str(path))
    assert (tmp_path / "big.onnx.data").stat().st_size >= params["fc.weights"].nbytes
    assert path.stat().st_size < params["fc.weights"].nbytes  # the weights are not in the model file
    back = onnx_export.read_file(net, str(path))
    assert all(back[k].tobytes() == params[k].tobytes() for k in params)
    x = np.ones((2, 16), np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], net.forward(x, params), rtol=RTOL, atol=ATOL)


def test_onnx_external_data_rewritten_in_place_and_bounded(tmp_path, monkeypatch):
    onnx = pytest.importorskip("onnx")
    from netspec.errors import NetspecError
    from netspec.export import onnx as onnx_export

    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 1000)
    monkeypatch.chdir(tmp_path)  # a second export beside the first, from the folder that holds it
    net = netspec.loads("netspec: 1\ninput: [16]\nlayers:\n  - {type: dense, name: fc, units: 32}\n", "big.yaml")
    params = net.initialize()
    onnx_export.save(net, params, "big.onnx")
    onnx_export.save(net, {k: v + 1 for k, v in params.items()}, "big.onnx")
    _same_bytes(onnx_export.read_file(net, "big.onnx"), {k: v + 1 for k, v in params.items()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data"]  # no temporary left
    model = onnx.load("big.onnx", load_external_data=False)
    huge = 1 << 30  # a crafted model naming a gigabyte of a (sparse) data file: refused before reading
    with open("huge.data", "wb") as fh:
        fh.truncate(huge)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            entry.value = {"location": "huge.data", "offset": "0", "length": str(huge)}.get(entry.key, entry.value)
    onnx.save(model, "crafted.onnx")
    with pytest.raises(NetspecError, match="more than the spec's model can take"):
        onnx_export.read_file(net, "crafted.onnx")


def test_float64_specs_in_flax_and_onnx():
    """float64 end to end in Flax (64-bit JAX, else a clear error, never a quiet float32); ONNX models of
    float64 specs are valid (onnxruntime's CPU kernels lack float64 for Conv, pools and recurrent ops,
    so the one run here is a dense/norm/attention network)."""
    jax = pytest.importorskip("jax")
    onnx = pytest.importorskip("onnx")
    from netspec.errors import NetspecError
    from netspec.export.flax import to_module, variables
    from netspec.export.onnx import build_model

    net = netspec.loads("netspec: 1\ndtype: float64\ninput: [5, 8]\nlayers:\n"
                        "  - {type: multi_head_attention, name: attn, heads: 2, key_dim: 4}\n"
                        "  - {type: layer_norm, name: norm}\n  - {type: dense, name: fc, units: 3}\n", "f64.yaml")
    params = net.initialize()
    x = np.random.default_rng(7).standard_normal((2, 5, 8))
    ours = net.forward(x, params)
    with pytest.raises(NetspecError, match="enable_x64"):
        to_module(net).apply(variables(net, params), x)
    with jax.enable_x64(True):
        theirs = np.asarray(to_module(net).apply(variables(net, params), x))
    assert theirs.dtype == np.float64
    np.testing.assert_allclose(theirs, ours, rtol=1e-10, atol=1e-10)  # float64: eps 2.2e-16, not float32's
    onnx.checker.check_model(build_model(net, params), full_check=True)
    np.testing.assert_allclose(_onnx_outputs(net, params, x), ours, rtol=1e-10, atol=1e-10)


def test_onnx_elements_netspec_has_no_parameter_for_must_be_zero():
    onnx = pytest.importorskip("onnx")
    from netspec.errors import NetspecError
    from netspec.export.onnx import build_model, read_model

    net, _ = _net("lstm")
    params = net.initialize()
    model = build_model(net, params, check=False)
    _same_bytes(read_model(net, model), params)
    (b,) = [t for t in model.graph.initializer if t.name.endswith(".B")]
    array = onnx.numpy_helper.to_array(b).copy()
    array[..., -1] = 1.0  # ONNX's recurrent bias of the last gate: netspec's LSTM has none
    b.CopyFrom(onnx.numpy_helper.from_array(array, b.name))
    with pytest.raises(NetspecError, match=r"\.B: 1 elements netspec has no parameter for are not zero"):
        read_model(net, model)


def test_public_aliases_take_spec_files():
    pytest.importorskip("flax")
    pytest.importorskip("onnx")
    import netspec.flax
    import netspec.onnx
    from netspec.export import onnx as onnx_export

    assert netspec.onnx.save is onnx_export.save and netspec.onnx.OPSET == 21
    path = SPECS[[p.stem for p in SPECS].index("mnist-mlp")]
    net = netspec.load(str(path))
    params = net.initialize()
    x = batch(net, np.random.default_rng(8), 2)
    module = netspec.flax.to_module(path)
    _close(net.forward(x, params), np.asarray(module.apply(netspec.flax.variables(net, params), x)))


def test_export_cli_seed_and_weights_from_another_export(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("torch")
    from netspec.export.onnx import read_file
    from netspec.spec.compiler import compile_file

    spec = SPECS[[p.stem for p in SPECS].index("lstm-text-classifier")]
    net = compile_file(str(spec), seed=5)
    params = net.initialize()
    assert _cli(capsys, "export", spec, "--to", "torch", "--seed", "5", "-o", tmp_path / "m.pt")[0] == 0
    code, _, err = _cli(capsys, "export", spec, "--to", "onnx", "--weights", tmp_path / "m.pt",
                        "-o", tmp_path / "m.onnx")
    assert code == 0, err
    _same_bytes(read_file(net, str(tmp_path / "m.onnx")), params)  # torch export -> netspec arrays -> ONNX
    code, _, err = _cli(capsys, "export", spec, "--to", "onnx", "--seed", "5", "-o", tmp_path / "s.onnx")
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "s.onnx")).metadata_props}
    assert code == 0 and meta["netspec_seed"] == "5"
    _same_bytes(read_file(net, str(tmp_path / "s.onnx")), params)
    with pytest.raises(SystemExit) as exit_:  # argparse's usage error
        _cli(capsys, "export", spec, "--to", "onnx", "--seed", "-1", "-o", tmp_path / "x.onnx")
    assert exit_.value.code == 2 and not (tmp_path / "x.onnx").exists()


def test_flax_variables_load_into_flax_linens_own_layers():
    """The names and layouts are Flax's own: hand-written ``flax.linen`` layers named like the spec's
    layers take the exported variables as they are and compute netspec's outputs."""
    pytest.importorskip("flax")
    import flax.linen as nn
    import jax

    from netspec.export.flax import variables

    seq = netspec.loads("netspec: 1\ninput: [5, 8]\nlayers:\n"
                        "  - {type: multi_head_attention, name: attn, heads: 2, key_dim: 4}\n"
                        "  - {type: layer_norm, name: norm, epsilon: 0.001}\n"
                        "  - {type: dense, name: fc, units: 6, activation: relu}\n"
                        "  - {type: batch_norm, name: bn, epsilon: 0.001}\n", "seq.yaml")  # fmt: skip
    img = netspec.loads("netspec: 1\ninput: [9, 9, 4]\nlayers:\n"
                        "  - {type: conv2d, name: conv, filters: 6, kernel: 3, stride: 2, padding: same, groups: 2}\n",
                        "img.yaml")  # fmt: skip
    ids = netspec.loads("netspec: 1\ninput: [5]\nlayers:\n  - {type: embedding, name: emb, vocab: 11, dim: 3}\n",
                        "ids.yaml")  # fmt: skip

    class Seq(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=8, name="attn")(x)
            x = nn.LayerNorm(epsilon=1e-3, name="norm")(x)
            x = jax.nn.relu(nn.Dense(6, name="fc")(x))
            return nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)

    class Img(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Conv(6, (3, 3), strides=2, padding="SAME", feature_group_count=2, name="conv")(x)

    class Ids(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Embed(11, 3, name="emb")(x)

    rng = np.random.default_rng(9)
    for net, module, x in [(seq, Seq(), rng.standard_normal((2, 5, 8)).astype(np.float32)),
                           (img, Img(), rng.standard_normal((2, 9, 9, 4)).astype(np.float32)),
                           (ids, Ids(), rng.integers(0, 11, (2, 5)))]:  # fmt: skip
        params = net.initialize()
        _close(net.forward(x, params), np.asarray(module.apply(variables(net, params), x)))


def test_recorded_metadata_of_every_export(tmp_path):
    pytest.importorskip("onnx")
    from netspec.export import onnx as onnx_export
    from netspec.export.files import recorded_metadata
    from netspec.io.weights import metadata_for

    net, _ = _net("dense")
    params = net.initialize()
    onnx_export.save(net, params, str(tmp_path / "m.onnx"))
    assert recorded_metadata(str(tmp_path / "m.onnx")) == {**metadata_for(net), "netspec_version": netspec.__version__}
    (tmp_path / "broken.onnx").write_bytes(b"\xff" * 10)
    assert recorded_metadata(str(tmp_path / "broken.onnx")) == {} == recorded_metadata(str(tmp_path / "m.msgpack"))
