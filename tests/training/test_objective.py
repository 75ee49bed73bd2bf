"""The AdaMF-MAT objective: MAT's fakes, both weightings of its term (against values
computed by hand), where each update's gradients go."""
import math

import pytest
import torch

from utils import random_kg
from mmkgc_pyg.nn import MAT, MMKGCModel, self_adversarial_sigmoid_loss
from mmkgc_pyg.training.objective import (GeneratorLoss, ModelLoss, embed_batch, fake_scores,
                                         mat_term)


@pytest.fixture
def parts():
    torch.manual_seed(0)
    data = random_kg()
    model = MMKGCModel(30, 4, 4, features=data.features, masks=data.masks, margin=6.0)
    mat = MAT(model.modalities, model.interaction.entity_channels, generator_channels=16)
    return model, mat, data.train[:8]


def log_sigmoid(x):
    return -math.log1p(math.exp(-x))


def test_mat_term_by_hand():
    positive = [1.0, 2.0]
    fakes = [[0.0, 1.0], [0.5, -0.5], [2.0, 0.0]]
    alpha = 2.0
    pos = -0.5 * sum(log_sigmoid(p) for p in positive) / 2
    # per positive: each fake is its positive's only negative (weight 1), mean over the batch
    per_positive = sum(pos - 0.5 * sum(log_sigmoid(-f) for f in fake) / 2 for fake in fakes)
    # reference: one softmax over the batch's fakes of a kind, a weighted sum
    reference = 0.0
    for fake in fakes:
        e = [math.exp(alpha * f) for f in fake]
        reference += pos - 0.5 * sum(w / sum(e) * log_sigmoid(-f) for w, f in zip(e, fake))
    p = torch.tensor(positive, dtype=torch.float64)
    f = [torch.tensor(x, dtype=torch.float64) for x in fakes]
    assert mat_term(p, f, alpha, reference=False).item() == pytest.approx(per_positive, rel=1e-12)
    assert mat_term(p, f, alpha, reference=True).item() == pytest.approx(reference, rel=1e-12)
    assert reference != pytest.approx(per_positive)


def test_fake_scores_follow_the_method(parts):
    model, mat, batch = parts
    head, rel, tail = batch.unbind(1)
    joint = model.entity_embeddings()
    rng = torch.Generator().manual_seed(3)
    fakes = fake_scores(model, mat, rel, model.node_emb(head), model.node_emb(tail),
                        joint[head], joint[tail], rng, "model")
    # A fake is AdaMF over the structure and every generated modality, all present.
    rng.manual_seed(3)
    fused = []
    for index in (head, tail):
        struct = model.node_emb(index)
        generated = [g(struct, rng) for g in mat.generators.values()]
        fused.append(model.adamf.fuse(torch.stack([struct, *generated], 1)))
    fake_head, fake_tail = fused
    r = model.rel_emb(rel)
    expected = [model.interaction(fake_head, r, joint[tail]),
                model.interaction(joint[head], r, fake_tail),
                model.interaction(fake_head, r, fake_tail)]
    for got, want in zip(fakes, expected):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("weighting", ["reference", "per-positive"])
def test_model_loss_is_the_method_loss_plus_mu_mat(parts, weighting):
    model, mat, batch = parts
    head, rel, tail = batch.unbind(1)
    candidates = torch.randint(30, (8, 6))
    corrupt_head = torch.rand(8) < 0.5
    rows = embed_batch(model, head, tail, candidates)
    loss = ModelLoss(model, 2.0, mu=0.7, mat_loss=weighting)(
        rows, rel, corrupt_head, mat, torch.Generator().manual_seed(5))
    scores = model.candidate_scores(head, rel, tail, candidates, corrupt_head)
    joint = model.entity_embeddings()
    fakes = fake_scores(model, mat, rel, model.node_emb(head), model.node_emb(tail),
                        joint[head], joint[tail], torch.Generator().manual_seed(5), "model")
    expected = self_adversarial_sigmoid_loss(scores[:, 0], scores[:, 1:], 2.0) + 0.7 * mat_term(
        scores[:, 0], fakes, 2.0, weighting == "reference")
    torch.testing.assert_close(loss, expected)
    without_mat = ModelLoss(model, 2.0, mu=0.0)(rows, rel, corrupt_head, mat)
    torch.testing.assert_close(without_mat,
                               self_adversarial_sigmoid_loss(scores[:, 0], scores[:, 1:], 2.0))


@pytest.mark.parametrize("weighting", ["reference", "per-positive"])
def test_model_loss_gradients_skip_only_the_generators_weights(parts, weighting):
    """The model's step forms no gradient of the generators' weights (it would be
    discarded); the model's gradients are exactly those of the loss computed with them
    (the reference's route through the generators included)."""
    model, mat, batch = parts
    head, rel, tail = batch.unbind(1)
    candidates = torch.randint(30, (8, 4), generator=torch.Generator().manual_seed(2))
    corrupt_head = torch.rand(8, generator=torch.Generator().manual_seed(3)) < 0.5
    rows = embed_batch(model, head, tail, candidates)
    ModelLoss(model, 2.0, mu=0.5, mat_loss=weighting)(
        rows, rel, corrupt_head, mat, torch.Generator().manual_seed(4)).backward()
    assert all(p.grad is None for p in mat.parameters())
    fast = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    # The same loss with the generators' weights in the graph.
    scores = model.candidate_scores(head, rel, tail, candidates, corrupt_head)
    joint = model.entity_embeddings()
    reference = weighting == "reference"
    fakes = fake_scores(model, mat, rel, model.node_emb(head), model.node_emb(tail),
                        joint[head], joint[tail], torch.Generator().manual_seed(4),
                        "both" if reference else "model")
    (self_adversarial_sigmoid_loss(scores[:, 0], scores[:, 1:], 2.0)
     + 0.5 * mat_term(scores[:, 0], fakes, 2.0, reference)).backward()
    assert all((p.grad is not None) == reference for p in mat.parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(fast[name], p.grad, rtol=1e-6, atol=1e-7, msg=name)


def test_generator_loss_trains_only_the_generators(parts):
    model, mat, batch = parts
    loss = GeneratorLoss(mat, 2.0)(batch, model, torch.Generator().manual_seed(1))
    loss.backward()
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None for p in mat.parameters())
    assert all(p.requires_grad for p in model.parameters())  # unfrozen again


def test_bad_weighting_raises(parts):
    with pytest.raises(ValueError, match="mat_loss"):
        ModelLoss(parts[0], 2.0, mat_loss="average")
