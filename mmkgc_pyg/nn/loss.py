"""Sigmoid loss with self-adversarial negative weighting (RotatE, Sun et al. 2019)."""
import torch
import torch.nn.functional as F
from torch import Tensor

from mmkgc_pyg.errors import InvalidArgumentError


def self_adversarial_sigmoid_loss(pos_scores: Tensor, neg_scores: Tensor,
                                  adv_temperature: float) -> Tensor:
    r"""Self-adversarial sigmoid loss of :math:`B` positives and their negatives.

    .. math::
        \mathcal{L} = -\frac{1}{2} \Big[ \frac{1}{B} \sum_b \log\sigma(f^+_b)
        + \frac{1}{B'} \sum_{b'} \sum_k w_{b'k} \log\sigma(-f^-_{b'k}) \Big],
        \qquad w_{b'k} = \mathrm{softmax}_k(\alpha f^-_{b'k})

    ``neg_scores`` is ``[B, K]`` (:math:`B' = B`: the :math:`K` negatives of each
    positive) or ``[1, K]`` (:math:`B' = 1`: one pool of negatives shared by the whole
    batch, weighted by one softmax across it, as the reference weighs MAT's fake
    triples). The weights :math:`w` are detached: they choose *which* negatives to push
    down (the hard ones) but carry no gradient themselves. :math:`\alpha = 0` weighs the
    negatives of a row uniformly; with :math:`K = 1` the weight is 1.

    Args:
        pos_scores: Scores of the positives, shape ``[B]`` (higher = more plausible).
        neg_scores: Scores of the negatives, shape ``[B, K]`` or ``[1, K]``.
        adv_temperature: The adversarial temperature :math:`\alpha`.

    Returns:
        The scalar loss.
    """
    if pos_scores.dim() != 1 or pos_scores.numel() == 0:
        raise InvalidArgumentError(f"self_adversarial_sigmoid_loss: pos_scores: expected shape [B] "
                                   f"with B >= 1, got {tuple(pos_scores.shape)}")
    if (neg_scores.dim() != 2 or neg_scores.size(0) not in (1, pos_scores.size(0))
            or neg_scores.size(1) == 0):
        raise InvalidArgumentError(f"self_adversarial_sigmoid_loss: neg_scores: expected shape "
                                   f"[{pos_scores.size(0)}, K] or [1, K] with K >= 1, "
                                   f"got {tuple(neg_scores.shape)}")
    weights = torch.softmax(adv_temperature * neg_scores.detach(), dim=-1)
    # logsigmoid, not log(sigmoid(.)): sigmoid underflows to 0 for scores around -100.
    pos_term = F.logsigmoid(pos_scores).mean()
    neg_term = (weights * F.logsigmoid(-neg_scores)).sum(dim=-1).mean()
    return -0.5 * (pos_term + neg_term)
