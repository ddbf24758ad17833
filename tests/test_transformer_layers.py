"""The layers of today's decoder transformers against PyTorch at float32 tolerance: RMSNorm (``nn.RMSNorm``),
grouped-query attention (``F.scaled_dot_product_attention(enable_gqa=True)``), rotary position embeddings
in both layouts (the formulas of Hugging Face's ``apply_rotary_pos_emb`` and of Meta's/GPT-J's interleaved
complex rotation, written out here in torch), causal masks, and tied output embeddings.

Tolerance: float32 sums of at most a few dozen O(1) products and a softmax, each rounded at 2^-24
relative: rtol 1e-5, atol 2e-6 (as tests/test_attention.py). A wrong layout, head grouping or epsilon
placement changes outputs at O(1e-2) or more."""

import numpy as np
import pytest

import netspec

RTOL, ATOL = 1e-5, 2e-6


def _net(text: str, source: str = "llm.yaml"):
    return netspec.loads("netspec: 1\nseed: 3\n" + text, source)


def _t(a):
    import torch

    return torch.from_numpy(np.ascontiguousarray(a))


@pytest.mark.parametrize("epsilon", [None, 1e-5, 1e-2])
def test_rms_norm_matches_torch_rmsnorm(epsilon):
    torch = pytest.importorskip("torch")
    key = "" if epsilon is None else f", epsilon: {epsilon}"
    net = _net(f"input: [5, 16]\nlayers:\n  - {{type: rms_norm, name: norm{key}}}\n")
    rng = np.random.default_rng(1)
    gamma = rng.uniform(0.5, 1.5, 16).astype(np.float32)  # not ones: the scale must be applied per feature
    x = (rng.standard_normal((3, 5, 16)) * np.array([1e-3, 1e-2, 1.0])[:, None, None]).astype(np.float32)
    m = torch.nn.RMSNorm(16, eps=1e-6 if epsilon is None else epsilon)  # netspec's default epsilon is 1e-6
    m.load_state_dict({"weight": _t(gamma)})
    with torch.no_grad():
        theirs = m(_t(x)).numpy()
    np.testing.assert_allclose(net.forward(x, {"norm.gamma": gamma}), theirs, rtol=RTOL, atol=ATOL)
    assert net.initialize()["norm.gamma"].tolist() == [1.0] * 16 and [p.name for p in net.layers[0].params] == [
        "gamma"]
