import pytest
import torch

from utils import random_kg
from mmkgc_pyg.errors import NonFiniteModelError
from mmkgc_pyg.evaluation import (FilterIndex, LinkPredictionQueries,
                                  evaluate_link_prediction, link_prediction_ranks,
                                  metrics_table, rank_metrics)
from mmkgc_pyg.evaluation import Ranks, RankingModel, missing_modality_mask
from mmkgc_pyg.evaluation.ranks import distinct_rows, stream_ranks
from mmkgc_pyg.nn import DistMultInteraction, MMKGCModel


def test_filter_index_lists_every_known_answer():
    torch.manual_seed(0)
    known = torch.stack([torch.randint(6, (80,)), torch.randint(3, (80,)),
                         torch.randint(6, (80,))], 1)
    index = FilterIndex(known, num_relations=3)
    entity, rel = torch.randint(6, (25,)), torch.randint(3, (25,))
    triples = {tuple(t) for t in known.tolist()}
    for side in ("tail", "head"):
        ptr, idx = index.answers(entity, rel, side)
        assert ptr[0] == 0 and ptr[-1] == idx.numel()
        for b, (e, r) in enumerate(zip(entity.tolist(), rel.tolist())):
            got = sorted(idx[ptr[b]:ptr[b + 1]].tolist())
            if side == "tail":
                expected = sorted({t for h, rr, t in triples if (h, rr) == (e, r)})
            else:
                expected = sorted({h for h, rr, t in triples if (t, rr) == (e, r)})
            assert got == expected


def filtered_ranks(model, triples, index, batch_size=0):
    """(head, tail) realistic ranks through the library's path."""
    queries = LinkPredictionQueries.build(triples, index)
    head, tail = queries.split(link_prediction_ranks(model, queries, batch_size))
    return head.realistic, tail.realistic


def brute_force_ranks(model, triples, known):
    """Realistic filtered ranks from Python sets, each query scored against every entity
    row by row (``match``: the same arithmetic for every row, so identical rows tie)."""
    known = {tuple(t) for t in known.tolist()}
    joint = model.entity_embeddings()
    interaction = model.interaction
    head_ranks, tail_ranks = [], []
    for h, r, t in triples.tolist():
        rel = model.rel_emb(torch.tensor([r]))
        tails = interaction.match(interaction.tail_query(joint[[h]], rel), joint).tolist()
        heads = interaction.match(interaction.head_query(rel, joint[[t]]), joint).tolist()
        for scores, true, ranks, is_known in (
                (tails, t, tail_ranks, lambda e: (h, r, e) in known),
                (heads, h, head_ranks, lambda e: (e, r, t) in known)):
            others = [s for e, s in enumerate(scores) if e != true and not is_known(e)]
            better = sum(s > scores[true] for s in others)
            tied = sum(s == scores[true] for s in others)
            ranks.append(1 + better + tied / 2)
    return torch.tensor(head_ranks), torch.tensor(tail_ranks)


@pytest.mark.parametrize("interaction", ["rotate", "transe", "distmult", "complex"])
@pytest.mark.parametrize("modalities", [False, True])
def test_filtered_realistic_ranks_equal_brute_force(interaction, modalities):
    torch.manual_seed(1)
    data = random_kg(num_entities=25, seed=1)
    model = MMKGCModel(25, 4, 4, features=data.features if modalities else None,
                       masks=data.masks, interaction=interaction, margin=6.0)
    index = FilterIndex(data.known_triples(), 4)
    with torch.no_grad():
        head, tail = filtered_ranks(model, data.test, index, batch_size=7)
        expected_head, expected_tail = brute_force_ranks(model, data.test, data.known_triples())
    torch.testing.assert_close(head, expected_head.float())
    torch.testing.assert_close(tail, expected_tail.float())


@pytest.mark.parametrize("interaction", ["rotate", "transe", "distmult", "complex"])
def test_identical_entities_tie_exactly(interaction):
    """Entities with identical embeddings tie whatever the BLAS kernel: a matrix product may
    round one row differently in different tiles, so the ranking must not rely on it."""
    torch.manual_seed(1)
    data = random_kg(num_entities=25, seed=1)
    model = MMKGCModel(25, 4, 8 if interaction in ("rotate", "complex") else 16,
                       interaction=interaction, margin=6.0)
    with torch.no_grad():
        model.node_emb.weight[[5, 7, 11, 16, 20, 24]] = model.node_emb.weight[6].clone()
    test = torch.cat([data.test, torch.tensor([[6, 0, 5], [5, 1, 7], [11, 2, 20]])])
    known = torch.cat([data.known_triples(), test[-3:]])
    index = FilterIndex(known, 4)
    with torch.no_grad():
        head, tail = filtered_ranks(model, test, index, batch_size=7)
        expected_head, expected_tail = brute_force_ranks(model, test, known)
    torch.testing.assert_close(head, expected_head.float(), rtol=0, atol=0)
    torch.testing.assert_close(tail, expected_tail.float(), rtol=0, atol=0)
    assert (head % 1 != 0).any() or (tail % 1 != 0).any()  # ties did occur


def test_non_finite_model_is_refused():
    data = random_kg()
    model = MMKGCModel(30, 4, 4, features=data.features, masks=data.masks)
    with torch.no_grad():
        model.node_emb.weight[3, 0] = float("nan")
    with pytest.raises(NonFiniteModelError, match="NaN"):
        evaluate_link_prediction(model, data.test, FilterIndex(data.known_triples(), 4))


def test_chunks_give_the_same_ranks():
    data = random_kg(seed=3)
    model = MMKGCModel(30, 4, 4, features=data.features, masks=data.masks, interaction="complex")
    queries = LinkPredictionQueries.build(data.test, FilterIndex(data.known_triples(), 4))
    assert len(queries) == 2 * len(data.test)
    whole = link_prediction_ranks(model, queries)
    for batch_size in (1, 4, 1000):
        chunked = link_prediction_ranks(model, queries, batch_size)
        assert torch.equal(whole.better, chunked.better) and torch.equal(whole.tied, chunked.tied)


def test_fused_ranking_reads_one_entity_table(kernel_device, monkeypatch):
    """RotatE's kernel path (interpreted on the CPU): the entities are laid out for the
    kernel once per ranking, every chunk of queries reads that table, and the ranks are
    the same for any chunk size and equal the brute force's (exactly on the CPU)."""
    from mmkgc_pyg.nn.interactions import RotatEInteraction
    torch.manual_seed(2)
    data = random_kg(num_entities=25, seed=2)
    model = MMKGCModel(25, 4, 4, features=data.features, masks=data.masks, margin=6.0)
    with torch.no_grad():
        model.node_emb.weight[[5, 7]] = model.node_emb.weight[6].clone()  # some ties
    model = model.to(kernel_device)
    tables, read = [], []
    layout, counts = RotatEInteraction.ranking_table, RotatEInteraction.rank_counts
    monkeypatch.setattr(RotatEInteraction, "ranking_table",
                        lambda self, entities: tables.append(layout(self, entities))
                        or tables[-1])
    monkeypatch.setattr(RotatEInteraction, "rank_counts",
                        lambda self, query, entities, *args: read.append(entities)
                        or counts(self, query, entities, *args))
    queries = LinkPredictionQueries.build(data.test, FilterIndex(data.known_triples(), 4))
    whole = link_prediction_ranks(model, queries.to(kernel_device))
    for batch_size in (1, 7):
        tables.clear(), read.clear()
        chunked = link_prediction_ranks(model, queries.to(kernel_device), batch_size)
        assert torch.equal(whole.better, chunked.better) and torch.equal(whole.tied, chunked.tied)
        assert len(tables) == 1 and len(read) == -(-len(queries) // batch_size)
        assert all(entities is tables[0] for entities in read)
    if kernel_device.type == "cpu":
        head, tail = queries.split(whole)
        expected_head, expected_tail = brute_force_ranks(model, data.test, data.known_triples())
        torch.testing.assert_close(head.realistic, expected_head.float(), rtol=0, atol=0)
        torch.testing.assert_close(tail.realistic, expected_tail.float(), rtol=0, atol=0)


def test_unfiltered_queries_rank_every_entity():
    data = random_kg(seed=4)
    model = MMKGCModel(30, 4, 4, features=data.features, masks=data.masks)
    queries = LinkPredictionQueries.unfiltered(data.test, both_sides=False)
    assert len(queries) == len(data.test) and queries.filter_idx.numel() == 0
    head, tail = queries.split(link_prediction_ranks(model, queries))
    scores = model.score_tails(data.test[:, 0], data.test[:, 1])
    true = scores.gather(1, data.test[:, 2:3])
    expected = 1 + (scores > true).sum(1) + 0.5 * ((scores == true).sum(1) - 1)
    assert head is None
    torch.testing.assert_close(tail.realistic, expected.float())


def test_metrics_and_report():
    ranks = torch.tensor([1.0, 2.0, 4.0, 10.5])
    m = rank_metrics(ranks)
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 10.5) / 4)
    assert m["mr"] == pytest.approx(17.5 / 4)
    assert (m["hits@1"], m["hits@3"], m["hits@10"]) == (0.25, 0.5, 0.75)
    assert rank_metrics(torch.empty(0)) == {"mrr": None, "mr": None, "hits@1": None,
                                            "hits@3": None, "hits@10": None, "count": 0}
    data = random_kg()
    model = MMKGCModel(30, 4, 4, features=data.features, masks=data.masks)
    from mmkgc_pyg.data.kg import relation_categories, split_by_category
    categories = split_by_category(data.test, relation_categories(data.known_triples(), 4))
    metrics = evaluate_link_prediction(model, data.test, FilterIndex(data.known_triples(), 4),
                                       categories=categories)
    assert metrics["rank_type"] == "realistic"
    # The headline MRR is (head + tail) / 2, the others one mean: equal up to rounding
    # where no ranks tie.
    assert (metrics["optimistic"]["mrr"] + 1e-12 >= metrics["mrr"]
            >= metrics["pessimistic"]["mrr"] - 1e-12)
    assert metrics["count"] == 2 * len(data.test)
    assert metrics["mrr"] == pytest.approx((metrics["head"]["mrr"] + metrics["tail"]["mrr"]) / 2)
    assert sum(c["count"] for c in metrics["categories"].values()) == 2 * len(data.test)
    table = metrics_table({"test": metrics})
    assert "| test | both |" in table and "| test | head |" in table


@pytest.mark.parametrize("budget", [1, 7, 40, 10_000])
def test_streamed_ranks_equal_the_score_matrix_ranks(budget):
    """Blocks of queries x distinct rows, within any budget, count exactly what the whole
    score matrix does: identical rows, filtered entities and the target included."""
    g = torch.Generator().manual_seed(budget)
    entities = torch.randint(0, 3, (25, 2), generator=g).float()  # many identical rows
    query = torch.randint(0, 3, (9, 2), generator=g).float()
    target = torch.randint(0, 25, (9,), generator=g)
    counts = torch.randint(0, 5, (9,), generator=g)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    idx = torch.cat([torch.randperm(25, generator=g)[:c] for c in counts.tolist()])
    interaction = DistMultInteraction(2)
    expected = Ranks.from_scores(interaction.score_all(query, entities), target, ptr, idx)
    got = stream_ranks(interaction.score_all, interaction.match, query, distinct_rows(entities),
                       target, ptr, idx, budget)
    assert torch.equal(got.better, expected.better) and torch.equal(got.tied, expected.tied)


def test_distinct_rows_and_the_collision_fallback(monkeypatch):
    table = torch.tensor([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [0.0, -0.0], [3.0, 4.0]])
    rows, inverse, counts = distinct_rows(table)
    assert torch.equal(rows[inverse], table) and counts.sum() == 5 and len(rows) == 3
    # Every key equal: the check against each group's first row catches it.
    monkeypatch.setattr("mmkgc_pyg.evaluation.ranks._row_keys",
                        lambda block, weights: torch.zeros(block.size(0), dtype=torch.long))
    rows, inverse, counts = distinct_rows(table)
    assert torch.equal(rows[inverse], table) and len(rows) == 3


def test_the_model_meets_the_ranking_contract():
    assert isinstance(MMKGCModel(5, 2, 4), RankingModel)
    assert not isinstance(torch.nn.Linear(2, 2), RankingModel)


@pytest.mark.parametrize("rate", [0.3, 0.55, 1.0])
def test_missing_modality_mask_hides_all_modalities_of_a_seeded_fraction(rate):
    data = random_kg()
    model = MMKGCModel(30, 4, 4, features=data.features, masks=data.masks)
    mask = missing_modality_mask(model, rate, seed=1)
    hidden = ~mask[:, 1:].any(1) & model.fusion_mask[:, 1:].any(1)
    # Exactly round(rate * N) entities lose every modality; the rest keep theirs, and
    # the structure column stays.
    lost = (mask != model.fusion_mask).any(1)
    assert int(lost.sum()) <= round(rate * 30) and bool(hidden[lost].all())
    assert torch.equal(mask[~lost], model.fusion_mask[~lost]) and bool(mask[:, 0].all())
    assert bool((mask <= model.fusion_mask).all())
    assert torch.equal(mask, missing_modality_mask(model, rate, seed=1))
    assert missing_modality_mask(model, 0.0, seed=1) is None
    if rate < 1:
        assert not torch.equal(mask, missing_modality_mask(model, rate, seed=2))
    with pytest.raises(ValueError, match="modalities"):
        missing_modality_mask(MMKGCModel(30, 4, 4), 0.5, seed=1)
