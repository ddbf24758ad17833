"""Custom initializers and activations registered from trusted Python code."""

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

import netspec
from netspec.errors import InitializerError, SpecError
from netspec.init.distributions import Normal
from netspec.init.initializers import INITIALIZERS, Initializer
from netspec.nn.activations import Activation
from netspec.plugins import register_activation, register_initializer
from netspec.spec.schema import build_schema
from netspec.testing import check_initializer


@register_initializer
@dataclass(frozen=True)
class ScaledFanIn(Initializer):
    """w ~ N(0, sqrt(k / fan_in)) (a custom initializer registered from test code)."""

    k: float = 1.5
    name = "test_scaled_fan_in"

    def distribution(self, shape, fans):
        return Normal(0.0, math.sqrt(self.k / fans.fan_in))


@register_activation
@dataclass(frozen=True)
class Cube(Activation):
    """f(x) = x^3."""

    name = "test_cube"

    def __call__(self, x):
        return x**3


SPEC = """netspec: 1
input: [16]
layers:
  - {type: dense, units: 4, weights: {name: test_scaled_fan_in, k: 2.0}, activation: test_cube}
"""


def test_registered_names_validate_build_and_run():
    net = netspec.loads(SPEC, "custom.yaml")
    params = net.initialize()
    x = np.ones((1, 16), np.float32)
    assert np.allclose(net.forward(x, params), (x @ params["dense_1.weights"]) ** 3)


def test_registered_names_appear_in_the_schema():
    defs = build_schema()["$defs"]
    assert "test_scaled_fan_in" in defs["initializer"]["then"]["enum"]
    assert "test_cube" in defs["activation"]["then"]["enum"]
    (branch,) = [b for b in defs["initializer"]["else"]["allOf"] if "test_scaled_fan_in" in json.dumps(b["if"])]
    assert "k" in branch["then"]["properties"]


def test_registered_parameters_are_checked():
    with pytest.raises(SpecError, match="unknown key 'kk'"):
        netspec.loads(SPEC.replace("k: 2.0", "kk: 2.0"), "custom.yaml")


def test_custom_initializer_passes_the_property_battery():
    check_initializer(ScaledFanIn(2.0), max_examples=5)


def test_specs_cannot_import_code():
    with pytest.raises(SpecError, match=r"unknown initializer 'os\.system'"):
        netspec.loads(SPEC.replace("test_scaled_fan_in", "os.system"), "evil.yaml")


def test_registration_refuses_non_initializers_and_clashes():
    with pytest.raises(InitializerError):
        register_initializer(int)

    @dataclass(frozen=True)
    class Clash(Initializer):
        """w = clash."""

        name = "glorot_uniform"

    with pytest.raises(InitializerError, match="already registered"):
        register_initializer(Clash)
    assert INITIALIZERS["glorot_uniform"].__name__ == "GlorotUniform"


PLUGIN = '''
import math
from dataclasses import dataclass

from netspec.init.distributions import Uniform
from netspec.init.initializers import Initializer


@dataclass(frozen=True)
class HalfLecun(Initializer):
    """w ~ U(±sqrt(1.5 / fan_in))."""

    name = "plugin_half_lecun"

    def distribution(self, shape, fans):
        limit = math.sqrt(1.5 / fans.fan_in)
        return Uniform(-limit, limit)
'''


def test_entry_point_plugins_are_loaded_by_the_cli(tmp_path):
    (tmp_path / "netspec_demo_plugin.py").write_text(PLUGIN)
    info = tmp_path / "netspec_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: netspec-demo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[netspec.initializers]\nhalf_lecun = netspec_demo_plugin:HalfLecun\n")
    spec = tmp_path / "uses-plugin.yaml"
    spec.write_text("netspec: 1\ninput: [64]\nlayers:\n  - {type: dense, units: 8, weights: plugin_half_lecun}\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "netspec.cli", *args], capture_output=True, text=True, env=env)

    assert "plugin_half_lecun" in cli("schema").stdout
    r = cli("verify", str(spec))
    assert r.returncode == 0, r.stderr
    assert "U(±0.1531)" in r.stdout  # sqrt(1.5 / 64)
