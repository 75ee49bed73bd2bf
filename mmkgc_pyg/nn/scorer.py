"""The interface every triple score function implements."""
from typing import Optional, Tuple

import torch
from torch import Tensor

from mmkgc_pyg.kernels.rotate import rank_from_scores

# Elements of one ranking call's [B, N] score matrix (and its masks): 64 MiB of float32.
RANKING_BUDGET = 1 << 24


class Scorer(torch.nn.Module):
    r"""Base class of the triple score functions :math:`f(h, r, t)` (higher = more
    plausible). A scorer owns the relation parameters; entity representations come from
    outside (the joint AdaMF embeddings, or plain structural embeddings).

    Every score is written as a *query* matched against an entity, so one code path
    serves tail prediction (query from head and relation), head prediction (query from
    relation and tail), training candidates and all-entity ranking:

    .. math::
        f(h, r, t) = \mathrm{match}(\mathrm{tail\_query}(h, r), t)
                   = \mathrm{match}(\mathrm{head\_query}(r, t), h)

    Subclasses implement :meth:`tail_query`, :meth:`head_query` and :meth:`match`, and
    may override the bulk methods with faster kernels.

    Args:
        num_relations (int): number of relations.
        hidden_channels (int): size :math:`D` of an entity representation (real numbers).
        margin (float): the margin :math:`\gamma` of distance-based scorers.
    """

    def __init__(self, num_relations: int, hidden_channels: int, margin: float = 12.0):
        super().__init__()
        self.num_relations = num_relations
        self.hidden_channels = hidden_channels
        self.margin = float(margin)

    def reset_parameters(self):
        raise NotImplementedError

    def init_entity_embeddings(self, weight: Tensor):
        """Initialises an entity table the way this score function expects."""
        torch.nn.init.xavier_uniform_(weight)

    def tail_query(self, head: Tensor, rel_type: Tensor) -> Tensor:
        raise NotImplementedError

    def head_query(self, rel_type: Tensor, tail: Tensor) -> Tensor:
        raise NotImplementedError

    def match(self, query: Tensor, entity: Tensor) -> Tensor:
        """Scores of queries against entities, broadcasting over leading dimensions."""
        raise NotImplementedError

    def forward(self, head: Tensor, rel_type: Tensor, tail: Tensor) -> Tensor:
        return self.match(self.tail_query(head, rel_type), tail)

    def score_all(self, query: Tensor, entities: Tensor) -> Tensor:
        """Scores ``[B, N]`` of every query against every entity."""
        return self.match(query[:, None, :], entities[None, :, :])

    def score_candidates(self, query: Tensor, entities: Tensor, index: Tensor) -> Tensor:
        """Scores ``[B, C]`` of query ``b`` against ``entities[index[b, c]]``."""
        return self.match(query[:, None, :], entities[index])

    def filtered_ranks(self, query: Tensor, entities: Tensor, target: Tensor,
                       filter_ptr: Tensor, filter_idx: Tensor) -> Tensor:
        """Realistic filtered 1-based ranks ``[B]`` of ``entities[target]``.

        Identical entity rows always tie exactly: the scores are computed once per
        distinct row and shared, because a matrix product may round the same row
        differently in different tiles (machine- and BLAS-dependent)."""
        distinct, inverse = torch.unique(entities, dim=0, return_inverse=True)
        scores = self.score_all(query, distinct)[:, inverse]
        return rank_from_scores(scores, target, filter_ptr, filter_idx)

    def max_ranking_queries(self, num_entities: int) -> Optional[int]:
        """How many queries one :meth:`filtered_ranks` call may take for its ``[B, N]``
        temporaries to stay within ``RANKING_BUDGET`` elements (None: no limit)."""
        return max(1, RANKING_BUDGET // max(1, num_entities))

    def topk(self, query: Tensor, entities: Tensor, k: int,
             filter_ptr: Optional[Tensor] = None,
             filter_idx: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """The ``k`` best entities per query, skipping the filter lists when given."""
        scores = self.score_all(query, entities)
        if filter_ptr is not None:
            rows = torch.repeat_interleave(
                torch.arange(query.size(0), device=query.device), filter_ptr.diff())
            scores = scores.index_put((rows, filter_idx), scores.new_tensor(float("-inf")))
        return scores.topk(min(k, entities.size(0)), dim=1)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.num_relations}, "
                f"hidden_channels={self.hidden_channels})")
