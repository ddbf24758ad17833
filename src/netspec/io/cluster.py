"""Builds as tasks: each shard of a folder, or each shard file of a zarr store, generated and written by
whoever runs it, on this machine's threads or on a Dask cluster (``build --engine dask``).

A task gets the tensor sources it needs (:class:`netspec.nn.sources.TensorSource`: a few hundred bytes
each, pickled to the worker), generates their values from the stream blocks they cover and writes its own
file directly to the destination, a folder the workers share (or, for a zarr store, any fsspec URL zarr
opens). It returns digests only: the client never holds tensor data. A task owns whole files, so no two
tasks write one. The bytes are those of the local build: the same plan (:func:`netspec.io.shards.plan`,
:func:`netspec.io.zarr_store.layout`), the same blocks.

Dask, distributed and zarr are the ``dask`` extra, imported only here (and zarr by
:mod:`netspec.io.zarr_store`); ``--engine dask`` without ``--scheduler`` starts a ``LocalCluster`` on this
machine (``--workers`` processes of one thread).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netspec.errors import NetspecError

if TYPE_CHECKING:
    from netspec.io.outputs import Output
    from netspec.io.resume import Record
    from netspec.io.shards import ShardFile
    from netspec.io.zarr_store import Layout, Region
    from netspec.nn.network import Network
    from netspec.nn.sources import TensorSource

ENGINES = ("local", "dask")


@dataclass
class Built:
    """What a task build wrote: every tensor's SHA-256 where a task wrote the whole tensor (safetensors
    shards; a zarr tensor split over several shard files has none), each task's digests, and the files."""

    digests: dict[str, str] = field(default_factory=dict)
    parts: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def write_shard(folder: str, shard: ShardFile, plan: list[TensorSource], threads: int | None) -> dict[str, str]:
    """A task: generate the tensors of one safetensors shard and write it (atomically) into ``folder``;
    returns their SHA-256."""
    from netspec.io.shards import Writer
    from netspec.nn.sources import chunks_of

    writer = Writer(folder, [shard], finish=False)
    return writer.write(chunks_of(plan, threads)).digests


def write_region(path: str, source: TensorSource, lay: Layout, region: Region) -> str:
    """A task: generate and write one shard file of a zarr array; returns its values' SHA-256."""
    from netspec.io import zarr_store

    return zarr_store.write_region(path, source, lay, region)


def build(
    net: Network,
    out: Output,
    metadata: dict[str, str],
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
    resume: bool = False,
) -> Built:
    """Build ``net`` into a folder of safetensors shards or a zarr store, as tasks on ``engine``; each
    finished task is recorded, and with ``resume`` an earlier build's finished parts that check are kept
    (:mod:`netspec.io.resume`).

    Raises:
        NetspecError: the extra is missing, the scheduler cannot be reached, or a task failed (its error).
        InitializerError: ``rng: legacy`` (one generator in order: no task can draw its part alone).
    """
    from netspec.io.resume import Record, StoreRecord, fingerprint, kept_parts
    from netspec.nn.sources import sources

    found = sources(net)  # (rng: legacy refuses here, before any cluster starts)
    zarr = out.kind == "zarr"
    tasks, plan = (_zarr_tasks if zarr else _shard_tasks)(net, out, metadata, found, resume)
    record = (StoreRecord if zarr else Record)(out.path, fingerprint(plan))
    kept, notes = kept_parts(record, {t.key: t for t in tasks}, _checks, resume)
    for key, digests in kept.items():
        record.done(key, digests)
    todo = [t for t in tasks if t.key not in kept]
    if out.kind == "folder":
        from netspec.io.shards import retire_index

        retire_index(out.path)  # (before any task renames a shard into the folder; the index comes last)
    if progress:
        progress(sum(t.size for t in tasks if t.key in kept))
    done = _run(engine, todo, scheduler, workers, threads, progress, record)
    results = dict(kept) | dict(zip((t.key for t in todo), done, strict=True))
    built = Built(files=[out.path] if zarr else [os.path.join(out.path, t.key) for t in tasks], notes=notes)
    for task in tasks:
        result = results[task.key]
        built.parts[task.key] = result
        if isinstance(result, dict):  # (a shard's tensors)
            built.digests.update(result)
        elif task.whole:
            built.digests[task.tensor] = result
    if out.kind == "folder":
        from netspec.io.shards import Writer

        Writer(out.path, [t.args[1] for t in tasks]).finish_folder(built.digests)
    return built


@dataclass(frozen=True)
class Task:
    """One unit of work: ``fn(*args)`` on a worker; ``key`` names its file; ``size`` its values (progress);
    ``tensor``/``whole``: a zarr region's tensor, and whether the region is the whole tensor."""

    key: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    size: int
    tensor: str = ""
    whole: bool = False


def _checks(task: Task, digests: Any) -> bool:
    """Whether an earlier build's part of ``task`` is in place and unchanged (its digests recomputed)."""
    from netspec.io import resume, zarr_store

    if task.fn is write_shard:
        return resume.shard_checks(task.args[0], task.args[1], digests)
    path, source, lay, region = task.args
    return zarr_store.region_checks(path, source, lay, region, digests)


def _shard_tasks(
    net: Network, out: Output, metadata: dict[str, str], found: dict[str, TensorSource], resume: bool
) -> tuple[list[Task], list[Any]]:
    from netspec.io import shards

    os.makedirs(out.path, exist_ok=True)
    layout = [(name, p.shape, net.dtype) for name, p in net.parameters()]
    plan = shards.plan(layout, metadata, out.max_shard_size)
    tasks = [Task(s.name, write_shard, (out.path, s, [found[e.name] for e in s.entries], None),
                  sum(e.size for e in s.entries)) for s in plan]  # fmt: skip
    return tasks, [s.name.encode() + s.header for s in plan]


def _zarr_tasks(
    net: Network, out: Output, metadata: dict[str, str], found: dict[str, TensorSource], resume: bool
) -> tuple[list[Task], list[Any]]:
    from netspec.io import zarr_store

    layouts = zarr_store.create(out.path, net, metadata, keep=resume)
    tasks = []
    for name, lay in layouts.items():
        parts = zarr_store.regions(name, lay)
        for region in parts:
            start, stop = region.span(lay)
            tasks.append(Task(region.key, write_region, (out.path, found[name], lay, region), stop - start, name,
                              len(parts) == 1))  # fmt: skip
    described = {name: [list(lay.shape), lay.axis, lay.chunk_rows, lay.shard_rows] for name, lay in layouts.items()}
    return tasks, [metadata, net.dtype, described]


def _run(
    engine: str,
    tasks: list[Task],
    scheduler: str | None,
    workers: int | None,
    threads: int | None,
    progress: Callable[[int], None] | None,
    record: Record,
) -> list[Any]:
    """Every task's result, in order: on this machine's threads (``local``: each task generates on its own
    thread and writes with its own), or on a Dask cluster (the scheduler at ``scheduler``, or a LocalCluster
    of ``workers`` processes of one thread each). Each finished task is recorded and moves the progress."""
    results: list[Any] = [None] * len(tasks)
    if not tasks:
        return results
    for k, result in _finished(engine, tasks, scheduler, workers, threads):
        results[k] = result
        record.done(tasks[k].key, result)
        if progress:
            progress(tasks[k].size)
    return results


def _finished(
    engine: str, tasks: list[Task], scheduler: str | None, workers: int | None, threads: int | None
) -> Iterator[tuple[int, Any]]:
    """``(task index, result)`` as the tasks finish."""
    if engine != "dask":
        from concurrent.futures import ThreadPoolExecutor, as_completed

        from netspec.nn.network import default_threads

        with ThreadPoolExecutor(threads or default_threads(), thread_name_prefix="netspec-task") as pool:
            futures = {pool.submit(_call, t.fn, t.args, 1): k for k, t in enumerate(tasks)}
            for future in as_completed(futures):
                yield futures[future], future.result()
        return
    client, cluster = _client(scheduler, workers)
    try:
        from distributed import as_completed as completed

        submitted = [client.submit(_call, t.fn, t.args, 1, key=f"netspec-{k}-{t.key}", pure=False)
                     for k, t in enumerate(tasks)]  # fmt: skip
        index = {f.key: k for k, f in enumerate(submitted)}
        for future in completed(submitted):
            k = index[future.key]
            try:
                result = future.result()
            except Exception as exc:
                raise NetspecError(f"task {tasks[k].key} failed on the cluster: {type(exc).__name__}: {exc}") from None
            yield k, result
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _call(fn: Callable[..., Any], args: tuple[Any, ...], threads: int) -> Any:
    """``fn(*args)``, a shard task with ``threads`` generation threads."""
    if fn is write_shard:
        return fn(*args[:3], threads)
    return fn(*args)


def _client(scheduler: str | None, workers: int | None) -> tuple[Any, Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        from netspec.extras import install_hint

        raise NetspecError(f"--engine dask needs dask and distributed: {install_hint('dask')}") from None
    if scheduler:
        try:
            return Client(scheduler, timeout="30s"), None
        except (OSError, TimeoutError) as exc:
            raise NetspecError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    from netspec.nn.network import default_threads

    cluster = LocalCluster(n_workers=workers or default_threads(), threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=40)  # fmt: skip
    return Client(cluster), cluster
