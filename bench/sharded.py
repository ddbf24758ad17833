"""Issue 21's measurements: a LLaMA-7B-shaped build into sharded safetensors against a plain write of the
same bytes, and the peak memory of building and verifying a model of large tensors, in one run.

    pip install -e '.[test,dask]'                # dask only for --dask
    python bench/sharded.py --dir /big/disk --dask   # 28 GB free (27 GB, removed before dd's 27 GB); 30 min or more
    python bench/sharded.py --quick              # a 2-layer, 512-wide smoke run of the same steps

Rows, each a fresh process timed from start to exit with its peak RSS (``os.wait4``'s ``ru_maxrss``: the
largest process of the command, LocalCluster workers included when they are its children):

* ``7b float32`` / ``7b bfloat16``: ``netspec build llama-7b.yaml -o DIR --max-shard-size 5GB --dtype D``
  (LLaMA-7B's shape: 32 layers of 4096, 32 heads, SwiGLU 11008, vocabulary 32000, untied head:
  6,738,415,616 parameters; specs/large/decoders.yaml's llama_block, N(0, 0.02^2) kernels), against
  ``dd if=/dev/zero of=FILE bs=64M count=<the folder's bytes> iflag=count_bytes conv=fsync``, a plain write
  of as many bytes with fsync. Ratio = build / dd (issue 21's goal: bfloat16 within 1.3).
* with ``--dask``: the bfloat16 build again with ``--engine dask --workers 2`` (a LocalCluster), ratio to dd.
* ``2 GiB of 256 MiB tensors``: 8 dense 8192x8192 float32 kernels, ``netspec build -o model.safetensors``
  and ``netspec verify SPEC --weights model.safetensors``; peak RSS against issue 21's bound of 0.5 GiB
  (ratio < 1: under the bound).

The disk is part of the measurement: run on a quiet machine, on the disk the outputs go to (``--dir``,
default the system's temporary folder), and say which. Everything written is removed at the end.
Nothing here runs in the unit tests.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LLAMA = """netspec: 1
name: llama-7b
seed: 0
names: explicit
constants: {{vocab: {vocab}, hidden: {hidden}, intermediate: {ff}, heads: {heads}, kv_heads: {heads},
             n_layers: {layers}, rope_theta: 10000.0, rms_norm_eps: 1.0e-5, std: 0.02}}
input: [null]
defaults:
  weights: {{name: normal, std: '${{std}}'}}
imports: [decoders.yaml]
layers:
  - {{type: embedding, name: embed_tokens, vocab: '${{vocab}}', dim: '${{hidden}}'}}
  - repeat: ${{n_layers}}
    layers:
      - block: llama_block
        name: layers
        width: ${{hidden}}
        heads: ${{heads}}
        kv_heads: ${{kv_heads}}
        ffn: ${{intermediate}}
        theta: ${{rope_theta}}
        epsilon: ${{rms_norm_eps}}
  - {{type: rms_norm, name: norm, epsilon: '${{rms_norm_eps}}'}}
  - {{type: dense, name: lm_head, units: '${{vocab}}', use_bias: false, role: readout}}
"""
SHAPES = {"7b": {"vocab": 32000, "hidden": 4096, "ff": 11008, "heads": 32, "layers": 32},
          "quick": {"vocab": 1000, "hidden": 512, "ff": 1376, "heads": 8, "layers": 2}}  # fmt: skip
BIG_TENSORS = """netspec: 1
name: big-tensors
input: [{width}]
layers:
  - repeat: 8
    layers:
      - {{type: dense, units: {width}, use_bias: false, name: fc, weights: {{name: normal, std: 0.01}}}}
"""
BOUND = 0.5 * 2**30
"""Issue 21's bound on peak RSS for the model of 256 MiB tensors, built or verified."""


def measure(cmd: list[str]) -> tuple[float, int]:
    """Seconds from start to exit and peak RSS in bytes of ``cmd`` (a failure stops the benchmark)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    return seconds, usage.ru_maxrss * 1024  # (Linux: KiB)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def dd(path: Path, nbytes: int) -> tuple[float, int]:
    """A plain write of ``nbytes`` with fsync (GNU dd)."""
    return measure(["dd", "if=/dev/zero", f"of={path}", "bs=64M", f"count={nbytes}", "iflag=count_bytes",
                    "conv=fsync", "status=none"])  # fmt: skip


def gib(n: float) -> str:
    return f"{n / 2**30:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", help="where outputs go (default: the temporary folder)")
    ap.add_argument("--quick", action="store_true", help="small shapes: check the steps, not the speed")
    ap.add_argument("--dask", action="store_true", help="also the bfloat16 build on a 2-worker LocalCluster")
    ap.add_argument("--only", choices=["7b", "tensors"], help="one part (default: both)")
    args = ap.parse_args()
    exe = shutil.which("netspec", path=os.path.dirname(sys.executable)) or "netspec"
    tmp = Path(tempfile.mkdtemp(prefix="netspec-bench-sharded-", dir=args.dir))
    shape = SHAPES["quick" if args.quick else "7b"]
    shard = "20MB" if args.quick else "5GB"
    from netspec.init import kernels

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"outputs in {tmp}; netspec transforms: {kernels.status()}")  # fmt: skip
    try:
        if args.only != "tensors":
            need = 28 * 10**9 if not args.quick else 0  # one 27 GB output at a time (removed before dd)
            if shutil.disk_usage(tmp).free < need:
                raise SystemExit(f"{tmp}: under {need / 1e9:.0f} GB free; choose another --dir")
            shutil.copy(ROOT / "specs/large/decoders.yaml", tmp / "decoders.yaml")
            spec = tmp / "llama-7b.yaml"
            spec.write_text(LLAMA.format(**shape))
            print()
            print("| build | GiB written | build s | build peak RSS GiB | dd + fsync s | ratio build/dd |")
            print("|---|---:|---:|---:|---:|---:|")
            runs = [("float32", "local"), ("bfloat16", "local")] + ([("bfloat16", "dask")] if args.dask else [])
            for dtype, engine in runs:
                out = tmp / "out"
                cmd = [exe, "build", str(spec), "-o", str(out), "--max-shard-size", shard, "--dtype", dtype,
                       "--max-params", str(10**10), "--no-progress"]  # fmt: skip
                if engine == "dask":
                    cmd += ["--engine", "dask", "--workers", "2"]
                t_build, rss = measure(cmd)
                nbytes = folder_bytes(out)
                shutil.rmtree(out)
                t_dd, _ = dd(tmp / "plain.bin", nbytes)
                (tmp / "plain.bin").unlink()
                name = f"{'7B' if not args.quick else 'quick'} {dtype}" + (" (dask, 2 workers)" if engine == "dask"
                                                                           else "")  # fmt: skip
                print(f"| {name} | {gib(nbytes)} | {t_build:.1f} | {gib(rss)} | {t_dd:.1f} | {t_build / t_dd:.2f} |",
                      flush=True)  # fmt: skip
        if args.only != "7b":
            width = 1024 if args.quick else 8192
            spec = tmp / "big.yaml"
            spec.write_text(BIG_TENSORS.format(width=width))
            weights = tmp / "model.safetensors"
            t_build, rss_build = measure([exe, "build", str(spec), "-o", str(weights), "--no-progress"])
            t_verify, rss_verify = measure([exe, "verify", str(spec), "--weights", str(weights)])
            size = weights.stat().st_size
            weights.unlink()
            print()
            print(f"| 8 tensors of {width * width * 4 / 2**20:.0f} MiB ({gib(size)} GiB) | s | peak RSS GiB | "
                  f"peak RSS / 0.5 GiB |")  # fmt: skip
            print("|---|---:|---:|---:|")
            for what, t, rss in (("build", t_build, rss_build), ("verify", t_verify, rss_verify)):
                print(f"| {what} | {t:.1f} | {gib(rss)} | {rss / BOUND:.2f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
