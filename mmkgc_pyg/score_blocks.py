"""How work over all entities is cut into bounded blocks, shared by the model, the
interactions and the evaluation: the budget of one ``[B, N]`` block of scores, and CSR
lists (per-query lists of entities, e.g. known answers to leave out)."""
import torch
from torch import Tensor

from mmkgc_pyg.errors import InvalidArgumentError

# Elements of one [B, N] block of all-entity scores (64 MiB of float32): the most that
# score-based ranking and top-k prediction hold at once.
SCORE_BUDGET = 1 << 24


def csr_rows(ptr: Tensor, nnz: int) -> Tensor:
    """The row of every entry of CSR lists ``ptr [B + 1]`` holding ``nnz`` entries:
    ``[nnz]`` long, without a host synchronisation (``nnz`` is known on the host)."""
    return torch.arange(ptr.numel() - 1, device=ptr.device).repeat_interleave(
        ptr.diff(), output_size=nnz)


def check_csr(num_rows: int, ptr: Tensor, idx: Tensor, where: str) -> None:
    if ptr.shape != (num_rows + 1, ) or idx.dim() != 1:
        raise InvalidArgumentError(f"{where}: expected CSR lists with ptr [{num_rows + 1}] and a "
                                   f"1-D idx, got {tuple(ptr.shape)} and {tuple(idx.shape)}")
