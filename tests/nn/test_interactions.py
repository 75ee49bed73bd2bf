"""The interactions (score functions): formulas, initialisation, and the agreement of
triple, bulk, candidate and top-k scores."""
import math

import pytest
import torch

from mmkgc_pyg.nn import (INTERACTIONS, ComplExInteraction, DistMultInteraction,
                          RotatEInteraction, TransEInteraction)


def as_complex(x):
    re, im = x.double().chunk(2, dim=-1)
    return torch.complex(re, im)


def relation_rows(interaction, count, seed=0):
    weight = torch.empty(count, interaction.relation_channels)
    torch.manual_seed(seed)
    interaction.reset_relations(weight)
    return weight


def test_rotate_matches_complex_formula_and_init():
    torch.manual_seed(0)
    k, margin = 5, 12.0
    rotate = RotatEInteraction(k, margin)
    assert (rotate.entity_channels, rotate.relation_channels) == (2 * k, k)
    rho = (margin + 2.0) / k
    rel = relation_rows(rotate, 3)
    assert rel.abs().max() <= rho and rel.abs().max() > rho / 2
    h, t = torch.randn(4, 2 * k), torch.randn(4, 2 * k)
    r = rel[torch.tensor([0, 1, 2, 1])]
    theta = r.double() * math.pi / rho
    expected = margin - (as_complex(h) * torch.exp(1j * theta) - as_complex(t)).abs().sum(-1)
    torch.testing.assert_close(rotate(h, r, t).double(), expected, atol=1e-5, rtol=1e-5)
    weight = torch.empty(100, 2 * k)
    rotate.reset_entities(weight)
    assert weight.abs().max() <= (margin + 2.0) / (2 * k)


def test_transe_distmult_complex_formulas():
    torch.manual_seed(1)
    transe, distmult, cx = TransEInteraction(6, margin=3.0), DistMultInteraction(6), \
        ComplExInteraction(3)
    h, t = torch.randn(4, 6), torch.randn(4, 6)
    r = torch.randn(4, 6)
    torch.testing.assert_close(transe(h, r, t), 3.0 - (h + r - t).abs().sum(-1))
    torch.testing.assert_close(distmult(h, r, t), (h * r * t).sum(-1))
    assert cx.entity_channels == cx.relation_channels == 6
    expected = (as_complex(h) * as_complex(r) * as_complex(t).conj()).real.sum(-1)
    torch.testing.assert_close(cx(h, r, t).double(), expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", list(INTERACTIONS))
def test_queries_bulk_scores_and_topk_agree(name):
    torch.manual_seed(2)
    interaction = INTERACTIONS[name](4)
    entities = torch.randn(11, interaction.entity_channels)
    rel = relation_rows(interaction, 4)
    h, r, t = torch.tensor([0, 3, 7]), rel[torch.tensor([1, 0, 3])], torch.tensor([5, 3, 10])
    direct = interaction(entities[h], r, entities[t])
    # Head and tail queries give the same triple scores.
    torch.testing.assert_close(interaction.match(interaction.head_query(r, entities[t]),
                                                 entities[h]), direct, atol=1e-5, rtol=1e-5)
    query = interaction.tail_query(entities[h], r)
    all_tails = interaction.score_all(query, entities)
    assert all_tails.shape == (3, 11)
    torch.testing.assert_close(all_tails[torch.arange(3), t], direct, atol=1e-5, rtol=1e-5)
    index = torch.randint(11, (3, 6))
    candidates = interaction.score_candidates(query, entities, index)
    torch.testing.assert_close(candidates, all_tails.gather(1, index), atol=1e-5, rtol=1e-5)
    # Top-k skips the filtered entities.
    ptr, idx = torch.tensor([0, 2, 2, 3]), torch.tensor([1, 4, 9])
    scores, best = interaction.topk(query, entities, 4, ptr, idx)
    masked = all_tails.clone()
    masked[0, [1, 4]] = masked[2, 9] = float("-inf")
    expected_scores, expected = masked.topk(4, dim=1)
    torch.testing.assert_close(scores, expected_scores, atol=1e-5, rtol=1e-5)
    assert torch.equal(best, expected)


def test_topk_clamps_k_streams_blocks_and_checks_arguments(monkeypatch):
    interaction = DistMultInteraction(3)
    query, entities = torch.randn(7, 3), torch.randn(5, 3)
    scores, ids = interaction.topk(query, entities, 50)
    assert ids.shape == (7, 5) and (ids.sort(1).values == torch.arange(5)).all()
    monkeypatch.setattr("mmkgc_pyg.nn.interactions.base.SCORE_BUDGET", 10)  # 2 queries/block
    ptr = torch.arange(8) // 2  # a filtered entity in every other query
    idx = torch.arange(3) % 5
    blocked = interaction.topk(query, entities, 5, ptr, idx)
    whole = interaction.score_all(query, entities)
    for b in range(7):
        whole[b, idx[ptr[b]:ptr[b + 1]]] = float("-inf")
    torch.testing.assert_close(blocked[0], whole.topk(5, 1).values)
    with pytest.raises(ValueError, match="k >= 1"):
        interaction.topk(query, entities, 0)
    with pytest.raises(ValueError, match="both"):
        interaction.topk(query, entities, 2, ptr, None)


def test_only_rotate_has_a_fused_ranking_kernel():
    query, entities = torch.randn(2, 4), torch.randn(3, 4)
    for name, cls in INTERACTIONS.items():
        assert not cls(2).fused_ranking(query, entities)  # CPU tensors, mode auto
    with pytest.raises(NotImplementedError, match="no fused ranking"):
        TransEInteraction(2).rank_counts(query, entities, None, None, None)


def test_bad_size_raises():
    with pytest.raises(ValueError, match="hidden_channels"):
        RotatEInteraction(0)
