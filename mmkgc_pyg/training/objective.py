r"""The AdaMF-MAT objective: the model update's loss and the generator update's loss.

For a batch of positives :math:`(h, r, t)` with scores :math:`f^+`, filtered negatives
:math:`f^-`, and MAT's three adversarial triples (fake head, fake tail, both fake;
:class:`~mmkgc_pyg.nn.MAT`) with scores :math:`f^{\mathrm{fake}}_j`:

.. math::
    \mathcal{L}_{\mathrm{model}} = \mathcal{L}(f^+, f^-)
        + \mu \sum_{j=1}^{3} \mathcal{L}(f^+, f^{\mathrm{fake}}_j), \qquad
    \mathcal{L}_{\mathrm{gen}} = \sum_{j=1}^{3} \mathcal{L}(f^{\mathrm{fake}}_j, f^+),

with :math:`\mathcal{L}` the self-adversarial sigmoid loss. The model step's MAT term comes
in two weightings (``mat_loss``): ``"reference"``, as the paper's code computes it (the
batch's fakes of one kind form one pool weighed by a single softmax, and the gradient
reaches the structural embeddings through the generators), and ``"per-positive"`` (each
fake is its positive's only negative, weight 1; the generators' outputs are constants).
The :math:`K` negatives of a positive corrupt one side of it, or each its own side
(``negative_sides="per-negative"``, the reference's sampler); either way one softmax
weighs all :math:`K` of them.

A model step reads its entities through :class:`StepRows`: the structural and joint
embeddings of the entities the batch names, and where each id of the batch is among them
(:func:`embed_batch`). With ``leaves`` the rows are gathered once into tensors of a static
size whose gradients a lazy optimiser applies to the tables (the sparse step); otherwise
autograd carries the gradients to the tables (the dense step).
"""
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmkgc_pyg.errors import InvalidArgumentError
from mmkgc_pyg.nn.loss import self_adversarial_sigmoid_loss
from mmkgc_pyg.nn.mat import MAT
from mmkgc_pyg.nn.model import MMKGCModel
from mmkgc_pyg.nn.touched import touched_entities


@contextmanager
def frozen(module: torch.nn.Module):
    """Builds no graph for ``module``'s parameters (no gradient reaches them; gradients
    still flow through it to its inputs)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


@dataclass
class StepRows:
    """The entity rows a training step reads.

    Attributes:
        struct: structural embeddings ``[S, D]`` of the step's entities.
        joint: their joint (fused) embeddings ``[S, D]``.
        head, tail, candidates: the batch's ids as positions among the rows.
        entities: the entity id of each row (None when the rows are all entities in id
            order).
        count: how many leading rows are distinct entities (0-d tensor; the rest repeat
            one of them as padding); None with ``entities`` None.
        leaves: the gathered tables' rows whose gradients update the tables (``"node_emb"``
            and ``"features.<m>"``), empty for the dense step.
    """
    struct: Tensor
    joint: Tensor
    head: Tensor
    tail: Tensor
    candidates: Tensor
    entities: Optional[Tensor] = None
    count: Optional[Tensor] = None
    leaves: Optional[Dict[str, Tensor]] = None


def embed_batch(model: MMKGCModel, head: Tensor, tail: Tensor, candidates: Tensor,
                leaves: bool = False, union: Optional[Tensor] = None) -> StepRows:
    """The rows of the entities that ``head``, ``tail`` and ``candidates`` name.

    Dense (``leaves=False``): when the ids are at least as many as the entities, all
    entities are embedded once (no gather); else only the distinct ones, through
    autograd's gathers. Sparse (``leaves=True``): the distinct ids' rows of the structural
    and trainable feature tables are copied into leaf tensors of static size
    ``min(#ids, N)`` (:func:`~mmkgc_pyg.nn.touched.touched_entities`): no host
    synchronisation, so the step can be captured in a CUDA graph, and the tables' own
    gradients are never formed. ``union`` (sparse only) gives the rows instead as the
    distinct ids of a larger set holding the batch's (processes that share one set of
    rows)."""
    ids = torch.cat([head, tail, candidates.reshape(-1)])
    if not leaves and ids.numel() >= model.num_nodes:
        struct = model.node_emb.weight
        return StepRows(struct, model.entity_embeddings(), head, tail, candidates)
    if union is None:
        entities, position, count = touched_entities(ids, model.num_nodes)
    else:  # the rows are sorted (padding repeats the largest): find each id's first row
        entities, _, count = touched_entities(union, model.num_nodes)
        position = torch.searchsorted(entities, ids)
    head_at, tail_at, candidates_at = position.split(
        [head.numel(), tail.numel(), candidates.numel()])
    rows = StepRows(None, None, head_at, tail_at, candidates_at.view_as(candidates),
                    entities, count, {})
    if not leaves:
        rows.struct = model.node_emb(entities)
        rows.joint = (model.entity_embeddings(entities) if model.adamf is not None
                      else rows.struct)
        return rows
    rows.struct = rows.leaves["node_emb"] = model.node_emb.weight.detach()[entities] \
        .requires_grad_()
    if model.adamf is None:
        rows.joint = rows.struct
        return rows
    features = {}
    for name, table in model.features.items():
        features[name] = table.detach()[entities].requires_grad_(table.requires_grad)
        if table.requires_grad:
            rows.leaves[f"features.{name}"] = features[name]
    rows.joint = model.fuse_rows(rows.struct, features, model.fusion_mask[entities])
    return rows


def fake_scores(model: MMKGCModel, mat: MAT, rel: Tensor, head_struct: Tensor,
                tail_struct: Tensor, real_head: Tensor, real_tail: Tensor,
                rng: Optional[torch.Generator], grad_to: str) -> List[Tensor]:
    """Scores ``[B]`` of MAT's three adversarial versions of each positive: fake head,
    fake tail, both fake (fakes of the heads are drawn first, then of the tails), from the
    structural rows of the positives' heads and tails and their real joint rows."""
    fake_head = mat(head_struct, model.adamf, rng, grad_to)
    fake_tail = mat(tail_struct, model.adamf, rng, grad_to)
    rel_emb = model.rel_emb(rel)
    return [model.interaction(fake_head, rel_emb, real_tail),
            model.interaction(real_head, rel_emb, fake_tail),
            model.interaction(fake_head, rel_emb, fake_tail)]


def mat_term(positive: Tensor, fakes: List[Tensor], adv_temperature: float,
             reference: bool) -> Tensor:
    r""":math:`\sum_j \mathcal{L}(f^+, f^{\mathrm{fake}}_j)`: with ``reference`` each kind
    of fake forms one pool over the batch (one softmax across it), else each fake is its
    positive's only negative."""
    return sum(self_adversarial_sigmoid_loss(
        positive, fake[None, :] if reference else fake[:, None], adv_temperature)
        for fake in fakes)


class ModelLoss:
    r"""The model update's loss: positives against their candidates' negatives, plus
    ``mu`` times MAT's term when ``mat`` is given and ``mu > 0``.

    Args:
        model: the model.
        adv_temperature: the self-adversarial temperature :math:`\alpha`.
        mu: MAT's weight.
        mat_loss: ``"reference"`` or ``"per-positive"`` (module docstring).
    """

    def __init__(self, model: MMKGCModel, adv_temperature: float, mu: float = 0.0,
                 mat_loss: str = "reference"):
        if mat_loss not in ("reference", "per-positive"):
            raise InvalidArgumentError(f"mat_loss={mat_loss!r}: expected 'reference' or "
                                       "'per-positive'")
        self.model = model
        self.adv_temperature = adv_temperature
        self.mu = mu
        self.mat_loss = mat_loss

    def __call__(self, rows: StepRows, rel: Tensor, corrupt_head: Tensor,
                 mat: Optional[MAT] = None, rng: Optional[torch.Generator] = None) -> Tensor:
        """``rows`` from :func:`embed_batch` for the batch's heads, tails and candidates
        ``[B, 1 + K]`` (the true entity of the corrupted side, then the negatives, from
        :class:`~mmkgc_pyg.training.NegativeSampler`); ``rel`` the batch's relations;
        ``corrupt_head`` the side of each row ``[B]`` or of each candidate ``[B, 1 + K]``
        (see :meth:`~mmkgc_pyg.nn.MMKGCModel.candidate_scores`)."""
        scores = self.model.candidate_scores(rows.head, rel, rows.tail, rows.candidates,
                                             corrupt_head, rows.joint)
        positive = scores[:, 0]
        loss = self_adversarial_sigmoid_loss(positive, scores[:, 1:], self.adv_temperature)
        if mat is None or self.mu == 0:
            return loss
        reference = self.mat_loss == "reference"
        # The reference's gradient passes through the generators to the structure; the
        # generators' own gradients would be discarded, so they are not formed.
        with frozen(mat):
            fakes = fake_scores(self.model, mat, rel, F.embedding(rows.head, rows.struct),
                                F.embedding(rows.tail, rows.struct), rows.joint[rows.head],
                                rows.joint[rows.tail], rng, "both" if reference else "model")
        return loss + self.mu * mat_term(positive, fakes, self.adv_temperature, reference)


class GeneratorLoss:
    """The generators' loss: their fakes should score like the real positives,
    re-scored by the model just updated; the model is frozen meanwhile.

    Args:
        mat: the generators.
        adv_temperature: the self-adversarial temperature (each fake has one
            "negative", its positive, so it only matters through that weight of 1).
    """

    def __init__(self, mat: MAT, adv_temperature: float):
        self.mat = mat
        self.adv_temperature = adv_temperature

    def __call__(self, batch: Tensor, model: MMKGCModel,
                 rng: Optional[torch.Generator] = None) -> Tensor:
        head, rel, tail = batch.unbind(1)
        with torch.no_grad():
            joint = model.entity_embeddings(torch.cat([head, tail]))
            real_head, real_tail = joint.split(head.numel())
            positive = model.interaction(real_head, model.rel_emb(rel), real_tail)
            head_struct, tail_struct = model.node_emb(head), model.node_emb(tail)
        with frozen(model):
            fakes = fake_scores(model, self.mat, rel, head_struct, tail_struct, real_head,
                                real_tail, rng, "generators")
        return sum(self_adversarial_sigmoid_loss(fake, positive[:, None], self.adv_temperature)
                   for fake in fakes)
