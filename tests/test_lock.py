"""Lock files: a round trip, then each kind of drift detected with the right reason."""

import hashlib
import json
from pathlib import Path

import pytest

from netspec.cli import main

SPEC = """netspec: 1
seed: 3
input: [6]
layers:
  - {type: dense, name: fc1, units: 5, activation: relu}
  - {type: dense, name: fc2, units: 4, activation: tanh}
  - {type: dense, name: out, units: 2}
"""


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def locked(tmp_path, capsys):
    spec = tmp_path / "model.yaml"
    spec.write_text(SPEC)
    code, _, err = _cli(capsys, "lock", spec)
    assert code == 0, err
    return spec, tmp_path / "model.yaml.lock"


def test_round_trip_and_format(locked, capsys):
    spec, lock = locked
    data = json.loads(lock.read_text())
    assert data["seed"] == 3 and data["rng"] == "block" and data["dtype"] == "float32"
    assert data["netspec_lock"] == 1 and data["stream"].startswith("block/")
    entry = data["tensors"]["fc1.weights"]
    assert entry["shape"] == [6, 5] and entry["fans"] == [6, 5] and entry["initializer"]["name"] == "he_normal"
    assert len(entry["sha256"]) == 64 and entry["declared"].startswith("N(0, ")
    lines = lock.read_text().splitlines()
    assert [line.strip().split('"')[1] for line in lines if '"sha256"' in line] == sorted(data["tensors"])
    code, out, _ = _cli(capsys, "lock", "--check", spec)
    assert code == 0 and "ok (6 tensors match)" in out


def test_changed_initializer_is_named(locked, capsys):
    spec, _ = locked
    spec.write_text(SPEC.replace("units: 4, activation: tanh", "units: 4, activation: tanh, weights: he_uniform"))
    code, _, err = _cli(capsys, "lock", "--check", spec)
    assert code == 1 and "fc2.weights: initializer glorot_uniform(gain=1.0) -> he_uniform()" in err
    assert "fc1.weights" not in err and "1 because the spec changed, 0 because" in err


def test_changed_seed_moves_every_tensor(locked, capsys):
    spec, _ = locked
    spec.write_text(SPEC.replace("seed: 3", "seed: 4"))
    code, out, _ = _cli(capsys, "lock", "--check", spec, "--json")
    (report,) = json.loads(out)  # one document listing every spec
    random = {"fc1.weights", "fc2.weights", "out.weights"}  # zero biases have the same bytes under any seed
    assert code == 1 and {d["tensor"] for d in report["drift"]} == random
    assert all(d["kind"] == "spec" and "seed 3 -> 4" in d["reason"] for d in report["drift"])


def test_an_added_layer_lists_only_its_tensors(locked, capsys):
    spec, _ = locked
    spec.write_text(SPEC + "  - {type: dense, name: extra, units: 3}\n")
    code, _, err = _cli(capsys, "lock", "--check", spec)
    assert code == 1 and err.count("added (not in the lock)") == 2 and "extra.weights" in err
    assert "fc1" not in err and "out.weights" not in err


def test_a_library_change_is_told_apart(locked, capsys):
    spec, lock = locked
    data = json.loads(lock.read_text())
    data["tensors"]["fc2.weights"]["sha256"] = "0" * 64  # as if NumPy or netspec now gave other bytes
    lock.write_text(json.dumps(data))
    code, _, err = _cli(capsys, "lock", "--check", spec)
    assert code == 1 and "fc2.weights: the same spec now gives other bytes" in err
    assert "0 because the spec changed, 1 because the same spec now gives other bytes" in err


def test_build_and_verify_check_a_lock(locked, tmp_path, capsys):
    spec, lock = locked
    out = tmp_path / "w.npz"
    assert _cli(capsys, "build", spec, "-o", out, "--lock", lock)[0] == 0 and out.exists()
    assert _cli(capsys, "verify", spec, "--weights", out, "--lock", lock)[0] == 0
    spec.write_text(SPEC.replace("seed: 3", "seed: 9"))
    code, _, err = _cli(capsys, "build", spec, "-o", tmp_path / "w2.npz", "--lock", lock)
    assert code == 1 and "was not kept" in err and not (tmp_path / "w2.npz").exists()
    code, _, err = _cli(capsys, "verify", spec, "--lock", lock)  # built in memory from seed 9
    assert code == 1 and "differ from the lock" in err and "seed 3 -> 9" in err


def test_lock_errors(tmp_path, capsys):
    code, _, err = _cli(capsys, "lock", "--check", tmp_path / "missing.yaml")
    assert code == 1 and "no such file" in err
    spec = tmp_path / "m.yaml"
    spec.write_text(SPEC)
    code, _, err = _cli(capsys, "lock", "--check", spec)
    assert code == 1 and "no such lock file" in err
    (tmp_path / "m.yaml.lock").write_text("{not json")
    code, _, err = _cli(capsys, "lock", "--check", spec)
    assert code == 1 and "m.yaml.lock:1:2: not a lock file" in err
    code, _, err = _cli(capsys, "lock", spec, spec, "--lock", tmp_path / "x.lock")
    assert code == 2


def test_a_new_default_stream_is_netspec_s_doing(locked, capsys):
    spec, lock = locked
    data = json.loads(lock.read_text())
    data["stream"] = "block/7"  # as if the lock was written when rng: block meant stream version 7
    data["tensors"]["fc1.weights"]["sha256"] = "0" * 64
    lock.write_text(json.dumps(data))
    code, out, _ = _cli(capsys, "lock", "--check", spec, "--json")
    (report,) = json.loads(out)
    (drift,) = report["drift"]
    assert code == 1 and drift["tensor"] == "fc1.weights" and drift["kind"] == "bytes"
    assert "netspec's stream for rng: block" in drift["reason"] and "write rng: block/7" in drift["reason"]


def test_a_changed_rng_is_the_spec_s_doing(locked, capsys):
    spec, _ = locked
    spec.write_text(SPEC.replace("seed: 3", "seed: 3\nrng: legacy"))
    code, out, _ = _cli(capsys, "lock", "--check", spec, "--json")
    (report,) = json.loads(out)
    assert code == 1 and report["drift"] and all(d["kind"] == "spec" for d in report["drift"])
    assert all("rng block -> legacy" in d["reason"] for d in report["drift"])


def test_imported_libraries_are_recorded_and_noted(tmp_path, capsys):
    (tmp_path / ".git").mkdir()
    lib = tmp_path / "lib" / "blocks.yaml"
    lib.parent.mkdir()
    lib.write_text("netspec: 1\nblocks:\n  mlp:\n    layers:\n      - {type: dense, name: fc, units: 3}\n")
    spec = tmp_path / "m.yaml"
    spec.write_text("netspec: 1\ninput: [4]\nimports: [lib/blocks.yaml]\nlayers:\n  - {block: mlp, name: m}\n")
    assert _cli(capsys, "lock", spec)[0] == 0
    recorded = json.loads((tmp_path / "m.yaml.lock").read_text())["imports"]
    assert recorded == {"lib/blocks.yaml": hashlib.sha256(lib.read_bytes()).hexdigest()}
    lib.write_text(lib.read_text() + "# reviewed\n")  # the library's text changes, its tensors do not
    code, out, err = _cli(capsys, "lock", "--check", spec)
    assert code == 0 and "ok (2 tensors match)" in out and "note: imported library lib/blocks.yaml: sha256" in err
    lib.write_text(lib.read_text().replace("units: 3", "units: 5"))
    code, _, err = _cli(capsys, "lock", "--check", spec)
    assert code == 1 and "m.fc.weights: shape [4, 3] -> [4, 5]" in err and "m.fc.bias: shape [3] -> [5]" in err
    code, _, err = _cli(capsys, "lock", "--check", spec, lib)  # a hook hands over the library too
    assert code == 1 and "lib/blocks.yaml: a block library: nothing to lock" in err
    assert _cli(capsys, "lock", lib)[0] == 0 and not (tmp_path / "lib" / "blocks.yaml.lock").exists()


def test_the_hook_takes_locks_and_libraries(tmp_path, capsys):
    """pre-commit hands netspec-lock every changed file its pattern matches: specs, their locks, libraries."""
    import re

    import yaml

    manifest = Path(__file__).resolve().parents[1] / ".pre-commit-hooks.yaml"
    hooks = {h["id"]: h for h in yaml.safe_load(manifest.read_text())}
    pattern = re.compile(hooks["netspec-lock"]["files"])
    assert all(pattern.search(p) for p in ("specs/m.yaml", "specs/m.yaml.lock", "specs/lib/blocks.yml"))
    (tmp_path / ".git").mkdir()
    lib = tmp_path / "blocks.yaml"
    lib.write_text("netspec: 1\nblocks:\n  mlp:\n    layers:\n      - {type: dense, name: fc, units: 3}\n")
    spec = tmp_path / "m.yaml"
    spec.write_text("netspec: 1\ninput: [4]\nimports: [blocks.yaml]\nlayers:\n  - {block: mlp, name: m}\n")
    assert _cli(capsys, "lock", spec)[0] == 0
    code, out, err = _cli(capsys, *hooks["netspec-lock"]["entry"].split()[1:], f"{spec}.lock", spec, lib)
    assert code == 0 and out.count("ok (2 tensors match)") == 1 and "a block library: nothing to lock" in err
    (tmp_path / "m.yaml.lock").write_text((tmp_path / "m.yaml.lock").read_text().replace('"shape": [4, 3]',
                                                                                          '"shape": [4, 2]'))
    code, _, err = _cli(capsys, *hooks["netspec-lock"]["entry"].split()[1:], f"{spec}.lock")  # only the lock edited
    assert code == 1 and "m.fc.weights: shape [4, 2] -> [4, 3]" in err
