"""The one way a user's file is written: checked, locked, atomic, backed up, synced.

Every write of a file the analyst owns (allow-list, triage marks, config, export,
``detect --output``) goes through ``safe_write_bytes``, so the guarantees hold
everywhere at once:

- **Only regular files.** The target must be a regular file or a missing path; a
  device (``--output /dev/null`` as root would replace the system's null device), a
  FIFO, a socket or a directory is refused with one line, and nothing is touched.
- **Read-only means read-only.** A file without write permission (mode 0444, checked
  on the mode bits too, because root passes every ``access`` test) is refused, not
  replaced by a rename around it.
- **No lost edits.** ``locked(path)`` holds an advisory ``fcntl.flock`` on a lock file
  beside the target. A read-merge-write (``update_bytes`` or the TOML store) re-reads
  the file under the lock, re-applies its edit and writes before releasing, so two
  CLIs, a CLI and the TUI, or two TUIs never overwrite each other's entries. The lock
  file is removed afterwards; a waiter that finds its lock file unlinked retries on
  the new one, so removal never lets two writers in at once.
- **Old or new, never half.** Temp file in the same folder, fsync, optional ``.bak``
  of the previous version (itself written through a temp file), ``os.replace``, then
  fsync of the folder. A symlinked path is written through to its target: an analyst
  who links ``allowlist.toml`` into a shared repository keeps the link.
- **One line on failure.** Refusals and OS errors are ``WriteError`` (an
  ``InputError``) naming the path and the reason; no traceback reaches the user.

A missing folder is an error unless the caller asks for it (``make_parents``: the
tool's own config and state folders, created 0700).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from detectors.base.errors import InputError

PRIVATE_DIR_MODE = 0o700  # the tool's own folders: config, state, cache
PRIVATE_FILE_MODE = 0o600  # files the tool creates: nobody else reads the incident's data

_REFUSE = "refusing to write"
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


class WriteError(InputError):
    """A user file could not be written, or was refused; ``file`` names it.

    ``reason`` is the cause alone (``the file is read-only (mode 0444)``), for a caller
    that words the action itself (``cannot save: ...``).
    """

    def __init__(self, reason: str, *, file: str | None, doing: str = "cannot write") -> None:
        super().__init__(f"{doing}: {reason}", file=file)
        self.reason = reason


def _shown(path: str | Path) -> str:
    return os.fsdecode(os.fspath(path))


def os_error(exc: OSError, path: str | Path, doing: str = "cannot write") -> WriteError:
    """One line for an OSError: what failed, where, and the system's reason."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = exc.filename if exc.filename not in (None, "") else path
    error = WriteError(reason, file=_shown(where), doing=doing)
    error.__cause__ = exc
    return error


def resolve(path: str | Path) -> Path:
    """The file a write lands in: symlinks followed, so the link itself is kept."""
    return Path(os.path.realpath(os.fspath(path)))


def check_target(path: str | Path, *, make_parents: bool = False) -> Path:
    """The resolved target, or a ``WriteError`` saying why it must not be written.

    Refuses: anything that exists and is not a regular file; a read-only file; a
    missing folder (unless ``make_parents``); a folder path that is a file.
    """
    target = resolve(path)
    try:
        info = os.stat(target)
    except (FileNotFoundError, NotADirectoryError):  # the folder checks below say which
        info = None
    except OSError as exc:
        raise os_error(exc, path) from None
    if info is not None:
        for test, kind in _KINDS:
            if test(info.st_mode):
                raise WriteError(
                    f"it is {kind}, not a regular file", file=_shown(path), doing=_REFUSE
                )
        if not stat.S_ISREG(info.st_mode):
            raise WriteError("not a regular file", file=_shown(path), doing=_REFUSE)
        if not info.st_mode & 0o222 or not os.access(target, os.W_OK):
            mode = stat.S_IMODE(info.st_mode)
            raise WriteError(
                f"the file is read-only (mode {mode:04o})", file=_shown(path), doing=_REFUSE
            )
        return target
    parent = target.parent
    if parent.is_dir():
        return target
    if parent.exists() or any(p.exists() and not p.is_dir() for p in parent.parents):
        raise WriteError("a part of the folder path is a file", file=_shown(path))
    if not make_parents:
        raise WriteError(f"the folder {_shown(parent)} does not exist", file=_shown(path))
    try:
        private_dir(parent)
    except OSError as exc:
        raise os_error(exc, parent, "cannot create the folder") from None
    return target


def private_dir(directory: str | Path) -> Path:
    """Create ``directory`` and each missing parent 0700; existing folders are left alone.

    (``Path.mkdir(mode, parents=True)`` gives the parents the umask's mode, 0755 on
    most systems: the cache's ``beacon-triage/`` would be listable by everyone.)
    """
    directory = Path(directory)
    missing = []
    for folder in (directory, *directory.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.mkdir(folder, PRIVATE_DIR_MODE)
    if not directory.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", os.fspath(directory))
    return directory


# --- the advisory lock ------------------------------------------------------------------

_held: dict[str, tuple[threading.RLock, int]] = {}  # lock path -> (thread lock, depth)
_held_guard = threading.Lock()


def lock_path(target: str | Path) -> Path:
    target = resolve(target)
    return target.with_name(f".{target.name}.lock")


def _thread_lock(key: str) -> threading.RLock:
    with _held_guard:
        entry = _held.get(key)
        if entry is None:
            entry = (threading.RLock(), 0)
            _held[key] = entry
        return entry[0]


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold the advisory lock of ``path`` (re-entrant in a thread, exclusive across processes).

    Threads of one process are serialised by an ``RLock``; processes by ``flock`` on
    ``.NAME.lock`` beside the (resolved) target. After taking the flock we check the
    lock file is still the one on disk: a holder unlinks it when done, and a waiter that
    locked the unlinked inode must start again on the new file.
    """
    import fcntl  # POSIX; imported here so the module still imports elsewhere

    key = os.fspath(lock_path(path))
    thread_lock = _thread_lock(key)
    with thread_lock:
        with _held_guard:
            lock, depth = _held[key]
            _held[key] = (lock, depth + 1)
        try:
            if depth:  # this thread already holds the file lock
                yield
                return
            fd = _acquire(key, fcntl)
            try:
                yield
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(key)
                os.close(fd)  # closing releases the flock
        finally:
            with _held_guard:
                lock, depth = _held[key]
                _held[key] = (lock, depth - 1)


def _acquire(key: str, fcntl: object) -> int:
    while True:
        try:
            fd = os.open(key, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
        except OSError as exc:
            raise os_error(exc, key, "cannot lock") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # type: ignore[attr-defined]
            on_disk = os.stat(key)
        except FileNotFoundError:
            os.close(fd)  # the holder removed it while we waited: lock the new one
            continue
        except BaseException:
            os.close(fd)
            raise
        mine = os.fstat(fd)
        if (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
        os.close(fd)


# --- writing ----------------------------------------------------------------------------


def _temp_beside(target: Path) -> tuple[int, str]:
    return tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)


def _backup(target: Path) -> None:
    """Copy the current version to ``name.bak`` through a temp file and a rename."""
    backup = target.with_name(target.name + ".bak")
    fd, tmp_name = _temp_beside(backup)
    try:
        with os.fdopen(fd, "wb") as handle, open(target, "rb") as source:
            shutil.copyfileobj(source, handle)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp_name, target.stat().st_mode & 0o7777)
        os.replace(tmp_name, backup)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def _write_checked(target: Path, data: bytes, backup: bool) -> None:
    fd, tmp_name = _temp_beside(target)  # mkstemp makes it 0600: a new file stays private
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if target.exists():
            with contextlib.suppress(OSError):
                os.chmod(tmp_name, target.stat().st_mode & 0o7777)
            if backup:
                _backup(target)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(target.parent)


def safe_write_bytes(
    path: str | Path, data: bytes, *, backup: bool = False, make_parents: bool = False
) -> None:
    """Replace ``path`` with ``data``: refused unless safe, under the lock, old or new on disk.

    Raises ``WriteError`` (one line, path and reason); the old file is then untouched.
    """
    target = check_target(path, make_parents=make_parents)
    try:
        with locked(target):
            check_target(target)  # another writer may have changed it while we waited
            _write_checked(target, data, backup)
    except WriteError:
        raise
    except OSError as exc:
        raise os_error(exc, path) from None


def update_bytes(
    path: str | Path,
    edit: Callable[[bytes | None], bytes | None],
    *,
    backup: bool = True,
    make_parents: bool = False,
) -> bytes | None:
    """Read-merge-write under the lock: ``edit(current or None)`` gives the new bytes.

    ``edit`` sees the file as it is *now* (re-read under the lock), so an edit made by
    another process in the meantime is kept. ``edit`` returning None writes nothing.
    """
    target = check_target(path, make_parents=make_parents)
    try:
        with locked(target):
            target = check_target(target)
            try:
                current: bytes | None = target.read_bytes()
            except FileNotFoundError:
                current = None
            data = edit(current)
            if data is not None and data != current:
                _write_checked(target, data, backup)
            return data
    except WriteError:
        raise
    except OSError as exc:
        raise os_error(exc, path) from None


def safe_write_text(
    path: str | Path, text: str, *, backup: bool = False, make_parents: bool = False
) -> None:
    safe_write_bytes(path, text.encode("utf-8"), backup=backup, make_parents=make_parents)


# The names the callers used before the checks existed; same function, same guarantees.
atomic_write_bytes = safe_write_bytes
atomic_write_text = safe_write_text


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
