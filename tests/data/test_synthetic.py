"""The embedded synthetic graph: determinism, shapes, long tail, imbalanced and
informative modalities, predictable triples."""
import pytest
import torch

from mmkgc_pyg.data import CATEGORIES, KGDataset, SyntheticGraph, make_synthetic_kg

SMALL = dict(num_entities=200, num_relations=6, num_clusters=10, domain_size=4,
             num_train=1500, num_valid=100, num_test=100)


@pytest.fixture(scope="module")
def default():
    return make_synthetic_kg(return_latents=True)


def degrees(kg: KGDataset) -> torch.Tensor:
    return torch.bincount(kg.train[:, [0, 2]].flatten(), minlength=kg.num_entities)


def keys(kg: KGDataset, triples: torch.Tensor) -> torch.Tensor:
    return (triples[:, 0] * kg.num_relations + triples[:, 1]) * kg.num_entities + triples[:, 2]


def test_deterministic_by_seed():
    a, b, c = (make_synthetic_kg(SyntheticGraph(**SMALL), seed=s) for s in (3, 3, 4))
    for split in ("train", "valid", "test"):
        assert torch.equal(getattr(a, split), getattr(b, split))
    for m in a.modalities:
        assert torch.equal(a.features[m], b.features[m]) and torch.equal(a.masks[m], b.masks[m])
    assert not torch.equal(a.train, c.train)


def test_default_shapes_and_names(default):
    kg, _ = default
    assert kg.name == "synthetic"
    assert (kg.num_entities, kg.num_relations) == (2500, 16)
    assert (len(kg.train), len(kg.valid), len(kg.test)) == (15000, 1500, 1500)
    assert kg.entity_names[:2] == ["e0000", "e0001"] and kg.relation_names[-1] == "r15"
    assert kg.modalities == ["textual", "visual"]
    assert kg.features["textual"].shape == (2500, 32) and kg.features["visual"].shape == (2500, 64)
    assert set(kg.test_categories) == set(CATEGORIES)
    assert sum(len(t) for t in kg.test_categories.values()) == len(kg.test)


@pytest.mark.parametrize("size", [SMALL, dict(num_entities=30, num_relations=2,
                                              num_clusters=3, domain_size=2, num_train=50,
                                              num_valid=5, num_test=5)])
def test_small_graphs_get_the_requested_sizes(size):
    kg = make_synthetic_kg(SyntheticGraph(**size))
    assert len(kg.train) >= size["num_train"]
    assert (len(kg.valid), len(kg.test)) == (size["num_valid"], size["num_test"])


def test_splits_are_disjoint_and_evaluated_entities_are_trained(default):
    kg, _ = default
    known = keys(kg, kg.known_triples())
    assert len(known.unique()) == len(known)  # no duplicates within or across splits
    seen = degrees(kg) > 0
    assert bool(seen.all())  # every entity has a training triple
    held = torch.cat([kg.valid, kg.test])
    assert bool(torch.isin(held[:, 1], kg.train[:, 1]).all())
    assert bool((held[:, 0] != held[:, 2]).all())


def test_long_tail(default):
    kg, _ = default
    deg = degrees(kg)
    assert (deg <= 3).float().mean() > 0.35  # a large sparsely observed tail
    assert deg.max() > 5 * deg.float().median()  # and hubs
    sparse = (deg[kg.test[:, 0]] <= 3) | (deg[kg.test[:, 2]] <= 3)
    assert sparse.float().mean() > 0.5  # the test set is mostly about the tail


def test_imbalanced_modalities(default):
    kg, _ = default
    present = torch.stack([kg.masks[m] for m in kg.modalities])
    for m, share in zip(kg.modalities, present.float().mean(1)):
        assert 0.5 < share < 0.8, m
        assert bool((kg.features[m][~kg.masks[m]] == 0).all())
        assert bool((kg.features[m][kg.masks[m]].abs().sum(1) > 0).all())
    count = present.sum(0)
    assert (count == 0).float().mean() > 0.05 and (count == 1).float().mean() > 0.25
    deg = degrees(kg)
    # Well-observed entities have modalities more often, as in real KGs.
    assert present[:, deg > 3].float().mean() > present[:, deg <= 3].float().mean() + 0.05


def test_features_reveal_type_and_latent(default):
    kg, lat = default
    g = torch.Generator().manual_seed(0)
    fit = torch.rand(kg.num_entities, generator=g) < 0.5
    num_types = int(lat.cluster.max()) + 1
    for m in kg.modalities:
        x, mask = kg.features[m], kg.masks[m]
        train, held = fit & mask, ~fit & mask
        centroids = torch.stack([x[train & (lat.cluster == c)].mean(0) for c in range(num_types)])
        accuracy = (torch.cdist(x[held], centroids).argmin(1) == lat.cluster[held]).float().mean()
        assert accuracy > 0.4, m  # chance is 1/40
        # A linear read-out recovers the latent vectors of unseen entities.
        a = torch.cat([x, torch.ones(len(x), 1)], 1).double()
        w = torch.linalg.lstsq(a[train], lat.z[train].double()).solution
        residual = (a[held] @ w - lat.z[held]).pow(2).sum()
        assert 1 - residual / (lat.z[held] - lat.z[held].mean(0)).pow(2).sum() > 0.8, m


def test_test_triples_follow_the_planted_model(default):
    # Ranking each test tail among its type by the planted RotatE distance is far
    # better than chance: the triples are predictable from types and latents.
    kg, lat = default
    h, r, t = kg.test.t()
    query = torch.einsum("bij,bj->bi", lat.rotation[r], lat.z[h])
    score = -torch.cdist(query, lat.z)
    same_type = lat.cluster.unsqueeze(0) == lat.target[r, lat.cluster[h]].unsqueeze(1)
    assert bool(same_type[torch.arange(len(t)), t].all())
    score = score.masked_fill(~same_type, float("-inf"))
    true = score[torch.arange(len(t)), t].unsqueeze(1)
    rank = 1 + (score > true).sum(1) + 0.5 * ((score == true).sum(1) - 1)
    mrr = (1 / rank).mean()
    assert mrr > 0.2  # chance over all entities is about 0.003
