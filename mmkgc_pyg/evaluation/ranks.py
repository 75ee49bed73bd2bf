r"""Ranks of a target among its competitors, optimistic, pessimistic and realistic together.

With :math:`b` competitors scoring strictly better than the target and :math:`t` scoring
exactly the same (the target itself and filtered entities are not competitors):

.. math::
    r_{\mathrm{opt}} = 1 + b, \qquad r_{\mathrm{pes}} = 1 + b + t, \qquad
    r_{\mathrm{real}} = \tfrac12 (r_{\mathrm{opt}} + r_{\mathrm{pes}}) = 1 + b + t / 2.

The paper's reference reports optimistic ranks; realistic ranks are the default here
(identical without ties).
"""
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from mmkgc_pyg.kernels.utils import check_csr, csr_rows

RANK_TYPES = ("optimistic", "pessimistic", "realistic")


@dataclass
class Ranks:
    """Per-query counts of better and tied competitors, ``[B]`` each."""
    better: Tensor
    tied: Tensor

    @property
    def optimistic(self) -> Tensor:
        return (1 + self.better).float()

    @property
    def pessimistic(self) -> Tensor:
        return (1 + self.better + self.tied).float()

    @property
    def realistic(self) -> Tensor:
        return 1 + self.better + 0.5 * self.tied.float()

    def get(self, rank_type: str) -> Tensor:
        if rank_type not in RANK_TYPES:
            raise ValueError(f"rank_type={rank_type!r}: expected one of {', '.join(RANK_TYPES)}")
        return getattr(self, rank_type)

    def __len__(self) -> int:
        return self.better.numel()

    def __getitem__(self, index) -> "Ranks":
        return Ranks(self.better[index], self.tied[index])

    @classmethod
    def cat(cls, parts: Sequence["Ranks"]) -> "Ranks":
        return cls(torch.cat([p.better for p in parts]), torch.cat([p.tied for p in parts]))

    @classmethod
    def from_scores(cls, scores: Tensor, target: Tensor, filter_ptr: Tensor,
                    filter_idx: Tensor) -> "Ranks":
        r"""Counts from a score matrix ``[B, N]`` (higher is better) for targets ``[B]``,
        ignoring the entities ``filter_idx[filter_ptr[b]:filter_ptr[b + 1]]`` of query
        ``b`` (CSR lists) and the target itself."""
        check_csr(scores.size(0), filter_ptr, filter_idx, "Ranks.from_scores")
        rows = torch.arange(scores.size(0), device=scores.device)
        competing = torch.ones_like(scores, dtype=torch.bool)
        competing[csr_rows(filter_ptr, filter_idx.numel()), filter_idx] = False
        competing[rows, target] = False
        target_score = scores[rows, target][:, None]
        return cls(((scores > target_score) & competing).sum(1),
                   ((scores == target_score) & competing).sum(1))
