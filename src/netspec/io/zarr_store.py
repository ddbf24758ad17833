"""zarr v3 stores (``build -o OUT.zarr``; the ``zarr`` extra, imported only here).

**Layout.** One array per parameter at the group's root, named by its dotted name (``fc1.weights``), no
compression (random weights do not compress). Chunks follow the tensor's C order so each covers one run
of its flat values: the trailing axes whole, and along the axis before them as many rows as fill
:data:`CHUNK` values (4 stream blocks, so a chunk is whole blocks when the row length divides 2^20). Chunks
are grouped by zarr's sharding codec into shard files of about :data:`SHARD_BYTES` along the same axis, so a
7B model is a few hundred files, not millions. A shard is the unit of writing (:class:`Region`): its
values are one contiguous run of the tensor, generated from the blocks that cover it. zarr has no
bfloat16: such an array holds the values' 16-bit patterns as ``uint16`` with the attribute
``netspec_dtype: bfloat16`` (readers view them back). The group's attributes hold the build's metadata
(``netspec_spec``, ``netspec_seed``, ``netspec_stream``, ...).

zarr's local store writes each shard file atomically (a temporary file renamed), so an interrupted build
leaves complete shards only.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from netspec.errors import NetspecError, WeightsError
from netspec.init.blocks import BLOCK, block_count

if TYPE_CHECKING:
    import numpy as np

    from netspec.nn.network import Network
    from netspec.nn.sources import TensorSource

CHUNK = 4 * BLOCK
"""Values per chunk (at most, when the trailing axes allow)."""
SHARD_BYTES = 64 << 20
"""Bytes per shard file (about: a whole number of chunks along one axis)."""
DTYPE_ATTRIBUTE = "netspec_dtype"


def zarr_module() -> Any:
    """The zarr package (v3), or a clear error (exit 1) when the extra is missing."""
    try:
        import zarr
    except ImportError:
        from netspec.extras import install_hint

        raise NetspecError(f"zarr stores need zarr 3: {install_hint('zarr')}") from None
    if int(zarr.__version__.split(".")[0]) < 3:
        raise NetspecError(f"zarr stores need zarr 3 (the v3 format and its sharding codec), found {zarr.__version__}")
    return zarr


@dataclass(frozen=True)
class Layout:
    """How a tensor of ``shape`` is chunked and sharded: along ``axis``, ``chunk_rows`` and ``shard_rows``
    rows at a time (the axes after it whole, the axes before it one index at a time)."""

    shape: tuple[int, ...]
    axis: int
    chunk_rows: int
    shard_rows: int

    @property
    def chunks(self) -> tuple[int, ...]:
        return self._block(self.chunk_rows)

    @property
    def shards(self) -> tuple[int, ...]:
        return self._block(self.shard_rows)

    def _block(self, rows: int) -> tuple[int, ...]:
        if not self.shape:
            return ()
        return (*[1] * self.axis, rows, *self.shape[self.axis + 1 :])


def layout(shape: tuple[int, ...], itemsize: int) -> Layout:
    """Chunks of at most :data:`CHUNK` values in C order and shards of about :data:`SHARD_BYTES`."""
    shape = tuple(shape)
    if not shape or math.prod(shape) == 0:
        return Layout(shape, 0, max(1, shape[0]) if shape else 1, max(1, shape[0]) if shape else 1)
    axis, inner = len(shape) - 1, 1
    while axis > 0 and inner * shape[axis] <= CHUNK:  # the trailing axes that fit in a chunk whole
        inner *= shape[axis]
        axis -= 1
    chunk_rows = max(1, min(shape[axis], CHUNK // inner))
    per_chunk = chunk_rows * inner * itemsize
    chunks = min(-(-shape[axis] // chunk_rows), max(1, SHARD_BYTES // per_chunk))  # (zarr: whole chunks per shard)
    return Layout(shape, axis, chunk_rows, chunk_rows * chunks)


@dataclass(frozen=True)
class Region:
    """One shard file's part of a tensor: ``outer`` indices of the axes before the layout's axis, rows
    ``[start, stop)`` along it, the trailing axes whole; its values are the flat run ``span``."""

    name: str
    outer: tuple[int, ...]
    start: int
    stop: int

    def index(self, lay: Layout) -> tuple[Any, ...]:
        return (*self.outer, slice(self.start, self.stop), *([slice(None)] * (len(lay.shape) - lay.axis - 1)))

    def span(self, lay: Layout) -> tuple[int, int]:
        inner = math.prod(lay.shape[lay.axis + 1 :])
        base = sum(i * math.prod(lay.shape[k + 1 :]) for k, i in enumerate(self.outer))
        return base + self.start * inner, base + self.stop * inner

    @property
    def key(self) -> str:
        return f"{self.name}/{'.'.join(map(str, self.outer))}:{self.start}"


def regions(name: str, lay: Layout) -> list[Region]:
    """Every shard of a tensor, in C order."""
    import itertools

    if not lay.shape:
        return [Region(name, (), 0, 1)]
    out = []
    for outer in itertools.product(*(range(n) for n in lay.shape[: lay.axis])):
        for start in range(0, lay.shape[lay.axis], lay.shard_rows):
            out.append(Region(name, outer, start, min(start + lay.shard_rows, lay.shape[lay.axis])))
    return out


def create(path: str, net: Network, metadata: dict[str, str], keep: bool = False) -> dict[str, Layout]:
    """Create the group and every array (no data yet); returns each parameter's layout. ``keep``: a store
    already there keeps the arrays whose shape, dtype, chunks and shards are these (and their shard files)."""
    from netspec.init.precision import ITEMSIZE

    zarr = zarr_module()
    group = zarr.open_group(path, mode="a" if keep else "w", **options(path))
    group.attrs.update(dict(metadata))
    existing = dict(group.arrays()) if keep else {}
    stored = "uint16" if net.dtype == "bfloat16" else net.dtype
    layouts = {}
    for name, p in net.parameters():
        lay = layout(tuple(p.shape), ITEMSIZE[net.dtype])
        layouts[name] = lay
        old = existing.get(name)
        if old is not None and (tuple(old.shape), str(old.dtype), tuple(old.chunks), tuple(old.shards or ())) == (
                lay.shape, stored, lay.chunks, lay.shards) and old.attrs.get(DTYPE_ATTRIBUTE) == net.dtype:  # fmt: skip
            continue
        group.create_array(name, shape=lay.shape, dtype=stored, chunks=lay.chunks or None, shards=lay.shards or None,
                           compressors=None, fill_value=0, attributes={DTYPE_ATTRIBUTE: net.dtype},
                           overwrite=True)  # fmt: skip
    return layouts


def region_checks(path: str, source: TensorSource, lay: Layout, region: Region, digest: Any) -> bool:
    """Whether a region written by an earlier build is in place: its values, read back, hash to ``digest``."""
    from netspec.init.precision import byte_view

    try:
        values = read_region(path, region.name, lay, region, source.dtype)
    except Exception:  # a missing or damaged shard file: zarr raises several types
        return False
    return isinstance(digest, str) and hashlib.sha256(byte_view(values)).hexdigest() == digest


def region_values(source: TensorSource, lay: Layout, region: Region) -> np.ndarray:
    """The region's values, generated from the blocks that cover its run (only those)."""
    import numpy as np

    start, stop = region.span(lay)
    if not source.blockwise:
        return np.ascontiguousarray(source.whole().reshape(-1)[start:stop])
    first, last = start // BLOCK, min(block_count(source.size), -(-stop // BLOCK))
    values = source.window(first, last)
    return np.ascontiguousarray(values[start - first * BLOCK : stop - first * BLOCK])


def write_region(path: str, source: TensorSource, lay: Layout, region: Region) -> str:
    """Generate and write one shard of a tensor (the unit of work of a zarr build); returns the SHA-256 of
    its values' bytes (C order), which a resumed build checks."""
    from netspec.init.precision import byte_view

    zarr = zarr_module()
    values = region_values(source, lay, region)
    digest = hashlib.sha256(byte_view(values)).hexdigest()
    array = zarr.open_array(path, path=region.name, mode="r+", **options(path))
    shape = tuple(len(range(*s.indices(n))) if isinstance(s, slice) else None
                  for s, n in zip(region.index(lay), lay.shape, strict=True))  # fmt: skip
    block = values.reshape([n for n in shape if n is not None] or ())
    array[region.index(lay)] = _stored(block)
    return digest


def read_region(path: str, name: str, lay: Layout, region: Region, dtype: str) -> np.ndarray:
    """A region's values as stored (bfloat16 viewed back), flat."""
    zarr = zarr_module()
    values = zarr.open_array(path, path=name, mode="r", **options(path))[region.index(lay)]
    return _viewed(values, dtype).reshape(-1)


def _stored(values: np.ndarray) -> np.ndarray:
    import numpy as np

    return values.view(np.uint16) if values.dtype.name == "bfloat16" else values


def _viewed(values: Any, dtype: str) -> np.ndarray:
    import numpy as np

    from netspec.init.precision import numpy_dtype

    values = np.asarray(values)
    return values.view(numpy_dtype("bfloat16")) if dtype == "bfloat16" else values


def options(path: str) -> dict[str, Any]:
    """zarr's keyword arguments for ``path``: a ``file://`` URL makes its folders as it writes (fsspec's
    local filesystem does not by default); other URLs and plain paths need none."""
    return {"storage_options": {"auto_mkdir": True}} if path.startswith("file://") else {}


def is_store(path: str) -> bool:
    """Whether ``path`` names a zarr store (its suffix; what build and the readers go by)."""
    return path.rstrip("/\\").lower().endswith(".zarr")


class ZarrReader:
    """Runs of a zarr store's tensors (:class:`netspec.io.weights.TensorReader`'s interface): the rows that
    cover a run are read (the arrays are chunked along their rows), then cut to it."""

    def __init__(self, path: str):
        zarr = zarr_module()
        if not os.path.isdir(path) and "://" not in path:
            raise WeightsError(f"{path}: no such zarr store")
        try:
            self.group = zarr.open_group(path, mode="r", **options(path))
        except Exception as exc:  # zarr raises several types for a folder that is not a store
            raise WeightsError(f"{path}: not a readable zarr store: {type(exc).__name__}: {exc}") from None
        self.path = path
        self.arrays = dict(self.group.arrays())
        self.tensors: dict[str, tuple[tuple[int, ...], Any]] = {}
        from netspec.init.precision import PRECISIONS, numpy_dtype

        for name, array in self.arrays.items():
            declared = array.attrs.get(DTYPE_ATTRIBUTE, str(array.dtype))
            if declared not in PRECISIONS or (declared == "bfloat16") != (str(array.dtype) == "uint16"):
                raise WeightsError(f"{path}: array {name!r} holds {array.dtype} ({DTYPE_ATTRIBUTE}: {declared!r})")
            self.tensors[name] = (tuple(array.shape), numpy_dtype(declared))

    def read(self, name: str, start: int, count: int) -> np.ndarray:
        shape, dtype = self.tensors[name]
        if not shape:
            return _viewed(self.arrays[name][()], dtype.name).reshape(-1)[start : start + count]
        row = math.prod(shape[1:])
        first, last = start // row, -(-(start + count) // row)
        values = _viewed(self.arrays[name][first:last], dtype.name).reshape(-1)
        return values[start - first * row : start - first * row + count]

    def metadata(self) -> dict[str, str]:
        return {k: v for k, v in self.group.attrs.asdict().items() if isinstance(v, str) and k.startswith("netspec_")}

    def check(self, net: Network) -> None:
        from netspec.io.weights import layout_problems

        expected = {name: p.shape for name, p in net.parameters()}
        found = {name: (shape, dtype.name) for name, (shape, dtype) in self.tensors.items()}
        problems = layout_problems(found, expected, net.dtype)
        if problems:
            raise WeightsError(f"{self.path} does not match {net.source}: " + "; ".join(problems))

    def close(self) -> None:
        pass


def load_for(net: Network, path: str) -> dict[str, np.ndarray]:
    """Every tensor of a zarr store, whole, checked against ``net`` (for eval and export)."""
    reader = ZarrReader(path)
    reader.check(net)
    return {name: reader.read(name, 0, math.prod(shape)).reshape(shape) for name, (shape, _) in reader.tensors.items()}
