"""Layer types of the attention family (registered into :data:`netspec.nn.layers.LAYER_TYPES`)."""

from __future__ import annotations
