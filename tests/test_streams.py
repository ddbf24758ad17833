import hashlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netspec.init.initializers import get_initializer
from netspec.init.streams import BLOCK, BlockStream, LegacyStream, tensor_key

CONFIGS = ["glorot_uniform", "he_normal", {"name": "lecun_normal", "truncated": True}, "orthogonal"]


@pytest.mark.parametrize("config", CONFIGS, ids=str)
@given(seed=st.integers(0, 2**63), path=st.text(min_size=1, max_size=20))
def test_same_seed_and_path_give_the_same_bytes(config, seed, path):
    init = get_initializer(config)
    a = init((37, 29), BlockStream(seed, path))
    b = init((37, 29), BlockStream(seed, path))
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("config", CONFIGS, ids=str)
@given(seed=st.integers(0, 2**32), path=st.text(min_size=1, max_size=20))
def test_other_seed_or_path_gives_other_values(config, seed, path):
    init = get_initializer(config)
    a = init((37, 29), BlockStream(seed, path))
    assert not np.array_equal(a, init((37, 29), BlockStream(seed + 1, path)))
    assert not np.array_equal(a, init((37, 29), BlockStream(seed, path + "x")))


def test_key_is_a_stable_hash_of_seed_and_path():
    digest = hashlib.sha256(b"netspec/v1\x000\x00dense_1.weights").digest()
    expected = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 32, 4)]
    assert tensor_key(0, "dense_1.weights") == expected
    assert tensor_key(0, "dense_1.weights") != tensor_key(0, "dense_2.weights")


@pytest.mark.parametrize("config", ["glorot_uniform", "he_normal", {"name": "he_normal", "truncated": True}], ids=str)
@pytest.mark.parametrize("threads", [2, 8])
def test_bytes_do_not_depend_on_thread_count(config, threads):
    init = get_initializer(config)
    shape = (3 * BLOCK + 123,)
    serial = init(shape, BlockStream(7, "big.weights"), fans=None)
    with ThreadPoolExecutor(threads) as pool:
        parallel = init(shape, BlockStream(7, "big.weights", pool))
    assert serial.tobytes() == parallel.tobytes()


def test_a_prefix_of_a_larger_tensor_is_the_same_block_stream():
    # block i of a tensor depends on (key, i) only, not on the tensor's total size
    s = BlockStream(3, "p")
    small = s.uniform((BLOCK,), -1, 1, np.float32)
    large = s.uniform((2 * BLOCK,), -1, 1, np.float32)
    assert small.tobytes() == large[:BLOCK].tobytes()


def test_float32_is_generated_directly():
    values = BlockStream(1, "x").normal((1000,), 0.0, 1.0, np.float32)
    assert values.dtype == np.float32
    assert BlockStream(1, "x").normal((1000,), 0.0, 1.0, np.float64).dtype == np.float64


def test_legacy_mode_is_one_sequential_randomstate():
    stream = LegacyStream(0)
    a = stream.uniform((4, 5), -0.5, 0.5, np.float32)
    b = stream.normal((5, 3), 0.0, 2.0, np.float32)
    rs = np.random.RandomState(0)
    assert np.array_equal(a, rs.uniform(-0.5, 0.5, size=(4, 5)).astype(np.float32))
    assert np.array_equal(b, rs.normal(0.0, 2.0, size=(5, 3)).astype(np.float32))


def test_legacy_reproduces_seed_001_glorot_weights():
    # seed 001: RandomState(0), rnd.uniform(-sd, sd) element by element, C order, cast to float32
    stream = LegacyStream(0)
    init = get_initializer("glorot_uniform")
    ih = init((4, 5), stream)
    ho = init((5, 3), stream)
    rnd = np.random.RandomState(0)
    sd1, sd2 = np.sqrt(6.0 / 9), np.sqrt(6.0 / 8)
    expect_ih = np.array([[np.float32(rnd.uniform(-sd1, sd1)) for _ in range(5)] for _ in range(4)])
    expect_ho = np.array([[np.float32(rnd.uniform(-sd2, sd2)) for _ in range(3)] for _ in range(5)])
    assert np.array_equal(ih, expect_ih) and np.array_equal(ho, expect_ho)
    assert ih[0, 0] == pytest.approx(0.0797, abs=1e-4)


# ---------------------------------------------------------------- stream versions in specs

VERSIONED = """netspec: 1
input: [40]
{rng}layers:
  - {{type: dense, units: 30, weights: he_normal, bias: {{name: normal, std: 0.1}}}}
  - {{type: dense, units: 20, weights: {{name: lecun_normal, truncated: true}}}}
  - {{type: dense, units: 10, weights: glorot_uniform}}
"""


def _versioned(rng):
    import netspec

    return netspec.loads(VERSIONED.format(rng=f"rng: {rng}\n" if rng else ""), "versioned.yaml")


def test_rng_spellings_select_block_stream_versions():
    from netspec.init.streams import RNG_MODES, block_version
    from netspec.spec.schema import build_schema

    assert build_schema()["properties"]["rng"]["enum"] == list(RNG_MODES)
    assert [block_version(m) for m in RNG_MODES[:-1]] == [1, 1, 2]
    for bad in ("legacy", "block/3", "block/", "blocks"):
        with pytest.raises(Exception, match="names no block stream"):
            block_version(bad)


@pytest.mark.parametrize(("rng", "version"), [("", 1), ("block", 1), ("block/1", 1), ("block/2", 2)])
def test_a_spec_builds_with_its_stream_and_records_it(rng, version):
    from netspec.init.streams import BlockStream
    from netspec.io.weights import metadata_for

    net = _versioned(rng)
    params = net.initialize(threads=1)
    for path, p in net.parameters():
        assert params[path].tobytes() == p.draw(BlockStream(net.seed, path, version=version), net.dtype).tobytes()
    assert metadata_for(net)["netspec_stream"] == f"block/{version}"
    assert metadata_for(_versioned("legacy"))["netspec_stream"] == "legacy"


def test_stream_versions_change_only_normal_tensors():
    v1, v2 = _versioned("block/1").initialize(), _versioned("block/2").initialize()
    changed = sorted(name for name in v1 if v1[name].tobytes() != v2[name].tobytes())
    assert changed == ["dense_1.bias", "dense_1.weights", "dense_2.weights"]


def test_a_bad_rng_is_a_located_error():
    from netspec.errors import SpecError

    with pytest.raises(SpecError) as info:
        _versioned("block/3")
    text = str(info.value)
    assert "versioned.yaml:3:6" in text and "did you mean 'block/2'" in text


def test_verify_regenerates_with_the_stream_the_file_records(tmp_path):
    """A file built with stream 2 verifies (exact bytes) against the same spec with plain ``rng: block`` (so
    files keep verifying if the default changes); a spec pinning ``block/1`` is taken at its word and the file
    fails reproduction, saying why."""
    from netspec.check.verify import verify_spec
    from netspec.io import weights as weights_io

    old = _versioned("block/2")
    for suffix in (".npz", ".safetensors"):
        path = str(tmp_path / f"old{suffix}")
        weights_io.save(old.initialize(), path, weights_io.metadata_for(old))
        report = verify_spec(_versioned(""), path)
        assert report.passed and all(t.reproduces for t in report.tensors)
        assert report.stream == "block/2 (recorded in the file)"
        pinned = verify_spec(_versioned("block/1"), path)
        assert not pinned.passed
        failed = [t for t in pinned.tensors if t.reproduces is False]
        assert [t.name for t in failed] == ["dense_1.weights", "dense_1.bias", "dense_2.weights"]
        assert "with stream block/1" in failed[0].problems[0] and "the file records block/2" in pinned.stream
    new = _versioned("")
    path = str(tmp_path / "new.npz")
    weights_io.save(new.initialize(), path, weights_io.metadata_for(new))
    assert verify_spec(new, path).stream == "block/1"
