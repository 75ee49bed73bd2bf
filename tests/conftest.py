"""Test setup: where the Triton kernels run, and the shared datasets.

Kernel tests run the Triton kernels on ``--kernel-device``: ``cuda`` compiles them for the
GPU, ``cpu`` runs them in Triton's interpreter (``TRITON_INTERPRET=1``), ``auto`` (the
default) picks ``cuda`` when a GPU is present. Triton decides between compiling and
interpreting when a kernel is decorated, so the variable is set here, before any test
module imports ``mmkgc_pyg.kernels``.

The real benchmark graphs (``DB15K/``, ``MKG-W/`` in OpenKE's layout) are read from the
folder named by the environment variable ``MMKGC_DATASETS``, by default
``../shared/datasets`` beside the checkout; the tests that need them (the
``datasets_dir`` fixture) skip, naming the variable, where that folder is absent. The
benchmarks (``benchmarks/conftest.py``) read the same variable.

The project's own :class:`~mmkgc_pyg.errors.DataWarning` (findings about a graph's files,
e.g. repeated triples) is ignored in the tests that do not check it: the filter is added
here rather than in ``pyproject.toml`` because resolving the category imports
``mmkgc_pyg`` (and its kernels), which must wait until ``TRITON_INTERPRET`` is set. Tests
that check the warnings still see them under ``pytest.warns`` or
``warnings.catch_warnings(record=True)`` with ``simplefilter("always")``, and the command
line tools print them (they set their own filter).
"""
import os
from pathlib import Path

import pytest
import torch

# The tests' tensors are tiny: one thread per process avoids the thread start-up cost
# and oversubscription when tests run subprocesses side by side (inherited by them).
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

DEFAULT_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def datasets_path() -> Path:
    """The benchmark graphs' folder: ``$MMKGC_DATASETS``, else ``../shared/datasets``."""
    folder = os.environ.get("MMKGC_DATASETS")
    return Path(folder).expanduser().resolve() if folder else DEFAULT_DATASETS


def pytest_addoption(parser):
    parser.addoption("--kernel-device", choices=("auto", "cpu", "cuda"), default="auto",
                     help="where the Triton kernel tests run: cuda (compiled), cpu (Triton's "
                          "interpreter); auto: cuda when a GPU is present")


def pytest_configure(config):
    choice = config.getoption("--kernel-device")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError("--kernel-device cuda: no CUDA device is available")
    if choice == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")
    config.kernel_device = torch.device(choice)
    config.addinivalue_line("filterwarnings", "ignore::mmkgc_pyg.errors.DataWarning")


@pytest.fixture
def kernel_device(request, monkeypatch) -> torch.device:
    """The device the Triton kernels are tested on, with the Triton path forced."""
    monkeypatch.setattr("mmkgc_pyg.kernels.utils._mode", "triton")
    return request.config.kernel_device


@pytest.fixture
def datasets_dir() -> Path:
    """The shared benchmark graphs; tests that need them skip when they are absent."""
    folder = datasets_path()
    if not folder.is_dir():
        pytest.skip(f"benchmark datasets not found at {folder}: set MMKGC_DATASETS to the "
                    "folder holding DB15K/ and MKG-W/")
    return folder
