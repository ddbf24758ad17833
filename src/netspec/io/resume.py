"""Resumable builds (``build --resume``): a record of the finished parts, and the check that keeps them.

A folder of shards gets ``.netspec-build.json``, a zarr store the group attribute ``netspec_build``, as its
parts are finished: the plan's
fingerprint (the shards' headers, or the zarr arrays' layouts, and the build's metadata: spec, seed, stream,
dtype) and, per finished part, its digests (a safetensors shard: its tensors' SHA-256; a zarr shard file:
the SHA-256 of its values). It is rewritten atomically after each part, from one thread. ``--resume``
keeps a recorded part only if the plan is the same and the part checks: a shard file must have exactly the
header the plan gives it and tensors whose bytes hash to the recorded digests (read again in full); a zarr
shard's values must hash to its digest. Everything else is written again. A part being written when the
build stopped was never recorded, and its file never got its final name (:func:`atomic_write`; zarr's
local store writes atomically too), so nothing half-written is kept.

The record stays after a complete build (provenance, and a second ``--resume`` checks everything and
writes nothing); it is an ordinary hidden file, safe to delete.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from netspec.io import jsonio
from netspec.io.files import atomic_write

if TYPE_CHECKING:
    from netspec.io.shards import ShardFile

RECORD = ".netspec-build.json"
FORMAT = 1


def fingerprint(parts: list[Any]) -> str:
    """SHA-256 of what fixes the bytes of every part (JSON-able descriptions, or the shards' headers)."""
    digest = hashlib.sha256(b"netspec-build/1\n")
    for part in parts:
        digest.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()


class Record:
    """The finished parts of a build into ``folder`` (a folder of shards or a local zarr store)."""

    def __init__(self, folder: str, plan: str):
        self.path = os.path.join(folder, RECORD)
        self.plan = plan
        self.parts: dict[str, Any] = {}
        self.lock = threading.Lock()

    def _read(self) -> Any:
        """The record's document, or None if there is none (raises JSONError, OSError if unreadable)."""
        return jsonio.load(self.path) if os.path.isfile(self.path) else None

    def _write(self, doc: dict[str, Any]) -> None:
        with atomic_write(self.path) as fh:
            fh.write(json.dumps(doc, sort_keys=True, indent=1).encode())

    def previous(self) -> tuple[dict[str, Any], str]:
        """The parts an earlier build of the same plan recorded, and why there are none (or '')."""
        try:
            doc = self._read()
        except (jsonio.JSONError, OSError) as exc:
            return {}, f"the record of the earlier build is unreadable ({exc})"
        if doc is None:
            return {}, "no record of an earlier build here"
        if not isinstance(doc, dict) or doc.get("netspec_build") != FORMAT or not isinstance(doc.get("parts"), dict):
            return {}, "the record of the earlier build is not netspec's"
        if doc.get("plan") != self.plan:
            return {}, "the earlier build had another plan (spec, seed, dtype, stream or shard size)"
        return doc["parts"], ""

    def done(self, key: str, digests: Any) -> None:
        """Record a finished part (thread-safe; the record is rewritten atomically)."""
        with self.lock:
            self.parts[key] = digests
            self._write({"netspec_build": FORMAT, "plan": self.plan, "parts": self.parts})


class StoreRecord(Record):
    """The record of a zarr store: its group's attribute ``netspec_build`` (zarr rewrites the group's
    ``zarr.json`` atomically; only the client writes it), so the store holds nothing zarr does not know."""

    def __init__(self, store: str, plan: str):
        super().__init__(store, plan)
        self.store = store

    def _group(self) -> Any:
        from netspec.io.zarr_store import options, zarr_module

        return zarr_module().open_group(self.store, mode="a", **options(self.store))

    def _read(self) -> Any:
        return self._group().attrs.get("netspec_build")

    def _write(self, doc: dict[str, Any]) -> None:
        self._group().attrs["netspec_build"] = doc


def shard_checks(folder: str, shard: ShardFile, digests: Any) -> bool:
    """Whether the file of ``shard`` in ``folder`` is complete and unchanged: its size, exactly the plan's
    header, and every tensor's bytes hashing to ``digests`` (read in full, a run at a time)."""
    from netspec.io.files import open_regular

    path = os.path.join(folder, shard.name)
    if not isinstance(digests, dict) or set(digests) != {e.name for e in shard.entries}:
        return False
    try:
        if os.path.getsize(path) != shard.size:
            return False
        with open_regular(path) as fh:
            if fh.read(len(shard.header)) != shard.header:
                return False
            for entry in shard.entries:
                digest = hashlib.sha256()
                left = entry.end - entry.begin
                while left:
                    data = fh.read(min(left, 16 << 20))
                    if not data:
                        return False
                    digest.update(data)
                    left -= len(data)
                if digest.hexdigest() != digests[entry.name]:
                    return False
    except OSError:
        return False
    return True


def kept_parts(
    record: Record, parts: dict[str, Any], checks: Callable[[Any, Any], bool], resume: bool
) -> tuple[dict[str, Any], list[str]]:
    """The parts an earlier build finished that check (with ``resume``), and a note saying what was kept."""
    if not resume:
        return {}, []
    previous, why = record.previous()
    if why:
        return {}, [f"resume: nothing kept ({why})"]
    kept = {key: digests for key, digests in previous.items() if key in parts and checks(parts[key], digests)}
    failed = sorted(set(previous) & set(parts) - set(kept))
    note = f"resume: kept {len(kept)} of {len(parts)} finished parts whose digests check"
    return kept, [note + (f"; rewriting {len(failed)} that do not ({', '.join(failed[:3])})" if failed else "")]
