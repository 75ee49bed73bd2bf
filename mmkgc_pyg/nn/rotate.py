"""RotatE: relations as rotations in complex space (Sun et al., ICLR 2019)."""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from mmkgc_pyg.kernels.rotate import rotate_filtered_ranks, rotate_scores, rotate_topk
from mmkgc_pyg.kernels.rotate_train import rotate_gather_scores
from mmkgc_pyg.nn.scorer import Scorer


def complex_rotate(x: Tensor, phase: Tensor) -> Tensor:
    """``x * exp(i * phase)`` for complex vectors stored as (real half | imaginary half)."""
    re, im = x.chunk(2, dim=-1)
    cos, sin = torch.cos(phase), torch.sin(phase)
    return torch.cat([re * cos - im * sin, re * sin + im * cos], dim=-1)


class RotatE(Scorer):
    r"""RotatE on :math:`k = D / 2` complex dimensions:

    .. math::
        f(h, r, t) = \gamma - \sum_{i=1}^{k} | h_i e^{\mathrm{i}\theta_{r,i}} - t_i |

    Relation phases are stored as :math:`r \in [-\rho, \rho]^k` and read as
    :math:`\theta_r = r \pi / \rho` with :math:`\rho = (\gamma + \epsilon) / k`; entities
    start uniform in :math:`[-(\gamma + \epsilon) / D, (\gamma + \epsilon) / D]`, as in the
    reference implementation. Because :math:`|e^{\mathrm{i}\theta}| = 1`, head prediction
    is the same distance with the tail counter-rotated:
    :math:`|h \circ r - t| = |t \circ \bar{r} - h|`.
    """

    def __init__(self, num_relations: int, hidden_channels: int, margin: float = 12.0,
                 epsilon: float = 2.0):
        if hidden_channels % 2:
            raise ValueError(f"RotatE needs an even hidden_channels, got {hidden_channels}")
        super().__init__(num_relations, hidden_channels, margin)
        self.epsilon = float(epsilon)
        self.rel_emb = torch.nn.Embedding(num_relations, hidden_channels // 2)
        self.reset_parameters()

    @property
    def phase_range(self) -> float:
        return (self.margin + self.epsilon) / (self.hidden_channels // 2)

    def reset_parameters(self):
        torch.nn.init.uniform_(self.rel_emb.weight, -self.phase_range, self.phase_range)

    def init_entity_embeddings(self, weight: Tensor):
        bound = (self.margin + self.epsilon) / self.hidden_channels
        torch.nn.init.uniform_(weight, -bound, bound)

    def phase(self, rel_type: Tensor) -> Tensor:
        return self.rel_emb(rel_type) * (math.pi / self.phase_range)

    def tail_query(self, head: Tensor, rel_type: Tensor) -> Tensor:
        return complex_rotate(head, self.phase(rel_type))

    def head_query(self, rel_type: Tensor, tail: Tensor) -> Tensor:
        return complex_rotate(tail, -self.phase(rel_type))

    def match(self, query: Tensor, entity: Tensor) -> Tensor:
        re, im = (query - entity).chunk(2, dim=-1)
        modulus = torch.linalg.vector_norm(torch.stack([re, im], dim=-1), dim=-1)
        return self.margin - modulus.sum(dim=-1)

    def score_all(self, query: Tensor, entities: Tensor) -> Tensor:
        return rotate_scores(query, entities, self.margin)

    def score_candidates(self, query: Tensor, entities: Tensor, index: Tensor) -> Tensor:
        return rotate_gather_scores(query, entities, index, self.margin)

    def filtered_ranks(self, query: Tensor, entities: Tensor, target: Tensor,
                       filter_ptr: Tensor, filter_idx: Tensor) -> Tensor:
        return rotate_filtered_ranks(query, entities, target, filter_ptr, filter_idx)

    def max_ranking_queries(self, num_entities: int) -> Optional[int]:
        # Both paths bound their own memory: the kernel streams tiles, the reference chunks.
        return None

    def topk(self, query: Tensor, entities: Tensor, k: int,
             filter_ptr: Optional[Tensor] = None,
             filter_idx: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        return rotate_topk(query, entities, self.margin, k, filter_ptr, filter_idx)
