"""netspec diff: example spec pairs, renames, the byte guarantee, git revisions, lock files, exit codes."""

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import netspec
from netspec.cli import main
from netspec.testing import specs
from netspec.vcs.diff import diff_sides, read_side

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
    assert code == 2 and "HEAD has no file nope.yaml" in err
    code, _, err = _cli(capsys, "diff", "v9:model.yaml", "model.yaml")  # a revision that does not exist
    assert code == 2 and "unknown revision 'v9'" in err and "no file" not in err
    # from a subfolder, REV:path is relative to the current folder (git's REV:./path), as a plain path is
    monkeypatch.chdir(tmp_path / "lib")
    code, _, err = _cli(capsys, "diff", "HEAD:blocks.yaml", "blocks.yaml")  # found: lib/blocks.yaml at HEAD
    assert "HEAD:blocks.yaml:1:1: error: this file is a block library" in err and "no file" not in err, err
    code, doc, err = _json(capsys, "HEAD:../model.yaml", "../model.yaml")
    assert code == 1 and doc["layers"]["changed"]["m.fc"]["activation"] == [{"name": "linear"}, {"name": "relu"}]
    code, _, err = _cli(capsys, "diff", "HEAD:model.yaml", "../model.yaml")  # not the root's model.yaml
    assert code == 2 and "HEAD has no file lib/model.yaml" in err


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


def _changed_bytes(a, b):
    """The tensors of b whose bytes differ from a's (or that a has not)."""
    return {k for k in b if k not in a or a[k].dtype != b[k].dtype or a[k].tobytes() != b[k].tobytes()}


def _check_guarantee(old_net, new_net, doc):
    """Every tensor the diff does not list keeps its bytes; a listed one that keeps them is seed-free."""
    listed = {t["tensor"] for t in doc["tensors"]["changed"]}
    a, b = old_net.initialize(), new_net.initialize()
    actual = _changed_bytes(a, b)
    assert actual <= listed, f"the diff missed {sorted(actual - listed)}"
    kept = {name for name in listed - actual if b[name].size > 1}  # one value (a 1x1 orthogonal: +-1) may repeat
    if kept:  # listed but unchanged: only tensors no seed moves (zeros, identity, ...)
        other_seed = new_net.initialize(seed=new_net.seed + 1)
        assert all(other_seed[name].tobytes() == b[name].tobytes() for name in kept), kept
    assert doc["tensors"]["unchanged"] == len(b) - len(listed)


SMALL = ["glorot-demo-4-5-3", "residual-mlp", "resnet-tiny", "selu-lecun", "unet-small", "mobilenetv2-stack"]


@pytest.mark.parametrize("old,new", [(a, b) for a in SMALL for b in SMALL if a < b])
def test_pairs_of_example_specs(old, new, capsys):
    code, doc, _ = _json(capsys, SPECS / f"{old}.yaml", SPECS / f"{new}.yaml")
    a, b = netspec.load(str(SPECS / f"{old}.yaml")), netspec.load(str(SPECS / f"{new}.yaml"))
    assert code == 1 and doc["parameters"] == {"old": a.num_params, "new": b.num_params,
                                               "delta": b.num_params - a.num_params, "per_layer": doc["parameters"][
                                                   "per_layer"]}  # fmt: skip
    assert sum(n for _, n in doc["parameters"]["per_layer"].values()) - sum(
        o for o, _ in doc["parameters"]["per_layer"].values()) == b.num_params - a.num_params  # fmt: skip
    _check_guarantee(a, b, doc)


def _mutate(spec, choice, index):
    """One plausible edit of a generated spec (or none)."""
    spec = copy.deepcopy(spec)
    layers = [layer for layer in spec["layers"] if isinstance(layer, dict)]
    layer = layers[index % len(layers)]
    if choice == "seed":
        spec["seed"] = spec.get("seed", 0) + 1
    elif choice == "units" and "units" in layer:
        layer["units"] += 1
    elif choice == "filters" and "filters" in layer:
        layer["filters"] += 1
    elif choice == "weights" and layer.get("type") in ("dense", "conv2d", "conv1d"):
        layer["weights"] = "orthogonal" if layer.get("weights") == "he_uniform" else "he_uniform"
    elif choice == "activation" and layer.get("type") in ("dense", "conv2d", "conv1d"):
        layer["activation"] = "selu" if layer.get("activation") == "relu" else "relu"
    elif choice == "drop" and len(spec["layers"]) > 1 and "name" not in spec["layers"][0]:
        del spec["layers"][0]
    elif choice == "dtype":
        spec["dtype"] = "float64" if spec.get("dtype") == "float32" else "float32"
    return spec


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs(max_layers=4), st.sampled_from(["seed", "units", "filters", "weights", "activation", "drop", "dtype",
                                              "none"]), st.integers(0, 10))  # fmt: skip
def test_generated_edits_keep_the_byte_guarantee(tmp_path_factory, spec, choice, index):
    import yaml

    from netspec.errors import SpecError

    old, new = tmp_path_factory.mktemp("old") / "m.yaml", tmp_path_factory.mktemp("new") / "m.yaml"
    old.write_text(yaml.safe_dump(spec, sort_keys=False))
    new.write_text(yaml.safe_dump(_mutate(spec, choice, index), sort_keys=False))
    try:
        a, b = netspec.load(str(old)), netspec.load(str(new))
    except SpecError:
        assume(False)  # the edit broke a shape or a wire
    result = diff_sides(read_side(str(old)), read_side(str(new)))
    doc = result.as_json()
    _check_guarantee(a, b, doc)
    if old.read_text() == new.read_text():
        assert result.same and not doc["tensors"]["changed"]


@pytest.fixture
def shifted_initializer():
    """A plugin initializer that draws by its own __call__: its declaration does not say everything."""
    from dataclasses import dataclass

    import numpy as np

    from netspec.init.distributions import Normal
    from netspec.init.initializers import INITIALIZERS, Initializer
    from netspec.plugins import register_initializer

    saved = dict(INITIALIZERS._classes), dict(INITIALIZERS._aliases)

    @dataclass(frozen=True)
    class Shifted(Initializer):
        """w ~ N(0, 0.1^2), then + shift (declared as the normal: a deliberately incomplete declaration)."""

        shift: float = 0.0
        name = "test_vcs_shifted"

        def distribution(self, shape, fans):
            return Normal(0.0, 0.1)

        def __call__(self, shape, stream, dtype="float32", fans=None):
            return (super().__call__(shape, stream, dtype, fans) + self.shift).astype(dtype)

    register_initializer(Shifted)
    yield np
    INITIALIZERS._classes, INITIALIZERS._aliases = saved
    INITIALIZERS.version += 1  # caches keyed on the version forget the test's name


def test_a_plugin_drawing_by_its_own_call_is_compared_by_its_config(tmp_path, capsys, shifted_initializer):
    old, new = tmp_path / "a" / "m.yaml", tmp_path / "b" / "m.yaml"
    old.parent.mkdir(), new.parent.mkdir()
    text = ("netspec: 1\ninput: [4]\nlayers:\n  - {type: dense, name: a, units: 3, weights: {name: test_vcs_shifted, "
            "shift: %s}}\n  - {type: dense, name: b, units: 2}\n")  # fmt: skip
    old.write_text(text % "0.0")
    new.write_text(text % "1.0")
    code, doc, _ = _json(capsys, old, new)
    assert code == 1 and [t["tensor"] for t in doc["tensors"]["changed"]] == ["a.weights"]
    _check_guarantee(netspec.load(str(old)), netspec.load(str(new)), doc)


def test_lock_files_name_changed_imports(tmp_path, capsys):
    (tmp_path / ".git").mkdir()
    lib = tmp_path / "lib.yaml"
    lib.write_text("netspec: 1\nblocks:\n  mlp:\n    layers:\n      - {type: dense, name: fc, units: 3}\n")
    spec = tmp_path / "m.yaml"
    spec.write_text("netspec: 1\ninput: [4]\nimports: [lib.yaml]\nlayers:\n  - {block: mlp, name: m}\n")
    assert _cli(capsys, "lock", spec, "--lock", tmp_path / "old.lock")[0] == 0
    lib.write_text(lib.read_text() + "# a comment: the tensors stay\n")
    assert _cli(capsys, "lock", spec, "--lock", tmp_path / "new.lock")[0] == 0
    code, doc, _ = _json(capsys, tmp_path / "old.lock", tmp_path / "new.lock")
    old, new = doc["network"]["imports"]
    assert code == 1 and list(old) == list(new) == ["lib.yaml"] and old["lib.yaml"] != new["lib.yaml"]
    assert doc["tensors"]["changed"] == []
