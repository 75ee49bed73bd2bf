"""Output folders that never lose what they hold: one run per folder, one process at a
time, outputs only where they can be written, and nothing outside the folder touched
through a link planted in it."""
import contextlib
import errno
import os
import shutil
import socket
import stat
from pathlib import Path
from typing import Iterator

from mmkgc_pyg.errors import OutputError

try:  # POSIX: the kernel drops a process's locks when it dies (no stale locks)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

#: What a training run writes into its folder.
RUN_FILES = ("config.yaml", "checkpoint.pt", "model.pt", "metrics.json", "metrics.md",
             "history.jsonl", "tensorboard", "wandb")
LOCK_FILE = ".lock"


def writable_folder(path: Path, what: str = "out") -> None:
    """Creates ``path`` (and its parents) and checks that files can be written in it;
    ``what`` names the argument that gave it in errors."""
    path = Path(path)
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is" if parent == path else f"is under {parent}, which is"
            raise OutputError(f"{what} {path}: expected a folder, but it {where} a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{what} {path}: expected a writable folder, got "
                          f"{exc.strerror or exc}") from None


def clear_for_new_run(path: Path, overwrite: bool = False, what: str = "out",
                      how: str = "overwrite it, resume it, or choose another folder") -> None:
    """Makes the (locked, writable) folder ``path`` ready for a new run: it must hold no
    other run's files, unless ``overwrite`` (they are then removed; a link among them is
    removed itself, never what it points to). ``what`` and ``how`` word the error (the
    argument that gave the folder, what to do)."""
    path = Path(path)
    earlier = [name for name in RUN_FILES if os.path.lexists(path / name)]
    if earlier and not overwrite:
        raise OutputError(f"{what} {path}: holds an earlier run ({', '.join(earlier)}); "
                          f"{how}")
    for name in earlier:
        entry = path / name
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as exc:
            raise OutputError(f"{entry}: cannot remove the earlier run's file "
                              f"({exc.strerror or exc})") from None


def check_output_file(path: Path, what: str) -> None:
    """An output file's path must not be a folder and its folder must be writable."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path}: expected a file path, got a folder")
    writable_folder(path.parent, what)


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``folder`` while inside: ``folder/.lock`` records the
    owner's pid and host, and is removed when the block ends. A second process gets a
    one-line error naming the owner; a lock whose owner died is free again (the kernel
    releases it). The lock file is opened without following links, and anything but a
    regular file of one name is refused: a link planted as ``.lock`` never has its
    target written."""
    if fcntl is None:  # pragma: no cover - Windows: no lock
        yield
        return
    path = Path(folder) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                     0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OutputError(f"{path}: expected the run folder's lock file, got a symbolic "
                              "link; remove it") from None
        raise OutputError(f"{path}: cannot open the lock file ({exc.strerror or exc}, "
                          f"{errno.errorcode.get(exc.errno, exc.errno)})") from None
    with os.fdopen(fd, "r+") as handle:
        # A regular file with no other name: a hard link to another file is not ours.
        info = os.fstat(fd)
        if (not os.path.samestat(info, os.lstat(path)) or not stat.S_ISREG(info.st_mode)
                or info.st_nlink != 1):
            raise OutputError(f"{path}: expected the run folder's lock file, got another "
                              "kind of file; remove it")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            owner = handle.read(200).strip() or "another process"
            raise OutputError(f"{folder}: in use by {owner}; wait for it to finish or "
                              f"choose another folder") from None
        try:  # ours now: record the owner
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
            handle.flush()
        except OSError as exc:
            raise OutputError(f"{path}: cannot write ({exc.strerror or exc}, "
                              f"{errno.errorcode.get(exc.errno, exc.errno)})") from None
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # still ours: the lock is held until close

