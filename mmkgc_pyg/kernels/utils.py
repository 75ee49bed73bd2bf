"""What every kernel module shares: the optional Triton import, the interpreter flag,
which path runs (Triton or the PyTorch reference), and the grid bound of grid-stride
loops. Each op keeps its own block sizes beside its kernels.

Path choice. ``auto`` (the default) runs the Triton kernels on CUDA tensors and the
references elsewhere; ``triton`` always runs Triton (CPU tensors then need Triton's
interpreter, ``TRITON_INTERPRET=1`` set before the kernels are imported); ``torch``
always runs the references. The environment variable ``MMKGC_KERNELS`` sets the
initial mode; :func:`set_kernel_mode` (or the :func:`kernel_mode_set` context) changes
it in-process.
"""
import contextlib
import os
from typing import Iterator

import torch
from torch import Tensor

from mmkgc_pyg.errors import InvalidArgumentError

try:  # Triton is optional: absent on macOS/Windows, where the references run.
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover - depends on the platform
    triton = tl = None
    HAS_TRITON = False

# Triton decides between compiling and interpreting when a kernel is decorated (import).
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"

MODES = ("auto", "triton", "torch")


def _checked(mode: str) -> str:
    mode = mode.strip().lower()
    if mode not in MODES:
        raise InvalidArgumentError(f"kernel mode {mode!r}: expected one of {', '.join(MODES)} "
                                   "(MMKGC_KERNELS)")
    return mode


_mode = os.environ.get("MMKGC_KERNELS", "auto").strip().lower()


def kernel_mode() -> str:
    """The current path choice: ``auto``, ``triton`` or ``torch``."""
    return _checked(_mode)


def set_kernel_mode(mode: str) -> str:
    """Sets the path choice; returns the previous one."""
    global _mode
    previous, _mode = _mode, _checked(mode)
    return previous


@contextlib.contextmanager
def kernel_mode_set(mode: str) -> Iterator[None]:
    """Runs the block with the given path choice."""
    previous = set_kernel_mode(mode)
    try:
        yield
    finally:
        set_kernel_mode(previous)


def use_triton(*tensors: Tensor) -> bool:
    """True when the Triton path runs for these input tensors."""
    mode = kernel_mode()
    if mode == "torch":
        return False
    on_cuda = all(t.is_cuda for t in tensors)
    if mode == "triton":
        if not HAS_TRITON:
            raise RuntimeError("kernel mode 'triton' but Triton is not installed")
        if not on_cuda and not INTERPRETED:
            raise RuntimeError("kernel mode 'triton' with CPU tensors needs Triton's "
                               "interpreter: TRITON_INTERPRET=1 before mmkgc_pyg is imported")
        return True
    return HAS_TRITON and on_cuda


# In the interpreter (the CPU tests) launch settings are small, so that small test inputs
# still span several blocks and programs; on a GPU they are sized for the hardware.
def max_programs(device: torch.device) -> int:
    """Bound of a grid-stride loop's grid: a few waves of programs on a GPU; few in the
    interpreter, so that tests exercise the loop."""
    if device.type == "cuda":
        return 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return 4
