"""float32 ``log`` and ``(cos, sin)`` built from IEEE basic operations only.

NumPy's float32 ``log``/``sin``/``cos`` are SIMD kernels chosen per CPU (on
this machine the results change when AVX2/FMA are disabled), so values made
with them are not the same bytes everywhere. These functions use only integer
bit operations, float32 ``+ - * /`` (each correctly rounded by IEEE 754, one
ufunc call each, so no fused multiply-add can creep in) and exact conversions:
the same inputs give the same bits on every IEEE machine and NumPy version.

* ``log(u)``: musl-style reduction ``u = 2^k m`` with m in [0.7, 1.4) by
  integer arithmetic on the bits, then ``ln m = 2 atanh(s)``, ``s = (m-1)/(m+1)``,
  ``|s| < 0.172``, by the series to ``s^9`` (truncation < 1e-9), plus ``k ln 2``.
  Absolute error < 1e-6 over (2^-33, 1].
* ``cos_sin(phi)`` for phi in [0, pi/4): Cephes' minimax polynomial for sin
  (relative error ~1e-7) and ``cos = sqrt(1 - sin^2)`` (cos >= 0.7 there).
* ``log64(u)``: the same reduction in float64 (m in [sqrt(1/2), sqrt 2), ``|s| < 0.1716``),
  the series to ``s^19`` (truncation < 1e-17) and ``k ln 2`` split in fdlibm's two
  parts; error within a few units in the last place. Stream version 2 uses it for
  the ziggurat's rare wedge and tail values (:mod:`netspec.init.ziggurat`).

Scratch arrays are per thread and reused (:func:`scratch`), so the hot loop
allocates nothing.
"""

from __future__ import annotations

import math
import threading

import numpy as np

F32 = np.float32
LN2 = F32(math.log(2.0))
LOG_OFFSET = np.int32(0x3F330000)  # bits of ~0.699: m = u / 2^k lands in [0.7, 1.4)
ATANH = (F32(2 / 9), F32(2 / 7), F32(2 / 5), F32(2 / 3), F32(2.0))
SIN = (F32(-1.9515295891e-4), F32(8.3321608736e-3), F32(-1.6666654611e-1))  # Cephes sinf, |x| <= pi/4

LOG64_OFFSET = np.int64(0x3FE6A09E667F3BCD)  # bits of sqrt(1/2): m = u / 2^k lands in [sqrt(1/2), sqrt 2)
LN2_HI = np.float64(6.93147180369123816490e-01)  # fdlibm: k * LN2_HI is exact for |k| < 2^20
LN2_LO = np.float64(1.90821492927058770002e-10)
ATANH64 = tuple(np.float64(2.0 / (2 * i + 1)) for i in range(9, -1, -1))  # 2/19, 2/17, ..., 2/3, 2

_local = threading.local()


def scratch(name: str, n: int, dtype: type = np.float32) -> np.ndarray:
    """A per-thread reusable buffer of ``n`` elements."""
    pool = _local.__dict__.setdefault("buffers", {})
    buf = pool.get(name)
    if buf is None or buf.size < n or buf.dtype != dtype:
        buf = pool[name] = np.empty(n, dtype)
    return buf[:n]


def horner(z: np.ndarray, coeffs: tuple[np.floating, ...], out: np.ndarray) -> np.ndarray:
    """out = (...((c0 z + c1) z + c2) ...) z + c_last, one IEEE operation per ufunc call."""
    np.multiply(z, coeffs[0], out=out)
    for c in coeffs[1:-1]:
        out += c
        out *= z
    out += coeffs[-1]
    return out


def log(u: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Natural log of positive, normal float32 values (see the module doc)."""
    n = u.size
    bits = u.view(np.int32)
    k = scratch("log.k", n, np.int32)
    np.subtract(bits, LOG_OFFSET, out=k)
    np.right_shift(k, 23, out=k)
    mbits = scratch("log.m", n, np.int32)
    np.left_shift(k, 23, out=mbits)
    np.subtract(bits, mbits, out=mbits)
    m = mbits.view(F32)
    s = scratch("log.s", n)
    den = scratch("log.den", n)
    np.add(m, F32(1), out=den)
    np.subtract(m, F32(1), out=s)
    np.divide(s, den, out=s)
    z = den
    np.multiply(s, s, out=z)
    horner(z, ATANH, out)
    out *= s
    np.copyto(den, k, casting="unsafe")
    den *= LN2
    out += den
    return out


def cos_sin(phi: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> None:
    """cos(phi) and sin(phi) for phi in [0, pi/4) (see the module doc).

    ``sin = phi + phi z (S1 + z (S2 + z S3))``, z = phi^2 (Cephes' sinf
    minimax coefficients, relative error ~1e-7); ``cos = sqrt(1 - sin^2)``,
    accurate here because cos >= 0.7 (no cancellation).
    """
    z = scratch("trig.z", phi.size)
    np.multiply(phi, phi, out=z)
    np.multiply(z, SIN[0], out=sin)
    for c in SIN[1:]:
        sin += c
        sin *= z
    sin *= phi
    sin += phi
    np.multiply(sin, sin, out=cos)
    np.subtract(F32(1), cos, out=cos)
    np.sqrt(cos, out=cos)


def log64(u: np.ndarray) -> np.ndarray:
    """Natural log of positive, normal float64 values (see the module doc): a new array.

    ``u = 2^k m``, ``ln m = 2 atanh(s) = s (2 + z (2/3 + z (2/5 + ... + z 2/19)))`` with
    ``s = (m - 1) / (m + 1)``, ``z = s^2``; ``ln u = k LN2_HI + (ln m + k LN2_LO)``.
    """
    bits = np.ascontiguousarray(u, dtype=np.float64).view(np.int64)
    k = np.subtract(bits, LOG64_OFFSET)
    np.right_shift(k, 52, out=k)
    m = np.subtract(bits, np.left_shift(k, 52)).view(np.float64)
    s = np.subtract(m, 1.0)
    s /= np.add(m, 1.0)
    out = horner(np.multiply(s, s), ATANH64, np.empty_like(s))
    out *= s
    kf = k.astype(np.float64)
    out += kf * LN2_LO
    out += kf * LN2_HI
    return out
