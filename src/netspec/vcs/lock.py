"""Lock files: what a spec's initialization resolved to, and the SHA-256 of every tensor's bytes.

``SPEC.lock`` is JSON with sorted keys and one tensor per line, so a reviewer's diff shows exactly which
tensors changed. It records the netspec version, the lock format, seed, rng mode, stream version and
dtype, each imported block library's SHA-256, and per parameter its shape, the fully resolved
initializer config (after ``auto`` and ``defaults``), fans, declared distribution and SHA-256.

:func:`check` rebuilds in memory (digests computed while generating, chunk by chunk)
and explains every difference: *the spec changed* (shape, initializer, fans, seed, dtype, stream) or
*the same spec now gives other bytes* (a library or platform change).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from netspec import __version__
from netspec.errors import NetspecError

if TYPE_CHECKING:
    from netspec.nn.network import Network

LOCK_FORMAT = 1
NETWORK_KEYS = ("seed", "rng", "stream", "dtype")
"""Lock entries that determine every tensor's bytes."""
SPEC_KEYS = ("seed", "rng", "dtype")
"""The ones the spec writes (``stream`` is what netspec resolved ``rng`` to: ``rng: block`` means the newest)."""
MAX_LOCK_BYTES = 64 << 20
"""A lock file larger than this is refused before it is parsed (about 350 bytes per tensor: a spec's
10,000 layers after expansion write a few MB)."""
MAX_LOCK_VALUES = 4_000_000
"""JSON values and keys in a lock file (about 25 per tensor): bounds the memory a hostile lock costs."""


def tensor_entries(net: Network) -> dict[str, dict[str, Any]]:
    """Per parameter: shape, resolved initializer, fans, declared distribution (no bytes yet), and the
    constants it depends on (when it depends on any)."""
    from netspec.report.summary import explain

    return {
        e["parameter"]: {
            "shape": e["shape"],
            "initializer": e["initializer"],
            "fans": [e["fan_in"], e["fan_out"]],
            "declared": e["declared"],
            **({"constants": sorted(e["constants"])} if e.get("constants") else {}),
        }
        for e in explain(net)
    }


def stream_name(net: Network) -> str:
    from netspec.io.weights import metadata_for

    return metadata_for(net)["netspec_stream"]


def build_lock(
    net: Network, digests: dict[str, str] | None = None, imports: dict[str, str] | None = None
) -> dict[str, Any]:
    """The lock document of ``net``; ``digests`` (tensor -> SHA-256) are computed if not given."""
    from netspec.io.weights import layout_digest

    if digests is None:
        from netspec.nn.sources import digests as tensor_digests

        digests = tensor_digests(net)  # chunk by chunk: memory holds a few chunks, whatever the tensors' sizes
    tensors = tensor_entries(net)
    for name, entry in tensors.items():
        entry["sha256"] = digests[name]
    layout = [(name, tuple(p.shape), net.dtype) for name, p in net.parameters()]
    return {
        "netspec_lock": LOCK_FORMAT,
        "netspec_version": __version__,
        "spec": net.name,
        "seed": net.seed,
        "rng": net.rng,
        "stream": stream_name(net),
        "dtype": net.dtype,
        "imports": dict(sorted((imports or {}).items())),
        **({"constants": dict(net.constants)} if net.constants else {}),
        **({"init": net.init} if net.init is not None else {}),
        "parameters": net.num_params,
        "content_sha256": layout_digest(digests, layout),
        "tensors": tensors,
    }


def dumps(lock: dict[str, Any]) -> str:
    """Sorted JSON, one tensor per line (stable, diff-friendly)."""
    head = {k: v for k, v in lock.items() if k != "tensors"}
    lines = ["{"]
    for key in sorted(head):
        lines.append(f"  {json.dumps(key)}: {json.dumps(head[key], sort_keys=True, ensure_ascii=False)},")
    tensors = lock.get("tensors", {})
    lines.append('  "tensors": {')
    rows = [f"    {json.dumps(name)}: {json.dumps(tensors[name], sort_keys=True, ensure_ascii=False)}"
            for name in sorted(tensors)]
    lines.append(",\n".join(rows))
    lines.append("  }")
    lines.append("}")
    return "\n".join(line for line in lines if line) + "\n"


def read(path: str) -> dict[str, Any]:
    """The lock file at ``path``, read through the bounded JSON reader and checked (NetspecError when
    missing, not a regular file, too large or malformed)."""
    from netspec.io.files import read_limited

    try:
        raw = read_limited(path, MAX_LOCK_BYTES, "lock file")
    except FileNotFoundError:
        raise NetspecError(f"{path}: no such lock file (write it with netspec lock)") from None
    return loads(raw, path)


def loads(text: str | bytes, source: str) -> dict[str, Any]:
    """A lock document (NetspecError for one that is not)."""
    from netspec.io import jsonio

    try:
        lock = jsonio.loads(text, source, max_bytes=MAX_LOCK_BYTES, max_values=MAX_LOCK_VALUES)
    except jsonio.JSONError as exc:
        where = f"{source}:{exc.line}:{exc.column}" if exc.line else source
        raise NetspecError(f"{where}: not a lock file: {exc.message}") from None
    if not isinstance(lock, dict) or lock.get("netspec_lock") != LOCK_FORMAT or not isinstance(
            lock.get("tensors"), dict):  # fmt: skip
        raise NetspecError(f"{source}: not a netspec lock file (format {LOCK_FORMAT})")
    for key in ("seed", "parameters"):
        if key in lock and (not isinstance(lock[key], int) or isinstance(lock[key], bool)):
            raise NetspecError(f"{source}: {key} is {lock[key]!r}, not an integer")
    if not isinstance(lock.get("constants", {}), dict):
        raise NetspecError(f"{source}: constants must be a mapping of names to numbers")
    for name, entry in lock["tensors"].items():
        problem = _entry_problem(entry)
        if problem:
            raise NetspecError(f"{source}: tensor {name!r}: {problem}")
    return lock


def _entry_problem(entry: Any) -> str:
    """What is wrong with one tensor entry of a lock file ('' if nothing)."""
    if not isinstance(entry, dict):
        return f"expected a mapping, got {type(entry).__name__}"
    digest = entry.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        return "sha256 must be 64 lowercase hex digits"
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        return "shape must be a list of integers"
    return ""


@dataclass(frozen=True)
class Drift:
    """One difference between a lock and the spec now: ``kind`` is ``spec`` (the spec changed) or
    ``bytes`` (the same spec gives other bytes)."""

    tensor: str
    kind: str
    reason: str

    def __str__(self) -> str:
        return f"{self.tensor}: {self.reason}"


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[Drift]:
    """Every tensor of either lock that differs, with why (see :class:`Drift`).

    A changed ``seed``, ``rng`` or ``dtype`` is the spec's doing; a changed ``stream`` under the same
    ``rng`` is netspec's (``rng: block`` follows the newest stream version), so those tensors are
    reported as the same spec giving other bytes, with how to pin the old stream.
    """
    changed_globals = [k for k in SPEC_KEYS if old.get(k) != new.get(k)]
    if not changed_globals and old.get("stream") != new.get("stream"):
        changed_globals = ["stream"]
    constants = changed_constants(old.get("constants"), new.get("constants"))
    drifts = []
    old_t, new_t = old["tensors"], new["tensors"]
    for name in sorted(set(old_t) | set(new_t)):
        if name not in old_t:
            drift: Drift | None = Drift(name, "spec", "added (not in the lock)")
        elif name not in new_t:
            drift = Drift(name, "spec", "removed (in the lock, not in the spec)")
        else:
            drift = _tensor_drift(name, old_t[name], new_t[name], old, new, changed_globals)
        if drift is not None:
            because = _constants_read(constants, old_t.get(name), new_t.get(name))
            drifts.append(Drift(name, drift.kind, drift.reason + because) if drift.kind == "spec" else drift)
    return drifts


def changed_constants(old: Any, new: Any) -> dict[str, tuple[Any, Any]]:
    """The constants whose value differs between two sides (absent on one side: None)."""
    a, b = (old if isinstance(old, dict) else {}), (new if isinstance(new, dict) else {})
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b), key=str) if a.get(k) != b.get(k)}


def _constants_read(changed: dict[str, tuple[Any, Any]], *entries: Any) -> str:
    """`` (constant n_layers 12 -> 24)`` for the changed constants a tensor reads (on either side)."""
    reads = {c for e in entries if isinstance(e, dict) and isinstance(e.get("constants"), list)
             for c in e["constants"] if isinstance(c, str)}  # fmt: skip
    named = [f"{k} {a} -> {b}" for k, (a, b) in changed.items() if k in reads]
    return f" (constant {', '.join(named)})" if named else ""


def _tensor_drift(name: str, a: dict[str, Any], b: dict[str, Any], old: dict[str, Any], new: dict[str, Any],
                  changed_globals: list[str]) -> Drift | None:  # fmt: skip
    if a.get("sha256") == b.get("sha256") and a.get("shape") == b.get("shape"):
        return None
    if a.get("shape") != b.get("shape"):
        return Drift(name, "spec", f"shape {a.get('shape')} -> {b.get('shape')}")
    if a.get("initializer") != b.get("initializer"):
        return Drift(name, "spec", f"initializer {_config(a.get('initializer'))} -> {_config(b.get('initializer'))}")
    if a.get("fans") != b.get("fans"):
        return Drift(name, "spec", f"fans {a.get('fans')} -> {b.get('fans')}")
    if changed_globals == ["stream"]:
        return Drift(name, "bytes", f"the same spec now gives other bytes: netspec's stream for rng: "
                     f"{new.get('rng')} is {new.get('stream')}, the lock's {old.get('stream')} (write rng: "
                     f"{old.get('stream')} in the spec to keep the locked bytes, or re-lock)")  # fmt: skip
    if changed_globals:
        what = ", ".join(f"{k} {old.get(k)} -> {new.get(k)}" for k in changed_globals)
        return Drift(name, "spec", f"bytes changed because {what}")
    versions = f"netspec {old.get('netspec_version')} -> {new.get('netspec_version')}"
    return Drift(name, "bytes", f"the same spec now gives other bytes (sha256 {str(a.get('sha256'))[:12]} -> "
                 f"{str(b.get('sha256'))[:12]}; {versions}): a netspec, NumPy or platform change")  # fmt: skip


def import_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The imported block libraries whose SHA-256 differs between two locks (added, removed or edited)."""
    a, b = old.get("imports") or {}, new.get("imports") or {}
    if not isinstance(a, dict) or not isinstance(b, dict):
        return ["imports"] if a != b else []
    out = []
    for path in sorted(set(a) | set(b)):
        if path not in a:
            out.append(f"{path}: imported now, not in the lock")
        elif path not in b:
            out.append(f"{path}: in the lock, no longer imported")
        elif a[path] != b[path]:
            out.append(f"{path}: sha256 {str(a[path])[:12]} -> {str(b[path])[:12]}")
    return out


def _config(config: Any) -> str:
    if not isinstance(config, dict):
        return json.dumps(config)
    args = ", ".join(f"{k}={v}" for k, v in config.items() if k != "name")
    return f"{config.get('name')}({args})"


def spec_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
