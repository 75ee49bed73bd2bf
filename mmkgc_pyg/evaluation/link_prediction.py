"""Filtered link prediction: rank every test triple's head and tail among all entities."""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

import torch
import torch.distributed as dist
from torch import Tensor
from tqdm.auto import tqdm

from mmkgc_pyg.data.kg import sorted_contains, triple_keys
from mmkgc_pyg.distributed import process_group
from mmkgc_pyg.errors import InvalidArgumentError, NonFiniteModelError
from mmkgc_pyg.evaluation.filtering import FilterIndex
from mmkgc_pyg.evaluation.metrics import direction_metrics, rank_metrics
from mmkgc_pyg.evaluation.ranking_model import RankingModel
from mmkgc_pyg.evaluation.ranks import Ranks, distinct_rows, stream_ranks
from mmkgc_pyg.score_blocks import SCORE_BUDGET

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

    def vectors(self, model: RankingModel, joint: Tensor) -> Tensor:
        """The query vectors ``[len(self), D]`` from all entities' joint embeddings."""
        head, rel, tail = self.triples.unbind(1)
        tails = model.tail_queries(head, rel, joint)
        if not self.both_sides:
            return tails
        return torch.cat([tails, model.head_queries(rel, tail, joint)])

    def share(self, rank: int, world: int) -> Tuple[int, int]:
        """The ``[start, stop)`` queries of process ``rank`` of ``world``."""
        size = -(-len(self) // world)
        return min(rank * size, len(self)), min((rank + 1) * size, len(self))

    def slice(self, start: int, stop: int) -> Tuple[Tensor, Tensor, Tensor]:
        """Targets and re-based filter lists of queries ``start..stop-1``."""
        if (start, stop) == (0, len(self)):
            return self.target, self.filter_ptr, self.filter_idx
        low, high = self.filter_ptr[[start, stop]].tolist()
        return (self.target[start:stop], self.filter_ptr[start:stop + 1] - low,
                self.filter_idx[low:high])

    def split(self, ranks: Ranks) -> Tuple[Optional[Ranks], Ranks]:
        """``(head_ranks, tail_ranks)`` of ``ranks`` over these queries (no head ranks
        without ``both_sides``)."""
        count = self.triples.size(0)
        return (ranks[count:] if self.both_sides else None), ranks[:count]


@torch.no_grad()
def link_prediction_ranks(model: RankingModel, queries: LinkPredictionQueries,
                          batch_size: int = 0,
                          fusion_mask: Optional[Tensor] = None,
                          progress: bool = False) -> Ranks:
    r"""Ranks of every query's target among all entities.

    Each entity's joint embedding is computed once. An interaction with a fused ranking
    kernel (RotatE on CUDA) ranks the queries in calls of ``batch_size`` without a
    ``[B, N]`` score matrix, every call reading the one ``ranking_table`` of the entities;
    any other is scored in blocks of queries x distinct entity rows of at most
    ``SCORE_BUDGET`` scores (:func:`~mmkgc_pyg.evaluation.ranks.stream_ranks`), so memory
    stays bounded on any graph. Both give exact ties for identical entity rows. With
    several processes (``torch.distributed``), each ranks its share of the queries and
    all receive every rank.

    Args:
        model: a :class:`~mmkgc_pyg.evaluation.RankingModel` (e.g. an
            :class:`~mmkgc_pyg.nn.MMKGCModel`).
        queries: the queries, targets and filter lists.
        batch_size: at most this many queries per ranking call (0: as many as fit).
        fusion_mask: overrides the model's modality availability (modality-missing runs).
        progress: show a progress bar over the calls.

    Raises:
        NonFiniteModelError: the embeddings or queries are not all finite.
    """
    joint = model.entity_embeddings(fusion_mask=fusion_mask, chunked=True)
    vectors = queries.vectors(model, joint)
    if not (torch.isfinite(joint).all() & torch.isfinite(vectors).all()):
        raise NonFiniteModelError("the model's entity embeddings or relation queries hold NaN "
                                  "or infinite values: its ranks would be meaningless")
    rank, world = process_group()
    mine = queries.share(rank, world)
    start, stop = mine
    target, ptr, idx = queries.slice(start, stop)
    interaction = model.interaction
    if interaction.fused_ranking(vectors, joint):
        # Laid out for the kernel once, not by every chunk's call; the row-major table
        # is no longer needed.
        joint = interaction.ranking_table(joint)
        step = max(1, batch_size or (stop - start))
        bounds = ptr[::step].tolist() + [idx.numel()] if step < stop - start else [0, idx.numel()]
        parts = [Ranks(*interaction.rank_counts(vectors[start + low_q:start + low_q + step], joint,
                                           target[low_q:low_q + step],
                                           ptr[low_q:low_q + step + 1] - low, idx[low:high]))
                 for low_q, low, high in tqdm(zip(range(0, stop - start, step), bounds,
                                                  bounds[1:]), total=len(bounds) - 1,
                                              disable=not progress, desc="ranking",
                                              leave=False)]
        ranks = Ranks.cat(parts) if parts else Ranks(target.new_zeros(0), target.new_zeros(0))
    else:
        budget = min(SCORE_BUDGET, batch_size * joint.size(0)) if batch_size else SCORE_BUDGET
        ranks = stream_ranks(interaction.score_all, interaction.match, vectors[start:stop],
                             distinct_rows(joint), target, ptr, idx, budget, progress)
    return _gather(ranks, queries, world) if world > 1 else ranks


def _gather(ranks: Ranks, queries: "LinkPredictionQueries", world: int) -> Ranks:
    """Every rank's share, in query order, on every rank."""
    size = -(-len(queries) // world)
    parts = []
    for counts in (ranks.better, ranks.tied):
        padded = counts.new_zeros(size)
        padded[:counts.numel()] = counts
        gathered = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(gathered, padded)
        parts.append(torch.cat([g[:stop - start] for g, (start, stop) in zip(
            gathered, (queries.share(r, world) for r in range(world)))]))
    return Ranks(*parts)


def evaluate_link_prediction(model: RankingModel,
                             queries: Union[LinkPredictionQueries, Tensor],
                             filter_index: Optional[FilterIndex] = None,
                             batch_size: int = 0,
                             categories: Optional[Dict[str, Tensor]] = None,
                             fusion_mask: Optional[Tensor] = None,
                             progress: bool = False,
                             reference_lines: Optional[Tensor] = None) -> Dict:
    """Filtered MRR, MR and Hits@1/3/10 over both directions (realistic ranks), per
    direction (``head``, ``tail``), the ``optimistic`` and ``pessimistic`` figures over
    both directions, and, when ``categories`` maps a relation category (``1-1``,
    ``1-n``, ``n-1``, ``n-n``) to its triples, per category.

    ``queries`` is a :class:`LinkPredictionQueries` (both sides) or a triples tensor
    ``[T, 3]`` with the ``filter_index`` of known answers; other arguments as in
    :func:`link_prediction_ranks`. ``reference_lines`` (triples ``[L, 3]``, each one of
    the queries' triples, e.g. every line of a test file with its repeats) adds the same
    figures as the reference counts them under ``reference``: optimistic ranks (only
    strictly better entities count) of those lines, from the same ranking (a repeated
    line asks the same queries with the same filter)."""
    if isinstance(queries, Tensor):
        if filter_index is None:
            raise InvalidArgumentError("evaluate_link_prediction: expected filter_index with "
                                       "triples")
        queries = LinkPredictionQueries.build(queries.to(model.device),
                                              filter_index)
    if not queries.both_sides:
        raise InvalidArgumentError("evaluate_link_prediction: expected queries of both sides")
    was_training = model.training
    model.eval()
    try:
        ranks = link_prediction_ranks(model, queries, batch_size, fusion_mask, progress)
    finally:
        model.train(was_training)
    head, tail = queries.split(ranks)
    # The headline figures use realistic ranks (exact for ties); the others sit beside them.
    metrics = {"rank_type": "realistic", **direction_metrics(head.realistic, tail.realistic),
               "optimistic": rank_metrics(ranks.optimistic),
               "pessimistic": rank_metrics(ranks.pessimistic)}
    if categories or reference_lines is not None:
        keys = triple_keys(queries.triples, model.num_nodes, model.num_relations)
    if categories:
        # Rank once; a category selects its triples' ranks by membership.
        metrics["categories"] = {}
        for name, members in categories.items():
            member_keys = triple_keys(members.to(keys.device), model.num_nodes,
                                      model.num_relations)
            selected = torch.isin(keys, member_keys)
            metrics["categories"][name] = direction_metrics(head.realistic[selected],
                                                            tail.realistic[selected])
    if reference_lines is not None:
        line = _positions(keys, triple_keys(reference_lines.to(keys.device), model.num_nodes,
                                            model.num_relations))
        metrics["reference"] = {"rank_type": "optimistic", **direction_metrics(
            head.optimistic[line], tail.optimistic[line])}
    return metrics


def _positions(keys: Tensor, wanted: Tensor) -> Tensor:
    """Where each of ``wanted`` is among the distinct ``keys``."""
    sorted_keys, order = torch.sort(keys)
    if not bool(sorted_contains(sorted_keys, wanted).all()):
        raise InvalidArgumentError("evaluate_link_prediction: reference_lines: expected "
                                   "triples among the queries' triples")
    return order[torch.searchsorted(sorted_keys, wanted)]


def missing_modality_mask(model: RankingModel, rate: float, seed: int) -> Optional[Tensor]:
    """The fusion mask of the modality-missing setting: the model's own availability with
    all modalities of a random ``round(rate * N)`` entities hidden (None when ``rate`` is
    0). It depends on the model alone, not on which feature files a dataset was loaded
    with: the model carries its feature tables and availability."""
    if rate == 0:
        return None
    if model.fusion_mask is None:
        raise InvalidArgumentError("the modality-missing setting needs a model with modalities")
    if not 0 < rate <= 1:
        raise InvalidArgumentError(f"rate={rate}: expected a fraction in [0, 1]")
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randperm(model.num_nodes, generator=generator)[:round(rate * model.num_nodes)]
    mask = model.fusion_mask.clone()
    mask[hidden.to(mask.device), 1:] = False
    return mask


def evaluate_splits(model: RankingModel, dataset, filter_index: FilterIndex,
                    batch_size: int = 0,
                    drop_modality_rate: float = 0.0, seed: int = 0,
                    valid: Optional[Dict] = None, raw_splits: bool = False,
                    progress: bool = False, reference: bool = False) -> Dict:
    """The final metrics of a model on its dataset: ``valid`` and ``test`` on their
    :meth:`~mmkgc_pyg.data.KGDataset.evaluation_triples` (``raw_splits``: as in the
    files), the test with its relation categories and, optionally, modalities hidden for
    a fraction of entities, and how many triples each used. ``valid`` passes already
    computed valid metrics (not evaluated twice). With ``reference``, the test also as
    the paper's code reports it, under ``reference``: optimistic ranks (only strictly
    better entities count) of every line of the test file, repeats included."""
    fusion_mask = missing_modality_mask(model, drop_modality_rate, seed)
    device = model.device
    triples = {split: dataset.evaluation_triples(split, raw_splits).to(device)
               for split in ("valid", "test")}
    if valid is None:
        valid = evaluate_link_prediction(model, triples["valid"], filter_index, batch_size,
                                         progress=progress)
    lines = dataset.evaluation_triples("test", raw=True) if reference else None
    test = evaluate_link_prediction(model, triples["test"], filter_index, batch_size,
                                    dataset.test_categories, fusion_mask, progress, lines)
    metrics = {"valid": valid, "test": {**test, "drop_modality_rate": drop_modality_rate},
               "valid_triples_used": len(triples["valid"]),
               "test_triples_used": len(triples["test"]), "raw_splits": raw_splits}
    if reference:
        metrics["reference"] = {**metrics["test"].pop("reference"),
                                "drop_modality_rate": drop_modality_rate, "raw_splits": True,
                                "test_triples_used": len(lines)}
    return metrics
