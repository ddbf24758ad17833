"""netspec vs PyTorch initialization, in one run, on this machine.

    pip install '.[test]' torch==2.13.0
    python bench/run.py [--repeats 3] [--quick]

For each architecture: netspec's initialization time (spec -> compiled
network -> ``net.initialize()``, default threads = all cores) and PyTorch's
(``torch.empty`` + the matching ``torch.nn.init`` function for every tensor,
default torch threads), best of ``--repeats``; the ratio is torch time /
netspec time (> 1: netspec faster). Peak RSS is measured on a separate
``netspec build SPEC -o file.npz`` process (its VmHWM), baseline = the same
command on the 43-parameter demo spec. Also CLI start-up of
``netspec build --dry-run`` and ``netspec validate`` on the demo spec.
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

import numpy as np

import netspec
from netspec.nn.network import default_threads

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "specs" / "glorot-demo-4-5-3.yaml"


def mlp_spec(init: str, width: int = 4096, depth: int = 8) -> str:
    return f"""netspec: 1
name: mlp-{depth}x{width}
input: [{width}]
defaults: {{weights: {init}, bias: zeros, activation: relu}}
layers:
  - repeat: {depth}
    layers:
      - {{type: dense, units: {width}, name: fc}}
"""


EMBEDDING = """netspec: 1
name: embedding-1m-256
input: [16]
layers:
  - {type: embedding, vocab: 1000000, dim: 256, weights: {name: normal, std: 1.0}}
"""

CIFAR_BIG = """netspec: 1
name: cifar-cnn-x8
input: [32, 32, 3]
defaults: {weights: auto, bias: zeros}
layers:
  - {type: conv2d, filters: 256, kernel: 3, activation: relu}
  - {type: conv2d, filters: 512, kernel: 3, stride: 2, activation: relu}
  - {type: conv2d, filters: 512, kernel: 3, activation: relu}
  - {type: max_pool2d, pool: 2}
  - {type: flatten}
  - {type: dense, units: 4096, activation: relu, weights: {name: he_normal}}
  - {type: dropout, rate: 0.5}
  - {type: dense, units: 10, activation: softmax,
     weights: {name: variance_scaling, scale: 1.0, mode: fan_avg, distribution: uniform}}
"""

TRUNC = "{name: he_normal, truncated: true}"


def torch_init(torch, net):  # type: ignore[no-untyped-def]
    """The same tensors in PyTorch layout (out, in, *k) with the matching torch.nn.init call."""
    init = torch.nn.init
    out = {}
    for path, p in net.parameters():
        cfg = p.initializer.get_config()
        shape = p.shape if len(p.shape) < 2 else (p.shape[-1], p.shape[-2], *p.shape[:-2])
        t = torch.empty(shape)
        name = cfg["name"]
        if name == "zeros":
            init.zeros_(t)
        elif name == "glorot_uniform":
            init.xavier_uniform_(t)
        elif name == "he_normal" and not cfg.get("truncated"):
            init.kaiming_normal_(t, nonlinearity="relu")
        elif name == "he_normal":
            dist = p.initializer.declared(p.shape, p.fans)
            init.trunc_normal_(t, std=dist.scale, a=-2 * dist.scale, b=2 * dist.scale)
        elif name == "normal":
            init.normal_(t, cfg["mean"], cfg["std"])
        elif name == "variance_scaling":
            init.xavier_uniform_(t)
        else:
            raise ValueError(f"no torch peer for {cfg}")
        out[path] = t
    return out


def best(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        del result
    return min(times)


PEAK = (
    "import sys\n"
    "from netspec.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
    "print(int(hwm) * 1024, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def peak_rss(args: list[str]) -> int:
    """Peak resident set size (bytes) of ``netspec ARGS`` in a fresh interpreter.

    Read from the child's own /proc/self/status VmHWM (ru_maxrss of a forked
    child would include the parent's image, torch and all).
    """
    proc = subprocess.run([sys.executable, "-c", PEAK, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed: {proc.stderr}")
    return int(proc.stderr.strip().splitlines()[-1])


def cli_time(args: list[str], repeats: int) -> float:
    return best(lambda: subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), repeats)


def normal_fill(torch, n: int, repeats: int) -> None:  # type: ignore[no-untyped-def]
    """N(0, 1) float32 fill of n values: netspec stream versions 1 (Box-Muller) and 2 (ziggurat) on the
    default thread pool, with the compiled kernels and with the NumPy transforms, against torch's
    ``normal_`` (default torch threads) in place and into a new tensor (``torch.empty(n).normal_()``, the
    same job as netspec's, which allocates its result), and ``jax.random.normal`` (CPU) if installed;
    best of ``repeats``."""
    from concurrent.futures import ThreadPoolExecutor

    from netspec.init import kernels
    from netspec.init.streams import BlockStream

    t = torch.empty(n)
    t_torch = best(lambda: t.normal_(), repeats)
    t_new = best(lambda: torch.empty(n).normal_(), repeats)
    print()
    print(f"Normal fill, {n:,} float32 values (M values/s; ratio = torch time / netspec time):")
    print(f"torch normal_ in place: {n / t_torch / 1e6:.0f}; torch.empty(n).normal_(): {n / t_new / 1e6:.0f}")
    jax_fill(n, repeats)
    with ThreadPoolExecutor(default_threads()) as pool:
        for choice in ("compiled", "numpy"):
            try:
                kernels.use(choice)
            except Exception as exc:  # not built here
                print(f"netspec, {choice} transforms: unavailable ({exc})")
                continue
            for version in (1, 2):
                stream = BlockStream(0, "fill", pool, version)
                t_ns = best(lambda s=stream: s.normal((n,), 0.0, 1.0, np.float32), repeats)
                print(f"netspec stream {version}, {kernels.status().split(' (')[0]} transforms: {n / t_ns / 1e6:.0f} "
                      f"(ratio to torch in place {t_torch / t_ns:.2f}, to torch new tensor {t_new / t_ns:.2f})",
                      flush=True)  # fmt: skip
    kernels.use(None)


def jax_fill(n: int, repeats: int) -> None:
    """``jax.random.normal`` of n float32 values on the CPU, if jax is installed."""
    try:
        import jax
    except ImportError:
        print("jax.random.normal: jax not installed")
        return
    key = jax.random.PRNGKey(0)
    jax.random.normal(key, (n,)).block_until_ready()  # compile once
    t_jax = best(lambda: jax.random.normal(key, (n,)).block_until_ready(), repeats)
    print(f"jax.random.normal (CPU): {n / t_jax / 1e6:.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1024-wide MLPs and a 100k embedding (smoke test)")
    args = ap.parse_args()
    import torch

    width = 1024 if args.quick else 4096
    cases = [
        ("MLP 8x4096^2 glorot_uniform", mlp_spec("glorot_uniform", width)),
        ("MLP 8x4096^2 he_normal", mlp_spec("he_normal", width)),
        ("MLP 8x4096^2 truncated he_normal", mlp_spec(TRUNC, width)),
        ("embedding 1M x 256 normal", EMBEDDING.replace("1000000", "100000") if args.quick else EMBEDDING),
        ("cifar-cnn x8", CIFAR_BIG),
    ]
    exe = shutil.which("netspec", path=os.path.dirname(sys.executable)) or shutil.which("netspec") or "netspec"
    tmp = Path(tempfile.mkdtemp(prefix="netspec-bench-"))
    try:
        baseline = peak_rss(["build", str(DEMO), "-o", str(tmp / "demo.npz"), "--no-progress"])
        from netspec.init import kernels

        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
              f"NumPy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
              f"netspec threads {default_threads()}; baseline RSS {baseline / 2**20:.0f} MiB; "
              f"transforms: {kernels.status()}")  # fmt: skip
        print()
        print(
            "| case | params | netspec s | torch s | ratio (torch/netspec) | netspec M/s | (RSS - baseline) / bytes |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for label, text in cases:
            spec = tmp / "case.yaml"
            spec.write_text(text)
            net = netspec.load(str(spec))
            t_ns = best(lambda net=net: net.initialize(), args.repeats)
            t_torch = best(lambda net=net: torch_init(torch, net), args.repeats)
            rss = peak_rss(["build", str(spec), "-o", str(tmp / "case.npz"), "--no-progress"])
            (tmp / "case.npz").unlink()
            n = net.num_params
            print(f"| {label} | {n:,} | {t_ns:.3f} | {t_torch:.3f} | {t_torch / t_ns:.2f} | {n / t_ns / 1e6:.0f} | "
                  f"{(rss - baseline) / net.nbytes:.2f} |", flush=True)  # fmt: skip
        normal_fill(torch, 1 << 24 if args.quick else 1 << 26, args.repeats)
        dry = cli_time([exe, "build", str(DEMO), "--dry-run"], 5)
        val = cli_time([exe, "validate", str(DEMO)], 5)
        print()
        print(f"CLI start-up (best of 5): `netspec build --dry-run` on the 4-5-3 spec {dry:.3f} s; "
              f"`netspec validate` {val:.3f} s")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
