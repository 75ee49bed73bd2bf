"""Choose between a Triton kernel and its PyTorch reference.

``MMKGC_KERNELS`` = ``auto`` (default: Triton for CUDA tensors, PyTorch otherwise),
``triton`` (always Triton; CPU tensors need ``TRITON_INTERPRET=1``, which runs the
kernels in Triton's interpreter) or ``torch`` (always the reference).
"""
import os

import torch

from mmkgc_pyg.errors import UserInputError

try:  # Triton is optional: absent on macOS/Windows, where the references run.
    import triton  # noqa: F401

    HAS_TRITON = True
except ImportError:  # pragma: no cover - depends on the platform
    HAS_TRITON = False

_MODES = ("auto", "triton", "torch")


def kernel_mode() -> str:
    mode = os.environ.get("MMKGC_KERNELS", "auto").strip().lower()
    if mode not in _MODES:
        raise UserInputError(f"MMKGC_KERNELS={mode!r}: expected one of {', '.join(_MODES)}")
    return mode


def interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def use_triton(*tensors: torch.Tensor) -> bool:
    """True when the Triton path should run for these input tensors."""
    mode = kernel_mode()
    if mode == "torch":
        return False
    on_cuda = all(t.is_cuda for t in tensors)
    if mode == "triton":
        if not HAS_TRITON:
            raise RuntimeError("MMKGC_KERNELS=triton but Triton is not installed")
        if not on_cuda and not interpreter_enabled():
            raise RuntimeError(
                "MMKGC_KERNELS=triton with CPU tensors needs TRITON_INTERPRET=1 "
                "(set before mmkgc_pyg is imported)")
        return True
    return HAS_TRITON and on_cuda
