"""Per-tensor SHA-256 computed while generating, and the content digest `netspec build` prints."""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import netspec
from netspec.io import weights as weights_io

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "cifar-cnn.yaml"  # dense_5 has 401,408 weights: two blocks, so threads matter


@pytest.mark.parametrize("threads", [1, 2])
def test_digests_while_generating_equal_the_arrays_digests(threads):
    net = netspec.load(str(SPEC))
    digests: dict[str, str] = {}
    params = net.initialize(threads=threads, digests=digests)
    assert list(digests) == list(params)
    for name, array in params.items():
        assert digests[name] == hashlib.sha256(array.tobytes()).hexdigest(), name
    assert params["dense_5.weights"].tobytes() == net.initialize(threads=1)["dense_5.weights"].tobytes()


def test_content_digest_is_format_and_order_independent(tmp_path):
    net = netspec.load(str(SPEC))
    digests: dict[str, str] = {}
    params = net.initialize(digests=digests)
    content = weights_io.content_digest(digests, params)
    for suffix in (".npz", ".safetensors"):
        path = str(tmp_path / f"w{suffix}")
        weights_io.save(params, path)
        loaded = weights_io.load(path)
        assert weights_io.content_digest(weights_io.tensor_digests(loaded), loaded) == content
    reordered = dict(reversed(list(params.items())))
    assert weights_io.content_digest(digests, reordered) == content
    changed = dict(params, **{"dense_5.bias": params["dense_5.bias"] + np.float32(1)})
    assert weights_io.content_digest(weights_io.tensor_digests(changed), changed) != content


def test_safetensors_file_digest_is_computed_while_writing(tmp_path):
    params = netspec.load(str(SPEC)).initialize()
    path = tmp_path / "w.safetensors"
    assert weights_io.save(params, str(path), {"k": "v"}) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert weights_io.save(params, str(tmp_path / "w.npz")) is None


def test_the_cli_imports_no_heavy_module():
    """Start-up: importing the CLI and validating a spec loads none of the optional heavy libraries
    (nor NumPy or SciPy, which only allocating commands need)."""
    heavy = ["torch", "onnx", "onnxruntime", "jax", "flax", "matplotlib", "dask", "zarr", "scipy", "numpy"]
    code = (
        "import sys\nfrom netspec.cli import main\n"
        f"code = main(['validate', '-q', {str(ROOT / 'specs' / 'glorot-demo-4-5-3.yaml')!r}])\n"
        f"print(code, [m for m in {heavy!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "0 []"


def test_a_streamed_build_equals_a_saved_one_and_refuses_surprises(tmp_path):
    net = netspec.load(str(SPEC))
    layout = [(name, p.shape, net.dtype) for name, p in net.parameters()]
    for suffix in (".npz", ".safetensors"):
        streamed, saved = tmp_path / f"s{suffix}", tmp_path / f"w{suffix}"
        weights_io.save_stream(net.generate(threads=2), layout, str(streamed), {"k": "v"})
        weights_io.save(net.initialize(), str(saved), {"k": "v"})
        assert streamed.read_bytes() == saved.read_bytes()
    with pytest.raises(weights_io.WeightsError, match="not the announced"):
        weights_io.save_stream(iter(net.initialize().items()), layout[::-1], str(tmp_path / "x.npz"))
    assert not (tmp_path / "x.npz").exists()
