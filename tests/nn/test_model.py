"""MMKGCModel: PyG's KGEModel contract, scoring paths, the fusion, MAT's fakes."""
import shutil
import sysconfig
from pathlib import Path

import pytest
import torch
from torch_geometric.nn.kge import KGEModel

from utils import random_kg
from mmkgc_pyg.nn import MAT, MMKGCModel


@pytest.fixture
def model():
    torch.manual_seed(0)
    data = random_kg()
    return MMKGCModel(30, 4, 4, features=data.features, masks=data.masks)


def test_pyg_constructor_and_tables():
    """PyG's argument order and meaning: hidden_channels are complex dimensions for the
    complex interactions (two reals each), real ones otherwise."""
    rotate = MMKGCModel(10, 3, 6, 12.0, False)
    assert rotate.node_emb.weight.shape == (10, 12) and rotate.rel_emb.weight.shape == (3, 6)
    transe = MMKGCModel(10, 3, 6, interaction="transe")
    assert transe.node_emb.weight.shape == (10, 6) and transe.rel_emb.weight.shape == (3, 6)
    complex_ = MMKGCModel(10, 3, 6, interaction="complex")
    assert complex_.node_emb.weight.shape == (10, 12) and complex_.rel_emb.weight.shape == (3, 12)
    sparse = MMKGCModel(10, 3, 6, sparse=True)
    sparse.node_emb(torch.tensor([1, 2])).sum().backward()
    assert sparse.node_emb.weight.grad.is_sparse
    with pytest.raises(ValueError, match="interaction"):
        MMKGCModel(3, 1, 4, interaction="nope")
    with pytest.raises(ValueError, match="num_nodes"):
        MMKGCModel(0, 1, 4)


def test_pyg_positional_order_margin_then_sparse():
    """``RotatE(N, R, H, margin)`` in PyG: the fourth positional argument is the margin;
    one of the wrong type fails at construction, not at the first loss."""
    model = MMKGCModel(100, 5, 8, 9.0)
    assert model.interaction.margin == 9.0 and model.sparse is False
    assert MMKGCModel(100, 5, 8, 9.0, True).sparse is True
    with pytest.raises(ValueError, match="sparse=9.0: expected a bool"):
        MMKGCModel(100, 5, 8, 12.0, 9.0)
    with pytest.raises(ValueError, match="margin=True"):
        MMKGCModel(100, 5, 8, True)
    with pytest.raises(TypeError):
        MMKGCModel(100, 5, 8, 9.0, False, {"visual": torch.zeros(100, 3)})


def test_bulk_scores_agree_with_triple_scores(model):
    head, rel = torch.tensor([0, 4, 9]), torch.tensor([1, 0, 3])
    tails = model.score_tails(head, rel)
    heads = model.score_heads(rel, head)
    assert tails.shape == heads.shape == (3, 30)
    everyone = torch.arange(30)
    for b in range(3):
        expected = model(head[b].repeat(30), rel[b].repeat(30), everyone)
        torch.testing.assert_close(tails[b], expected, atol=1e-5, rtol=1e-5)
        expected = model(everyone, rel[b].repeat(30), head[b].repeat(30))
        torch.testing.assert_close(heads[b], expected, atol=1e-5, rtol=1e-5)


def test_candidate_scores_pick_the_corrupted_side(model):
    head, rel, tail = torch.tensor([0, 5]), torch.tensor([2, 1]), torch.tensor([7, 3])
    candidates = torch.tensor([[7, 1, 2], [5, 4, 6]])
    corrupt_head = torch.tensor([False, True])
    scores = model.candidate_scores(head, rel, tail, candidates, corrupt_head)
    torch.testing.assert_close(scores[0], model(head[[0, 0, 0]], rel[[0, 0, 0]], candidates[0]))
    torch.testing.assert_close(scores[1], model(candidates[1], rel[[1, 1, 1]], tail[[1, 1, 1]]))


def test_candidate_scores_with_a_side_per_candidate(model):
    head, rel, tail = torch.tensor([0, 5]), torch.tensor([2, 1]), torch.tensor([7, 3])
    candidates = torch.tensor([[7, 1, 2], [3, 4, 6]])
    sides = torch.tensor([[False, True, False], [False, False, True]])
    scores = model.candidate_scores(head, rel, tail, candidates, sides)
    expected = torch.stack([model(torch.where(s, c, head[b]), rel[[b] * 3],
                                  torch.where(s, tail[b], c))
                            for b, (c, s) in enumerate(zip(candidates, sides))])
    torch.testing.assert_close(scores, expected)
    # A candidate's score is its own side's: the same as with one side for the row.
    rows = model.candidate_scores(head, rel, tail, candidates, torch.tensor([True, True]))
    torch.testing.assert_close(scores[sides], rows[sides])


def test_all_entity_scoring_fuses_each_entity_once(model, monkeypatch):
    calls = []
    project = model.adamf.project
    monkeypatch.setattr(model.adamf, "project",
                        lambda s, x: calls.append(s.size(0)) or project(s, x))
    model.score_tails(torch.arange(17) % 30, torch.zeros(17, dtype=torch.long))
    assert calls == [30]


def test_missing_modalities_fall_back_to_structure(model):
    joint, weights = model.entity_embeddings(return_attention_weights=True)
    bare = ~model.fusion_mask[:, 1:].any(1)
    assert bare.any()
    torch.testing.assert_close(joint[bare], model.node_emb.weight[bare])
    assert torch.equal(weights[:, 1:] == 0, ~model.fusion_mask[:, 1:])
    hidden = model.build_fusion_mask({m: torch.zeros(30, dtype=torch.bool)
                                      for m in model.modalities})
    torch.testing.assert_close(model.entity_embeddings(fusion_mask=hidden), model.node_emb.weight)


def test_one_initialisation_draws_the_tables_once():
    # Relations, then entities, each drawn once (RotatE: uniform phases and entries).
    torch.manual_seed(3)
    model = MMKGCModel(20, 5, 4, margin=6.0)
    torch.manual_seed(3)
    rotate = model.interaction
    rel = torch.empty(5, 4).uniform_(-rotate.phase_range, rotate.phase_range)
    bound = (6.0 + rotate.epsilon) / 8
    assert torch.equal(model.rel_emb.weight, rel)
    assert torch.equal(model.node_emb.weight, torch.empty(20, 8).uniform_(-bound, bound))
    torch.manual_seed(4)
    model.reset_parameters()  # draws again
    assert not torch.equal(model.rel_emb.weight, rel)


def test_feature_tables_are_own_copies_in_the_storage_dtype():
    data = random_kg()
    model = MMKGCModel(30, 4, 4, features=data.features, masks=data.masks)
    for m, x in data.features.items():
        table = model.features[m]
        assert torch.equal(table, x) and table.data_ptr() != x.data_ptr()
    half = MMKGCModel(30, 4, 4, features=data.features, feature_dtype=torch.bfloat16)
    assert half.features["visual"].dtype == torch.bfloat16


def test_built_on_the_device_it_is_constructed_on():
    # Under ``with torch.device(d)`` every table is allocated (and initialised) on d, and
    # the feature tables are copied there; build_model(..., device=d) builds it so.
    from mmkgc_pyg.training import TrainConfig
    from mmkgc_pyg.training.setup import build_model

    data = random_kg()
    model = build_model(data, TrainConfig(dim=4), device="meta")
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    assert "features.visual" in tensors and "fusion_mask" in tensors
    assert {t.device.type for t in tensors.values()} == {"meta"}
    assert model.entity_names == data.entity_names


def test_structure_only_model_is_plain_kge():
    model = MMKGCModel(12, 3, 6)
    assert model.adamf is None and model.modality_names == ["structure"]
    joint, weights = model.entity_embeddings(return_attention_weights=True)
    assert torch.equal(joint, model.node_emb.weight) and torch.equal(weights, torch.ones(12, 1))


def test_modality_order_is_the_features_order():
    data = random_kg()
    features = {"visual": data.features["visual"], "textual": data.features["textual"]}
    model = MMKGCModel(30, 4, 4, features=features, masks=data.masks)
    assert model.modality_names == ["structure", "visual", "textual"]
    assert data.modalities == ["textual", "visual"]  # a dataset keeps one (sorted) order
    assert list(data.features) == data.modalities


def test_mat_fakes_route_gradients(model):
    mat = MAT(model.modalities, model.interaction.entity_channels, generator_channels=16)
    index = torch.tensor([1, 2, 3])

    def grads(grad_to):
        model.zero_grad(set_to_none=True)
        mat.zero_grad(set_to_none=True)
        mat(model.node_emb(index), model.adamf, grad_to=grad_to).sum().backward()
        return (model.node_emb.weight.grad is not None,
                all(p.grad is not None for p in mat.parameters()))

    assert grads("generators") == (False, True)
    assert grads("model") == (True, False)
    assert grads("both") == (True, True)
    with pytest.raises(ValueError, match="grad_to"):
        mat(model.node_emb(index), model.adamf, grad_to="nobody")


def test_pyg_loss_and_loader(model):
    head, rel, tail = torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([2, 3])
    loss = model.loss(head, rel, tail, num_negatives=4, adv_temperature=1.0)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert model.node_emb.weight.grad is not None
    batches = list(model.loader(head, rel, tail, batch_size=1))
    assert len(batches) == 2 and all(len(b) == 3 for b in batches)


def test_test_matches_pygs_own_loop(model):
    """``test()`` gives what PyG's per-triple loop gives, in one fused pass."""
    data = random_kg()
    h, r, t = data.test.unbind(1)
    ours = model.test(h, r, t, batch_size=7, k=3, log=False)
    pyg = KGEModel.test(model, h, r, t, batch_size=7, k=3, log=False)
    assert ours == pytest.approx(pyg)


def test_filtered_test_gives_the_filtered_metrics(model):
    data = random_kg()
    h, r, t = data.test.unbind(1)
    metrics = model.test(h, r, t, log=False, filtered=True, known_triples=data.known_triples())
    raw = model.test(h, r, t, log=False)
    assert metrics["tail"]["count"] == len(data.test) and metrics["count"] == 2 * len(data.test)
    assert metrics["tail"]["mrr"] >= raw[1]  # filtering removes competitors
    with pytest.raises(ValueError, match="known_triples"):
        model.test(h, r, t, filtered=True)


@pytest.mark.parametrize("backend", [
    "aot_eager",  # the whole graph through AOTAutograd (custom ops by their fake tensors)
    pytest.param("inductor", marks=pytest.mark.skipif(
        not any(map(shutil.which, ("g++", "c++", "clang++")))
        or not Path(sysconfig.get_paths()["include"], "Python.h").exists(),
        reason="inductor on the CPU builds C++: needs a compiler and Python's headers")),
])
def test_compiles_with_torch_compile(model, backend):
    head, rel, tail = torch.tensor([0, 4, 9]), torch.tensor([1, 0, 3]), torch.tensor([2, 2, 5])
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    torch.testing.assert_close(compiled(head, rel, tail), model(head, rel, tail))
