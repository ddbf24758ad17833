"""Regression tests for the defects found by trying netspec as a new user would (one test per defect)."""

import json
import os
import stat
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import netspec
from netspec.errors import SpecError
from netspec.io import weights as weights_io
from test_cli import DEMO, ROOT, console
from test_cli import netspec as run

MLP = """netspec: 1
input: [4]
layers:
  - {type: dense, units: 3}
"""


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def diagnostics(text: str) -> list:
    with pytest.raises(SpecError) as info:
        netspec.loads(text, "spec.yaml")
    return info.value.diagnostics


# 1. verify on a spec without parameters
def test_verify_a_spec_without_parameters(tmp_path):
    spec = write(tmp_path, "netspec: 1\ninput: [4, 2]\nlayers:\n  - {type: flatten}\n  - {type: dropout, rate: 0.5}\n")
    r = run("verify", spec)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "no parameter" in r.stdout


# 2. eval with ids out of the vocabulary, or not integers
@pytest.mark.parametrize("value", ["99999", "1.5", "-1"])
def test_eval_bad_token_ids_are_an_input_error(value):
    ids = ",".join([value] * 128)
    r = run("eval", ROOT / "specs" / "embedding-classifier.yaml", "--input", ids)
    assert r.returncode == 1, r.stderr
    assert "token ids must be integers in [0, 20000)" in r.stderr and "Traceback" not in r.stderr


# 3. safetensors headers of the wrong JSON types
@pytest.mark.parametrize(
    ("header", "needle"),
    [
        ([1, 2], "must be a JSON object"),
        ({"dense_1.weights": {"t": 5}}, "'dtype' must be a string"),
        ({"dense_1.weights": 5}, "entry must be a JSON object"),
        ({"dense_1.weights": {"dtype": "F32", "shape": [4, "5"], "data_offsets": [0, 80]}}, "'shape'"),
        ({"dense_1.weights": {"dtype": "F32", "shape": [4, 5], "data_offsets": [0]}}, "'data_offsets'"),
        ({"__metadata__": [1]}, "__metadata__ must be a JSON object"),
    ],
)
def test_safetensors_header_is_type_checked(tmp_path, header, needle):
    blob = json.dumps(header).encode()
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0" * 80)
    r = run("verify", DEMO, "--weights", path)
    assert r.returncode == 1 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr


# 4. plugin initializer without `from __future__ import annotations`
def test_plugin_field_types_reach_the_schema_without_future_annotations():
    namespace: dict = {}
    exec(  # a plugin module as its author would write it: real (not string) annotations, a Literal choice
        "from dataclasses import dataclass\n"
        "from typing import Literal\n"
        "from netspec.init.initializers import Initializer\n"
        "from netspec.init.distributions import Normal\n"
        "@dataclass(frozen=True)\n"
        "class Scaled(Initializer):\n"
        "    scale: float = 1.0\n"
        "    mode: Literal['in', 'out'] = 'in'\n"
        "    name = 'trust_scaled_plugin'\n"
        "    def distribution(self, shape, fans):\n"
        "        return Normal(0.0, self.scale)\n",
        namespace,
    )
    from netspec.plugins import register_initializer

    register_initializer(namespace["Scaled"])
    text = MLP.replace("{type: dense, units: 3}", "{type: dense, units: 3, weights: {name: trust_scaled_plugin, %s}}")
    (d,) = diagnostics(text % "scale: big")
    assert d.path == "layers[0].weights.scale" and "expected a number" in d.message
    (d,) = diagnostics(text % "mode: sideways")
    assert d.path == "layers[0].weights.mode" and "'sideways' is not one of in, out" in d.message
    assert netspec.loads(text % "scale: 2, mode: out").num_params == 15


# 5. one bad default used by two layers: one diagnostic
def test_a_bad_default_is_reported_once():
    text = "netspec: 1\ninput: [4]\ndefaults:\n  weights: {name: normal, std: -1}\nlayers:\n" + (
        "  - {type: dense, units: 3}\n  - {type: dense, units: 2}\n"
    )
    (d,) = diagnostics(text)
    assert (d.line, d.path) == (4, "defaults.weights") and "std must be > 0" in d.message


def test_a_bad_initializer_in_a_repeat_block_is_reported_once():
    layer = "{type: dense, units: 4, weights: {name: uniform, low: 1, high: 0}}"
    text = f"netspec: 1\ninput: [4]\nlayers:\n  - repeat: 3\n    layers:\n      - {layer}\n"
    (d,) = diagnostics(text)
    assert d.line == 6 and d.path == "layers[0].layers[0].weights"


# 6. merge keys keep the explicit key's position
def test_merge_key_does_not_move_an_explicit_keys_position():
    text = (
        "netspec: 1\ninput: [4]\n"
        "x-base: &b\n  type: dense\n  units: 3\n  activation: relu\n"
        "layers:\n  - {<<: *b, units: 2, activation: relux}\n"
    )
    (d,) = diagnostics(text)
    assert (d.line, d.path) == (8, "layers[0].activation") and "did you mean 'relu'" in d.message


# 7. messages worded from the schema's own limit
def test_network_name_limit_is_worded_from_its_own_limit():
    (d,) = diagnostics("netspec: 1\nname: " + "n" * 129 + "\ninput: [4]\nlayers:\n  - {type: dense, units: 3}\n")
    assert "129 characters long; at most 128 allowed" in d.message and d.path == "name"
    (d,) = diagnostics(MLP.replace("{type: dense, units: 3}", "{type: dense, units: 3, name: " + "l" * 65 + "}"))
    assert "at most 64 allowed" in d.message


# 8. legacy seeds of 2^32 and more
def test_legacy_mode_refuses_seeds_it_would_wrap():
    (d,) = diagnostics("netspec: 1\nrng: legacy\nseed: 4294967296\ninput: [4]\nlayers:\n  - {type: dense, units: 3}\n")
    assert d.line == 3 and d.path == "seed" and "below 2^32" in d.message
    net = netspec.loads("netspec: 1\nrng: legacy\nseed: 4294967295\ninput: [4]\nlayers:\n  - {type: dense, units: 3}\n")
    assert net.seed == 2**32 - 1
    with pytest.raises(netspec.errors.NetspecError, match="below 2\\^32"):
        netspec.loads("netspec: 1\nrng: legacy\ninput: [4]\nlayers:\n  - {type: dense, units: 3}\n", seed=2**32)
    assert netspec.loads(MLP, seed=2**40).seed == 2**40  # block mode takes 63-bit seeds


# 9. .npz files say where they came from
@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_weights_files_carry_their_metadata(tmp_path, suffix):
    out = tmp_path / f"w{suffix}"
    assert run("build", DEMO, "-o", out).returncode == 0
    meta = weights_io.load_metadata(str(out))
    assert meta["netspec_spec"] == "glorot-demo-4-5-3" and meta["netspec_seed"] == "0"
    assert meta["netspec_rng"] == "legacy" and meta["netspec_dtype"] == "float32"
    assert sorted(weights_io.load(str(out))) == ["dense_1.bias", "dense_1.weights", "dense_2.bias", "dense_2.weights"]


# 10. exit codes (missing files: test_cli) and closed pipes
def test_a_closed_pipe_is_not_an_error():
    proc = subprocess.Popen(
        [sys.executable, "-m", "netspec.cli", "explain", str(ROOT / "specs" / "mnist-mlp.yaml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "Broken pipe" not in err and "Traceback" not in err


# 11. last-resort handler
def test_an_unexpected_exception_is_one_line_and_exit_70(monkeypatch):
    from netspec import cli

    def boom(args):
        raise RuntimeError("simulated bug")

    monkeypatch.setitem(cli.COMMANDS, "explain", boom)
    r = run("explain", DEMO)
    assert r.returncode == 70
    assert r.stderr.strip() == (
        "netspec: internal error: RuntimeError: simulated bug (please report it; NETSPEC_DEBUG=1 shows the traceback)"
    )
    monkeypatch.setenv("NETSPEC_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main(["explain", str(DEMO)])


# behaviour: validate runs every check that build runs before allocation
@pytest.mark.parametrize(
    ("layer", "needle"),
    [
        ("{type: dense, units: 3, weights: dirac}", "dirac needs a conv kernel"),
        ("{type: dense, units: 3, bias: orthogonal}", "orthogonal needs a tensor of rank >= 2"),
        ("{type: conv1d, filters: 2, kernel: 3, weights: identity}", "identity needs a 2-D tensor"),
    ],
)
def test_validate_catches_initializer_shape_errors(layer, needle):
    text = "netspec: 1\ninput: [8, 2]\nlayers:\n  - {type: flatten}\n  - " + layer + "\n"
    if "conv1d" in layer:
        text = text.replace("  - {type: flatten}\n", "")
    (d,) = diagnostics(text)
    assert needle in d.message and d.line >= 4
    assert d.path.startswith("layers[") and d.path.endswith(("weights", "bias"))


# behaviour: weights files respect the umask
def test_weights_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "w.npz"
        assert run("build", DEMO, "-o", out).returncode == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o644
        os.umask(0o077)
        out2 = tmp_path / "w2.safetensors"
        assert run("build", DEMO, "-o", out2).returncode == 0
        assert stat.S_IMODE(out2.stat().st_mode) == 0o600
    finally:
        os.umask(old)


# behaviour: SIGTERM cleans up like SIGINT: tests/test_file_kinds.py (with SIGKILL)


# behaviour: stable names
def test_positional_names_warn_and_explicit_names_are_required():
    net = netspec.loads(MLP)
    (w,) = net.warnings
    assert w.severity == "warning" and "dense_1" in w.message and "positional" in w.message
    named = MLP.replace("units: 3}", "units: 3, name: head}")
    assert netspec.loads(named).warnings == []
    (d,) = diagnostics("names: explicit\n" + MLP)
    assert "has parameters but no name" in d.message and d.path == "layers[0]"
    net = netspec.loads("names: explicit\n" + named.replace("layers:\n", "layers:\n  - {type: flatten}\n"))
    assert [cl.name for cl in net.layers] == ["flatten_1", "head"]


def test_named_layers_keep_their_weights_when_a_layer_is_inserted():
    named = MLP.replace("units: 3}", "units: 3, name: head}")
    a = netspec.loads(named).initialize()
    b = netspec.loads(named.replace("layers:\n", "layers:\n  - {type: dropout, rate: 0.1}\n")).initialize()
    assert a["head.weights"].tobytes() == b["head.weights"].tobytes()


def test_validate_prints_the_warning_without_failing(tmp_path):
    r = run("validate", write(tmp_path, MLP))
    assert r.returncode == 0 and "warning:" in r.stderr and "positional names" in r.stderr
    assert run("validate", "-q", write(tmp_path, MLP)).stderr == ""


# behaviour: validate accepts folders; eval accepts negative numbers
def test_validate_a_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path, MLP, "a.yaml")
    write(tmp_path / "sub", MLP, "b.yml")
    r = run("validate", tmp_path)
    assert r.returncode == 0 and "2 valid, 0 invalid" in r.stdout, r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run("validate", empty)
    assert r.returncode == 1 and "is a folder with no .yaml" in r.stderr


def test_eval_accepts_negative_numbers():
    r = run("eval", DEMO, "--input", "-1,2,-3.5,.5", "--json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["output"]) == 3


# behaviour: x- keys hold anchors
def test_x_keys_hold_reusable_anchors():
    text = "netspec: 1\ninput: [4]\nx-dense: &d {type: dense, units: 3, activation: relu}\nlayers:\n  - *d\n  - *d\n"
    net = netspec.loads(text)
    assert [cl.layer.type for cl in net.layers] == ["dense", "dense"]
    (d,) = diagnostics(text.replace("x-dense", "y-dense").replace("*d", "{type: dense, units: 3}"))
    assert "unknown key 'y-dense'" in d.message


# behaviour: validate --json
def test_validate_json_lists_every_diagnostic(tmp_path):
    bad = write(tmp_path, MLP.replace("units: 3", "units: 0"), "bad.yaml")
    r = run("validate", "--json", write(tmp_path, MLP), bad)
    doc = json.loads(r.stdout)
    assert r.returncode == 1 and doc["valid"] is False
    good, wrong = doc["specs"]
    assert good["valid"] and good["parameters"] == 15 and good["diagnostics"][0]["severity"] == "warning"
    assert not wrong["valid"] and wrong["diagnostics"][0]["path"] == "layers[0].units"


def test_console_script_runs():
    r = console("validate", DEMO)
    assert r.returncode == 0 and "ok" in r.stdout


def test_npz_metadata_member_is_bounded(tmp_path):
    path = tmp_path / "w.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("netspec-metadata.json", json.dumps([1, 2]))
    with pytest.raises(weights_io.WeightsError, match="mapping of strings"):
        weights_io.load_metadata(str(path))
    for comment in (b"[1]", b"{", b"[" * 60000):  # the archive comment (at most 64 KiB) as hostile JSON
        with zipfile.ZipFile(path, "w") as zf:
            zf.comment = weights_io.NPZ_COMMENT_PREFIX + comment
        with pytest.raises(weights_io.WeightsError, match="metadata"):
            weights_io.load_metadata(str(path))


def test_a_misspelled_required_key_is_one_message():
    (d,) = diagnostics(MLP.replace("units: 3", "unitz: 3"))
    assert "unknown key 'unitz'" in d.message and "did you mean 'units'" in d.message
    missing, unknown = diagnostics(MLP.replace("units: 3", "width: 3"))  # not a misspelling: both are said
    assert "missing required key 'units'" in missing.message and "unknown key 'width'" in unknown.message


def test_a_misspelled_type_key_is_still_reported():
    (d,) = diagnostics(MLP.replace("{type: dense, units: 3}", "{typex: dense, units: 3}"))
    assert "missing required key 'type'" in d.message


def test_verify_strict_fails_tensors_too_small_to_judge():
    r = run("verify", DEMO)  # 4x5 and 5x3 kernels cannot tell a factor of 2: inconclusive, not failed
    assert r.returncode == 0 and "inconclusive" in r.stdout, r.stdout
    r = run("verify", "--strict", DEMO)
    assert r.returncode == 1, r.stdout
    assert run("verify", "--strict", ROOT / "specs" / "mnist-mlp.yaml").returncode == 0


def test_verify_json_is_standard_json(tmp_path):
    spec = write(tmp_path, "netspec: 1\ninput: [1]\nlayers:\n  - {type: dense, units: 1, name: tiny}\n")
    r = run("verify", spec, "--json")

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    report = json.loads(r.stdout, parse_constant=refuse)
    assert report["tensors"][0]["name"] == "tiny.weights"
    from netspec.check.verify import _finite

    assert _finite({"detectable_ratio": float("inf"), "n": 1}) == {"detectable_ratio": None, "n": 1}
