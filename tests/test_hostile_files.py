"""Hostile weight, lock and metadata files (issue 22's red-team findings): every one is an input error
(exit 1; 2 for diff) with a message that names the file and where in it, never an internal error (70)."""

import json
import struct
from pathlib import Path

import pytest

from test_cli import DEMO
from test_cli import netspec as run

DEEP = "[" * 100_000 + "]" * 100_000
"""The red team's nesting: 100,000 levels (json.loads raised RecursionError: exit 70)."""


def safetensors(path: Path, header: dict | str, data: bytes = b"") -> Path:
    blob = (header if isinstance(header, str) else json.dumps(header)).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)
    return path


@pytest.fixture
def demo_weights(tmp_path) -> Path:
    out = tmp_path / "demo.safetensors"
    assert run("build", DEMO, "-o", out).returncode == 0
    return out


def deep_header(tmp_path: Path, where: str) -> Path:
    if where == "header":
        return safetensors(tmp_path / "deep.safetensors", '{"x": ' + DEEP + "}")
    return safetensors(tmp_path / "deep.safetensors", '{"__metadata__": {"netspec_spec": ' + DEEP + "}}")


@pytest.mark.parametrize("where", ["header", "__metadata__"])
@pytest.mark.parametrize("command", ["verify", "eval", "export"])
def test_deeply_nested_safetensors_headers_are_input_errors(tmp_path, where, command):
    weights = deep_header(tmp_path, where)
    args = {
        "verify": ["verify", DEMO, "--weights", weights],
        "eval": ["eval", DEMO, "--input", "1,2,3,4", "--weights", weights],
        "export": ["export", DEMO, "--to", "onnx", "-o", tmp_path / "m.onnx", "--weights", weights],
    }[command]
    if command == "export":
        pytest.importorskip("onnx")
    r = run(*args)
    assert r.returncode == 1, r.stderr
    assert f"{weights}: safetensors header, line 1 column " in r.stderr and "nesting deeper than 64 levels" in r.stderr


@pytest.fixture
def deep_lock(tmp_path) -> Path:
    lock = tmp_path / "deep.yaml.lock"
    lock.write_text('{"netspec_lock": 1, "tensors": ' + DEEP + "}")
    return lock


def test_deeply_nested_lock_files_are_input_errors(tmp_path, deep_lock, demo_weights):
    expected = f"{deep_lock}:1:{31 + 64}: not a lock file: nesting deeper than 64 levels"
    for args, code in [
        (["lock", "--check", DEMO, "--lock", deep_lock], 1),
        (["verify", DEMO, "--lock", deep_lock], 1),
        (["verify", DEMO, "--weights", demo_weights, "--lock", deep_lock], 1),
        (["build", DEMO, "-o", tmp_path / "x.npz", "--lock", deep_lock], 1),
        (["diff", deep_lock, deep_lock], 2),
    ]:
        r = run(*args)
        assert r.returncode == code and expected in r.stderr, (args, r.stderr)
    assert not (tmp_path / "x.npz").exists()


def entry(begin: int, end: int, shape: list) -> dict:
    return {"dtype": "F32", "shape": shape, "data_offsets": [begin, end]}


@pytest.mark.parametrize(
    ("tensors", "size", "needle"),
    [
        ({"dense_1.weights": entry(0, 80, [4, 5]), "dense_1.bias": entry(40, 60, [5])}, 80,
         "tensor 'dense_1.bias' (data_offsets [40, 60]) overlaps the tensor before it: it must begin at byte 80"),
        ({"dense_1.weights": entry(0, 80, [4, 5]), "dense_1.bias": entry(88, 108, [5])}, 108,
         "tensor 'dense_1.bias' (data_offsets [88, 108]) leaves a gap of 8 bytes: it must begin at byte 80, "
         "where 'dense_1.weights' ends"),
        ({"dense_1.weights": entry(8, 88, [4, 5])}, 88,
         "tensor 'dense_1.weights' (data_offsets [8, 88]) leaves a gap of 8 bytes: it must begin at byte 0, "
         "where the data section starts"),
        ({"dense_1.weights": entry(0, 80, [4, 5]), "dense_1.bias": entry(80, 100, [5])}, 112,
         "the data section has 12 bytes that no tensor owns (112 bytes, after the last tensor 'dense_1.bias', "
         "which ends at byte 100)"),
        ({"dense_1.weights": entry(0, 80, [4, 5]), "dense_1.bias": entry(80, 100, [5])}, 96,
         "tensor 'dense_1.bias' (data_offsets [80, 100]) runs past the end of the file: the data section holds "
         "96 bytes"),
    ],
)  # fmt: skip
def test_safetensors_tensors_must_tile_the_data_section(tmp_path, tensors, size, needle):
    """The format requires the tensors to tile the data section exactly (the red team's overlapping
    offsets, gaps and trailing bytes were read with exit 0)."""
    path = safetensors(tmp_path / "w.safetensors", tensors, b"\0" * size)
    r = run("eval", DEMO, "--input", "1,2,3,4", "--weights", path)
    assert r.returncode == 1 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_tiled_file_with_an_empty_tensor_reads(tmp_path):
    from netspec.io import weights as weights_io

    tensors = {"a": entry(0, 8, [2]), "empty": entry(8, 8, [0, 3]), "b": entry(8, 12, [1])}
    params = weights_io.load(str(safetensors(tmp_path / "w.safetensors", tensors, b"\0" * 12)))
    assert {k: v.shape for k, v in params.items()} == {"a": (2,), "empty": (0, 3), "b": (1,)}


def test_a_layer_output_is_bounded_per_sample(tmp_path):
    """An upsample 100000x holds 1.6e11 values per sample: eval would allocate without bound."""
    spec = tmp_path / "up.yaml"
    spec.write_text("netspec: 1\ninput: [4, 4, 1]\nlayers:\n  - {type: upsample, size: 100000}\n")
    r = run("validate", spec)
    assert r.returncode == 1 and f"{spec}:4:5: error: upsample_1 (upsample): the output (400000, 400000, 1) " \
        "holds 160,000,000,000 values per sample, more than the limit of 2,147,483,648" in r.stderr, r.stderr


def test_imported_files_are_bounded_in_all(tmp_path, monkeypatch):
    """64 imported files of 1 MiB each would cost minutes of YAML parsing: their total is bounded."""
    from netspec.spec import imports

    monkeypatch.setattr(imports, "MAX_IMPORTED_BYTES", 300)
    block = "netspec: 1\nblocks:\n  {name}:\n    layers:\n      - {{type: dense, units: 4}}\n"
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.yaml").write_text(block.format(name=name) + "# padding\n" * 5)
    spec = tmp_path / "m.yaml"
    spec.write_text("netspec: 1\ninput: [4]\nimports: [a.yaml, b.yaml, c.yaml]\nlayers:\n  - {block: a}\n")
    r = run("validate", spec)
    assert r.returncode == 1 and "import 'c.yaml': the imported files hold more than 300 bytes in all" in r.stderr, \
        r.stderr
