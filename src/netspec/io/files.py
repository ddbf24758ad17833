"""Files on disk: inputs opened safely, outputs written atomically.

**Reading.** A path named on the command line or inside a spec may be a FIFO, a device or a socket.
Opening a FIFO for reading blocks until a writer appears (forever, if none does) and reading a device
may never end, so every reader opens through :func:`open_regular`: the path is checked with ``stat``
before it is opened (a device is never opened at all), opened with ``O_NONBLOCK`` (a FIFO swapped in
after the check opens at once instead of blocking), and checked again with ``fstat`` on the open
descriptor, which is what is actually read.

**Writing.** :func:`atomic_write` gives a file whose content replaces the destination only when the
block completes, flushed and fsynced: nothing half-written ever carries the destination's name. Where
the platform has anonymous files (Linux ``O_TMPFILE``), the data goes to a file with no name in the
destination's folder; only when complete is it linked under a temporary name (``linkat`` through
``/proc/self/fd``) and renamed over the destination (``linkat`` cannot replace a file). A process
killed while writing, even by SIGKILL, leaves nothing: the kernel frees a file that has no name once
its last descriptor closes. Elsewhere (macOS, filesystems without ``O_TMPFILE``) the data goes to a
named partial file, ``.<destination>.netspec-<16 hex>.partial``, removed on any error or signal that
unwinds; one left by SIGKILL is removed by the next write of the same destination, and only if it
matches that destination's pattern, no process holds it (each writer holds an exclusive ``flock`` on
its file while it exists) and it has not been modified for :data:`STALE_AFTER` seconds. Existing
destinations that are not regular files (a folder, FIFO, device, socket) are refused, never replaced.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from netspec.errors import NetspecError

STALE_AFTER = 60.0
"""Seconds a partial file must be untouched before another write may remove it (a writer between
creating its file and locking it is never taken for a dead one)."""

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class NotARegularFile(NetspecError):
    """A path to read or write is a folder, FIFO, socket or device; ``what`` says which."""

    def __init__(self, path: str, what: str, writing: bool = False):
        self.path, self.what = path, what
        detail = f"is {what}, not a file; refusing to write over it" if writing else f"not a regular file ({what})"
        super().__init__(f"{path}: {detail}")


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
        raise NotARegularFile(path, what)


def require_file(path: str, missing: str = "no such file") -> None:
    """Raise a NetspecError unless ``path`` is a regular file (symbolic links followed): ``path: <missing>``
    when nothing is there, :class:`NotARegularFile` (naming what is there) otherwise."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        raise NetspecError(f"{path}: {missing}") from None
    what = kind(mode)
    if what:
        raise NotARegularFile(path, what)


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
            raise NotARegularFile(path, what)
        os.set_blocking(fd, True)
        return open(path, "rb", opener=lambda *_: fd)  # (named after the path, as open() names its files)
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


@contextmanager
def atomic_write(path: str) -> Iterator[BinaryIO]:
    """A file object whose content replaces ``path`` only if the block completes (see the module doc).

    Raises:
        NotARegularFile: ``path`` exists and is a folder, FIFO, device or socket (a symbolic link is
            replaced, not followed). OSError: the file cannot be written (nothing is left behind).
    """
    _check_replaceable(path)
    folder = os.path.dirname(os.path.abspath(path))
    remove_stale_partials(path)
    # The name is chosen before any file exists, so a signal that lands just after a named file is created
    # (SIGTERM unwinds like Ctrl-C) still knows what to remove.
    partial = os.path.join(folder, _partial_name(os.path.basename(path)))
    fd = _anonymous_file(folder)
    named = ""  # the partial's name once it exists (ours to remove)
    try:
        if fd is None:  # (FileExistsError: 64 random bits taken by another writer: its file, not ours to remove)
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
            named = partial
        fh = os.fdopen(fd, "wb")
    except BaseException:
        if fd is not None and not named:
            os.close(fd)
        if named:
            os.unlink(named)
        raise
    try:
        with fh:
            _hold(fh.fileno())
            os.fchmod(fh.fileno(), 0o666 & ~_umask())  # created 0600; a new file respects the umask like any other
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
            if not named:  # give the anonymous file a name, while it is still held, then rename it
                _name_anonymous(fh.fileno(), partial)
                named = partial
            os.replace(named, path)
            named = ""
        sync_folder(folder)
    except BaseException:
        if named and os.path.lexists(named):
            os.unlink(named)
        raise


def _check_replaceable(path: str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return
    what = kind(mode) if not stat.S_ISLNK(mode) else ""
    if what:
        raise NotARegularFile(path, what, writing=True)


def _partial_name(base: str) -> str:
    return f".{base[:120]}.netspec-{secrets.token_hex(8)}.partial"


def _partial_pattern(base: str) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(base[:120])}\.netspec-[0-9a-f]{{16}}\.partial\Z")


def _anonymous_file(folder: str) -> int | None:
    """A descriptor of a new file with no name in ``folder`` (Linux O_TMPFILE), or None where there is none."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(folder, flag | os.O_WRONLY, 0o600)
    except OSError as exc:  # a filesystem or kernel without it
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            return None
        raise


def _name_anonymous(fd: int, path: str) -> None:
    """``linkat(fd's file, path)``: through ``/proc/self/fd`` with AT_SYMLINK_FOLLOW, which needs no
    privilege (``AT_EMPTY_PATH`` does). ``os.link`` uses ``linkat`` only when given a folder descriptor;
    plain ``link`` would link the /proc entry itself."""
    folder = os.open(os.path.dirname(path), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.link(f"/proc/self/fd/{fd}", os.path.basename(path), dst_dir_fd=folder, follow_symlinks=True)
    finally:
        os.close(folder)


def _hold(fd: int) -> None:
    """Take an exclusive lock on the file being written, so no other write takes it for stale."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): stale partials are never removed there
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _held(path: str) -> bool:
    """Whether a process holds the lock on ``path`` (True where that cannot be known)."""
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def remove_stale_partials(path: str) -> list[str]:
    """Remove the partial files that writes of ``path`` left behind when they were killed (the module
    doc says which); returns their paths."""
    folder = os.path.dirname(os.path.abspath(path))
    pattern = _partial_pattern(os.path.basename(path))
    removed = []
    try:
        entries = [e for e in os.scandir(folder) if pattern.match(e.name)]
    except OSError:
        return []
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode) or time.time() - info.st_mtime < STALE_AFTER or _held(entry.path):
                continue
            os.unlink(entry.path)
            removed.append(entry.path)
        except OSError:
            continue
    return removed


def sync_folder(folder: str) -> None:
    """fsync the folder, so the rename itself survives a crash (where the platform allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
