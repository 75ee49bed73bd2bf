r"""Negative sampling: Bernoulli side choice and filtered corruption, fully on device.

Triples are encoded as int64 keys :math:`(h R + r) N + t`; a sorted key table and
:func:`torch.searchsorted` answer membership and rank queries for a whole batch at
once, so :class:`NegativeSampler` never loops over triples nor syncs with the host.
The tables are built from a :class:`~mmkgc_pyg.data.kg.TripleIndex` (the training
triples' keys sorted in both directions) in linear time, without sorting again.
"""
from typing import List, Optional, Tuple, Union

import torch
from torch import Tensor

from mmkgc_pyg.data.kg import TripleIndex
from mmkgc_pyg.errors import InvalidArgumentError

# Per half of a TripleIndex (forward, inverse): the query of each key and where runs start.
Runs = List[Tuple[Tensor, Tensor]]
# Raw draws are reduced modulo the number of admissible entities; with 2**62 raw values
# the modulo bias is at most N / 2**62, i.e. none worth mentioning.
_RAW_HIGH = 2**62


class NegativeSampler:
    r"""Draws :math:`K` corrupted triples per positive.

    With ``per_negative=False`` each positive row corrupts *either* its head *or* its
    tail, and all :math:`K` negatives of the row corrupt that same side: the row becomes
    one query (:math:`(h, r, ?)` or :math:`(?, r, t)`) scored against :math:`1 + K`
    candidates, the true entity first. With ``per_negative=True`` (the reference's
    sampler) every negative tosses its own coin, so a row mixes head and tail
    corruptions; column 0, the positive, is then read as the tail query
    :math:`(h, r, ?)` with candidate :math:`t` (its score is :math:`f(h, r, t)` either
    way).

    *Side.* ``mode='bernoulli'`` corrupts the head of a relation-:math:`r` triple with
    probability :math:`\mathrm{tph}_r / (\mathrm{tph}_r + \mathrm{hpt}_r)` (tails per
    head and heads per tail, on the distinct training triples), so the side with fewer
    true answers is corrupted more often; relations absent from training get 0.5.
    ``mode='uniform'`` uses 0.5 throughout.

    *Filtering.* With ``filtered=True`` a negative is drawn uniformly from the entities
    that do *not* form a training triple for its query (its row's, or with
    ``per_negative`` the query of its own side) -- the distribution of
    redraw-until-unknown rejection sampling, obtained exactly in one pass: the
    :math:`u`-th unknown entity is :math:`u + \#\{i : s_i - i \le u\}` for the sorted
    known answers :math:`s_0 < s_1 < \dots`, which one :func:`torch.searchsorted` over a
    precomputed table gives for the whole batch. Shapes are static and nothing syncs
    with the host, so a call is CUDA-graph friendly. For a training positive its own
    entity is a known answer and is never drawn; for a row that is not a training
    triple it may be. If *every* entity answers a query (no valid negative exists),
    that row's negatives are uniform over all entities, hence known triples; their
    number is kept, without syncing, in the 0-dim tensor :attr:`last_unfiltered`.
    With ``filtered=False`` negatives are uniform over all entities and nothing is
    checked (:attr:`last_unfiltered` is ``None``).

    Args:
        triples: Training triples, LongTensor ``[E, 3]`` of (head, relation, tail), or
            their :class:`~mmkgc_pyg.data.kg.TripleIndex` (e.g. one shared with the
            :class:`~mmkgc_pyg.evaluation.FilterIndex`, so that they are sorted once).
        num_entities: :math:`N`.
        num_relations: :math:`R`.
        num_negatives: :math:`K`.
        mode: ``'bernoulli'`` or ``'uniform'`` side choice.
        filtered: Draw only negatives that are not training triples.
        device: Where the tables live and sampling runs (default: ``triples.device``).
        per_negative: One side coin per negative instead of one per positive.
    """

    def __init__(self, triples: Union[Tensor, TripleIndex], num_entities: int,
                 num_relations: int, num_negatives: int, mode: str = "bernoulli",
                 filtered: bool = True, device: Optional[Union[str, torch.device]] = None,
                 per_negative: bool = False):
        _check_arguments(triples, num_entities, num_relations, num_negatives, mode)
        triples = triples.to(device) if device is not None else triples  # sorted there
        index = (triples if isinstance(triples, TripleIndex)
                 else TripleIndex(triples, num_entities, num_relations))
        self.num_entities = num_entities
        self.num_relations = num_relations
        self.num_negatives = num_negatives
        self.mode = mode
        self.filtered = filtered
        self.per_negative = per_negative
        self.device = index.device
        runs = [_query_runs(keys, num_entities) for keys in (index.forward, index.inverse)]
        self.tph, self.hpt = _answers_per_query(runs, num_relations)
        total = self.tph + self.hpt
        head_prob = torch.where(total > 0, self.tph / total.clamp(min=1e-12), 0.5)
        #: Probability of corrupting the head, per relation, ``[R]``.
        self.head_prob = head_prob if mode == "bernoulli" else torch.full_like(head_prob, 0.5)
        self._keys, self._free_rank = _query_tables(index, runs)
        #: Negatives of the last call that are known triples (filtered mode; see above).
        self.last_unfiltered: Optional[Tensor] = (
            torch.zeros((), dtype=torch.long, device=self.device) if filtered else None)

    def __call__(self, batch: Tensor,
                 generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
        r"""Corrupt each positive of ``batch`` (LongTensor ``[B, 3]`` on :attr:`device`).

        Returns:
            ``candidates`` (LongTensor ``[B, 1 + K]``: column 0 the true entity of the
            corrupted side, columns 1..K the negatives) and ``corrupt_head``: bool ``[B]``,
            or with :attr:`per_negative` bool ``[B, 1 + K]``, the side of each candidate
            (column 0 False: the positive as a tail query).
        """
        if batch.dim() != 2 or batch.size(1) != 3 or batch.dtype != torch.long:
            raise InvalidArgumentError(f"NegativeSampler: batch: expected a LongTensor [B, 3], "
                                       f"got {batch.dtype} {tuple(batch.shape)}")
        if batch.device != self.device:
            raise InvalidArgumentError(f"NegativeSampler: batch: expected device {self.device}, "
                                       f"got {batch.device}")
        head, rel, tail = batch.unbind(1)
        size = (batch.size(0), self.num_negatives)
        # A coin per row [B, 1] or per negative [B, K]; the draws below broadcast over it.
        coins = size if self.per_negative else (batch.size(0), 1)
        coin = torch.rand(coins, generator=generator, device=self.device)
        sides = coin < self.head_prob[rel].unsqueeze(1)
        head, rel, tail = head.unsqueeze(1), rel.unsqueeze(1), tail.unsqueeze(1)
        if self.filtered:
            raw = torch.randint(_RAW_HIGH, size, generator=generator, device=self.device)
            negatives = self._draw_unknown(head, rel, tail, sides, raw)
        else:
            negatives = torch.randint(self.num_entities, size, generator=generator,
                                      device=self.device)
        if self.per_negative:  # the positive as the tail query (h, r, ?), candidate t
            return (torch.cat([tail, negatives], dim=1),
                    torch.cat([torch.zeros_like(sides[:, :1]), sides], dim=1))
        return torch.cat([torch.where(sides, head, tail), negatives], dim=1), sides.squeeze(1)

    def _draw_unknown(self, head: Tensor, rel: Tensor, tail: Tensor, corrupt_head: Tensor,
                      raw: Tensor) -> Tensor:
        """Map raw draws ``[B, K]`` to entities uniform over the unknown answers of each
        one's query; ``head``, ``rel``, ``tail`` are ``[B, 1]`` and ``corrupt_head``
        ``[B, 1]`` (one side per row) or ``[B, K]`` (one per negative)."""
        n, num_rel = self.num_entities, self.num_relations
        # A head query (?, r, t) is the tail query (t, r + R, ?) of the inverse relation.
        query = torch.where(corrupt_head, (tail * 2 + 1) * num_rel + rel, head * 2 * num_rel + rel)
        start = torch.searchsorted(self._keys, query * n)
        num_free = n - (torch.searchsorted(self._keys, (query + 1) * n) - start)
        rank = raw % num_free.clamp(min=1)  # the rank-th unknown answer, 0-based
        num_known_below = torch.searchsorted(self._free_rank, query * n + rank,
                                             right=True) - start
        no_free = (num_free == 0).expand_as(raw)
        self.last_unfiltered = no_free.sum()
        return torch.where(no_free, raw % n, rank + num_known_below)


def _check_arguments(triples: Union[Tensor, TripleIndex], num_entities: int,
                     num_relations: int, num_negatives: int, mode: str) -> None:
    for name, value in (("num_entities", num_entities), ("num_relations", num_relations),
                        ("num_negatives", num_negatives)):
        if not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"NegativeSampler: {name}: expected a positive int, got "
                                       f"{value!r}")
    if mode not in ("bernoulli", "uniform"):
        raise InvalidArgumentError(f"NegativeSampler: mode: expected 'bernoulli' or 'uniform', "
                                   f"got {mode!r}")
    if isinstance(triples, TripleIndex):
        if (triples.num_entities, triples.num_relations) != (num_entities, num_relations):
            raise InvalidArgumentError(f"NegativeSampler: triples: expected an index of "
                                       f"{num_entities} entities and {num_relations} "
                                       f"relations, got {triples.num_entities} and "
                                       f"{triples.num_relations}")
        return
    if triples.dim() != 2 or triples.size(1) != 3 or triples.dtype != torch.long:
        raise InvalidArgumentError(f"NegativeSampler: triples: expected a LongTensor [E, 3], "
                                   f"got {triples.dtype} {tuple(triples.shape)}")
    if triples.numel() == 0:
        return
    low, high = triples.min(dim=0).values.tolist(), triples.max(dim=0).values.tolist()
    if min(low) < 0 or max(high[0], high[2]) >= num_entities or high[1] >= num_relations:
        raise InvalidArgumentError(f"NegativeSampler: triples: expected entity ids in [0, "
                                   f"{num_entities}) and relation ids in [0, {num_relations}), "
                                   f"got (h, r, t) ranges {low} .. {high}")


def _query_runs(keys: Tensor, num_entities: int) -> Tuple[Tensor, Tensor]:
    """The query of each key of a :class:`TripleIndex` half (``key // N``: ``h R + r``
    for forward keys, ``t R + r`` for inverse ones; ascending) and the mask of where each
    query's run of keys starts."""
    query = keys // num_entities
    start = torch.ones_like(query, dtype=torch.bool)
    start[1:] = query[1:] != query[:-1]
    return query, start


def _answers_per_query(runs: Runs, num_relations: int) -> Tuple[Tensor, Tensor]:
    """Per relation, tails per head (tph) and heads per tail (hpt) of distinct triples:
    their number over that of distinct (h, r) queries, over that of distinct (r, t)."""
    (forward, forward_start), (inverse, inverse_start) = runs
    rel = forward % num_relations
    count = torch.bincount(rel, minlength=num_relations).double()
    # Each run start weighs one: distinct queries are counted without a masked copy.
    heads = torch.bincount(rel, forward_start.double(), num_relations)
    tails = torch.bincount(inverse % num_relations, inverse_start.double(), num_relations)
    return count / heads.clamp(min=1), count / tails.clamp(min=1)


def _query_tables(index: TripleIndex, runs: Runs) -> Tuple[Tensor, Tensor]:
    r"""Sorted keys of the tail queries of all triples and their inverses, and the rank table.

    Query :math:`q = h R' + r` (:math:`R' = 2R`; relation :math:`R + r` is the inverse
    of :math:`r`) owns the key range :math:`[qN, (q+1)N)`. The rank table holds
    :math:`qN + s_i - i` for the :math:`i`-th known answer :math:`s_i` of :math:`q`:
    non-decreasing, so it is still sorted.

    Both halves come sorted from ``index``: a forward key :math:`(hR + r)N + t` becomes
    :math:`(h R' + r)N + t` and an inverse key :math:`(tR + r)N + h` becomes
    :math:`(t R' + R + r)N + h`, which keeps each half's order and its queries' runs; in
    the merged order the keys led by entity :math:`e` are its forward keys, then its
    inverse keys. So a key's place is its place in its half plus the keys of the other
    half before it, counted per leading entity: linear time, no sort.
    """
    n, num_rel, size = index.num_entities, index.num_relations, len(index)
    (forward, forward_start), (inverse, inverse_start) = runs
    forward_lead, inverse_lead = forward // num_rel, inverse // num_rel
    forward_count, inverse_count = (torch.bincount(lead, minlength=n)
                                    for lead in (forward_lead, inverse_lead))
    position = torch.arange(size, device=index.device)
    # A forward key led by entity e follows the inverse keys led by entities < e; an
    # inverse key led by e follows the forward keys led by entities <= e.
    forward_place = position + (inverse_count.cumsum(0) - inverse_count)[forward_lead]
    inverse_place = position + forward_count.cumsum(0)[inverse_lead]
    keys = index.forward.new_empty(2 * size)
    free_rank = torch.empty_like(keys)
    for half, (half_keys, lead, start, place) in enumerate((
            (index.forward, forward_lead, forward_start, forward_place),
            (index.inverse, inverse_lead, inverse_start, inverse_place))):
        mapped = half_keys + (lead + half) * (num_rel * n)
        rank = position - torch.where(start, position, 0).cummax(0).values  # in its query
        keys.index_copy_(0, place, mapped)
        free_rank.index_copy_(0, place, mapped - rank)
    return keys, free_rank
