"""Any part of any parameter, generated where it is needed.

With ``rng: block`` a tensor's values are cut into blocks (:mod:`netspec.init.blocks`), each drawn from its
own generator, so a window of blocks is generated alone with the whole tensor's bytes
(:meth:`TensorSource.window`). Two consumers:

* :func:`chunks`: every tensor's values in order, as windows of :data:`TASK_BLOCKS` blocks generated on a
  thread pool a bounded number of windows ahead of the reader. Writers, verify and lock consume them: memory
  holds a few windows, whatever the tensors' sizes. A tensor that cannot be drawn by windows (an orthogonal
  matrix needs its whole QR; a plugin initializer with its own ``__call__``) comes as one chunk, and so does
  every tensor of ``rng: legacy``, whose single generator is consumed in order.
* :mod:`netspec.nn.slices`: the blocks one slice of one tensor touches.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netspec.errors import InitializerError
from netspec.init.blocks import BLOCK, block_count

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    import numpy as np

    from netspec.nn.layers import ParamSpec
    from netspec.nn.network import Network

TASK_BLOCKS = 4
"""Blocks per generation task in :func:`chunks` (1 Mi values: 4 MiB of float32)."""

Chunk = tuple[str, int, "np.ndarray"]
"""``(tensor name, index of its first element, flat values)``: a run of one tensor's C-order values."""


@dataclass(frozen=True)
class TensorSource:
    """One parameter of a ``block``-stream network: its values by windows of blocks, in its stored dtype."""

    name: str
    param: ParamSpec
    dtype: str
    seed: int
    version: int

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.param.shape)

    @property
    def size(self) -> int:
        return self.param.size

    @property
    def blocks(self) -> int:
        """How many blocks the tensor has."""
        return block_count(self.size)

    @property
    def blockwise(self) -> bool:
        """Whether a window costs only its own blocks (:attr:`netspec.nn.layers.ParamSpec.blockwise`)."""
        return self.param.blockwise

    def window(self, first: int, last: int) -> np.ndarray:
        """The flat values of blocks ``[first, last)``: elements ``[first * BLOCK, min(last * BLOCK, size))``."""
        from netspec.init.streams import BlockStream

        return self.param.window(BlockStream(self.seed, self.name, None, self.version), self.dtype, (first, last))

    def whole(self, executor: ThreadPoolExecutor | None = None) -> np.ndarray:
        """The whole tensor (blocks drawn on ``executor``'s threads)."""
        from netspec.init.streams import BlockStream

        return self.param.draw(BlockStream(self.seed, self.name, executor, self.version), self.dtype)


def sources(net: Network, seed: int | None = None) -> dict[str, TensorSource]:
    """Every parameter's :class:`TensorSource`, in initialization order.

    Raises:
        InitializerError: the network uses ``rng: legacy`` (one generator consumed in order: no tensor's
            part can be drawn alone).
    """
    from netspec.init.streams import block_version

    if net.rng == "legacy":
        raise InitializerError(f"{net.name} uses rng: legacy, one np.random.RandomState consumed tensor by "
                               "tensor in order: no part of a tensor can be drawn alone (use rng: block)")  # fmt: skip
    version = block_version(net.rng)
    seed = net.seed if seed is None else seed
    return {name: TensorSource(name, p, net.dtype, seed, version) for name, p in net.parameters()}


def chunks(
    net: Network,
    seed: int | None = None,
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
    names: set[str] | None = None,
    task_blocks: int = TASK_BLOCKS,
) -> Iterator[Chunk]:
    """Every tensor's values (``names``: only those), tensor after tensor in initialization order, each in
    order of its elements, as :data:`Chunk` runs; the same bytes as :meth:`Network.generate`.

    ``block`` streams: windows of ``task_blocks`` blocks, generated on ``threads`` threads (default: all
    cores) at most ``2 * threads + 2`` windows ahead of the reader. ``progress`` is called with the number of
    values of each chunk as it is handed over.
    """
    if net.rng == "legacy":
        for name, array in net.generate(seed, threads=1):
            if names is None or name in names:
                yield _handed(name, 0, array.reshape(-1), progress)
        return
    plan = [s for name, s in sources(net, seed).items() if names is None or name in names]
    yield from chunks_of(plan, threads, progress, task_blocks)


def chunks_of(
    plan: list[TensorSource],
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
    task_blocks: int = TASK_BLOCKS,
) -> Iterator[Chunk]:
    """:func:`chunks` of the tensors of ``plan``, in its order (a shard's tensors, on a worker)."""
    from netspec.nn.network import _pool, default_threads

    workers = default_threads() if threads is None else max(1, int(threads))
    with _pool(workers) as pool:
        yield from _ordered(plan, pool, 2 * workers, task_blocks, progress)


def _handed(name: str, start: int, values: np.ndarray, progress: Callable[[int], None] | None) -> Chunk:
    if progress:
        progress(values.size)
    return name, start, values


def _ordered(
    plan: list[TensorSource],
    pool: ThreadPoolExecutor | None,
    ahead: int,
    task_blocks: int,
    progress: Callable[[int], None] | None,
) -> Iterator[Chunk]:
    """The windows of every source in order; blockwise ones as pool tasks, at most ``ahead`` in flight."""
    pending: deque[tuple[str, int, Future[np.ndarray]]] = deque()
    try:
        yield from _windows(plan, pool, ahead, task_blocks, progress, pending)
    finally:  # the reader stopped (or failed): windows not started are dropped
        for _, _, future in pending:
            future.cancel()


def _windows(
    plan: list[TensorSource],
    pool: ThreadPoolExecutor | None,
    ahead: int,
    task_blocks: int,
    progress: Callable[[int], None] | None,
    pending: deque[tuple[str, int, Future[np.ndarray]]],
) -> Iterator[Chunk]:
    for source in plan:
        if not source.blockwise:
            while pending:  # in order: every window before this tensor first
                name, start, future = pending.popleft()
                yield _handed(name, start, future.result(), progress)
            yield _handed(source.name, 0, source.whole(pool).reshape(-1), progress)
            continue
        for first in range(0, source.blocks, task_blocks):
            last = min(first + task_blocks, source.blocks)
            if pool is None:
                yield _handed(source.name, first * BLOCK, source.window(first, last), progress)
                continue
            pending.append((source.name, first * BLOCK, pool.submit(source.window, first, last)))
            while len(pending) > ahead:
                name, start, future = pending.popleft()
                yield _handed(name, start, future.result(), progress)
    while pending:
        name, start, future = pending.popleft()
        yield _handed(name, start, future.result(), progress)



def digests(net: Network, seed: int | None = None, threads: int | None = None) -> dict[str, str]:
    """Every tensor's SHA-256 (of its C-order bytes), hashed chunk by chunk as :func:`chunks` generates them."""
    import hashlib

    from netspec.init.precision import byte_view

    hashers = {name: hashlib.sha256() for name, _ in net.parameters()}
    for name, _, values in chunks(net, seed, threads):
        hashers[name].update(byte_view(values))
    return {name: h.hexdigest() for name, h in hashers.items()}
