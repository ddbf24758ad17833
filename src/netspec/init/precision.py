"""Storage precisions: the type a spec's parameters are stored in (``dtype:``).

``float32`` and ``float64`` tensors are drawn in that type by the streams (:mod:`netspec.init.streams`).
``bfloat16`` and ``float16`` tensors are **the float32 tensor rounded to nearest, ties to even**, so their
bytes derive from the float32 contract and are the same on every machine:

* bfloat16 keeps float32's sign and exponent and the top 7 fraction bits: with ``u`` the float32 bit
  pattern, ``b = (u + 0x7FFF + ((u >> 16) & 1)) >> 16`` (:func:`round_bfloat16`);
* float16: exponent rebiased by 112 and the fraction rounded to 10 bits in the same integer way for
  normal results; below 2^-14 (float16's subnormals) ``rint(|x| * 2^24)``, an exact float32 product
  rounded to an integer, ties to even (:func:`round_float16`).

Both are integer operations and IEEE basic arithmetic in NumPy, written out here rather than taken from
a library's cast: NumPy has no bfloat16, and its float32 -> float16 cast is a scalar loop here (7.5 ns per
value against 1 ns for the integer path); the test-suite checks both against ``ml_dtypes``, NumPy's cast
and PyTorch's ``Tensor.to`` on every pair of upper half-words and the rounding edges.

bfloat16 arrays are NumPy arrays of ``ml_dtypes.bfloat16`` (the NumPy bfloat16 that JAX, TensorFlow and
ONNX use; the ``bfloat16`` extra, imported only when a bfloat16 tensor is made or read: without it,
such a tensor is an :class:`~netspec.errors.InitializerError` naming the extra, and float16 works). A value
that rounds past the type's largest finite value is refused (:class:`~netspec.errors.InitializerError`):
float16 holds no magnitude of 65520 or more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netspec.errors import InitializerError

if TYPE_CHECKING:
    import numpy as np

PRECISIONS = ("float32", "float64", "bfloat16", "float16")
"""Every ``dtype:`` a spec may name (the schema lists the same)."""
HALF = ("bfloat16", "float16")
"""The precisions rounded from the float32 stream."""
ITEMSIZE = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2}
UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53, "bfloat16": 2.0**-8, "float16": 2.0**-11}
"""Half the distance from 1 to the next value: the largest relative error of rounding to nearest."""


def stream_dtype(precision: str) -> str:
    """The type the streams draw in for ``precision``: float32 for the half types, else itself."""
    return "float32" if precision in HALF else precision


def numpy_dtype(precision: str) -> np.dtype:
    """The NumPy dtype of a precision name (bfloat16: ``ml_dtypes.bfloat16``)."""
    import numpy as np

    if precision == "bfloat16":
        return np.dtype(_ml_dtypes().bfloat16)
    if precision not in PRECISIONS:
        raise InitializerError(f"dtype must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return np.dtype(precision)


def _ml_dtypes():  # type: ignore[no-untyped-def]
    """The ``ml_dtypes`` module (the ``bfloat16`` extra).

    Raises:
        InitializerError: it is not installed (the install line of the extra; exit 1).
    """
    try:
        import ml_dtypes
    except ImportError:
        from netspec.extras import install_hint

        raise InitializerError(f"dtype bfloat16 needs ml_dtypes (NumPy's bfloat16 type): "
                               f"{install_hint('bfloat16')}") from None  # fmt: skip
    return ml_dtypes


def to_storage(values: np.ndarray, precision: str) -> np.ndarray:
    """``values`` (drawn in :func:`stream_dtype`) in ``precision``: the half types rounded to nearest even,
    the others unchanged (the same array)."""
    if precision == "bfloat16":
        return round_bfloat16(values)
    if precision == "float16":
        return round_float16(values)
    return values


def round_bfloat16(values: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16, to nearest, ties to even, by integer arithmetic on the bit patterns.

    Raises:
        InitializerError: a value rounds to infinity (3.3961e38 or more in magnitude).
    """
    import numpy as np

    bits = _float32_bits(values)
    t = np.right_shift(bits, 16)
    t &= 1
    t += 0x7FFF
    t += bits
    out = np.empty(values.shape, np.uint16)
    np.right_shift(t, 16, out=out, casting="unsafe")
    _finite(out, np.uint16(0x7F80), "bfloat16", "3.3961e38")
    return out.view(numpy_dtype("bfloat16"))


def round_float16(values: np.ndarray) -> np.ndarray:
    """float32 -> float16, to nearest, ties to even (IEEE 754's conversion, subnormals kept).

    Normal results: the exponent rebiased from 127 to 15 (``- 112 << 23``) and the fraction rounded from
    23 to 10 bits as in :func:`round_bfloat16`. Below 2^-14: ``rint(|x| * 2^24)`` in float32, whose product
    is exact and whose ``rint`` rounds to nearest even, is the subnormal's integer (1024 carries into the
    smallest normal, as it should).

    Raises:
        InitializerError: a value rounds to infinity (65520 or more in magnitude).
    """
    import numpy as np

    bits = _float32_bits(values)
    mag = bits & np.uint32(0x7FFFFFFF)
    normal = mag >= np.uint32(0x38800000)  # |x| >= 2^-14
    t = np.right_shift(mag, 13)
    t &= 1
    t += 0xFFF
    t += mag
    t -= np.uint32(0x38000000)  # wraps below 2^-14: those lanes take the subnormal path
    t >>= 13
    np.minimum(t, np.uint32(0x7C00), out=t)  # past the largest finite value: infinity (refused below)
    small = np.abs(values[~normal], dtype=np.float32) * np.float32(2.0**24)
    t[~normal] = np.rint(small).astype(np.uint32)
    t |= np.right_shift(bits, 16) & np.uint32(0x8000)
    out = t.astype(np.uint16)
    _finite(out, np.uint16(0x7C00), "float16", "65520")
    return out.view(np.float16)


def _float32_bits(values: np.ndarray) -> np.ndarray:
    import numpy as np

    if values.dtype != np.float32:
        raise InitializerError(f"half types round float32 values, got {values.dtype}")
    return np.ascontiguousarray(values).view(np.uint32)


def _finite(out: np.ndarray, exponent: np.unsignedinteger, name: str, limit: str) -> None:
    import numpy as np

    if out.size and np.any((out & exponent) == exponent):
        raise InitializerError(f"a value rounds past {name}'s largest finite value (magnitudes of {limit} or more); "
                               f"scale the initializer down or use float32")  # fmt: skip


def widen(values: np.ndarray) -> np.ndarray:
    """Half-type values as float32, exactly (every bfloat16 and float16 value is a float32 value);
    other arrays unchanged."""
    import numpy as np

    name = values.dtype.name
    if name == "bfloat16":
        out = np.left_shift(values.view(np.uint16).astype(np.uint32), 16)
        return out.view(np.float32)
    if name == "float16":
        return values.astype(np.float32)
    return values


def round_scalar(value: float, precision: str) -> float:
    """``value`` as the streams would store it: rounded to float32 (or float64), then to ``precision``."""
    import numpy as np

    drawn = np.array([value], np.dtype(stream_dtype(precision)))
    return float(widen(to_storage(drawn, precision))[0])


def representable(precision: str) -> np.ndarray:
    """Every finite value of a half type, ascending, as float64 (the atoms of a rounded law)."""
    import numpy as np

    words = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    if precision not in HALF:
        raise InitializerError(f"{precision} is not a half type")
    view = words.view(numpy_dtype(precision)) if precision == "bfloat16" else words.view(np.float16)
    values = widen(view)
    return np.unique(values[np.isfinite(values)].astype(np.float64))  # -0 and +0 are one atom


def byte_view(array: np.ndarray) -> memoryview:
    """The array's C-order bytes as a flat memoryview of bytes (no copy if it is contiguous), for hashing and
    writing: ``array.data`` of a bfloat16 array has a buffer format that ``hashlib`` and files refuse."""
    import numpy as np

    return np.ascontiguousarray(array).reshape(-1).view(np.uint8).data


def little_endian_bytes(array: np.ndarray) -> memoryview:
    """The array's C-order little-endian bytes, without a copy where they already are."""
    if array.dtype.name != "bfloat16":  # (ml_dtypes' bfloat16 is native and has no byte order to change)
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return byte_view(array)
