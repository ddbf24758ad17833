"""Every layer type works everywhere: schema, shapes, init, NumPy forward, summary, explain and verify.

The table below must name every registered layer type: a new type without an entry fails here.
"""

import json

import numpy as np
import pytest

import netspec
from netspec.check.verify import verify_network
from netspec.nn.catalog import LAYER_TYPES
from netspec.nn.inputs import matches
from netspec.report.summary import as_json, explain

EXAMPLES = {
    "dense": ([6], "{type: dense, units: 3, activation: tanh}"),
    "conv1d": ([8, 2], "{type: conv1d, filters: 3, kernel: 3, padding: same}"),
    "conv2d": ([6, 6, 2], "{type: conv2d, filters: 3, kernel: 3, stride: 2}"),
    "conv3d": ([4, 5, 4, 2], "{type: conv3d, filters: 4, kernel: [2, 3, 1], groups: 2, padding: same}"),
    "conv_transpose1d": ([5, 2], "{type: conv_transpose1d, filters: 3, kernel: 3, stride: 2, output_padding: 1}"),
    "conv_transpose2d": ([3, 4, 2], "{type: conv_transpose2d, filters: 4, kernel: 3, stride: 2, padding: same}"),
    "max_pool1d": ([8, 2], "{type: max_pool1d, pool: 2}"),
    "max_pool2d": ([6, 6, 2], "{type: max_pool2d, pool: 2, padding: same}"),
    "avg_pool1d": ([8, 2], "{type: avg_pool1d, pool: 3, padding: same}"),
    "avg_pool2d": ([6, 6, 2], "{type: avg_pool2d, pool: 2}"),
    "flatten": ([3, 2], "{type: flatten}"),
    "dropout": ([4], "{type: dropout, rate: 0.5}"),
    "batch_norm": ([5, 3], "{type: batch_norm}"),
    "layer_norm": ([5, 3], "{type: layer_norm}"),
    "rms_norm": ([5, 3], "{type: rms_norm, epsilon: 1e-5}"),
    "embedding": ([7], "{type: embedding, vocab: 11, dim: 4}"),
    "activation": ([4], "{type: activation, activation: relu}"),
    "add": ([4], "{type: add, inputs: [input, input]}"),
    "subtract": ([4], "{type: subtract, inputs: [input, input]}"),
    "multiply": ([4], "{type: multiply, inputs: [input, input]}"),
    "concat": ([4], "{type: concat, inputs: [input, input]}"),
    # spatial layers without parameters (netspec.nn.spatial)
    "global_avg_pool": ([5, 4, 3], "{type: global_avg_pool}"),
    "global_max_pool": ([6, 3], "{type: global_max_pool}"),
    "zero_pad": ([5, 4, 3], "{type: zero_pad, padding: [1, [0, 2]]}"),
    "upsample": ([3, 2, 3], "{type: upsample, size: [2, 3]}"),
    "reshape": ([6, 4], "{type: reshape, shape: [-1, 3, 2]}"),
    "permute": ([5, 4, 3], "{type: permute, axes: [3, 1, 2]}"),
    # recurrent and attention families (netspec.nn.recurrent, netspec.nn.attention)
    "simple_rnn": ([5, 3], "{type: simple_rnn, units: 4, return_sequences: true}"),
    "gru": ([5, 3], "{type: gru, units: 4, bidirectional: true}"),
    "lstm": ([5, 3], "{type: lstm, units: 4, convention: flax}"),
    "multi_head_attention": ([5, 6], "{type: multi_head_attention, heads: 2, key_dim: 3, causal: true}"),
    "positional_embedding": ([5, 6], "{type: positional_embedding, length: 8}"),
}


VARIANTS = {
    # options that change the computation or the tensors, each through every target too
    "multi_head_attention:gqa_rotary": ([6, 8], "{type: multi_head_attention, heads: 4, key_dim: 4, kv_heads: 2, "
                                        "causal: true, rotary: {theta: 100}}"),
    "multi_head_attention:mqa_interleaved_partial": ([5, 8], "{type: multi_head_attention, heads: 2, key_dim: 8, "
                                                     "kv_heads: 1, value_dim: 3, use_bias: false, rotary: "
                                                     "{layout: interleaved, fraction: 0.5}}"),
    "multi_head_attention:bias_subset": ([5, 6], "{type: multi_head_attention, heads: 2, key_dim: 3, kv_heads: 1, "
                                         "use_bias: [query, key, value], bias: {name: normal, std: 0.5}}"),
    "embedding:padding_idx": ([5], "{type: embedding, vocab: 11, dim: 4, padding_idx: 3}"),
    "dense:tied": ([5], "{type: embedding, name: tok, vocab: 11, dim: 4}\n  - {type: dense, units: 11, tie: tok, "
                   "bias: {name: normal, std: 0.1}}"),
    "dense:tied_no_bias": ([5], "{type: embedding, name: tok, vocab: 11, dim: 4}\n  - {type: layer_norm}\n"
                           "  - {type: dense, units: 11, tie: tok, use_bias: false, activation: log_softmax}"),
    # sizes known only at run time (null): every layer that can take them, through every target
    "embedding:dynamic": ([None], "{type: embedding, vocab: 11, dim: 4}"),
    "dense:dynamic": ([None, 3], "{type: dense, units: 2, activation: hard_swish}"),
    "multi_head_attention:dynamic": ([None, 8], "{type: multi_head_attention, heads: 4, key_dim: 2, kv_heads: 2, "
                                     "causal: true, rotary: {layout: interleaved}}"),
    "positional_embedding:dynamic": ([None, 3], "{type: positional_embedding, length: 9}"),
    "rms_norm:dynamic": ([None, 3], "{type: rms_norm}"),
    "layer_norm:dynamic": ([None, 3], "{type: layer_norm}"),
    "gru:dynamic": ([None, 3], "{type: gru, units: 2, return_sequences: true, bidirectional: true}"),
    "lstm:dynamic": ([None, 3], "{type: lstm, units: 2}"),
    "conv1d:dynamic": ([None, 2], "{type: conv1d, filters: 3, kernel: 3, stride: 2, dilation: 2, padding: same}"),
    "conv2d:dynamic": ([None, None, 2], "{type: conv2d, filters: 3, kernel: [3, 2], stride: [2, 1]}"),
    "conv_transpose1d:dynamic": ([None, 2], "{type: conv_transpose1d, filters: 3, kernel: 4, stride: 2, "
                                 "padding: same}"),
    "conv_transpose2d:dynamic": ([None, 4, 2], "{type: conv_transpose2d, filters: 2, kernel: 2, stride: 3, "
                                 "padding: same}"),
    "max_pool1d:dynamic": ([None, 2], "{type: max_pool1d, pool: 2, padding: same}"),
    "avg_pool2d:dynamic": ([None, None, 2], "{type: avg_pool2d, pool: 3, stride: 2, padding: same}"),
    "global_avg_pool:dynamic": ([None, 3], "{type: global_avg_pool}"),
    "upsample:dynamic": ([None, None, 2], "{type: upsample, size: [2, 3]}"),
    "zero_pad:dynamic": ([None, 2], "{type: zero_pad, padding: [[1, 2]]}"),
    "permute:dynamic": ([None, 3], "{type: permute, axes: [2, 1]}"),
    "flatten:dynamic": ([None, 3], "{type: flatten}"),
    "concat:dynamic": ([None, 3], "{type: concat, inputs: [input, input], axis: 0}"),
    "multiply:dynamic": ([None, 3], "{type: multiply, inputs: [input, input]}"),
    "activation:dynamic": ([None], "{type: activation, activation: relu6}"),
}
"""More cases, ``<layer type>:<what>``: a layer line (later lines of the list may follow after a newline)."""

CASES = {**EXAMPLES, **VARIANTS}

INTEGER_INPUTS = {"embedding"}
"""Layer types whose example input is token ids (integers below 11)."""


def kind(case):
    """The layer type a case tests."""
    return case.split(":")[0]


LENGTH = 5
"""The size the tests give an axis the spec leaves open (null)."""


def sample(shape, length=LENGTH):
    """A sample's shape: ``shape`` with every open axis (None) given ``length``."""
    return tuple(length if n is None else n for n in shape)


def integer_input(case):
    return kind(case) in INTEGER_INPUTS or CASES[case][1].startswith("{type: embedding")


def test_every_layer_type_has_an_example():
    assert sorted(EXAMPLES) == sorted(LAYER_TYPES)
    assert all(kind(case) in LAYER_TYPES for case in VARIANTS)


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_type_works_everywhere(case):
    shape, layer = CASES[case]
    layer_type = kind(case)
    net = netspec.loads(f"netspec: 1\ninput: {json.dumps(shape)}\nlayers:\n  - {layer}\n", f"{layer_type}.yaml")
    params = net.initialize()
    x = np.random.default_rng(0).integers(0, 11, (2, *sample(shape))) if integer_input(case) else (
        np.random.default_rng(0).standard_normal((2, *sample(shape))).astype(np.float32))  # fmt: skip
    y = net.forward(x, params)
    assert y.shape[0] == 2 and matches(y.shape[1:], net.output_shape) and np.all(np.isfinite(y))
    summary = as_json(net)
    assert summary["layers"][-1]["type"] == layer_type and layer_type in net.summary()
    assert len(explain(net)) == len(params)
    report = verify_network(net, params, alpha=1e-3, reproduce=True)
    assert report.passed and len(report.tensors) == len(params)
