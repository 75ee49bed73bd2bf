"""The interface every triple score function implements."""
from typing import Optional, Tuple

import torch
from torch import Tensor

from mmkgc_pyg.errors import InvalidArgumentError
from mmkgc_pyg.score_blocks import SCORE_BUDGET, csr_rows


class Interaction(torch.nn.Module):
    r"""A triple score :math:`f(h, r, t)` (higher = more plausible), PyKEEN's
    "interaction": it holds no parameters. :class:`~mmkgc_pyg.nn.MMKGCModel` owns the
    entity table (``node_emb``) and relation table (``rel_emb``); the interaction says
    how wide they are, how to initialise them and how to score with their rows.

    Every score is a *query* matched against an entity, so one code path serves tail
    prediction, head prediction, training candidates and all-entity ranking:

    .. math::
        f(h, r, t) = \mathrm{match}(\mathrm{tail\_query}(h, r), t)
                   = \mathrm{match}(\mathrm{head\_query}(r, t), h)

    Subclasses implement :meth:`reset_relations`, :meth:`tail_query`, :meth:`head_query`
    and :meth:`match`, and may override the bulk methods with faster kernels.

    Args:
        hidden_channels (int): the embedding size in PyG's sense: complex dimensions for
            complex-valued interactions (entity rows then hold ``2 * hidden_channels``
            reals: real half, imaginary half), real dimensions otherwise.
        margin (float): the margin :math:`\gamma` of distance-based interactions.
    """
    #: Complex-valued: entity rows hold ``2 * hidden_channels`` reals.
    complex_valued: bool = False

    def __init__(self, hidden_channels: int, margin: float = 12.0):
        super().__init__()
        if hidden_channels < 1:
            raise InvalidArgumentError(f"hidden_channels={hidden_channels}: expected a positive "
                                       f"size")
        self.hidden_channels = hidden_channels
        self.margin = float(margin)

    @property
    def entity_channels(self) -> int:
        """Reals per entity row."""
        return 2 * self.hidden_channels if self.complex_valued else self.hidden_channels

    @property
    def relation_channels(self) -> int:
        """Reals per relation row."""
        return self.entity_channels

    def reset_relations(self, weight: Tensor) -> None:
        raise NotImplementedError

    def reset_entities(self, weight: Tensor) -> None:
        """Initialises an entity table the way this score function expects."""
        torch.nn.init.xavier_uniform_(weight)

    def tail_query(self, head: Tensor, rel: Tensor) -> Tensor:
        """The query of ``(head, rel, ?)`` from entity and relation rows."""
        raise NotImplementedError

    def head_query(self, rel: Tensor, tail: Tensor) -> Tensor:
        """The query of ``(?, rel, tail)``."""
        raise NotImplementedError

    def match(self, query: Tensor, entity: Tensor) -> Tensor:
        """Scores of queries against entities, broadcasting over leading dimensions."""
        raise NotImplementedError

    def forward(self, head: Tensor, rel: Tensor, tail: Tensor) -> Tensor:
        return self.match(self.tail_query(head, rel), tail)

    def score_all(self, query: Tensor, entities: Tensor) -> Tensor:
        """Scores ``[B, N]`` of every query against every entity."""
        return self.match(query[:, None, :], entities[None, :, :])

    def score_candidates(self, query: Tensor, entities: Tensor, index: Tensor) -> Tensor:
        """Scores ``[B, C]`` of query ``b`` against ``entities[index[b, c]]``."""
        return self.match(query[:, None, :], entities[index])

    def fused_ranking(self, query: Tensor, entities: Tensor) -> bool:
        """Whether :meth:`rank_counts` runs for these tensors (a kernel that ranks without
        a ``[B, N]`` score matrix); otherwise rank from :meth:`score_all`."""
        return False

    def ranking_table(self, entities: Tensor) -> Tensor:
        """The entities ``[N, D]`` as :meth:`rank_counts` and :meth:`topk` read them
        fastest, laid out once for many calls (here: as they are)."""
        return entities

    def rank_counts(self, query: Tensor, entities: Tensor, target: Tensor, filter_ptr: Tensor,
                    filter_idx: Tensor) -> Tuple[Tensor, Tensor]:
        """``(better, tied)`` competitor counts of ``entities[target]`` per query (see
        :class:`~mmkgc_pyg.evaluation.Ranks`), where :meth:`fused_ranking` holds."""
        raise NotImplementedError(f"{type(self).__name__} has no fused ranking kernel")

    def topk(self, query: Tensor, entities: Tensor, k: int,
             filter_ptr: Optional[Tensor] = None,
             filter_idx: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """The ``k`` best entities per query, best first: ``(scores [B, k], ids [B, k])``.

        ``filter_ptr``/``filter_idx`` are optional CSR lists of entities to skip per query
        (they score ``-inf``, so they only appear when fewer than ``k`` others remain);
        ``k`` is clamped to the number of entities. Queries are scored in blocks of at
        most ``SCORE_BUDGET`` scores."""
        if (filter_ptr is None) != (filter_idx is None):
            raise InvalidArgumentError("topk: expected both filter_ptr and filter_idx, or neither")
        if k < 1:
            raise InvalidArgumentError(f"topk: expected k >= 1, got {k}")
        num_queries, num_entities = query.size(0), entities.size(0)
        k = min(k, num_entities)
        step = max(1, SCORE_BUDGET // max(1, num_entities))
        bounds = None if filter_ptr is None else filter_ptr.tolist()
        scores, ids = [], []
        for start in range(0, num_queries, step):
            stop = min(start + step, num_queries)
            block = self.score_all(query[start:stop], entities).float()
            if bounds is not None:
                ptr = filter_ptr[start:stop + 1] - bounds[start]
                idx = filter_idx[bounds[start]:bounds[stop]]
                block = block.index_put((csr_rows(ptr, idx.numel()), idx),
                                        block.new_tensor(float("-inf")))
            top = block.topk(k, dim=1)
            scores.append(top.values)
            ids.append(top.indices)
        if not scores:
            return query.new_zeros(0, k), torch.zeros(0, k, dtype=torch.long, device=query.device)
        return torch.cat(scores), torch.cat(ids)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(hidden_channels={self.hidden_channels})"


class InnerProductInteraction(Interaction):
    r"""An interaction whose match is the real dot product of query and entity,
    :math:`\mathrm{match}(q, e) = \langle q, e \rangle` (DistMult, ComplEx): all-entity
    scores are one matrix product."""

    def match(self, query: Tensor, entity: Tensor) -> Tensor:
        return (query * entity).sum(dim=-1)

    def score_all(self, query: Tensor, entities: Tensor) -> Tensor:
        return query @ entities.t()
