"""Filtered link prediction: rank every test triple's head and tail among all entities."""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mmkgc_pyg.data.kg import triple_keys
from mmkgc_pyg.evaluation.filtering import FilterIndex
from mmkgc_pyg.evaluation.metrics import direction_metrics, rank_metrics
from mmkgc_pyg.evaluation.ranks import Ranks
from mmkgc_pyg.kernels.utils import SCORE_BUDGET

RANK_TYPE = "realistic"


class NonFiniteModelError(ValueError):
    """The model's entity embeddings or queries hold NaN or infinity: ranks would be
    meaningless (NaN compares false, so it would rank first)."""


@dataclass
class LinkPredictionQueries:
    r"""The link prediction queries of ``T`` triples, ready to rank in one call: queries
    ``0..T-1`` are :math:`(h, r, ?)` with target :math:`t`; with ``both_sides``, queries
    ``T..2T-1`` are :math:`(?, r, t)` with target :math:`h`. Query ``b`` ignores the
    entities ``filter_idx[filter_ptr[b]:filter_ptr[b + 1]]`` (the other known answers).

    Building filtered lists synchronises with the host (their size depends on the data);
    they depend only on the triples and the known answers, so build them once per split
    and rank any number of times without synchronising.
    """
    triples: Tensor
    target: Tensor
    filter_ptr: Tensor
    filter_idx: Tensor
    both_sides: bool = True

    @classmethod
    def build(cls, triples: Tensor, filter_index: FilterIndex) -> "LinkPredictionQueries":
        """Both sides, filtered by the known answers of ``filter_index``."""
        head, rel, tail = triples.unbind(1)
        tail_ptr, tail_idx = filter_index.answers(head, rel, "tail")
        head_ptr, head_idx = filter_index.answers(tail, rel, "head")
        return cls(triples, torch.cat([tail, head]),
                   torch.cat([tail_ptr, head_ptr[1:] + tail_ptr[-1]]),
                   torch.cat([tail_idx, head_idx]))

    @classmethod
    def unfiltered(cls, triples: Tensor, both_sides: bool = True) -> "LinkPredictionQueries":
        """Raw queries (nothing filtered), of both sides or of tails only."""
        target = torch.cat([triples[:, 2], triples[:, 0]]) if both_sides else triples[:, 2]
        return cls(triples, target, target.new_zeros(target.numel() + 1),
                   target.new_zeros(0), both_sides)

    def __len__(self) -> int:
        return self.target.numel()

    def to(self, device) -> "LinkPredictionQueries":
        return LinkPredictionQueries(*(x.to(device) for x in (
            self.triples, self.target, self.filter_ptr, self.filter_idx)), self.both_sides)

    def vectors(self, model, joint: Tensor) -> Tensor:
        """The query vectors ``[len(self), D]`` from all entities' joint embeddings."""
        head, rel, tail = self.triples.unbind(1)
        tails = model.tail_queries(head, rel, joint)
        if not self.both_sides:
            return tails
        return torch.cat([tails, model.head_queries(rel, tail, joint)])

    def split(self, ranks: Ranks) -> Tuple[Optional[Ranks], Ranks]:
        """``(head_ranks, tail_ranks)`` of ``ranks`` over these queries (no head ranks
        without ``both_sides``)."""
        count = self.triples.size(0)
        return (ranks[count:] if self.both_sides else None), ranks[:count]


@torch.no_grad()
def link_prediction_ranks(model, queries: LinkPredictionQueries, batch_size: int = 0,
                          fusion_mask: Optional[Tensor] = None,
                          progress: bool = False) -> Ranks:
    r"""Ranks of every query's target among all entities.

    Each entity's joint embedding is computed once. An interaction with a fused ranking
    kernel (RotatE on CUDA) ranks all queries in one call without a ``[B, N]`` score
    matrix; any other scores blocks of queries within ``SCORE_BUDGET`` and counts. Both
    give exact ties for identical entity rows: the score path computes one score per
    distinct row (a matrix product may round the same row differently in different tiles).

    Args:
        model: an :class:`~mmkgc_pyg.nn.MMKGCModel`.
        queries: the queries, targets and filter lists.
        batch_size: at most this many queries per ranking call (0: as many as fit).
        fusion_mask: overrides the model's modality availability (modality-missing runs).
        progress: show a progress bar over the calls.

    Raises:
        NonFiniteModelError: the embeddings or queries are not all finite.
    """
    joint = model.entity_embeddings(fusion_mask=fusion_mask)
    vectors = queries.vectors(model, joint)
    if not (torch.isfinite(joint).all() & torch.isfinite(vectors).all()):
        raise NonFiniteModelError("the model's entity embeddings or relation queries hold NaN "
                                  "or infinite values: its ranks would be meaningless")
    scorer = model.scorer
    fused = scorer.fused_ranking(vectors, joint)
    if not fused:
        distinct, inverse = torch.unique(joint, dim=0, return_inverse=True)
    count = len(queries)
    step = max(1, batch_size or (count if fused else SCORE_BUDGET // max(1, joint.size(0))))
    bounds = (queries.filter_ptr[::step].tolist() + [queries.filter_idx.numel()]
              if step < count else [0, queries.filter_idx.numel()])
    parts = []
    for start, low, high in tqdm(zip(range(0, count, step), bounds, bounds[1:]),
                                 total=len(bounds) - 1, disable=not progress,
                                 desc="ranking", leave=False):
        args = (queries.target[start:start + step],
                queries.filter_ptr[start:start + step + 1] - low,
                queries.filter_idx[low:high])
        if fused:
            parts.append(Ranks(*scorer.rank_counts(vectors[start:start + step], joint, *args)))
        else:
            scores = scorer.score_all(vectors[start:start + step], distinct)[:, inverse]
            parts.append(Ranks.from_scores(scores, *args))
    if not parts:
        empty = torch.zeros(0, dtype=torch.long, device=joint.device)
        return Ranks(empty, empty)
    return Ranks.cat(parts)


def evaluate_link_prediction(model, queries: Union[LinkPredictionQueries, Tensor],
                             filter_index: Optional[FilterIndex] = None,
                             batch_size: int = 0,
                             categories: Optional[Dict[str, Tensor]] = None,
                             fusion_mask: Optional[Tensor] = None,
                             progress: bool = False) -> Dict:
    """Filtered MRR, MR and Hits@1/3/10 over both directions (realistic ranks), per
    direction (``head``, ``tail``), the ``optimistic`` and ``pessimistic`` figures over
    both directions, and, when ``categories`` maps a relation category (``1-1``,
    ``1-n``, ``n-1``, ``n-n``) to its triples, per category.

    ``queries`` is a :class:`LinkPredictionQueries` (both sides) or a triples tensor
    ``[T, 3]`` with the ``filter_index`` of known answers; other arguments as in
    :func:`link_prediction_ranks`."""
    if isinstance(queries, Tensor):
        if filter_index is None:
            raise ValueError("evaluate_link_prediction: expected filter_index with triples")
        queries = LinkPredictionQueries.build(queries.to(model.node_emb.weight.device),
                                              filter_index)
    if not queries.both_sides:
        raise ValueError("evaluate_link_prediction: expected queries of both sides")
    was_training = model.training
    model.eval()
    try:
        ranks = link_prediction_ranks(model, queries, batch_size, fusion_mask, progress)
    finally:
        model.train(was_training)
    head, tail = queries.split(ranks)
    metrics = {"rank_type": RANK_TYPE, **direction_metrics(head.realistic, tail.realistic),
               "optimistic": rank_metrics(ranks.optimistic),
               "pessimistic": rank_metrics(ranks.pessimistic)}
    if categories:
        # Rank once; a category selects its triples' ranks by membership.
        keys = triple_keys(queries.triples, model.num_nodes, model.num_relations)
        metrics["categories"] = {}
        for name, members in categories.items():
            member_keys = triple_keys(members.to(keys.device), model.num_nodes,
                                      model.num_relations)
            selected = torch.isin(keys, member_keys)
            metrics["categories"][name] = direction_metrics(head.realistic[selected],
                                                            tail.realistic[selected])
    return metrics


def missing_modality_mask(model, rate: float, seed: int) -> Optional[Tensor]:
    """The fusion mask of the modality-missing setting: the model's own availability with
    all modalities of a random ``round(rate * N)`` entities hidden (None when ``rate`` is
    0). It depends on the model alone, not on which feature files a dataset was loaded
    with: the model carries its feature tables and availability."""
    if rate == 0:
        return None
    if model.adamf is None:
        raise ValueError("the modality-missing setting needs a model with modalities")
    if not 0 < rate <= 1:
        raise ValueError(f"rate={rate}: expected a fraction in [0, 1]")
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randperm(model.num_nodes, generator=generator)[:round(rate * model.num_nodes)]
    mask = model.fusion_mask.clone()
    mask[hidden.to(mask.device), 1:] = False
    return mask


def evaluate_splits(model, dataset, filter_index: FilterIndex, batch_size: int = 0,
                    drop_modality_rate: float = 0.0, seed: int = 0,
                    valid: Optional[Dict] = None, raw_splits: bool = False,
                    progress: bool = False) -> Dict:
    """The final metrics of a model on its dataset: ``valid`` and ``test`` on their
    :meth:`~mmkgc_pyg.data.KGDataset.evaluation_triples` (``raw_splits``: as in the
    files), the test with its relation categories and, optionally, modalities hidden for
    a fraction of entities, and how many triples each used. ``valid`` passes already
    computed valid metrics (not evaluated twice)."""
    fusion_mask = missing_modality_mask(model, drop_modality_rate, seed)
    device = model.node_emb.weight.device
    triples = {split: dataset.evaluation_triples(split, raw_splits).to(device)
               for split in ("valid", "test")}
    if valid is None:
        valid = evaluate_link_prediction(model, triples["valid"], filter_index, batch_size,
                                         progress=progress)
    test = evaluate_link_prediction(model, triples["test"], filter_index, batch_size,
                                    dataset.test_categories, fusion_mask, progress)
    return {"valid": valid, "test": {**test, "drop_modality_rate": drop_modality_rate},
            "valid_triples_used": len(triples["valid"]), "test_triples_used": len(triples["test"]),
            "raw_splits": raw_splits}
