"""The command line, mostly in-process (``main(argv)`` with captured output) so the suite stays fast;
a few tests run the installed console script where a real process matters (signals, pipes, start-up)."""

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from netspec.cli import main
from netspec.io import weights as weights_io

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
BAD = sorted((ROOT / "tests" / "bad").glob("*.yaml"))
DEMO = ROOT / "specs" / "glorot-demo-4-5-3.yaml"


def netspec(*args, cwd=None):
    """Run ``main(argv)`` in this process; returns returncode, stdout and stderr like subprocess.run."""
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:  # argparse: usage errors (2), --help and --version (0)
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(old)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def console(*args, cwd=None, timeout=120, **kwargs):
    """Run the installed console script; ``timeout`` only guards against a hang (no timing assertions)."""
    exe = shutil.which("netspec", path=os.path.dirname(sys.executable)) or shutil.which("netspec")
    cmd = [exe, *map(str, args)] if exe else [sys.executable, "-m", "netspec.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout, **kwargs)


def test_eval_prints_seed_001_demo_output():
    r = netspec("eval", DEMO, "--input", "1,2,3,4")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[0.0468 0.5265 0.4267]"


def test_build_writes_default_npz_in_cwd_and_says_so(tmp_path):
    r = netspec("build", DEMO, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "glorot-demo-4-5-3.npz"
    assert out.exists()
    assert "wrote glorot-demo-4-5-3.npz" in r.stdout and "default" in r.stdout
    with np.load(out) as w:
        arrays = {name: w[name] for name in ("dense_1.weights", "dense_1.bias", "dense_2.weights", "dense_2.bias")}
    content = weights_io.content_digest(weights_io.tensor_digests(arrays), arrays)
    assert f"content sha256 {content}" in r.stdout and "file sha256" not in r.stdout  # .npz: no free file digest
    for needle in ("dense_1 (dense)", "(None, 5)", "25", "glorot_uniform U(±0.8165)", "tanh", "Total params: 43"):
        assert needle in r.stdout
    with np.load(out) as w:
        assert sorted(w.files) == ["dense_1.bias", "dense_1.weights", "dense_2.bias", "dense_2.weights"]
        assert w["dense_1.weights"].shape == (4, 5) and w["dense_1.weights"].dtype == np.float32
        # the most natural user code works: every member is an array of numbers
        assert all(v.dtype == np.float32 for v in dict(w.items()).values())
    assert weights_io.load_metadata(str(out))["netspec_spec"] == "glorot-demo-4-5-3"  # in the archive comment


def test_load_metadata_reads_npz_files_of_earlier_versions(tmp_path):
    """Before the archive comment, .npz files held the metadata as a member netspec-metadata.json."""
    import zipfile

    old = tmp_path / "old.npz"
    np.savez(old, **{"dense_1.weights": np.ones((2, 2), np.float32)})
    with zipfile.ZipFile(old, "a") as zf:
        zf.writestr("netspec-metadata.json", json.dumps({"netspec_spec": "old", "netspec_seed": "3"}))
    assert weights_io.load_metadata(str(old)) == {"netspec_spec": "old", "netspec_seed": "3"}
    assert list(weights_io.load(str(old))) == ["dense_1.weights"]  # the member is not a tensor
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(2))
    assert weights_io.load_metadata(str(plain)) == {}


def test_same_spec_and_seed_give_the_same_bytes(tmp_path):
    spec = ROOT / "specs" / "cifar-cnn.yaml"
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert netspec("build", spec, "-o", a).returncode == 0
    assert netspec("build", spec, "-o", b, "--threads", "1").returncode == 0
    assert a.read_bytes() == b.read_bytes()
    c = tmp_path / "c.npz"
    assert netspec("build", spec, "-o", c, "--seed", "43").returncode == 0
    assert a.read_bytes() != c.read_bytes()


def test_sha256_does_not_depend_on_thread_count(tmp_path):
    spec = ROOT / "specs" / "cifar-cnn.yaml"  # dense_5 has 401,408 weights: two blocks
    digests = set()
    for threads in (1, 2, 8):
        r = netspec("build", spec, "-o", tmp_path / f"t{threads}.npz", "--threads", threads, "--json")
        assert r.returncode == 0, r.stderr
        digests.add(json.loads(r.stdout)["sha256"])
    assert len(digests) == 1


def test_safetensors_output_loads_with_the_safetensors_library(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    out = tmp_path / "w.safetensors"
    r = netspec("build", ROOT / "specs" / "cifar-cnn.yaml", "-o", out)
    assert r.returncode == 0, r.stderr
    tensors = safetensors_numpy.load_file(str(out))
    assert tensors["conv2d_1.weights"].shape == (3, 3, 3, 32)
    assert f"file sha256 {hashlib.sha256(out.read_bytes()).hexdigest()}" in r.stdout  # hashed while written
    assert f"content sha256 {weights_io.content_digest(weights_io.tensor_digests(tensors), tensors)}" in r.stdout
    npz = tmp_path / "w.npz"
    netspec("build", ROOT / "specs" / "cifar-cnn.yaml", "-o", npz)
    with np.load(npz) as w:
        names = w.files
        assert sorted(names) == sorted(tensors)
        for name in names:
            assert np.array_equal(w[name], tensors[name])


def test_eval_with_weights_file_matches_in_memory(tmp_path):
    out = tmp_path / "w.safetensors"
    assert netspec("build", DEMO, "-o", out).returncode == 0
    r = netspec("eval", DEMO, "--input", "1,2,3,4", "--weights", out, "--json")
    assert r.returncode == 0, r.stderr
    assert np.allclose(json.loads(r.stdout)["output"], [0.0468, 0.5265, 0.4267], atol=1e-4)


def test_eval_batch_from_npy(tmp_path):
    x = np.array([[1, 2, 3, 4], [0, 0, 0, 0]], dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    r = netspec("eval", DEMO, "--input", tmp_path / "x.npy", "--json")
    assert r.returncode == 0, r.stderr
    y = np.array(json.loads(r.stdout)["output"])
    assert y.shape == (2, 3) and np.allclose(y.sum(axis=1), 1)


def test_eval_writes_the_output_at_full_precision(tmp_path):
    import netspec as api

    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = netspec("eval", DEMO, "--input", tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    assert r.returncode == 0 and r.stdout == f"wrote {tmp_path / 'y.npy'}\n", r.stderr
    expected = api.load(str(DEMO)).forward(x)
    assert np.load(tmp_path / "y.npy").tobytes() == expected.tobytes()  # every bit, not 4 printed digits
    multi = tmp_path / "multi.yaml"
    multi.write_text("netspec: 1\ninput: [4]\noutputs: [a, b]\nlayers:\n  - {type: dense, name: a, units: 2}\n"
                     "  - {type: dense, name: b, units: 3}\n")  # fmt: skip
    r = netspec("eval", multi, "--input", "1,2,3,4", "-o", tmp_path / "y.npz")
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "y.npz") as out:
        assert sorted(out.files) == ["a", "b"] and out["b"].shape == (3,)
    for bad, message in [(tmp_path / "y.npy", "write .npz"), (tmp_path / "y.txt", ".npy or .npz"),
                         (tmp_path / "missing" / "y.npy", "the folder does not exist")]:  # fmt: skip
        r = netspec("eval", multi, "--input", "1,2,3,4", "-o", bad)
        assert r.returncode == 2 and message in r.stderr, r.stderr


def test_dry_run_writes_nothing(tmp_path):
    r = netspec("build", DEMO, "--dry-run", cwd=tmp_path)
    assert r.returncode == 0 and "dry run" in r.stdout
    assert list(tmp_path.iterdir()) == []


def test_build_json_summary(tmp_path):
    r = netspec("build", ROOT / "specs" / "cifar-cnn.yaml", "--json", "-o", tmp_path / "w.npz")
    report = json.loads(r.stdout)
    assert report["total_params"] == 422_218
    assert report["layers"][4]["parameters"]["weights"]["config"]["name"] == "he_normal"
    assert len(report["sha256"]) == 64


def test_max_params_is_enforced_before_allocation(tmp_path):
    r = netspec("build", ROOT / "specs" / "cifar-cnn.yaml", "--max-params", "1000", cwd=tmp_path)
    assert r.returncode == 1
    assert "over the limit of 1,000" in r.stderr and "cifar-cnn.yaml:" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "sub"
    target.mkdir()
    (target / "w.npz").mkdir()  # a folder where the file should go: the rename fails
    r = netspec("build", DEMO, "-o", target / "w.npz")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert [p.name for p in target.iterdir()] == ["w.npz"]


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_example_specs_validate_and_build(spec, tmp_path):
    r = netspec("build", spec, "-o", tmp_path / "w.npz", "--max-params", "50000000")
    assert r.returncode == 0, r.stderr


def test_validate_many_files_reports_each():
    r = netspec("validate", *SPECS, BAD[0])
    assert r.returncode == 1
    assert f"{len(SPECS)} valid, 1 invalid" in r.stdout


@pytest.mark.parametrize("bad", BAD, ids=lambda p: p.name)
def test_bad_inputs_fail_cleanly_and_located(bad):
    r = netspec("build", bad, "--dry-run")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    first = r.stderr.splitlines()[0]
    assert first.startswith(f"{bad}:") and ": error: " in first, first
    line, col = first[len(str(bad)) + 1 :].split(":")[:2]
    assert int(line) >= 1 and int(col) >= 1


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ("typo-key.yaml", "did you mean 'units'"),
        ("typo-type.yaml", "did you mean 'dense'"),
        ("typo-initializer.yaml", "did you mean 'glorot_uniform'"),
        ("typo-activation.yaml", "did you mean 'relu'"),
        ("duplicate-key.yaml", "duplicate key 'units'"),
        ("alias-bomb.yaml", "alias expansion"),
        ("python-tag.yaml", "is not allowed"),
        ("wrong-version.yaml", "unsupported spec version 2"),
        ("negative-std.yaml", "std must be > 0, got -1.0 (at layers[0].weights)"),
    ],
)
def test_bad_input_messages(bad, needle):
    r = netspec("validate", ROOT / "tests" / "bad" / bad)
    assert needle in r.stderr


def test_usage_errors_exit_2(tmp_path):
    assert netspec("build").returncode == 2
    r = netspec("build", DEMO, "-o", tmp_path / "w.txt")
    assert r.returncode == 2 and "use .npz or .safetensors" in r.stderr
    r = netspec("build", DEMO, "-o", tmp_path / "missing" / "w.npz")
    assert r.returncode == 2 and "folder does not exist" in r.stderr
    r = netspec("build", DEMO, "--threads", "0")
    assert r.returncode == 2 and "must be >= 1" in r.stderr
    r = netspec("verify", DEMO, DEMO, "--weights", tmp_path / "w.npz")
    assert r.returncode == 2 and "one SPEC" in r.stderr
    assert netspec("frobnicate").returncode == 2


@pytest.mark.parametrize("command", ["build", "validate", "verify", "explain", "eval"])
def test_a_missing_spec_file_exits_1_for_every_command(command, tmp_path):
    extra = ["--input", "1,2,3,4"] if command == "eval" else []
    r = netspec(command, tmp_path / "missing.yaml", *extra)
    assert r.returncode == 1, (command, r.stderr)
    assert "missing.yaml" in r.stderr and "no such file" in r.stderr and "Traceback" not in r.stderr


def test_wrong_input_values_exit_1(tmp_path):
    r = netspec("eval", DEMO, "--input", "1,2,3")
    assert r.returncode == 1 and "takes [4]" in r.stderr
    r = netspec("eval", DEMO, "--input", tmp_path / "nope.npy")
    assert r.returncode == 1 and "no such file" in r.stderr


def test_help_and_version():
    for cmd in ([], ["build"], ["validate"], ["schema"], ["eval"], ["verify"], ["explain"]):
        r = netspec(*cmd, "--help")
        assert r.returncode == 0 and "usage: netspec" in r.stdout
    assert netspec("--version").stdout.startswith("netspec ")
    assert "\ntransforms: " in netspec("--version").stdout
    assert console("--version").stdout.startswith("netspec ")


def test_schema_command_prints_the_published_schema():
    r = console("schema")  # a fresh process: tests in this one register custom names
    assert r.returncode == 0
    assert json.loads(r.stdout) == json.loads((ROOT / "schemas" / "netspec-v1.schema.json").read_text())


def test_oversized_npz_is_refused_before_decompressing(tmp_path):
    big = tmp_path / "big.npz"
    np.savez_compressed(big, **{"dense_1.weights": np.zeros((4000, 4000), np.float32)})  # 64 MB, compresses to KBs
    r = netspec("verify", DEMO, "--weights", big)
    assert r.returncode == 1 and "not loading it" in r.stderr and "Traceback" not in r.stderr


def test_verify_json_report(tmp_path):
    out = tmp_path / "w.npz"
    assert netspec("build", ROOT / "specs" / "cifar-cnn.yaml", "-o", out).returncode == 0
    r = netspec("verify", ROOT / "specs" / "cifar-cnn.yaml", "--weights", out, "--json", "--alpha", "0.01")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["passed"] is True and report["alpha"] == 0.01
    dense = next(t for t in report["tensors"] if t["name"] == "dense_5.weights")
    assert dense["n"] == 401_408 and dense["reproduces"] is True and dense["bounds_ok"] is True
    low, high = dense["variance_interval"]
    assert low < dense["variance_ratio"] < high and dense["fit_p"] > report["per_test_alpha"]


def test_verify_fails_a_tampered_file(tmp_path):
    out = tmp_path / "w.npz"
    assert netspec("build", DEMO, "-o", out).returncode == 0
    with np.load(out) as w:
        params = {k: w[k] for k in w.files}
    params["dense_1.weights"] = params["dense_1.weights"] * np.float32(1.5)
    np.savez(tmp_path / "t.npz", **params)
    r = netspec("verify", DEMO, "--weights", tmp_path / "t.npz")
    assert r.returncode == 1 and "dense_1.weights" in r.stdout and "FAIL" in r.stdout


def test_explain_says_where_each_initializer_came_from():
    r = netspec("explain", ROOT / "specs" / "cifar-cnn.yaml", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["parameter"]: row for row in json.loads(r.stdout)}
    expected = "defaults.weights; auto: relu -> he_normal (the activation's recommended initializer)"
    assert rows["conv2d_1.weights"]["origin"] == expected
    assert rows["conv2d_1.weights"]["fan_in"] == 27 and rows["conv2d_1.weights"]["receptive_field"] == 9
    assert rows["dense_5.weights"]["origin"] == "layer key 'weights'"
    assert rows["dense_7.weights"]["initializer"]["mode"] == "fan_avg"
    assert rows["dense_7.bias"]["origin"].startswith("defaults.bias")
    text = netspec("explain", DEMO).stdout
    assert "glorot_uniform(gain=1.0)  from defaults.weights" in text and "U(±0.8165)" in text


def test_npz_bytes_do_not_depend_on_the_time_of_writing(tmp_path, monkeypatch):
    import time

    import numpy as np

    from netspec.io.weights import save

    params = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    save(params, str(tmp_path / "a.npz"), {"seed": "1"})
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)  # zipfile stamps members with time.time()
    save(params, str(tmp_path / "b.npz"), {"seed": "1"})
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
