"""Test setup: run Triton kernels in the interpreter when there is no GPU.

Triton decides between compiling and interpreting when a kernel is decorated, so the
variable must be set before any ``mmkgc_pyg.kernels`` module is imported.
"""
import os
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# The tests' tensors are tiny: one thread per process avoids the thread start-up cost
# and oversubscription when tests run subprocesses side by side (inherited by them).
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture
def datasets_dir() -> Path:
    """The shared benchmark graphs; tests that need them skip when they are absent."""
    if not DATASETS.is_dir():
        pytest.skip(f"benchmark datasets not found at {DATASETS}")
    return DATASETS


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
