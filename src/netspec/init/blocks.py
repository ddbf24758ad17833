"""Blocks: how a tensor's flat values are cut for the ``block`` streams (part of the byte contract).

A tensor's values in C order are cut into blocks of :data:`BLOCK` elements (the last may be short);
block ``i`` draws from its own bit generator (:mod:`netspec.init.streams`), so any window of blocks can
be drawn alone, anywhere, with the bytes of the whole tensor.
"""

from __future__ import annotations

from netspec.errors import InitializerError

BLOCK = 1 << 18
"""Elements per block in ``block`` mode (part of the byte contract)."""

Blocks = tuple[int, int] | None
"""A window of a tensor's blocks, ``(first, last)``: its flat elements ``[first * BLOCK, min(last * BLOCK,
size))``, or None for the whole tensor."""


def block_count(size: int) -> int:
    """How many blocks a tensor of ``size`` elements has (the last one may be short)."""
    return -(-size // BLOCK)


def window_span(size: int, blocks: tuple[int, int]) -> tuple[int, int]:
    """The flat elements ``[start, stop)`` of a window of blocks of a tensor of ``size`` elements.

    Raises:
        InitializerError: the window is empty or outside the tensor's blocks.
    """
    first, last = blocks
    if not 0 <= first < last <= block_count(size):
        raise InitializerError(f"blocks [{first}, {last}) are not a window of a tensor of {block_count(size)} blocks")
    return first * BLOCK, min(last * BLOCK, size)
