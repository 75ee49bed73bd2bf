r"""The AdaMF-MAT objective: the model update's loss and the generator update's loss,
each a module owning the parameters it updates (so that
:class:`~torch.nn.parallel.DistributedDataParallel` can wrap either).

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
"""
from contextlib import contextmanager
from typing import List, Optional

import torch
from torch import Tensor

from mmkgc_pyg.errors import InvalidArgumentError
from mmkgc_pyg.nn.loss import self_adversarial_sigmoid_loss
from mmkgc_pyg.nn.mat import MAT
from mmkgc_pyg.nn.model import MMKGCModel


@contextmanager
def frozen(module: torch.nn.Module):
    """Builds no graph through ``module``'s parameters (so no gradient reaches them)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def fake_scores(model: MMKGCModel, mat: MAT, batch: Tensor, real_head: Tensor,
                real_tail: Tensor, rng: Optional[torch.Generator], grad_to: str) -> List[Tensor]:
    """Scores ``[B]`` of MAT's three adversarial versions of each positive: fake head,
    fake tail, both fake (fakes of the heads are drawn first, then of the tails)."""
    head, rel, tail = batch.unbind(1)
    fake_head = mat(model, head, rng, grad_to)
    fake_tail = mat(model, tail, rng, grad_to)
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


class ModelLoss(torch.nn.Module):
    """The model update's loss: positives against their candidates' negatives, plus
    ``mu`` times MAT's term when ``mat`` is given and ``mu > 0``.

    Args:
        model: the model (its parameters are the ones this loss updates).
        adv_temperature: the self-adversarial temperature :math:`\\alpha`.
        mu: MAT's weight.
        mat_loss: ``"reference"`` or ``"per-positive"`` (module docstring).
    """

    def __init__(self, model: MMKGCModel, adv_temperature: float, mu: float = 0.0,
                 mat_loss: str = "reference"):
        super().__init__()
        if mat_loss not in ("reference", "per-positive"):
            raise InvalidArgumentError(f"mat_loss={mat_loss!r}: expected 'reference' or "
                                       f"'per-positive'")
        self.model = model
        self.adv_temperature = adv_temperature
        self.mu = mu
        self.mat_loss = mat_loss

    def forward(self, batch: Tensor, candidates: Tensor, corrupt_head: Tensor,
                mat: Optional[MAT] = None, rng: Optional[torch.Generator] = None) -> Tensor:
        """``candidates [B, 1 + K]``: the true entity of the corrupted side, then the
        negatives (from :class:`~mmkgc_pyg.training.NegativeSampler`)."""
        head, rel, tail = batch.unbind(1)
        # Only the entities this batch names are embedded (all when it names as many).
        joint, (head_at, tail_at, candidates_at) = self.model.touched_embeddings(
            head, tail, candidates)
        scores = self.model.candidate_scores(head_at, rel, tail_at, candidates_at,
                                             corrupt_head, joint)
        positive = scores[:, 0]
        loss = self_adversarial_sigmoid_loss(positive, scores[:, 1:], self.adv_temperature)
        if mat is None or self.mu == 0:
            return loss
        reference = self.mat_loss == "reference"
        fakes = fake_scores(self.model, mat, batch, joint[head_at], joint[tail_at], rng,
                            "both" if reference else "model")
        return loss + self.mu * mat_term(positive, fakes, self.adv_temperature, reference)


class GeneratorLoss(torch.nn.Module):
    """The generators' loss: their fakes should score like the real positives,
    re-scored by the model just updated; the model is frozen meanwhile.

    Args:
        mat: the generators (the parameters this loss updates).
        adv_temperature: the self-adversarial temperature (each fake has one
            "negative", its positive, so it only matters through that weight of 1).
    """

    def __init__(self, mat: MAT, adv_temperature: float):
        super().__init__()
        self.mat = mat
        self.adv_temperature = adv_temperature

    def forward(self, batch: Tensor, model: MMKGCModel,
                rng: Optional[torch.Generator] = None) -> Tensor:
        head, rel, tail = batch.unbind(1)
        with torch.no_grad():
            joint = model.entity_embeddings(torch.cat([head, tail]))
            real_head, real_tail = joint.split(head.numel())
            positive = model.interaction(real_head, model.rel_emb(rel), real_tail)
        with frozen(model):
            fakes = fake_scores(model, self.mat, batch, real_head, real_tail, rng, "generators")
        return sum(self_adversarial_sigmoid_loss(fake, positive[:, None], self.adv_temperature)
                   for fake in fakes)
