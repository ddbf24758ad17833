import math

import numpy as np
import pytest

from netspec.errors import InitializerError
from netspec.nn.activations import ACTIVATIONS, calculate_gain, get_activation

X = np.array([[-30.0, -2.0, -0.5, 0.0, 0.5, 2.0, 30.0]])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("linear", X),
        ("sigmoid", 1 / (1 + np.exp(-X))),
        ("tanh", np.tanh(X)),
        ("relu", np.maximum(X, 0)),
        ({"name": "leaky_relu", "alpha": 0.2}, np.where(X > 0, X, 0.2 * X)),
        ({"name": "elu", "alpha": 0.5}, np.where(X > 0, X, 0.5 * (np.exp(X) - 1))),
        ("softplus", np.log1p(np.exp(X))),
        ("softsign", X / (1 + np.abs(X))),
        ("silu", X / (1 + np.exp(-X))),
        ("gelu", 0.5 * X * (1 + np.vectorize(math.erf)(X / math.sqrt(2)))),
        (
            {"name": "gelu", "approximate": "tanh"},
            0.5 * X * (1 + np.tanh(math.sqrt(2 / math.pi) * (X + 0.044715 * X**3))),
        ),
        ("selu", 1.0507009873554805 * np.where(X > 0, X, 1.6732632423543772 * (np.exp(X) - 1))),
        ("relu6", np.clip(X, 0, 6)),
        ("hard_sigmoid", np.clip(X / 6 + 0.5, 0, 1)),  # Keras 3's form; Keras 2's 0.2 x + 0.5 differs at x = 2
        ("hard_swish", X * np.clip(X / 6 + 0.5, 0, 1)),
    ],
    ids=str,
)
def test_activation_values(name, expected):
    assert np.allclose(get_activation(name)(X), expected, rtol=1e-12, atol=1e-12)


def test_softmax_is_stable_and_normalised_on_the_last_axis():
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]])
    y = get_activation("softmax")(x)
    assert np.all(np.isfinite(y)) and np.allclose(y.sum(axis=-1), 1.0)
    assert np.allclose(y[0], np.exp([-2, -1, 0]) / np.exp([-2, -1, 0]).sum())
    log_y = get_activation("log_softmax")(x)
    assert np.allclose(log_y[0], np.log(y[0]), atol=1e-12)
    assert np.allclose(log_y[1], [-2000.0, -1000.0, 0.0])  # exact where softmax underflows to 0


@pytest.mark.parametrize(
    ("name", "gain"),
    [
        ("linear", 1.0),
        ("sigmoid", 1.0),
        ("tanh", 5 / 3),
        ("relu", math.sqrt(2)),
        ("leaky_relu", math.sqrt(2 / (1 + 0.01**2))),
        ({"name": "leaky_relu", "alpha": 0.2}, math.sqrt(2 / 1.04)),
        ("selu", 0.75),
    ],
    ids=str,
)
def test_gains_follow_pytorch(name, gain):
    assert get_activation(name).gain() == pytest.approx(gain, rel=1e-15)


@pytest.mark.parametrize("name", ["gelu", "elu", "softmax", "silu", "relu6", "hard_sigmoid", "hard_swish"])
def test_no_gain_where_pytorch_has_none(name):
    with pytest.raises(InitializerError, match="no gain is defined"):
        get_activation(name).gain()


@pytest.mark.parametrize(
    ("name", "recommended"),
    [
        ("linear", "glorot_uniform"),
        ("tanh", "glorot_uniform"),
        ("sigmoid", "glorot_uniform"),
        ("softmax", "glorot_uniform"),
        ("relu", "he_normal"),
        ("leaky_relu", "he_normal"),
        ("elu", "he_normal"),
        ("selu", "lecun_normal"),
        ("relu6", "he_normal"),
        ("hard_swish", "he_normal"),
        ("hard_sigmoid", "glorot_uniform"),
    ],
)
def test_recommended_initializer_follows_seed_004(name, recommended):
    assert get_activation(name).recommended == recommended


def test_unknown_activation_suggests_a_name():
    with pytest.raises(InitializerError, match="did you mean 'relu'"):
        get_activation("rleu")
    with pytest.raises(InitializerError, match="leaky_relu"):
        calculate_gain("leaky_relu", "x")


def test_every_activation_round_trips():
    for name in ACTIVATIONS:
        act = get_activation(name)
        assert get_activation(act.get_config()) == act


GRID = np.linspace(-8, 8, 161).astype(np.float32)  # steps of 0.1 through the kinks at -3, 0, 3 and 6 (and 6.0 itself)


@pytest.mark.parametrize(("name", "torch_name"), [("relu6", "relu6"), ("hard_sigmoid", "hardsigmoid"),
                                                   ("hard_swish", "hardswish")])  # fmt: skip
def test_hard_activations_match_pytorch(name, torch_name):
    torch = pytest.importorskip("torch")
    ours = get_activation(name)(GRID)
    theirs = getattr(torch.nn.functional, torch_name)(torch.from_numpy(GRID)).numpy()
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)


def test_hard_sigmoid_is_not_keras_2s():
    x = np.array([2.0, -2.0])
    assert get_activation("hard_sigmoid")(x) == pytest.approx([5 / 6, 1 / 6])  # Keras 2: 0.9, 0.1
