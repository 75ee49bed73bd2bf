"""Helpers shared by the tests."""
import contextlib
from pathlib import Path

import pytest
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


@contextlib.contextmanager
def as_default_graph(graph):
    """While inside, the command-line tools' default (synthetic) graph is ``graph``
    (smaller: faster runs)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("mmkgc_pyg.data.make_synthetic_kg", lambda: graph)
        yield graph


def write_toy_openke(folder: Path, names, triples: str) -> Path:
    """An OpenKE folder of the entities ``names`` and one relation ``r``, every split
    holding the ``triples`` lines (``head tail relation``)."""
    folder.mkdir()
    (folder / "entity2id.txt").write_text(
        f"{len(names)}\n" + "".join(f"{n}\t{i}\n" for i, n in enumerate(names)))
    (folder / "relation2id.txt").write_text("1\nr\t0\n")
    lines = triples.strip().splitlines()
    for split in ("train2id.txt", "valid2id.txt", "test2id.txt"):
        (folder / split).write_text(f"{len(lines)}\n" + "".join(f"{x}\n" for x in lines))
    return folder
