"""The distinct entities of a batch, in a buffer of static size."""
from typing import Tuple

import torch
from torch import Tensor


def touched_entities(ids: Tensor, num_entities: int) -> Tuple[Tensor, Tensor, Tensor]:
    r"""The distinct ids among ``ids`` and each id's position among them, without a host
    synchronisation (so that a step stays capturable in a CUDA graph).

    The number of distinct ids depends on the data, which would need a sync to size an
    output; instead the output has the static size :math:`\min(|ids|, N)`, an upper
    bound: it holds the distinct ids in increasing order, and the slots past them repeat
    the largest id (padding, embedded but never addressed), so it stays sorted. One sort,
    a cumulative sum and a scatter.

    Returns:
        ``(entities [min(len(ids), N)], position [len(ids)], count)`` with
        ``entities[position] == ids`` and ``count`` (a 0-d tensor) the number of distinct
        ids, i.e. of leading entries of ``entities`` that are not padding.
    """
    size = min(ids.numel(), num_entities)
    sorted_ids, order = torch.sort(ids)
    first = torch.ones_like(sorted_ids, dtype=torch.bool)
    first[1:] = sorted_ids[1:] != sorted_ids[:-1]
    slot = torch.cumsum(first, 0) - 1
    # Equal ids write equal values to a slot: the result does not depend on their order.
    entities = sorted_ids[-1:].expand(size).clone().scatter_(0, slot, sorted_ids)
    position = torch.empty_like(slot)
    position[order] = slot
    count = slot[-1] + 1 if slot.numel() else slot.new_zeros(())
    return entities, position, count
