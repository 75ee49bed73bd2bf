r"""Negative sampling: Bernoulli side choice and filtered corruption, fully on device.

Triples are encoded as int64 keys :math:`(h R + r) N + t`; a sorted key table and
:func:`torch.searchsorted` answer membership and rank queries for a whole batch at
once, so :class:`NegativeSampler` never loops over triples nor syncs with the host.
"""
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from mmkgc_pyg.errors import InvalidArgumentError
from mmkgc_pyg.data.kg import triple_keys

# Raw draws are reduced modulo the number of admissible entities; with 2**62 raw values
# the modulo bias is at most N / 2**62, i.e. none worth mentioning.
_RAW_HIGH = 2**62


class NegativeSampler:
    r"""Draws :math:`K` corrupted triples per positive, all corrupting one side of it.

    Each positive row corrupts *either* its head *or* its tail, and all :math:`K`
    negatives of the row corrupt that same side: the row becomes one query
    (:math:`(h, r, ?)` or :math:`(?, r, t)`) scored against :math:`1 + K` candidates,
    the true entity first.

    *Side.* ``mode='bernoulli'`` corrupts the head of a relation-:math:`r` triple with
    probability :math:`\mathrm{tph}_r / (\mathrm{tph}_r + \mathrm{hpt}_r)` (tails per
    head and heads per tail, on the distinct training triples), so the side with fewer
    true answers is corrupted more often; relations absent from training get 0.5.
    ``mode='uniform'`` uses 0.5 throughout.

    *Filtering.* With ``filtered=True`` a negative is drawn uniformly from the entities
    that do *not* form a training triple for the row's query -- the distribution of
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
        triples: Training triples, LongTensor ``[E, 3]`` of (head, relation, tail).
        num_entities: :math:`N`.
        num_relations: :math:`R`.
        num_negatives: :math:`K`.
        mode: ``'bernoulli'`` or ``'uniform'`` side choice.
        filtered: Draw only negatives that are not training triples.
        device: Where the tables live and sampling runs (default: ``triples.device``).
    """

    def __init__(self, triples: Tensor, num_entities: int, num_relations: int,
                 num_negatives: int, mode: str = "bernoulli", filtered: bool = True,
                 device: Optional[Union[str, torch.device]] = None):
        _check_arguments(triples, num_entities, num_relations, num_negatives, mode)
        triples = torch.unique(triples.to(device if device is not None else triples.device), dim=0)
        self.num_entities = num_entities
        self.num_relations = num_relations
        self.num_negatives = num_negatives
        self.mode = mode
        self.filtered = filtered
        self.device = triples.device
        self.tph, self.hpt = _answers_per_query(triples, num_entities, num_relations)
        total = self.tph + self.hpt
        head_prob = torch.where(total > 0, self.tph / total.clamp(min=1e-12), 0.5)
        #: Probability of corrupting the head, per relation, ``[R]``.
        self.head_prob = head_prob if mode == "bernoulli" else torch.full_like(head_prob, 0.5)
        self._keys, self._free_rank = _query_tables(triples, num_entities, num_relations)
        #: Negatives of the last call that are known triples (filtered mode; see above).
        self.last_unfiltered: Optional[Tensor] = (
            torch.zeros((), dtype=torch.long, device=self.device) if filtered else None)

    def __call__(self, batch: Tensor,
                 generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
        r"""Corrupt each positive of ``batch`` (LongTensor ``[B, 3]`` on :attr:`device`).

        Returns:
            ``candidates`` (LongTensor ``[B, 1 + K]``: column 0 the true entity of the
            corrupted side, columns 1..K the negatives) and ``corrupt_head`` (bool ``[B]``).
        """
        if batch.dim() != 2 or batch.size(1) != 3 or batch.dtype != torch.long:
            raise InvalidArgumentError(f"NegativeSampler: batch: expected a LongTensor [B, 3], "
                                       f"got {batch.dtype} {tuple(batch.shape)}")
        if batch.device != self.device:
            raise InvalidArgumentError(f"NegativeSampler: batch: expected device {self.device}, "
                                       f"got {batch.device}")
        head, rel, tail = batch.unbind(1)
        size = (batch.size(0), self.num_negatives)
        coin = torch.rand(batch.size(0), generator=generator, device=self.device)
        corrupt_head = coin < self.head_prob[rel]
        true = torch.where(corrupt_head, head, tail)
        if self.filtered:
            raw = torch.randint(_RAW_HIGH, size, generator=generator, device=self.device)
            negatives = self._draw_unknown(head, rel, tail, corrupt_head, raw)
        else:
            negatives = torch.randint(self.num_entities, size, generator=generator,
                                      device=self.device)
        return torch.cat([true.unsqueeze(1), negatives], dim=1), corrupt_head

    def _draw_unknown(self, head: Tensor, rel: Tensor, tail: Tensor, corrupt_head: Tensor,
                      raw: Tensor) -> Tensor:
        """Map raw draws ``[B, K]`` to entities uniform over each row's unknown answers."""
        n, num_rel = self.num_entities, self.num_relations
        # A head query (?, r, t) is the tail query (t, r + R, ?) of the inverse relation.
        query = torch.where(corrupt_head, (tail * 2 + 1) * num_rel + rel, head * 2 * num_rel + rel)
        start = torch.searchsorted(self._keys, query * n)
        num_known = torch.searchsorted(self._keys, (query + 1) * n) - start
        num_free = (n - num_known).unsqueeze(1)
        rank = raw % num_free.clamp(min=1)  # the rank-th unknown answer, 0-based
        num_known_below = torch.searchsorted(self._free_rank, query.unsqueeze(1) * n + rank,
                                             right=True) - start.unsqueeze(1)
        no_free = num_free == 0
        self.last_unfiltered = no_free.sum() * self.num_negatives
        return torch.where(no_free, raw % n, rank + num_known_below)


def _check_arguments(triples: Tensor, num_entities: int, num_relations: int,
                     num_negatives: int, mode: str) -> None:
    for name, value in (("num_entities", num_entities), ("num_relations", num_relations),
                        ("num_negatives", num_negatives)):
        if not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"NegativeSampler: {name}: expected a positive int, got "
                                       f"{value!r}")
    if mode not in ("bernoulli", "uniform"):
        raise InvalidArgumentError(f"NegativeSampler: mode: expected 'bernoulli' or 'uniform', "
                                   f"got {mode!r}")
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


def _answers_per_query(triples: Tensor, num_entities: int,
                       num_relations: int) -> Tuple[Tensor, Tensor]:
    """Per relation, tails per head (tph) and heads per tail (hpt) of distinct triples."""
    head, rel, tail = triples.unbind(1)
    count = torch.bincount(rel, minlength=num_relations).double()
    heads = torch.bincount(torch.unique(head * num_relations + rel) % num_relations,
                           minlength=num_relations)
    tails = torch.bincount(torch.unique(rel * num_entities + tail) // num_entities,
                           minlength=num_relations)
    return count / heads.clamp(min=1), count / tails.clamp(min=1)


def _query_tables(triples: Tensor, num_entities: int, num_relations: int) -> Tuple[Tensor, Tensor]:
    r"""Sorted keys of the tail queries of all triples and their inverses, and the rank table.

    Query :math:`q = h R' + r` (:math:`R' = 2R`) owns the key range :math:`[qN, (q+1)N)`.
    The rank table holds :math:`qN + s_i - i` for the :math:`i`-th known answer
    :math:`s_i` of :math:`q`: non-decreasing, so it is still sorted.
    """
    head, rel, tail = triples.unbind(1)
    inverse = torch.stack([tail, rel + num_relations, head], dim=1)
    keys = triple_keys(torch.cat([triples, inverse]), num_entities, 2 * num_relations)
    keys = torch.sort(keys).values
    group_start = torch.searchsorted(keys, keys - keys % num_entities)
    rank_in_group = torch.arange(keys.numel(), device=keys.device) - group_start
    return keys, keys - rank_in_group
