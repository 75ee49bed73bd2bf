"""FilterIndex and the TripleIndex it is built from: every known answer, from one sort of
the training triples extended by the evaluation ones."""
import pytest
import torch

from mmkgc_pyg.data.kg import TripleIndex, sorted_contains, triple_keys
from mmkgc_pyg.evaluation import FilterIndex


def random_triples(n, num_entities, num_relations, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(num_entities, (n,), generator=g),
                        torch.randint(num_relations, (n,), generator=g),
                        torch.randint(num_entities, (n,), generator=g)], 1)


def expected_index(triples, num_entities, num_relations):
    """Forward and inverse keys by the definition: distinct triples, sorted."""
    distinct = {tuple(t) for t in triples.tolist()}
    forward = sorted((h * num_relations + r) * num_entities + t for h, r, t in distinct)
    inverse = sorted((t * num_relations + r) * num_entities + h for h, r, t in distinct)
    return forward, inverse


def test_triple_index_holds_the_distinct_keys_sorted_both_ways():
    triples = random_triples(300, 9, 4, seed=0)  # with repeats
    index = TripleIndex(triples, 9, 4)
    forward, inverse = expected_index(triples, 9, 4)
    assert index.forward.tolist() == forward and index.inverse.tolist() == inverse
    assert len(index) == len(forward) < len(triples)


@pytest.mark.parametrize("extra_size", [0, 1, 40, 500])
def test_union_equals_the_index_of_all_triples(extra_size):
    train = random_triples(200, 12, 3, seed=1)
    # New triples, repeats among them, and triples the index holds already.
    extra = torch.cat([random_triples(extra_size, 12, 3, seed=2), train[:extra_size // 4]])
    union = TripleIndex(train, 12, 3).union(extra)
    forward, inverse = expected_index(torch.cat([train, extra]), 12, 3)
    assert union.forward.tolist() == forward and union.inverse.tolist() == inverse


def test_union_of_an_empty_index():
    extra = random_triples(30, 5, 2, seed=3)
    union = TripleIndex(extra[:0], 5, 2).union(extra)
    assert union.forward.tolist() == expected_index(extra, 5, 2)[0]


def test_sorted_contains():
    ascending = torch.tensor([2, 5, 9])
    assert sorted_contains(ascending, torch.tensor([9, 1, 5, 10, 2])).tolist() == [
        True, False, True, False, True]
    assert sorted_contains(ascending[:0], torch.tensor([1, 2])).tolist() == [False, False]


def answer_lists(index, entity, rel, side):
    ptr, idx = index.answers(entity, rel, side)
    assert ptr[0] == 0 and ptr[-1] == idx.numel()
    return [idx[ptr[b]:ptr[b + 1]].tolist() for b in range(entity.numel())]


def test_filter_index_from_a_shared_index_equals_the_one_from_triples():
    train, evaluated = random_triples(300, 10, 3, seed=4), random_triples(30, 10, 3, seed=5)
    known = torch.cat([train, evaluated])
    from_triples = FilterIndex(known, 3)
    shared = FilterIndex(TripleIndex(train, 10, 3).union(evaluated), 3)
    entity, rel = torch.randint(10, (50,)), torch.randint(3, (50,))
    triples = {tuple(t) for t in known.tolist()}
    for side in ("tail", "head"):
        lists = answer_lists(shared, entity, rel, side)
        assert lists == answer_lists(from_triples, entity, rel, side)
        for (e, r), answers in zip(zip(entity.tolist(), rel.tolist()), lists):
            assert answers == sorted(x for x in range(10)
                                     if ((e, r, x) if side == "tail" else (x, r, e)) in triples)


def test_entities_past_the_known_ones_have_no_answers():
    # From triples the index takes N = largest known entity + 1; queries may name more.
    index = FilterIndex(torch.tensor([[0, 1, 2], [2, 0, 1]]), 2)
    assert answer_lists(index, torch.tensor([2, 3, 1000]), torch.tensor([1, 1, 0]),
                        "head") == [[0], [], []]


def test_filter_index_rejects_an_index_of_other_relations():
    with pytest.raises(ValueError, match="expected an index of 4 relations, got 3"):
        FilterIndex(TripleIndex(random_triples(5, 4, 3, seed=6), 4, 3), 4)


def test_keys_of_the_index_are_triple_keys():
    triples = random_triples(50, 7, 2, seed=7)
    index = TripleIndex(triples, 7, 2)
    inverse = triple_keys(triples, 7, 2, inverse=True)
    assert torch.equal(inverse, triple_keys(triples.flip(1), 7, 2))
    assert bool(sorted_contains(index.forward, triple_keys(triples, 7, 2)).all())
    assert bool(sorted_contains(index.inverse, inverse).all())
