"""Every layer type by name: the base layers and the families that register themselves.

Import :data:`LAYER_TYPES` from here (not from :mod:`netspec.nn.layers`): importing
this module loads every family module, whose classes add themselves with
:func:`~netspec.nn.layers.register_layer`. The dependency runs one way
(catalog -> families -> layers), so there is no import cycle.
"""

from __future__ import annotations

from netspec.nn import attention, convolution, recurrent, spatial  # noqa: F401  (they register their layer types)
from netspec.nn.layers import LAYER_TYPES

__all__ = ["LAYER_TYPES"]
