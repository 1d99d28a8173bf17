"""Opening and writing files without following links someone planted.

Every file llmdeck creates or appends to (logs, lock files, ``.part`` downloads, run files) is
opened with ``O_NOFOLLOW`` and checked to be a regular file after opening, so a symbolic link
planted at that name (``logs/m.log -> ~/.bashrc``) is refused with a one-line error naming the
file instead of being written through. Whole-file writes go to a temp file created with
``O_EXCL`` beside the target and are renamed over it, which replaces a link rather than
following it. The folders llmdeck makes for its private files (``run/``, ``logs/``) are created
0700, and a ``run/`` folder others can write to is refused: its pid files could be forged.

Only the last component of a path is protected: the folders above it are the user's own
(models.json's folder) and are trusted.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path


class UnsafeFile(OSError):
    """A file llmdeck would write is a link or not a regular file; the message is one line."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _refuse(path: Path | str, what: str) -> UnsafeFile:
    return UnsafeFile(f"{path}: {what}; llmdeck does not write through it: remove it (or move it away) and retry")


def open_fd(path: Path | str, flags: int, mode: int = 0o600) -> int:
    """``os.open`` with ``O_NOFOLLOW | O_CLOEXEC``; the result is a regular file or
    :class:`UnsafeFile` is raised (a link, a FIFO, a device, a folder)."""
    try:  # O_NONBLOCK: opening a FIFO planted there must not hang (it is refused below)
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refuse(path, "is a symbolic link") from None
        if exc.errno == errno.EISDIR:
            raise _refuse(path, "is a folder, not a file") from None
        if exc.errno == errno.ENXIO:  # a FIFO or socket with no reader
            raise _refuse(path, "is not a regular file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, "is not a regular file")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_append(path: Path | str, mode: int = 0o600):
    """A binary file object appending to ``path`` (created with ``mode``), never through a link."""
    fd = open_fd(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
    return os.fdopen(fd, "ab", buffering=0)


def refuse_link(path: Path | str) -> None:
    """Raise :class:`UnsafeFile` when ``path`` exists and is a link or not a regular file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(path, "is a symbolic link")
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, "is not a regular file")


def private_dir(path: Path | str) -> Path:
    """Create ``path`` (and parents) with the leaf 0700; an existing folder is left as it is."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True, mode=0o700)
    return p


def dir_problem(path: Path | str) -> str | None:
    """One line when a folder of private files may not be trusted: writable by group or others
    (anyone could plant or forge a file there), or owned by another user. None when fine or
    absent."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if st.st_uid != os.geteuid():
        return f"{path} belongs to another user (uid {st.st_uid}): its files cannot be trusted; use your own folder"
    if st.st_mode & 0o022:
        return (f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o}): its pid files could "
                f"be forged; fix: chmod 700 {path}")
    return None


def real_path(path: Path | str) -> Path:
    """Where writes to ``path`` must go: through any symbolic links to the real file (so a
    linked models.json stays a link and its target is the file that changes)."""
    return Path(os.path.realpath(path))


def atomic_write(path: Path | str, data: str | bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically: a temp file (``O_EXCL``) beside it, fsync, rename.

    The rename replaces whatever is at ``path`` (a planted link is replaced, its target is not
    touched). ``mode`` is set before a byte is written (secrets: 0o600); without it an existing
    regular file keeps its mode and a new one is 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is None:  # keep an existing file's mode; a new one stays 0600 (mkstemp's)
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                if stat.S_ISREG(st.st_mode):
                    mode = stat.S_IMODE(st.st_mode)
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        with contextlib.suppress(OSError):
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class LockBusy(Exception):
    """Another process holds a lock; ``holder`` is its PID when it recorded one."""

    def __init__(self, holder: int | None):
        super().__init__(f"held by pid {holder}" if holder else "held")
        self.holder = holder


@contextlib.contextmanager
def lock(path: Path, *, timeout: float | None = None, give_up: Callable[[], bool] | None = None,
         poll_s: float = 0.02, record_pid: bool = False) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file ``path`` (across processes; created 0600 and opened
    without following links, so a planted link is refused, never written). ``timeout=None``
    waits as long as it takes; otherwise :class:`LockBusy` is raised after ``timeout`` seconds,
    or as soon as ``give_up()`` is true. ``record_pid``: the file then holds this process's PID,
    which a waiter that gives up reports. The lock goes with the process: a killed holder never
    leaves it taken."""
    fd = open_fd(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline or (give_up is not None and give_up()):
                        try:
                            holder = int(os.pread(fd, 32, 0).decode().strip() or 0) or None
                        except (OSError, ValueError):
                            holder = None
                        raise LockBusy(holder) from None
                    time.sleep(poll_s)
        if record_pid:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def file_lock(path: Path) -> contextlib.AbstractContextManager[None]:
    """An exclusive advisory lock on ``<path>.lock``, held across read-modify-write."""
    return lock(path.with_name(path.name + ".lock"))
