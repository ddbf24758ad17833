"""Export time against PyTorch's own exporters, in one run.

    pip install '.[test,onnx]' torch==2.13.0
    python bench/export.py [--repeats 3] [--width 4096]

For the 8 x width^2 MLP (glorot_uniform), weights already in memory, best of ``--repeats``:

* ``netspec.export.onnx.save`` (graph built with the onnx helpers, atomic write with fsync; the checker
  runs in the tests, not on every save)
  against ``torch.onnx.export`` of the same ``nn.Module`` (TorchScript exporter, ``dynamo=False``);
* ``netspec.export.torch.save`` (``.pt``: to_module + state_dict + torch.save, atomic write) against
  ``torch.save(model.state_dict())``.

Ratios are the peer's time over netspec's (> 1: netspec faster). Nothing here runs in the unit tests.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from build import best  # bench/build.py: best of n runs

SPEC = """netspec: 1
name: mlp
input: [{width}]
defaults: {{weights: glorot_uniform, bias: zeros, activation: relu}}
layers:
  - repeat: 8
    layers:
      - {{type: dense, name: fc, units: {width}}}
"""


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=4096)
    args = parser.parse_args()

    import torch

    import netspec
    from netspec.export import onnx as onnx_export
    from netspec.export import torch as torch_export

    net = netspec.loads(SPEC.format(width=args.width), "mlp.yaml")
    params = net.initialize()
    module = torch_export.to_module(net, params)
    x = torch.zeros(1, args.width)
    size = sum(a.nbytes for a in params.values())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        rows = [
            ("ONNX", lambda: onnx_export.save(net, params, str(out / "a.onnx")),
             lambda: torch.onnx.export(module, (x,), str(out / "b.onnx"), dynamo=False), out / "b.onnx"),
            ("state_dict .pt", lambda: torch_export.save(net, params, str(out / "a.pt")),
             lambda: torch.save(module.state_dict(), str(out / "b.pt")), out / "b.pt"),
        ]  # fmt: skip
        print(f"8 x {args.width}^2 MLP, {size / 2**20:.0f} MiB, best of {args.repeats}")
        print("netspec writes atomically with fsync; torch's exporters do not sync, so the torch rows are shown")
        print("without and with an fsync of the file they wrote (the same durability)")
        for name, ours, theirs, written in rows:
            a, b = best(ours, args.repeats), best(theirs, args.repeats)
            c = best(lambda theirs=theirs, written=written: (theirs(), fsync(written)), args.repeats)
            print(f"{name:16s} netspec {a:6.2f} s   torch {b:6.2f} s (ratio {b / a:4.2f})   torch+fsync {c:6.2f} s "
                  f"(ratio {c / a:4.2f})")


if __name__ == "__main__":
    main()
