"""Starting pretraining from a config: netspec against transformers, in one run.

    pip install '.[hf]'              # transformers and torch 2.13.0 (CPU)
    python bench/hf.py [--shape tinyllama|llama-7b|tiny] [--dtype float32|bfloat16] [--keep]

For a Llama-family ``config.json`` (TinyLlama-1.1B's shape by default):

* **netspec**: ``netspec import hf CONFIG -o model.yaml`` then ``netspec export model.yaml --to hf -o DIR``
  (generates from the seed straight into the safetensors files, fsyncs them), each a fresh process;
* **transformers**: a fresh process doing ``LlamaForCausalLM(config)`` (its ``_init_weights``), then
  ``save_pretrained(DIR)`` and an fsync of every file written (netspec fsyncs; both sides pay for the disk);
* a plain write of the same number of bytes from memory with fsync, the floor for any tool.

Each side's wall time and peak RSS (``ru_maxrss`` of the process). For the 7B shape transformers runs under a
20 GiB address-space limit (``RLIMIT_AS``), so it fails cleanly instead of exhausting the machine: a float32
7B model is 27 GB. Nothing here runs in the unit tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPES = {
    "tinyllama": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
                  "num_key_value_heads": 4, "vocab_size": 32000, "max_position_embeddings": 2048,
                  "rms_norm_eps": 1e-5},
    "llama-7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
                 "num_key_value_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096,
                 "rms_norm_eps": 1e-6},
    "tiny": {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 8,
             "num_key_value_heads": 2, "vocab_size": 4096, "max_position_embeddings": 256, "rms_norm_eps": 1e-6},
}  # fmt: skip

TRANSFORMERS = """
import json, os, resource, sys, time
limit = int(sys.argv[3])
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
start = time.perf_counter()
import torch
from transformers import LlamaConfig, LlamaForCausalLM
config = LlamaConfig(**json.load(open(sys.argv[1])))
try:
    model = LlamaForCausalLM(config)
    if sys.argv[4] == "bfloat16":
        model = model.to(torch.bfloat16)
    built = time.perf_counter()
    model.save_pretrained(sys.argv[2])
    for name in os.listdir(sys.argv[2]):
        fd = os.open(os.path.join(sys.argv[2], name), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
except (MemoryError, RuntimeError) as exc:  # torch's allocator raises RuntimeError "can't allocate memory"
    if not isinstance(exc, MemoryError) and "allocate memory" not in str(exc):
        raise
    print(json.dumps({"error": f"out of memory under the address-space limit ({type(exc).__name__})"}))
    sys.exit(0)
end = time.perf_counter()
print(json.dumps({"build": built - start, "save": end - built, "total": end - start}))
"""


def measured(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS GiB, stdout) of a fresh process (its own ``ru_maxrss``, read by a wrapper)."""
    wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "sys.stderr.write(r.stderr); print(r.returncode, time.perf_counter() - t, "
               "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(r.stdout, end='')")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=True)
    first, _, rest = out.stdout.partition("\n")
    code, wall, rss_kib = first.split()
    if code != "0":
        raise SystemExit(f"{' '.join(cmd)} failed ({code}):\n{out.stderr}")
    return float(wall), int(rss_kib) / 2**20, rest


def plain_write(path: Path, nbytes: int) -> float:
    buf = np.ones(1 << 26, np.uint8)  # 64 MiB written repeatedly: the floor without holding the whole file
    start = time.perf_counter()
    with open(path, "wb") as fh:
        left = nbytes
        while left:
            n = min(left, buf.size)
            fh.write(buf[:n].data)
            left -= n
        fh.flush()
        os.fsync(fh.fileno())
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tinyllama")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--skip-transformers", action="store_true", help="netspec and the plain write only")
    ap.add_argument("--keep", action="store_true", help="keep the outputs (printed)")
    args = ap.parse_args()
    exe = shutil.which("netspec", path=os.path.dirname(sys.executable)) or "netspec"
    tmp = Path(tempfile.mkdtemp(prefix="netspec-bench-hf-"))
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "initializer_range": 0.02,
              "torch_dtype": args.dtype, "tie_word_embeddings": False, **SHAPES[args.shape]}  # fmt: skip
    (tmp / "src").mkdir()
    (tmp / "src" / "config.json").write_text(json.dumps(config))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"shape {args.shape}, {args.dtype}")
    try:
        max_params = ["--max-params", str(10**11)]  # (LLaMA-7B: 6.7e9, over the default 2e9)
        t_import, rss_import, _ = measured([exe, "import", "hf", str(tmp / "src"), "-o", str(tmp / "model.yaml"),
                                            *max_params])  # fmt: skip
        t_export, rss_export, _ = measured([exe, "export", str(tmp / "model.yaml"), "--to", "hf", "-o",
                                            str(tmp / "netspec"), *max_params])  # fmt: skip
        nbytes = sum(f.stat().st_size for f in (tmp / "netspec").iterdir())
        t_ns = t_import + t_export
        print(f"netspec: import {t_import:.2f} s + export {t_export:.2f} s = {t_ns:.2f} s, peak RSS "
              f"{max(rss_import, rss_export):.2f} GiB; {nbytes / 2**30:.2f} GiB written")
        if not args.keep:
            shutil.rmtree(tmp / "netspec")
        t_plain = plain_write(tmp / "plain.bin", nbytes)
        (tmp / "plain.bin").unlink()
        print(f"plain write with fsync: {t_plain:.2f} s ({nbytes / t_plain / 2**30:.2f} GiB/s); "
              f"netspec / plain = {t_ns / t_plain:.2f}")
        if args.skip_transformers:
            return
        script = tmp / "peer_transformers.py"
        script.write_text(TRANSFORMERS)
        hf_config = tmp / "hf_config.json"
        hf_config.write_text(json.dumps({k: v for k, v in config.items() if k not in ("architectures", "model_type")}))
        limit = 20 * 2**30 if args.shape == "llama-7b" else 0
        t_tf, rss_tf, out = measured([sys.executable, str(script), str(hf_config), str(tmp / "transformers"),
                                      str(limit), args.dtype])  # fmt: skip
        result = json.loads(out.strip().splitlines()[-1])
        if "error" in result:
            print(f"transformers: {result['error']} after {t_tf:.2f} s, peak RSS {rss_tf:.2f} GiB")
            return
        print(f"transformers: LlamaForCausalLM(config) {result['build']:.2f} s + save_pretrained and fsync "
              f"{result['save']:.2f} s; process {t_tf:.2f} s, peak RSS {rss_tf:.2f} GiB")
        print(f"ratio transformers / netspec: {t_tf / t_ns:.2f}x time, {rss_tf / max(rss_import, rss_export):.1f}x "
              "peak RSS")  # fmt: skip
    finally:
        if args.keep:
            print(f"outputs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
