"""What every kernel module shares: the optional Triton import, the interpreter flag,
which path runs (Triton or the PyTorch reference), every kernel's launch settings, and
CSR list helpers.

Path choice. ``auto`` (the default) runs the Triton kernels on CUDA tensors and the
references elsewhere; ``triton`` always runs Triton (CPU tensors then need Triton's
interpreter, ``TRITON_INTERPRET=1`` set before the kernels are imported); ``torch``
always runs the references. The environment variable ``MMKGC_KERNELS`` sets the
initial mode; :func:`set_kernel_mode` (or the :func:`kernel_mode_set` context) changes
it in-process.
"""
import contextlib
import os
from typing import Iterator, Tuple

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

# Elements of one [B, N] block of all-entity scores (64 MiB of float32): the most that
# score-based ranking and top-k prediction hold at once.
SCORE_BUDGET = 1 << 24


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


# ---------------------------------------------------------------- launch settings
# Block sizes, warps and grid bounds of every kernel. In the interpreter (the CPU tests)
# blocks are small, so that small test inputs still span several blocks; on a GPU they
# are sized for registers, and autotuned where the shapes vary (the ranking tiles).

def max_programs(device: torch.device) -> int:
    """Bound of a grid-stride loop's grid: a few waves of programs on a GPU; few in the
    interpreter, so that tests exercise the loop."""
    if device.type == "cuda":
        return 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return 4


# AdaMF fusion: floats per [BLOCK_N, M_PAD, BLOCK_D] tile (~32 registers a thread at 4
# warps), and the blocks of the deterministic sum of the attention-gradient partials.
FUSION_TILE = 4096
FUSION_SUM_BLOCKS = {"BLOCK_P": 32, "BLOCK_D": 128}


def fusion_blocks(m_pad: int, d: int) -> Tuple[int, int, int]:
    """(BLOCK_N, BLOCK_D, num_warps) of the fusion kernels: whole rows of all ``m_pad``
    (a power of two) modalities in registers."""
    block_d = max(16, triton.next_power_of_2(d))
    row = m_pad * block_d
    block_n = max(1, min(16, FUSION_TILE // row))
    return block_n, block_d, max(4, min(16, 4 * row // FUSION_TILE))


# RotatE ranking and scoring tiles: autotuned on a GPU (once per (N, k)); small and fixed
# in the interpreter, where autotuning would be slow. Each thread holds all BLOCK_B rows x
# 4 contiguous columns of its tile (rotate._distance): BLOCK_N = 128 * num_warps, and
# BLOCK_B * 4 accumulators per thread.
ROTATE_INTERPRETER_TILE = {"BLOCK_B": 8, "BLOCK_N": 16}
ROTATE_TILE_CONFIGS = [
    triton.Config({"BLOCK_B": block_b, "BLOCK_N": block_n}, num_warps=warps)
    for block_b, block_n, warps in ((8, 512, 4), (16, 512, 4), (32, 512, 4), (16, 1024, 8),
                                    (32, 1024, 8))
] if HAS_TRITON else []
ROTATE_PAIR_BLOCK = 32 if INTERPRETED else 128
# Query columns are padded to a multiple of every BLOCK_B, so query loads need no mask;
# entity columns to a multiple of 16, so rows stay aligned for vector loads.
ROTATE_QUERY_PAD, ROTATE_ENTITY_PAD = 64, 16

# RotatE training scores: blocks of BLOCK_C candidates x BLOCK_K complex dimensions.
GATHER_BLOCKS = ({"BLOCK_C": 8, "BLOCK_K": 8} if INTERPRETED else
                 {"BLOCK_C": 16, "BLOCK_K": 64, "num_warps": 4})


# ---------------------------------------------------------------- CSR lists
def csr_rows(ptr: Tensor, nnz: int) -> Tensor:
    """The row of every entry of CSR lists ``ptr [B + 1]`` holding ``nnz`` entries:
    ``[nnz]`` long, without a host synchronisation (``nnz`` is known on the host)."""
    return torch.arange(ptr.numel() - 1, device=ptr.device).repeat_interleave(
        ptr.diff(), output_size=nnz)


def check_csr(num_rows: int, ptr: Tensor, idx: Tensor, where: str) -> None:
    if ptr.shape != (num_rows + 1, ) or idx.dim() != 1:
        raise InvalidArgumentError(f"{where}: expected CSR lists with ptr [{num_rows + 1}] and a "
                                   f"1-D "
                                   f"idx, got {tuple(ptr.shape)} and {tuple(idx.shape)}")
