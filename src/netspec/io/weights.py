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
import struct
import zipfile
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from netspec.errors import NetspecError
from netspec.init.precision import ITEMSIZE
from netspec.io import jsonio
from netspec.io.files import atomic_write, open_regular, require_file

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
ST_DTYPES = {"float32": "F32", "float64": "F64", "bfloat16": "BF16", "float16": "F16"}
NPZ_REFUSES = ("bfloat16",)
"""Precisions an ``.npz`` cannot hold (NumPy's format has no bfloat16)."""
ST_HEADER_LIMIT = 100 * 1024 * 1024
"""The safetensors format's own limit on the JSON header (the reference implementation's)."""
ST_HEADER_VALUES = 2_000_000
"""Values and keys in a header (about 15 per tensor): bounds the memory a hostile header costs."""


class WeightsError(NetspecError, ValueError):
    """A weights file cannot be read or does not match its spec."""


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
    ext = file_format(path)
    if ext == ".npz":
        check_npz_dtypes({dtype for _, _, dtype in layout}, path)
    with atomic_write(path) as fh:
        if ext == ".npz":
            _write_npz(_checked(tensors, layout), fh, metadata or {})
            return None
        with _HashingWriter(fh) as hashing:
            _write_safetensors(_checked(tensors, layout), layout, hashing, metadata or {})
        return hashing.hexdigest()


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


class _HashingWriter:
    """A write-only file that hashes what passes through it on one background thread, so the hashing
    overlaps the writing (the data must stay alive until :meth:`hexdigest`, which waits for it)."""

    def __init__(self, fh: IO[bytes]):
        from concurrent.futures import ThreadPoolExecutor

        self.fh = fh
        self.digest = hashlib.sha256()
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="netspec-file-sha256")

    def __enter__(self) -> _HashingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True)

    def write(self, data: bytes | memoryview) -> int:
        self.pool.submit(self.digest.update, data)
        return self.fh.write(data)

    def hexdigest(self) -> str:
        self.pool.shutdown(wait=True)
        return self.digest.hexdigest()


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


def _write_npz(tensors: Iterator[tuple[str, np.ndarray]], fh: IO[bytes], metadata: dict[str, str]) -> None:
    import numpy as np

    comment = NPZ_COMMENT_PREFIX + json.dumps(metadata, sort_keys=True, separators=(",", ":")).encode()
    if len(comment) > ZIP_COMMENT_LIMIT:
        raise WeightsError(f"the metadata ({len(comment):,} bytes) does not fit an .npz archive comment "
                           f"({ZIP_COMMENT_LIMIT:,} bytes at most); write .safetensors")  # fmt: skip
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        if metadata:
            zf.comment = comment
        for name, array in tensors:
            with zf.open(_member(name + ".npy"), "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def _member(name: str) -> zipfile.ZipInfo:
    """A zip member with a fixed timestamp (the zip epoch) and mode, so equal tensors give equal files:
    zipfile would stamp each member with the time of writing."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    return info


def _write_safetensors(
    tensors: Iterator[tuple[str, np.ndarray]], layout: Layout, fh: _HashingWriter, metadata: dict[str, str]
) -> None:

    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, shape, dtype in layout:
        size = math.prod(shape) * ITEMSIZE[dtype]
        header[name] = {"dtype": ST_DTYPES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    fh.write(struct.pack("<Q", len(blob)))
    fh.write(blob)
    for _name, array in tensors:
        fh.write(little_endian_bytes(array))


def little_endian_bytes(array: np.ndarray) -> memoryview:
    """The array's C-order little-endian bytes, without a copy where they already are."""
    from netspec.init.precision import byte_view

    if array.dtype.name != "bfloat16":  # (ml_dtypes' bfloat16 is native and has no byte order to change)
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return byte_view(array)


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
    ext = file_format(path)
    try:
        with open_regular(path) as fh:
            if ext == ".npz":
                _check_npz_size(fh, path, max_bytes)
                return _read_npz(fh)
            return _read_safetensors(fh, path)
    except WeightsError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, struct.error) as exc:
        raise WeightsError(f"{path}: cannot read weights: {exc}") from None


def _check_npz_size(fh: BinaryIO, path: str, max_bytes: int | None) -> None:
    if max_bytes is None:
        return
    with zipfile.ZipFile(fh) as zf:
        declared = sum(info.file_size for info in zf.infolist())
    if declared > max_bytes:
        raise WeightsError(f"{path}: expands to {declared:,} bytes, more than the spec's {max_bytes:,}; not loading it")


def _read_npz(fh: BinaryIO) -> dict[str, np.ndarray]:
    import numpy as np

    fh.seek(0)
    with np.load(fh, allow_pickle=False) as data:
        return {name: data[name] for name in data.files if name != NPZ_METADATA}


def load_metadata(path: str) -> dict[str, str]:
    """The metadata a weights file carries (spec name, seed, ...): safetensors' ``__metadata__``, an
    .npz file's archive comment (:data:`NPZ_COMMENT_PREFIX`), or the member :data:`NPZ_METADATA` of
    .npz files written by earlier versions; empty if it has none.

    Raises:
        WeightsError: the file cannot be read or its metadata is not a mapping of strings.
    """
    ext = file_format(path)
    try:
        with open_regular(path) as fh:
            if ext == ".npz":
                with zipfile.ZipFile(fh) as zf:
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
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, struct.error) as exc:
        raise WeightsError(f"{path}: cannot read metadata: {exc}") from None
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise WeightsError(f"{path}: metadata must be a mapping of strings to strings")
    return meta


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

    header, start = _safetensors_header(fh, path)
    size = os.fstat(fh.fileno()).st_size - start
    out: dict[str, np.ndarray] = {}
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
    for name, begin, end in extents:
        dtype = st_numpy_dtype(path, name, header[name]["dtype"])
        shape = tuple(header[name]["shape"])
        if begin == end:  # no bytes to map (mmap refuses a length of 0)
            out[name] = np.zeros(shape, dtype)
        else:
            out[name] = np.memmap(fh, dtype=dtype, mode="r", offset=start + begin, shape=shape)
    return out


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
    problems = []
    for name, shape in expected.items():
        if name not in params:
            problems.append(f"missing tensor {name!r}")
        elif tuple(params[name].shape) != tuple(shape):
            problems.append(f"{name}: shape {list(params[name].shape)}, the spec says {list(shape)}")
        elif params[name].dtype.name != dtype:
            problems.append(f"{name}: dtype {params[name].dtype.name}, the spec says {dtype}")
    problems += [f"unexpected tensor {name!r}" for name in params if name not in expected]
    return problems


def metadata_for(net: Network) -> dict[str, str]:
    """What a weights file records about where it came from (safetensors header or .npz member).

    Only what determines the bytes (no version, no path), so the same spec and seed give the same file.
    ``netspec_stream`` is the stream actually used: ``legacy`` or ``block/N`` (``rng: block`` resolved to
    the default version), the ``rng`` spelling that reproduces the file.
    """
    from netspec.init.streams import block_version

    return {
        "netspec_spec": net.name,
        "netspec_seed": str(net.seed),
        "netspec_stream": "legacy" if net.rng == "legacy" else f"block/{block_version(net.rng)}",
        "netspec_rng": net.rng,
        "netspec_dtype": net.dtype,
    }


def load_for(net: Network, path: str) -> dict[str, np.ndarray]:
    """The weights in ``path``, checked against ``net``'s parameters (names, shapes, dtype).

    The file may not expand past the spec's own size (plus 1 MiB per layer for
    headers) before anything is decompressed.

    Raises:
        WeightsError: the file is missing, unreadable, too large, or does not match the spec.
    """
    require_file(path)
    params = load(path, max_bytes=net.nbytes + (1 << 20) * (1 + len(net.layers)))
    expected = {name: p.shape for name, p in net.parameters()}
    problems = check_against(params, expected, net.dtype)
    if problems:
        raise WeightsError(f"{path} does not match {net.source}: " + "; ".join(problems))
    return params
