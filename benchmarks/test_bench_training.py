"""Training throughput: one step of the default configuration, and DB15K-scale training.

* ``training step (default)``: one full step (model + MAT generator update) of the
  embedded synthetic run's configuration.
* ``training (DB15K scale)``: the paper's DB15K configuration -- 12,842 entities, 79,222
  training triples, dim 250 (D = 500), 128 negatives, batch 1024 (78 steps per epoch),
  trainable visual 4096-d and textual 768-d feature tables (random, the paper's sizes),
  MAT on with mu = 0.1. On CUDA one round is a whole epoch (the anchor: the reference
  needs 11.9 s per epoch on an H100; the target is <= 0.12 s). On the CPU one round is a
  single step (an epoch takes minutes there); ``extra_info`` extrapolates the epoch time.

Triton and PyTorch paths share a group where CUDA is present.
Run: ``pytest benchmarks/test_bench_training.py --benchmark-only``.
"""
import math

import pytest
import torch

from mmkgc_pyg.data.kg import KGDataset
from mmkgc_pyg.data.synthetic import make_synthetic_kg
from mmkgc_pyg.nn import MMKGCModel
from mmkgc_pyg.training import TrainConfig, Trainer
from mmkgc_pyg.training.config import SYNTHETIC_PRESET

ON_CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if ON_CUDA else "cpu")
PATHS = [pytest.param("triton", marks=pytest.mark.skipif(
    not ON_CUDA, reason="Triton kernels are benchmarked on CUDA only")), "torch"]


def sync():
    if ON_CUDA:
        torch.cuda.synchronize()


def db15k_sized(seed: int = 0) -> KGDataset:
    """Random triples and features with DB15K's counts and the paper's feature sizes."""
    g = torch.Generator().manual_seed(seed)
    n, r = 12_842, 279

    def triples(count):
        return torch.stack([torch.randint(n, (count,), generator=g),
                            torch.randint(r, (count,), generator=g),
                            torch.randint(n, (count,), generator=g)], 1)

    features = {"textual": torch.randn(n, 768, generator=g),
                "visual": torch.randn(n, 4096, generator=g)}
    masks = {m: torch.rand(n, generator=g) < 0.8 for m in features}
    return KGDataset("DB15K-sized", n, r, triples(79_222), triples(9_904), triples(9_902),
                     [f"e{i}" for i in range(n)], [f"r{i}" for i in range(r)],
                     {m: x * masks[m][:, None] for m, x in features.items()}, masks)


def make_trainer(dataset: KGDataset, config: TrainConfig) -> Trainer:
    torch.manual_seed(config.seed)
    model = MMKGCModel(dataset.num_entities, dataset.num_relations, config.hidden_channels,
                       {m: dataset.features[m] for m in dataset.modalities}, dataset.masks,
                       margin=config.margin).to(DEVICE)
    return Trainer(model, dataset, config, progress=False)


@pytest.mark.parametrize("path", PATHS)
def test_training_step_default(benchmark, monkeypatch, path):
    monkeypatch.setenv("MMKGC_KERNELS", path)
    benchmark.group = "training step (default synthetic configuration)"
    config = TrainConfig(**SYNTHETIC_PRESET)
    trainer = make_trainer(make_synthetic_kg(), config)
    batch = trainer.train_triples[:config.batch_size]

    def step():
        trainer.step(batch)
        sync()

    step()
    benchmark.pedantic(step, rounds=20, iterations=1)
    benchmark.extra_info.update(device=str(DEVICE), batch=config.batch_size,
                                negatives=config.negatives)
    if benchmark.stats is not None:
        benchmark.extra_info["steps/s"] = round(1 / benchmark.stats.stats.median, 1)


@pytest.mark.parametrize("path", PATHS)
def test_training_db15k_scale(benchmark, monkeypatch, path):
    monkeypatch.setenv("MMKGC_KERNELS", path)
    benchmark.group = "training (DB15K scale, paper configuration)"
    config = TrainConfig(dim=250, margin=12.0, negatives=128, batch_size=1024, lr=1e-4,
                         mu=0.1, bf16=ON_CUDA)
    trainer = make_trainer(db15k_sized(), config)
    steps_per_epoch = math.ceil(trainer.train_triples.size(0) / config.batch_size)

    if ON_CUDA:
        def run():
            trainer.train_epoch()  # ends with one synchronisation (the epoch's loss)
    else:
        batch = trainer.train_triples[:config.batch_size]

        def run():
            trainer.step(batch)

    run()  # compilation, autotuning, allocator warm-up
    benchmark.pedantic(run, rounds=5 if ON_CUDA else 2, iterations=1)
    benchmark.extra_info.update(device=str(DEVICE), steps_per_epoch=steps_per_epoch,
                                unit="epoch" if ON_CUDA else "step", bf16=config.bf16)
    if benchmark.stats is not None:
        seconds = benchmark.stats.stats.median
        epoch = seconds if ON_CUDA else seconds * steps_per_epoch
        benchmark.extra_info["epoch_seconds"] = round(epoch, 3)
        benchmark.extra_info["speedup_vs_reference_11.9s"] = round(11.9 / epoch, 1)
