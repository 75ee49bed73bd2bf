"""Bulk prediction, triple scores and embedding export of mmkgc_pyg.nn.prediction: the same
answers as the model's all-entity scores, in bounded blocks, by ids or names (URI-like
names by their readable form), and one code path for one query and many."""
import json

import numpy as np
import pytest
import torch

from utils import random_kg
from mmkgc_pyg.data.openke import read_name_file
from mmkgc_pyg.errors import (AmbiguousNameError, InvalidArgumentError, NonFiniteModelError,
                              OutputError, UnknownNameError)
from mmkgc_pyg.nn import MMKGCModel
from mmkgc_pyg.nn import prediction
from mmkgc_pyg.nn.prediction import (NameIndex, export_embeddings, predict, predict_by_name,
                                     score_triples)


def uri(name):
    return f"<http://dbpedia.org/resource/{name}>"


@pytest.fixture(scope="module")
def kg():
    return random_kg(num_entities=40, num_relations=4, num_train=200, num_eval=10)


@pytest.fixture
def model(kg):
    torch.manual_seed(0)
    model = MMKGCModel(kg.num_entities, kg.num_relations, 6, features=kg.features,
                       masks=kg.masks).eval()
    model.entity_names = [uri(f"Entity_{i}") for i in range(kg.num_entities)]
    model.relation_names = [f"<http://dbpedia.org/ontology/rel{i}>" for i in
                            range(kg.num_relations)]
    return model


@pytest.mark.parametrize("side", ["tail", "head"])
@torch.no_grad()
def test_bulk_answers_are_the_top_k_of_all_entity_scores(model, side):
    entity, relation = torch.tensor([0, 5, 5, 39, 12]), torch.tensor([1, 1, 3, 0, 2])
    scores = (model.score_tails(entity, relation) if side == "tail"
              else model.score_heads(relation, entity))
    given = {"head" if side == "tail" else "tail": entity}
    batch = predict(model, relation=relation, k=7, **given)
    top = scores.topk(7)
    assert torch.equal(batch.ids, top.indices)
    torch.testing.assert_close(batch.scores, top.values)
    assert batch.side == side and len(batch) == 5 and not batch.known.any()
    one_by_one = predict(model, relation=relation, k=7, batch_size=1, **given)
    assert torch.equal(one_by_one.ids, batch.ids)


def test_names_and_ids_give_the_same_answers_and_one_relation_serves_all(model):
    heads = [uri("Entity_3"), "Entity 7", "Entity_9", "http://dbpedia.org/resource/Entity_1"]
    by_name = predict(model, head=heads, relation="rel2", k=4)
    by_id = predict(model, head=torch.tensor([3, 7, 9, 1]), relation=torch.tensor(2), k=4)
    by_array = predict(model, head=np.array([3, 7, 9, 1]), relation=[2, 2, 2, 2], k=4)
    assert torch.equal(by_array.ids, by_id.ids)
    assert torch.equal(by_name.ids, by_id.ids) and torch.equal(by_name.relation, by_id.relation)
    rows = by_name.rows()
    assert len(rows) == 16 and [r["rank"] for r in rows[:4]] == [1, 2, 3, 4]
    first = rows[0]
    assert first["query"] == 0 and first["predict"] == "tail"
    assert (first["head_id"], first["relation_id"]) == (3, 2)
    assert first["head"] == uri("Entity_3") and first["tail"] == model.entity_names[
        first["tail_id"]]
    assert first["score"] == pytest.approx(float(by_id.scores[0, 0]))


def test_known_answers_are_marked_and_filtered(model, kg):
    entity, relation = kg.train[:6, 0], kg.train[:6, 1]
    everything = predict(model, head=entity, relation=relation, k=kg.num_entities,
                         known=kg.train)
    triples = set(map(tuple, kg.train.tolist()))
    for q in range(6):
        expected = {t for h, r, t in triples if (h, r) == (int(entity[q]), int(relation[q]))}
        marked = {int(i) for i, known in zip(everything.ids[q], everything.known[q]) if known}
        assert marked == expected and expected
    filtered = predict(model, head=entity, relation=relation, k=kg.num_entities,
                       known=kg.train, filter=True)
    rows = filtered.rows()
    assert not any(r["known"] for r in rows)
    for q in range(6):  # the others, in the same order; the padding (-inf) is left out
        kept = [int(i) for i, known in zip(everything.ids[q], everything.known[q]) if not known]
        assert [r["tail_id"] for r in rows if r["query"] == q] == kept
        assert [p.id for p in filtered.answers(q)] == kept


def test_blocks_bound_the_queries_per_call(model, monkeypatch):
    calls = []
    original = model.predict_heads

    def recording(rel, tail, k, exclude=None, table=None):
        calls.append(len(rel))
        return original(rel, tail, k, exclude, table)

    tables = []
    table = model.prediction_table
    monkeypatch.setattr(model, "predict_heads", recording)
    monkeypatch.setattr(model, "prediction_table", lambda: tables.append(1) or table())
    expected = predict(model, tail=torch.arange(40), relation=1, k=3)
    calls.clear()
    tables.clear()
    monkeypatch.setattr(prediction, "SCORE_BUDGET", 5 * (model.interaction.entity_channels + 3))
    blocked = predict(model, tail=torch.arange(40), relation=1, k=3)
    assert calls == [5] * 8
    assert tables == [1]  # the entities are fused once for all blocks
    assert torch.equal(blocked.ids, expected.ids)


def test_one_query_by_name_is_the_bulk_path(model, kg, monkeypatch):
    seen = []
    bulk = prediction.predict

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return bulk(*args, **kwargs)

    monkeypatch.setattr(prediction, "predict", spy)
    answers = model.predict(tail="Entity 4", relation="rel1", k=5, known=kg.train)
    assert len(seen) == 1 and seen[0]["tail"] == "Entity 4"
    expected = bulk(model, tail=[4], relation=[1], k=5, known=kg.train)
    assert [p.to_dict() for p in answers] == [p.to_dict() for p in expected.answers(0)]
    assert [p.rank for p in answers] == [1, 2, 3, 4, 5]
    assert all(p.entity == model.entity_names[p.id] for p in answers)
    assert answers == predict_by_name(model, tail=uri("Entity_4"), relation="rel1", k=5,
                                      known=kg.train)


def test_name_index_exact_names_readable_forms_and_ambiguity():
    names = [uri("Andy_Griffith"), uri("Rock_of_Ages_(2012_film)"), "plain_name",
             "twice", "twice", "<http://a.org/x/Shared>", "<http://b.org/y/Shared>",
             uri("Anarchism")]
    index = NameIndex(names, "an entity")
    assert index.id(uri("Andy_Griffith"), "head") == 0
    assert index.id("Andy Griffith", "head") == 0
    assert index.id("http://dbpedia.org/resource/Andy%20Griffith", "head") == 0
    assert index.id("Rock of Ages (2012 film)", "head") == 1
    assert index.id("plain name", "head") == 2
    with pytest.raises(AmbiguousNameError, match="ids 3, 4"):
        index.id("twice", "head")
    with pytest.raises(AmbiguousNameError, match="ids 5, 6"):
        index.id("Shared", "tail")
    assert index.id("<http://b.org/y/Shared>", "tail") == 6  # the full name is exact
    with pytest.raises(UnknownNameError) as exc:
        index.id("Anarchsm", "head")
    assert exc.value.suggestions[0] == "Anarchism" and exc.value.argument == "head"
    with pytest.raises(UnknownNameError) as exc:
        index.id("Rock of Age", "head")
    assert "Rock of Ages (2012 film)" in exc.value.suggestions
    assert "plain_name" in index.suggestions("plain_nam")  # undecorated: as it is spelled


def test_db15k_names_resolve_by_their_readable_form(datasets_dir):
    path = datasets_dir / "DB15K" / "entity2id.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    names = read_name_file(path)
    index = NameIndex(names, "an entity")
    anarchism = names.index("<http://dbpedia.org/resource/Anarchism>")
    assert index.id("Anarchism", "head") == anarchism
    with pytest.raises(UnknownNameError) as exc:
        index.id("Anarchsm", "head")
    assert "Anarchism" in exc.value.suggestions


@torch.no_grad()
def test_scores_of_triples_are_the_model_scores_in_blocks(model, kg):
    triples = torch.cat([kg.train[:5], kg.test[:5]])
    scored = score_triples(model, triples[:, 0], triples[:, 1], triples[:, 2], known=kg.train,
                           batch_size=3)
    torch.testing.assert_close(scored.scores, model(triples[:, 0], triples[:, 1],
                                                    triples[:, 2]))
    train = set(map(tuple, kg.train.tolist()))
    assert scored.known.tolist() == [tuple(t) in train for t in triples.tolist()]
    by_name = score_triples(model, [model.entity_names[i] for i in triples[:, 0].tolist()],
                            "rel" + str(int(triples[0, 1])), triples[:, 2])
    assert by_name.relation.tolist() == [int(triples[0, 1])] * 10
    rows = scored.rows()
    assert rows[0]["head"] == model.entity_names[rows[0]["head_id"]]
    assert [r["score"] for r in rows] == pytest.approx(scored.scores.tolist())


@pytest.mark.parametrize("call, error", [
    (lambda m: predict(m, head=[0, 40], relation=0), "head: expected entity ids in \\[0, 40\\)"),
    (lambda m: predict(m, head=[0, "Entity_1"], relation=0), "all names or all integer ids"),
    (lambda m: predict(m, head=[0, 1, 2], relation=[0, 1]), "equally many"),
    (lambda m: predict(m, head=torch.tensor([0.5]), relation=0), "integer ids"),
    (lambda m: predict(m, head=True, relation=0), "expected names or integer ids, got bool"),
    (lambda m: predict(m, head=0, tail=1, relation=0), "exactly one of head= and tail="),
    (lambda m: predict(m, head=0, relation=0, k=0), "k=0"),
    (lambda m: predict(m, head=0, relation=0, filter=True), "filter=True needs known="),
    (lambda m: predict(m, head=0, relation=0, batch_size=0), "batch_size=0"),
    (lambda m: score_triples(m, 0, 9, 1), "relation: expected relation ids in \\[0, 4\\)"),
])
def test_bad_arguments(model, call, error):
    with pytest.raises(InvalidArgumentError, match=error):
        call(model)


def test_names_need_a_model_with_names_and_finite_parameters(model):
    with pytest.raises(UnknownNameError) as exc:
        predict(model, head=["Entity_1", "Entity_x"], relation=0)
    assert exc.value.argument == "head[1]"  # which of the names
    with torch.no_grad():
        model.rel_emb.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteModelError):
        predict(model, head=0, relation=0)
    model.entity_names = None
    with pytest.raises(InvalidArgumentError, match="no entity_names"):
        predict(model, head="Entity_1", relation=0)
    with pytest.raises(InvalidArgumentError, match="no entity_names"):
        predict_by_name(model, head="Entity_1", relation="rel0")


@pytest.mark.parametrize("format", ["npy", "pt"])
@torch.no_grad()
def test_export_writes_the_tables_names_and_manifest(model, tmp_path, format):
    out = tmp_path / "export"
    manifest = export_embeddings(model, out, format)
    load = np.load if format == "npy" else torch.load
    tables = {"entity_embeddings": model.entity_embeddings(),
              "structural_embeddings": model.node_emb.weight,
              "relation_embeddings": model.rel_emb.weight}
    for table, expected in tables.items():
        entry = manifest["files"][table]
        assert entry["file"] == f"{table}.{format}" and entry["dtype"] == "float32"
        assert entry["shape"] == list(expected.shape)
        torch.testing.assert_close(torch.as_tensor(load(out / entry["file"])), expected)
    assert (out / "entities.txt").read_text().splitlines() == model.entity_names
    assert (out / "relations.txt").read_text().splitlines() == model.relation_names
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["interaction"] == "rotate" and manifest["hidden_channels"] == 6
    assert manifest["files"]["relation_embeddings"]["rows"] == "relations.txt"
    assert tables["entity_embeddings"].shape == (40, 12)  # complex: real | imaginary halves


def test_export_refuses_an_earlier_one_and_replaces_it_when_asked(model, tmp_path):
    out = tmp_path / "export"
    export_embeddings(model, out, "npy")
    with pytest.raises(OutputError, match="holds an export"):
        export_embeddings(model, out, "pt")
    model.entity_names = model.relation_names = None
    manifest = export_embeddings(model, out, "pt", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "entity_embeddings.pt", "manifest.json", "relation_embeddings.pt",
        "structural_embeddings.pt"]
    assert all(entry["rows"] is None for entry in manifest["files"].values())
