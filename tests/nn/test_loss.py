import math

import pytest
import torch

from mmkgc_pyg.nn.loss import self_adversarial_sigmoid_loss


def _log_sigmoid(x):
    return -math.log1p(math.exp(-x))


def _reference(pos, neg, alpha):
    """Plain-Python float64 evaluation of the formula in method.md."""
    pos_term = sum(_log_sigmoid(p) for p in pos) / len(pos)
    neg_term = 0.0
    for row in neg:
        exp = [math.exp(alpha * f) for f in row]
        neg_term += sum(e / sum(exp) * _log_sigmoid(-f) for e, f in zip(exp, row))
    return -0.5 * (pos_term + neg_term / len(neg))


@pytest.mark.parametrize("alpha", [0.0, 0.5, 2.0])
def test_matches_hand_computed_value(alpha):
    pos = [1.5, -0.25, 3.0]
    neg = [[0.5, -1.0], [2.0, 0.0], [-3.0, 1.25]]
    loss = self_adversarial_sigmoid_loss(torch.tensor(pos, dtype=torch.float64),
                                         torch.tensor(neg, dtype=torch.float64), alpha)
    assert loss.dtype == torch.float64 and loss.dim() == 0
    assert loss.item() == pytest.approx(_reference(pos, neg, alpha), rel=1e-12)


def test_zero_temperature_is_plain_mean_over_negatives():
    g = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(5, generator=g), torch.randn(5, 7, generator=g)
    expected = -0.5 * (torch.nn.functional.logsigmoid(pos).mean()
                       + torch.nn.functional.logsigmoid(-neg).mean())
    assert torch.allclose(self_adversarial_sigmoid_loss(pos, neg, 0.0), expected)


def test_adversarial_weights_carry_no_gradient():
    g = torch.Generator().manual_seed(1)
    b, k, alpha = 4, 6, 2.0
    pos = torch.randn(b, generator=g, dtype=torch.float64, requires_grad=True)
    neg = torch.randn(b, k, generator=g, dtype=torch.float64, requires_grad=True)
    self_adversarial_sigmoid_loss(pos, neg, alpha).backward()
    weights = torch.softmax(alpha * neg.detach(), dim=-1)
    # d/df log sigmoid(-f) = -sigmoid(f); d/df log sigmoid(f) = sigmoid(-f)
    assert torch.allclose(neg.grad, weights * torch.sigmoid(neg.detach()) / (2 * b))
    assert torch.allclose(pos.grad, -torch.sigmoid(-pos.detach()) / (2 * b))


@pytest.mark.parametrize("alpha", [0.0, 2.0])
def test_single_negative_is_the_mat_loss(alpha):
    g = torch.Generator().manual_seed(2)
    pos, fake = torch.randn(9, generator=g), torch.randn(9, 1, generator=g)
    expected = -0.5 * (torch.nn.functional.logsigmoid(pos).mean()
                       + torch.nn.functional.logsigmoid(-fake).mean())
    assert torch.allclose(self_adversarial_sigmoid_loss(pos, fake, alpha), expected)


@pytest.mark.parametrize("alpha", [0.0, 2.0])
def test_one_shared_pool_of_negatives(alpha):
    """``[1, K]`` negatives: one softmax across the pool, as the reference weighs MAT's
    batch of fakes (its term is a weighted sum over the pool, not a mean per positive)."""
    pos, pool = [0.5, -1.5, 2.0], [1.0, -0.5, 3.0, 0.25]
    loss = self_adversarial_sigmoid_loss(torch.tensor(pos, dtype=torch.float64),
                                         torch.tensor([pool], dtype=torch.float64), alpha)
    assert loss.item() == pytest.approx(_reference(pos, [pool], alpha), rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_extreme_scores_stay_finite(dtype):
    pos = torch.tensor([1e4, -1e4, 80.0, -80.0], dtype=dtype, requires_grad=True)
    neg = torch.tensor([[-1e4, 1e4], [1e4, 1e4], [-80.0, 50.0], [200.0, -200.0]], dtype=dtype,
                       requires_grad=True)
    loss = self_adversarial_sigmoid_loss(pos, neg, 2.0)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all()
    # Row terms: -log sigma(f+) = 0, 1e4, 0, 80 ; weighted -log sigma(-f-) = 1e4, 1e4, 50, 200.
    assert loss.float().item() == pytest.approx(0.5 * (1e4 + 80 + 2e4 + 250) / 4, rel=1e-2)


def test_perfectly_separated_scores_give_zero_loss():
    loss = self_adversarial_sigmoid_loss(torch.full((3,), 1e3), torch.full((3, 4), -1e3), 2.0)
    assert loss.item() == 0.0


@pytest.mark.parametrize("pos_shape, neg_shape, match", [
    ((3, 1), (3, 2), "pos_scores"),
    ((0,), (0, 2), "pos_scores"),
    ((3,), (3,), "neg_scores"),
    ((3,), (2, 2), "neg_scores"),
    ((3,), (3, 0), "neg_scores"),
])
def test_shape_errors(pos_shape, neg_shape, match):
    with pytest.raises(ValueError, match=match):
        self_adversarial_sigmoid_loss(torch.zeros(pos_shape), torch.zeros(neg_shape), 1.0)
