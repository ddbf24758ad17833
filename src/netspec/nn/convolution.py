"""Layer types of the convolution family (registered into :data:`netspec.nn.layers.LAYER_TYPES`)."""

from __future__ import annotations
