"""Filtered link prediction: rank every test triple's head and tail among all entities."""
from typing import Dict, Optional

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mmkgc_pyg.data.kg import triple_keys
from mmkgc_pyg.errors import UserInputError
from mmkgc_pyg.evaluation.filtering import FilterIndex
from mmkgc_pyg.evaluation.metrics import direction_metrics

RANK_TYPE = "realistic"


@torch.no_grad()
def filtered_ranks(model, triples: Tensor, filter_index: FilterIndex,
                   batch_size: int = 1024, fusion_mask: Optional[Tensor] = None,
                   progress: bool = False):
    r"""Realistic filtered ranks of the true head and tail of each triple.

    Each entity's joint embedding is computed once; then every chunk of queries is ranked
    against all entities at once by the scorer (a fused Triton kernel for RotatE on
    CUDA). The realistic rank is
    :math:`1 + \#\{\text{better}\} + \#\{\text{tied}\} / 2` after removing the other
    known answers (train, valid and test).

    Returns:
        ``(head_ranks, tail_ranks)``, each ``[T]`` float.
    """
    device = model.node_emb.weight.device
    triples = triples.to(device)
    joint, _ = model.entity_embeddings(fusion_mask=fusion_mask)
    scorer = model.scorer
    head_ranks, tail_ranks = [], []
    for start in tqdm(range(0, triples.size(0), batch_size), disable=not progress,
                      desc="ranking", leave=False):
        h, r, t = triples[start:start + batch_size].unbind(1)
        ptr, idx = filter_index.answers(h, r, "tail")
        tail_ranks.append(scorer.filtered_ranks(scorer.tail_query(joint[h], r), joint, t,
                                                ptr, idx))
        ptr, idx = filter_index.answers(t, r, "head")
        head_ranks.append(scorer.filtered_ranks(scorer.head_query(r, joint[t]), joint, h,
                                                ptr, idx))
    empty = joint.new_zeros(0)
    return torch.cat(head_ranks or [empty]), torch.cat(tail_ranks or [empty])


def evaluate_link_prediction(model, triples: Tensor, filter_index: FilterIndex,
                             batch_size: int = 1024,
                             categories: Optional[Dict[str, Tensor]] = None,
                             fusion_mask: Optional[Tensor] = None,
                             progress: bool = False) -> Dict:
    """Filtered realistic MRR, MR and Hits@1/3/10 over both directions, per direction
    (``head``, ``tail``) and, when ``categories`` maps a relation category
    (``1-1``, ``1-n``, ``n-1``, ``n-n``) to its triples, per category."""
    was_training = model.training
    model.eval()
    head_ranks, tail_ranks = filtered_ranks(model, triples, filter_index, batch_size,
                                            fusion_mask, progress)
    metrics = {"rank_type": RANK_TYPE, **direction_metrics(head_ranks, tail_ranks)}
    if categories:
        # Rank once; a category selects its triples' ranks by membership.
        keys = triple_keys(triples.to(head_ranks.device), model.num_nodes, model.num_relations)
        metrics["categories"] = {}
        for name, members in categories.items():
            member_keys = triple_keys(members.to(keys.device), model.num_nodes,
                                      model.num_relations)
            selected = torch.isin(keys, member_keys)
            metrics["categories"][name] = direction_metrics(head_ranks[selected],
                                                            tail_ranks[selected])
    model.train(was_training)
    return metrics


def missing_modality_mask(model, dataset, rate: float, seed: int) -> Optional[Tensor]:
    """The fusion mask of the modality-missing setting: all modalities of a random
    fraction ``rate`` of entities hidden (None when ``rate`` is 0)."""
    if rate == 0:
        return None
    if model.adamf is None:
        raise UserInputError("--drop-modality-rate: expected a model with modalities")
    dropped = dataset.drop_modalities(rate, torch.Generator().manual_seed(seed))
    return model.build_fusion_mask(dropped.masks)
