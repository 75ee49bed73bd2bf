"""Helpers shared by the tests."""
import torch


def random_kg(num_entities=30, num_relations=4, num_train=120, num_eval=15, seed=0,
              modalities=(("visual", 6), ("textual", 4))):
    """A small random multi-modal KG (unique triples, some modalities missing)."""
    from mmkgc_pyg.data.kg import KGDataset

    g = torch.Generator().manual_seed(seed)
    total = num_train + 2 * num_eval
    keys = torch.randperm(num_entities * num_relations * num_entities, generator=g)[:total]
    triples = torch.stack([keys // (num_relations * num_entities),
                           keys // num_entities % num_relations, keys % num_entities], 1)
    features = {m: torch.randn(num_entities, d, generator=g) for m, d in modalities}
    masks = {m: torch.rand(num_entities, generator=g) < 0.6 for m, _ in modalities}
    features = {m: x * masks[m][:, None] for m, x in features.items()}
    return KGDataset(
        name="random", num_entities=num_entities, num_relations=num_relations,
        train=triples[:num_train], valid=triples[num_train:num_train + num_eval],
        test=triples[num_train + num_eval:],
        entity_names=[f"e{i}" for i in range(num_entities)],
        relation_names=[f"r{i}" for i in range(num_relations)],
        features=features, masks=masks)
