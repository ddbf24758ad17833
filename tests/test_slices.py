"""Any slice on demand: ``initialize_slice`` is exactly the full tensor's slice and draws only the blocks it
touches; ``shard`` splits as torch.chunk / DTensor; the PyTorch DTensor (FSDP2) and JAX
``make_array_from_callback`` recipes fill each shard with the same bytes on any world size."""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import netspec
from netspec.errors import InitializerError
from netspec.init.blocks import BLOCK
from netspec.init.precision import byte_view
from netspec.nn import sources as sources_module
from netspec.nn.slices import shard_range


def spec(rows: int, cols: int, weights: str = "{name: normal, std: 0.02}", rng: str = "block", dtype: str = "float32"):
    return netspec.loads(f"netspec: 1\ninput: [{rows}]\nrng: {rng}\ndtype: {dtype}\nlayers:\n"
                         f"  - {{type: dense, name: d, units: {cols}, weights: {weights}}}\n")  # fmt: skip


FULL: dict[tuple, np.ndarray] = {}


def full(net, key):
    if key not in FULL:
        FULL[key] = net.initialize()["d.weights"]
    return FULL[key]


def _same(got, expected):
    expected = np.require(np.asarray(expected), requirements="C")  # (an integer index of every axis: a 0-d array)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert got.flags.c_contiguous and bytes(byte_view(got)) == bytes(byte_view(expected))


def _slice(size):
    """A slice of an axis of ``size``: starts and stops around the ends and beyond, any step sign."""
    bound = st.integers(-size - 3, size + 3) | st.none()
    step = st.integers(-7, 7).filter(lambda s: s != 0) | st.none() | st.sampled_from([size, -size, size + 5])
    return st.builds(slice, bound, bound, step)


def _index(shape):
    """Basic indexing of ``shape``: per axis an integer (negative too) or a slice, maybe with an ellipsis."""
    per_axis = [st.one_of(st.integers(-n, n - 1), _slice(n)) for n in shape]
    return st.tuples(*per_axis).flatmap(lambda t: st.sampled_from([t, (*t[:1], Ellipsis), (Ellipsis, *t[1:]), t[0]]))


# Shapes around the block boundaries: 2^18 values per block, tensors of 1 to 3 blocks and a bit.
SHAPES = st.sampled_from([(512, 512), (513, 511), (1024, 257), (3, 87382), (262144, 1), (1, 262145), (7, 5),
                          (600, 1311)])  # fmt: skip
SHAPE_INDEX = SHAPES.flatmap(lambda shape: st.tuples(st.just(shape), _index(shape)))


@given(SHAPE_INDEX, st.sampled_from(["float32", "bfloat16"]))
def test_a_slice_is_the_full_tensors_slice(shape_index, dtype):
    shape, index = shape_index
    net = spec(*shape, dtype=dtype)
    _same(netspec.initialize_slice(net, "d.weights", index), full(net, (shape, dtype))[index])


DTYPES = ["float32", "bfloat16"]
WHOLE_SHAPES = st.sampled_from([(7, 5), (5, 7), (1, 9), (64, 33)])  # (orthogonal: the whole QR per slice)


@given(WHOLE_SHAPES.flatmap(lambda shape: st.tuples(st.just(shape), _index(shape))), st.sampled_from(DTYPES))
def test_a_slice_of_a_whole_tensor_initializer_is_the_full_tensors_slice(shape_index, dtype):
    shape, index = shape_index  # (every axis an integer: a 0-d array, as NumPy's scalar)
    net = spec(*shape, "orthogonal", dtype=dtype)
    _same(netspec.initialize_slice(net, "d.weights", index), full(net, (shape, dtype, "orthogonal"))[index])


@pytest.mark.parametrize("weights", ["{name: truncated_normal, std: 0.1}", "he_uniform", "{name: identity, gain: 2}",
                                     "{name: constant, value: 0.5}", "orthogonal"])  # fmt: skip
@pytest.mark.parametrize("rng", ["block", "block/2"])
def test_every_family_and_stream_slices_exactly(weights, rng):
    net = spec(*((600, 1311) if weights != "orthogonal" else (200, 300)), weights, rng, "float16")
    whole = net.initialize()["d.weights"]
    for index in [np.s_[::-1, 3:400:9], np.s_[150], np.s_[..., -1], np.s_[5:5], np.s_[-2:, ::-500], np.s_[7, -3]]:
        _same(netspec.initialize_slice(net, "d.weights", index), whole[index])


def test_only_the_touched_blocks_are_drawn(monkeypatch):
    """A strided slice of a 4-block tensor draws exactly the blocks its elements fall in, each once."""
    net = spec(1024, 1024)  # 4 blocks
    drawn = []
    window = sources_module.TensorSource.window
    monkeypatch.setattr(sources_module.TensorSource, "window",
                        lambda self, first, last: drawn.append((first, last)) or window(self, first, last))
    whole = full(net, ((1024, 1024), "float32"))
    index = np.s_[700:5:-300, 7]  # rows 700, 400, 100: blocks 2, 1, 0
    _same(netspec.initialize_slice(net, "d.weights", index), whole[index])
    assert sorted(drawn) == [(0, 1), (1, 2), (2, 3)]
    drawn.clear()
    netspec.initialize_slice(net, "d.weights", np.s_[300:301])  # one row inside block 1
    assert drawn == [(1, 2)]


def test_shard_splits_as_torch_chunk():
    for size, world in [(10, 3), (10, 4), (2, 4), (7, 1), (0, 2)]:
        parts = [shard_range(size, r, world) for r in range(world)]
        assert sum(len(p) for p in parts) == size and all(p.step == 1 for p in parts)
        torch = pytest.importorskip("torch")
        chunks = torch.chunk(torch.arange(size), world) if size else ()
        assert [list(p) for p in parts][: len(chunks)] == [c.tolist() for c in chunks]
    net = spec(600, 1311)
    whole = full(net, ((600, 1311), "float32"))
    for axis in (0, 1, -1):
        parts = [netspec.shard(net, "d.weights", r, 4, axis) for r in range(4)]
        _same(np.concatenate(parts, axis=axis), whole)


def test_refusals():
    with pytest.raises(InitializerError, match="rng: legacy"):
        netspec.initialize_slice(spec(5, 3, rng="legacy"), "d.weights", 0)
    net = spec(5, 3)
    with pytest.raises(KeyError, match=r"did you mean 'd\.weights'"):
        netspec.initialize_slice(net, "d.weight", 0)
    for bad, error in [((0, 0, 0), IndexError), (5, IndexError), ((Ellipsis, Ellipsis), IndexError),
                       (None, TypeError), (np.array([1, 2]), TypeError), (1.5, TypeError)]:  # fmt: skip
        with pytest.raises(error):
            netspec.initialize_slice(net, "d.weights", bad)


DTENSOR = """
import os, sys
import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.tensor import Shard, init_device_mesh
import torch.distributed.tensor as dt
import netspec
import netspec.torch

rank, world = int(sys.argv[1]), int(sys.argv[2])
dist.init_process_group("gloo", init_method=f"file://{sys.argv[3]}", rank=rank, world_size=world)
net = netspec.loads(open(sys.argv[4]).read())
mesh = init_device_mesh("cpu", (world,))
weight = dt.empty((1311, 600), device_mesh=mesh, placements=[Shard(0)], dtype=torch.bfloat16)  # nn.Linear's
netspec.torch.fill_(weight, net, "d.weights", perm=(1, 0))
bias = dt.empty((1311,), device_mesh=mesh, placements=[Shard(0)], dtype=torch.bfloat16)
netspec.torch.fill_(bias, net, "d.bias")
local_rows = weight.to_local().shape[0]
whole = weight.full_tensor()  # a collective: every rank gathers
fsdp = "skipped"
try:
    from torch.distributed.fsdp import fully_shard

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(600, 1311, dtype=torch.bfloat16)

        def reset_parameters(self):
            with torch.no_grad():
                netspec.torch.fill_(self.fc.weight, net, "d.weights", perm=(1, 0))
                netspec.torch.fill_(self.fc.bias, net, "d.bias")

    model = Model()
    fully_shard(model, mesh=mesh)
    model.reset_parameters()
    gathered = model.fc.weight.full_tensor()
    fsdp = "equal" if torch.equal(gathered.view(torch.int16), whole.view(torch.int16)) else "DIFFERENT"
except Exception as exc:  # FSDP2 on CPU depends on the build
    fsdp = f"skipped: {type(exc).__name__}: {exc}"[:200]
if rank == 0:
    np.save(sys.argv[5], whole.view(torch.int16).numpy())
    print(local_rows, fsdp, flush=True)
dist.barrier()  # no rank tears gloo down while the other still talks to it
dist.destroy_process_group()
os._exit(0)  # skip interpreter teardown: gloo's threads can abort it ("terminate called without an active exception")
"""


@pytest.mark.torch
def test_dtensor_recipe_fills_each_ranks_shard(tmp_path):
    """Two processes (gloo, CPU), a bfloat16 nn.Linear weight sharded by rows (DTensor Shard(0), and under
    FSDP2's fully_shard where this torch supports CPU): each rank fills its own shard, the gathered tensor is
    netspec's, transposed, bit for bit."""
    pytest.importorskip("torch.distributed.tensor")
    source = tmp_path / "s.yaml"
    source.write_text("netspec: 1\ninput: [600]\ndtype: bfloat16\nlayers:\n  - {type: dense, name: d, units: 1311, "
                      "weights: he_normal, bias: {name: uniform}}\n")  # fmt: skip
    script = tmp_path / "recipe.py"
    script.write_text(DTENSOR)
    args = [str(tmp_path / "rendezvous"), str(source), str(tmp_path / "whole.npy")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(script), str(r), "2", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for r in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    rows, fsdp = outs[0][0].split(maxsplit=1)
    assert rows == "656"  # ceil(1311 / 2): the first rank's shard
    assert fsdp.startswith(("equal", "skipped")), fsdp
    net = netspec.loads(source.read_text())
    expected = net.initialize()["d.weights"].T.view(np.int16)
    assert np.array_equal(np.load(tmp_path / "whole.npy"), expected)


JAX = """
import sys
import numpy as np
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import netspec

net = netspec.loads(open(sys.argv[1]).read())
shape = dict(net.parameters())["d.weights"].shape
mesh = Mesh(np.array(jax.devices()).reshape(2, 2), ("x", "y"))
asked = []

def callback(index):
    asked.append(index)
    return netspec.initialize_slice(net, "d.weights", index)

array = jax.make_array_from_callback(shape, NamedSharding(mesh, P("x", "y")), callback)
assert len(array.addressable_shards) == 4
np.save(sys.argv[2], np.asarray(array).view(np.uint16))
print(len(asked), sorted({(i[0].start, i[1].start) for i in asked}))
"""


def test_jax_make_array_from_callback_recipe(tmp_path):
    """Four CPU devices in a 2x2 mesh: each device's shard comes from its own initialize_slice call."""
    pytest.importorskip("jax")
    source = tmp_path / "s.yaml"
    source.write_text("netspec: 1\ninput: [600]\ndtype: bfloat16\nlayers:\n"
                      "  - {type: dense, name: d, units: 1312, weights: he_normal}\n")  # fmt: skip
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", JAX, str(source), str(tmp_path / "a.npy")], capture_output=True,
                         text=True, env=env, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    calls, starts = out.stdout.split(maxsplit=1)
    assert calls == "4" and starts.strip() == "[(0, 0), (0, 656), (300, 0), (300, 656)]"
    expected = netspec.loads(source.read_text()).initialize()["d.weights"].view(np.uint16)
    assert np.array_equal(np.load(tmp_path / "a.npy"), expected)


def test_a_slice_of_a_huge_tensor_costs_its_blocks():
    """A 70B-class embedding (128256 x 8192, 1 Gi values, 2 GiB in bfloat16) is never built: one row of it
    and a shard's first row come from a block or two."""
    net = netspec.loads("netspec: 1\ninput: [4]\ndtype: bfloat16\nlayers:\n"
                        "  - {type: embedding, name: tok, vocab: 128256, dim: 8192}\n", max_params=2**31)  # fmt: skip
    row = netspec.initialize_slice(net, "tok.weights", 100_000)
    assert row.shape == (8192,) and row.dtype.name == "bfloat16"
    again = netspec.initialize_slice(net, "tok.weights", np.s_[99_999:100_001])[1]
    _same(row, again)
    assert abs(float(np.asarray(row, np.float32).std()) - 1.0) < 0.05  # N(0, 1): 6.4 standard errors of 1/sqrt(2n)
    assert BLOCK % 8192 == 0
