"""Optional extras: importing a package that only an extra installs, with a clear error.

The feature builders need packages the core does not (sentence-transformers, transformers
and Pillow, h5py). They are imported when used, so the rest of the library works
without them, and a missing one names the ``pip install`` that brings it.
"""
import importlib
from types import ModuleType

from mmkgc_pyg.errors import MissingExtraError
from mmkgc_pyg.io import reader_failure


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module``, which the optional ``extra`` installs, for ``what`` (the
    feature that needs it, named in the error message)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        install = f'pip install "mmkgc-pyg[{extra}]"'
        if isinstance(e, ModuleNotFoundError) and e.name == module.partition(".")[0]:
            raise MissingExtraError(f"{what} needs the [{extra}] extra: {install}") from None
        # Installed but broken (e.g. one of its own dependencies is missing).
        raise MissingExtraError(f"{what} needs the [{extra}] extra, whose {module} failed "
                                f"to import ({reader_failure(e)}): {install}") from None
