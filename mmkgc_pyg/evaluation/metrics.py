"""Rank-based link prediction metrics."""
from typing import Dict

import torch
from torch import Tensor

HITS_AT = (1, 3, 10)


def rank_metrics(ranks: Tensor) -> Dict[str, float]:
    """MRR, MR and Hits@k of 1-based (possibly fractional, realistic) ranks; ``None``
    (JSON ``null``) for no ranks at all, e.g. an empty relation category."""
    ranks = ranks.double()
    if ranks.numel() == 0:
        return {"mrr": None, "mr": None, **{f"hits@{k}": None for k in HITS_AT}, "count": 0}
    return {
        "mrr": ranks.reciprocal().mean().item(),
        "mr": ranks.mean().item(),
        **{f"hits@{k}": (ranks <= k).double().mean().item() for k in HITS_AT},
        "count": ranks.numel(),
    }


def direction_metrics(head_ranks: Tensor, tail_ranks: Tensor) -> Dict:
    """Metrics over both directions (top level) and per direction (``head``, ``tail``)."""
    return {
        **rank_metrics(torch.cat([head_ranks, tail_ranks])),
        "head": rank_metrics(head_ranks),
        "tail": rank_metrics(tail_ranks),
    }
