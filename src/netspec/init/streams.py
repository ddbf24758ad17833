"""Random streams: where every parameter's random bits come from.

Two modes.

``block`` (default, stream version 1; ``block/1``, ``block/2`` pin a version, see below)
    Each parameter tensor has its own key, ``SHA-256("netspec/v1" | seed | path)``
    (``path`` is ``layer.param``), so adding or renaming a layer leaves every other
    tensor unchanged. The flattened tensor (C order) is cut into blocks of
    :data:`BLOCK` elements; block ``i`` is filled from
    ``PCG64(SeedSequence(key, spawn_key=(i,)))``. Blocks are independent, so they
    can be filled on any number of threads with identical bytes. Within a
    block, tiles of :data:`TILE` elements are filled in order from the block's
    bit generator.

    Values are made from the raw 64-bit PCG64 output by netspec's own
    transforms (NumPy's ``Generator`` distributions carry no cross-version
    guarantee; BitGenerator raw streams do). The transforms are versioned
    (:data:`STREAM_VERSION`): ``rng: block`` uses :data:`DEFAULT_VERSION` (1),
    ``rng: block/N`` version N; files record the version used.

    * uniform (every version): each 32-bit word ``k`` gives an odd integer
      ``(int32(k) >> 7) | 1`` in (-2^24, 2^24), exact in float32, times
      ``half_width / 2^24``, plus the midpoint, clipped to the float32 bounds so
      the support holds exactly (:func:`fill_symmetric_unit`).
    * normal, version 2: the ziggurat of :mod:`netspec.init.ziggurat`, value p of a
      block from 32-bit word p of the block's stream (64-bit word p for float64);
      the 1.5 % rejected values are resolved from the block's second stream
      ``PCG64(SeedSequence(key, spawn_key=(i, 1)))`` (:class:`BlockBits`). Tiles do
      not matter. The largest |z| is unbounded (the tail is exact).
    * normal, version 1: Box-Muller, ``r = sqrt(-2 ln((k1 + 1/2) / 2^32))`` and a point on
      the unit circle from ``k2``; the first half of each tile gets the x values,
      the second the y values (:func:`fill_standard_normal`). The largest |z| is
      about 6.8 (float32) — a 1e-11 tail.
    * truncated normal in [a, b] (std units): draw, then redraw the rejected
      values in order from the same block stream until none is left (normal
      proposals, or uniform proposals with acceptance phi(x)/max phi when the
      interval holds little mass). Version 2 draws the normal proposals of a
      whole block with the ziggurat (:func:`fill_truncated_standard_v2`).

    The hot loops (PCG64's words and the uniform, Box-Muller and ziggurat fast-path transforms) also
    exist in C (:mod:`netspec.init.kernels`), with the same bytes: :func:`symmetric_unit` and
    :func:`box_muller` take the kernel module to use (``native``), or None for NumPy.

    float32 values of every family use only integer operations and IEEE basic
    arithmetic (``log``, ``sin`` and ``cos`` come from
    :mod:`netspec.init.portable_math`, not NumPy's CPU-dispatched SIMD kernels), so
    the bytes are the same on every machine and NumPy version. Version 2's float64
    values do too (:func:`netspec.init.portable_math.log64`); version 1's float64
    normal values use NumPy's float64 ``log``/``cos``/``sin``. Orthogonal matrices
    depend on LAPACK's QR.

``legacy``
    One ``np.random.RandomState(seed)`` for the whole network, consumed layer
    by layer, weights then bias, C order, float64 draws cast to the dtype
    (``uniform(low, high, size)``, ``normal(loc, std, size)``). This
    reproduces textbook NumPy demos such as the 4-5-3 network of James McCaffrey's
    "How to Do Neural Network Glorot Initialization Using Python".
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Protocol

import numpy as np

from netspec.errors import InitializerError
from netspec.init import kernels, portable_math, ziggurat
from netspec.init.blocks import BLOCK, Blocks, window_span
from netspec.init.distributions import (
    MIN_ACCEPTANCE,
    check_dtype,
    check_truncation,
    truncated_moments,
    truncation_acceptance,
)
from netspec.init.portable_math import scratch

STREAM_VERSION = 2
"""The newest version of the ``block`` streams' transforms (raw bits -> values). A version changes only
when a transform changes the bytes it produces; every version stays available as ``rng: block/N``, and
lock files and weight files record the one used."""

DEFAULT_VERSION = 1
"""The version ``rng: block`` (and a spec without ``rng``) selects. Still 1: changing it would change
existing specs' bytes, and version 2's ziggurat is not faster than version 1's Box-Muller, in NumPy or
with the compiled kernels, on the machines measured (README, Performance); it is opt-in (``rng: block/2``)."""

STREAM_VERSIONS = (1, 2)
RNG_MODES = ("block", *(f"block/{v}" for v in STREAM_VERSIONS), "legacy")
"""The spellings of a spec's ``rng`` (the schema lists the same)."""

GROUP = 16
"""At most this many blocks of a version-2 normal tensor are filled by one task (their rejected values
are resolved together; the bytes do not depend on it)."""


TILE = 131072
"""Elements per tile: a block is filled tile after tile from its one bit generator, so the
transforms work in cache (part of the byte contract)."""

SIGN_BIT = np.uint32(1 << 31)


class Stream(Protocol):
    """What initializers draw from. ``blocks`` asks a block stream for a window of the tensor's blocks
    (:data:`Blocks`): the flat values there, the same as the whole tensor's (a legacy stream refuses)."""

    def uniform(
        self, shape: tuple[int, ...], low: float, high: float, dtype: np.dtype, blocks: Blocks = None
    ) -> np.ndarray: ...

    def normal(
        self, shape: tuple[int, ...], loc: float, scale: float, dtype: np.dtype, blocks: Blocks = None
    ) -> np.ndarray: ...

    def truncated_normal(
        self,
        shape: tuple[int, ...],
        loc: float,
        scale: float,
        a: float,
        b: float,
        dtype: np.dtype,
        blocks: Blocks = None,
    ) -> np.ndarray: ...


def block_version(rng: str) -> int:
    """The block stream version an ``rng`` setting selects: ``block`` the default (:data:`DEFAULT_VERSION`),
    ``block/N`` version N. ``legacy`` has none (raises)."""
    if rng == "block":
        return DEFAULT_VERSION
    mode, _, version = rng.partition("/")
    if mode != "block" or not version.isdigit() or int(version) not in STREAM_VERSIONS:
        raise InitializerError(f"rng {rng!r} names no block stream (expected one of {', '.join(RNG_MODES[:-1])})")
    return int(version)


def tensor_key(seed: int, path: str) -> list[int]:
    """Eight 32-bit words of ``SHA-256("netspec/v1\\0<seed>\\0<path>")``."""
    digest = hashlib.sha256(f"netspec/v1\0{int(seed)}\0{path}".encode()).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 32, 4)]


def block_bitgen(key: list[int], index: int) -> np.random.PCG64:
    """The bit generator of block ``index`` of the tensor with ``key``."""
    return np.random.PCG64(np.random.SeedSequence(key, spawn_key=(index,)))


def float_bounds(low: float, high: float, dtype: np.dtype) -> tuple[np.floating, np.floating]:
    """The tightest ``dtype`` interval inside [low, high] (the clip bounds that keep values in the support).

    Compared as Python floats: under NumPy 2 (NEP 50) ``np.float32(0.3) > 0.3`` casts 0.3 to float32 and
    is False, which left a bound rounded outward.
    """
    lo, hi = dtype.type(low), dtype.type(high)
    if float(lo) < low:
        lo = np.nextafter(lo, dtype.type(np.inf))
    if float(hi) > high:
        hi = np.nextafter(hi, dtype.type(-np.inf))
    return lo, hi


# ---------------------------------------------------------------- transforms on raw bits


def fill_symmetric_unit(bitgen: np.random.PCG64, out: np.ndarray, scale: float = 1.0) -> None:
    """Fill ``out`` with ``scale * v``, v i.i.d. uniform on a symmetric grid in (-1, 1).

    float32: ``v = ((int32(k) >> 7) | 1) / 2^24`` for each 32-bit word ``k`` —
    an odd integer in (-2^24, 2^24), exact in float32, so ``|scale * v| <= scale``.
    float64: ``v = ((int64(k) >> 10) | 1) / 2^53`` for each 64-bit word.
    Value: ``fl(j * fl(scale / 2^24))`` (2^53 for float64), one rounding.
    """
    symmetric_unit(bitgen, out, scale, kernels.usable(kernels.native(), bitgen, out))


def symmetric_unit(bitgen: np.random.PCG64, out: np.ndarray, scale: float, native: ModuleType | None) -> None:
    """:func:`fill_symmetric_unit` by the compiled kernels ``native``, or by NumPy (None): the same bytes."""
    n, single = out.size, out.dtype == np.float32
    mult = out.dtype.type(scale * (2.0**-24 if single else 2.0**-53))
    if native is not None:
        kernels.call(bitgen, native.uniform_f32 if single else native.uniform_f64, out, float(mult))
        return
    words = bitgen.random_raw((n + 1) // 2).view(np.int32)[:n] if single else bitgen.random_raw(n).view(np.int64)
    np.right_shift(words, 7 if single else 10, out=words)
    np.bitwise_or(words, 1, out=words)
    np.copyto(out, words, casting="unsafe")
    out *= mult


def fill_standard_normal(bitgen: np.random.PCG64, out: np.ndarray, scale: float = 1.0) -> None:
    """Fill ``out`` with N(0, scale^2) values by Box-Muller (see the module doc).

    With h = ceil(n / 2) words of 64 bits viewed as 2h 32-bit halves ``k``:
    radius ``r = scale * sqrt(-2 ln((k[i] + 1/2) / 2^32))`` and an angle from
    ``k[h + i]``: its low 29 bits give phi in [0, pi/4), its top 3 bits one of
    the 8 symmetries of the square (swap cos and sin; the signs), so the point
    is uniform on the circle. ``out[i] = r x`` and ``out[h + i] = r y``.
    float32 uses :mod:`netspec.init.portable_math` (same bits on every machine);
    float64 uses NumPy's float64 ``log``/``cos``/``sin``.
    """
    if out.dtype != np.float32:
        _fill_standard_normal_f64(bitgen, out, scale)
        return
    box_muller(bitgen, out, scale, kernels.usable(kernels.native(), bitgen, out))


def box_muller_constants(scale: float) -> np.ndarray:
    """The float32 constants of the float32 Box-Muller, in the compiled kernel's order."""
    F32 = np.float32
    return np.array(
        [*portable_math.ATANH, portable_math.LN2, *portable_math.SIN, F32(2.0**-32), F32(2.0**-33),
         F32(math.pi / 4 * 2.0**-29), F32(-2.0 * scale * scale)],
        np.float32,
    )  # fmt: skip


def box_muller(bitgen: np.random.PCG64, out: np.ndarray, scale: float, native: ModuleType | None) -> None:
    """The float32 :func:`fill_standard_normal` by the compiled kernels ``native``, or by NumPy (None):
    the same bytes."""
    if native is not None:
        kernels.call(bitgen, native.box_muller_f32, out, box_muller_constants(scale))
        return
    n = out.size
    half = (n + 1) // 2
    words = bitgen.random_raw(half).view(np.uint32)
    k1, k2 = words[:half], words[half : 2 * half]
    u = scratch("bm.u", half)
    np.copyto(u, k1, casting="unsafe")
    u *= np.float32(2.0**-32)
    u += np.float32(2.0**-33)
    radius = scratch("bm.r", half)
    portable_math.log(u, radius)
    radius *= np.float32(-2.0 * scale * scale)
    np.sqrt(radius, out=radius)
    bits = scratch("bm.bits", half, np.uint32)
    np.bitwise_and(k2, np.uint32((1 << 29) - 1), out=bits)
    phi = u
    np.copyto(phi, bits, casting="unsafe")
    phi *= np.float32(math.pi / 4 * 2.0**-29)
    x, y = scratch("bm.x", half), scratch("bm.y", half)
    portable_math.cos_sin(phi, x, y)
    _octant(k2, x.view(np.uint32), y.view(np.uint32), bits)
    np.multiply(x, radius, out=out[:half])
    np.multiply(y[: n - half], radius[: n - half], out=out[half:])


def _octant(k: np.ndarray, xb: np.ndarray, yb: np.ndarray, tmp: np.ndarray) -> None:
    """Map (cos phi, sin phi) by the top 3 bits of ``k``: bit 29 swaps x and y,
    bit 31 negates x, bit 30 negates y (exact bit operations)."""
    mask = tmp.view(np.int32)
    np.left_shift(k.view(np.int32), 2, out=mask)
    np.right_shift(mask, 31, out=mask)  # arithmetic: all ones where bit 29 is set
    diff = scratch("bm.diff", k.size, np.uint32)
    np.bitwise_xor(xb, yb, out=diff)
    diff &= tmp
    xb ^= diff
    yb ^= diff
    np.bitwise_and(k, SIGN_BIT, out=tmp)
    xb ^= tmp
    np.left_shift(k, np.uint32(1), out=tmp)
    tmp &= SIGN_BIT
    yb ^= tmp


def _fill_standard_normal_f64(bitgen: np.random.PCG64, out: np.ndarray, scale: float) -> None:
    """float64 Box-Muller with NumPy's float64 transcendentals (53-bit fractions)."""
    n = out.size
    half = (n + 1) // 2
    words = bitgen.random_raw(2 * half)
    np.right_shift(words, 11, out=words)
    k1, k2 = words[:half], words[half : 2 * half]
    radius = np.empty(half)
    np.copyto(radius, k1, casting="unsafe")
    radius *= 2.0**-53
    radius += 2.0**-54
    np.log(radius, out=radius)
    radius *= -2.0 * scale * scale
    np.sqrt(radius, out=radius)
    angle = np.empty(half)
    np.copyto(angle, k2, casting="unsafe")
    angle *= 2.0 * math.pi * 2.0**-53
    np.cos(angle, out=out[:half])
    out[:half] *= radius
    np.sin(angle[: n - half], out=out[half:])
    out[half:] *= radius[: n - half]


def fill_truncated_standard(
    bitgen: np.random.PCG64, out: np.ndarray, a: float, b: float, version: int = 1
) -> None:
    """Fill ``out`` with N(0, 1) truncated to [a, b] by rejection (module doc); ``version`` 2 serves
    only its uniform proposals here (:func:`fill_truncated_standard_v2`)."""
    propose, accept = _truncation_sampler(a, b, out.dtype, version)
    propose(bitgen, out)
    bad = np.flatnonzero(~accept(bitgen, out))
    while bad.size:
        redo = np.empty(bad.size, out.dtype)
        propose(bitgen, redo)
        out[bad] = redo
        bad = bad[~accept(bitgen, redo)]


Proposer = Callable[[np.random.PCG64, np.ndarray], None]
Acceptor = Callable[[np.random.PCG64, np.ndarray], np.ndarray]


def _truncation_sampler(a: float, b: float, dtype: np.dtype, version: int = 1) -> tuple[Proposer, Acceptor]:
    method, _ = truncation_acceptance(a, b)
    lo, hi = dtype.type(a), dtype.type(b)
    if method == "normal":
        return fill_standard_normal, lambda _bitgen, z: (z >= lo) & (z <= hi)

    mid, half = dtype.type((a + b) / 2), dtype.type((b - a) / 2)
    peak = min(max(0.0, a), b)

    def propose(bitgen: np.random.PCG64, z: np.ndarray) -> None:
        fill_symmetric_unit(bitgen, z, float(half))
        z += mid
        np.clip(z, lo, hi, out=z)

    def accept(bitgen: np.random.PCG64, z: np.ndarray) -> np.ndarray:
        """u < phi(z) / phi(peak)  <=>  ln u < (peak^2 - z^2) / 2, u uniform in (0, 1)."""
        u = np.empty(z.size, dtype)
        fill_symmetric_unit(bitgen, u, 0.5)
        u += dtype.type(0.5)
        if dtype == np.float32:
            log_u = portable_math.log(u, np.empty_like(u))
        else:
            log_u = portable_math.log64(u) if version >= 2 else np.log(u)
        bound = dtype.type(0.5) * (dtype.type(peak) * dtype.type(peak) - z * z)
        return log_u < bound

    return propose, accept


def fill_truncated_standard_v2(bits: BlockBits, out: np.ndarray, a: float, b: float) -> None:
    """Version 2: N(0, 1) truncated to [a, b] in one whole block.

    Normal proposals: the block's ziggurat values (:mod:`netspec.init.ziggurat`), then the rejected
    ones redrawn in order, as one more ziggurat fill of their number from the same two streams, until
    none is left. Uniform proposals: version 1's transform tile by tile from ``bits.main``, with the
    float64 acceptance test's log from :func:`netspec.init.portable_math.log64`.
    """
    method, _ = truncation_acceptance(a, b)
    if method == "uniform":
        for start in range(0, out.size, TILE):
            fill_truncated_standard(bits.main, out[start : start + TILE], a, b, version=2)
        return
    lo, hi = out.dtype.type(a), out.dtype.type(b)
    ziggurat.fill([bits], out)
    bad = np.flatnonzero((out < lo) | (out > hi))
    while bad.size:
        redo = np.empty(bad.size, out.dtype)
        ziggurat.fill([bits], redo)
        out[bad] = redo
        bad = bad[(redo < lo) | (redo > hi)]


def kernel_checks() -> list[kernels.Check]:
    """The self-checks of this module's compiled kernels (:mod:`netspec.init.kernels`): each fills an
    array from a freshly seeded PCG64, by a kernel module or by NumPy (None), and gives the values' bytes
    and the generator's state after them."""

    def check(fill: Callable[..., None], n: int, dtype: type, scale: float) -> Callable[[ModuleType | None], bytes]:
        def run(native: ModuleType | None) -> bytes:
            bitgen, out = np.random.PCG64(20261125 + n), np.empty(n, np.dtype(dtype))
            fill(bitgen, out[: n // 3], scale, native)  # two calls: the second starts where the first ended
            fill(bitgen, out[n // 3 :], scale, native)
            return out.tobytes() + repr(bitgen.state).encode()

        return run

    def raw(native: ModuleType | None) -> bytes:
        bitgen = np.random.PCG64(20261125)
        if native is None:
            return b"".join(bitgen.random_raw(n).tobytes() for n in (1, 7, 8, 9, 4099))
        out = [np.empty(n, np.uint64) for n in (1, 7, 8, 9, 4099)]
        for words in out:
            kernels.call(bitgen, native.raw, words)
        return b"".join(words.tobytes() for words in out)

    return [
        ("PCG64 words", raw),
        ("uniform float32", check(symmetric_unit, 8193, np.float32, 0.123456789)),
        ("uniform float64", check(symmetric_unit, 4097, np.float64, 0.123456789)),
        ("Box-Muller float32", check(box_muller, 8193, np.float32, 1.0)),
        ("Box-Muller float32 (scaled, even lengths)", check(box_muller, 2 * 2049, np.float32, 0.0137)),
    ]


# ---------------------------------------------------------------- block-mode stream


class BlockBits:
    """The two streams of block ``index`` of a tensor (version 2): ``main``, the block's bit generator
    (:func:`block_bitgen`), one word per value; ``aux()``, made on first use,
    ``PCG64(SeedSequence(key, spawn_key=(index, 1)))``, for the ziggurat's rejected values."""

    def __init__(self, key: list[int], index: int):
        self.key, self.index = key, index
        self.main = block_bitgen(key, index)
        self._aux: np.random.PCG64 | None = None

    def aux(self) -> np.random.PCG64:
        if self._aux is None:
            self._aux = np.random.PCG64(np.random.SeedSequence(self.key, spawn_key=(self.index, 1)))
        return self._aux


class BlockStream:
    """The stream of one tensor in ``block`` mode (see the module doc)."""

    def __init__(
        self, seed: int, path: str, executor: ThreadPoolExecutor | None = None, version: int = DEFAULT_VERSION
    ):
        if version not in STREAM_VERSIONS:
            raise InitializerError(f"no block stream version {version} (versions: {STREAM_VERSIONS})")
        self.key = tensor_key(seed, path)
        self.executor = executor
        self.version = version

    @staticmethod
    def _output(shape: tuple[int, ...], dtype: np.dtype, blocks: Blocks) -> tuple[np.ndarray, int]:
        """The array to fill (the whole tensor, or the window's flat values) and its first block's index."""
        if blocks is None:
            return np.empty(shape, dtype), 0
        start, stop = window_span(math.prod(shape), blocks)
        return np.empty(stop - start, dtype), blocks[0]

    def _fill_blocks(
        self, out: np.ndarray, fill: Callable[[np.random.PCG64, np.ndarray], None], base: int = 0
    ) -> None:
        """``fill(bitgen, tile)`` for every tile of every block, in order within a block; ``out`` starts at
        block ``base`` of the tensor."""

        def one(first: int, last: int, flat: np.ndarray) -> None:
            start = first * BLOCK
            bitgen = block_bitgen(self.key, base + first)
            for tile in range(start, min(start + BLOCK, flat.size), TILE):
                fill(bitgen, flat[tile : min(tile + TILE, start + BLOCK)])

        self._run(out, one, 1)

    def _fill_groups(
        self, out: np.ndarray, fill: Callable[[list[BlockBits], np.ndarray], None], base: int = 0
    ) -> None:
        """``fill(bits, span)`` for groups of consecutive blocks: ``span`` holds the blocks of ``bits``
        (``out`` starts at block ``base`` of the tensor; the groups do not change the bytes)."""

        def one(first: int, last: int, flat: np.ndarray) -> None:
            fill([BlockBits(self.key, base + i) for i in range(first, last)], flat[first * BLOCK : last * BLOCK])

        blocks = -(-out.size // BLOCK)
        self._run(out, one, max(1, min(GROUP, blocks // 8)))

    def _run(self, out: np.ndarray, one: Callable[[int, int, np.ndarray], None], group: int) -> None:
        flat = out.reshape(-1)
        blocks = -(-flat.size // BLOCK)
        firsts = range(0, blocks, group)

        def task(first: int) -> None:
            one(first, min(first + group, blocks), flat)

        if self.executor is None or len(firsts) < 2:
            for first in firsts:
                task(first)
        else:
            list(self.executor.map(task, firsts))

    def uniform(
        self, shape: tuple[int, ...], low: float, high: float, dtype: np.dtype, blocks: Blocks = None
    ) -> np.ndarray:
        dtype = check_dtype(dtype)
        out, base = self._output(shape, dtype, blocks)
        mid, half = (low + high) / 2.0, (high - low) / 2.0
        lo, hi = float_bounds(low, high, dtype)
        symmetric = mid == 0.0

        def fill(bitgen: np.random.PCG64, chunk: np.ndarray) -> None:
            # symmetric: the scale is high rounded to nearest (|v| <= 1 - 2^-24 keeps every value inside);
            # it is part of the byte contract, so it is not the inward clip bound
            fill_symmetric_unit(bitgen, chunk, float(dtype.type(high)) if symmetric else half)
            if not symmetric:
                chunk += dtype.type(mid)
                np.clip(chunk, lo, hi, out=chunk)

        self._fill_blocks(out, fill, base)
        return out

    def normal(
        self, shape: tuple[int, ...], loc: float, scale: float, dtype: np.dtype, blocks: Blocks = None
    ) -> np.ndarray:
        dtype = check_dtype(dtype)
        out, base = self._output(shape, dtype, blocks)
        if self.version == 1:

            def fill(bitgen: np.random.PCG64, chunk: np.ndarray) -> None:
                fill_standard_normal(bitgen, chunk, scale)
                if loc:
                    chunk += dtype.type(loc)

            self._fill_blocks(out, fill, base)
            return out

        def fill_group(bits: list[BlockBits], span: np.ndarray) -> None:
            ziggurat.fill(bits, span, scale, BLOCK)
            if loc:
                span += dtype.type(loc)

        self._fill_groups(out, fill_group, base)
        return out

    def truncated_normal(
        self,
        shape: tuple[int, ...],
        loc: float,
        scale: float,
        a: float,
        b: float,
        dtype: np.dtype,
        blocks: Blocks = None,
    ) -> np.ndarray:
        dtype = check_dtype(dtype)
        check_truncation(a, b)
        out, base = self._output(shape, dtype, blocks)
        lo, hi = float_bounds(loc + a * scale, loc + b * scale, dtype)

        def finish(chunk: np.ndarray) -> None:
            chunk *= dtype.type(scale)
            if loc:
                chunk += dtype.type(loc)
            np.clip(chunk, lo, hi, out=chunk)

        if self.version == 1:

            def fill(bitgen: np.random.PCG64, chunk: np.ndarray) -> None:
                fill_truncated_standard(bitgen, chunk, a, b)
                finish(chunk)

            self._fill_blocks(out, fill, base)
            return out

        def fill_group(bits: list[BlockBits], span: np.ndarray) -> None:
            for k, one in enumerate(bits):
                fill_truncated_standard_v2(one, span[k * BLOCK : (k + 1) * BLOCK], a, b)
            finish(span)

        self._fill_groups(out, fill_group, base)
        return out


# ---------------------------------------------------------------- legacy stream


class LegacyStream:
    """One ``RandomState`` shared by the whole network (see the module doc)."""

    def __init__(self, seed: int):
        self.state = np.random.RandomState(int(seed) % 2**32)

    @staticmethod
    def _whole(blocks: Blocks) -> None:
        if blocks is not None:
            raise InitializerError("rng: legacy draws every tensor from one generator in order: no tensor's "
                                   "part can be drawn alone (use rng: block)")  # fmt: skip

    def uniform(
        self, shape: tuple[int, ...], low: float, high: float, dtype: np.dtype, blocks: Blocks = None
    ) -> np.ndarray:
        self._whole(blocks)
        dtype = check_dtype(dtype)
        lo, hi = float_bounds(low, high, dtype)
        values = self.state.uniform(low, high, size=shape).astype(dtype)
        return np.clip(values, lo, hi, out=values)

    def normal(
        self, shape: tuple[int, ...], loc: float, scale: float, dtype: np.dtype, blocks: Blocks = None
    ) -> np.ndarray:
        self._whole(blocks)
        dtype = check_dtype(dtype)
        return self.state.normal(loc, scale, size=shape).astype(dtype)

    def truncated_normal(
        self,
        shape: tuple[int, ...],
        loc: float,
        scale: float,
        a: float,
        b: float,
        dtype: np.dtype,
        blocks: Blocks = None,
    ) -> np.ndarray:
        """Draw ``normal(0, 1)``, redraw out-of-range values in order, then scale."""
        self._whole(blocks)
        dtype = check_dtype(dtype)
        check_truncation(a, b)
        if truncated_moments(a, b)[0] < MIN_ACCEPTANCE:
            raise InitializerError(
                f"legacy mode redraws normals: [{a:g}, {b:g}] (std units) holds too little probability"
            )
        z = self.state.standard_normal(size=shape).reshape(-1)
        bad = np.flatnonzero((z < a) | (z > b))
        while bad.size:
            z[bad] = self.state.standard_normal(size=bad.size)
            bad = bad[(z[bad] < a) | (z[bad] > b)]
        lo, hi = float_bounds(loc + a * scale, loc + b * scale, dtype)
        values = (loc + scale * z).astype(dtype).reshape(shape)
        return np.clip(values, lo, hi, out=values)
