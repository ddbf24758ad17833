"""Fuzzing the readers of weights and lock files: every file either reads (and what reads is then used:
verified against the spec, compared with the spec's lock, diffed) or is refused with a NetspecError that
names the file (see ``tests/fuzzing.py`` for the mutations, budgets and corpus).

Seeds are netspec's own files for two example specs (``.npz``, ``.safetensors``, ``SPEC.lock``), mutated
by structure (the safetensors header and ``__metadata__``, the .npz members and archive comment, the
lock document) and by bytes."""

import io
import json
import os
import struct
import tempfile
import zipfile
from functools import cache
from pathlib import Path

import pytest
from hypothesis import strategies as st

import fuzzing
import netspec
from netspec.check.verify import verify_spec
from netspec.errors import NetspecError
from netspec.export.files import recorded_metadata
from netspec.io import weights as weights_io
from netspec.vcs import lock as locks
from netspec.vcs.diff import Side, diff_sides

SPECS = [fuzzing.ROOT / "specs" / name for name in ("glorot-demo-4-5-3.yaml", "residual-mlp.yaml")]
KINDS = (".npz", ".safetensors", ".lock")
ST_DTYPES = ["F32", "F64", "F16", "BF16", "I64", "I32", "U8", "BOOL", "F8_E4M3", "f32", ""]


@cache
def seeds() -> dict[str, list[tuple[int, bytes]]]:
    """kind -> [(which spec, the file's bytes)], built once per process."""
    out: dict[str, list[tuple[int, bytes]]] = {k: [] for k in KINDS}
    with tempfile.TemporaryDirectory() as folder:
        for i, spec in enumerate(SPECS):
            net = netspec.load(str(spec))
            params = net.initialize()
            for kind in (".npz", ".safetensors"):
                path = os.path.join(folder, f"w{kind}")
                weights_io.save(params, path, weights_io.metadata_for(net))
                out[kind].append((i, Path(path).read_bytes()))
            out[".lock"].append((i, locks.dumps(locks.build_lock(net)).encode()))
    return out


@cache
def network(i: int):
    net = netspec.load(str(SPECS[i]))
    return net, locks.build_lock(net)


VOCABULARY = ["dtype", "shape", "data_offsets", "__metadata__", "netspec_spec", "netspec_seed", "netspec_stream",
              "netspec_rng", "netspec_dtype", "netspec_layout", "tensors", "sha256", "initializer", "fans", "declared",
              "seed", "rng", "stream", "parameters", "imports", "constants", "netspec_lock", "content_sha256",
              "dense_1.weights", "dense_1.bias", "name"]  # fmt: skip
VALUES = {"dtype": [*ST_DTYPES, "float32", "float64", "bfloat16"], "netspec_stream": ["block/1", "block/2", "block/9",
          "legacy", "block"], "rng": ["block", "legacy", "block/2"], "stream": ["block/1", "block/3", "legacy"],
          "shape": [[], [0], [4, 5], [5, 4], [2**40, 2**40], [-1]], "data_offsets": [[0, 0], [0, 80], [80, 0],
          [2**64, 2**64 + 4]], "netspec_lock": [1, 2, 1.0, True], "seed": [0, -1, 2**70, 1.5, "0"]}  # fmt: skip


@st.composite
def safetensors(draw, data: bytes) -> bytes:
    (n,) = struct.unpack("<Q", data[:8])
    header, body = json.loads(data[8 : 8 + n]), data[8 + n :]
    for _ in range(draw(st.integers(1, 3))):
        header = draw(fuzzing.mutate_tree(header, VOCABULARY, VALUES))
    blob = json.dumps(header, allow_nan=True).encode() if draw(st.integers(0, 5)) else draw(
        fuzzing.mutate_text(json.dumps(header))).encode("utf-8", "surrogatepass")  # fmt: skip
    prefix = len(blob) + draw(st.sampled_from([0, 0, 0, 0, -1, 1, 8, 2**32, 2**63]))
    if draw(st.integers(0, 3)) == 0:
        body = draw(fuzzing.mutate_bytes(body))
    return struct.pack("<Q", prefix % 2**64) + blob + body


@st.composite
def npz(draw, data: bytes) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    members = [(info.filename, source.read(info)) for info in source.infolist()]
    comment = source.comment
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["rename", "drop", "add", "bytes", "comment", "metadata", "header"]))
        i = draw(st.integers(0, max(len(members) - 1, 0)))
        if op == "rename" and members:
            members[i] = (draw(st.sampled_from(["x.npy", "dense_1.weights.npy", "../x.npy", "a" * 300, "b",
                                                 "netspec-metadata.json", members[-1][0]])), members[i][1])  # fmt: skip
        elif op == "drop" and members:
            del members[i]
        elif op == "add":
            members.append((draw(st.sampled_from(["extra.npy", "netspec-metadata.json", "z"])),
                            draw(st.binary(max_size=64))))  # fmt: skip
        elif op == "bytes" and members:
            members[i] = (members[i][0], draw(fuzzing.mutate_bytes(members[i][1])))
        elif op == "header" and members:  # the .npy header's dict text: descr, fortran_order, shape
            name, raw = members[i]
            members[i] = (name, raw[:10] + draw(fuzzing.mutate_text(raw[10:80].decode("latin-1"))).encode(
                "latin-1", "replace") + raw[80:])  # fmt: skip
        elif op == "comment":
            comment = draw(fuzzing.mutate_bytes(comment))
        elif op == "metadata" and comment.startswith(weights_io.NPZ_COMMENT_PREFIX):
            try:
                meta = json.loads(comment[len(weights_io.NPZ_COMMENT_PREFIX) :])
            except ValueError:  # mutated already
                continue
            meta = draw(fuzzing.mutate_tree(meta, VOCABULARY, VALUES))
            comment = weights_io.NPZ_COMMENT_PREFIX + json.dumps(meta).encode()
    out = io.BytesIO()
    method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    with zipfile.ZipFile(out, "w", compression=method) as zf:
        for name, raw in members:
            zf.writestr(name, raw)
        zf.comment = comment[:65535]
    result = out.getvalue()
    return draw(fuzzing.mutate_bytes(result)) if draw(st.integers(0, 4)) == 0 else result


@st.composite
def lock_file(draw, data: bytes) -> bytes:
    if draw(st.integers(0, 5)) == 0:
        return draw(fuzzing.mutate_bytes(data))
    document = json.loads(data)
    for _ in range(draw(st.integers(1, 3))):
        document = draw(fuzzing.mutate_tree(document, VOCABULARY, VALUES))
    return json.dumps(document, allow_nan=True).encode()


@st.composite
def files(draw):
    kind = draw(st.sampled_from(KINDS))
    spec, data = draw(st.sampled_from(seeds()[kind]))
    mutate = {".npz": npz, ".safetensors": safetensors, ".lock": lock_file}[kind]
    return kind, spec, draw(mutate(data))


def check(example, tally: fuzzing.Tally) -> None:
    """The contract (module doc): every refusal is a NetspecError naming the file."""
    kind, spec, data = example
    net, current = network(spec)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "spec.yaml.lock" if kind == ".lock" else f"w{kind}")
        Path(path).write_bytes(data)
        if kind == ".lock":
            return _lock(path, data, current, tally)
        recorded_metadata(path)  # never raises, whatever the file
        _refused_or(tally, path, "metadata", lambda: weights_io.load_metadata(path))
        _refused_or(tally, path, "read", lambda: weights_io.load(path, max_bytes=1 << 24))
        _refused_or(tally, path, "verified", lambda: verify_spec(net, path).ok())


def _lock(path: str, data: bytes, current: dict, tally: fuzzing.Tally) -> None:
    try:
        old = locks.read(path)
    except NetspecError as exc:
        assert path in str(exc), f"a refusal that does not name the file: {exc!r}"
        tally.count("lock refused")
        return
    for drift in locks.compare(old, current) + locks.compare(current, old):  # lock --check, both ways
        assert str(drift)
    locks.import_changes(old, current)
    text = data.decode("utf-8", "surrogateescape")
    diff_sides(Side(path, text, path), Side("now.lock", locks.dumps(current), "now.lock")).text()  # netspec diff
    tally.count("lock read and compared")


def _refused_or(tally: fuzzing.Tally, path: str, what: str, action) -> None:
    try:
        action()
    except NetspecError as exc:
        assert path in str(exc), f"a refusal that does not name the file: {exc!r}"
        tally.count(f"{what}: refused")
        return
    tally.count(f"{what}: ok")


def save(example) -> tuple[bytes, str]:
    return example[2], example[0]


def test_fuzz_the_weight_and_lock_readers():
    """CI: 300 fixed-seed examples (well under a minute); NETSPEC_FUZZ_MINUTES=10 for a long run."""
    fuzzing.run("readers", files(), check, save, ci_examples=300)


@pytest.mark.parametrize("path", fuzzing.corpus("readers"), ids=lambda p: p.name)
def test_the_corpus_of_reader_crashes(path):
    """Files that crashed a reader once: each keeps the contract, read as every kind of file."""
    kind = path.suffix if path.suffix in KINDS else ".safetensors"
    check((kind, 0, path.read_bytes()), fuzzing.Tally("corpus"))
