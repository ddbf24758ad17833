"""Semantic diff of two specs (or two lock files): layers added, removed and renamed, changed options,
parameter counts, and the tensors whose bytes change.

Which tensors change needs no generation: with ``rng: block`` a tensor's bytes are a function of its
name, shape, resolved initializer, fans, dtype, seed and stream version alone (each parameter has its
own stream), so every tensor whose entry is equal on both sides keeps its bytes exactly. With
``rng: legacy`` (one sequential stream) a change moves every tensor after it.

A side is a file path, or ``REV:path`` read with ``git show`` (an argument list, no shell). The path is
relative to the current folder, as git's ``REV:./path`` (not to the repository root, as git's plain
``REV:path``): ``netspec diff HEAD:model.yaml model.yaml`` works from any folder of the repository.
"""

from __future__ import annotations

import math
import os
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netspec.errors import NetspecError
from netspec.spec.imports import Files

if TYPE_CHECKING:
    from netspec.nn.layers import ParamSpec
    from netspec.nn.network import Network


@dataclass
class Side:
    """One side of a diff: where it came from, its text, and what it is (spec or lock)."""

    label: str
    text: str
    path: str
    files: Files | None = None
    """Where its imports are read from (a git side reads them from the same revision)."""

    @property
    def is_lock(self) -> bool:
        return self.path.endswith(".lock")


def read_side(arg: str) -> Side:
    """A path, or ``REV:path`` from git (NetspecError when neither can be read)."""
    if os.path.exists(arg):
        from netspec.io.files import open_regular, read_limited

        if arg.endswith(".lock"):
            from netspec.vcs.lock import MAX_LOCK_BYTES

            data = read_limited(arg, MAX_LOCK_BYTES, "lock file")
            return Side(arg, data.decode("utf-8", "surrogateescape"), arg)  # (the lock reader refuses bad bytes)
        from netspec.spec.loader import MAX_BYTES, decode

        with open_regular(arg) as fh:
            return Side(arg, decode(fh.read(MAX_BYTES + 1), arg), arg)
    rev, sep, path = arg.partition(":")
    if not sep or not rev or not path:
        raise NetspecError(f"{arg}: no such file (a git revision is written REV:path)")
    if rev.startswith("-"):
        raise NetspecError(f"{arg}: a revision cannot start with '-'")
    root = _git(arg, "rev-parse", "--show-toplevel").decode().strip()
    prefix = _git(arg, "rev-parse", "--show-prefix").decode().strip()
    if subprocess.run(["git", "-C", root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
                      capture_output=True, timeout=60, check=False).returncode:  # fmt: skip
        raise NetspecError(f"{arg}: unknown revision {rev!r} (not a commit, branch or tag of {root})")
    absolute = os.path.normpath(os.path.join(root, prefix, path))  # relative to the current folder (REV:./path)
    if os.path.relpath(absolute, root).startswith(".."):
        raise NetspecError(f"{arg}: {path} is outside the repository {root}")
    raw = _git_file(rev, absolute, root)
    if raw is None:
        raise NetspecError(f"{arg}: {rev} has no file {os.path.relpath(absolute, root)} (paths are relative to "
                           "the current folder)")  # fmt: skip
    files = Files(root, absolute, lambda p: _git_file(rev, p, root), os.path.normpath,
                  lambda p: f"{rev}:{os.path.relpath(p, root)}")  # fmt: skip
    return Side(arg, raw.decode("utf-8", errors="replace"), path, files)


def _git(what: str, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", *args], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetspecError(f"{what}: cannot run git: {exc}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise NetspecError(f"{what}: git {args[0]} failed: {message[-1] if message else done.returncode}")
    return done.stdout


def _git_file(rev: str, absolute: str, root: str) -> bytes | None:
    """A file's bytes at a revision (None if it has no such file)."""
    from netspec.spec.loader import MAX_BYTES

    rel = os.path.relpath(absolute, root).replace(os.sep, "/")
    try:
        done = subprocess.run(["git", "-C", root, "show", f"{rev}:{rel}"], capture_output=True, timeout=60,
                              check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout[: MAX_BYTES + 1] if done.returncode == 0 else None


@dataclass
class Diff:
    """The differences; :attr:`same` when there are none."""

    old: str
    new: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    changed: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    params: dict[str, list[int]] = field(default_factory=dict)
    """Layer -> [old count, new count], for layers whose count changed."""
    total: tuple[int, int] = (0, 0)
    network: dict[str, list[Any]] = field(default_factory=dict)
    """Network-level settings that changed (seed, rng, dtype, stream, inputs, outputs)."""
    tensors: list[tuple[str, str]] = field(default_factory=list)
    """(tensor, why its bytes change)."""
    unchanged: int = 0
    constants: dict[str, list[Any]] = field(default_factory=dict)
    """Constant -> [old value, new value, what its change does to the tensors that read it]."""

    @property
    def same(self) -> bool:
        return not (self.added or self.removed or self.renamed or self.changed or self.params or self.network
                    or self.tensors or self.constants)  # fmt: skip

    def as_json(self) -> dict[str, Any]:
        return {
            "old": self.old, "new": self.new, "same": self.same,
            "network": self.network,
            "constants": {k: {"old": a, "new": b, "effect": e} for k, (a, b, e) in self.constants.items()},
            "layers": {"added": self.added, "removed": self.removed, "renamed": [list(r) for r in self.renamed],
                       "changed": {layer: {k: [None if v is _ABSENT else v for v in pair] for k, pair in opts.items()}
                                   for layer, opts in self.changed.items()}},
            "parameters": {"old": self.total[0], "new": self.total[1], "delta": self.total[1] - self.total[0],
                           "per_layer": self.params},
            "tensors": {"changed": [{"tensor": t, "why": w} for t, w in self.tensors], "unchanged": self.unchanged},
        }  # fmt: skip

    def text(self) -> str:
        out = [f"--- {self.old}", f"+++ {self.new}"]
        out += [f"network {k}: {a!r} -> {b!r}" for k, (a, b) in self.network.items()]
        out += [f"constant {k} {_value(a)} -> {_value(b)}: {e}" for k, (a, b, e) in self.constants.items()]
        out += [f"+ layer {n}" for n in self.added] + [f"- layer {n}" for n in self.removed]
        out += [f"~ layer {a} -> {b} (renamed: its tensors get the new name's streams)" for a, b in self.renamed]
        for layer, options in self.changed.items():
            out += [f"~ {layer}.{k}: {_show(a)} -> {_show(b)}" for k, (a, b) in options.items()]
        for layer, (a, b) in self.params.items():
            out.append(f"  params {layer}: {a:,} -> {b:,} ({b - a:+,})")
        a, b = self.total
        out.append(f"parameters: {a:,} -> {b:,} ({b - a:+,})")
        out += [f"  bytes change: {t} ({w})" for t, w in self.tensors]
        out.append(f"{len(self.tensors)} tensor(s) change; the other {self.unchanged} keep their bytes exactly "
                   "(each parameter has its own stream)")  # fmt: skip
        return "\n".join(out)


def _show(value: Any) -> str:
    return "(absent)" if value is _ABSENT else repr(value)


def _value(value: Any) -> str:
    return "(absent)" if value is None else str(value)


_ABSENT = object()


def diff_sides(old: Side, new: Side) -> Diff:
    """The diff of two specs, or of two lock files."""
    if old.is_lock or new.is_lock:
        if not (old.is_lock and new.is_lock):
            raise NetspecError("compare a lock file with a lock file, or a spec with a spec")
        return _diff_locks(old, new)
    from netspec.spec.compiler import compile_text

    a = compile_text(old.text, old.label, files=old.files)
    b = compile_text(new.text, new.label, files=new.files)
    return diff_networks(a, b, old.label, new.label)


def diff_networks(a: Network, b: Network, old: str, new: str) -> Diff:
    d = Diff(old, new, total=(a.num_params, b.num_params))
    for key in ("name", "seed", "rng", "dtype", "inputs", "outputs"):
        va, vb = getattr(a, key), getattr(b, key)
        if va != vb:
            d.network[key] = [_plain(va), _plain(vb)]
    if a.spec.get("defaults", {}) != b.spec.get("defaults", {}):
        d.network["defaults"] = [a.spec.get("defaults", {}), b.spec.get("defaults", {})]
    if a.init != b.init:
        d.network["init"] = [a.init, b.init]
    _layers(d, a, b)
    _tensors(d, a, b)
    _constants(d, a, b)
    return d


def _constants(d: Diff, a: Network, b: Network) -> None:
    """Each changed constant with what it does: how many tensors that read it change (std, shape or
    otherwise), are added or removed."""
    from netspec.vcs.lock import changed_constants, tensor_entries

    changed = changed_constants(a.constants, b.constants)
    if not changed:
        return
    ea, eb = tensor_entries(a), tensor_entries(b)
    reads_a = {n: set(e.get("constants", ())) for n, e in ea.items()}
    reads_b = {n: set(e.get("constants", ())) for n, e in eb.items()}
    std_a = {n: p.declared().std for n, p in a.parameters()}
    std_b = {n: p.declared().std for n, p in b.parameters()}
    for name, (old, new) in changed.items():
        effects: dict[str, int] = {}
        for tensor, _ in d.tensors:
            if name not in reads_b[tensor] | reads_a.get(tensor, set()):
                continue
            if tensor not in ea:
                kind = "added"
            elif ea[tensor]["shape"] != eb[tensor]["shape"]:
                kind = "change shape"
            elif not math.isclose(std_a[tensor], std_b[tensor], rel_tol=1e-12, abs_tol=0.0):
                kind = "change std"
            else:
                kind = "change their initializer"
            effects[kind] = effects.get(kind, 0) + 1
        removed = sum(1 for t in ea if t not in eb and name in reads_a[t])
        if removed:
            effects["removed"] = removed
        text = ", ".join(f"{n} tensor{'s' * (n != 1)} {kind}" for kind, n in effects.items()) or "no tensor changes"
        d.constants[name] = [old, new, text]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
    return value


def _layers(d: Diff, a: Network, b: Network) -> None:
    old = {cl.name: cl for cl in a.layers}
    new = {cl.name: cl for cl in b.layers}
    only_old = [n for n in old if n not in new]
    only_new = [n for n in new if n not in old]
    position_old = {cl.name: i for i, cl in enumerate(a.layers)}
    position_new = {cl.name: i for i, cl in enumerate(b.layers)}
    for name in list(only_old):  # renamed: same position, same type
        match = next((n for n in only_new if position_new[n] == position_old[name]
                      and new[n].layer.type == old[name].layer.type), None)  # fmt: skip
        if match:
            d.renamed.append((name, match))
            only_old.remove(name)
            only_new.remove(match)
    d.added, d.removed = only_new, only_old
    pairs = [(n, n) for n in old if n in new] + d.renamed
    renames = dict(d.renamed)
    for x, y in pairs:
        options = _option_changes(old[x].layer.options, new[y].layer.options)
        acts = [cl.layer.activation.get_config() if cl.layer.has_activation() else None for cl in (old[x], new[y])]
        if acts[0] != acts[1]:  # what the layer computes, after defaults (the option may be unwritten)
            options["activation"] = acts
        if [renames.get(s, s) for s in old[x].sources] != list(new[y].sources):
            options["inputs"] = [list(old[x].sources), list(new[y].sources)]
        if options:
            d.changed[y] = options
    for x, y in pairs:
        if old[x].num_params != new[y].num_params:
            d.params[y] = [old[x].num_params, new[y].num_params]
    for n in d.added:
        d.params[n] = [0, new[n].num_params]
    for n in d.removed:
        d.params[n] = [old[n].num_params, 0]


def _option_changes(a: dict[str, Any], b: dict[str, Any]) -> dict[str, list[Any]]:
    keys = sorted((set(a) | set(b)) - {"name", "inputs"})
    return {k: [a.get(k, _ABSENT), b.get(k, _ABSENT)] for k in keys if a.get(k, _ABSENT) != b.get(k, _ABSENT)}


def _tensors(d: Diff, a: Network, b: Network) -> None:
    """The tensors whose bytes change: a tensor's bytes follow from its name, shape and declared
    distribution (exact parameters, fans included) with the seed, dtype and stream."""
    from netspec.vcs.lock import stream_name, tensor_entries

    ea, eb = tensor_entries(a), tensor_entries(b)
    da = {name: _draw_inputs(p) for name, p in a.parameters()}
    db = {name: _draw_inputs(p) for name, p in b.parameters()}
    common = {"seed": (a.seed, b.seed), "dtype": (a.dtype, b.dtype), "stream": (stream_name(a), stream_name(b))}
    moved = [k for k, (x, y) in common.items() if x != y]
    legacy = "legacy" in (a.rng, b.rng)
    disturbed = False
    for name in eb:
        why = ""
        if name not in ea:
            why = "new tensor"
        elif moved:
            why = ", ".join(f"{k} {common[k][0]} -> {common[k][1]}" for k in moved)
        elif da[name] != db[name]:
            why = "; ".join(f"{k} {ea[name][k]} -> {eb[name][k]}" for k in ("shape", "initializer", "fans", "declared")
                            if ea[name][k] != eb[name][k]) or "declared distribution changed"  # fmt: skip
        elif legacy and (disturbed or list(ea).index(name) != list(eb).index(name)):
            why = "rng legacy: one sequential stream, moved by an earlier change"
        if why:
            disturbed = True
            d.tensors.append((name, why))
    d.unchanged = len(eb) - len(d.tensors)


def _draw_inputs(p: ParamSpec) -> tuple[Any, ...]:
    """What a tensor's bytes depend on besides its name, seed, dtype and stream: its shape and declared
    distribution (built-in initializers draw exactly their declaration), and for a plugin initializer
    that draws by its own ``__call__`` its whole configuration too."""
    from netspec.init.initializers import Initializer

    custom = p.gates is None and type(p.initializer).__call__ is not Initializer.__call__
    return (p.shape, p.declared(), p.initializer if custom else None)


def _diff_locks(old: Side, new: Side) -> Diff:
    from netspec.vcs.lock import changed_constants, compare, loads

    a, b = loads(old.text, old.label), loads(new.text, new.label)
    d = Diff(old.label, new.label, total=(int(a.get("parameters", 0)), int(b.get("parameters", 0))))
    for key in ("seed", "rng", "stream", "dtype", "netspec_version", "imports", "init"):
        if a.get(key) != b.get(key):
            d.network[key] = [a.get(key), b.get(key)]
    for name, (old_value, new_value) in changed_constants(a.get("constants"), b.get("constants")).items():
        d.constants[name] = [old_value, new_value, "(see the tensors below)"]
    for drift in compare(a, b):
        d.tensors.append((drift.tensor, drift.reason))
    d.unchanged = len(b["tensors"]) - len(d.tensors)
    return d
