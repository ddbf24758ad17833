"""Block libraries across files: use, located errors in the imported file, confinement, cycles, digests."""

import json
import os

import pytest

import netspec
from netspec.errors import SpecError

LIB = """netspec: 1
blocks:
  mlp:
    params: {units: {type: integer}}
    layers:
      - {type: dense, name: fc, units: $units, activation: relu}
      - {type: dense, name: out, units: $units}
  other:
    layers:
      - {type: dense, name: x, units: 2}
"""


@pytest.fixture
def repo(tmp_path):
    (tmp_path / ".git").mkdir()  # the repository root
    (tmp_path / "lib").mkdir()
    (tmp_path / "specs").mkdir()
    (tmp_path / "lib" / "blocks.yaml").write_text(LIB)
    return tmp_path


def _spec(repo, imports, layers="  - {block: mlp, name: m, units: 3}\n", name="model.yaml"):
    path = repo / "specs" / name
    path.write_text(f"netspec: 1\ninput: [4]\nimports: {imports}\nlayers:\n{layers}")
    return str(path)


def _error(path):
    with pytest.raises(SpecError) as e:
        netspec.load(path)
    return e.value


def test_imported_blocks_build_like_local_ones(repo):
    net = netspec.load(_spec(repo, "[../lib/blocks.yaml]"))
    assert [name for name, _ in net.parameters()] == ["m.fc.weights", "m.fc.bias", "m.out.weights", "m.out.bias"]
    assert list(net.imports) == [os.path.join("lib", "blocks.yaml")] and len(net.imports["lib/blocks.yaml"]) == 64
    local = netspec.loads(LIB.replace("netspec: 1\n", "netspec: 1\ninput: [4]\nlayers:\n  - {block: mlp, name: m, "
                                      "units: 3}\n"), "local.yaml")  # fmt: skip
    a, b = net.initialize(), local.initialize()
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)  # same names, same streams, same bytes


def test_selected_blocks_and_did_you_mean(repo):
    spec = _spec(repo, "[{path: ../lib/blocks.yaml, blocks: [other]}]", "  - {block: other, name: o}\n")
    assert [n for n, _ in netspec.load(spec).parameters()] == ["o.x.weights", "o.x.bias"]
    e = _error(_spec(repo, "[{path: ../lib/blocks.yaml, blocks: [mpl]}]"))
    assert "defines no block 'mpl'" in str(e) and "did you mean 'mlp'" in str(e) and "model.yaml:3:" in str(e)


def test_an_error_inside_an_imported_block_is_located_in_the_library(repo):
    (repo / "lib" / "blocks.yaml").write_text(LIB.replace("activation: relu", "activation: rleu"))
    text = str(_error(_spec(repo, "[../lib/blocks.yaml]")))
    assert "lib/blocks.yaml:6:" in text and "did you mean 'relu'" in text
    assert "model.yaml:5" in text and "imported at" in text and "model.yaml:3" in text  # the use and import lines


@pytest.mark.parametrize("imports,expected", [
    ("[/etc/hosts]", "no absolute paths"),
    ("['https://example.com/blocks.yaml']", "no URLs"),
    ("[../../outside.yaml]", "resolves outside the repository"),
    ("[../lib/missing.yaml]", "no such file"),
])  # fmt: skip
def test_confinement_and_missing_files(repo, imports, expected):
    (repo.parent / "outside.yaml").write_text(LIB)
    e = _error(_spec(repo, imports))
    assert expected in str(e) and e.diagnostics[0].path.startswith("imports[0]") and e.diagnostics[0].line == 3


def test_a_symbolic_link_out_of_the_repository_is_refused(repo, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere") / "lib.yaml"
    outside.write_text(LIB)
    os.symlink(outside, repo / "lib" / "link.yaml")
    assert "resolves outside the repository" in str(_error(_spec(repo, "[../lib/link.yaml]")))


def test_cycles_and_clashes(repo):
    (repo / "lib" / "a.yaml").write_text("netspec: 1\nimports: [b.yaml]\nblocks: {}\n")
    (repo / "lib" / "b.yaml").write_text("netspec: 1\nimports: [a.yaml]\nblocks: {}\n")
    e = _error(_spec(repo, "[../lib/a.yaml]"))
    assert "import cycle: lib/a.yaml -> lib/b.yaml -> lib/a.yaml" in str(e)
    (repo / "lib" / "copy.yaml").write_text(LIB)  # another file defining blocks of the same names
    e = _error(_spec(repo, "[../lib/blocks.yaml, ../lib/copy.yaml]"))
    assert "already defined" in str(e)


def test_a_broken_library_is_located_in_it(repo):
    (repo / "lib" / "bad.yaml").write_text("netspec: 1\nblocks:\n  b:\n    layers: 5\n")
    e = _error(_spec(repo, "[../lib/bad.yaml]"))
    assert e.source.endswith("bad.yaml") and e.diagnostics[0].line == 4 and "imported from" in e.diagnostics[0].hint


def test_imports_from_text_need_a_file():
    with pytest.raises(SpecError, match="imports need a spec file"):
        netspec.loads("netspec: 1\ninput: [4]\nimports: [x.yaml]\nlayers:\n  - {type: dense, units: 2}\n", "t.yaml")


def test_diamonds_load_each_file_once(repo, monkeypatch):
    lib = repo / "lib"
    (lib / "d.yaml").write_text(LIB)
    (lib / "b.yaml").write_text("netspec: 1\nimports: [d.yaml]\n")
    (lib / "c.yaml").write_text("netspec: 1\nimports: [d.yaml]\n")
    net = netspec.load(_spec(repo, "[../lib/b.yaml, ../lib/c.yaml]"))  # B and C both bring D's blocks
    assert len(net.imports) == 3 and net.num_params > 0
    from netspec.spec import imports

    loads = []
    real_load = imports._load
    monkeypatch.setattr(imports, "_load", lambda *a: loads.append(a[2]) or real_load(*a))
    for level in range(30):  # a ladder where every file imports both files of the next level: 2^30 paths
        for side in "ab":
            nxt = f"[l{level + 1}a.yaml, l{level + 1}b.yaml]" if level < 29 else "[]"
            (lib / f"l{level}{side}.yaml").write_text(f"netspec: 1\nimports: {nxt}\n")
    netspec.load(_spec(repo, "[../lib/l0a.yaml, ../lib/l0b.yaml]", "  - {type: dense, units: 2}\n"))
    assert len(loads) == len(set(loads)) == 60  # each file loaded once, not once per path


def _cli(capsys, *args):
    from netspec.cli import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_library_file_validates_as_a_library(repo, capsys):
    spec = _spec(repo, "[../lib/blocks.yaml]")
    code, out, _ = _cli(capsys, "validate", repo / "lib", spec)
    assert code == 0 and "blocks.yaml: ok (block library: 2 blocks)" in out and "model.yaml: ok (2 layers" in out
    code, out, _ = _cli(capsys, "validate", "--json", repo / "lib" / "blocks.yaml")
    assert code == 0 and json.loads(out)["specs"][0]["blocks"] == ["mlp", "other"]
    code, _, err = _cli(capsys, "verify", repo / "lib", spec)  # a folder holding a library: not a failure
    assert code == 0 and "a block library: nothing to verify" in err
    code, _, err = _cli(capsys, "build", repo / "lib" / "blocks.yaml", "--dry-run")
    assert code == 1 and "blocks.yaml:1:1: error: this file is a block library" in err


def test_a_broken_library_file_fails_validation_located(repo, capsys):
    lib = repo / "lib" / "blocks.yaml"
    lib.write_text(LIB + "layer:\n  - {type: dense, units: 2}\n")  # a spec that lost its input and layers
    code, _, err = _cli(capsys, "validate", lib)
    assert code == 1 and "blocks.yaml:11:1: error: a block library holds only netspec, imports, blocks" in err
    assert "did you mean 'layers'?" in err
    lib.write_text(LIB.replace("layers:\n      - {type: dense, name: x", "layers:\n      - {tpye: dense, name: x"))
    code, _, err = _cli(capsys, "validate", lib)
    assert code == 1 and "blocks.yaml:10:" in err
    (repo / "lib" / "a.yaml").write_text("netspec: 1\nimports: [blocks.yaml, a.yaml]\nblocks: {}\n")
    code, _, err = _cli(capsys, "validate", repo / "lib" / "a.yaml")
    assert code == 1 and "import cycle: lib/a.yaml -> lib/a.yaml" in err
