"""netspec diff: example spec pairs, renames, the byte guarantee, git revisions, lock files, exit codes."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import netspec
from netspec.cli import main

SPECS = Path(__file__).parent.parent / "specs"


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _json(capsys, *args):
    code, out, err = _cli(capsys, "diff", *args, "--json")
    return code, (json.loads(out) if out else None), err


def test_same_spec_is_exit_0(capsys):
    code, doc, _ = _json(capsys, SPECS / "resnet-tiny.yaml", SPECS / "resnet-tiny.yaml")
    assert code == 0 and doc["same"] and doc["tensors"]["changed"] == []


def test_a_block_parameter_change(tmp_path, capsys):
    new = tmp_path / "resnet-tiny.yaml"
    text = (SPECS / "resnet-tiny.yaml").read_text()
    new.write_text(text.replace("name: stage2, filters: 16", "name: stage2, filters: 24"))
    code, doc, _ = _json(capsys, SPECS / "resnet-tiny.yaml", new)
    assert code == 1 and doc["layers"]["changed"]["stage2.conv1"]["filters"] == [16, 24]
    changed = {t["tensor"] for t in doc["tensors"]["changed"]}
    old_net, new_net = netspec.load(str(SPECS / "resnet-tiny.yaml")), netspec.load(str(new))
    assert doc["parameters"]["delta"] == new_net.num_params - old_net.num_params
    # the guarantee: every tensor not listed has exactly the same bytes
    a, b = old_net.initialize(), new_net.initialize()
    assert {k for k in b if k not in a or a[k].tobytes() != b[k].tobytes()} == changed
    assert doc["tensors"]["unchanged"] == len(b) - len(changed) > 0
    assert all(not t.startswith(("stem", "stage1")) for t in changed)


def test_added_removed_and_renamed_layers(tmp_path, capsys):
    old = tmp_path / "old.yaml"
    new = tmp_path / "new.yaml"
    old.write_text("netspec: 1\ninput: [4]\nlayers:\n  - {type: dense, name: a, units: 3}\n"
                   "  - {type: dense, name: b, units: 3}\n  - {type: dense, name: c, units: 2}\n")
    new.write_text("netspec: 1\ninput: [4]\nlayers:\n  - {type: dense, name: a, units: 3}\n"
                   "  - {type: dense, name: hidden, units: 3}\n  - {type: dense, name: c, units: 2}\n"
                   "  - {type: dense, name: d, units: 2}\n")  # fmt: skip
    code, doc, _ = _json(capsys, old, new)
    assert code == 1 and doc["layers"]["renamed"] == [["b", "hidden"]] and doc["layers"]["added"] == ["d"]
    changed = {t["tensor"] for t in doc["tensors"]["changed"]}
    assert changed == {"hidden.weights", "hidden.bias", "d.weights", "d.bias"}  # a and c keep their bytes
    code, text, _ = _cli(capsys, "diff", old, new)
    assert "~ layer b -> hidden (renamed" in text and "+ layer d" in text and "parameters: 35 -> 41 (+6)" in text
    assert "c.inputs" not in text  # c still takes the renamed layer


def test_legacy_rng_moves_everything_after_a_change(tmp_path, capsys):
    base = "netspec: 1\nrng: legacy\ninput: [4]\nlayers:\n  - {type: dense, name: a, units: %d}\n" \
           "  - {type: dense, name: b, units: 2}\n"  # fmt: skip
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(base % 3)
    new.write_text(base % 5)
    code, doc, _ = _json(capsys, old, new)
    assert code == 1 and {t["tensor"] for t in doc["tensors"]["changed"]} == {"a.weights", "a.bias", "b.weights",
                                                                              "b.bias"}  # fmt: skip


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_revisions_with_imports(tmp_path, capsys, monkeypatch):
    def git(*args):
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=tmp_path, check=True,
                       capture_output=True)  # fmt: skip

    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.yaml").write_text(
        "netspec: 1\nblocks:\n  mlp:\n    params: {units: {type: integer}}\n    layers:\n"
        "      - {type: dense, name: fc, units: $units}\n")
    spec = tmp_path / "model.yaml"
    spec.write_text("netspec: 1\ninput: [4]\nimports: [lib/blocks.yaml]\nlayers:\n"
                    "  - {block: mlp, name: m, units: 3}\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "one")
    (tmp_path / "lib" / "blocks.yaml").write_text((tmp_path / "lib" / "blocks.yaml").read_text().replace(
        "name: fc,", "name: fc, activation: relu,"))  # fmt: skip
    monkeypatch.chdir(tmp_path)
    code, doc, err = _json(capsys, "HEAD:model.yaml", "model.yaml")
    assert code == 1, err
    # the old side's library is HEAD's; what the layer computes is compared, defaults applied
    assert doc["layers"]["changed"]["m.fc"]["activation"] == [{"name": "linear"}, {"name": "relu"}]
    assert {t["tensor"] for t in doc["tensors"]["changed"]} == {"m.fc.weights"}  # glorot -> he (auto follows relu)
    code, _, err = _cli(capsys, "diff", "HEAD:nope.yaml", "model.yaml")
    assert code == 2 and "no nope.yaml in HEAD" in err


def test_lock_files_and_the_external_driver(tmp_path, capsys):
    spec = tmp_path / "m.yaml"
    spec.write_text("netspec: 1\nseed: 1\ninput: [4]\nlayers:\n  - {type: dense, name: a, units: 3}\n")
    assert _cli(capsys, "lock", spec, "--lock", tmp_path / "old.lock")[0] == 0
    spec.write_text(spec.read_text().replace("seed: 1", "seed: 2"))
    assert _cli(capsys, "lock", spec, "--lock", tmp_path / "new.lock")[0] == 0
    code, doc, _ = _json(capsys, tmp_path / "old.lock", tmp_path / "new.lock")
    assert code == 1 and doc["network"]["seed"] == [1, 2] and [t["tensor"] for t in doc["tensors"]["changed"]] == [
        "a.weights"]  # fmt: skip
    # git calls a diff driver with: path old-file old-hex old-mode new-file new-hex new-mode
    code, text, _ = _cli(capsys, "diff", "--external", "m.yaml.lock", tmp_path / "old.lock", "abc", "100644",
                         tmp_path / "new.lock", "def", "100644")  # fmt: skip
    assert code == 0 and "a.weights" in text and "+++ m.yaml.lock" in text  # any other status: git says it died
    code, text, _ = _cli(capsys, "diff", "--external", "m.yaml.lock", "/dev/null", ".", ".",
                         tmp_path / "new.lock", "def", "100644")  # an added lock file  # fmt: skip
    assert code == 0 and "a.weights (added" in text
    code, _, err = _cli(capsys, "diff", "--external", "a", "b")
    assert code == 2 and "seven arguments" in err


def test_defaults_changes_are_seen(tmp_path, capsys):
    old, new = tmp_path / "m.yaml", tmp_path / "n" / "m.yaml"
    new.parent.mkdir()
    old.write_text("netspec: 1\ninput: [4]\ndefaults: {activation: relu}\nlayers:\n"
                   "  - {type: dense, name: a, units: 3}\n")
    new.write_text(old.read_text().replace("relu", "tanh"))
    code, doc, _ = _json(capsys, old, new)
    assert code == 1 and doc["layers"]["changed"]["a"]["activation"] == [{"name": "relu"}, {"name": "tanh"}]
    assert "defaults" in doc["network"]


def test_a_revision_cannot_be_an_option(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(capsys, "diff", "--", "--output=x:m.yaml", "m.yaml")
    assert code == 2 and "cannot start with '-'" in err and not list(tmp_path.iterdir())


def test_trouble_is_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("netspec: 1\ninput: [4]\nlayers:\n  - {type: dense, units: 0}\n")
    code, _, err = _cli(capsys, "diff", bad, SPECS / "mnist-mlp.yaml")
    assert code == 2 and "bad.yaml:4:" in err
    code, _, err = _cli(capsys, "diff", tmp_path / "missing.yaml", SPECS / "mnist-mlp.yaml")
    assert code == 2 and "no such file" in err
    code, _, err = _cli(capsys, "diff", SPECS / "mnist-mlp.yaml", tmp_path / "x.lock")
    assert code == 2
