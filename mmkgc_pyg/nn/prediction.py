"""Link prediction by name: the most plausible answers of one query of a trained model,
as entity names and scores.

:meth:`MMKGCModel.predict <mmkgc_pyg.nn.MMKGCModel.predict>` and ``python -m
mmkgc_pyg.predict`` both answer through :func:`predict_by_name`, so a name that is not
in the model gets the same close-name suggestions in Python and on the command line.
"""
import difflib
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Union

import torch
from torch import Tensor

from mmkgc_pyg.evaluation.filtering import FilterIndex
from mmkgc_pyg.errors import (AmbiguousNameError, InvalidArgumentError, NonFiniteModelError,
                              UnknownNameError)
def lookup(name: str, names: Sequence[str], argument: str, kind: str) -> int:
    """The id of ``name`` in ``names``; :class:`UnknownNameError` (with close names) when
    it is not there, :class:`AmbiguousNameError` when several share it. ``argument`` and
    ``kind`` (``"an entity"``, ``"a relation"``) word the error."""
    ids = [i for i, n in enumerate(names) if n == name]
    if not ids:
        close = difflib.get_close_matches(name, list(names), n=3)
        raise UnknownNameError(argument, name, kind, close)
    if len(ids) > 1:
        raise AmbiguousNameError(argument, name, ids)
    return ids[0]


@dataclass
class Prediction:
    """One answer of a query: its ``rank`` (1 = most plausible), the ``entity`` name and
    ``id``, the model's ``score`` (higher = more plausible) and whether it completes one
    of the ``known`` triples given to :func:`predict_by_name`."""
    rank: int
    entity: str
    id: int
    score: float
    known: bool

    def to_dict(self) -> Dict:
        return asdict(self)


@torch.no_grad()
def predict_by_name(model, *, relation: str, head: Optional[str] = None,
                    tail: Optional[str] = None, k: int = 10,
                    known: Union[Tensor, FilterIndex, None] = None,
                    filter: bool = False) -> List[Prediction]:
    """The ``k`` most plausible tails of ``(head, relation, ?)`` or heads of ``(?,
    relation, tail)``, best first, by the names in ``model.entity_names`` and
    ``model.relation_names``.

    Args:
        model (MMKGCModel): a model with names (e.g. from
            :func:`~mmkgc_pyg.load_checkpoint`).
        relation (str): the relation's name.
        head (str, optional): the head's name: predict tails (give ``head`` or ``tail``).
        tail (str, optional): the tail's name: predict heads.
        k (int): the number of answers.
        known (torch.Tensor or FilterIndex, optional): known triples ``[T, 3]`` (head,
            relation, tail), e.g. the training triples; answers completing one are marked
            :attr:`Prediction.known`.
        filter (bool): leave the known answers out (then fewer than ``k`` answers come
            back when fewer than ``k`` entities remain).

    Raises:
        UnknownNameError: a name that is not the model's (with close names).
        NonFiniteModelError: the model's parameters hold NaN or infinity (NaN scores
            would be left out or come first, silently).
        ValueError: neither or both of ``head`` and ``tail``, ``k < 1``, a model without
            names, or ``filter`` without ``known``.
    """
    if (head is None) == (tail is None):
        raise InvalidArgumentError("predict: expected exactly one of head= and tail=")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InvalidArgumentError(f"predict: k={k!r}: expected a positive integer")
    if filter and known is None:
        raise InvalidArgumentError("predict: filter=True needs known= (the triples to leave out)")
    if model.entity_names is None or model.relation_names is None:
        raise InvalidArgumentError("predict: the model has no entity_names/relation_names (set "
                                   "them, or load a trained model with mmkgc_pyg.load_checkpoint)")
    if not torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all():
        raise NonFiniteModelError("the model's parameters hold NaN or infinite values: its "
                                  "answers would be meaningless")
    side, argument, given = ("tail", "head", head) if head is not None else ("head", "tail", tail)
    device = model.node_emb.weight.device
    entity = torch.tensor([lookup(given, model.entity_names, argument, "an entity")],
                          device=device)
    rel = torch.tensor([lookup(relation, model.relation_names, "relation", "a relation")],
                       device=device)
    known_ids, exclude = set(), None
    if known is not None:
        index = known if isinstance(known, FilterIndex) else FilterIndex(known,
                                                                          model.num_relations)
        ptr, idx = index.to(device).answers(entity, rel, side)
        known_ids, exclude = set(idx.tolist()), ((ptr, idx) if filter else None)
    k = min(k, model.num_nodes)
    if side == "tail":
        scores, ids = model.predict_tails(entity, rel, k, exclude)
    else:
        scores, ids = model.predict_heads(rel, entity, k, exclude)
    # -inf marks filtered entities that pad the list when fewer than k remain.
    return [Prediction(rank, model.entity_names[i], i, s, i in known_ids)
            for rank, (s, i) in enumerate(zip(scores[0].tolist(), ids[0].tolist()), 1)
            if s > float("-inf")]
