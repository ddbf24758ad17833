"""netspec: neural-network architectures and weight initialization as checked YAML specs.

Data flows one way: spec text -> validated document -> compiled network ->
initialized arrays -> outputs. The public API:

>>> import netspec
>>> net = netspec.load("specs/glorot-demo-4-5-3.yaml")   # doctest: +SKIP
>>> params = net.initialize()                            # doctest: +SKIP
>>> net.forward([[1, 2, 3, 4]])                          # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from netspec.nn.network import Network

__all__ = ["Network", "__version__", "initialize_slice", "load", "loads", "shard"]


def load(path: str, **overrides: Any) -> Network:
    """Load, validate and compile a spec file into a :class:`~netspec.nn.network.Network`.

    Installed plugins (entry-point groups ``netspec.initializers`` and
    ``netspec.activations``) are discovered first, once per process.

    Args:
        path: the YAML spec file.
        **overrides: ``seed`` (replaces the spec's), ``dtype`` (replaces the spec's), ``max_params`` (refuse
            larger networks).

    Raises:
        SpecError: the spec is invalid (every problem, located).
        OSError: the file cannot be read.
    """
    from netspec.plugins import load_plugins
    from netspec.spec.compiler import compile_file

    load_plugins()
    return compile_file(path, **overrides)


def loads(text: str, source: str = "<string>", **overrides: Any) -> Network:
    """Like :func:`load`, from spec text (``source`` names it in error messages)."""
    from netspec.plugins import load_plugins
    from netspec.spec.compiler import compile_text

    load_plugins()
    return compile_text(text, source, **overrides)


def initialize_slice(net: Network, name: str, index: Any, seed: int | None = None) -> Any:
    """Exactly ``net.initialize()[name][index]`` (basic indexing), generating only the blocks the slice
    touches (:mod:`netspec.nn.slices`)."""
    from netspec.nn.slices import initialize_slice as slice_of

    return slice_of(net, name, index, seed)


def shard(net: Network, name: str, rank: int, world: int, axis: int = 0, seed: int | None = None) -> Any:
    """The part of parameter ``name`` rank ``rank`` of ``world`` holds when split along ``axis`` as
    ``torch.chunk`` and DTensor's ``Shard(axis)`` split (:mod:`netspec.nn.slices`)."""
    from netspec.nn.slices import shard as shard_of

    return shard_of(net, name, rank, world, axis, seed)


def __getattr__(name: str) -> Any:
    if name == "Network":
        from netspec.nn.network import Network

        return Network
    raise AttributeError(name)
