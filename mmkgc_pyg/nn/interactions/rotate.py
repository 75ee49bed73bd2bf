"""RotatE: relations as rotations in complex space (Sun et al., ICLR 2019)."""
import math
from typing import Tuple

import torch
from torch import Tensor

from mmkgc_pyg.kernels.rotate import (rotate_entity_columns, rotate_rank_counts,
                                      rotate_scores)
from mmkgc_pyg.kernels.rotate_train import rotate_gather_scores
from mmkgc_pyg.kernels.utils import use_triton
from mmkgc_pyg.nn.interactions.base import Interaction


def complex_rotate(x: Tensor, phase: Tensor) -> Tensor:
    """``x * exp(i * phase)`` for complex vectors stored as (real half | imaginary half)."""
    re, im = x.chunk(2, dim=-1)
    cos, sin = torch.cos(phase), torch.sin(phase)
    return torch.cat([re * cos - im * sin, re * sin + im * cos], dim=-1)


class RotatEInteraction(Interaction):
    r"""RotatE on :math:`k` complex dimensions (``hidden_channels``):

    .. math::
        f(h, r, t) = \gamma - \sum_{i=1}^{k} | h_i e^{\mathrm{i}\theta_{r,i}} - t_i |

    Relation rows hold :math:`k` phases stored as :math:`r \in [-\rho, \rho]^k` and read as
    :math:`\theta_r = r \pi / \rho` with :math:`\rho = (\gamma + \epsilon) / k`; entities
    start uniform in :math:`[-(\gamma + \epsilon) / 2k, (\gamma + \epsilon) / 2k]`, as in the
    reference implementation. Because :math:`|e^{\mathrm{i}\theta}| = 1`, head prediction
    is the same distance with the tail counter-rotated:
    :math:`|h \circ r - t| = |t \circ \bar{r} - h|`. All-entity scores, training candidates
    and rank counts run Triton kernels on CUDA; ranking reads the entities from
    :meth:`ranking_table`, laid out once for the kernel.
    """
    complex_valued = True

    def __init__(self, hidden_channels: int, margin: float = 12.0, epsilon: float = 2.0):
        super().__init__(hidden_channels, margin)
        self.epsilon = float(epsilon)

    @property
    def relation_channels(self) -> int:
        return self.hidden_channels

    @property
    def phase_range(self) -> float:
        return (self.margin + self.epsilon) / self.hidden_channels

    def reset_relations(self, weight: Tensor) -> None:
        torch.nn.init.uniform_(weight, -self.phase_range, self.phase_range)

    def reset_entities(self, weight: Tensor) -> None:
        bound = (self.margin + self.epsilon) / self.entity_channels
        torch.nn.init.uniform_(weight, -bound, bound)

    def phase(self, rel: Tensor) -> Tensor:
        return rel * (math.pi / self.phase_range)

    def tail_query(self, head: Tensor, rel: Tensor) -> Tensor:
        return complex_rotate(head, self.phase(rel))

    def head_query(self, rel: Tensor, tail: Tensor) -> Tensor:
        return complex_rotate(tail, -self.phase(rel))

    def match(self, query: Tensor, entity: Tensor) -> Tensor:
        re, im = (query - entity).chunk(2, dim=-1)
        modulus = torch.linalg.vector_norm(torch.stack([re, im], dim=-1), dim=-1)
        return self.margin - modulus.sum(dim=-1)

    def score_all(self, query: Tensor, entities: Tensor) -> Tensor:
        return rotate_scores(query, entities, self.margin)

    def score_candidates(self, query: Tensor, entities: Tensor, index: Tensor) -> Tensor:
        return rotate_gather_scores(query, entities, index, self.margin)

    def fused_ranking(self, query: Tensor, entities: Tensor) -> bool:
        return use_triton(query, entities)

    def ranking_table(self, entities: Tensor) -> Tensor:
        """``entities`` laid out once as the ranking kernel reads them, for the
        :meth:`rank_counts` calls of a ranking: an equal ``[N, 2k]`` view
        (:func:`~mmkgc_pyg.kernels.rotate.rotate_entity_columns`); unchanged where no
        kernel reads them (the PyTorch path reads rows)."""
        return rotate_entity_columns(entities) if use_triton(entities) else entities

    def rank_counts(self, query: Tensor, entities: Tensor, target: Tensor, filter_ptr: Tensor,
                    filter_idx: Tensor) -> Tuple[Tensor, Tensor]:
        return rotate_rank_counts(query, entities, target, filter_ptr, filter_idx)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(hidden_channels={self.hidden_channels}, "
                f"margin={self.margin:g})")
