"""Where a build goes (``netspec build -o``): an ``.npz`` or ``.safetensors`` file, a folder of safetensors
shards (:mod:`netspec.io.shards`).

A path ending with ``.npz`` or ``.safetensors`` is that file (an existing folder of that name is refused
when written, :func:`netspec.io.files.atomic_write`).
Any other output is a **folder** when it exists as one, ends with ``/``, or comes with ``--max-shard-size``
or ``--engine``; an unknown suffix otherwise is a usage error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netspec.errors import UsageError

if TYPE_CHECKING:
    from netspec.io.weights import Chunks, Layout

KINDS = ("npz", "safetensors", "folder")


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
    parent = os.path.dirname(os.path.abspath(path.rstrip("/\\")))
    if not os.path.isdir(parent):
        raise UsageError(f"{path}: the folder does not exist ({parent})")
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


def write(
    out: Output, chunks: Chunks, layout: Layout, metadata: dict[str, str], skip: frozenset[str] = frozenset()
) -> tuple[dict[str, str], str | None, list[str]]:
    """Write the tensors of ``chunks`` (in ``layout``'s order) to ``out``.

    Returns:
        Every tensor's SHA-256, the file's SHA-256 (a single ``.safetensors`` file; else None) and the files
        written.
    """
    from netspec.io import shards, weights

    if out.is_file:
        digests, file_sha = weights.save_chunks(chunks, layout, out.path, metadata)
        return digests, file_sha, [out.path]
    os.makedirs(out.path, exist_ok=True)
    plan = shards.plan(layout, metadata, out.max_shard_size)
    result = shards.Writer(out.path, plan, skip=skip).write(chunks)
    return result.digests, None, result.files
