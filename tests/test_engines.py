"""zarr v3 stores, the Dask engine (a 2-worker LocalCluster) and resumed builds: the same bytes as the local
single-file build, tensor by tensor; an interrupted build leaves no final-named partial shard and resumes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import netspec
from netspec.cli import main
from netspec.init.precision import byte_view
from netspec.io import weights as weights_io
from test_shards import SPEC as SHARDED  # (the same network: every layer kind, four laws, a 3.5M-value model)

SPEC = SHARDED.replace("{rng}", "block")


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert bytes(byte_view(np.ascontiguousarray(a[k]))) == bytes(byte_view(np.ascontiguousarray(b[k]))), k


def _spec(tmp_path, dtype="float32"):
    path = tmp_path / f"{dtype}.yaml"
    path.write_text(SPEC.format(dtype=dtype))
    return path


def _zarr_tensors(path, net):
    from netspec.io.zarr_store import load_for

    return load_for(net, str(path))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_zarr_store_holds_the_tensors(dtype, tmp_path, capsys, monkeypatch):
    zarr = pytest.importorskip("zarr")
    from netspec.io import zarr_store

    monkeypatch.setattr(zarr_store, "CHUNK", 1 << 16)  # small chunks and shards: c.weights (20, 40000) is
    monkeypatch.setattr(zarr_store, "SHARD_BYTES", 1 << 20)  # 20 chunks of a row in 4 shard files
    spec = _spec(tmp_path, dtype)
    store = tmp_path / "w.zarr"
    assert main(["build", str(spec), "-o", str(store), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert main(["build", str(spec), "-o", str(tmp_path / "w.safetensors"), "--json"]) == 0
    single = json.loads(capsys.readouterr().out)
    net = netspec.load(str(spec))
    _same(_zarr_tensors(store, net), net.initialize())
    group = zarr.open_group(str(store), mode="r")
    assert {k: group.attrs[k] for k in ("netspec_spec", "netspec_seed", "netspec_dtype")} == {
        "netspec_spec": "sharded", "netspec_seed": "0", "netspec_dtype": dtype}  # fmt: skip
    c = group["c.weights"]
    assert c.chunks == (1, 40000) and c.shards == ((6 if dtype == "float32" else 13), 40000)
    assert str(c.dtype) == ("uint16" if dtype == "bfloat16" else dtype) and c.attrs["netspec_dtype"] == dtype
    files = [p for p in (store / "c.weights").rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert len(files) == (4 if dtype == "float32" else 2)  # shard files, not 20 chunk files
    # a tensor in several shard files has no digest (its shards may be written in parallel); the others do
    assert report["sha256"] is None and "c.weights" not in report["tensor_sha256"]
    assert "rnn.bias" in report["tensor_sha256"]  # (whole in one shard file)
    assert all(single["tensor_sha256"][k] == v for k, v in report["tensor_sha256"].items())
    assert main(["verify", str(spec), "--weights", str(store)]) == 0
    assert main(["lock", str(spec)]) == 0
    assert main(["verify", str(spec), "--weights", str(store), "--lock", f"{spec}.lock"]) == 0


def test_zarr_reads_everywhere_and_refuses_what_it_cannot_be(tmp_path, capsys):
    pytest.importorskip("zarr")
    spec = _spec(tmp_path)
    store = tmp_path / "w.zarr"
    assert main(["build", str(spec), "-o", str(store)]) == 0
    np.save(tmp_path / "x.npy", np.ones((2, 5, 6), np.float32))
    capsys.readouterr()
    assert main(["eval", str(spec), "--weights", str(store), "--input", str(tmp_path / "x.npy"), "--json"]) == 0
    from_store = json.loads(capsys.readouterr().out)
    assert main(["eval", str(spec), "--input", str(tmp_path / "x.npy"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == from_store
    legacy = tmp_path / "legacy.yaml"
    legacy.write_text(SPEC.format(dtype="float32") + "rng: legacy\n")
    assert main(["build", str(legacy), "-o", str(tmp_path / "l.zarr")]) == 1
    assert "rng: legacy" in capsys.readouterr().err
    (tmp_path / "fake.zarr").mkdir()
    assert main(["verify", str(spec), "--weights", str(tmp_path / "fake.zarr")]) == 1
    assert "Traceback" not in capsys.readouterr().err


@pytest.fixture(scope="module")
def scheduler():
    """One 2-worker LocalCluster (processes) for the Dask tests: the tasks are pickled to other processes."""
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("zarr")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=40)  # fmt: skip
    yield cluster.scheduler_address
    cluster.close()


def test_dask_engine_writes_the_local_builds_bytes(scheduler, tmp_path, capsys):
    spec = _spec(tmp_path, "bfloat16")
    local, remote = tmp_path / "local", tmp_path / "remote"
    assert main(["build", str(spec), "-o", str(local), "--max-shard-size", "300KB", "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert main(["build", str(spec), "-o", str(remote), "--max-shard-size", "300KB", "--engine", "dask",
                 "--scheduler", scheduler, "--json"]) == 0  # fmt: skip
    other = json.loads(capsys.readouterr().out)
    files = sorted(p.name for p in local.iterdir() if not p.name.startswith("."))
    assert files == sorted(p.name for p in remote.iterdir() if not p.name.startswith(".")) and len(files) >= 4
    for name in files:
        assert (local / name).read_bytes() == (remote / name).read_bytes(), name
    assert other["sha256"] == one["sha256"] and other["tensor_sha256"] == one["tensor_sha256"]
    store = f"file://{tmp_path}/remote.zarr"  # a zarr store by its fsspec URL
    assert main(["build", str(spec), "-o", store, "--engine", "dask", "--scheduler", scheduler]) == 0
    net = netspec.load(str(spec))
    _same(_zarr_tensors(store, net), weights_io.load(str(local)))


def test_dask_engine_starts_its_own_local_cluster(tmp_path):
    pytest.importorskip("distributed")
    spec = _spec(tmp_path)
    out = tmp_path / "out"
    assert main(["build", str(spec), "-o", f"{out}/", "--engine", "dask", "--workers", "1", "--no-progress"]) == 0
    _same(weights_io.load(str(out)), netspec.load(str(spec)).initialize())


def test_engine_usage_errors(tmp_path, capsys):
    spec = _spec(tmp_path)
    assert main(["build", str(spec), "-o", str(tmp_path / "o/"), "--scheduler", "tcp://x:1"]) == 2
    assert main(["build", str(spec), "-o", str(tmp_path / "w.safetensors"), "--resume"]) == 2
    assert main(["build", str(spec), "-o", str(tmp_path / "w.safetensors"), "--engine", "dask"]) == 2
    legacy = tmp_path / "legacy.yaml"
    legacy.write_text(SPEC.format(dtype="float32") + "rng: legacy\n")
    capsys.readouterr()
    assert main(["build", str(legacy), "-o", str(tmp_path / "l/"), "--engine", "dask"]) == 1
    assert "rng: legacy" in capsys.readouterr().err


def test_resume_keeps_the_shards_that_check_and_rewrites_the_rest(tmp_path, capsys):
    spec = _spec(tmp_path)
    fresh, out = tmp_path / "fresh", tmp_path / "out"
    args = ["--max-shard-size", "300KB"]
    assert main(["build", str(spec), "-o", str(fresh), *args]) == 0
    assert main(["build", str(spec), "-o", str(out), *args]) == 0
    shards = sorted(p for p in out.glob("model-*.safetensors"))
    assert len(shards) >= 4
    shards[1].unlink()
    data = bytearray(shards[2].read_bytes())
    data[-10] ^= 0x80
    shards[2].write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["build", str(spec), "-o", str(out), *args, "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"kept {len(shards) - 2} of {len(shards)}" in err and "rewriting 2" in err, err  # (missing, changed)
    for path in fresh.iterdir():
        if not path.name.startswith("."):
            assert (out / path.name).read_bytes() == path.read_bytes(), path.name
    assert main(["build", str(spec), "-o", str(out), "--max-shard-size", "10MB", "--resume"]) == 0
    assert "another plan" in capsys.readouterr().err  # nothing kept: other shards


def test_resume_a_zarr_store(tmp_path, capsys, monkeypatch):
    zarr = pytest.importorskip("zarr")
    from netspec.io import zarr_store

    monkeypatch.setattr(zarr_store, "CHUNK", 1 << 16)
    monkeypatch.setattr(zarr_store, "SHARD_BYTES", 1 << 20)
    spec = _spec(tmp_path)
    store = tmp_path / "w.zarr"
    assert main(["build", str(spec), "-o", str(store)]) == 0
    files = sorted(p for p in (store / "c.weights").rglob("*") if p.is_file() and p.name != "zarr.json")
    data = bytearray(files[1].read_bytes())
    data[100] ^= 0x01
    files[1].write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["build", str(spec), "-o", str(store), "--resume"]) == 0
    err = capsys.readouterr().err
    record = zarr.open_group(str(store), mode="r").attrs["netspec_build"]
    assert f"kept {len(record['parts']) - 1} of {len(record['parts'])}" in err and "rewriting 1" in err, err
    net = netspec.load(str(spec))
    _same(_zarr_tensors(store, net), net.initialize())


KILLED = """
import sys
from netspec.cli import main
sys.exit(main(["build", sys.argv[1], "-o", sys.argv[2], "--max-shard-size", "8MB", "--threads", "1",
               "--no-progress"]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_killed_build_leaves_no_final_named_partial_shard_and_resumes(tmp_path):
    """SIGKILL once two shards are recorded: every file with a shard's name is complete (the fresh build's
    bytes), no partial file is left, no index; --resume writes the rest, and the folder is the fresh build's."""
    from netspec.io import resume

    spec = tmp_path / "big.yaml"
    spec.write_text("netspec: 1\ninput: [1024]\nlayers:\n  - repeat: 12\n    layers:\n"
                    "      - {type: dense, name: fc, units: 1024, weights: he_normal}\n")  # fmt: skip
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(spec), str(out)], cwd=tmp_path)
    record = out / resume.RECORD
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if record.exists() and len(json.loads(record.read_text() or "{}").get("parts", {})) >= 2:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    left = {p.name: p.read_bytes() for p in out.iterdir() if p.name != resume.RECORD}
    assert not [n for n in left if n.endswith(".partial")], sorted(left)
    if proc.returncode == -signal.SIGKILL:
        assert "model.safetensors.index.json" not in left
    fresh = tmp_path / "fresh"
    assert main(["build", str(spec), "-o", str(fresh), "--max-shard-size", "8MB", "--no-progress"]) == 0
    for name, data in left.items():  # every file with a shard's name is complete: the fresh build's bytes
        assert data == (fresh / name).read_bytes(), name
    assert set(json.loads(record.read_text())["parts"]) <= set(left)  # (a shard renamed just before the kill
    assert main(["build", str(spec), "-o", str(out), "--max-shard-size", "8MB", "--resume", "--no-progress"]) == 0
    for path in fresh.iterdir():  # may not be recorded yet: it is written again)
        if not path.name.startswith("."):
            assert (out / path.name).read_bytes() == path.read_bytes(), path.name
    assert Path(out / "model.safetensors.index.json").exists() and os.path.getsize(record) > 0


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_rebuild_killed_after_its_first_shard_leaves_a_folder_no_reader_accepts(tmp_path, capsys):
    """The review's case: seed 2's build is in the folder; seed 1's rebuild is SIGKILLed once its first shard
    has replaced seed 2's. The folder then holds shards of both builds and no index: every reader refuses it."""
    from netspec.errors import WeightsError

    text = "netspec: 1\nseed: {seed}\ninput: [1024]\nlayers:\n  - repeat: 12\n    layers:\n" \
           "      - {{type: dense, name: fc, units: 1024, weights: he_normal}}\n"  # fmt: skip
    for seed in (1, 2):
        (tmp_path / f"s{seed}.yaml").write_text(text.format(seed=seed))
    out = tmp_path / "out"
    assert main(["build", str(tmp_path / "s2.yaml"), "-o", str(out), "--max-shard-size", "8MB", "--no-progress"]) == 0
    first = out / min(p.name for p in out.glob("model-*.safetensors"))
    inode = first.stat().st_ino
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(tmp_path / "s1.yaml"), str(out)], cwd=tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if first.exists() and first.stat().st_ino != inode:  # (renamed in: complete, seed 1's)
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait()
    if proc.returncode != -signal.SIGKILL:
        pytest.skip(f"the rebuild ended ({proc.returncode}) before it could be killed")
    assert not (out / "model.safetensors.index.json").exists()
    with pytest.raises(WeightsError, match="stopped before writing its index"):
        weights_io.load(str(out))
    capsys.readouterr()
    for command in (["eval", str(tmp_path / "s1.yaml"), "--weights", str(out), "--input", ",".join(["1"] * 1024)],
                    ["verify", str(tmp_path / "s1.yaml"), "--weights", str(out)]):  # fmt: skip
        assert main(command) == 1, command
        assert "stopped before writing its index" in capsys.readouterr().err
    assert main(["build", str(tmp_path / "s1.yaml"), "-o", str(out), "--max-shard-size", "8MB", "--resume",
                 "--no-progress"]) == 0  # fmt: skip
    assert main(["verify", str(tmp_path / "s1.yaml"), "--weights", str(out)]) == 0
