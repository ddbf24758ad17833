"""Safetensors output, one file or a folder of shards, written from tensor chunks at known offsets.

**Layout.** A folder holds ``model-00001-of-0000N.safetensors`` ... and ``model.safetensors.index.json``
(``{"metadata": {"total_size": <bytes of tensor data>}, "weight_map": {tensor: file}}``), the Hugging Face
Hub's convention; with a single shard, ``model.safetensors`` and no index, as ``save_pretrained`` writes.
Tensors keep their order; a shard takes tensors until the next would pass ``max_shard_size``, and a tensor
larger than the limit is alone in its shard (:func:`plan`). Every shard is a complete safetensors file
whose ``__metadata__`` is the caller's.

**Writing** (:class:`Writer`). The headers are known before any data (the layout fixes every offset), so
each chunk of a tensor goes to its place with ``os.pwrite`` on writer threads while the next chunks are
generated, and each tensor's SHA-256 is computed in order on a hashing thread. A shard is written to a
temporary file in the destination folder (:func:`netspec.io.weights.atomic_write`) and renamed to its name
once its last byte is written and synced, on a commit thread, while the next shard is written.

**The folder is the unit** (:func:`retire_index`). Shards are renamed over an earlier build's one by one, so
before the first one is, the earlier index is removed (and the removal synced); the new index comes last and
records every tensor's SHA-256 (``metadata.tensor_sha256``). A build that stops midway (killed, disk full, a
bad tensor) leaves complete shards of two builds and no index, which every reader refuses
(:func:`netspec.io.weights.shard_files`); a shard swapped in later fails the digests (``eval``/``export
--weights`` refuse the folder, ``verify`` fails the tensor). ``--resume`` keeps the shards whose digests check
(:mod:`netspec.io.resume`). Memory holds the chunks in flight,
at most :data:`IN_FLIGHT` bytes, whatever the tensors' sizes.

**For other writers** (the Hugging Face export): :func:`plan` takes any names, shapes and dtypes (a
:data:`~netspec.io.weights.Layout`), the shards' ``__metadata__`` (``{"format": "pt"}``), a file prefix and
extra index metadata; :meth:`Writer.write` takes any iterator of ``(name, first element, flat values)``
chunks, each tensor's chunks in order (one chunk per tensor is fine).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netspec.errors import UsageError, WeightsError
from netspec.init.precision import ITEMSIZE, little_endian_bytes
from netspec.io.files import atomic_write, sync_folder

if TYPE_CHECKING:
    import numpy as np

    from netspec.io.weights import Layout

ST_DTYPES = {"float32": "F32", "float64": "F64", "bfloat16": "BF16", "float16": "F16"}
"""The safetensors dtype code of each precision netspec writes."""
DEFAULT_SHARD_SIZE = 5 * 10**9
"""``--max-shard-size`` for a folder output that names none: 5 GB, transformers' default."""
INDEX = "model.safetensors.index.json"
DIGESTS = "tensor_sha256"
"""The index ``metadata`` entry where netspec records every tensor's SHA-256 (its readers check them)."""
SINGLE = "model.safetensors"
IN_FLIGHT = 32 << 20
"""Bytes of chunks being written or hashed at once (the writer's memory, whatever the tensors' sizes)."""
WRITERS = 2
"""Threads that ``pwrite`` chunks (writes to the page cache overlap with each other and with hashing)."""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}  # fmt: skip


def parse_size(text: str) -> int:
    """Bytes of a size such as ``5GB`` (10^9, as the Hub's ``max_shard_size``), ``2GiB`` (2^30), ``500MB``
    or a plain number of bytes.

    Raises:
        UsageError: not a size, or not positive.
    """
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"{text!r} is not a size (e.g. 5GB, 500MB, 2GiB or a number of bytes)")
    value = float(match.group(1)) * _UNITS[(match.group(2) or "B").upper()]
    if value < 1:
        raise UsageError(f"the size {text!r} must be at least one byte")
    return int(value)


@dataclass(frozen=True)
class Entry:
    """One tensor in a shard: its data offsets ``[begin, end)`` from the start of the data section."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    begin: int
    end: int

    @property
    def size(self) -> int:
        """Elements."""
        return math.prod(self.shape)


@dataclass(frozen=True)
class ShardFile:
    """One safetensors file of a plan: its name, its tensors and its header bytes (length prefix included)."""

    name: str
    entries: tuple[Entry, ...]
    header: bytes

    @property
    def data_size(self) -> int:
        return self.entries[-1].end if self.entries else 0

    @property
    def size(self) -> int:
        return len(self.header) + self.data_size


def header_bytes(entries: tuple[Entry, ...], metadata: dict[str, str] | None) -> bytes:
    """The safetensors header: the 8-byte little-endian length, then the JSON (tensors in order, padded with
    spaces to a multiple of 8 so the data is aligned)."""
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    for e in entries:
        header[e.name] = {"dtype": ST_DTYPES[e.dtype], "shape": list(e.shape), "data_offsets": [e.begin, e.end]}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    return struct.pack("<Q", len(blob)) + blob


def plan(
    layout: Layout,
    metadata: dict[str, str] | None = None,
    max_shard_size: int | None = None,
    prefix: str = "model",
    single: str | None = None,
) -> list[ShardFile]:
    """The shards of ``layout`` (tensors in its order): one file named ``single`` when ``max_shard_size`` is
    None; else files of at most ``max_shard_size`` bytes of tensor data (a larger tensor alone), named
    ``<prefix>-0000k-of-0000N.safetensors``, or ``<prefix>.safetensors`` when one shard holds everything."""
    groups: list[list[tuple[str, tuple[int, ...], str]]] = [[]]
    used = 0
    for name, shape, dtype in layout:
        nbytes = math.prod(shape) * ITEMSIZE[dtype]
        if max_shard_size is not None and groups[-1] and used + nbytes > max_shard_size:
            groups.append([])
            used = 0
        groups[-1].append((name, tuple(shape), dtype))
        used += nbytes
    count = len(groups)
    if single is not None:
        names = [single]
    elif count == 1:
        names = [f"{prefix}.safetensors"]
    else:
        names = [f"{prefix}-{k:05d}-of-{count:05d}.safetensors" for k in range(1, count + 1)]
    shards = []
    for file, group in zip(names, groups, strict=True):
        entries, offset = [], 0
        for name, shape, dtype in group:
            end = offset + math.prod(shape) * ITEMSIZE[dtype]
            entries.append(Entry(name, shape, dtype, offset, end))
            offset = end
        shards.append(ShardFile(file, tuple(entries), header_bytes(tuple(entries), metadata)))
    return shards


def index_document(
    shards: list[ShardFile], extra: dict[str, Any] | None = None, digests: dict[str, str] | None = None
) -> dict[str, Any]:
    """``model.safetensors.index.json``: ``metadata.total_size`` (bytes of tensor data, as the Hub counts
    them), extra metadata and, given ``digests``, every tensor's SHA-256 (:data:`DIGESTS`; transformers reads
    only ``weight_map``), and ``weight_map`` from every tensor to its file."""
    total = sum(s.data_size for s in shards)
    metadata: dict[str, Any] = {"total_size": total, **(extra or {})}
    if digests is not None:
        metadata[DIGESTS] = {e.name: digests[e.name] for s in shards for e in s.entries}
    return {"metadata": metadata, "weight_map": {e.name: s.name for s in shards for e in s.entries}}


def retire_index(folder: str, prefix: str = "model") -> None:
    """Remove ``folder``'s index (and sync the removal) before a build renames any shard into it: until the
    new index is written last, the folder has none, and no reader takes shards of two builds for one."""
    try:
        os.unlink(os.path.join(folder, f"{prefix}.safetensors.index.json"))
    except FileNotFoundError:
        return
    sync_folder(folder)


def index_text(document: dict[str, Any]) -> str:
    """The index as transformers writes it: sorted keys, indent 2, a final newline."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def stale_files(folder: str, shards: list[ShardFile], prefix: str = "model") -> list[str]:
    """Files in ``folder`` named like shards or an index of ``prefix`` that ``shards`` does not write (an
    earlier build's, with another shard count): removed once the new index is written."""
    pattern = re.compile(rf"^{re.escape(prefix)}(-\d{{5}}-of-\d{{5}})?\.safetensors$")
    keep = {s.name for s in shards} | ({f"{prefix}.safetensors.index.json"} if len(shards) > 1 else set())
    names = os.listdir(folder)
    index = f"{prefix}.safetensors.index.json"
    return [n for n in names if (pattern.match(n) or n == index) and n not in keep]


@dataclass
class WriteResult:
    """What a write produced: every tensor's SHA-256, and the file's when asked for (single file)."""

    digests: dict[str, str]
    file_sha256: str | None = None
    files: list[str] = field(default_factory=list)


class _Budget:
    """At most ``limit`` bytes in flight: :meth:`take` waits until they fit (a chunk larger than the limit
    alone is let through)."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self.cond = threading.Condition()

    def take(self, n: int) -> None:
        with self.cond:
            while self.used and self.used + n > self.limit:
                self.cond.wait()
            self.used += n

    def give(self, n: int) -> None:
        with self.cond:
            self.used -= n
            self.cond.notify_all()


def pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    """``os.pwrite`` until every byte is written (a write may be partial)."""
    done = 0
    while done < len(data):
        done += os.pwrite(fd, data[done:], offset + done)


@dataclass
class _Open:
    """A shard being written: its temporary file (entered ``atomic_write``), how many bytes arrived and how
    many of its writes are still running (counted, not kept: a finished future keeps its callbacks, and
    they the chunk's data)."""

    shard: ShardFile
    stack: ExitStack
    fd: int
    received: int = 0
    running: int = 0
    idle: threading.Condition = field(default_factory=threading.Condition)


class Writer:
    """Writes the shards of a :func:`plan` from chunks (see the module doc).

    ``target`` is the folder of the shards, or the file itself for a single-file plan (``single=True``).
    ``index_metadata`` goes into the index's ``metadata`` besides ``total_size``. ``file_digest`` also
    hashes the whole file as written (a single file only). ``skip`` names shards already in place (a resumed
    build): none of their tensors may arrive; ``kept_digests`` holds their tensors' SHA-256 (for the index).
    A folder's earlier index is removed before anything is written (:func:`retire_index`). ``finish=False``
    leaves out both that and the new index with the removal of an earlier build's shards
    (:meth:`finish_folder`), for a task that writes some of the shards (its caller does them).
    ``on_commit(shard name, its tensors' SHA-256)`` is called (on the commit thread) as each shard gets its
    name, complete and synced (what a resumable build records).
    """

    def __init__(
        self,
        target: str,
        shards: list[ShardFile],
        *,
        single: bool = False,
        index_metadata: dict[str, Any] | None = None,
        file_digest: bool = False,
        skip: frozenset[str] = frozenset(),
        prefix: str = "model",
        finish: bool = True,
        on_commit: Callable[[str, dict[str, str]], None] | None = None,
        kept_digests: dict[str, str] | None = None,
    ):
        if single and len(shards) != 1:
            raise ValueError("a single-file write has exactly one shard")
        self.target, self.shards, self.single = target, shards, single
        self.index_metadata, self.file_digest, self.skip, self.prefix = index_metadata, file_digest, skip, prefix
        self.finish, self.on_commit, self.kept_digests = finish, on_commit, kept_digests or {}
        self._hashers: dict[str, Any] = {}
        self.where = {e.name: (s, e) for s in shards for e in s.entries}
        self.committed: list[str] = []
        self.lock = threading.Lock()
        self.failed: BaseException | None = None
        """The first failed write (raised by the loop at the next chunk rather than after the last)."""

    def path(self, shard: ShardFile) -> str:
        return self.target if self.single else os.path.join(self.target, shard.name)

    def write(self, chunks: Iterator[tuple[str, int, np.ndarray]]) -> WriteResult:
        """Write every tensor from ``chunks`` (``(name, first element, flat values)``, each tensor's in order).

        Raises:
            WeightsError: a chunk of an unknown tensor, the wrong dtype, outside its tensor, or a tensor
                whose bytes did not all arrive. OSError: a file cannot be written. In every case the shards
                not yet complete are removed; complete ones stay (a resumed build keeps them).
        """
        if not self.single and self.finish:
            retire_index(self.target, self.prefix)
        hashers = {e.name: hashlib.sha256() for s in self.shards if s.name not in self.skip for e in s.entries}
        self._hashers = hashers
        whole = hashlib.sha256() if self.file_digest else None
        budget = _Budget(IN_FLIGHT)
        opened: dict[str, _Open] = {}
        commits: list[Future[None]] = []
        with ThreadPoolExecutor(WRITERS, "netspec-pwrite") as writers, ThreadPoolExecutor(
            1, "netspec-sha256"
        ) as hashing, ThreadPoolExecutor(1, "netspec-commit") as committer:
            try:
                for name, start, values in chunks:
                    shard, entry = self._locate(name, start, values, WeightsError)
                    state = opened.get(shard.name) or self._open(shard, opened, hashing, whole)
                    self._submit(state, entry, start, values, writers, hashing, hashers[name], whole, budget)
                    if self.failed is not None:
                        raise self.failed
                    if state.received == shard.data_size:
                        commits.append(committer.submit(self._commit, state))
                for shard in self.shards:  # shards of empty tensors only receive no chunk
                    if shard.name not in opened and shard.name not in self.skip:
                        if shard.data_size:
                            missing = ", ".join(e.name for e in shard.entries)
                            raise WeightsError(f"{self.path(shard)}: no data arrived for {missing}")
                        commits.append(committer.submit(self._commit, self._open(shard, opened, hashing, whole)))
                    elif shard.name in opened and opened[shard.name].received != shard.data_size:
                        state = opened[shard.name]
                        raise WeightsError(f"{self.path(shard)}: {state.received:,} of {shard.data_size:,} bytes "
                                           "of tensor data arrived")  # fmt: skip
                for future in commits:
                    future.result()
            except BaseException as exc:
                for future in commits:
                    future.cancel()
                writers.shutdown(wait=True, cancel_futures=True)
                committer.shutdown(wait=True, cancel_futures=True)
                for state in opened.values():
                    if state.shard.name not in self.committed:
                        with suppress(Exception):  # (the temporary file is removed; the first error is raised)
                            state.stack.__exit__(type(exc), exc, exc.__traceback__)
                raise
            digests = hashing.submit(lambda: {n: h.hexdigest() for n, h in hashers.items()}).result()
        if not self.single and self.finish:
            self.finish_folder(self.kept_digests | digests)
        return WriteResult(digests, whole.hexdigest() if whole else None, [self.path(s) for s in self.shards])

    def _locate(self, name: str, start: int, values: np.ndarray, error: type[Exception]) -> tuple[ShardFile, Entry]:
        if name not in self.where:
            raise error(f"no tensor {name!r} in the layout being written")
        shard, entry = self.where[name]
        if shard.name in self.skip:
            raise error(f"tensor {name!r} belongs to {shard.name}, which is kept as it is")
        if values.dtype.name != entry.dtype or start < 0 or start + values.size > entry.size:
            raise error(f"a chunk of {name!r} ({values.dtype.name}, elements {start}..{start + values.size}) is "
                        f"not part of its {entry.dtype}{list(entry.shape)}")  # fmt: skip
        return shard, entry

    def _open(
        self, shard: ShardFile, opened: dict[str, _Open], hashing: ThreadPoolExecutor, whole: Any
    ) -> _Open:
        stack = ExitStack()
        fh = stack.enter_context(atomic_write(self.path(shard)))  # data goes by pwrite, not through fh's buffer
        state = _Open(shard, stack, fh.fileno())
        opened[shard.name] = state
        pwrite_all(state.fd, memoryview(shard.header), 0)
        if whole is not None:
            hashing.submit(whole.update, shard.header)
        return state

    def _submit(
        self,
        state: _Open,
        entry: Entry,
        start: int,
        values: np.ndarray,
        writers: ThreadPoolExecutor,
        hashing: ThreadPoolExecutor,
        hasher: Any,
        whole: Any,
        budget: _Budget,
    ) -> None:
        data = little_endian_bytes(values)
        budget.take(len(data))
        left = [2]

        def done(future: Future[None]) -> None:
            with self.lock:
                left[0] -= 1
                last = left[0] == 0
                if not future.cancelled() and future.exception() is not None and self.failed is None:
                    self.failed = future.exception()
            if last:
                budget.give(len(data))

        def finished(future: Future[None]) -> None:
            done(future)
            with state.idle:
                state.running -= 1
                state.idle.notify_all()

        offset = len(state.shard.header) + entry.begin + start * ITEMSIZE[entry.dtype]
        with state.idle:
            state.running += 2  # the write and the hashing
        writers.submit(pwrite_all, state.fd, data, offset).add_done_callback(finished)
        hashing.submit(_update, hasher, whole, data).add_done_callback(finished)
        state.received += len(data)

    def _commit(self, state: _Open) -> None:
        """Wait for the shard's writes and hashing, then sync it and give it its name (:func:`atomic_write`'s
        exit), then report it (``on_commit``)."""
        with state.idle:
            state.idle.wait_for(lambda: state.running == 0)
        if self.failed is not None:
            raise self.failed
        state.stack.close()
        with self.lock:
            self.committed.append(state.shard.name)
        if self.on_commit is not None:
            self.on_commit(state.shard.name, {e.name: self._hashers[e.name].hexdigest() for e in state.shard.entries})

    def finish_folder(self, digests: dict[str, str]) -> None:
        """The index with every tensor's SHA-256 (when there are several shards), then an earlier build's
        leftover shards removed."""
        if len(self.shards) > 1:
            text = index_text(index_document(self.shards, self.index_metadata, digests))
            with atomic_write(os.path.join(self.target, f"{self.prefix}.safetensors.index.json")) as fh:
                fh.write(text.encode())
        for name in stale_files(self.target, self.shards, self.prefix):
            os.unlink(os.path.join(self.target, name))


def _update(hasher: Any, whole: Any, data: memoryview) -> None:
    hasher.update(data)
    if whole is not None:
        whole.update(data)
