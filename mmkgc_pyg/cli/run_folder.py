"""Output folders that never lose what they hold: one run per folder, one process at a
time, outputs only where they can be written."""
import contextlib
import errno
import os
import shutil
import socket
from pathlib import Path
from typing import Iterator

from mmkgc_pyg.errors import OutputError

try:  # POSIX: the kernel drops a process's locks when it dies (no stale locks)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

#: What a training run writes into its folder.
RUN_FILES = ("config.json", "config.yaml", "checkpoint.pt", "model.pt", "metrics.json",
             "metrics.md", "history.jsonl", "tensorboard", "wandb")
LOCK_FILE = ".lock"


def writable_folder(path: Path, flag: str) -> None:
    """Creates ``path`` (and its parents) and checks that files can be written in it."""
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is" if parent == path else f"is under {parent}, which is"
            raise OutputError(f"{flag} {path}: expected a folder, but it {where} a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{flag} {path}: expected a writable folder, got "
                          f"{exc.strerror or exc}") from None


def clear_for_new_run(path: Path, overwrite: bool = False, flag: str = "--out") -> None:
    """Makes the (locked, writable) folder ``path`` ready for a new run: it must hold no
    other run's files, unless ``overwrite`` (they are then removed)."""
    earlier = [name for name in RUN_FILES if (path / name).exists()]
    if earlier and not overwrite:
        raise OutputError(f"{flag} {path}: holds an earlier run ({', '.join(earlier)}); "
                          f"add --overwrite to replace it, --resume {path} to continue it, "
                          f"or choose another {flag}")
    for name in earlier:
        if (path / name).is_dir():
            shutil.rmtree(path / name)
        else:
            (path / name).unlink()


def check_output_file(path: Path, flag: str) -> None:
    """An output file's path must not be a folder and its folder must be writable."""
    if path.is_dir():
        raise OutputError(f"{flag} {path}: expected a file path, got a folder")
    writable_folder(path.parent, flag)


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``folder`` (``folder/.lock`` records the owner's pid and
    host). A second process gets a one-line error naming the owner; a lock whose owner
    died is free again (the kernel releases it)."""
    if fcntl is None:  # pragma: no cover - Windows: no lock
        yield
        return
    handle = open(folder / LOCK_FILE, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise OutputError(f"{folder}: in use by {owner}; wait for it to finish or "
                              f"choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock
