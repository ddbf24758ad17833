"""Where a build goes (``netspec build -o``): an ``.npz`` or ``.safetensors`` file, a folder of safetensors
shards (:mod:`netspec.io.shards`), or a zarr store (``*.zarr``, :mod:`netspec.io.zarr_store`; any fsspec URL
zarr opens).

A path ending with ``.npz`` or ``.safetensors`` is that file (an existing folder of that name is refused
when written, :func:`netspec.io.files.atomic_write`).
Any other output is a **folder** when it exists as one, ends with ``/``, or comes with ``--max-shard-size``
or ``--engine``; an unknown suffix otherwise is a usage error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from netspec.errors import UsageError

if TYPE_CHECKING:
    from netspec.nn.network import Network

KINDS = ("npz", "safetensors", "folder", "zarr")


@dataclass(frozen=True)
class Output:
    """A build's destination: ``kind`` is one of :data:`KINDS`; ``max_shard_size`` for a folder."""

    path: str
    kind: str
    max_shard_size: int | None = None

    @property
    def is_file(self) -> bool:
        return self.kind in ("npz", "safetensors")


def output_for(path: str, max_shard_size: int | None = None, engine: str | None = None) -> Output:
    """What ``path`` names (see the module doc).

    Raises:
        UsageError: an unknown suffix, ``--max-shard-size`` with a single file, or a parent folder that
            does not exist.
    """
    from netspec.io.shards import DEFAULT_SHARD_SIZE

    ext = os.path.splitext(path.rstrip("/\\"))[1].lower()
    if ext == ".zarr" and "://" in path:  # (zarr opens fsspec URLs)
        return Output(path, "zarr")
    parent = os.path.dirname(os.path.abspath(path.rstrip("/\\")))
    if not os.path.isdir(parent):
        raise UsageError(f"{path}: the folder does not exist ({parent})")
    if ext == ".zarr":
        return Output(path, "zarr")
    sharded = max_shard_size is not None or engine is not None
    if ext in (".npz", ".safetensors") and not path.endswith(("/", os.sep)):
        if sharded:
            raise UsageError(f"{path}: a {ext} file cannot be sharded; name a folder for --max-shard-size")
        return Output(path, ext[1:])
    if path.endswith(("/", os.sep)) or os.path.isdir(path) or sharded:
        return Output(path, "folder", max_shard_size or DEFAULT_SHARD_SIZE)
    if ext not in (".npz", ".safetensors"):
        raise UsageError(f"unknown weights format {ext or '(none)'!r} for {path}; use .npz or .safetensors, "
                         "or a folder (a path ending with /)")  # fmt: skip
    return Output(path, ext[1:])


@dataclass
class Result:
    """What a build wrote: every tensor's SHA-256 it knows (all, except tensors split over zarr shards written
    in parallel), the file's SHA-256 (one ``.safetensors`` file), the files, and notes for the user."""

    digests: dict[str, str]
    file_sha256: str | None
    files: list[str]
    notes: list[str] = field(default_factory=list)


def build(
    net: Network,
    out: Output,
    metadata: dict[str, str],
    *,
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    resume: bool = False,
) -> Result:
    """Generate ``net``'s tensors and write them to ``out``.

    A file or a folder built locally: the tensors as chunks, generated ahead of the writer
    (:func:`netspec.nn.sources.chunks`). A zarr store, or any build on ``--engine dask``: tasks, each writing
    whole files (:mod:`netspec.io.cluster`). A folder or a zarr store records its finished parts, and with
    ``resume`` keeps those an earlier build of the same plan finished and whose digests check
    (:mod:`netspec.io.resume`).

    Raises:
        UsageError: ``resume`` for a single file.
    """
    from netspec.io import shards, weights
    from netspec.nn.sources import chunks

    layout = [(name, tuple(p.shape), net.dtype) for name, p in net.parameters()]
    if out.is_file:
        if resume:
            raise UsageError("--resume continues a folder of shards or a zarr store, not a single file")
        digests, file_sha = weights.save_chunks(chunks(net, threads=threads, progress=progress), layout, out.path,
                                                metadata)  # fmt: skip
        return Result(digests, file_sha, [out.path])
    if out.kind == "zarr" or engine == "dask":
        from netspec.io import cluster

        built = cluster.build(net, out, metadata, engine, scheduler, workers, threads, progress, resume)
        return Result(built.digests, None, built.files, built.notes)
    from netspec.io.resume import Record, fingerprint, kept_parts, shard_checks

    os.makedirs(out.path, exist_ok=True)
    plan = shards.plan(layout, metadata, out.max_shard_size)
    record = Record(out.path, fingerprint([s.name.encode() + s.header for s in plan]))
    kept, notes = kept_parts(record, {s.name: s for s in plan}, lambda s, d: shard_checks(out.path, s, d), resume)
    for name, digests in kept.items():
        record.done(name, digests)
    names = {e.name for s in plan if s.name not in kept for e in s.entries}
    done = sum(e.size for s in plan if s.name in kept for e in s.entries)
    if progress and done:
        progress(done)
    known = {k: v for d in kept.values() for k, v in d.items()}
    writer = shards.Writer(out.path, plan, skip=frozenset(kept), on_commit=record.done, kept_digests=known)
    result = writer.write(chunks(net, threads=threads, progress=progress, names=names))
    digests = known | result.digests
    return Result(digests, None, result.files, notes)
