"""Known-answer lists for filtered ranking and prediction."""
from typing import Tuple, Union

import torch
from torch import Tensor

from mmkgc_pyg.data.kg import TripleIndex, sorted_contains
from mmkgc_pyg.errors import InvalidArgumentError
from mmkgc_pyg.score_blocks import csr_rows


class FilterIndex:
    r"""All known answers of ``(entity, relation, ?)`` and ``(?, relation, entity)``
    queries, looked up on the device without Python loops.

    The known triples are held as the sorted keys of a
    :class:`~mmkgc_pyg.data.kg.TripleIndex`: the answers of the tail query
    :math:`q = h R + r` are the keys :math:`qN + t` in :math:`[qN, (q + 1) N)` of its
    ``forward`` keys, those of a head query the same range of its ``inverse`` keys. A
    batch of queries finds its ranges by binary search and gathers them into CSR lists
    (``ptr``, ``idx``): the answers of query ``b`` are ``idx[ptr[b]:ptr[b + 1]]``.

    Args:
        known_triples (torch.Tensor or TripleIndex): ``[T, 3]`` (head, relation, tail),
            duplicates removed; or their index, e.g. a training index extended by
            :meth:`TripleIndex.union <mmkgc_pyg.data.kg.TripleIndex.union>` with the valid
            and test triples, so that the training triples are not sorted again.
        num_relations (int): number of relations.
    """

    def __init__(self, known_triples: Union[Tensor, TripleIndex], num_relations: int):
        if isinstance(known_triples, TripleIndex):
            if known_triples.num_relations != num_relations:
                raise InvalidArgumentError(f"FilterIndex: expected an index of {num_relations} "
                                           f"relations, got {known_triples.num_relations}")
            index = known_triples
        else:
            # Any N above the largest entity id makes injective keys.
            num_entities = int(known_triples[:, [0, 2]].max()) + 1 if len(known_triples) else 1
            index = TripleIndex(known_triples, num_entities, num_relations)
        self.num_relations = num_relations
        self.num_entities = index.num_entities
        self._keys = {"tail": index.forward, "head": index.inverse}

    def to(self, device) -> "FilterIndex":
        self._keys = {side: keys.to(device) for side, keys in self._keys.items()}
        return self

    def answers(self, entity: Tensor, rel: Tensor, side: str) -> Tuple[Tensor, Tensor]:
        """CSR lists of the known ``side`` entities (``"tail"`` or ``"head"``) of each
        query built from ``entity`` (the other end) and ``rel``."""
        keys, n = self._keys[side], self.num_entities
        first = (entity * self.num_relations + rel) * n
        start = torch.searchsorted(keys, first)
        counts = torch.searchsorted(keys, first + n) - start
        ptr = torch.zeros(first.numel() + 1, dtype=torch.long, device=first.device)
        ptr[1:] = counts.cumsum(0)
        rows = csr_rows(ptr, int(ptr[-1]))  # the one host synchronisation: the lists' size
        offset = torch.arange(rows.numel(), device=first.device) - ptr[rows]
        return ptr, keys[start[rows] + offset] % n

    def contains(self, entity: Tensor, rel: Tensor, answer: Tensor, side: str) -> Tensor:
        """Whether ``answer`` is a known ``side`` entity of the query built from
        ``entity`` and ``rel`` (broadcast together): one binary search each, without
        gathering the answer lists."""
        n = self.num_entities
        keys = (entity * self.num_relations + rel) * n + answer
        return sorted_contains(self._keys[side], keys) & (answer < n)
