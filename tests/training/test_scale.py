"""Mini-batches that touch few entities: only those are embedded, only their rows get
gradients and updates, and the result equals the all-entity path."""
import pytest
import torch

from utils import random_kg
from mmkgc_pyg.nn import MMKGCModel
from mmkgc_pyg.nn.touched import touched_entities
from mmkgc_pyg.training import TrainConfig, Trainer


@pytest.mark.parametrize("count, num_entities", [(0, 5), (1, 5), (40, 1000), (40, 7), (300, 64)])
def test_touched_entities(count, num_entities):
    ids = torch.randint(num_entities, (count,), generator=torch.Generator().manual_seed(count))
    entities, position, distinct_count = touched_entities(ids, num_entities)
    distinct = torch.unique(ids)
    assert int(distinct_count) == len(distinct)
    assert entities.shape == (min(count, num_entities),)
    assert torch.equal(entities[position], ids)
    assert torch.equal(entities[:len(distinct)], distinct)  # sorted, then padding
    padding = entities[len(distinct):]
    assert padding.numel() == 0 or bool((padding == ids.max()).all())


def model_pair(sparse=False, seed=0):
    data = random_kg(num_entities=200, num_train=400, seed=seed)
    torch.manual_seed(seed)
    model = MMKGCModel(200, 4, 4, sparse=sparse, features=data.features, masks=data.masks)
    return data, model


def test_a_few_touched_entities_give_the_all_entity_result():
    """Scores and gradients through the touched entities equal those through all."""
    data, model = model_pair()
    head, rel, tail = data.train[:6].unbind(1)
    candidates = torch.randint(200, (6, 4), generator=torch.Generator().manual_seed(1))
    corrupt = torch.tensor([True, False] * 3)
    calls = []
    project = model.adamf.project
    model.adamf.project = lambda s, x: calls.append(s.size(0)) or project(s, x)
    touched = model.candidate_scores(head, rel, tail, candidates, corrupt)
    assert calls == [36]  # 6 heads + 6 tails + 24 candidates, not 200 entities
    touched.square().sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    full = model.candidate_scores(head, rel, tail, candidates, corrupt,
                                  model.entity_embeddings())
    full.square().sum().backward()
    torch.testing.assert_close(touched, full)
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, msg=name)


def test_a_batch_naming_every_entity_fuses_all_entities_with_the_same_scores():
    """At least as many ids as entities (DB15K at the paper's batch): the dense model
    embeds all entities at once, as before touched entities existed; a sparse model
    (always the touched path) gives the same scores."""
    scores, whole = [], []
    for sparse in (False, True):
        data, model = model_pair(sparse)
        candidates = torch.randint(200, (6, 40), generator=torch.Generator().manual_seed(2))
        embed = model.entity_embeddings
        model.entity_embeddings = lambda *a, embed=embed, **k: (whole.append(not a)
                                                                or embed(*a, **k))
        scores.append(model.candidate_scores(*data.train[:6].unbind(1), candidates,
                                             torch.tensor([True, False] * 3)))
    assert whole == [True, False]  # 252 ids >= 200 entities: all of them, for dense only
    torch.testing.assert_close(scores[0], scores[1])


def test_sparse_models_give_sparse_gradients_of_touched_rows():
    data, model = model_pair(sparse=True)
    head, rel, tail = data.train[:6].unbind(1)
    candidates = torch.randint(200, (6, 4))
    model.candidate_scores(head, rel, tail, candidates, torch.zeros(6, dtype=torch.bool)).sum() \
        .backward()
    for table in (model.node_emb.weight, model.rel_emb.weight, *model.features.values()):
        assert table.grad.is_sparse
        rows = table.grad.coalesce().indices()[0]
        assert set(rows.tolist()) <= set(torch.cat([head, tail, candidates.flatten(),
                                                    rel]).tolist())


def test_lazy_adam_equals_dense_adam_on_rows_touched_every_step():
    """With every entity in every batch, the sparse step (lazy Adam over the rows a step
    touched) trains exactly like the dense one."""
    runs = []
    for sparse in (False, True):
        torch.manual_seed(0)
        data = random_kg(num_entities=30, num_train=120, seed=2)
        config = TrainConfig(dim=4, margin=6.0, negatives=40, batch_size=60, lr=1e-2, mu=0.5,
                             sparse=sparse)
        model = MMKGCModel(30, 4, 4, 6.0, features=data.features, masks=data.masks)
        trainer = Trainer(model, data, config, progress=False)
        assert (trainer.step.table_optimizer is not None) == sparse
        for start in (0, 60, 0):
            trainer.step(data.train[start:start + 60])
        runs.append(dict(trainer.model.named_parameters()))
    for name, dense in runs[0].items():
        torch.testing.assert_close(runs[1][name], dense, rtol=1e-5, atol=1e-6, msg=name)


def test_feature_tables_stored_in_bfloat16():
    data = random_kg(num_entities=50, seed=3)
    model = MMKGCModel(50, 4, 4, features=data.features, masks=data.masks,
                       feature_dtype=torch.bfloat16)
    assert all(x.dtype == torch.bfloat16 for x in model.features.values())
    joint = model.entity_embeddings()
    assert joint.dtype == torch.float32 and torch.isfinite(joint).all()
    with pytest.raises(ValueError, match="feature_dtype"):
        MMKGCModel(50, 4, 4, features=data.features, feature_dtype=torch.int8)


@pytest.mark.parametrize("budget", [1, 37, 1 << 24])
def test_chunked_all_entity_fusion_equals_one_pass(monkeypatch, budget):
    """Inference fuses the entities a block at a time (bounded memory): the same joint
    embeddings and weights as one pass, hidden modalities included."""
    data, model = model_pair()
    hidden = model.fusion_mask.clone()
    hidden[::3, 1:] = False
    monkeypatch.setattr("mmkgc_pyg.nn.model.SCORE_BUDGET", budget)
    for mask in (None, hidden):
        with torch.no_grad():
            whole = model.entity_embeddings(fusion_mask=mask, return_attention_weights=True)
            chunks = model.entity_embeddings(fusion_mask=mask, return_attention_weights=True,
                                             chunked=True)
        for a, b in zip(whole, chunks):
            torch.testing.assert_close(a, b)
