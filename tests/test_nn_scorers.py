import math

import pytest
import torch

from mmkgc_pyg.nn import ComplEx, DistMult, RotatE, TransE

SCORERS = [RotatE, TransE, DistMult, ComplEx]


def as_complex(x):
    re, im = x.double().chunk(2, dim=-1)
    return torch.complex(re, im)


def test_rotate_matches_complex_formula_and_init():
    torch.manual_seed(0)
    k, margin = 5, 12.0
    scorer = RotatE(3, 2 * k, margin)
    rho = (margin + 2.0) / k
    assert scorer.rel_emb.weight.abs().max() <= rho
    h, t = torch.randn(4, 2 * k), torch.randn(4, 2 * k)
    r = torch.tensor([0, 1, 2, 1])
    theta = scorer.rel_emb.weight[r].double() * math.pi / rho
    expected = margin - (as_complex(h) * torch.exp(1j * theta) - as_complex(t)).abs().sum(-1)
    torch.testing.assert_close(scorer(h, r, t).double(), expected, atol=1e-5, rtol=1e-5)
    weight = torch.empty(100, 2 * k)
    scorer.init_entity_embeddings(weight)
    assert weight.abs().max() <= (margin + 2.0) / (2 * k)


def test_transe_distmult_complex_formulas():
    torch.manual_seed(1)
    h, t, r = torch.randn(4, 6), torch.randn(4, 6), torch.tensor([0, 1, 1, 0])
    transe = TransE(2, 6, margin=3.0)
    torch.testing.assert_close(transe(h, r, t),
                               3.0 - (h + transe.rel_emb.weight[r] - t).abs().sum(-1))
    distmult = DistMult(2, 6)
    torch.testing.assert_close(distmult(h, r, t),
                               (h * distmult.rel_emb.weight[r] * t).sum(-1))
    cx = ComplEx(2, 6)
    expected = (as_complex(h) * as_complex(cx.rel_emb.weight[r])
                * as_complex(t).conj()).real.sum(-1)
    torch.testing.assert_close(cx(h, r, t).double(), expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("cls", SCORERS)
def test_queries_bulk_scores_and_topk_agree(cls):
    torch.manual_seed(2)
    scorer = cls(4, 8)
    entities = torch.randn(11, 8)
    h, r, t = torch.tensor([0, 3, 7]), torch.tensor([1, 0, 3]), torch.tensor([5, 3, 10])
    direct = scorer(entities[h], r, entities[t])
    # Head and tail queries give the same triple scores.
    torch.testing.assert_close(scorer.match(scorer.head_query(r, entities[t]), entities[h]),
                               direct, atol=1e-5, rtol=1e-5)
    all_tails = scorer.score_all(scorer.tail_query(entities[h], r), entities)
    assert all_tails.shape == (3, 11)
    torch.testing.assert_close(all_tails[torch.arange(3), t], direct, atol=1e-5, rtol=1e-5)
    index = torch.randint(11, (3, 6))
    candidates = scorer.score_candidates(scorer.tail_query(entities[h], r), entities, index)
    torch.testing.assert_close(candidates, all_tails.gather(1, index), atol=1e-5, rtol=1e-5)
    # Top-k skips the filtered entities.
    query = scorer.tail_query(entities[h], r)
    ptr, idx = torch.tensor([0, 2, 2, 3]), torch.tensor([1, 4, 9])
    scores, best = scorer.topk(query, entities, 4, ptr, idx)
    masked = all_tails.clone()
    masked[0, [1, 4]] = masked[2, 9] = float("-inf")
    expected_scores, expected = masked.topk(4, dim=1)
    torch.testing.assert_close(scores, expected_scores, atol=1e-5, rtol=1e-5)
    assert torch.equal(best, expected)


@pytest.mark.parametrize("cls", [RotatE, ComplEx])
def test_complex_scorers_need_even_size(cls):
    with pytest.raises(ValueError, match="even"):
        cls(2, 7)
