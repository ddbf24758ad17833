"""No command blocks on a path that is not a regular file, read or written (a FIFO blocks whoever opens it
for reading until a writer comes; a device never ends), and writes are atomic even against SIGKILL.

(issue 22, findings 4, 5 and 6: ``netspec fmt`` on a FIFO hung; a SIGKILLed build left
``.netspec-<random>.partial`` behind; an output path that is a folder was reported by the temp file's name.)
"""

import contextlib
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from netspec.io import files
from test_cli import DEMO, ROOT
from test_cli import netspec as run

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")


def run_guarded(args: list, fifos: list[Path]) -> object:
    """``netspec ARGS`` in-process, on a thread; if it is still running after 60 s it is blocked on a FIFO:
    open each FIFO for writing (which releases a reader) and fail, rather than hang the suite."""
    result: list = []
    worker = threading.Thread(target=lambda: result.append(run(*args)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    if worker.is_alive():
        for fifo in fifos:
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=10)
        pytest.fail(f"netspec {' '.join(map(str, args))} blocked on a FIFO")
    return result[0]


@pytest.fixture
def place(tmp_path):
    """Files the commands read: a spec, its weights and lock, an input batch, and a FIFO factory."""
    import numpy as np

    spec = tmp_path / "demo.yaml"
    spec.write_text(DEMO.read_text())
    assert run("build", spec, "-o", tmp_path / "demo.npz").returncode == 0
    assert run("lock", spec).returncode == 0
    np.save(tmp_path / "x.npy", np.ones((2, 4), dtype=np.float32))

    def fifo(name: str) -> Path:
        path = tmp_path / name
        os.mkfifo(path)
        return path

    return tmp_path, spec, fifo


READS = {
    "build SPEC": ["build", "{fifo:s.yaml}", "-o", "{dir}/w.npz"],
    "validate SPEC": ["validate", "{fifo:s.yaml}"],
    "validate FOLDER": ["validate", "{dir}"],  # the folder holds the FIFO s.yaml among real specs
    "explain SPEC": ["explain", "{fifo:s.yaml}"],
    "eval SPEC": ["eval", "{fifo:s.yaml}", "--input", "1,2,3,4"],
    "eval --weights": ["eval", "{spec}", "--input", "1,2,3,4", "--weights", "{fifo:w.npz}"],
    "eval --weights .safetensors": ["eval", "{spec}", "--input", "1,2,3,4", "--weights", "{fifo:w.safetensors}"],
    "eval --input": ["eval", "{spec}", "--input", "{fifo:x2.npy}"],
    "verify SPEC": ["verify", "{fifo:s.yaml}"],
    "verify --weights": ["verify", "{spec}", "--weights", "{fifo:w.npz}"],
    "verify --lock": ["verify", "{spec}", "--lock", "{fifo:l.lock}"],
    "build --lock": ["build", "{spec}", "-o", "{dir}/w.npz", "--lock", "{fifo:l.lock}"],
    "lock --check": ["lock", "--check", "{spec}", "--lock", "{fifo:l.lock}"],
    "lock SPEC": ["lock", "{fifo:s.yaml}", "--lock", "{dir}/s.lock"],
    "diff OLD": ["diff", "{fifo:s.yaml}", "{spec}"],
    "diff lock": ["diff", "{fifo:l.lock}", "{spec}.lock"],
    "fmt SPEC": ["fmt", "{fifo:s.yaml}"],
    "fmt --check SPEC": ["fmt", "--check", "{fifo:s.yaml}"],
    "fmt FOLDER": ["fmt", "--check", "{dir}"],
    "export SPEC": ["export", "{fifo:s.yaml}", "--to", "onnx", "-o", "{dir}/m.onnx"],
    "export --weights": ["export", "{spec}", "--to", "onnx", "-o", "{dir}/m.onnx", "--weights", "{fifo:w.npz}"],
    "diagnose SPEC": ["diagnose", "{fifo:s.yaml}", "--no-gradients"],
    "diagnose --input": ["diagnose", "{spec}", "--no-gradients", "--input", "{fifo:x2.npy}"],
    "import": ["validate", "{importer}"],
}
WRITES = {
    "build -o": ["build", "{spec}", "-o", "{fifo:out.npz}"],
    "build -o .safetensors": ["build", "{spec}", "-o", "{fifo:out.safetensors}"],
    "lock": ["lock", "{spec}", "--lock", "{fifo:out.lock}"],
    "export -o": ["export", "{spec}", "--to", "onnx", "-o", "{fifo:out.onnx}"],
    "diagnose --html": ["diagnose", "{spec}", "--no-gradients", "--html", "{fifo:out.html}"],
    "plot bounds -o": ["plot", "bounds", "--init", "he_normal", "-o", "{fifo:out.png}"],
}


def expand(template: list[str], place) -> tuple[list[str], list[Path]]:
    folder, spec, fifo = place
    made: list[Path] = []
    args = []
    for part in template:
        if part.startswith("{fifo:"):
            made.append(fifo(part[6:-1]))
            args.append(str(made[-1]))
        elif part == "{importer}":
            made.append(fifo("lib.yaml"))
            importer = folder / "importer.yaml"
            importer.write_text("netspec: 1\ninput: [4]\nimports: [lib.yaml]\nlayers:\n  - {type: dense, units: 2}\n")
            args.append(str(importer))
        else:
            args.append(part.format(dir=folder, spec=spec))
    if "{dir}" in template and not made:  # the folder case: a FIFO among the specs
        made.append(fifo("s.yaml"))
    return args, made


@pytest.mark.parametrize("case", list(READS), ids=list(READS))
def test_no_command_blocks_reading_a_fifo(place, case):
    if "export" in case:
        pytest.importorskip("onnx")
    args, fifos = expand(READS[case], place)
    r = run_guarded(args, fifos)
    assert r.returncode in (1, 2), (case, r.stdout, r.stderr)
    assert "not a regular file" in r.stderr or "a FIFO" in r.stderr, (case, r.stderr)
    assert "internal error" not in r.stderr


@pytest.mark.parametrize("case", list(WRITES), ids=list(WRITES))
def test_no_command_writes_over_a_fifo(place, case):
    if "export" in case:
        pytest.importorskip("onnx")
    if "html" in case or "plot" in case:
        pytest.importorskip("matplotlib")
    args, fifos = expand(WRITES[case], place)
    r = run_guarded(args, fifos)
    assert r.returncode == 1, (case, r.stdout, r.stderr)
    assert f"{fifos[0]}: is a FIFO (named pipe), not a file; refusing to write over it" in r.stderr, r.stderr
    assert stat.S_ISFIFO(fifos[0].stat().st_mode)  # still the FIFO: never replaced
    assert not [p for p in fifos[0].parent.iterdir() if p.name.endswith(".partial")]


def test_a_device_is_never_read_or_replaced(place):
    folder, spec, _ = place
    zero = folder / "w.safetensors"
    zero.symlink_to("/dev/zero")  # reading it would never end
    r = run_guarded(["verify", spec, "--weights", zero], [])
    assert r.returncode == 1 and "not a regular file (a character device)" in r.stderr, r.stderr
    r = run_guarded(["lock", spec, "--lock", "/dev/null"], [])  # as root, os.replace would replace the device
    assert r.returncode == 1 and "/dev/null: is a character device, not a file" in r.stderr, r.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_an_output_that_is_a_folder_is_named_in_the_message(tmp_path):
    """The message named the temp file (``.netspec-<random>.partial``), not the path given."""
    out = tmp_path / "w.npz"
    out.mkdir()
    r = run("build", DEMO, "-o", out)
    assert r.returncode == 1 and f"{out}: is a folder, not a file; refusing to write over it" in r.stderr, r.stderr
    assert ".partial" not in r.stderr and sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]


def test_onnx_external_data_that_is_a_fifo_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import external_data_helper

    model_path = tmp_path / "m.onnx"
    assert run("export", DEMO, "--to", "onnx", "-o", model_path).returncode == 0
    model = onnx.load(str(model_path))
    external_data_helper.convert_model_to_external_data(model, location="data.bin", size_threshold=0)
    onnx.save_model(model, str(model_path))
    (tmp_path / "data.bin").unlink()
    os.mkfifo(tmp_path / "data.bin")
    r = run_guarded(["verify", DEMO, "--weights", model_path], [tmp_path / "data.bin"])
    assert r.returncode == 1 and "data.bin: not a regular file (a FIFO" in r.stderr, r.stderr


# ---------------------------------------------------------------- atomic writes


def big_spec(folder: Path) -> Path:
    spec = folder / "big.yaml"
    spec.write_text("netspec: 1\ninput: [4096]\nlayers:\n" + "  - {type: dense, units: 4096}\n" * 8)
    return spec


def open_files_under(pid: int, folder: Path) -> list[str]:
    """What process ``pid`` has open under ``folder`` (Linux /proc)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            out.append(target)
    return out


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="watches the writer through /proc (Linux)")
@pytest.mark.parametrize("output", ["w.npz", "w.safetensors"])
def test_sigkill_during_a_build_leaves_nothing(tmp_path, output):
    """SIGKILL cannot be caught: only a file that never had a name (O_TMPFILE) disappears with the process.
    Where the filesystem has no O_TMPFILE, the partial it leaves is removed by the next build of the
    same output once stale (unheld, untouched for a minute: aged here by hand)."""
    spec = big_spec(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "netspec.cli", "build", str(spec), "-o", str(tmp_path / output),
                             "--threads", "1", "--no-progress"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not [f for f in open_files_under(proc.pid, tmp_path) if not f.endswith("big.yaml")]:
        assert proc.poll() is None, "the build ended before it was seen writing"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != "big.yaml")
    if left:  # the named fallback: only this output's partial, removed by the next build once stale
        assert len(left) == 1 and left[0].startswith(f".{output}.netspec-") and left[0].endswith(".partial")
        old = time.time() - 2 * files.STALE_AFTER
        os.utime(tmp_path / left[0], (old, old))
        assert run("build", DEMO, "-o", tmp_path / output).returncode == 0
        left = sorted(p.name for p in tmp_path.iterdir() if p.name != "big.yaml")
        assert left == [output]


def test_sigterm_during_a_build_leaves_nothing_behind(tmp_path):
    spec = big_spec(tmp_path)
    proc = subprocess.Popen([sys.executable, "-u", "-m", "netspec.cli", "build", str(spec), "-o",
                             str(tmp_path / "w.npz"), "--threads", "1", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:  # the summary is printed before anything is generated or written
        if line.startswith(b"Total params"):
            break
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    if code == 0:  # the write finished before the signal arrived: nothing to clean up, the file is complete
        pytest.skip("the build finished before SIGTERM")
    assert code == 143 and leftovers == ["big.yaml"], (code, leftovers, proc.stderr.read())


def test_the_named_fallback_removes_only_stale_unheld_partials_of_its_own_output(tmp_path, monkeypatch):
    """Without O_TMPFILE (macOS, some filesystems): writes name their partial after the output, and a
    write removes a partial of the same output only when no process holds it and it is stale."""
    import fcntl

    monkeypatch.setattr(files, "_anonymous_file", lambda folder: None)
    out = tmp_path / "w.npz"
    old = time.time() - 2 * files.STALE_AFTER

    def partial(name: str, age: float = old) -> Path:
        path = tmp_path / name
        path.write_bytes(b"half")
        os.utime(path, (age, age))
        return path

    stale = partial(".w.npz.netspec-0123456789abcdef.partial")
    young = partial(".w.npz.netspec-1123456789abcdef.partial", time.time())
    held = partial(".w.npz.netspec-2123456789abcdef.partial")
    other_output = partial(".v.npz.netspec-3123456789abcdef.partial")
    not_ours = partial(".w.npz.netspec-zz.partial")
    legacy = partial(".netspec-4123456789abcdef.partial")
    holder = os.open(held, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        seen: list[list[str]] = []
        with files.atomic_write(str(out)) as fh:
            seen.append(sorted(p.name for p in tmp_path.iterdir()))
            fh.write(b"data")
        assert out.read_bytes() == b"data"
    finally:
        os.close(holder)
    assert not stale.exists()
    assert all(p.exists() for p in (young, held, other_output, not_ours, legacy))
    (during,) = seen  # while writing, the named partial exists (and is held: flock'd)
    assert len([n for n in during if n.startswith(".w.npz.netspec-") and n not in
                {young.name, held.name, not_ours.name}]) == 1  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")) == sorted(
        p.name for p in (young, held, other_output, not_ours, legacy))  # fmt: skip


def test_an_interrupted_write_leaves_nothing_in_either_mode(tmp_path, monkeypatch):
    for anonymous in (True, False):
        if not anonymous:
            monkeypatch.setattr(files, "_anonymous_file", lambda folder: None)
        out = tmp_path / f"{anonymous}.bin"
        out.write_bytes(b"before")
        with pytest.raises(KeyboardInterrupt), files.atomic_write(str(out)) as fh:
            fh.write(b"half")
            raise KeyboardInterrupt
        assert out.read_bytes() == b"before"
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{a}.bin" for a in (True, False)[: 2 - anonymous])


def test_written_files_keep_the_umask_and_replace_symbolic_links_not_their_targets(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    link = tmp_path / "link.lock"
    link.symlink_to(target)
    old = os.umask(0o027)
    try:
        with files.atomic_write(str(link)) as fh:
            fh.write(b"new")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"keep" and not link.is_symlink() and link.read_bytes() == b"new"
    assert stat.S_IMODE(link.stat().st_mode) == 0o640


def test_the_readme_says_how_writes_survive_sigkill():
    readme = (ROOT / "README.md").read_text()
    assert "O_TMPFILE" in readme
