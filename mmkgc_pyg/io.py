"""Files in and out. Output is atomic: a crash never leaves a half-written file behind,
and a full or read-only disk is reported in one line naming the file. Input of
:func:`torch.save` files is restricted: a file runs no code, whatever it holds
(:func:`restricted_torch_load`)."""
import errno
import io
import json
import math
import os
import pickle
import pickletools
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterable, Optional, Set

import numpy as np
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


def atomic_save_npy(array: np.ndarray, path) -> None:
    """``numpy.save`` of ``array``, written from its memory without a copy."""
    _atomic(path, lambda f: np.save(f, array, allow_pickle=False))


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


#: Where the globals of a file of tensors live: their rebuild functions, storages, dtypes.
TENSOR_MODULES = frozenset({"torch", "torch._utils", "torch.storage"})
#: What a tensor's pickle names besides: its hooks' mapping, a sparse tensor's layout.
TENSOR_GLOBALS = frozenset({"collections OrderedDict", "torch.serialization _get_layout"})


def pickle_globals(path) -> Set[str]:
    r"""The globals (``"module name"``) that the pickle of a :func:`torch.save` file names,
    read without unpickling: GLOBAL opcodes are the only way the weights-only unpickler
    accepts to name one, so none is missed. A zip archive's pickles, or the five pickles
    that begin a file of the legacy format (magic number, protocol, system information,
    the object, its storage keys)."""
    found: Set[str] = set()
    with open(path, "rb") as f:
        # torch.load's own test (the first bytes): a legacy file that a zip directory at
        # its end makes look like an archive is still read, and scanned, as legacy.
        if f.read(4) == b"PK\x03\x04":
            with zipfile.ZipFile(f) as archive:
                streams = [io.BytesIO(archive.read(info)) for info in archive.infolist()
                           if info.filename.endswith(".pkl")]
            counts = [1] * len(streams)
        else:
            f.seek(0)
            streams, counts = [f], [5]
        for stream, count in zip(streams, counts):
            for _ in range(count):
                found.update(arg for op, arg, _ in pickletools.genops(stream)
                             if op.name == "GLOBAL")
    return found


def restricted_torch_load(path, allowed_modules=TENSOR_MODULES, allowed=TENSOR_GLOBALS,
                          classes: Iterable[type] = (), map_location: Any = "cpu") -> Any:
    r"""``torch.load(path, map_location, weights_only=True)``, first refusing a file whose
    pickle names a global outside ``allowed`` (``"module name"`` strings) and the modules
    ``allowed_modules``: ``weights_only`` alone also accepts whatever any imported package
    allow-listed for the whole process (PyG adds dozens of its classes). ``classes`` are
    allowed too, for this load only. Never retries without ``weights_only``.

    Raises:
        pickle.UnpicklingError: a global outside the allow-list (or what the reader
            raises for a file that is not a :func:`torch.save` file).
    """
    allowed = set(allowed) | {f"{c.__module__} {c.__name__}" for c in classes}
    foreign = sorted(name for name in pickle_globals(path)
                     if name.split(" ")[0] not in allowed_modules and name not in allowed)
    if foreign:
        raise pickle.UnpicklingError(f"names {', '.join(n.replace(' ', '.') for n in foreign)}, "
                                     "outside the allow-list (tensors and plain values)")
    with torch.serialization.safe_globals(list(classes)):
        return torch.load(path, map_location=map_location, weights_only=True)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, for a one-line error: without terminal
    colour codes, at most ``limit`` characters (a library's advice usually comes first)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", (str(exc).strip().splitlines() or [""])[0])[:limit]


def reader_failure(exc: BaseException) -> str:
    """``Type: first line of the message`` of a reader's (or any library's) exception."""
    return f"{type(exc).__name__}: {first_line(exc)}"
