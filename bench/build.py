"""Whole builds, start to file, against a PyTorch process and a plain write, in one run.

    pip install '.[test]' torch==2.13.0 'jax[cpu]'      # jax is optional: its row is skipped without it
    python bench/build.py [--repeats 3] [--quick]

For the 8x4096^2 MLP (glorot_uniform and he_normal), best of ``--repeats``:

* ``netspec build SPEC -o out.safetensors`` as a fresh process (import, compile, initialize with
  per-tensor SHA-256, atomic write with fsync);
* a PyTorch process doing the same job: import torch, ``torch.empty`` + the matching
  ``torch.nn.init`` call per tensor, ``torch.save(state_dict)`` (then fsync, like netspec);
* a JAX process: import jax, ``jax.random.uniform``/``normal`` per tensor (CPU), ``np.save`` of each
  (then fsync);
* a plain write of the same number of bytes from memory (``open().write()`` of a ready buffer, with
  and without fsync), the floor for any tool that writes the file.

Ratios are the peer's time over netspec's (> 1: netspec faster). Nothing here runs in the unit tests.
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

import numpy as np

BUILD = """netspec: 1
name: mlp
input: [{width}]
defaults: {{weights: {init}, bias: zeros, activation: relu}}
layers:
  - repeat: 8
    layers:
      - {{type: dense, units: {width}, name: fc}}
"""

TORCH = """
import os, sys, torch
width, init, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
state = {}
for i in range(1, 9):
    w = torch.empty(width, width)
    if init == "glorot_uniform":
        torch.nn.init.xavier_uniform_(w)
    else:
        torch.nn.init.kaiming_normal_(w, nonlinearity="relu")
    state[f"fc_{i}.weight"] = w
    state[f"fc_{i}.bias"] = torch.zeros(width)
with open(path, "wb") as fh:
    torch.save(state, fh)
    fh.flush()
    os.fsync(fh.fileno())
"""

JAX = """
import os, sys, math
import numpy as np
import jax, jax.numpy as jnp
width, init, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
key = jax.random.PRNGKey(0)
with open(path, "wb") as fh:
    for i in range(8):
        key, sub = jax.random.split(key)
        if init == "glorot_uniform":
            limit = math.sqrt(6 / (2 * width))
            w = jax.random.uniform(sub, (width, width), jnp.float32, -limit, limit)
        else:
            w = jax.random.normal(sub, (width, width), jnp.float32) * math.sqrt(2 / width)
        np.save(fh, np.asarray(w))
        np.save(fh, np.zeros(width, np.float32))
    fh.flush()
    os.fsync(fh.fileno())
"""


def best(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def plain_write(path: Path, buf: np.ndarray, fsync: bool) -> None:
    with open(path, "wb") as fh:
        fh.write(buf.data)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())


def has(module: str) -> bool:
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1024-wide MLPs (smoke test)")
    args = ap.parse_args()
    width = 1024 if args.quick else 4096
    exe = shutil.which("netspec", path=os.path.dirname(sys.executable)) or "netspec"
    tmp = Path(tempfile.mkdtemp(prefix="netspec-bench-"))
    peers = [("torch", TORCH)] + ([("jax", JAX)] if has("jax") else [])
    nbytes = 8 * (width * width + width) * 4
    from netspec.init import kernels

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"NumPy {np.__version__}; MLP 8x{width}^2, {nbytes / 2**20:.0f} MiB; best of {args.repeats}; "
          f"netspec transforms: {kernels.status()}")  # fmt: skip
    buf = np.ones(nbytes // 4, np.float32)
    t_plain = best(lambda: plain_write(tmp / "plain.bin", buf, False), args.repeats)
    t_plain_sync = best(lambda: plain_write(tmp / "plain.bin", buf, True), args.repeats)
    print(f"plain write from memory: {t_plain:.3f} s ({nbytes / t_plain / 2**30:.2f} GiB/s), "
          f"with fsync {t_plain_sync:.3f} s")  # fmt: skip
    print()
    print("| init | netspec build s | " + " | ".join(f"{p} process s | ratio {p}/netspec" for p, _ in peers)
          + " | build / plain write (fsync) |")  # fmt: skip
    print("|---|---:|" + "---:|---:|" * len(peers) + "---:|")
    try:
        for init in ("glorot_uniform", "he_normal"):
            spec = tmp / "mlp.yaml"
            spec.write_text(BUILD.format(width=width, init=init))
            out = tmp / "w.safetensors"
            t_ns = best(lambda spec=spec, out=out: run([exe, "build", str(spec), "-o", str(out), "--no-progress"]),
                        args.repeats)  # fmt: skip
            cells = [f"{t_ns:.3f}"]
            for peer, code in peers:
                script = tmp / f"peer_{peer}.py"  # not torch.py: it would shadow the module
                script.write_text(code)
                cmd = [sys.executable, str(script), str(width), init, str(tmp / f"{peer}.out")]
                t_peer = best(lambda cmd=cmd: run(cmd), args.repeats)
                cells += [f"{t_peer:.3f}", f"{t_peer / t_ns:.2f}"]
            cells.append(f"{t_ns / t_plain_sync:.2f}")
            print(f"| {init} | " + " | ".join(cells) + " |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
