"""The full-size example specs (specs/large/) built in full, against PyTorch and transformers doing the
same job, in one run.

    pip install '.[test]' torch==2.13.0 transformers     # transformers is optional: its column is skipped
    python bench/large.py [--repeats 1] [--only gpt2-small]

Per spec (gpt2-small: 124,439,808 parameters, 475 MiB; llama-1b: 1,100,048,384, 4.1 GiB), best of
``--repeats``, each a fresh process that imports what it needs, initializes every tensor and writes the
file with an fsync:

* ``netspec build SPEC -o out.safetensors`` (compile, initialize with per-tensor SHA-256, atomic write);
* a PyTorch process: the spec's tensors by name and shape (from ``netspec explain --json``, given to it as
  a file), ``torch.empty`` + ``torch.nn.init.normal_``/``ones_``/``zeros_`` each, ``torch.save``;
* a transformers process: ``GPT2LMHeadModel`` / ``LlamaForCausalLM`` from the matching config (its own
  ``_init_weights``), ``torch.save(model.state_dict())``.

Ratios are the peer's time over netspec's (> 1: netspec faster). Nothing here runs in the unit tests;
CI only validates these specs and builds them with ``--dry-run``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from build import best, has, run  # bench/build.py: the same timing and process helpers

ROOT = Path(__file__).resolve().parent.parent
SPECS = {"gpt2-small": ROOT / "specs/large/gpt2-small.yaml", "llama-1b": ROOT / "specs/large/llama-1b.yaml"}

TORCH = """
import json, os, sys, torch
plan, path = json.load(open(sys.argv[1])), sys.argv[2]
state = {}
for name, (shape, init, std) in plan.items():
    t = torch.empty(shape)
    if init == "normal":
        torch.nn.init.normal_(t, 0.0, std)
    elif init == "ones":
        torch.nn.init.ones_(t)
    else:
        torch.nn.init.zeros_(t)
    state[name] = t
with open(path, "wb") as fh:
    torch.save(state, fh)
    fh.flush()
    os.fsync(fh.fileno())
"""

TRANSFORMERS = """
import os, sys, torch, transformers
kind, path = sys.argv[1], sys.argv[2]
if kind == "gpt2-small":
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config())
else:
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
        num_key_value_heads=4, rms_norm_eps=1e-5, tie_word_embeddings=False))
with open(path, "wb") as fh:
    torch.save(model.state_dict(), fh)
    fh.flush()
    os.fsync(fh.fileno())
"""


def plan(exe: str, spec: Path) -> dict[str, tuple[list[int], str, float]]:
    """Every tensor's shape and law, as netspec explains them (normal with its std, ones or zeros)."""
    rows = json.loads(subprocess.run([exe, "explain", str(spec), "--json"], check=True, capture_output=True,
                                     text=True).stdout)  # fmt: skip
    out = {}
    for row in rows:
        name = row["initializer"]["name"]
        kind = "normal" if name == "normal" else "ones" if name == "ones" else "zeros"
        out[row["parameter"]] = (row["shape"], kind, float(row["initializer"].get("std", 0.0)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--only", choices=sorted(SPECS), help="one spec (default: both)")
    args = ap.parse_args()
    exe = shutil.which("netspec", path=os.path.dirname(sys.executable)) or "netspec"
    tmp = Path(tempfile.mkdtemp(prefix="netspec-bench-large-"))
    peers = [("torch", TORCH)] + ([("transformers", TRANSFORMERS)] if has("transformers") else [])
    from netspec.init import kernels

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"best of {args.repeats}; netspec transforms: {kernels.status()}")  # fmt: skip
    print()
    print("| spec | params | netspec build s | " + " | ".join(f"{p} s | ratio {p}/netspec" for p, _ in peers) + " |")
    print("|---|---:|---:|" + "---:|---:|" * len(peers))
    try:
        for name, spec in SPECS.items():
            if args.only and name != args.only:
                continue
            tensors = plan(exe, spec)
            (tmp / "plan.json").write_text(json.dumps(tensors))
            count = sum(math.prod(shape) for shape, _, _ in tensors.values())
            out = tmp / "w.safetensors"
            t_ns = best(lambda spec=spec, out=out: run([exe, "build", str(spec), "-o", str(out), "--no-progress"]),
                        args.repeats)  # fmt: skip
            out.unlink()
            cells = [f"{count:,}", f"{t_ns:.2f}"]
            for peer, code in peers:
                script = tmp / f"peer_{peer}.py"  # not torch.py: it would shadow the module
                script.write_text(code)
                first = str(tmp / "plan.json") if peer == "torch" else name
                cmd = [sys.executable, str(script), first, str(tmp / f"{peer}.out")]
                t_peer = best(lambda cmd=cmd: run(cmd), args.repeats)
                (tmp / f"{peer}.out").unlink()
                cells += [f"{t_peer:.2f}", f"{t_peer / t_ns:.2f}"]
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
