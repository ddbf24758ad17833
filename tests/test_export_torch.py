"""PyTorch export: every layer type converts, the module computes netspec's outputs, the state_dict
round-trips byte for byte, files verify, hand-written modules load by name with precise errors.

Tolerance: float32 outputs of two implementations that sum in different orders differ by a few ulps
per accumulated product; rtol 1e-5 / atol 1e-5 allows ~100 ulps on O(1) activations, while a wrong
layout (a transpose, a gate swap) changes outputs at O(1)."""

import json
import sys

import numpy as np
import pytest
import yaml
from hypothesis import given, settings

import netspec
from netspec.cli import main
from netspec.errors import NetspecError
from netspec.nn.catalog import LAYER_TYPES
from netspec.testing import specs
from test_examples import SPECS, batch
from test_layer_registry import CASES, integer_input, kind, sample

torch = pytest.importorskip("torch")
from netspec.export.torch import CONVERTERS, read_state_dict, to_module  # noqa: E402

RTOL = ATOL = 1e-5


def _agree(net, x, params):
    module = to_module(net, params)
    inputs = x if isinstance(x, dict) else {next(iter(net.inputs)): x}
    with torch.no_grad():
        theirs = module(**{k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()})
    theirs = {k: v.numpy() for k, v in theirs.items()} if isinstance(theirs, dict) else theirs.numpy()
    ours = net.forward(x, params)
    if isinstance(ours, dict):
        for k in ours:
            np.testing.assert_allclose(ours[k], theirs[k], rtol=RTOL, atol=ATOL)
    else:
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)
    back = read_state_dict(net, module.state_dict())  # the exported tensors, layouts undone: netspec's bytes
    assert back.keys() == params.keys()
    assert all(back[k].dtype == params[k].dtype and back[k].tobytes() == params[k].tobytes() for k in params)
    return module


def test_every_layer_type_has_a_converter():
    assert sorted(CONVERTERS) == sorted(LAYER_TYPES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_type_exports(case):
    shape, layer = CASES[case]
    net = netspec.loads(f"netspec: 1\ninput: {json.dumps(shape)}\nlayers:\n  - {layer}\n", f"{kind(case)}.yaml")
    params = net.initialize()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 11, (3, *sample(shape))) if integer_input(case) else (
        rng.standard_normal((3, *sample(shape))).astype(np.float32))  # fmt: skip
    state = _agree(net, x, params).state_dict()  # outputs agree, tensors read back byte for byte
    fresh = to_module(net, {k: np.zeros_like(v) for k, v in params.items()})
    fresh.load_state_dict(state, strict=True)


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_example_specs_agree_with_torch(path):
    net = netspec.load(str(path))
    _agree(net, batch(net, np.random.default_rng(1), 3), net.initialize())


@settings(max_examples=25, deadline=None)
@given(specs())
def test_generated_specs_agree_with_torch(spec):
    spec = {**spec, "dtype": "float32"}
    net = netspec.loads(yaml.safe_dump(spec), "generated.yaml")
    params = net.initialize(threads=1)
    _agree(net, batch(net, np.random.default_rng(2), 2), params)


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_export_files_read_back_and_verify(tmp_path, capsys):
    spec = SPECS[[p.stem for p in SPECS].index("resnet-tiny")]
    net = netspec.load(str(spec))
    params = net.initialize()
    for suffix in (".pt", ".safetensors"):
        out = tmp_path / f"model{suffix}"
        code, _, err = _cli(capsys, "export", spec, "--to", "torch", "-o", out)
        assert code == 0, err
        if suffix == ".pt":
            state = torch.load(out, weights_only=True)
            assert "stage1.conv1.weight" in state and state["stage1.conv1.weight"].shape == (8, 8, 3, 3)
        else:  # as model hubs store them: the safetensors library reads it into a module with strict=True
            state = pytest.importorskip("safetensors.torch").load_file(str(out))
            to_module(net, {k: np.zeros_like(v) for k, v in params.items()}).load_state_dict(state, strict=True)
        back = read_state_dict(net, state)
        assert all(back[k].tobytes() == params[k].tobytes() for k in params)
        code, out_text, err = _cli(capsys, "verify", spec, "--weights", out)
        assert code == 0, out_text + err
    code, _, err = _cli(capsys, "export", spec, "--to", "torch", "-o", tmp_path / "m.npz")
    assert code == 2 and ".pt or .safetensors" in err


def test_a_tampered_export_fails_verify_and_a_wrong_one_is_listed(tmp_path, capsys):
    spec = SPECS[[p.stem for p in SPECS].index("resnet-tiny")]
    out = tmp_path / "m.pt"
    assert _cli(capsys, "export", spec, "--to", "torch", "-o", out)[0] == 0
    state = torch.load(out, weights_only=True)
    state["stage1.conv1.weight"][0, 0, 0, 0] += 1.0
    del state["head.bias"]
    state["extra.weight"] = torch.zeros(2)
    torch.save(state, out)
    code, _, err = _cli(capsys, "verify", spec, "--weights", out)
    assert code == 1 and "missing head.bias" in err and "unexpected extra.weight" in err


def test_missing_torch_is_a_message_and_exit_1(tmp_path, capsys, monkeypatch):
    for suffix in (".pt", ".safetensors"):
        assert _cli(capsys, "export", SPECS[0], "--to", "torch", "-o", tmp_path / f"exported{suffix}")[0] == 0
    monkeypatch.setitem(sys.modules, "torch", None)  # as if the extra were not installed
    message = "PyTorch export needs torch: pip install 'netspec-nn[torch]'"
    code, _, err = _cli(capsys, "export", SPECS[0], "--to", "torch", "-o", tmp_path / "m.pt")
    assert code == 1 and message in err and "Traceback" not in err and not (tmp_path / "m.pt").exists()
    for suffix in (".pt", ".safetensors"):  # reading a torch export back needs torch's layouts too
        code, out, err = _cli(capsys, "verify", SPECS[0], "--weights", tmp_path / f"exported{suffix}")
        assert code == 1 and message in out + err and "Traceback" not in out + err


def test_load_into_a_hand_written_module():
    from netspec.torch import load_into

    net = netspec.loads("netspec: 1\ninput: [4]\nlayers:\n  - {type: dense, name: fc1, units: 5, activation: relu}\n"
                        "  - {type: dense, name: fc2, units: 3}\n", "mlp.yaml")  # fmt: skip
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    mapping = {"fc1.weight": "0.weight", "fc1.bias": "0.bias", "fc2.weight": "2.weight", "fc2.bias": "2.bias"}
    params = net.initialize()
    load_into(model, net, params, mapping=mapping)
    x = np.random.default_rng(3).standard_normal((6, 4)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(model(torch.from_numpy(x)).numpy(), net.forward(x, params), rtol=RTOL, atol=ATOL)
    wrong = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3), torch.nn.Linear(3, 1))
    with pytest.raises(NetspecError) as e:
        load_into(wrong, net, params, mapping=mapping)
    text = str(e.value)
    assert "0.weight: netspec [5, 4], module [6, 4]" in text and "netspec has nothing for 3.weight" in text
    with pytest.raises(NetspecError, match=r"the module has no fc1\.weight"):
        load_into(model, net, params)


def test_load_into_from_a_weights_file(tmp_path):
    from netspec.io.weights import save
    from netspec.torch import load_into

    net = netspec.loads("netspec: 1\nseed: 8\ninput: [3]\nlayers:\n  - {type: dense, name: fc, units: 2}\n", "one.yaml")
    params = net.initialize()
    save(params, str(tmp_path / "w.safetensors"))
    model = torch.nn.Linear(3, 2)
    load_into(model, net, str(tmp_path / "w.safetensors"), mapping={"fc.weight": "weight", "fc.bias": "bias"})
    assert np.array_equal(model.weight.detach().numpy(), params["fc.weights"].T)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_module_owns_its_tensors_in_the_specs_dtype(dtype):
    net = netspec.loads(f"netspec: 1\ndtype: {dtype}\ninput: [6, 4]\nlayers:\n"
                        "  - {type: lstm, name: rnn, units: 3, return_sequences: true}\n"
                        "  - {type: layer_norm, name: norm}\n  - {type: dense, name: fc, units: 2}\n",
                        "own.yaml")  # fmt: skip
    params = net.initialize()
    before = {k: v.copy() for k, v in params.items()}
    x = np.random.default_rng(4).standard_normal((2, 6, 4)).astype(dtype)
    module = _agree(net, x, params)
    assert {t.dtype for t in module.state_dict().values()} == {getattr(torch, dtype)}
    with torch.no_grad():
        for t in module.parameters():
            t.add_(1.0)  # a training step must not write into netspec's arrays
    assert all(np.array_equal(params[k], before[k]) for k in params)


def test_load_into_a_hand_written_lstm_zeroes_torchs_second_bias():
    from netspec.torch import load_into

    net = netspec.loads("netspec: 1\ninput: [5, 3]\nlayers:\n  - {type: lstm, name: enc, units: 4}\n", "lstm.yaml")
    params = net.initialize()
    model = torch.nn.LSTM(3, 4, batch_first=True)  # torch initializes bias_hh_l0 at random; netspec has no such bias
    load_into(model, net, params, mapping=lambda k: k.removeprefix("enc.rnn."))
    assert not model.bias_hh_l0.detach().any()
    x = np.random.default_rng(5).standard_normal((2, 5, 3)).astype(np.float32)
    with torch.no_grad():
        h = model(torch.from_numpy(x))[1][0][0].numpy()
    np.testing.assert_allclose(h, net.forward(x, params), rtol=RTOL, atol=ATOL)
    state = to_module(net, params).state_dict()
    state["enc.rnn.bias_hh_l0"] = torch.ones(16)  # a shipped file whose module computes something else
    with pytest.raises(NetspecError, match=r"enc\.rnn\.bias_hh_l0 is not zero"):
        read_state_dict(net, state)


def test_the_module_goes_through_torch_export():
    """Serving path: ``torch.export`` captures the module's graph (no Python control flow it cannot trace)."""
    spec = SPECS[[p.stem for p in SPECS].index("resnet-tiny")]
    net = netspec.load(str(spec))
    params = net.initialize()
    x = torch.from_numpy(batch(net, np.random.default_rng(6), 2))
    program = torch.export.export(to_module(net, params), (x,))
    with torch.no_grad():
        np.testing.assert_allclose(program.module()(x).numpy(), net.forward(x.numpy(), params), rtol=RTOL, atol=ATOL)


def test_malformed_exports_and_seed_with_weights(tmp_path, capsys):
    spec = SPECS[[p.stem for p in SPECS].index("glorot-demo-4-5-3")]
    t = torch.zeros(3)
    torch.save({1: t, "a": t}, tmp_path / "mixed.pt")
    torch.save({"dense_1.weight": [[1.0], [1.0, 2.0]]}, tmp_path / "ragged.pt")
    for name, expected in (("mixed.pt", "keys that are not names"), ("ragged.pt", "not a readable torch export")):
        code, _, err = _cli(capsys, "verify", spec, "--weights", tmp_path / name)
        assert code == 1 and expected in err, err
    code, _, err = _cli(capsys, "export", spec, "--to", "torch", "-o", tmp_path / "m.pt", "--weights",
                        tmp_path / "w.npz", "--seed", "5")  # fmt: skip
    assert code == 2 and "--seed goes with building" in err


def test_a_channels_first_input_is_a_message_that_says_how_to_permute():
    net = netspec.loads("netspec: 1\ninput: [8, 6, 3]\nlayers:\n  - {type: conv2d, filters: 2, kernel: 3}\n", "c.yaml")
    module = to_module(net)
    x = torch.randn(2, 8, 6, 3)
    with pytest.raises(ValueError, match=r"input 'input' has shape \(2, 3, 8, 6\); the module takes \(batch, 8, 6, 3\)"
                       r", channels last as in the spec: it looks channels first; pass x.permute\(0, 2, 3, 1\)"):
        module(x.permute(0, 3, 1, 2))
    with pytest.raises(ValueError, match=r"has shape \(2, 8, 6\); the module takes \(batch, 8, 6, 3\)") as info:
        module(x[..., 0])
    assert "permute" not in str(info.value)
    assert module(x).shape == (2, 6, 4, 2)


def test_trainable_parameters_are_torchs_parameters_and_the_rest_its_buffers():
    net = netspec.load("specs/resnet18-cifar.yaml")
    module = to_module(net)
    assert sum(p.numel() for p in module.parameters()) == net.num_trainable == 11_173_962
    assert sum(b.numel() for b in module.buffers()) == net.num_params - net.num_trainable == 9_600


OPTIONS_SPEC = """\
netspec: 1
input: [8, 8, 3]
layers:
  - {type: conv2d, name: c, filters: 4, kernel: 3, stride: 2, padding: same, use_bias: false}
  - {type: batch_norm, name: bn, epsilon: 0.001}
  - {type: conv2d, name: d, filters: 4, kernel: 3, padding: 1, groups: 2}
  - {type: batch_norm, name: bn2}
  - {type: conv_transpose2d, name: t, filters: 2, kernel: 3, stride: 2, padding: 1, output_padding: 1}
  - {type: layer_norm, name: ln}
"""


def _options_model(c_padding=(0, 1), eps=1e-3, d_stride=1, momentum=0.1, t_padding=1):
    nn = torch.nn

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 3, stride=2, padding=c_padding if isinstance(c_padding, int) else 0, bias=False)
            self.bn = nn.BatchNorm2d(4, eps=eps)
            self.d = nn.Conv2d(4, 4, 3, stride=d_stride, padding=1, groups=2)
            self.bn2 = nn.BatchNorm2d(4, momentum=momentum)
            self.t = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=t_padding, output_padding=1)
            self.ln = nn.LayerNorm(2)

        def forward(self, x):  # channels first; the asymmetric 'same' padding by hand
            x = torch.nn.functional.pad(x, [0, 1, 0, 1]) if not isinstance(c_padding, int) else x
            x = self.t(self.bn2(self.d(self.bn(self.c(x)))))
            return self.ln(x.movedim(1, -1))

    return Model().eval()


def test_load_into_compares_layer_options_with_the_module():
    from netspec.torch import load_into

    net = netspec.loads(OPTIONS_SPEC, "options.yaml")
    params = net.initialize()
    model = _options_model()
    with pytest.warns(UserWarning, match=r"c: padding: netspec \(before, after\) \(0, 1\), \(0, 1\), the module "
                      r"\(0, 0\), \(0, 0\)") as record:  # fmt: skip
        load_into(model, net, params, options="warn")  # the module pads by hand: copied, with a warning
    assert len(record) == 1 and "bn" not in str(record[0].message)
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    with torch.no_grad():
        theirs = model(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(theirs, net.forward(x, params), rtol=RTOL, atol=ATOL)  # it does compute the spec
    # what a user copying a PyTorch model gets wrong, each named: padding, eps, stride, momentum
    wrong = _options_model(c_padding=1, eps=1e-5, d_stride=2, momentum=None, t_padding=0)
    with pytest.raises(NetspecError) as e:
        load_into(wrong, net, params)
    problems = str(e.value).split(": ", 1)[1].split("; ")
    assert problems == [
        "c: padding: netspec (before, after) (0, 1), (0, 1), the module (1, 1), (1, 1)",
        "bn: eps: netspec 0.001, the module 1e-05",
        "d: stride: netspec (1, 1), the module (2, 2)",
        "bn2: momentum: netspec 0.1, the module None (a cumulative average)",
        "t: padding: netspec (before, after) (1, 1), (1, 1), the module (0, 0), (0, 0)",
    ]
    ours = torch.from_numpy(np.ascontiguousarray(params["d.weights"].transpose(3, 2, 0, 1)))
    assert not torch.equal(wrong.d.weight.detach(), ours)  # refused: nothing copied
    load_into(wrong, net, params, options="ignore")  # said to copy anyway: no comparison
    assert torch.equal(wrong.d.weight.detach(), ours)
    with pytest.raises(ValueError, match="options must be"):
        load_into(model, net, params, options="strict")


def test_an_embeddings_padding_row_starts_at_zero_and_gets_no_gradient():
    """``padding_idx``: the row is 0 after the draw (every other value keeps the bytes it has without one), and
    the exported module leaves it out of the gradient, as ``nn.Embedding(padding_idx)`` does."""
    text = "netspec: 1\ninput: [4]\nlayers:\n  - {{type: embedding, name: tok, vocab: 9, dim: 3{}}}\n"
    padded = netspec.loads(text.format(", padding_idx: 2"), "padded.yaml").initialize()["tok.weights"]
    plain = netspec.loads(text.format(""), "plain.yaml").initialize()["tok.weights"]
    assert not padded[2].any() and np.array_equal(np.delete(padded, 2, 0), np.delete(plain, 2, 0))
    module = to_module(netspec.loads(text.format(", padding_idx: 2"), "padded.yaml"))
    module(torch.tensor([[2, 2, 5, 0]])).sum().backward()
    grad = module.tok.weight.grad
    assert not grad[2].any() and grad[5].abs().sum() > 0
