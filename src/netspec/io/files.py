"""Opening input files safely: regular files only, never blocking, never reading past a size limit.

A path named on the command line or inside a spec may be a FIFO, a device or a socket. Opening a FIFO
for reading blocks until a writer appears (forever, if none does) and reading a device may never end,
so every reader opens through :func:`open_regular`: the path is checked with ``stat`` before it is
opened (a device is never opened at all), opened with ``O_NONBLOCK`` (a FIFO swapped in after the
check opens at once instead of blocking), and checked again with ``fstat`` on the open descriptor, which
is what is actually read.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from netspec.errors import NetspecError

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class NotARegularFile(NetspecError):
    """A path to read is a folder, FIFO, socket or device."""


def kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words ('a FIFO (named pipe)'); '' for a regular file."""
    if stat.S_ISREG(mode):
        return ""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_regular(path: str) -> None:
    """Raise :class:`NotARegularFile` if ``path`` exists and is not a regular file (symbolic links are
    followed). A missing path is left to the caller's ``open`` (FileNotFoundError)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    what = kind(mode)
    if what:
        raise NotARegularFile(f"{path}: not a regular file ({what})")


def open_regular(path: str) -> BinaryIO:
    """``open(path, "rb")`` for a regular file; never blocks.

    Raises:
        NotARegularFile: ``path`` is a folder, FIFO, socket or device (checked before and after opening).
        OSError: it cannot be opened (FileNotFoundError, PermissionError, ...).
    """
    check_regular(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        what = kind(os.fstat(fd).st_mode)
        if what:
            raise NotARegularFile(f"{path}: not a regular file ({what})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_limited(path: str, limit: int, what: str = "file") -> bytes:
    """The bytes of the regular file ``path``, refused (before more is read) past ``limit`` bytes.

    Raises:
        NetspecError: larger than ``limit`` (the message names ``what`` and the limit).
        NotARegularFile, OSError: as :func:`open_regular`.
    """
    with open_regular(path) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise NetspecError(f"{path}: the {what} is larger than the limit of {limit:,} bytes; not reading it")
    return data
