"""Bounded JSON reading: the one way netspec parses JSON it did not write itself.

Safetensors headers and their ``__metadata__``, ``.npz`` metadata, lock files, and any other JSON that
comes from a file (a Hugging Face ``config.json``, a shard index) go through :func:`loads` or
:func:`load`, which bound what a hostile document can cost before the standard library's parser sees it:

* **size**: at most ``max_bytes`` (checked before anything is parsed; :func:`load` reads no further);
* **depth**: nesting of arrays and objects at most ``max_depth``. The standard parser recurses once per
  level (100,000 nested ``[`` raise ``RecursionError``), so the depth is measured first, without
  recursion: string literals are emptied by a regular-expression pass, the brackets that remain are
  kept, and the innermost pairs (``[]``, ``{}``) are removed ``max_depth`` times (each pass removes one
  level, in C). Only a document proven shallow is handed to ``json.loads``, whose recursion is then bounded;
* **values**: at most ``max_values`` values and keys, which bounds the Python objects built (an upper
  bound is counted before parsing: every value or key but the first follows ``[``, ``{``, ``,`` or ``:``);
* **meaning**: UTF-8 only, duplicate keys refused (two readers could pick different ones), ``NaN`` and
  ``Infinity`` refused, as are numbers that overflow to infinity or have more digits than Python converts.

Every failure is a :class:`JSONError` (a :class:`~netspec.errors.NetspecError`) naming the source and,
where the problem has one, the line and column.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

from netspec.errors import NetspecError

MAX_BYTES = 16 << 20
"""Default size limit (16 MiB): far above any lock file, metadata or config netspec reads."""
MAX_DEPTH = 64
"""Default nesting limit (the spec loader's too): netspec's own documents nest 4 levels at most."""
MAX_VALUES = 1_000_000
"""Default limit on values and keys together (a lock entry holds about 20)."""

_STRING = re.compile(rb'"[^"]*"?')
"""A string literal once its escapes are blanked (an unterminated one runs to the end)."""
_TOKEN = re.compile(rb'"[^"]*"?|[\[\]{}]')
_OPEN, _CLOSE = b"[{", b"]}"
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class JSONError(NetspecError, ValueError):
    """A JSON document that is malformed or over a limit; ``line``/``column`` are 1-based (0: not located)."""

    def __init__(self, source: str, message: str, line: int = 0, column: int = 0):
        self.source, self.message, self.line, self.column = source, message, line, column
        where = f"{source}:{line}:{column}" if line else source
        super().__init__(f"{where}: {message}")


def load(
    path: str, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH, max_values: int = MAX_VALUES
) -> Any:
    """The JSON document in the regular file ``path`` (read no further than ``max_bytes``).

    Raises:
        JSONError: malformed or over a limit. NotARegularFile, OSError: the file cannot be read.
    """
    from netspec.io.files import open_regular

    with open_regular(path) as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise JSONError(path, f"larger than the limit of {max_bytes:,} bytes; not reading it")
    return loads(data, path, max_bytes=max_bytes, max_depth=max_depth, max_values=max_values)


def loads(
    data: bytes | str,
    source: str,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    max_values: int = MAX_VALUES,
) -> Any:
    """Parse the JSON document ``data`` (UTF-8 bytes, or text) within the limits (see the module doc).

    Args:
        source: names the document in error messages (a path, or ``w.safetensors header``).

    Raises:
        JSONError: malformed or over a limit, located where the problem has a place.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise JSONError(source, f"{len(raw):,} bytes is larger than the limit of {max_bytes:,} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONError(source, f"not UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded",
                        *_position(raw, exc.start)) from None  # fmt: skip
    # Escapes blanked (same length, so offsets stay): escaped backslashes first, as the parser reads escapes
    # left to right.
    # Every quote left opens or closes a string; outside strings a backslash is an error anyway.
    blanked = raw.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    strings = blanked.count(b'"') // 2
    if strings > max_values:  # each string is a value or a key: refused before the pass that blanks them
        raise JSONError(source, f"more than {max_values:,} values ({strings:,} strings); refusing to parse it")
    skeleton = b"".join(_without_strings(blanked))
    values = 1 + sum(skeleton.count(c) for c in (b"[", b"{", b",", b":"))
    if values > max_values:
        raise JSONError(source, f"more than {max_values:,} values (up to {values:,}); refusing to parse it")
    if not _shallow(skeleton, max_depth):
        _locate_depth(blanked, source, max_depth)  # raises if the nesting is too deep somewhere
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise JSONError(source, exc.msg, exc.lineno, exc.colno) from None
    except _Refused as exc:
        raise JSONError(source, str(exc)) from None
    except ValueError as exc:  # an integer with more digits than Python converts (sys.get_int_max_str_digits)
        raise JSONError(source, f"a number cannot be read: {exc}") from None


def _without_strings(blanked: bytes, chunk: int = 1 << 20) -> Iterator[bytes]:
    """``blanked`` with every string literal emptied, in pieces of about ``chunk`` bytes cut between strings
    (one substitution over the whole text would hold two objects per string at once)."""
    start = 0
    while start < len(blanked):
        end = min(start + chunk, len(blanked))
        if blanked.count(b'"', start, end) % 2:  # the last string runs past the cut: cut after it
            close = blanked.find(b'"', end)
            end = len(blanked) if close < 0 else close + 1
        yield _STRING.sub(b'""', blanked[start:end])
        start = end


def _shallow(skeleton: bytes, max_depth: int) -> bool:
    """Whether every bracket of ``skeleton`` (strings blanked) is closed within ``max_depth`` levels.

    ``[`` and ``{`` count alike. Each pass removes every innermost pair, i.e. one level of nesting, so a
    document of depth d is empty after d passes; an opening bracket left after ``max_depth`` passes is
    either nested deeper or never closed."""
    brackets = skeleton.translate(_BRACKETS, _NOT_BRACKETS)
    for _ in range(max_depth):
        if not brackets:
            return True
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            break
        brackets = shorter
    return b"[" not in brackets


def _locate_depth(raw: bytes, source: str, max_depth: int) -> None:
    """Walk the brackets outside strings; raise at the first that opens level ``max_depth + 1``. (Reached
    only when :func:`_shallow` fails: for a deep document, or an unclosed bracket, which the parser then
    reports.) The walk stops there, and the values limit bounds its length."""
    depth = 0
    for match in _TOKEN.finditer(raw):
        c = raw[match.start()]
        if c in _OPEN:
            depth += 1
            if depth > max_depth:
                raise JSONError(source, f"nesting deeper than {max_depth} levels", *_position(raw, match.start()))
        elif c in _CLOSE:
            depth -= 1


def _position(raw: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of byte ``offset``."""
    start = raw.rfind(b"\n", 0, offset) + 1
    return raw.count(b"\n", 0, offset) + 1, len(raw[start:offset].decode("utf-8", "replace")) + 1


class _Refused(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _Refused(f"duplicate key {duplicate!r} in an object")
    return out


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON (only finite numbers)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"number {text[:24]} is out of range (it overflows to infinity)")
    return value
