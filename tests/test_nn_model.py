import pytest
import torch
from torch_geometric.nn.kge.loader import KGTripletLoader

from utils import random_kg
from mmkgc_pyg.nn import MAT, MMKGCModel


@pytest.fixture
def model():
    torch.manual_seed(0)
    data = random_kg()
    return MMKGCModel(30, 4, 8, {m: data.features[m] for m in data.modalities}, data.masks)


def test_bulk_scores_agree_with_triple_scores(model):
    head, rel = torch.tensor([0, 4, 9]), torch.tensor([1, 0, 3])
    tails = model.score_tails(head, rel)
    heads = model.score_heads(rel, head)
    assert tails.shape == heads.shape == (3, 30)
    everyone = torch.arange(30)
    for b in range(3):
        expected = model.score_triples(head[b].repeat(30), rel[b].repeat(30), everyone)
        torch.testing.assert_close(tails[b], expected, atol=1e-5, rtol=1e-5)
        expected = model.score_triples(everyone, rel[b].repeat(30), head[b].repeat(30))
        torch.testing.assert_close(heads[b], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(head, rel, head), model.score_triples(head, rel, head))


def test_all_entity_scoring_fuses_each_entity_once(model, monkeypatch):
    calls = []
    project = model.adamf.project
    monkeypatch.setattr(model.adamf, "project",
                        lambda s, x: calls.append(s.size(0)) or project(s, x))
    model.score_tails(torch.arange(17) % 30, torch.zeros(17, dtype=torch.long))
    assert calls == [30]


def test_missing_modalities_fall_back_to_structure(model):
    joint, weights = model.entity_embeddings()
    bare = ~model.fusion_mask[:, 1:].any(1)
    assert bare.any()
    torch.testing.assert_close(joint[bare], model.node_emb.weight[bare])
    assert torch.equal(weights[:, 1:] == 0, ~model.fusion_mask[:, 1:])
    hidden = model.build_fusion_mask({m: torch.zeros(30, dtype=torch.bool)
                                      for m in model.modalities})
    joint, _ = model.entity_embeddings(fusion_mask=hidden)
    torch.testing.assert_close(joint, model.node_emb.weight)


def test_structure_only_model_is_plain_kge():
    model = MMKGCModel(12, 3, 6)
    assert model.adamf is None
    joint, weights = model.entity_embeddings()
    assert torch.equal(joint, model.node_emb.weight) and weights.shape == (12, 1)
    assert model.modality_names == ["structure"]


def test_mat_fakes_route_gradients(model):
    mat = MAT(model.modalities, model.hidden_channels, generator_channels=16)
    index = torch.tensor([1, 2, 3])
    mat(model, index, train_generators=True).sum().backward()
    assert model.node_emb.weight.grad is None
    assert all(p.grad is not None for p in mat.parameters())
    model.zero_grad(set_to_none=True)
    mat.zero_grad(set_to_none=True)
    mat(model, index, train_generators=False).sum().backward()
    assert model.node_emb.weight.grad is not None
    assert all(p.grad is None for p in mat.parameters())


def test_pyg_kge_interface(model):
    head, rel, tail = torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([2, 3])
    loss = model.loss(head, rel, tail, num_negatives=4, adv_temperature=1.0)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert model.node_emb.weight.grad is not None
    assert isinstance(model.loader(head, rel, tail, batch_size=1), KGTripletLoader)
    with pytest.raises(ValueError, match="scorer"):
        MMKGCModel(3, 1, 4, scorer="nope")
