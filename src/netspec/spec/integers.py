"""The one boundary for integer-valued options: where the schema requires an integer, an int.

JSON Schema's ``integer`` accepts ``3.0`` (so does YAML's ``3.0``, and an expression may compute 64.0),
but the code past the compiler needs a Python ``int`` (``range``, shapes,
``torch.nn.LSTM(hidden_size=...)``): ``kernel: 3.0`` once reached ``tuple(3.0)`` (exit 70). Every value
goes through this module after schema validation and after expansion, when it is final (``repeat``
copies made, block parameters substituted, ``${...}`` expressions evaluated):

* the expanded options of every layer (:func:`layer_options`, called by the compiler for each), the
  initializers and activations in them included: the schema generated from their dataclass
  annotations says which parameters are integers, so a plugin's ``int`` parameter is treated as a
  built-in's;
* the top-level keys outside the layers (``seed``, ``input``, ``inputs``, ``defaults``, ...):
  :func:`document`.

Where the schema requires an integer is found by the schema itself, read with ``integer`` meaning a
Python int (:func:`netspec.spec.validation.integer_paths`), so ``oneOf``/``anyOf`` branches and
``if``/``then`` on a layer's type or an initializer's name select exactly as validation does. The rule
for one value is :func:`netspec.spec.arithmetic.integral` (an int, or a float with no fractional part,
never a bool), shared with repeat counts and ``integer`` block parameters in the expansion.

Schema validation has already refused what is not an integer there (``units: 2.5``), so an integral
float becoming the equal int is all that is left to do; nothing here changes a value that is not an
integral float.
"""

from __future__ import annotations

import math
from typing import Any

from netspec.spec.arithmetic import integral
from netspec.spec.loader import Document, Path

__all__ = ["document", "integral", "layer_options"]

OUTSIDE_LAYERS = ("layers", "blocks", "constants")
"""Top-level keys :func:`document` leaves alone: layers are normalized once expanded (block bodies in
each instance), and constants are numbers that expressions read as they are."""


def layer_options(options: dict[str, Any], path: Path) -> dict[str, Any]:
    """An expanded layer's options (written at ``path``) with every integral float the schema requires
    an integer as an int (a new mapping; ``options`` is not changed)."""
    return _normalized(options, path, "layer")


def document(doc: Document) -> None:
    """Normalize the integers of ``doc``'s top-level keys outside :data:`OUTSIDE_LAYERS`, in place."""
    if not isinstance(doc.data, dict):
        return
    rest = {k: v for k, v in doc.data.items() if k not in OUTSIDE_LAYERS}
    doc.data.update(_normalized(rest, (), None))


def _normalized(value: Any, base: Path, definition: str | None) -> Any:
    from netspec.spec.validation import integer_paths, set_at

    floats = dict(_integral_floats(value, base))
    if not floats:
        return value  # the common case: nothing to do, no schema walk
    out = _copy(value)
    for path in integer_paths(out, set(floats), definition, base):
        number = integral(floats[path])
        if number is not None:  # (beyond int64 only where the schema sets no bound: left as written)
            set_at(out, path[len(base) :], number)
    return out


def _integral_floats(node: Any, path: Path) -> list[tuple[Path, float]]:
    """Where ``node`` (standing at ``path``) holds a float with no fractional part."""
    if isinstance(node, dict):
        return [found for k, v in node.items() for found in _integral_floats(v, (*path, k))]
    if isinstance(node, list):
        return [found for i, v in enumerate(node) for found in _integral_floats(v, (*path, i))]
    return [(path, node)] if isinstance(node, float) and math.isfinite(node) and node.is_integer() else []


def _copy(node: Any) -> Any:
    """A copy of the containers (scalars are shared: they are immutable)."""
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node
