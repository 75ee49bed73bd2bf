"""What evaluation needs of a model: the :class:`RankingModel` contract.

Evaluation never imports the model's module; anything with these members ranks (the
library's :class:`~mmkgc_pyg.nn.MMKGCModel` is one).
"""
from typing import Optional, Protocol, Tuple, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class RankingInteraction(Protocol):
    """The score function of a :class:`RankingModel` (see
    :class:`~mmkgc_pyg.nn.interactions.Interaction`)."""

    def match(self, query: Tensor, entity: Tensor) -> Tensor:
        """Scores of queries against entities, broadcasting over leading dimensions."""

    def score_all(self, query: Tensor, entities: Tensor) -> Tensor:
        """Scores ``[B, N]`` of every query against every entity."""

    def fused_ranking(self, query: Tensor, entities: Tensor) -> bool:
        """Whether :meth:`rank_counts` can rank these tensors without a score matrix."""

    def ranking_table(self, entities: Tensor) -> Tensor:
        """Where :meth:`fused_ranking` holds: the same ``[N, D]`` entities, laid out once as
        :meth:`rank_counts` reads them fastest, to pass to every call of a ranking."""

    def rank_counts(self, query: Tensor, entities: Tensor, target: Tensor, filter_ptr: Tensor,
                    filter_idx: Tensor) -> Tuple[Tensor, Tensor]:
        """``(better, tied)`` competitor counts of ``entities[target]`` per query
        (``entities``: rows, or the :meth:`ranking_table` of them)."""


@runtime_checkable
class RankingModel(Protocol):
    """A knowledge graph embedding model that filtered link prediction can rank.

    Attributes:
        num_nodes: the number of entities :math:`N`.
        num_relations: the number of relations :math:`R`.
        interaction: the score function.
        fusion_mask: which modalities each entity has, ``[N, 1 + M]`` (None without
            modalities), as :meth:`entity_embeddings` takes it.
        training: whether the model is in training mode (a ``torch.nn.Module``).
    """
    num_nodes: int
    num_relations: int
    interaction: RankingInteraction
    fusion_mask: Optional[Tensor]
    training: bool

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are."""

    def entity_embeddings(self, index: Optional[Tensor] = None,
                          fusion_mask: Optional[Tensor] = None,
                          return_attention_weights: bool = False, chunked: bool = False):
        """The joint embeddings ``[N, D]`` of all entities (``index`` None)."""

    def tail_queries(self, head_index: Tensor, rel_type: Tensor, joint: Tensor) -> Tensor:
        """Queries of ``(head, rel, ?)`` from all entities' joint embeddings."""

    def head_queries(self, rel_type: Tensor, tail_index: Tensor, joint: Tensor) -> Tensor:
        """Queries of ``(?, rel, tail)`` from all entities' joint embeddings."""

    def train(self, mode: bool = True):
        """Sets training mode (a ``torch.nn.Module``)."""

    def eval(self):
        """Sets evaluation mode (a ``torch.nn.Module``)."""
