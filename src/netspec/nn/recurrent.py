"""Layer types of the recurrent family (registered into :data:`netspec.nn.layers.LAYER_TYPES`)."""

from __future__ import annotations
