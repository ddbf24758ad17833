"""Writing and reading weight files: ``.npz`` and ``.safetensors``, atomically.

Files are written atomically (:func:`netspec.io.files.atomic_write`: an anonymous
file where the platform has one, flushed, fsynced, then named and renamed over the
destination), so an interrupted, failed or killed write leaves nothing behind.
Arrays are streamed to disk one at a time (no second in-memory copy of the
weights). The safetensors writer is netspec's own (the format is a
length-prefixed JSON header and raw little-endian bytes):
``safetensors.numpy.save_file`` builds the whole file in memory first. The
test-suite checks the files with the ``safetensors`` library.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from netspec.errors import WeightsError
from netspec.io import jsonio
from netspec.io.files import atomic_write, open_regular, require_file
from netspec.io.shards import ST_DTYPES, Writer, plan

if TYPE_CHECKING:
    import numpy as np

    from netspec.nn.network import Network


FORMATS = (".npz", ".safetensors")
NPZ_METADATA = "netspec-metadata.json"
"""The .npz member that held the metadata in files written before netspec kept it in the archive comment
(still read; never written: ``np.load(f).items()`` would yield it as an array of bytes)."""
NPZ_COMMENT_PREFIX = b"netspec-metadata "
"""An .npz file's metadata (spec name, seed, ...; what safetensors keeps in its header) is the zip archive
comment: this prefix, then the JSON object. ``np.load`` does not see it."""
ZIP_COMMENT_LIMIT = 0xFFFF
NPZ_REFUSES = ("bfloat16",)
"""Precisions an ``.npz`` cannot hold (NumPy's format has no bfloat16)."""
ST_HEADER_LIMIT = 100 * 1024 * 1024
"""The safetensors format's own limit on the JSON header (the reference implementation's)."""
ST_HEADER_VALUES = 2_000_000
"""Values and keys in a header (about 15 per tensor): bounds the memory a hostile header costs."""


def file_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise WeightsError(f"unknown weights format {ext or '(none)'!r} for {path}; use .npz or .safetensors")
    return ext


def save(params: dict[str, np.ndarray], path: str, metadata: dict[str, str] | None = None) -> str | None:
    """Write ``params`` to ``path`` (format from the extension), atomically.

    Returns:
        The file's SHA-256 where it comes free with the writing (``.safetensors`` is written front to
        back and hashed on a background thread as it goes); None for ``.npz``, whose zip headers are
        rewritten after the data.

    Raises:
        WeightsError: unknown format. OSError: the file cannot be written (nothing is left behind).
    """
    layout = [(name, tuple(a.shape), a.dtype.name) for name, a in params.items()]
    return save_stream(iter(params.items()), layout, path, metadata)


Layout = list[tuple[str, tuple[int, ...], str]]
"""Every tensor's name, shape and dtype name, in the order they come."""


def save_stream(
    tensors: Iterator[tuple[str, np.ndarray]], layout: Layout, path: str, metadata: dict[str, str] | None = None
) -> str | None:
    """Like :func:`save`, from tensors that arrive one at a time (e.g. ``Network.generate()``), each
    written as it comes, so only the tensors in flight are in memory. ``layout`` must announce them.

    Raises:
        WeightsError: a tensor differs from the layout, or the format is unknown. OSError: as :func:`save`.
    """
    file_format(path)
    chunks = ((name, 0, array.reshape(-1)) for name, array in _checked(tensors, layout))
    return save_chunks(chunks, layout, path, metadata)[1]


Chunks = Iterator[tuple[str, int, "np.ndarray"]]
"""``(tensor name, first element, flat values)`` runs, each tensor's in order (:mod:`netspec.nn.sources`)."""


def save_chunks(
    chunks: Chunks, layout: Layout, path: str, metadata: dict[str, str] | None = None
) -> tuple[dict[str, str], str | None]:
    """Write tensors that arrive as chunks (tensors in ``layout``'s order) to an ``.npz`` or ``.safetensors``
    file, atomically, holding only the chunks in flight.

    Returns:
        Every tensor's SHA-256, and the file's for ``.safetensors`` (hashed as written; None for ``.npz``,
        whose zip headers are rewritten after the data).

    Raises:
        WeightsError: a chunk differs from the layout, or the format is unknown or cannot hold a dtype.
        OSError: the file cannot be written (nothing is left behind).
    """
    if file_format(path) == ".npz":
        check_npz_dtypes({dtype for _, _, dtype in layout}, path)
        with atomic_write(path) as fh:
            return _write_npz(chunks, layout, fh, metadata or {}), None
    shards = plan(layout, metadata, single=os.path.basename(path))
    result = Writer(path, shards, single=True, file_digest=True).write(chunks)
    return result.digests, result.file_sha256


def check_npz_dtypes(dtypes: set[str], path: str) -> None:
    """Refuse an ``.npz`` for a precision it cannot hold (bfloat16: NumPy's format has no such type).

    Raises:
        WeightsError: naming the type and the formats that hold it.
    """
    refused = sorted(dtypes & set(NPZ_REFUSES))
    if refused:
        raise WeightsError(f"{path}: an .npz cannot hold {refused[0]} (NumPy's format has no such type); "
                           "write .safetensors (or a folder of shards) instead")  # fmt: skip


def _checked(tensors: Iterator[tuple[str, np.ndarray]], layout: Layout) -> Iterator[tuple[str, np.ndarray]]:
    count = 0
    for (name, array), expected in zip(tensors, layout, strict=False):
        if (name, tuple(array.shape), array.dtype.name) != expected:
            raise WeightsError(f"tensor {name!r} {array.dtype.name}{list(array.shape)} is not the announced {expected}")
        count += 1
        yield name, array
    if count != len(layout):
        raise WeightsError(f"{count} tensors arrived, {len(layout)} were announced")


def content_digest(digests: dict[str, str], params: dict[str, np.ndarray]) -> str:
    """One SHA-256 for a set of tensors, from their own digests (no pass over the data).

    ``SHA-256("netspec-content/1\\n" + "<name>\\t<dtype>\\t<shape>\\t<sha256 of the C-order bytes>\\n" ...)``,
    one line per tensor sorted by name, so the same tensors give the same digest in any file format
    and order; :func:`tensor_digests` computes the per-tensor digests of loaded arrays.
    """
    return layout_digest(digests, [(name, tuple(a.shape), a.dtype.name) for name, a in params.items()])


def layout_digest(digests: dict[str, str], layout: Layout) -> str:
    """:func:`content_digest` from the layout (names, shapes, dtypes) instead of the arrays."""
    lines = [f"{name}\t{dtype}\t{json.dumps(list(shape))}\t{digests[name]}\n" for name, shape, dtype in sorted(layout)]
    return hashlib.sha256(("netspec-content/1\n" + "".join(lines)).encode()).hexdigest()


def tensor_digests(params: dict[str, np.ndarray]) -> dict[str, str]:
    """SHA-256 (hex) of each tensor's C-order bytes, as ``Network.initialize(digests=...)`` computes them."""
    from netspec.init.precision import byte_view

    return {name: hashlib.sha256(byte_view(a)).hexdigest() for name, a in params.items()}


def _write_npz(chunks: Chunks, layout: Layout, fh: IO[bytes], metadata: dict[str, str]) -> dict[str, str]:
    """Each tensor a stored (uncompressed) ``.npy`` member, its header and then its chunks' bytes as they
    come, each tensor hashed on a background thread; returns the digests."""
    import numpy as np

    from netspec.init.precision import byte_view, numpy_dtype

    comment = NPZ_COMMENT_PREFIX + json.dumps(metadata, sort_keys=True, separators=(",", ":")).encode()
    if len(comment) > ZIP_COMMENT_LIMIT:
        raise WeightsError(f"the metadata ({len(comment):,} bytes) does not fit an .npz archive comment "
                           f"({ZIP_COMMENT_LIMIT:,} bytes at most); write .safetensors")  # fmt: skip
    pending = _Peek(chunks)
    hashers: dict[str, Any] = {}
    with _hash_thread() as hash_later, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED,
                                                       allowZip64=True) as zf:  # fmt: skip
        if metadata:
            zf.comment = comment
        for name, shape, dtype in layout:
            hashers[name] = hashlib.sha256()
            header = {"descr": np.lib.format.dtype_to_descr(numpy_dtype(dtype)), "fortran_order": False,
                      "shape": tuple(shape)}  # fmt: skip
            with zf.open(_member(name + ".npy"), "w", force_zip64=True) as member:
                _npy_header(member, header)
                for values in pending.take(name, math.prod(shape)):
                    data = byte_view(values)
                    member.write(data)
                    hash_later(hashers[name].update, data)
        pending.done()
    return {name: h.hexdigest() for name, h in hashers.items()}


def _npy_header(member: IO[bytes], header: dict[str, Any]) -> None:
    """The ``.npy`` header ``np.lib.format.write_array`` writes: format 1.0, or 2.0 when it does not fit."""
    import numpy as np

    try:
        np.lib.format.write_array_header_1_0(member, header)
    except ValueError:
        np.lib.format.write_array_header_2_0(member, header)


class _Peek:
    """Chunks handed out tensor by tensor, checked against the layout."""

    def __init__(self, chunks: Chunks):
        self.chunks = iter(chunks)
        self.next: tuple[str, int, np.ndarray] | None = next(self.chunks, None)

    def take(self, name: str, size: int) -> Iterator[np.ndarray]:
        """The chunks of ``name``, in order, covering its ``size`` elements exactly."""
        got = 0
        while got < size:
            if self.next is None or self.next[0] != name or self.next[1] != got:
                where = "nothing" if self.next is None else f"{self.next[0]!r} at element {self.next[1]}"
                raise WeightsError(f"tensor {name!r}: expected its element {got}, got {where}")
            values = self.next[2]
            got += values.size
            yield values
            self.next = next(self.chunks, None)
        if got != size:
            raise WeightsError(f"tensor {name!r}: {got} elements arrived, it has {size}")

    def done(self) -> None:
        if self.next is not None:
            raise WeightsError(f"tensor {self.next[0]!r} is not in the layout being written")


@contextmanager
def _hash_thread() -> Iterator[Any]:
    """``hash_later(update, data)``: updates run in order on one background thread; at most 64 wait."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    slots = threading.BoundedSemaphore(64)
    with ThreadPoolExecutor(1, thread_name_prefix="netspec-sha256") as pool:

        def hash_later(update: Any, data: memoryview) -> None:
            slots.acquire()
            pool.submit(update, data).add_done_callback(lambda _: slots.release())

        yield hash_later


def _member(name: str) -> zipfile.ZipInfo:
    """A zip member with a fixed timestamp (the zip epoch) and mode, so equal tensors give equal files:
    zipfile would stamp each member with the time of writing."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    return info


def load(path: str, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Read a weights file written by netspec (or any plain npz/safetensors file).

    Args:
        path: an ``.npz`` or ``.safetensors`` file (a regular file: a FIFO or device is refused unopened).
        max_bytes: bounds what an ``.npz`` may expand to (its members' declared sizes are checked
            before anything is decompressed); safetensors tensors are memory-mapped after their
            header is type-checked and their offsets checked to tile the data section exactly.

    Raises:
        WeightsError: the file cannot be read, is malformed, or is larger than ``max_bytes``.
    """
    if os.path.isdir(path):
        return _read_folder(path)
    ext = file_format(path)
    try:
        with open_regular(path) as fh:
            if ext == ".npz":
                with _archive(path, "cannot read weights"):
                    _check_npz_size(fh, path, max_bytes)
                    return _read_npz(fh, path)
            return _read_safetensors(fh, path)
    except WeightsError:
        raise
    except (OSError, ValueError, KeyError, struct.error) as exc:
        raise WeightsError(f"{path}: cannot read weights: {exc}") from None


def _read_folder(folder: str) -> dict[str, np.ndarray]:
    """Every tensor of a folder of safetensors shards (memory-mapped), each file checked against the index,
    and each tensor against the SHA-256 the index records (netspec's indexes)."""
    from netspec.init.precision import byte_view

    out: dict[str, np.ndarray] = {}
    files, digests = folder_index(folder)
    for file, names in files.items():
        try:
            with open_regular(file) as fh:
                found = _read_safetensors(fh, file)
        except (OSError, ValueError, struct.error) as exc:
            raise WeightsError(f"{file}: cannot read weights: {exc}") from None
        _check_shard(file, set(found), names, set(out))
        for name, array in found.items():
            if name in digests and hashlib.sha256(byte_view(array)).hexdigest() != digests[name]:
                raise WeightsError(f"{file}: {name!r} is not the tensor the folder's index records (another "
                                   "SHA-256): the folder mixes shards of different builds; build it again")  # fmt: skip
        out.update(found)
    return out


def _check_shard(file: str, found: set[str], listed: list[str] | None, seen: set[str]) -> None:
    """A shard holds exactly the tensors its folder's index maps to it, and none another shard holds."""
    twice = sorted(found & seen)
    if twice:
        raise WeightsError(f"{file}: holds {twice[0]!r}, which another shard of the folder holds too")
    if listed is not None and found != set(listed):
        extra, missing = sorted(found - set(listed)), sorted(set(listed) - found)
        what = f"holds {extra[0]!r}, which the index maps elsewhere" if extra else f"lacks {missing[0]!r}"
        raise WeightsError(f"{file}: {what} (the folder's index and its shards disagree)")


INDEX_SUFFIX = ".safetensors.index.json"
_SHARD_NAME = re.compile(r"^[^/\\\x00]+\.safetensors$")


_PART = re.compile(r"-\d{5}-of-(\d{5})\.safetensors$")
UNFINISHED = "a build that stopped before writing its index leaves this: build again (or build --resume)"


def shard_files(folder: str) -> dict[str, list[str] | None]:
    """The safetensors files of a folder of shards and the tensors its index maps to each (None: a folder
    without an index holds one ``.safetensors`` file, not named as one of several shards). The index
    (``*.safetensors.index.json``, read through the bounded JSON reader) may name only plain file names in
    the folder.

    Raises:
        WeightsError: no index and not exactly one ``.safetensors`` file or a file named as one of several
            shards (an unfinished build), several indexes, a malformed index, or one naming a file outside
            the folder or missing.
    """
    return folder_index(folder)[0]


def folder_index(folder: str) -> tuple[dict[str, list[str] | None], dict[str, str]]:
    """:func:`shard_files`, and every tensor's SHA-256 the index records (``metadata.tensor_sha256``, written
    by netspec; empty for an index another tool wrote).

    Raises:
        WeightsError: as :func:`shard_files`; recorded digests that are not SHA-256s of the index's tensors.
    """
    names = sorted(os.listdir(folder))
    indexes = [n for n in names if n.endswith(INDEX_SUFFIX)]
    if len(indexes) > 1:
        raise WeightsError(f"{folder}: holds several indexes ({', '.join(indexes)}); keep one")
    if not indexes:
        files = [n for n in names if n.endswith(".safetensors") and not n.startswith(".")]
        part = _PART.search(files[0]) if len(files) == 1 else None
        if len(files) != 1 or (part and int(part[1]) > 1):
            unfinished = any(_PART.search(n) for n in files)
            raise WeightsError(f"{folder}: not a folder of weights: no *{INDEX_SUFFIX} and {len(files)} "
                               ".safetensors files (one, not a shard of several, is needed without an index)"
                               + (f"; {UNFINISHED}" if unfinished else ""))  # fmt: skip
        return {os.path.join(folder, files[0]): None}, {}
    index = os.path.join(folder, indexes[0])
    try:
        document = jsonio.load(index)
    except (jsonio.JSONError, OSError) as exc:
        raise WeightsError(f"{index}: cannot read the index: {exc}") from None
    weight_map = document.get("weight_map") if isinstance(document, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise WeightsError(f"{index}: 'weight_map' must map tensor names to file names")
    out: dict[str, list[str] | None] = {}
    for name, file in weight_map.items():
        if not _SHARD_NAME.match(file) or file.startswith(".") or file != os.path.basename(file):
            raise WeightsError(f"{index}: tensor {name!r} maps to {file!r}, not a .safetensors file in the folder")
        listed = out.setdefault(os.path.join(folder, file), [])
        assert listed is not None
        listed.append(name)
    for file in out:
        if not os.path.isfile(file):
            raise WeightsError(f"{index}: names {os.path.basename(file)}, which is not in the folder")
    return out, _recorded_digests(document, weight_map, index)


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _recorded_digests(document: dict[str, Any], weight_map: dict[str, str], index: str) -> dict[str, str]:
    from netspec.io.shards import DIGESTS

    metadata = document.get("metadata")
    recorded = metadata.get(DIGESTS) if isinstance(metadata, dict) else None
    if recorded is None:
        return {}
    if not isinstance(recorded, dict) or not all(
        name in weight_map and isinstance(d, str) and _SHA256.match(d) for name, d in recorded.items()
    ):
        raise WeightsError(f"{index}: metadata.{DIGESTS} must map the index's tensors to SHA-256 digests")
    return recorded


@contextmanager
def _archive(path: str, what: str) -> Iterator[None]:
    """Around zipfile and numpy's .npy reader, which raise many types for malformed or unsupported bytes
    (BadZipFile, NotImplementedError for a zip version or compression, RuntimeError for encryption,
    EOFError, zlib.error, SyntaxError from the .npy header's ast.literal_eval, ...): all mean the file
    cannot be read, a WeightsError naming it. (netspec's own safetensors reader raises its own errors.)"""
    try:
        yield
    except WeightsError:
        raise
    except Exception as exc:
        raise WeightsError(f"{path}: {what}: {type(exc).__name__}: {exc}") from None


def _check_npz_size(fh: BinaryIO, path: str, max_bytes: int | None) -> None:
    if max_bytes is None:
        return
    with zipfile.ZipFile(fh) as zf:
        declared = sum(info.file_size for info in zf.infolist())
    if declared > max_bytes:
        raise WeightsError(f"{path}: expands to {declared:,} bytes, more than the spec's {max_bytes:,}; not loading it")


def _npz_members(zf: zipfile.ZipFile, path: str) -> list[zipfile.ZipInfo]:
    """The tensor members of an .npz archive, checked: each a ``.npy`` file, no name twice (which one would
    count?); the metadata member of earlier versions left out."""
    infos = [info for info in zf.infolist() if info.filename != NPZ_METADATA]
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise WeightsError(f"{path}: the archive holds {', '.join(map(repr, twice))} more than once")
    other = next((n for n in names if not n.endswith(".npy")), None)
    if other is not None:
        raise WeightsError(f"{path}: member {other!r} is not a .npy array")
    return infos


def _read_npz(fh: BinaryIO, path: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive: every member a ``.npy`` array (``np.load`` hands other members over
    as bytes), no name twice (which one would count?)."""
    import numpy as np

    fh.seek(0)
    with zipfile.ZipFile(fh) as zf:
        _npz_members(zf, path)
    fh.seek(0)
    with np.load(fh, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files if name != NPZ_METADATA}
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray):  # a member without the .npy magic comes back as bytes
            raise WeightsError(f"{path}: member {name + '.npy'!r} is not a .npy array")
    return arrays


def load_metadata(path: str) -> dict[str, str]:
    """The metadata a weights file carries (spec name, seed, ...): safetensors' ``__metadata__``, an
    .npz file's archive comment (:data:`NPZ_COMMENT_PREFIX`), or the member :data:`NPZ_METADATA` of
    .npz files written by earlier versions; empty if it has none.

    Raises:
        WeightsError: the file cannot be read or its metadata is not a mapping of strings.
    """
    if os.path.isdir(path):
        return _folder_metadata(path)
    ext = file_format(path)
    try:
        with open_regular(path) as fh:
            if ext == ".npz":
                with _archive(path, "cannot read metadata"), zipfile.ZipFile(fh) as zf:
                    if zf.comment.startswith(NPZ_COMMENT_PREFIX):
                        meta = _json(zf.comment[len(NPZ_COMMENT_PREFIX) :], path, "the archive comment's metadata")
                    elif NPZ_METADATA not in zf.namelist():
                        return {}
                    elif zf.getinfo(NPZ_METADATA).file_size > jsonio.MAX_BYTES:
                        raise WeightsError(f"{path}: metadata member is over the size limit")
                    else:
                        meta = _json(zf.read(NPZ_METADATA), path, NPZ_METADATA)
            else:
                meta = _safetensors_header(fh, path)[0].get("__metadata__", {})
    except WeightsError:
        raise
    except (OSError, ValueError, KeyError, struct.error) as exc:
        raise WeightsError(f"{path}: cannot read metadata: {exc}") from None
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise WeightsError(f"{path}: metadata must be a mapping of strings to strings")
    return meta


def _folder_metadata(folder: str) -> dict[str, str]:
    """The metadata of a folder's shards (every shard must carry the same)."""
    found = [load_metadata(file) for file in shard_files(folder)]
    if any(meta != found[0] for meta in found):
        raise WeightsError(f"{folder}: its shards record different metadata")
    return found[0]


def _safetensors_header(fh: BinaryIO, path: str) -> tuple[dict[str, Any], int]:
    """The parsed, type-checked JSON header of the open file ``fh`` and the offset where the data starts."""
    prefix = fh.read(8)
    if len(prefix) != 8:
        raise WeightsError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", prefix)
    if n > ST_HEADER_LIMIT:
        raise WeightsError(f"{path}: safetensors header of {n} bytes is over the limit")
    blob = fh.read(n)
    if len(blob) != n:
        raise WeightsError(f"{path}: the safetensors header is cut short ({len(blob)} of {n} bytes)")
    header = _json(blob, path, "safetensors header", max_bytes=ST_HEADER_LIMIT, max_values=ST_HEADER_VALUES)
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: the safetensors header must be a JSON object, got {type(header).__name__}")
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict):
                raise WeightsError(f"{path}: __metadata__ must be a JSON object")
            continue
        _check_entry(path, name, info)
    return header, 8 + n


def _json(blob: bytes, path: str, what: str, **limits: int) -> Any:
    """A JSON document inside a weights file, through the bounded reader (a WeightsError naming where)."""
    try:
        return jsonio.loads(blob, path, **limits)
    except jsonio.JSONError as exc:
        where = f", line {exc.line} column {exc.column}" if exc.line else ""
        raise WeightsError(f"{path}: {what}{where}: {exc.message}") from None


def _check_entry(path: str, name: str, info: Any) -> None:
    """One tensor entry: {"dtype": str, "shape": [int >= 0, ...], "data_offsets": [int, int]}."""

    def ints(value: Any, count: int | None) -> bool:
        return (
            isinstance(value, list)
            and (count is None or len(value) == count)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
        )

    if not isinstance(info, dict):
        raise WeightsError(f"{path}: tensor {name!r}: entry must be a JSON object, got {json.dumps(info)[:40]}")
    if not isinstance(info.get("dtype"), str):
        raise WeightsError(f"{path}: tensor {name!r}: 'dtype' must be a string")
    if not ints(info.get("shape"), None):
        raise WeightsError(f"{path}: tensor {name!r}: 'shape' must be a list of non-negative integers")
    if not ints(info.get("data_offsets"), 2):
        raise WeightsError(f"{path}: tensor {name!r}: 'data_offsets' must be two non-negative integers")


def check_tiling(path: str, extents: list[tuple[str, int, int]], size: int) -> None:
    """The tensors ``(name, begin, end)`` must tile the data section ``[0, size)`` exactly, as the
    safetensors format requires (and its reference implementation checks): sorted by offset, each
    begins where the previous ended, the last ends at ``size`` (the end of the file). Overlapping tensors
    (two names for the same bytes), gaps and trailing bytes (data no tensor owns) are refused.

    Raises:
        WeightsError: naming the tensor and its offsets.
    """
    position, previous = 0, ""
    for name, begin, end in sorted(extents, key=lambda e: (e[1], e[2])):
        if begin != position:
            after = f"where {previous!r} ends" if previous else "where the data section starts"
            gap = f"leaves a gap of {begin - position:,} bytes"
            what = "overlaps the tensor before it" if begin < position else gap
            raise WeightsError(f"{path}: tensor {name!r} (data_offsets [{begin}, {end}]) {what}: it must begin at "
                               f"byte {position:,}, {after}")  # fmt: skip
        if end > size:
            raise WeightsError(f"{path}: tensor {name!r} (data_offsets [{begin}, {end}]) runs past the end of the "
                               f"file: the data section holds {size:,} bytes")  # fmt: skip
        position, previous = end, name
    if position != size:
        last = f"after the last tensor {previous!r}, which ends at byte {position:,}" if previous else "and no tensor"
        raise WeightsError(f"{path}: the data section has {size - position:,} bytes that no tensor owns ({size:,} "
                           f"bytes, {last})")  # fmt: skip


def _read_safetensors(fh: BinaryIO, path: str) -> dict[str, np.ndarray]:
    import numpy as np

    out: dict[str, np.ndarray] = {}
    for name, (shape, dtype, offset, nbytes) in _safetensors_tensors(fh, path).items():
        if not nbytes:  # no bytes to map (mmap refuses a length of 0)
            out[name] = np.zeros(shape, dtype)
        else:
            out[name] = np.memmap(fh, dtype=dtype, mode="r", offset=offset, shape=shape)
    return out


def _safetensors_tensors(fh: BinaryIO, path: str) -> dict[str, tuple[tuple[int, ...], np.dtype, int, int]]:
    """Every tensor of the open safetensors file: shape, dtype, offset of its data in the file and its byte
    count, once the header is checked and the tensors tile the data section exactly."""
    header, start = _safetensors_header(fh, path)
    size = os.fstat(fh.fileno()).st_size - start
    extents = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = st_numpy_dtype(path, name, info["dtype"])
        shape = tuple(info["shape"])
        if begin > end or end - begin != math.prod(shape) * dtype.itemsize:
            raise WeightsError(f"{path}: tensor {name!r}: data_offsets [{begin}, {end}] hold {end - begin:,} bytes, "
                               f"its shape {list(shape)} and dtype {info['dtype']} need "
                               f"{math.prod(shape) * dtype.itemsize:,}")  # fmt: skip
        extents.append((name, begin, end))
    check_tiling(path, extents, size)
    return {name: (tuple(header[name]["shape"]), st_numpy_dtype(path, name, header[name]["dtype"]), start + begin,
                   end - begin) for name, begin, end in extents}  # fmt: skip


def st_numpy_dtype(path: str, name: str, code: str) -> np.dtype:
    """The little-endian NumPy dtype of a safetensors dtype code (``F32``, ``BF16``, ...).

    Raises:
        WeightsError: a code netspec does not write.
    """
    from netspec.init.precision import numpy_dtype

    inverse = {v: k for k, v in ST_DTYPES.items()}
    if code not in inverse:
        raise WeightsError(f"{path}: tensor {name!r} has unsupported dtype {code!r}")
    dtype = numpy_dtype(inverse[code])
    return dtype if dtype.name == "bfloat16" else dtype.newbyteorder("<")


def check_against(params: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]], dtype: str) -> list[str]:
    """Problems with a loaded weights dict versus the spec's parameter shapes."""
    return layout_problems({k: (tuple(a.shape), a.dtype.name) for k, a in params.items()}, expected, dtype)


def layout_problems(
    found: dict[str, tuple[tuple[int, ...], str]], expected: dict[str, tuple[int, ...]], dtype: str
) -> list[str]:
    """Problems with tensors' ``(shape, dtype name)`` versus the spec's parameter shapes and dtype."""
    problems = []
    for name, shape in expected.items():
        if name not in found:
            problems.append(f"missing tensor {name!r}")
        elif tuple(found[name][0]) != tuple(shape):
            problems.append(f"{name}: shape {list(found[name][0])}, the spec says {list(shape)}")
        elif found[name][1] != dtype:
            problems.append(f"{name}: dtype {found[name][1]}, the spec says {dtype}")
    problems += [f"unexpected tensor {name!r}" for name in found if name not in expected]
    return problems


def metadata_for(net: Network) -> dict[str, str]:
    """What a weights file records about where it came from (safetensors header or .npz member).

    Only what determines the bytes (no version, no path), so the same spec and seed give the same file.
    ``netspec_stream`` is the stream actually used: ``legacy`` or ``block/N`` (``rng: block`` resolved to
    the default version), the ``rng`` spelling that reproduces the file.
    """
    from netspec.init.streams import block_version

    meta = {
        "netspec_spec": net.name,
        "netspec_seed": str(net.seed),
        "netspec_stream": "legacy" if net.rng == "legacy" else f"block/{block_version(net.rng)}",
        "netspec_rng": net.rng,
        "netspec_dtype": net.dtype,
    }
    if net.width_mult:  # muP: each tensor's width multiplier, for an optimizer that scales learning rates by it
        meta["netspec_width_mult"] = json.dumps(dict(sorted(net.width_mult.items())), separators=(",", ":"))
    return meta


def size_limit(net: Network) -> int:
    """The most bytes a weights file of ``net`` may expand to: its tensors plus 1 MiB per layer of headers."""
    return net.nbytes + (1 << 20) * (1 + len(net.layers))


def load_for(net: Network, path: str) -> dict[str, np.ndarray]:
    """The weights in ``path``, checked against ``net``'s parameters (names, shapes, dtype).

    The file may not expand past the spec's own size (plus 1 MiB per layer for
    headers) before anything is decompressed.

    Raises:
        WeightsError: the file is missing, unreadable, too large, or does not match the spec.
    """
    if not os.path.isdir(path):
        require_file(path)
    params = load(path, max_bytes=size_limit(net))
    expected = {name: p.shape for name, p in net.parameters()}
    problems = check_against(params, expected, net.dtype)
    if problems:
        raise WeightsError(f"{path} does not match {net.source}: " + "; ".join(problems))
    return params


class TensorReader:
    """Runs of the tensors of a ``.safetensors`` file, a folder of shards or an ``.npz``, read when asked and
    never the whole file (constant memory: ``verify`` and ``lock`` read tensors chunk by chunk).

    ``max_bytes`` bounds what an ``.npz``'s members may declare (as :func:`load`).

    Safetensors: read at the tensor's offset into a new array (``os.preadv``; nothing is memory-mapped, so
    pages already read do not stay in the process). ``.npz``: the member read front to back (compressed
    members too); a run before the member's position reopens it.

    Raises:
        WeightsError: the file cannot be read or is malformed.
    """

    def __init__(self, path: str, max_bytes: int | None = None):
        import contextlib

        self.path = path
        self.tensors: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        """Every tensor's shape and dtype."""
        self._at: dict[str, tuple[int, int]] = {}
        self._fds: list[int] = []
        self._npz: zipfile.ZipFile | None = None
        self._member: tuple[str, IO[bytes], int] | None = None
        self._stack = contextlib.ExitStack()
        try:
            if os.path.isdir(path):
                for file, names in shard_files(path).items():
                    found = self._open_safetensors(file)
                    _check_shard(file, set(found), names, set(self.tensors) - set(found))
            elif file_format(path) == ".safetensors":
                self._open_safetensors(path)
            else:
                with _archive(path, "cannot read weights"):
                    self._open_npz(path, max_bytes)
        except WeightsError:
            self.close()
            raise
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, struct.error) as exc:
            self.close()
            raise WeightsError(f"{path}: cannot read weights: {exc}") from None

    def _open_safetensors(self, file: str) -> set[str]:
        fh = self._stack.enter_context(open_regular(file))
        found = _safetensors_tensors(fh, file)
        for name, (shape, dtype, offset, _) in found.items():
            if name in self.tensors:
                raise WeightsError(f"{file}: holds {name!r}, which another shard of the folder holds too")
            self.tensors[name] = (shape, dtype)
            self._at[name] = (fh.fileno(), offset)
        return set(found)

    def _open_npz(self, path: str, max_bytes: int | None) -> None:
        fh = self._stack.enter_context(open_regular(path))
        _check_npz_size(fh, path, max_bytes)
        fh.seek(0)
        self._npz = self._stack.enter_context(zipfile.ZipFile(fh))
        for info in _npz_members(self._npz, path):
            name = info.filename.removesuffix(".npy")
            with self._npz.open(info) as member:
                shape, _, dtype = _npy_member_header(member, path, name)
            self.tensors[name] = (shape, dtype)

    def read(self, name: str, start: int, count: int) -> np.ndarray:
        """Elements ``[start, start + count)`` of tensor ``name`` (C order), as a new flat array."""
        import numpy as np

        shape, dtype = self.tensors[name]
        if not 0 <= start <= start + count <= math.prod(shape):
            raise WeightsError(f"{self.path}: elements {start}..{start + count} are outside {name!r} {list(shape)}")
        out = np.empty(count, dtype)
        if name in self._at:
            fd, offset = self._at[name]
            view, done = out.view(np.uint8).data, 0
            while done < len(view):
                got = os.preadv(fd, [view[done:]], offset + start * dtype.itemsize + done)
                if got <= 0:
                    raise WeightsError(f"{self.path}: {name!r} ends early")
                done += got
            return out
        with _archive(self.path, f"cannot read {name!r}"):  # (a corrupt member: zlib, CRC, EOF errors)
            member = self._seek(name, start)
            data = member.read(count * dtype.itemsize)
        if len(data) != count * dtype.itemsize:
            raise WeightsError(f"{self.path}: {name!r} ends early")
        self._member = (name, member, start + count)
        out[:] = np.frombuffer(data, dtype)
        return out

    def _seek(self, name: str, start: int) -> IO[bytes]:
        """The open member of ``name`` positioned at element ``start`` (reopened when behind)."""
        assert self._npz is not None
        if self._member is not None and self._member[0] == name and self._member[2] == start:
            return self._member[1]
        if self._member is not None:
            self._member[1].close()
        member = self._npz.open(name + ".npy")
        shape, fortran, dtype = _npy_member_header(member, self.path, name)
        if fortran and len(shape) > 1:
            raise WeightsError(f"{self.path}: {name!r} is stored in Fortran order; netspec reads C order")
        member.read(start * dtype.itemsize)
        return member

    def close(self) -> None:
        if self._member is not None:
            self._member[1].close()
            self._member = None
        self._stack.close()

    def __enter__(self) -> TensorReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check(self, net: Network) -> None:
        """The tensors are ``net``'s: the same names, shapes and dtype.

        Raises:
            WeightsError: listing every difference.
        """
        expected = {name: p.shape for name, p in net.parameters()}
        found = {name: (shape, dtype.name) for name, (shape, dtype) in self.tensors.items()}
        problems = layout_problems(found, expected, net.dtype)
        if problems:
            raise WeightsError(f"{self.path} does not match {net.source}: " + "; ".join(problems))


def _npy_member_header(member: IO[bytes], path: str, name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from an ``.npy`` member's header (no object arrays)."""
    import numpy as np

    version = np.lib.format.read_magic(member)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = reader(member)
    if dtype.hasobject:
        raise WeightsError(f"{path}: {name!r} holds Python objects, not numbers")
    return tuple(shape), bool(fortran), dtype
