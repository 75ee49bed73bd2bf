"""Atomic file output: a crash never leaves a half-written file behind, and a full or
read-only disk is reported in one line naming the file."""
import errno
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch

from mmkgc_pyg.errors import OutputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; outputs get the permissions the user's umask gives a new file.
_MODE = 0o666 & ~_umask()


def _os_error(exc: BaseException) -> Optional[OSError]:
    """The OSError behind ``exc``, also when a library wrapped it (torch.save raises a
    RuntimeError whose cause is the write's OSError)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _atomic(path, write):
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _MODE)
        os.replace(tmp, path)  # atomic on POSIX: readers see the old or the new file
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        cause = _os_error(exc) if isinstance(exc, Exception) else None
        if cause is None:
            raise
        name = errno.errorcode.get(cause.errno, str(cause.errno))
        raise OutputError(f"{path}: cannot write ({cause.strerror or cause}, {name}); "
                          "nothing was changed") from None


def atomic_torch_save(obj: Any, path) -> None:
    _atomic(path, lambda f: torch.save(obj, f))


def atomic_write_text(path, text: str) -> None:
    _atomic(path, lambda f: f.write(text.encode()))


def atomic_write_bytes(path, data: bytes) -> None:
    _atomic(path, lambda f: f.write(data))


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN and infinities as ``None``: JSON has no such numbers."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {key: json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(value) for value in obj]
    return obj


def atomic_write_json(path, obj: Any) -> None:
    """Strict JSON (NaN and infinities written as ``null``)."""
    text = json.dumps(json_safe(obj), indent=2, sort_keys=False, allow_nan=False)
    atomic_write_text(path, text + "\n")
