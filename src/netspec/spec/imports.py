"""Block libraries across files: ``imports: [lib/blocks.yaml, {path: lib/more.yaml, blocks: [basic]}]``.

An imported file is a spec file (it may hold only ``netspec: 1`` and ``blocks:``, and may import
others); its blocks (all, or the ones listed) become usable as if defined in the importing spec.
Paths are relative to the importing file and confined to the spec's repository (the nearest folder
above the spec holding ``.git``, else the spec's own folder): no absolute paths, no URLs, nothing
that resolves outside (``..`` or a symbolic link). Cycles are refused. Errors inside an imported block
are located in the imported file (and name the import line); each imported file's SHA-256 is recorded
(``Network.imports``, and so the lock file).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from netspec.errors import Diagnostic, SpecError
from netspec.registry import did_you_mean
from netspec.spec.loader import Document, Path, format_path, load_text, parse_path

MAX_IMPORTED_FILES = 64
MAX_IMPORTED_BYTES = 4 << 20
"""What the imported files of one spec may hold in all (parsing YAML costs several seconds per MiB: 64
files of 1 MiB each would cost minutes)."""
LIBRARY_KEYS = ("netspec", "imports", "blocks")
"""What a block library may hold (besides ``x-`` keys)."""
URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^[A-Za-z]:[\\/]|^\\\\")


@dataclass
class Imported:
    """The blocks grafted into a document, where each came from, and every imported file's digest."""

    origins: dict[str, tuple[Document, Path]] = field(default_factory=dict)
    """Block name -> (the document it is defined in, the import entry's path in the importing spec)."""
    digests: dict[str, str] = field(default_factory=dict)
    """Imported file (relative to the repository root) -> SHA-256 of its text (UTF-8)."""
    loaded: dict[str, tuple[Document, dict[str, tuple[Document, Path]]]] = field(default_factory=dict)
    """Each imported file, loaded and grafted once however many files import it, with its own grafts."""
    size: int = 0
    """Bytes read from imported files so far (at most :data:`MAX_IMPORTED_BYTES`)."""


def repository_root(spec_path: str) -> str:
    """The nearest folder above ``spec_path`` holding ``.git``, else the spec's folder."""
    folder = os.path.dirname(os.path.realpath(spec_path))
    here = folder
    while True:
        if os.path.exists(os.path.join(here, ".git")):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            return folder
        here = parent


@dataclass(frozen=True)
class Files:
    """Where a spec's imports are read from: the working tree, or a git revision (``netspec diff``)."""

    root: str
    """The repository root (absolute): imports stay inside it."""
    spec: str
    """The importing spec's absolute path (imports are relative to its folder)."""
    read: Callable[[str], bytes | None]
    """Absolute path -> the file's bytes (None: no such file)."""
    real: Callable[[str], str] = os.path.realpath
    label: Callable[[str], str] = os.path.relpath
    """Absolute path -> how messages name the file."""


def local_files(spec_path: str) -> Files:
    """The working tree, for a spec file at ``spec_path``."""
    return Files(repository_root(spec_path), os.path.realpath(spec_path), _read_local)


def _read_local(path: str) -> bytes | None:
    from netspec.io.files import open_regular
    from netspec.spec.loader import MAX_BYTES

    try:
        with open_regular(path) as fh:  # (NotARegularFile for a FIFO or device: never opened for reading)
            return fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None


def resolve_imports(doc: Document, files: Files | None = None) -> Imported:
    """Graft the blocks ``doc`` imports into ``doc.data["blocks"]`` (in place); ``files`` says where
    they are read from (default: the working tree around ``doc.source``).

    Raises:
        SpecError: a located problem with an import (in the importing file) or inside an imported file.
    """
    result = Imported()
    if not doc.data.get("imports"):
        return result
    if files is None:
        if not os.path.isfile(doc.source):
            raise SpecError(doc.source, [_diag(doc, ("imports",), "imports need a spec file to resolve paths "
                                               "from (this spec was given as text)")], doc.text)  # fmt: skip
        files = local_files(doc.source)
    result.origins = _graft(doc, files.spec, files, result, [files.spec])
    return result


def _diag(doc: Document, path: Path, message: str, hint: str = "") -> Diagnostic:
    line, col = doc.mark(path)
    return Diagnostic(message, line, col, format_path(path), hint=hint)


def _entries(doc: Document) -> list[tuple[Path, str, list[str] | None]]:
    out: list[tuple[Path, str, list[str] | None]] = []
    for i, entry in enumerate(doc.data.get("imports", [])):
        if isinstance(entry, str):
            out.append(((("imports", i)), entry, None))
        else:
            out.append((("imports", i, "path"), entry["path"], list(entry["blocks"]) if "blocks" in entry else None))
    return out


def _graft(
    doc: Document, doc_path: str, files: Files, result: Imported, stack: list[str]
) -> dict[str, tuple[Document, Path]]:
    """Graft ``doc``'s imports into ``doc.data["blocks"]`` (recursively); returns, per grafted block, the
    document that defines it and the import entry in ``doc`` that brought it."""
    blocks = doc.data.setdefault("blocks", {})
    grafted: dict[str, tuple[Document, Path]] = {}
    for where, rel, wanted in _entries(doc):
        target = _confined(doc, doc_path, where, rel, files)
        if target in stack:
            chain = " -> ".join(os.path.relpath(p, files.root) for p in [*stack[stack.index(target):], target])
            raise SpecError(doc.source, [_diag(doc, where, f"import cycle: {chain}")], doc.text)
        if target not in result.loaded:  # each file once: a file many import costs one load (no blow-up)
            if len(result.loaded) >= MAX_IMPORTED_FILES:
                raise SpecError(doc.source, [_diag(doc, where, f"more than {MAX_IMPORTED_FILES} imported files")],
                                doc.text)  # fmt: skip
            library = _load(doc, where, target, files, MAX_IMPORTED_BYTES - result.size)
            result.size += len(library.text.encode())
            result.digests[os.path.relpath(target, files.root)] = hashlib.sha256(library.text.encode()).hexdigest()
            result.loaded[target] = (library, _graft(library, target, files, result, [*stack, target]))
        library, nested = result.loaded[target]
        available = library.data.get("blocks", {})
        names = list(available) if wanted is None else wanted
        for j, name in enumerate(names):
            at: Path = where if wanted is None else (*where[:-1], "blocks", j)
            if name not in available:
                raise SpecError(doc.source, [_diag(doc, at, f"{rel} defines no block {name!r}"
                                                   f"{did_you_mean(name, list(available))}")], doc.text)  # fmt: skip
            if name in blocks and blocks[name] is available[name]:
                continue  # the same block of the same file, reached twice (B and C both import D)
            if name in blocks:
                raise SpecError(doc.source, [_diag(doc, at, f"block {name!r} from {rel} is already defined "
                                                   "(locally or by another import)")], doc.text)  # fmt: skip
            blocks[name] = available[name]
            grafted[name] = (nested[name][0] if name in nested else library, where)
    return grafted


def _confined(doc: Document, doc_path: str, where: Path, rel: str, files: Files, what: str = "import") -> str:
    """The real path of an import, or a located error if it is absolute, a URL or outside the repository."""
    if URL.match(rel) or os.path.isabs(rel) or rel.startswith("~"):
        raise SpecError(doc.source, [_diag(doc, where, f"{what} {rel!r} must be a relative path inside the "
                                           "repository (no absolute paths, no URLs)")], doc.text)  # fmt: skip
    target = files.real(os.path.join(os.path.dirname(doc_path), rel))
    if os.path.commonpath([target, files.root]) != files.root:
        raise SpecError(doc.source, [_diag(doc, where, f"{what} {rel!r} resolves outside the repository "
                                           f"({files.root})")], doc.text)  # fmt: skip
    return target


def load_relative(doc: Document, where: Path, rel: str, files: Files | None, what: str) -> tuple[Document, Files]:
    """Another spec file that ``doc`` names at ``where`` (relative to its file, confined to the repository as
    imports are), loaded safely, with the :class:`Files` its own references resolve from.

    Raises:
        SpecError: located at ``where`` (no file to resolve from, outside the repository, missing), or the
            file's own load errors.
    """
    from netspec.spec.loader import decode

    if files is None:
        if not os.path.isfile(doc.source):
            raise SpecError(doc.source, [_diag(doc, where, f"{what} needs a spec file to resolve paths from (this "
                                               "spec was given as text)")], doc.text)  # fmt: skip
        files = local_files(doc.source)
    target = _confined(doc, files.spec, where, rel, files, what)
    raw = files.read(target)
    if raw is None:
        raise SpecError(doc.source, [_diag(doc, where, f"{what} {rel!r}: no such file")], doc.text)
    label = files.label(target)
    note = f"{what} of {doc.source}:{doc.mark(where)[0]}"
    try:
        loaded = load_text(decode(raw, label), label)
    except SpecError as exc:
        raise SpecError(exc.source, [replace(d, hint=d.hint or note) for d in exc.diagnostics], exc.text) from None
    return loaded, replace(files, spec=target)


def _load(doc: Document, where: Path, target: str, files: Files, budget: int) -> Document:
    """The imported file, loaded safely and checked against the schema of a block library."""
    from netspec.io.files import NotARegularFile
    from netspec.spec.loader import decode

    try:
        raw = files.read(target)
    except NotARegularFile as exc:
        raise SpecError(doc.source, [_diag(doc, where, f"import {_entry_text(doc, where)!r}: not a regular file "
                                           f"({exc.what})")], doc.text) from None  # fmt: skip
    if raw is None:
        rel = _entry_text(doc, where)
        raise SpecError(doc.source, [_diag(doc, where, f"import {rel!r}: no such file")], doc.text)
    if len(raw) > budget:  # checked before the file is parsed
        rel = _entry_text(doc, where)
        msg = f"import {rel!r}: the imported files hold more than {MAX_IMPORTED_BYTES:,} bytes in all"
        raise SpecError(doc.source, [_diag(doc, where, msg)], doc.text)
    line, _ = doc.mark(where)
    note = f"imported from {doc.source}:{line}"
    label = files.label(target)
    try:
        library = load_text(decode(raw, label), label)
    except SpecError as exc:
        raise SpecError(exc.source, [replace(d, hint=d.hint or note) for d in exc.diagnostics], exc.text) from None
    problems = _library_problems(library, note)
    if problems:
        raise SpecError(label, problems, library.text)
    return library


def _library_problems(library: Document, note: str) -> list[Diagnostic]:
    """What keeps ``library`` from being a block library (its blocks and imports against the schema)."""
    from netspec.spec.validation import validate_fragment

    data = library.data
    problems = []
    if not isinstance(data, dict) or data.get("netspec") != 1:
        problems.append(_diag(library, (), "an imported file is a spec file: it starts with netspec: 1", note))
        return problems
    if not isinstance(data.get("blocks", {}), dict):
        problems.append(_diag(library, ("blocks",), "blocks must be a mapping of block names", note))
    else:
        for name, block in data.get("blocks", {}).items():
            problems += [replace(d, hint=d.hint or note)
                         for d in validate_fragment(library, block, "block", ("blocks", name))]  # fmt: skip
        if "imports" in data:
            problems += [replace(d, hint=d.hint or note)
                         for d in validate_fragment(library, data["imports"], "imports", ("imports",))]  # fmt: skip
    return problems


def is_library(data: Any) -> bool:
    """Whether a loaded spec file is a block library: ``blocks`` and no ``layers`` or inputs (it builds
    nothing by itself; specs use its blocks through ``imports``)."""
    return isinstance(data, dict) and "blocks" in data and not {"layers", "input", "inputs"} & set(data)


@dataclass
class BlockLibrary(SpecError):
    """A block library was given where a network spec is needed (see :func:`is_library`)."""

    document: Document | None = None


def not_a_network(doc: Document) -> BlockLibrary:
    """The error for building (or exporting, explaining, ...) a block library."""
    message = "this file is a block library (blocks and no layers): it builds nothing; specs import its blocks"
    diag = Diagnostic(message, 1, 1, "", hint="netspec validate checks it as a library")
    return BlockLibrary(doc.source, [diag], doc.text, doc)


def check_library(doc: Document, files: Files | None = None) -> list[str]:
    """Check a block library as ``netspec validate`` does: its blocks and imports against the schema, its
    imports resolved (confined, no cycles, every named block present), and its blocks' layers against
    the layer schema as far as they are known without arguments (see
    :func:`~netspec.spec.expansion.check_definitions`); returns its block names.

    Raises:
        SpecError: every located problem.
    """
    from netspec.spec.expansion import check_definitions

    problems = _library_problems(doc, "")
    for key in doc.data if isinstance(doc.data, dict) else ():  # a stray key is more likely a broken spec
        if key not in LIBRARY_KEYS and not str(key).startswith("x-"):
            hint = did_you_mean(str(key), ["layers", *LIBRARY_KEYS]).strip(" ()")
            line, col = doc.mark((key,), key=True)
            message = (f"a block library holds only {', '.join(LIBRARY_KEYS)} (and x- keys), not {key!r}; a "
                       "network spec also needs input and layers")  # fmt: skip
            problems.append(Diagnostic(message, line, col, format_path((key,)), hint))
    if problems:
        raise SpecError(doc.source, problems, doc.text)
    names = list(doc.data.get("blocks") or {})
    resolve_imports(doc, files)
    problems = check_definitions(doc, names)  # its own blocks (imported ones are their files' business)
    if problems:
        raise SpecError(doc.source, problems, doc.text)
    return names


def _entry_text(doc: Document, where: Path) -> str:
    value: Any = doc.data
    for part in where:
        value = value[part]
    return str(value)


def attribute(diags: list[Diagnostic], doc: Document, imported: Imported) -> list[Diagnostic]:
    """Diagnostics inside an imported block, re-located in the file that defines it (named by the import)."""
    out = []
    for d in diags:
        name = _block_of(d.path)
        if name is None or name not in imported.origins:
            out.append(d)
            continue
        origin, where = imported.origins[name]
        line, col = origin.mark(parse_path(d.path))
        import_line = doc.mark(where)[0]
        message = d.message.replace(" used on line ", f" used at {doc.source}:")
        out.append(replace(d, line=line, column=col, source=origin.source, text=origin.text,
                           message=f"{message} (block {name!r} imported at {doc.source}:{import_line})"))  # fmt: skip
    return out


def _block_of(path: str) -> str | None:
    match = re.match(r"^blocks\.([A-Za-z_][A-Za-z0-9_\-]*)(?=$|[.\[])", path)
    return match[1] if match else None



