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
