"""Reading a network input from the command line: comma-separated values or a ``.npy`` batch."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from netspec.errors import NetspecError
from netspec.nn.layers import Shape

if TYPE_CHECKING:
    import numpy as np

MAX_INPUT_BYTES = 1 << 30
"""A ``.npy`` input larger than this is refused before it is read."""


class InputError(NetspecError):
    """An input for a forward pass cannot be read or does not fit the network."""


def matches(sizes: tuple[int, ...], shape: Shape) -> bool:
    """Whether an array's ``sizes`` are a sample of ``shape`` (None matches any size)."""
    return len(sizes) == len(shape) and all(n is None or n == m for m, n in zip(sizes, shape, strict=True))


def read_inputs(texts: list[str], inputs: dict[str, Shape], dtype: str) -> dict[str, np.ndarray]:
    """Every network input from ``--input`` texts: one plain text for a one-input network, else
    ``NAME=TEXT`` once per input (each as :func:`read_input`).

    Raises:
        InputError: a missing, unknown or repeated name, or an input that cannot be read.
    """
    if len(inputs) == 1 and len(texts) == 1 and not _named(texts[0], inputs):
        name = next(iter(inputs))
        return {name: read_input(texts[0], inputs[name], dtype)}
    out: dict[str, np.ndarray] = {}
    for text in texts:
        name, sep, value = text.partition("=")
        if not sep or name not in inputs:
            raise InputError(f"--input {text!r}: expected NAME=VALUES with NAME one of {', '.join(inputs)}")
        if name in out:
            raise InputError(f"--input {name}= is given twice")
        out[name] = read_input(value, inputs[name], dtype)
    missing = [name for name in inputs if name not in out]
    if missing:
        raise InputError(f"missing --input for {', '.join(missing)} (give NAME=VALUES for each network input)")
    return out


def _named(text: str, inputs: dict[str, Shape]) -> bool:
    return text.partition("=")[0] in inputs and "=" in text


def read_input(text: str, shape: Shape, dtype: str) -> np.ndarray:
    """One sample from ``"1,2,-3.5"`` or a batch ``(n, *shape)`` (or one sample) from a ``.npy`` file.

    Args:
        text: comma-separated numbers, or the path of a ``.npy`` file.
        shape: the network's input shape without the batch axis (None: any size; comma-separated
            values fill one such axis).
        dtype: the network's dtype.

    Raises:
        InputError: the values cannot be read, or their shape fits neither ``shape`` nor a batch of it.
    """
    x = _read_npy(text) if text.endswith(".npy") else _parse_values(text, shape)
    if not matches(tuple(x.shape), shape) and not matches(tuple(x.shape[1:]), shape):
        wanted = "[" + ", ".join("any" if n is None else str(n) for n in shape) + "]"
        raise InputError(f"input shape {list(x.shape)} does not match the network's {wanted} (or a batch of it)")
    if x.dtype.kind not in "biuf":
        raise InputError(f"input has dtype {x.dtype}; expected numbers")
    return x.astype(dtype)


def _parse_values(text: str, shape: Shape) -> np.ndarray:
    import numpy as np

    try:
        x = np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise InputError(f"--input {text!r}: expected comma-separated numbers or a .npy file") from None
    if shape.count(None) > 1:
        raise InputError(f"--input: the network takes {list(shape)} with several sizes left open; give a .npy file")
    size = math.prod(n for n in shape if n is not None)
    if None in shape and x.size % size == 0 and x.size:  # the open axis takes what the values leave
        return x.reshape(tuple(x.size // size if n is None else n for n in shape))
    if x.size != size or None in shape:
        raise InputError(f"--input has {x.size} values; the network takes {list(shape)} "
                         f"({'a multiple of ' if None in shape else ''}{size})")  # fmt: skip
    return x.reshape(tuple(n for n in shape if n is not None))


def _read_npy(path: str) -> np.ndarray:
    import numpy as np

    from netspec.io.files import require_file

    require_file(path)
    if os.path.getsize(path) > MAX_INPUT_BYTES:
        raise InputError(f"{path}: larger than {MAX_INPUT_BYTES:,} bytes; not reading it")
    from netspec.io.files import open_regular

    try:
        with open_regular(path) as fh:
            return np.load(fh, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
