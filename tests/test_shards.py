"""Sharded safetensors folders (the Hub's layout), chunked generation and constant-memory writing and reading.

Byte identity: every way of writing (one file, shards, .npz, chunk windows) holds the tensors the spec builds,
tensor by tensor; every reader takes folders; the writers and ``verify`` hold a bounded number of chunks
whatever the tensors' sizes (peak RSS measured in a subprocess)."""

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import netspec
from netspec.cli import main
from netspec.errors import UsageError, WeightsError
from netspec.init.blocks import BLOCK
from netspec.init.precision import byte_view
from netspec.io import shards
from netspec.io import weights as weights_io
from netspec.nn import sources as sources_module
from netspec.nn.sources import chunks, sources

SPEC = """netspec: 1
name: sharded
input: [5, 6]
rng: {rng}
dtype: {dtype}
layers:
  - {{type: lstm, name: rnn, units: 8, return_sequences: true}}
  - {{type: flatten}}
  - {{type: dense, name: a, units: 30000, weights: {{name: normal, mean: 1.0, std: 0.01}}}}
  - {{type: dense, name: b, units: 20, weights: {{name: uniform, low: -0.3, high: 0.7}}}}
  - {{type: dense, name: c, units: 40000, weights: {{name: he_normal, truncated: true}}}}
  - {{type: dense, name: d, units: 20, weights: {{name: identity, gain: 0.3}}, bias: {{name: constant, value: 0.1}}}}
"""
CASES = [("block", "float32"), ("block/2", "bfloat16"), ("block", "float16"), ("legacy", "float64")]


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert bytes(byte_view(np.ascontiguousarray(a[k]))) == bytes(byte_view(np.ascontiguousarray(b[k]))), k


@pytest.mark.parametrize(("rng", "dtype"), CASES)
def test_chunks_and_windows_are_the_tensors(rng, dtype):
    """Chunks (4 blocks, 1 or 2 threads) and any window of blocks equal the whole tensors' bytes."""
    net = netspec.loads(SPEC.format(rng=rng, dtype=dtype))
    full = net.initialize()
    for threads in (1, 2):
        got: dict[str, list] = {}
        for name, start, values in chunks(net, threads=threads, task_blocks=3):
            assert start == sum(v.size for v in got.get(name, []))
            got.setdefault(name, []).append(values)
        _same({k: np.concatenate(v).reshape(full[k].shape) for k, v in got.items()}, full)
    if rng == "legacy":
        with pytest.raises(netspec.errors.InitializerError, match="rng: legacy"):
            sources(net)
        return
    for name, source in sources(net).items():
        flat = full[name].reshape(-1)
        for first in range(source.blocks):
            last = min(source.blocks, first + 2)
            assert bytes(byte_view(source.window(first, last))) == bytes(byte_view(flat[first * BLOCK : last * BLOCK]))


def test_plan_packs_tensors_in_order_and_a_big_one_alone():
    layout = [("a", (10,), "float32"), ("b", (10,), "float32"), ("big", (100,), "float32"), ("c", (5,), "float32")]
    plan = shards.plan(layout, {"format": "pt"}, max_shard_size=80)
    assert [[e.name for e in s.entries] for s in plan] == [["a", "b"], ["big"], ["c"]]
    assert [s.name for s in plan] == [f"model-0000{k}-of-00003.safetensors" for k in (1, 2, 3)]
    assert [(e.begin, e.end) for e in plan[0].entries] == [(0, 40), (40, 80)]
    assert shards.plan(layout, max_shard_size=10**6)[0].name == "model.safetensors"
    assert shards.plan(layout, prefix="x", max_shard_size=1)[0].name == "x-00001-of-00004.safetensors"
    index = shards.index_document(plan, {"extra": 1})
    assert index == {"metadata": {"total_size": 500, "extra": 1},
                     "weight_map": {"a": plan[0].name, "b": plan[0].name, "big": plan[1].name, "c": plan[2].name}}
    assert shards.parse_size("5GB") == 5 * 10**9 and shards.parse_size("2GiB") == 2 * 2**30
    assert shards.parse_size("1000") == 1000 and shards.parse_size("1.5 MB") == 1_500_000
    with pytest.raises(UsageError):
        shards.parse_size("five gigs")


@pytest.mark.parametrize(("rng", "dtype"), CASES)
def test_sharded_build_equals_the_single_file_tensor_by_tensor(rng, dtype, tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.format(rng=rng, dtype=dtype))
    single, folder = tmp_path / "w.safetensors", tmp_path / "out"
    assert main(["build", str(spec), "-o", str(single), "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert main(["build", str(spec), "-o", str(folder), "--max-shard-size", "200KB", "--json"]) == 0
    many = json.loads(capsys.readouterr().out)
    assert many["sha256"] == one["sha256"] and many["tensor_sha256"] == one["tensor_sha256"]
    files = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))  # (.netspec-build.json)
    assert "model.safetensors.index.json" in files and len(many["files"]) == len(files) - 1 >= 3
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    net = netspec.loads(SPEC.format(rng=rng, dtype=dtype))
    assert list(index["weight_map"]) == sorted(name for name, _ in net.parameters())
    assert index["metadata"]["total_size"] == net.nbytes
    _same(weights_io.load(str(folder)), weights_io.load(str(single)))
    _same(weights_io.load(str(folder)), net.initialize())
    if dtype != "bfloat16":  # (safetensors' NumPy loader has no bfloat16)
        from safetensors.numpy import load_file

        loaded = {}
        for file in folder.glob("*.safetensors"):
            loaded |= load_file(str(file))
        _same(loaded, net.initialize())
    assert weights_io.load_metadata(str(folder))["netspec_dtype"] == dtype
    assert main(["verify", str(spec), "--weights", str(folder)]) == 0


def test_every_reader_takes_a_folder(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.format(rng="block", dtype="float32"))
    folder = tmp_path / "out"
    assert main(["build", str(spec), "-o", f"{folder}/", "--max-shard-size", "300KB"]) == 0
    assert main(["lock", str(spec)]) == 0
    assert main(["verify", str(spec), "--weights", str(folder), "--lock", f"{spec}.lock"]) == 0
    x = tmp_path / "x.npy"
    np.save(x, np.ones((2, 5, 6), np.float32))
    capsys.readouterr()
    assert main(["eval", str(spec), "--weights", str(folder), "--input", str(x), "--json"]) == 0
    from_folder = json.loads(capsys.readouterr().out)
    assert main(["eval", str(spec), "--input", str(x), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == from_folder
    pytest.importorskip("torch")
    assert main(["export", str(spec), "--to", "torch", "--weights", str(folder), "-o", str(tmp_path / "a.pt")]) == 0
    assert main(["export", str(spec), "--to", "torch", "-o", str(tmp_path / "b.pt")]) == 0
    import torch

    a, b = (torch.load(tmp_path / f, weights_only=True) for f in ("a.pt", "b.pt"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_tampered_shard_fails_verify(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.format(rng="block", dtype="float32"))
    folder = tmp_path / "out"
    assert main(["build", str(spec), "-o", str(folder), "--max-shard-size", "300KB"]) == 0
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    target = folder / index["weight_map"]["c.weights"]
    data = bytearray(target.read_bytes())
    data[-100] ^= 0x01  # one bit of c.weights' last values
    target.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["verify", str(spec), "--weights", str(folder)]) == 1
    assert "c.weights: not the bytes seed 0 produces" in capsys.readouterr().out


HOSTILE = {
    "escape": lambda index: index["weight_map"].update({"a.weights": "../x.safetensors"}),
    "absolute": lambda index: index["weight_map"].update({"a.weights": "/etc/passwd"}),
    "missing file": lambda index: index["weight_map"].update({"a.weights": "model-00009-of-00009.safetensors"}),
    "wrong shard": lambda index: index["weight_map"].update({"c.weights": index["weight_map"]["a.weights"]}),
    "not a map": lambda index: index.update({"weight_map": ["a"]}),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_indexes_are_input_errors(case, tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.format(rng="block", dtype="float32"))
    folder = tmp_path / "out"
    assert main(["build", str(spec), "-o", str(folder), "--max-shard-size", "300KB"]) == 0
    path = folder / "model.safetensors.index.json"
    index = json.loads(path.read_text())
    HOSTILE[case](index)
    path.write_text(json.dumps(index))
    capsys.readouterr()
    for command in (["verify", str(spec), "--weights", str(folder)], ["eval", str(spec), "--weights", str(folder),
                                                                        "--input", "1," * 29 + "1"]):  # fmt: skip
        assert main(command) == 1, case
        err = capsys.readouterr().err
        assert "error" in err and "Traceback" not in err and "internal" not in err, err


def test_deeply_nested_index_is_an_input_error(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.format(rng="block", dtype="float32"))
    folder = tmp_path / "out"
    assert main(["build", str(spec), "-o", str(folder), "--max-shard-size", "300KB"]) == 0
    (folder / "model.safetensors.index.json").write_text("[" * 100_000 + "]" * 100_000)
    capsys.readouterr()
    assert main(["verify", str(spec), "--weights", str(folder)]) == 1
    assert "cannot read the index" in capsys.readouterr().err


def test_a_smaller_rebuild_removes_the_earlier_shards(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.format(rng="block", dtype="float32"))
    folder = tmp_path / "out"
    (tmp_path / "out").mkdir()
    (folder / "notes.txt").write_text("mine")
    assert main(["build", str(spec), "-o", str(folder), "--max-shard-size", "100KB"]) == 0
    before = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
    assert main(["build", str(spec), "-o", str(folder)]) == 0  # a folder: 5GB shards, so one file
    assert {p.name for p in folder.iterdir()} == {"model.safetensors", "notes.txt", ".netspec-build.json"}
    assert len(before) > 3


def test_an_interrupted_write_leaves_only_complete_shards(tmp_path):
    """A failure after the first shard: that shard is complete and final-named, nothing else is left (no
    partial file, no index)."""
    net = netspec.loads(SPEC.format(rng="block", dtype="float32"))
    layout = [(name, p.shape, net.dtype) for name, p in net.parameters()]
    plan = shards.plan(layout, {"k": "v"}, max_shard_size=300_000)
    first = {e.name for e in plan[0].entries}

    def failing():
        for name, start, values in chunks(net, threads=2):
            if name not in first:
                raise RuntimeError("killed")
            yield name, start, values

    with pytest.raises(RuntimeError, match="killed"):
        shards.Writer(str(tmp_path), plan).write(failing())
    assert [p.name for p in tmp_path.iterdir()] == [plan[0].name]
    single = tmp_path / "one"
    single.mkdir()
    with pytest.raises(RuntimeError, match="killed"):
        weights_io.save_chunks(failing(), layout, str(single / "w.safetensors"))
    assert list(single.iterdir()) == []


def test_chunked_npz_is_what_numpy_writes(tmp_path):
    """The .npz writer streams each member's chunks after its header: the same bytes as writing whole arrays
    with np.lib.format.write_array into stored members, the metadata in the archive comment (the format
    before chunking)."""
    import zipfile

    net = netspec.loads(SPEC.format(rng="block", dtype="float32"))
    layout = [(name, p.shape, net.dtype) for name, p in net.parameters()]
    weights_io.save_chunks(chunks(net, threads=2), layout, str(tmp_path / "a.npz"), {"k": "v"})
    with zipfile.ZipFile(tmp_path / "b.npz", "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        meta = json.dumps({"k": "v"}, sort_keys=True, separators=(",", ":")).encode()
        zf.comment = weights_io.NPZ_COMMENT_PREFIX + meta
        for name, array in net.initialize().items():
            with zf.open(weights_io._member(name + ".npy"), "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_output_kinds(tmp_path):
    from netspec.io.outputs import output_for

    assert output_for(str(tmp_path / "w.npz")).kind == "npz"
    assert output_for(str(tmp_path / "w.safetensors")).kind == "safetensors"
    assert output_for(f"{tmp_path}/dir/").kind == "folder"
    assert output_for(str(tmp_path)).kind == "folder"  # exists as one
    assert output_for(str(tmp_path / "x"), max_shard_size=10).max_shard_size == 10
    assert output_for(str(tmp_path / "x"), engine="dask").kind == "folder"
    for bad in (str(tmp_path / "w.txt"), str(tmp_path / "no" / "w.npz")):
        with pytest.raises(UsageError):
            output_for(bad)
    with pytest.raises(UsageError, match="cannot be sharded"):
        output_for(str(tmp_path / "w.safetensors"), max_shard_size=10)
    (tmp_path / "d.npz").mkdir()  # a file path, whose writing refuses the folder (tests/test_file_kinds.py)
    assert output_for(str(tmp_path / "d.npz")).kind == "npz"


RSS = """
import os, sys
from netspec.cli import main

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
import numpy, scipy.stats, netspec.init.kernels, netspec.nn.sources, netspec.check.verify, netspec.io.shards  # noqa
base = status("VmRSS:")
code = main(sys.argv[1:])
print(code, status("VmHWM:") - base)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS is read from /proc (Linux)")
def test_writing_and_verifying_hold_a_bounded_number_of_chunks(tmp_path):
    """A 256 MiB tensor (64 Mi float32 values) built into a folder and verified: each process's peak RSS grows
    by less than half the tensor (chunks of 4 MiB, a few dozen in flight at most)."""
    spec = tmp_path / "big.yaml"
    spec.write_text(textwrap.dedent("""\
        netspec: 1
        input: [8192]
        layers:
          - {type: dense, name: big, units: 8192, weights: he_normal}
        """))
    tensor = 8192 * 8192 * 4

    def run(*args):
        out = subprocess.run([sys.executable, "-c", RSS, *args], capture_output=True, text=True, cwd=tmp_path)
        code, grew = out.stdout.split()[-2:]
        assert code == "0", out.stdout + out.stderr
        return int(grew)

    built = run("build", str(spec), "-o", f"{tmp_path}/out/", "--no-progress", "--threads", "2")
    verified = run("verify", str(spec), "--weights", str(tmp_path / "out"))
    locked = run("lock", str(spec))
    assert os.path.getsize(tmp_path / "out" / "model.safetensors") > tensor
    assert max(built, verified, locked) < tensor / 2, (built, verified, locked)


def _two_builds(tmp_path, capsys):
    """The same layout at seeds 1 and 2, each built whole into its own folder of shards (--json reports)."""
    folders, reports = {}, {}
    for seed in (1, 2):
        spec = tmp_path / f"s{seed}.yaml"
        spec.write_text(SPEC.format(rng="block", dtype="float32").replace("name: sharded", f"name: s\nseed: {seed}"))
        folders[seed] = tmp_path / f"out{seed}"
        capsys.readouterr()
        assert main(["build", str(spec), "-o", str(folders[seed]), "--max-shard-size", "300KB", "--json"]) == 0
        reports[seed] = json.loads(capsys.readouterr().out)
    return folders, reports


def _refused_by_every_reader(spec, folder, tmp_path, capsys, why):
    x = tmp_path / "x.npy"
    np.save(x, np.ones((1, 5, 6), np.float32))
    commands = [["eval", str(spec), "--weights", str(folder), "--input", str(x)],
                ["verify", str(spec), "--weights", str(folder)],
                ["verify", str(spec), "--weights", str(folder), "--statistical-only"]]  # fmt: skip
    if has_torch():
        commands.append(["export", str(spec), "--to", "torch", "--weights", str(folder), "-o", str(tmp_path / "m.pt")])
    for command in commands:
        capsys.readouterr()
        assert main(command) == 1, command
        out, err = capsys.readouterr()
        assert why in out + err and "Traceback" not in err, (command, out, err)
    with pytest.raises(WeightsError, match=why):
        weights_io.load(str(folder))


def has_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def test_the_index_records_every_tensors_sha256(tmp_path, capsys):
    folders, reports = _two_builds(tmp_path, capsys)
    index = json.loads((folders[1] / shards.INDEX).read_text())
    assert index["metadata"][shards.DIGESTS] == reports[1]["tensor_sha256"] != reports[2]["tensor_sha256"]


def test_a_failed_rebuild_leaves_a_folder_no_reader_accepts(tmp_path, capsys, monkeypatch):
    """Seed 2's build is in the folder; seed 1's rebuild fails (disk full) once its first shard is renamed in:
    shard 1 is seed 1's, the rest seed 2's, and no reader takes the folder for a build."""
    folders, _ = _two_builds(tmp_path, capsys)
    before = {p.name: p.read_bytes() for p in folders[2].iterdir() if p.name.endswith(".safetensors")}
    index = json.loads((folders[2] / shards.INDEX).read_text())
    files = sorted(set(index["weight_map"].values()))
    first = {name for name, file in index["weight_map"].items() if file == files[0]}
    committed = threading.Event()
    commit = shards.Writer._commit

    def _commit(self, state):
        commit(self, state)
        committed.set()

    def failing(net, **kwargs):
        for item in chunks(net, **kwargs):
            if item[0] not in first:  # (shard 1 is complete: wait until it has its name, then fail)
                assert committed.wait(60)
                raise OSError(28, "No space left on device")
            yield item

    monkeypatch.setattr(shards.Writer, "_commit", _commit)
    monkeypatch.setattr(sources_module, "chunks", failing)
    assert main(["build", str(tmp_path / "s1.yaml"), "-o", str(folders[2]), "--max-shard-size", "300KB"]) == 1
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in folders[2].iterdir() if p.name.endswith(".safetensors")}
    assert after.keys() == before.keys() and len(after) == len(files) > 2
    assert [name for name in sorted(after) if after[name] != before[name]] == files[:1]
    assert not (folders[2] / shards.INDEX).exists()
    _refused_by_every_reader(tmp_path / "s1.yaml", folders[2], tmp_path, capsys, "stopped before writing its index")


def test_a_shard_from_another_build_fails_its_digests(tmp_path, capsys):
    folders, _ = _two_builds(tmp_path, capsys)
    shard = json.loads((folders[1] / shards.INDEX).read_text())["weight_map"]["c.weights"]  # (seeds differ)
    (folders[1] / shard).write_bytes((folders[2] / shard).read_bytes())  # same header, seed 2's values
    _refused_by_every_reader(tmp_path / "s1.yaml", folders[1], tmp_path, capsys, "index records")


def test_a_lone_shard_of_several_without_an_index_is_refused(tmp_path, capsys):
    folders, _ = _two_builds(tmp_path, capsys)
    for p in folders[1].iterdir():
        if p.name != min(q.name for q in folders[1].glob("model-*.safetensors")):
            p.unlink()
    with pytest.raises(WeightsError, match="build again"):
        weights_io.load(str(folders[1]))
