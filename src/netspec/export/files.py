"""Reading weights in any layout netspec writes: its own files, or a framework export (undone by name)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from netspec.errors import NetspecError
from netspec.io.weights import WeightsError, load_for, load_metadata

if TYPE_CHECKING:
    import numpy as np

    from netspec.nn.network import Network


LAYOUTS = ("torch", "onnx", "flax")
"""The exporters whose files :func:`load_weights` reads back (each module has ``read_file``)."""


def exported_layout(path: str) -> str:
    """'torch' for a ``.pt`` file or a safetensors file exported with torch layouts, 'onnx' for an
    ``.onnx`` model, 'flax' for a ``.msgpack`` variables tree, else '' (a safetensors file's
    ``netspec_layout`` is what the file says: :func:`load_weights` checks it against :data:`LAYOUTS`)."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".pt":
        return "torch"
    if ext == ".onnx":
        return "onnx"
    if ext == ".msgpack":
        return "flax"
    if ext != ".safetensors":
        return ""
    try:
        return load_metadata(path).get("netspec_layout", "")
    except WeightsError:
        return ""


def load_weights(net: Network, path: str) -> dict[str, np.ndarray]:
    """``net``'s weights from ``path``: a netspec file (:func:`~netspec.io.weights.load_for`), or a
    torch export (``.pt``, torch-layout ``.safetensors``) with its names and layouts undone.

    Raises:
        WeightsError, NetspecError: the file is missing, unreadable or does not match the spec.
    """
    from netspec.io import zarr_store

    if zarr_store.is_store(path):
        return zarr_store.load_for(net, path)
    layout = exported_layout(path) if os.path.isfile(path) else ""
    if not layout:
        return load_for(net, path)
    if layout not in LAYOUTS:  # the file's own word: never a module name to import
        raise NetspecError(f"{path}: records netspec_layout {layout[:40]!r}, which no netspec export writes "
                           f"({', '.join(LAYOUTS)})")  # fmt: skip
    import importlib

    reader = importlib.import_module(f"netspec.export.{layout}").read_file
    try:
        return reader(net, path)  # type: ignore[no-any-return]
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:  # a malformed file's contents
        raise NetspecError(f"{path}: not a readable {layout} export: {type(exc).__name__}: {exc}") from None


def recorded_metadata(path: str) -> dict[str, str]:
    """What a weights file records about where it came from (``netspec_stream``, ``netspec_seed``, ...),
    for netspec's own files and any export; empty for a format that records nothing (``.pt``,
    ``.msgpack``) or a file it cannot read (reading the tensors reports that)."""
    from netspec.io import zarr_store

    ext = os.path.splitext(path)[1].lower()
    if zarr_store.is_store(path):
        try:
            return zarr_store.ZarrReader(path).metadata()
        except NetspecError:
            return {}
    if ext in (".npz", ".safetensors") or os.path.isdir(path):  # (a folder of shards: its shards' metadata)
        try:
            return load_metadata(path)
        except WeightsError:
            return {}
    if ext != ".onnx":
        return {}
    from netspec.export.onnx import onnx_module
    from netspec.io.files import open_regular

    onnx = onnx_module()
    try:
        with open_regular(path) as fh:
            model = onnx.load(fh, load_external_data=False)
    except Exception:  # protobuf raises several types for a corrupt file
        return {}
    return {p.key: p.value for p in model.metadata_props if p.key.startswith("netspec_")}
