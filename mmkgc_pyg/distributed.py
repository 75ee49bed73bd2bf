"""Which process of a ``torch.distributed`` group this is (training and evaluation split
their work by it)."""
from typing import Tuple

import torch.distributed as dist


def process_group() -> Tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
