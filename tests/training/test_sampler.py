import pytest
import torch

from mmkgc_pyg.data.kg import TripleIndex, triple_keys
from mmkgc_pyg.training.sampler import NegativeSampler

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _triples(rows):
    return torch.tensor(rows, dtype=torch.long).view(-1, 3)


def _negative_triples(batch, candidates, corrupt_head):
    """The (h, r, t) of every negative, ``[B, K, 3]``; sides per row ``[B]`` or per
    candidate ``[B, 1 + K]``."""
    neg = candidates[:, 1:]
    side = corrupt_head[:, 1:] if corrupt_head.dim() == 2 else corrupt_head.unsqueeze(1)
    head = torch.where(side, neg, batch[:, :1])
    tail = torch.where(side, batch[:, 2:], neg)
    return torch.stack([head, batch[:, 1:2].expand_as(neg), tail], dim=-1)


def _count_known(triples, negatives):
    known = {tuple(t) for t in triples.tolist()}
    return sum(tuple(t) in known for t in negatives.reshape(-1, 3).tolist())


def _dense_graph(num_entities, num_relations, density, seed):
    """Random dense graph in which every query (h, r, ?) and (?, r, t) has an unknown answer."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(num_entities, num_relations, num_entities, generator=g) < density
    h, r = torch.meshgrid(torch.arange(num_entities), torch.arange(num_relations), indexing="ij")
    mask[h, r, (h + 1 + r) % num_entities] = False  # one free tail per (h, r), head per (r, t)
    return mask.nonzero()


# Hand-checked graph: per relation tph, hpt and P(corrupt head) = tph / (tph + hpt).
#   r0: heads {0, 4}, tails {1, 2, 3, 5}, 4 triples -> tph 2, hpt 1 -> 2/3
#   r1: 3 heads -> tail 0                           -> tph 1, hpt 3 -> 1/4
#   r2: (0, 2, 1) twice (deduplicated), (1, 2, 0)    -> tph 1, hpt 1 -> 1/2
#   r3: no triple                                    -> 1/2
SMALL = _triples([[0, 0, 1], [0, 0, 2], [0, 0, 3], [4, 0, 5],
                  [1, 1, 0], [2, 1, 0], [3, 1, 0],
                  [0, 2, 1], [1, 2, 0], [0, 2, 1]])


def test_triple_keys_enumerate_all_triples_in_order():
    n, r = 5, 3
    grid = torch.cartesian_prod(torch.arange(n), torch.arange(r), torch.arange(n))
    assert torch.equal(triple_keys(grid, n, r), torch.arange(r * n * n))


def test_triple_keys_overflow_bound():
    one = _triples([0, 0, 1])
    assert triple_keys(one, 2**31, 1).item() == 1  # R N^2 = 2^62 fits
    with pytest.raises(ValueError, match="2\\*\\*63"):
        triple_keys(one, 2**31, 2)  # R N^2 = 2^63 does not


def test_query_tables_by_definition():
    # Keys of the tail queries of every distinct triple and of its inverse (relation
    # R + r, head and tail swapped), sorted; the rank table subtracts from each key the
    # number of keys of its query before it.
    triples = _dense_graph(8, 3, density=0.3, seed=6)
    triples = torch.cat([triples, triples[:5]])  # repeats count once
    n, r = 8, 3
    sampler = NegativeSampler(triples, n, r, num_negatives=2)
    both = torch.cat([triples, torch.stack([triples[:, 2], triples[:, 1] + r, triples[:, 0]], 1)])
    keys = torch.unique(triple_keys(both, n, 2 * r))
    assert torch.equal(sampler._keys, keys)
    rank = [sum(1 for other in keys[:i].tolist() if other // n == k // n)
            for i, k in enumerate(keys.tolist())]
    assert torch.equal(sampler._free_rank, keys - torch.tensor(rank))


def test_a_shared_triple_index_gives_the_same_sampler():
    triples = _dense_graph(9, 3, density=0.3, seed=7)
    from_triples = NegativeSampler(triples, 9, 3, num_negatives=6)
    shared = NegativeSampler(TripleIndex(triples, 9, 3), 9, 3, num_negatives=6)
    for name in ("_keys", "_free_rank", "tph", "hpt", "head_prob"):
        assert torch.equal(getattr(shared, name), getattr(from_triples, name)), name
    draws = [s(triples, torch.Generator().manual_seed(1))[0] for s in (from_triples, shared)]
    assert torch.equal(*draws)
    with pytest.raises(ValueError, match="expected an index of 9 entities and 4 relations"):
        NegativeSampler(TripleIndex(triples, 9, 3), 9, 4, num_negatives=6)


def test_bernoulli_statistics_hand_computed():
    sampler = NegativeSampler(SMALL, 6, 4, num_negatives=3)
    assert torch.allclose(sampler.tph, torch.tensor([2.0, 1, 1, 0], dtype=torch.float64))
    assert torch.allclose(sampler.hpt, torch.tensor([1.0, 3, 1, 0], dtype=torch.float64))
    assert torch.allclose(sampler.head_prob, torch.tensor([2 / 3, 1 / 4, 1 / 2, 1 / 2],
                                                          dtype=torch.float64))
    uniform = NegativeSampler(SMALL, 6, 4, num_negatives=3, mode="uniform")
    assert torch.equal(uniform.head_prob, torch.full((4,), 0.5, dtype=torch.float64))


@pytest.mark.parametrize("mode", ["bernoulli", "uniform"])
def test_head_corruption_frequency_per_relation(mode):
    sampler = NegativeSampler(SMALL, 6, 4, num_negatives=2, mode=mode)
    batch = SMALL.repeat(2000, 1)  # >= 4000 rows per relation: std of a frequency <= 0.008
    _, corrupt_head = sampler(batch, torch.Generator().manual_seed(0))
    for rel in range(3):
        freq = corrupt_head[batch[:, 1] == rel].double().mean().item()
        assert abs(freq - sampler.head_prob[rel].item()) < 0.04, (mode, rel, freq)


def test_filtered_negatives_are_never_training_triples():
    triples = _dense_graph(7, 2, density=0.7, seed=1)
    sampler = NegativeSampler(triples, 7, 2, num_negatives=40, mode="uniform")
    batch = triples.repeat(4, 1)
    candidates, corrupt_head = sampler(batch, torch.Generator().manual_seed(0))
    assert _count_known(triples, _negative_triples(batch, candidates, corrupt_head)) == 0
    assert sampler.last_unfiltered.item() == 0
    assert corrupt_head.any() and not corrupt_head.all()


def test_per_negative_sides_mix_and_each_negative_is_filtered_on_its_side():
    triples = _dense_graph(7, 2, density=0.7, seed=1)
    sampler = NegativeSampler(triples, 7, 2, num_negatives=40, per_negative=True)
    batch = triples.repeat(4, 1)
    candidates, corrupt_head = sampler(batch, torch.Generator().manual_seed(0))
    assert corrupt_head.shape == candidates.shape
    # Column 0 is the positive as a tail query; the negatives of a row mix both sides.
    assert torch.equal(candidates[:, 0], batch[:, 2]) and not corrupt_head[:, 0].any()
    assert (corrupt_head[:, 1:].any(1) & ~corrupt_head[:, 1:].all(1)).float().mean() > 0.9
    assert _count_known(triples, _negative_triples(batch, candidates, corrupt_head)) == 0
    assert sampler.last_unfiltered.item() == 0
    # Each negative's coin follows its relation's Bernoulli probability.
    for rel in range(2):
        rows = batch[:, 1] == rel
        freq = corrupt_head[rows, 1:].double().mean().item()
        assert abs(freq - sampler.head_prob[rel].item()) < 0.03


@pytest.mark.parametrize("head_side", [False, True])
def test_filtered_negatives_are_uniform_over_unknown_answers(head_side):
    triples = _dense_graph(7, 2, density=0.5, seed=2)
    sampler = NegativeSampler(triples, 7, 2, num_negatives=100, mode="uniform")
    h, r, t = triples[0].tolist()
    known = {tuple(x) for x in triples.tolist()}
    free = [e for e in range(7) if ((e, r, t) if head_side else (h, r, e)) not in known]
    candidates, corrupt_head = sampler(triples[:1].repeat(400, 1), torch.Generator().manual_seed(3))
    draws = candidates[corrupt_head == head_side, 1:].reshape(-1)
    freq = torch.bincount(draws, minlength=7).double() / draws.numel()
    expected = torch.zeros(7, dtype=torch.float64)
    expected[free] = 1 / len(free)
    assert draws.numel() > 10_000
    assert torch.allclose(freq, expected, atol=0.02), (free, freq)


def test_queries_with_one_or_no_unknown_answer():
    # r0: (0, 0, t) for every t but 7 -> the only valid tail of (0, 0, ?) is 7.
    # r1: (h, 1, 3) for every h       -> (?, 1, 3) has no valid head at all.
    n, k = 10, 16
    triples = _triples([[0, 0, t] for t in range(n) if t != 7] + [[h, 1, 3] for h in range(n)])
    sampler = NegativeSampler(triples, n, 2, num_negatives=k, mode="uniform")
    batch = triples.repeat(50, 1)
    candidates, corrupt_head = sampler(batch, torch.Generator().manual_seed(0))
    negatives = candidates[:, 1:]
    assert torch.all(negatives[(batch[:, 1] == 0) & ~corrupt_head] == 7)
    hopeless = (batch[:, 1] == 1) & corrupt_head
    assert hopeless.any()
    # Documented fallback: such rows keep uniform (known) negatives and are counted.
    assert sampler.last_unfiltered.item() == k * hopeless.sum().item()
    assert negatives.min() >= 0 and negatives.max() < n
    found = _count_known(triples, _negative_triples(batch, candidates, corrupt_head))
    assert found == sampler.last_unfiltered.item()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("filtered", [True, False])
def test_shapes_dtype_device_and_true_column(device, filtered):
    triples = _dense_graph(9, 3, density=0.3, seed=4).to(device)
    sampler = NegativeSampler(triples, 9, 3, num_negatives=5, filtered=filtered, device=device)
    batch = triples[:13]
    generator = torch.Generator(device=device).manual_seed(0)
    if device == "cuda":  # no host round-trip inside a call
        torch.cuda.set_sync_debug_mode("error")
    try:
        candidates, corrupt_head = sampler(batch, generator)
    finally:
        if device == "cuda":
            torch.cuda.set_sync_debug_mode("default")
    assert candidates.shape == (13, 6) and candidates.dtype == torch.long
    assert corrupt_head.shape == (13,) and corrupt_head.dtype == torch.bool
    assert candidates.device.type == corrupt_head.device.type == device
    assert torch.equal(candidates[:, 0], torch.where(corrupt_head, batch[:, 0], batch[:, 2]))
    assert candidates.min() >= 0 and candidates.max() < 9


@pytest.mark.parametrize("filtered", [True, False])
def test_empty_batch_and_empty_training_set(filtered):
    sampler = NegativeSampler(SMALL, 6, 4, num_negatives=3, filtered=filtered)
    candidates, corrupt_head = sampler(torch.empty(0, 3, dtype=torch.long))
    assert candidates.shape == (0, 4) and corrupt_head.shape == (0,)
    empty = NegativeSampler(torch.empty(0, 3, dtype=torch.long), 6, 4, num_negatives=3,
                            filtered=filtered)
    candidates, _ = empty(SMALL)
    assert candidates.shape == (10, 4) and candidates.min() >= 0 and candidates.max() < 6


def test_unfiltered_mode_does_draw_training_triples():
    triples = _dense_graph(7, 2, density=0.7, seed=1)
    sampler = NegativeSampler(triples, 7, 2, num_negatives=40, filtered=False)
    candidates, corrupt_head = sampler(triples, torch.Generator().manual_seed(0))
    assert sampler.last_unfiltered is None
    assert _count_known(triples, _negative_triples(triples, candidates, corrupt_head)) > 0


@pytest.mark.parametrize("filtered", [True, False])
def test_seeded_generator_reproduces_negatives(filtered):
    triples = _dense_graph(9, 3, density=0.3, seed=5)
    sampler = NegativeSampler(triples, 9, 3, num_negatives=8, filtered=filtered)

    def draw(seed):
        return sampler(triples, torch.Generator().manual_seed(seed))

    first, second, other = draw(7), draw(7), draw(8)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], other[0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_negatives=0), "num_negatives"),
    (dict(mode="adversarial"), "mode"),
    (dict(triples=_triples([0, 4, 1])), "relation ids in \\[0, 4\\)"),
    (dict(triples=_triples([0, 0, 6])), "entity ids in \\[0, 6\\)"),
    (dict(triples=SMALL.float()), "LongTensor \\[E, 3\\]"),
])
def test_invalid_arguments(kwargs, match):
    args = dict(triples=SMALL, num_entities=6, num_relations=4, num_negatives=2) | kwargs
    with pytest.raises(ValueError, match=match):
        NegativeSampler(**args)


def test_invalid_batch():
    sampler = NegativeSampler(SMALL, 6, 4, num_negatives=2)
    with pytest.raises(ValueError, match="LongTensor \\[B, 3\\]"):
        sampler(SMALL[:, :2])
    with pytest.raises(ValueError, match="LongTensor \\[B, 3\\]"):
        sampler(SMALL.int())
