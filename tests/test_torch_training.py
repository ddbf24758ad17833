"""The exported PyTorch module trains: in ``train()`` mode batch norm normalizes with the batch's statistics
and updates its running ones with PyTorch's momentum, dropout drops with torch's generator; ``eval()``
computes netspec's forward pass.

The reference is a hand-written PyTorch model of the same architecture (channels first, ``nn.Conv2d``,
``nn.BatchNorm2d``, ``nn.BatchNorm1d``, ``nn.Dropout``) holding the same weights (``load_into``). Both are
trained with the same optimizer on the same batches, the generator reseeded before each step so both
dropout layers draw the same mask (they draw the same number of values in the same order: the dropout
layers sit on 2-D (batch, features) tensors of the same layout). Compared after every step: loss,
outputs, every parameter and running statistic.

Tolerance: the two models sum convolutions in different orders (the exported module convolves a
channels-last tensor moved to channels first), a few float32 ulps per product; over five SGD steps at
learning rate 0.1 these stay near 1e-6 relative. rtol = atol = 1e-4 leaves room for that and is far below
what a missing batch-statistics step (running statistics unchanged: differences of O(0.1)), a momentum
of 0.01 instead of 0.1, or dropout as the identity (half the features doubled or zeroed) produce.
"""

import numpy as np
import pytest

import netspec

torch = pytest.importorskip("torch")
from netspec.torch import load_into, to_module  # noqa: E402

SPEC = """\
netspec: 1
name: trains
seed: 7
input: [8, 8, 3]
layers:
  - {type: conv2d, name: conv, filters: 6, kernel: 3, use_bias: false, weights: he_normal}
  - {type: batch_norm, name: bn}
  - {type: activation, name: relu, activation: relu}
  - {type: max_pool2d, name: pool, pool: 2}
  - {type: flatten, name: flat}
  - {type: dense, name: fc1, units: 16, weights: he_normal}
  - {type: batch_norm, name: bn1, momentum: 0.2}
  - {type: activation, name: relu1, activation: relu}
  - {type: dropout, name: drop, rate: 0.5}
  - {type: dense, name: fc2, units: 4, activation: log_softmax}
"""
RTOL = ATOL = 1e-4


class HandWritten(torch.nn.Module):
    """The spec written by hand in PyTorch, channels first."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, bias=False)
        self.bn = torch.nn.BatchNorm2d(6)  # eps 1e-5, momentum 0.1: netspec's defaults
        self.fc1 = torch.nn.Linear(6 * 3 * 3, 16)
        self.bn1 = torch.nn.BatchNorm1d(16, momentum=0.2)
        self.drop = torch.nn.Dropout(0.5)
        self.fc2 = torch.nn.Linear(16, 4)

    def forward(self, x):  # x channels last, as the exported module takes it
        x = torch.nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x.permute(0, 3, 1, 2)))), 2)
        x = x.permute(0, 2, 3, 1).flatten(1)  # netspec flattens channels last
        x = self.drop(torch.relu(self.bn1(self.fc1(x))))
        return torch.log_softmax(self.fc2(x), dim=-1)


def _models():
    net = netspec.loads(SPEC, "trains.yaml")
    params = net.initialize()
    exported = to_module(net, params)
    hand = HandWritten()
    load_into(hand, net, params)
    return net, params, exported, hand


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items() if "num_batches_tracked" not in k}


def test_training_steps_match_a_hand_written_model():
    _, _, exported, hand = _models()
    exported.train()
    hand.train()
    opts = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (exported, hand)]
    data = torch.Generator().manual_seed(0)
    moved = False
    for step in range(5):
        x = torch.randn(10, 8, 8, 3, generator=data)
        labels = torch.randint(0, 4, (10,), generator=data)
        outs = []
        for module, opt in zip((exported, hand), opts, strict=True):
            torch.manual_seed(100 + step)  # the same dropout mask in both
            opt.zero_grad()
            out = module(x)
            loss = torch.nn.functional.nll_loss(out, labels)
            loss.backward()
            opt.step()
            outs.append((out.detach(), loss.item()))
        (a, loss_a), (b, loss_b) = outs
        np.testing.assert_allclose(loss_a, loss_b, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=RTOL, atol=ATOL)
        ours, theirs = _state(exported), _state(hand)
        assert ours.keys() == theirs.keys()
        for k in ours:
            np.testing.assert_allclose(ours[k].numpy(), theirs[k].numpy(), rtol=RTOL, atol=ATOL, err_msg=k)
        moved = moved or not np.allclose(ours["bn.running_mean"].numpy(), 0.0)
    assert moved  # the running statistics were updated


def test_train_mode_uses_batch_statistics_and_dropout_eval_mode_is_netspecs_forward():
    net, params, exported, _ = _models()
    x = torch.randn(32, 8, 8, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        evaluated = exported.eval()(x)
        np.testing.assert_allclose(evaluated.numpy(), net.forward(x.numpy(), params), rtol=1e-5, atol=1e-5)
        before = exported.bn.running_mean.clone()
        trained = exported.train()(x)
    assert not torch.allclose(trained, evaluated, atol=1e-3)
    # one step of the running mean: (1 - 0.1) * 0 + 0.1 * (the batch mean of the conv's output per channel)
    conv_out = exported.conv(x)
    expected = 0.9 * before + 0.1 * conv_out.reshape(-1, 6).mean(dim=0)
    np.testing.assert_allclose(exported.bn.running_mean.numpy(), expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    # the unbiased batch variance goes into running_var (as nn.BatchNorm2d)
    var = conv_out.reshape(-1, 6).var(dim=0, unbiased=True)
    np.testing.assert_allclose(exported.bn.running_var.numpy(), (0.9 + 0.1 * var).detach().numpy(), rtol=1e-5)


def test_dropout_drops_at_its_rate_in_training_only():
    net = netspec.loads("netspec: 1\ninput: [10000]\nlayers:\n  - {type: dropout, rate: 0.3}\n", "d.yaml")
    module = to_module(net)
    x = torch.ones(4, 10000)
    assert torch.equal(module.eval()(x), x)
    torch.manual_seed(0)
    y = module.train()(x)
    kept = (y != 0).float().mean().item()
    # 40,000 Bernoulli(0.7) draws: std sqrt(0.7 * 0.3 / 40000) = 0.0023; 5 std = 0.0115
    assert abs(kept - 0.7) < 0.0115
    np.testing.assert_allclose(y[y != 0].numpy(), 1 / 0.7, rtol=1e-6)
