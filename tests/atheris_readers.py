"""Coverage-guided fuzzing of the weight and lock readers with atheris (libFuzzer for Python): optional,
for local runs (``pip install atheris``: wheels for Linux x86-64; elsewhere it needs clang and libFuzzer).

The test-suite's fuzzers (``test_fuzz_readers.py``, ``test_fuzz_specs.py``) are Hypothesis-based: portable,
deterministic in CI, structure-aware. This harness checks the same contract (``test_fuzz_readers.check``)
on raw bytes, guided by line coverage of netspec's own code, starting from netspec's own files and the
crash corpus; the first byte of an input chooses the kind (``.npz``, ``.safetensors``, ``.lock``).

    python tests/atheris_readers.py -max_total_time=600 -print_final_stats=1 [CORPUS_DIR]

A crash (an exception that is not a NetspecError naming the file) is written by libFuzzer as
``crash-<sha1>``; strip its first byte and put it in ``tests/fuzz_corpus/readers/`` with its suffix.
"""

from __future__ import annotations

import os
import sys
import tempfile

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
with atheris.instrument_imports(include=["netspec"]):
    import fuzzing
    import test_fuzz_readers as readers

TALLY = fuzzing.Tally("readers (atheris)")


def one(data: bytes) -> None:
    if not data:
        return
    kind = readers.KINDS[data[0] % len(readers.KINDS)]
    readers.check((kind, 0, data[1:]), TALLY)


def seed_corpus() -> str:
    """netspec's own files and the crash corpus, each prefixed with its kind's byte."""
    folder = tempfile.mkdtemp(prefix="netspec-atheris-")
    files = [(kind, data) for kind, found in readers.seeds().items() for _, data in found]
    files += [(p.suffix if p.suffix in readers.KINDS else ".safetensors", p.read_bytes())
              for p in fuzzing.corpus("readers")]  # fmt: skip
    for i, (kind, data) in enumerate(files):
        with open(os.path.join(folder, f"seed-{i}"), "wb") as fh:
            fh.write(bytes([readers.KINDS.index(kind)]) + data)
    return folder


if __name__ == "__main__":
    args = sys.argv + ([] if any(not a.startswith("-") for a in sys.argv[1:]) else [seed_corpus()])
    atheris.Setup(args, one)
    atheris.Fuzz()
