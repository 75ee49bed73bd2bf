"""Known-answer lists for filtered ranking and prediction."""
from typing import Tuple

import torch
from torch import Tensor

from mmkgc_pyg.score_blocks import csr_rows


class FilterIndex:
    r"""All known answers of ``(entity, relation, ?)`` and ``(?, relation, entity)``
    queries, looked up on the device without Python loops.

    The known triples are sorted once per side by the key
    :math:`\mathrm{entity} \cdot R + \mathrm{relation}`; a batch of queries then finds its
    answer ranges by binary search and gathers them into CSR lists (``ptr``, ``idx``):
    the answers of query ``b`` are ``idx[ptr[b]:ptr[b + 1]]``.

    Args:
        known_triples (torch.Tensor): ``[T, 3]`` (head, relation, tail); duplicates are
            removed.
        num_relations (int): number of relations.
    """

    def __init__(self, known_triples: Tensor, num_relations: int):
        self.num_relations = num_relations
        known = torch.unique(known_triples, dim=0)
        self._sorted = {}
        for side, (entity_col, answer_col) in {"tail": (0, 2), "head": (2, 0)}.items():
            keys = known[:, entity_col] * num_relations + known[:, 1]
            keys, order = torch.sort(keys)
            self._sorted[side] = (keys, known[order, answer_col])

    def to(self, device) -> "FilterIndex":
        self._sorted = {side: (k.to(device), a.to(device))
                        for side, (k, a) in self._sorted.items()}
        return self

    def answers(self, entity: Tensor, rel: Tensor, side: str) -> Tuple[Tensor, Tensor]:
        """CSR lists of the known ``side`` entities (``"tail"`` or ``"head"``) of each
        query built from ``entity`` (the other end) and ``rel``."""
        keys, answers = self._sorted[side]
        query = entity * self.num_relations + rel
        start = torch.searchsorted(keys, query)
        counts = torch.searchsorted(keys, query, right=True) - start
        ptr = torch.zeros(query.numel() + 1, dtype=torch.long, device=query.device)
        ptr[1:] = counts.cumsum(0)
        rows = csr_rows(ptr, int(ptr[-1]))  # the one host synchronisation: the lists' size
        offset = torch.arange(rows.numel(), device=query.device) - ptr[rows]
        return ptr, answers[start[rows] + offset]
