"""Test kit: Hypothesis strategies and property checks for initializers and specs.

Needs the ``test`` extra (Hypothesis; SciPy for the goodness-of-fit check).

>>> from netspec.testing import check_initializer
>>> check_initializer(MyInit())          # doctest: +SKIP

* :func:`assert_follows` — values vs. a declared distribution (bounds exact,
  mean and variance z-tests, KS fit when SciPy is present);
* :func:`check_initializer` — a property battery over arbitrary fans:
  declared bounds/moments hold, same seed gives the same bytes, different
  seeds and paths give different values, the config round-trips;
* strategies: :func:`fans`, :func:`dense_shapes`, :func:`conv_shapes`,
  :func:`initializer_configs`, :func:`specs`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netspec.check.checks import Z_CRIT, check_values
from netspec.init.distributions import Distribution, Structured
from netspec.init.fans import Fans
from netspec.init.initializers import INITIALIZERS, Initializer
from netspec.init.streams import BlockStream

__all__ = [
    "FIT_ALPHA",
    "SAMPLE",
    "NotFollowing",
    "assert_follows",
    "check_initializer",
    "conv_shapes",
    "dense_shapes",
    "fans",
    "initializer_configs",
    "sample_values",
    "specs",
    "structured_checks",
]

FIT_ALPHA = 1e-6
"""Per-check false-alarm probability of the KS fit check in the kit."""

SAMPLE = 20_000
"""Values drawn per statistical property check (see :func:`sample_values`)."""


class NotFollowing(AssertionError):
    """Values do not follow their declared distribution."""


def fans(max_fan: int = 4096) -> st.SearchStrategy[Fans]:
    """Arbitrary fan-in / fan-out pairs in 1..max_fan."""
    side = st.integers(1, max_fan)
    return st.builds(Fans, side, side)


def dense_shapes(max_fan: int = 4096, max_size: int = 1 << 16) -> st.SearchStrategy[tuple[int, int]]:
    """(fan_in, fan_out) dense kernel shapes with at most ``max_size`` entries."""
    return st.integers(1, max_fan).flatmap(
        lambda fi: st.tuples(st.just(fi), st.integers(1, max(1, min(max_fan, max_size // fi))))
    )


def conv_shapes(max_spatial: int = 3, max_size: int = 1 << 16) -> st.SearchStrategy[tuple[int, ...]]:
    """(*kernel, in, out) conv kernel shapes with 1..max_spatial spatial dims."""

    def build(rank: int) -> st.SearchStrategy[tuple[int, ...]]:
        dims = st.tuples(*[st.integers(1, 7) for _ in range(rank)], st.integers(1, 64), st.integers(1, 64))
        return dims.filter(lambda s: math.prod(s) <= max_size)

    return st.integers(1, max_spatial).flatmap(build)


def initializer_configs(names: list[str] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Configs of registered random initializers, with valid parameters."""
    choices = names or [n for n in INITIALIZERS if n not in STRUCTURED]
    return st.sampled_from(sorted(choices)).flatmap(_config_for)


STRUCTURED = ("orthogonal", "identity", "dirac")


def _config_for(name: str) -> st.SearchStrategy[dict[str, Any]]:
    positive = st.floats(0.1, 4.0)
    extra: dict[str, st.SearchStrategy[Any]] = {
        "constant": st.fixed_dictionaries({"value": st.floats(-3, 3)}),
        "uniform": st.floats(-2, 2).flatmap(
            lambda lo: st.fixed_dictionaries({"low": st.just(lo), "high": st.floats(lo + 0.01, lo + 4)})
        ),
        "normal": st.fixed_dictionaries({"mean": st.floats(-2, 2), "std": positive}),
        "truncated_normal": st.fixed_dictionaries(
            {"std": positive, "lower": st.floats(-3, -0.5), "upper": st.floats(0.5, 3)}
        ),
        "truncated_normal_abs": st.fixed_dictionaries({"std": positive}),
        "variance_scaling": st.fixed_dictionaries(
            {
                "scale": positive,
                "mode": st.sampled_from(["fan_in", "fan_out", "fan_avg", "fan_geo_avg"]),
                "distribution": st.sampled_from(["uniform", "normal", "truncated_normal"]),
            }
        ),
        "glorot_uniform": st.fixed_dictionaries({"gain": positive}),
        "glorot_normal": st.fixed_dictionaries({"gain": positive, "truncated": st.booleans()}),
        "he_normal": st.fixed_dictionaries({"truncated": st.booleans()}),
        "lecun_normal": st.fixed_dictionaries({"truncated": st.booleans()}),
        "caffe_xavier": st.fixed_dictionaries({"variance_norm": st.sampled_from(["fan_in", "fan_out", "average"])}),
        "caffe_msra": st.fixed_dictionaries({"variance_norm": st.sampled_from(["fan_in", "fan_out", "average"])}),
        "torch_kaiming_uniform": _torch_kaiming(),
        "torch_kaiming_normal": _torch_kaiming(),
    }
    params = extra.get(name, st.just({}))
    return params.map(lambda p: {"name": name, **p})


def _torch_kaiming() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "a": st.floats(0, 1),
            "mode": st.sampled_from(["fan_in", "fan_out"]),
            "nonlinearity": st.sampled_from(["leaky_relu", "relu", "tanh", "linear", "sigmoid", "selu"]),
        }
    )


def sample_values(
    init: Initializer,
    fans_: Fans,
    n: int = SAMPLE,
    seed: int = 0,
    dtype: Any = np.float32,
) -> np.ndarray:
    """``n`` values drawn with the given fans (the distribution depends on fans only)."""
    return init((n,), BlockStream(seed, "testing.values"), dtype, fans=fans_)


def assert_follows(
    values: np.ndarray,
    expected: Initializer | Distribution,
    shape: tuple[int, ...] | None = None,
    fans: Fans | None = None,
    z_crit: float = Z_CRIT,
    fit_alpha: float | None = FIT_ALPHA,
) -> None:
    """Raise :class:`NotFollowing` unless ``values`` pass every check against ``expected``.

    ``expected`` is a declared distribution, or an initializer whose
    declaration for ``shape`` (default ``values.shape``) and ``fans`` is used.
    """
    dist = expected
    if isinstance(expected, Initializer):
        dist = expected.declared(shape or values.shape, fans)
    if fit_alpha is not None:
        try:
            import scipy  # noqa: F401
        except ImportError:
            fit_alpha = None
    failed = [r for r in check_values(values, dist, z_crit, fit_alpha) if r.ok is False]  # type: ignore[arg-type]
    if failed:
        details = "; ".join(f"{r.name}: {r.detail}" for r in failed)
        raise NotFollowing(f"values do not follow {dist.describe()}: {details}")  # type: ignore[union-attr]


def check_initializer(init: Initializer, max_examples: int = 25, max_fan: int = 4096) -> None:
    """Property battery for any initializer, built-in or custom (raises on failure).

    Over arbitrary fans in 1..max_fan: values follow the declared
    distribution; the same seed and path give the same bytes; another seed or
    another path gives different values; ``from_config(get_config())``
    rebuilds an equal initializer.
    """
    rebuilt = type(init).from_config(init.get_config())
    if rebuilt != init:
        raise NotFollowing(f"config does not round-trip: {init.get_config()} -> {rebuilt!r}")

    @settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(fans(max_fan), st.integers(0, 2**32 - 1))
    def battery(f: Fans, seed: int) -> None:
        if isinstance(init.declared((f.fan_in, f.fan_out)), Structured):
            structured_checks(init, (min(f.fan_in, 256), min(f.fan_out, 256)), seed)
            return
        values = sample_values(init, f, SAMPLE, seed)
        dist = init.declared((SAMPLE,), f)
        if dist.is_random:
            assert_follows(values, dist)
            other = sample_values(init, f, SAMPLE, seed + 1)
            if np.array_equal(values, other):
                raise NotFollowing("another seed gave identical values")
        again = sample_values(init, f, SAMPLE, seed)
        if values.tobytes() != again.tobytes():
            raise NotFollowing("the same seed gave different bytes")

    battery()


def structured_checks(init: Initializer, shape: tuple[int, int], seed: int) -> None:
    """Exact checks of a structured initializer on a real shape, plus reproducibility."""
    values = init(shape, BlockStream(seed, "testing.values"))
    assert_follows(values, init, shape)
    if values.tobytes() != init(shape, BlockStream(seed, "testing.values")).tobytes():
        raise NotFollowing("the same seed gave different bytes")


def _dense_layer(activations: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"type": st.just("dense"), "units": st.integers(1, 64)},
        optional={
            "activation": st.sampled_from(activations),
            "weights": st.one_of(st.just("auto"), initializer_configs()),
            "bias": st.sampled_from(["zeros", "ones", {"name": "constant", "value": 0.1}]),
            "use_bias": st.booleans(),
        },
    )


def specs(max_layers: int = 5) -> st.SearchStrategy[dict[str, Any]]:
    """Whole valid spec documents: dense stacks over a vector, conv stacks over an image, or
    embedding -> conv1d -> pooling/normalization -> dense over token ids."""
    from netspec.nn.activations import ACTIVATIONS

    acts = sorted(ACTIVATIONS.names())
    mlp = st.fixed_dictionaries(
        {
            "netspec": st.just(1),
            "input": st.lists(st.integers(1, 32), min_size=1, max_size=1),
            "layers": st.lists(_dense_layer(acts), min_size=1, max_size=max_layers),
        },
        optional={
            "seed": st.integers(0, 2**63 - 1),
            "rng": st.sampled_from(["block", "legacy"]),
            "dtype": st.sampled_from(["float32", "float64"]),
            "name": st.just("generated"),
        },
    )
    conv_layer = st.fixed_dictionaries(
        {"type": st.just("conv2d"), "filters": st.integers(1, 8), "kernel": st.integers(1, 3)},
        optional={
            "stride": st.integers(1, 2),
            "padding": st.just("same"),
            "activation": st.sampled_from(acts),
            "weights": st.one_of(st.just("auto"), initializer_configs()),
        },
    )
    cnn = st.fixed_dictionaries(
        {
            "netspec": st.just(1),
            "input": st.tuples(st.integers(4, 12), st.integers(4, 12), st.integers(1, 3)).map(list),
            "layers": st.lists(conv_layer, min_size=1, max_size=3).map(
                lambda ls: [*ls, {"type": "flatten"}, {"type": "dense", "units": 3}]
            ),
        },
        optional={"seed": st.integers(0, 1000)},
    )
    seq = st.fixed_dictionaries(
        {
            "netspec": st.just(1),
            "input": st.integers(4, 32).map(lambda n: [n]),
            "layers": st.tuples(
                st.fixed_dictionaries({"type": st.just("embedding"), "vocab": st.integers(2, 500),
                                       "dim": st.integers(1, 16)}),
                st.fixed_dictionaries({"type": st.just("conv1d"), "filters": st.integers(1, 8),
                                       "kernel": st.integers(1, 3), "padding": st.just("same")},
                                      optional={"activation": st.sampled_from(acts)}),
                st.sampled_from([{"type": "max_pool1d", "pool": 2}, {"type": "avg_pool1d", "pool": 2},
                                 {"type": "layer_norm"}, {"type": "batch_norm"}]),
            ).map(lambda ls: [*ls, {"type": "flatten"}, {"type": "dropout", "rate": 0.1},
                              {"type": "dense", "units": 2, "activation": "softmax"}]),
        },
        optional={"seed": st.integers(0, 1000), "rng": st.sampled_from(["block", "legacy"])},
    )  # fmt: skip
    return st.one_of(mlp, cnn, seq)
