"""Any slice of any parameter, generated on its own: what one rank of a sharded training job needs.

``initialize_slice(net, name, index)`` returns exactly ``net.initialize()[name][index]`` for basic indexing
(integers, slices with any step, ``...``) while generating only the blocks of the stream the slice touches
(:mod:`netspec.nn.sources`): the selected elements' positions in C order are found chunk by chunk, in
increasing order (negative steps are taken forwards, then flipped), and each block they fall in is drawn
once. Memory: the result, a chunk of positions and a few blocks. ``shard(net, name, rank, world, axis)``
is the slice rank ``rank`` of ``world`` holds when the tensor is split along ``axis`` as ``torch.chunk`` and
DTensor's ``Shard(axis)`` split it (the first ranks take ``ceil(n / world)``; the last may take fewer, or
nothing).

Where this cannot hold it refuses rather than approximates: ``rng: legacy`` draws every tensor from one
generator in order (an :class:`~netspec.errors.InitializerError`). An ``orthogonal`` tensor needs its whole
QR: its slice generates the whole tensor (exact, but its memory is the tensor's); so does any tensor whose
initializer is not drawn by blocks (:attr:`netspec.nn.layers.ParamSpec.blockwise`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from netspec.init.blocks import BLOCK

if TYPE_CHECKING:
    import numpy as np

    from netspec.nn.network import Network
    from netspec.nn.sources import TensorSource

POSITIONS = 1 << 20
"""Positions computed at once (their int64 indices are the slice's working memory besides the result)."""


def initialize_slice(net: Network, name: str, index: Any, seed: int | None = None) -> np.ndarray:
    """``net``'s parameter ``name`` at ``index`` (basic indexing), drawing only the blocks it touches.

    Args:
        net: a compiled network with ``rng: block`` (any stream version, any dtype).
        name: the parameter, ``"<layer>.<param>"``.
        index: an integer, a slice (any step), ``...``, or a tuple of them, as NumPy's basic indexing.
        seed: overrides the spec's seed.

    Returns:
        A new C-contiguous array equal to ``net.initialize()[name][index]``, in the stored dtype.

    Raises:
        KeyError: no parameter ``name``. IndexError, TypeError: as NumPy for a bad index (out of range,
            too many indices, not basic indexing). InitializerError: ``rng: legacy``.
    """
    import numpy as np

    from netspec.nn.sources import sources

    found = sources(net, seed)
    if name not in found:
        from difflib import get_close_matches

        close = get_close_matches(name, list(found), 1)
        raise KeyError(f"no parameter {name!r} in {net.name}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    source = found[name]
    axes = _normalize(index, source.shape)
    shape = tuple(len(r) for r, keep in axes if keep)
    dtype = _dtype(net.dtype)
    if any(len(r) == 0 for r, _ in axes):
        return np.empty(shape, dtype)
    if not source.blockwise:  # whole-tensor initializers (orthogonal): exact, at the tensor's memory
        full = source.whole()
        return np.array(full[tuple(_as_index(r, keep) for r, keep in axes)], order="C")  # (a new array; 0-d too)
    forward = [(range(min(r), max(r) + 1, abs(r.step)) if r.step < 0 else r, keep) for r, keep in axes]
    out = np.empty(shape, dtype)
    _gather(source, forward, out.reshape(-1))
    flips = tuple(slice(None, None, -1) if r.step < 0 else slice(None) for r, keep in axes if keep)
    return np.ascontiguousarray(out[flips]) if any(r.step < 0 for r, keep in axes if keep) else out


def shard_range(size: int, rank: int, world: int) -> range:
    """The indices rank ``rank`` of ``world`` holds of an axis of ``size``: ``torch.chunk``'s split (and
    DTensor's ``Shard``): chunks of ``ceil(size / world)``, the last ones shorter or empty."""
    if not 0 <= rank < world:
        raise IndexError(f"rank {rank} is not in a world of {world}")
    step = -(-size // world)
    return range(min(size, rank * step), min(size, (rank + 1) * step))


def shard(net: Network, name: str, rank: int, world: int, axis: int = 0, seed: int | None = None) -> np.ndarray:
    """The part of parameter ``name`` that rank ``rank`` of ``world`` holds when it is split along ``axis``
    (:func:`shard_range`), generated alone (:func:`initialize_slice`)."""
    shape = dict(net.parameters())[name].shape if name in dict(net.parameters()) else ()
    if not shape:
        return initialize_slice(net, name, (), seed)
    axis = axis + len(shape) if axis < 0 else axis
    if not 0 <= axis < len(shape):
        raise IndexError(f"axis {axis} is out of range for {name} of shape {list(shape)}")
    part = shard_range(shape[axis], rank, world)
    index = tuple(slice(part.start, part.stop) if k == axis else slice(None) for k in range(len(shape)))
    return initialize_slice(net, name, index, seed)


def _dtype(precision: str) -> np.dtype:
    from netspec.init.precision import numpy_dtype

    return numpy_dtype(precision)


def _normalize(index: Any, shape: tuple[int, ...]) -> list[tuple[range, bool]]:
    """Per axis of the tensor: the range of indices the basic index selects there, and whether the axis stays
    (a slice) or goes (an integer)."""
    items = list(index) if isinstance(index, tuple) else [index]
    if any(i is None for i in items):
        raise TypeError("initialize_slice takes integers, slices and ...; not None (np.newaxis): add axes after")
    ellipses = sum(i is Ellipsis for i in items)
    if ellipses > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = len(items) - ellipses
    if used > len(shape):
        raise IndexError(f"too many indices for array: array is {len(shape)}-dimensional, but {used} were indexed")
    if ellipses:
        at = next(k for k, i in enumerate(items) if i is Ellipsis)
        items[at : at + 1] = [slice(None)] * (len(shape) - used)
    items += [slice(None)] * (len(shape) - len(items))
    out = []
    for axis, (item, size) in enumerate(zip(items, shape, strict=True)):
        if isinstance(item, slice):
            out.append((range(*item.indices(size)), True))
            continue
        if isinstance(item, bool) or not hasattr(item, "__index__"):
            raise TypeError(f"only integers, slices and ... are valid indices (basic indexing), got {item!r}")
        i = item.__index__()
        if not -size <= i < size:
            raise IndexError(f"index {i} is out of bounds for axis {axis} with size {size}")
        i %= size
        out.append((range(i, i + 1), False))
    return out


def _as_index(r: range, keep: bool) -> slice | int:
    return slice(r.start, r.stop if r.stop >= 0 else None, r.step) if keep else r.start


def _gather(source: TensorSource, axes: list[tuple[range, bool]], out: np.ndarray) -> None:
    """Fill ``out`` (flat, C order of the selection) from the blocks its positions fall in: positions chunk by
    chunk (all steps positive, so positions increase), each block drawn once (the last one kept)."""
    import numpy as np

    strides = [math.prod(source.shape[k + 1 :]) for k in range(len(source.shape))]
    offsets = [np.asarray(r, np.int64) * s for (r, _), s in zip(axes, strides, strict=True)]
    lengths = [len(r) for r, _ in axes]
    cached: tuple[int, np.ndarray] | None = None
    done = 0
    for positions in _position_chunks(offsets, lengths):
        blocks = positions // BLOCK
        edges = np.flatnonzero(np.diff(blocks)) + 1
        for lo, hi in zip(np.concatenate([[0], edges]), np.concatenate([edges, [positions.size]]), strict=True):
            block = int(blocks[lo])
            if cached is None or cached[0] != block:
                cached = (block, source.window(block, block + 1))
            out[done + lo : done + hi] = cached[1][positions[lo:hi] - block * BLOCK]
        done += positions.size


def _position_chunks(offsets: list[np.ndarray], lengths: list[int]) -> Any:
    """The flat positions of the selection in C order, at most about :data:`POSITIONS` at a time: the inner
    axes whose grid fits at once, and runs of the axis before them, for each index of the outer axes."""
    import itertools

    import numpy as np

    k, size = len(lengths), 1
    while k > 0 and size * lengths[k - 1] <= POSITIONS:
        k -= 1
        size *= lengths[k]
    tail = np.zeros(1, np.int64)
    for o in reversed(offsets[k:]):
        tail = (o[:, None] + tail[None, :]).reshape(-1)
    if k == 0:
        yield tail
        return
    rows = max(1, POSITIONS // size)
    axis = offsets[k - 1]
    for outer in itertools.product(*(o.tolist() for o in offsets[: k - 1])):
        base = sum(outer)
        for start in range(0, axis.size, rows):
            yield base + (axis[start : start + rows, None] + tail[None, :]).reshape(-1)
