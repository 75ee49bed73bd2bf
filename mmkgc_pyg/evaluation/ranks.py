r"""Ranks of a target among its competitors, optimistic, pessimistic and realistic together.

With :math:`b` competitors scoring strictly better than the target and :math:`t` scoring
exactly the same (the target itself and filtered entities are not competitors):

.. math::
    r_{\mathrm{opt}} = 1 + b, \qquad r_{\mathrm{pes}} = 1 + b + t, \qquad
    r_{\mathrm{real}} = \tfrac12 (r_{\mathrm{opt}} + r_{\mathrm{pes}}) = 1 + b + t / 2.

The paper's reference reports optimistic ranks; realistic ranks are the default here
(identical without ties).
"""
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mmkgc_pyg.score_blocks import SCORE_BUDGET, check_csr, csr_rows

@dataclass
class Ranks:
    """Per-query counts of better and tied competitors, ``[B]`` each."""
    better: Tensor
    tied: Tensor

    @property
    def optimistic(self) -> Tensor:
        return (1 + self.better).float()

    @property
    def pessimistic(self) -> Tensor:
        return (1 + self.better + self.tied).float()

    @property
    def realistic(self) -> Tensor:
        return 1 + self.better + 0.5 * self.tied.float()

    def __len__(self) -> int:
        return self.better.numel()

    def __getitem__(self, index) -> "Ranks":
        return Ranks(self.better[index], self.tied[index])

    @classmethod
    def cat(cls, parts: Sequence["Ranks"]) -> "Ranks":
        return cls(torch.cat([p.better for p in parts]), torch.cat([p.tied for p in parts]))

    @classmethod
    def from_scores(cls, scores: Tensor, target: Tensor, filter_ptr: Tensor,
                    filter_idx: Tensor) -> "Ranks":
        r"""Counts from a score matrix ``[B, N]`` (higher is better) for targets ``[B]``,
        ignoring the entities ``filter_idx[filter_ptr[b]:filter_ptr[b + 1]]`` of query
        ``b`` (CSR lists) and the target itself."""
        check_csr(scores.size(0), filter_ptr, filter_idx, "Ranks.from_scores")
        rows = torch.arange(scores.size(0), device=scores.device)
        competing = torch.ones_like(scores, dtype=torch.bool)
        competing[csr_rows(filter_ptr, filter_idx.numel()), filter_idx] = False
        competing[rows, target] = False
        target_score = scores[rows, target][:, None]
        return cls(((scores > target_score) & competing).sum(1),
                   ((scores == target_score) & competing).sum(1))


class DistinctRows(NamedTuple):
    """The distinct rows of a table: ``rows [K, D]``, each entity's row index
    ``inverse [N]``, and how many entities share each row, ``counts [K]``."""
    rows: Tensor
    inverse: Tensor
    counts: Tensor


def distinct_rows(table: Tensor) -> DistinctRows:
    """Groups the identical rows of ``table [N, D]`` (bitwise identical). Rows are hashed
    and grouped by hash, and every row is checked against its group's first row, so a
    hash collision can never merge different rows (it falls back to sorting rows). Works
    through the table in blocks of ``SCORE_BUDGET`` elements."""
    n, width = table.shape
    device = table.device
    if n == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return DistinctRows(table, empty, empty)
    # Two 16-bit halves of each element's bits times weights below 2**20: no int64
    # overflow for rows of fewer than 2**27 elements.
    weights = torch.randint(1, 2**20, (2, width), device=device,
                            generator=torch.Generator(device).manual_seed(0))
    step = max(1, SCORE_BUDGET // max(1, width))
    key = torch.cat([_row_keys(table[i:i + step], weights) for i in range(0, n, step)])
    _, inverse, counts = torch.unique(key, return_inverse=True, return_counts=True)
    first = torch.full((counts.numel(), ), n, device=device).scatter_reduce_(
        0, inverse, torch.arange(n, device=device), "amin")
    representative = first[inverse]
    same = all(bool((table[i:i + step] == table[representative[i:i + step]]).all())
               for i in range(0, n, step))
    if not same:  # a hash collision: the slow, exact way
        rows, inverse, counts = torch.unique(table, dim=0, return_inverse=True,
                                             return_counts=True)
        return DistinctRows(rows, inverse, counts)
    return DistinctRows(table[first], inverse, counts)


def _row_keys(rows: Tensor, weights: Tensor) -> Tensor:
    bits = rows.contiguous().view(_INT_OF_SIZE[rows.element_size()]).long() & 0xFFFFFFFF
    return ((bits & 0xFFFF) * weights[0] + (bits >> 16) * weights[1]).sum(1)


_INT_OF_SIZE = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def stream_ranks(score: Callable[[Tensor, Tensor], Tensor],
                 match: Callable[[Tensor, Tensor], Tensor], query: Tensor,
                 entities: DistinctRows, target: Tensor, filter_ptr: Tensor, filter_idx: Tensor,
                 budget: int, progress: bool = False) -> Ranks:
    r"""Ranks of ``target[b]`` for queries ``[B, D]`` against every entity, where an
    entity's score is its distinct row's: ``score(queries, rows)`` gives ``[b, k]`` blocks
    of at most ``budget`` scores, so memory stays bounded for any number of entities.

    Identical entities tie exactly: each distinct row is scored once per query, the
    target's own row is never compared with the target (its other entities are counted
    as ties), and the filtered entities are taken back out with the very scores they
    were counted with. ``match(query, rows)`` scores a query against one row (the
    target's), row-wise.
    """
    check_csr(query.size(0), filter_ptr, filter_idx, "stream_ranks")
    num_queries, num_rows = query.size(0), entities.rows.size(0)
    device = query.device
    target_row = entities.inverse[target]
    target_score = match(query, entities.rows[target_row])
    counts = entities.counts.to(torch.int32)
    better = torch.zeros(num_queries, dtype=torch.long, device=device)
    tied = (counts[target_row] - 1).long()  # the target's identical entities
    # Filtered entities, except the target itself (never a competitor).
    rows = csr_rows(filter_ptr, filter_idx.numel())
    keep = filter_idx != target[rows]
    rows, filtered_row = rows[keep], entities.inverse[filter_idx[keep]]
    twin = filtered_row == target_row[rows]  # counted among the target's ties above
    tied.index_add_(0, rows[twin], torch.full_like(rows[twin], -1))
    rows, filtered_row = rows[~twin], filtered_row[~twin]
    block = max(1, min(num_queries, budget // max(1, num_rows)))
    chunk = max(1, min(num_rows, budget // block))
    for start in tqdm(range(0, num_queries, block), disable=not progress, desc="ranking",
                      leave=False):
        stop = min(start + block, num_queries)
        in_block = (rows >= start) & (rows < stop)
        block_rows, block_filtered = rows[in_block] - start, filtered_row[in_block]
        limit = target_score[start:stop, None]
        for low in range(0, num_rows, chunk):
            high = min(low + chunk, num_rows)
            scores = score(query[start:stop], entities.rows[low:high])
            own = target_row[start:stop, None] == torch.arange(low, high, device=device)
            weight = torch.where(own, 0, counts[low:high])
            better[start:stop] += torch.where(scores > limit, weight, 0).sum(1)
            tied[start:stop] += torch.where(scores == limit, weight, 0).sum(1)
            here = (block_filtered >= low) & (block_filtered < high)
            b, k = block_rows[here], block_filtered[here] - low
            s, t = scores[b, k], limit[b, 0]
            better.index_add_(0, b + start, -(s > t).long())
            tied.index_add_(0, b + start, -(s == t).long())
    return Ranks(better, tied)
