"""What every kernel module shares: the optional Triton import, the interpreter flag,
which path runs (Triton or the PyTorch reference), and CSR list helpers.

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

# Elements of one [B, N] block of all-entity scores (64 MiB of float32): the most that
# score-based ranking and top-k prediction hold at once.
SCORE_BUDGET = 1 << 24


def _checked(mode: str) -> str:
    mode = mode.strip().lower()
    if mode not in MODES:
        raise ValueError(f"kernel mode {mode!r}: expected one of {', '.join(MODES)} "
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


def csr_rows(ptr: Tensor, nnz: int) -> Tensor:
    """The row of every entry of CSR lists ``ptr [B + 1]`` holding ``nnz`` entries:
    ``[nnz]`` long, without a host synchronisation (``nnz`` is known on the host)."""
    return torch.arange(ptr.numel() - 1, device=ptr.device).repeat_interleave(
        ptr.diff(), output_size=nnz)


def check_csr(num_rows: int, ptr: Tensor, idx: Tensor, where: str) -> None:
    if ptr.shape != (num_rows + 1, ) or idx.dim() != 1:
        raise ValueError(f"{where}: expected CSR lists with ptr [{num_rows + 1}] and a 1-D "
                         f"idx, got {tuple(ptr.shape)} and {tuple(idx.shape)}")
