"""Filtered link prediction: rank every test triple's head and tail among all entities."""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mmkgc_pyg.data.kg import triple_keys
from mmkgc_pyg.errors import UserInputError
from mmkgc_pyg.evaluation.filtering import FilterIndex
from mmkgc_pyg.evaluation.metrics import direction_metrics

RANK_TYPE = "realistic"


class NonFiniteModelError(ValueError):
    """The model's entity embeddings or queries hold NaN or infinity: ranks would be
    meaningless (NaN compares false, so it would rank first)."""


@dataclass
class LinkPredictionQueries:
    r"""Both directions of filtered link prediction for ``T`` triples, ready to rank in a
    single call: queries ``0..T-1`` are :math:`(h, r, ?)` with target :math:`t`, queries
    ``T..2T-1`` are :math:`(?, r, t)` with target :math:`h`; query ``b`` ignores the other
    known answers ``filter_idx[filter_ptr[b]:filter_ptr[b + 1]]``.

    Building the lists synchronises with the host (their size depends on the data); they
    depend only on the triples and the known answers, so build them once per split and
    rank any number of times without synchronising.
    """
    triples: Tensor
    target: Tensor
    filter_ptr: Tensor
    filter_idx: Tensor

    @classmethod
    def build(cls, triples: Tensor, filter_index: FilterIndex) -> "LinkPredictionQueries":
        head, rel, tail = triples.unbind(1)
        tail_ptr, tail_idx = filter_index.answers(head, rel, "tail")
        head_ptr, head_idx = filter_index.answers(tail, rel, "head")
        return cls(triples, torch.cat([tail, head]),
                   torch.cat([tail_ptr, head_ptr[1:] + tail_ptr[-1]]),
                   torch.cat([tail_idx, head_idx]))

    def __len__(self) -> int:
        return self.target.numel()

    def to(self, device) -> "LinkPredictionQueries":
        return LinkPredictionQueries(*(x.to(device) for x in (
            self.triples, self.target, self.filter_ptr, self.filter_idx)))

    def vectors(self, scorer, joint: Tensor) -> Tensor:
        """The ``[2T, D]`` query vectors from the joint entity embeddings."""
        head, rel, tail = self.triples.unbind(1)
        return torch.cat([scorer.tail_query(joint[head], rel), scorer.head_query(rel, joint[tail])])


@torch.no_grad()
def filtered_ranks(model, triples: Tensor, filter_index: Optional[FilterIndex] = None,
                   batch_size: int = 0, fusion_mask: Optional[Tensor] = None,
                   progress: bool = False,
                   queries: Optional[LinkPredictionQueries] = None) -> Tuple[Tensor, Tensor]:
    r"""Realistic filtered ranks of the true head and tail of each triple.

    Each entity's joint embedding is computed once; then the queries of both directions
    are ranked against all entities by the scorer, in as few calls as its memory budget
    allows (one for RotatE: its Triton kernel streams the entities and never holds a
    ``[B, N]`` score matrix). The realistic rank is
    :math:`1 + \#\{\text{better}\} + \#\{\text{tied}\} / 2` after removing the other
    known answers (train, valid and test).

    Args:
        model: the model to evaluate.
        triples: ``[T, 3]`` (head, relation, tail); ignored when ``queries`` is given.
        filter_index: the known answers; ignored when ``queries`` is given.
        batch_size: at most this many queries per ranking call (0: the scorer's budget).
        fusion_mask: overrides the model's modality availability (modality-missing runs).
        progress: show a progress bar over the calls.
        queries: prebuilt :class:`LinkPredictionQueries` (no host synchronisation).

    Returns:
        ``(head_ranks, tail_ranks)``, each ``[T]`` float32.

    Raises:
        NonFiniteModelError: the embeddings or queries are not all finite.
    """
    device = model.node_emb.weight.device
    if queries is None:
        queries = LinkPredictionQueries.build(triples.to(device), filter_index)
    joint, _ = model.entity_embeddings(fusion_mask=fusion_mask)
    scorer = model.scorer
    vectors = queries.vectors(scorer, joint)
    if not (torch.isfinite(joint).all() & torch.isfinite(vectors).all()):
        raise NonFiniteModelError("the model's entity embeddings or relation queries hold NaN "
                                  "or infinite values: its ranks would be meaningless")
    step = _ranking_batch_size(scorer, joint.size(0), len(queries), batch_size)
    if step >= len(queries):
        ranks = scorer.filtered_ranks(vectors, joint, queries.target, queries.filter_ptr,
                                      queries.filter_idx)
    else:
        bounds = queries.filter_ptr[::step].tolist() + [queries.filter_idx.numel()]
        ranks = torch.cat([
            scorer.filtered_ranks(vectors[start:start + step], joint,
                                  queries.target[start:start + step],
                                  queries.filter_ptr[start:start + step + 1] - low,
                                  queries.filter_idx[low:high])
            for start, low, high in tqdm(zip(range(0, len(queries), step), bounds, bounds[1:]),
                                         total=len(bounds) - 1, disable=not progress,
                                         desc="ranking", leave=False)])
    num_triples = queries.triples.size(0)
    return ranks[num_triples:], ranks[:num_triples]


def _ranking_batch_size(scorer, num_entities: int, num_queries: int, requested: int) -> int:
    budget = scorer.max_ranking_queries(num_entities)
    step = min(requested or num_queries, budget or num_queries)
    return max(1, step)


def evaluate_link_prediction(model, triples: Tensor, filter_index: Optional[FilterIndex] = None,
                             batch_size: int = 0,
                             categories: Optional[Dict[str, Tensor]] = None,
                             fusion_mask: Optional[Tensor] = None,
                             progress: bool = False,
                             queries: Optional[LinkPredictionQueries] = None) -> Dict:
    """Filtered realistic MRR, MR and Hits@1/3/10 over both directions, per direction
    (``head``, ``tail``) and, when ``categories`` maps a relation category
    (``1-1``, ``1-n``, ``n-1``, ``n-n``) to its triples, per category. Arguments as in
    :func:`filtered_ranks`."""
    was_training = model.training
    model.eval()
    try:
        head_ranks, tail_ranks = filtered_ranks(model, triples, filter_index, batch_size,
                                                fusion_mask, progress, queries)
    finally:
        model.train(was_training)
    if queries is not None:
        triples = queries.triples
    metrics = {"rank_type": RANK_TYPE, **direction_metrics(head_ranks, tail_ranks)}
    if categories:
        # Rank once; a category selects its triples' ranks by membership.
        keys = triple_keys(triples.to(head_ranks.device), model.num_nodes, model.num_relations)
        metrics["categories"] = {}
        for name, members in categories.items():
            member_keys = triple_keys(members.to(keys.device), model.num_nodes,
                                      model.num_relations)
            selected = torch.isin(keys, member_keys)
            metrics["categories"][name] = direction_metrics(head_ranks[selected],
                                                            tail_ranks[selected])
    return metrics


def missing_modality_mask(model, dataset, rate: float, seed: int) -> Optional[Tensor]:
    """The fusion mask of the modality-missing setting: all modalities of a random
    fraction ``rate`` of entities hidden (None when ``rate`` is 0)."""
    if rate == 0:
        return None
    if model.adamf is None:
        raise UserInputError("--drop-modality-rate: expected a model with modalities")
    dropped = dataset.drop_modalities(rate, torch.Generator().manual_seed(seed))
    return model.build_fusion_mask(dropped.masks)
