"""``netspec.flax``: the JAX/Flax export's public API (the ``flax`` extra; see :mod:`netspec.export.flax`).

>>> module = netspec.flax.to_module("specs/mnist-mlp.yaml")                  # doctest: +SKIP
>>> y = module.apply(netspec.flax.variables(net, params), x)                 # doctest: +SKIP
"""

from netspec.export.flax import read_file, read_variables, save, to_module, variables

__all__ = ["read_file", "read_variables", "save", "to_module", "variables"]
