import math

import pytest
from hypothesis import given

from netspec.errors import InitializerError
from netspec.init.initializers import INITIALIZERS, get_initializer
from netspec.testing import initializer_configs


@given(initializer_configs())
def test_configs_round_trip(config):
    init = get_initializer(config)
    again = get_initializer(init.get_config())
    assert again == init
    assert again.get_config() == init.get_config()


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_every_initializer_states_its_formula_and_round_trips_with_defaults(name):
    cls = INITIALIZERS[name]
    doc = cls.__doc__ or ""
    assert not doc.startswith(cls.__name__ + "(")  # not dataclass's generated signature
    assert any(sign in doc for sign in ("=", "~", "U(", "N(")), doc
    init = get_initializer(name)
    assert type(init).from_config(init.get_config()) == init


def test_aliases_build_the_same_initializer():
    assert get_initializer("xavier_uniform") == get_initializer("glorot_uniform")
    assert get_initializer("kaiming_normal") == get_initializer("he_normal")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"name": "normal", "std": -1.0}, "std must be > 0, got -1.0"),
        ({"name": "uniform", "low": 1.0, "high": -1.0}, "low < high, got low=1.0, high=-1.0"),
        ({"name": "variance_scaling", "scale": 0.0}, "scale must be > 0, got 0.0"),
        ({"name": "variance_scaling", "mode": "fan_mean"}, "mode must be one of .*got 'fan_mean'"),
        ({"name": "variance_scaling", "distribution": "gaussian"}, "distribution must be one of"),
        ({"name": "torch_kaiming_normal", "nonlinearity": "swish"}, "no gain is defined for nonlinearity 'swish'"),
        ({"name": "torch_kaiming_uniform", "mode": "fan_avg"}, "mode must be one of fan_in, fan_out"),
        ({"name": "normal", "std": math.nan}, "std must be a finite number"),
        ({"name": "normal", "std": "big"}, "std must be a finite number, got 'big'"),
        ({"name": "he_normal", "truncated": "yes"}, "truncated must be true or false"),
        ({"name": "truncated_normal", "lower": 2.0, "upper": -2.0}, "a < b"),
        ({"name": "truncated_normal", "lower": 8.0, "upper": 30.0}, "too little probability"),
        ({"name": "caffe_xavier", "variance_norm": "avg"}, "variance_norm must be one of"),
        ({"name": "glorot_uniform", "gian": 2.0}, "no parameter 'gian' \\(did you mean 'gain'\\?\\)"),
        ({"name": "glorot_unifrom"}, "unknown initializer 'glorot_unifrom' \\(did you mean 'glorot_uniform'\\?\\)"),
        ({"std": 1.0}, "mapping with 'name'"),
    ],
)
def test_invalid_parameters_raise_one_clear_error(config, message):
    with pytest.raises(InitializerError, match=message):
        get_initializer(config)
