"""Training throughput: one step of the default configuration, and DB15K-scale training.

* ``training step (default)``: one full step (model + MAT generator update) of the
  embedded synthetic run's configuration.
* ``training (DB15K scale)``: ``workloads.PAPER_CONFIG`` -- DB15K's 12,842 entities and
  79,222 training triples (real ones when ``MMKGC_DB15K`` names the folder), dim 250
  (D = 500), 128 negatives, batch 1024 (78 steps per epoch), trainable visual 4096-d and
  textual 768-d feature tables (random, the paper's sizes), MAT with mu = 0.1 -- for each
  variant of ``workloads.TRAINING_VARIANTS`` (the rows of ``gpu_check.py``). On CUDA one
  round is a whole epoch (the reference needs 11.9 s per epoch on an H100; the target is
  <= 0.12 s). On the CPU one round is a single step (an epoch takes minutes there) and
  ``extra_info`` extrapolates the epoch time.

Run: ``pytest benchmarks/test_bench_training.py --benchmark-only``.
"""
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import workloads
from mmkgc_pyg.data.synthetic import make_synthetic_kg
from mmkgc_pyg.training import TrainConfig
from mmkgc_pyg.training.config import SYNTHETIC_PRESET

ON_CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if ON_CUDA else "cpu")


@pytest.fixture(scope="module")
def paper_dataset():
    folder = os.environ.get("MMKGC_DB15K")
    return workloads.paper_scale_dataset(Path(folder) if folder else None)


def test_training_step_default(benchmark):
    benchmark.group = "training step (default synthetic configuration)"
    config = TrainConfig(**SYNTHETIC_PRESET)
    trainer = workloads.make_trainer(make_synthetic_kg(), config, DEVICE)
    batch = trainer.train_triples[:config.batch_size]

    def step():
        trainer.step(batch)
        workloads.synchronize(DEVICE)

    step()
    benchmark.pedantic(step, rounds=20, iterations=1)
    benchmark.extra_info.update(device=str(DEVICE), batch=config.batch_size,
                                negatives=config.negatives)
    if benchmark.stats is not None:
        benchmark.extra_info["steps/s"] = round(1 / benchmark.stats.stats.median, 1)


@pytest.mark.parametrize("variant", list(workloads.TRAINING_VARIANTS))
def test_training_db15k_scale(benchmark, paper_dataset, variant):
    benchmark.group = "training (DB15K scale, paper configuration)"
    changes, modalities = workloads.TRAINING_VARIANTS[variant]
    trainer = workloads.make_trainer(paper_dataset, replace(workloads.PAPER_CONFIG, **changes),
                                     DEVICE, modalities)
    steps = workloads.steps_per_epoch(trainer)
    if ON_CUDA:
        def run():
            trainer.train_epoch()  # ends with one synchronisation (the epoch's loss)
    else:
        batch = trainer.train_triples[:trainer.config.batch_size]

        def run():
            trainer.step(batch)

    run()  # compilation, autotuning, graph capture, allocator warm-up
    benchmark.pedantic(run, rounds=5 if ON_CUDA else 2, iterations=1)
    benchmark.extra_info.update(device=str(DEVICE), variant=variant, steps_per_epoch=steps,
                                unit="epoch" if ON_CUDA else "step")
    if benchmark.stats is not None:
        seconds = benchmark.stats.stats.median
        epoch = seconds if ON_CUDA else seconds * steps
        benchmark.extra_info["epoch_seconds"] = round(epoch, 3)
        benchmark.extra_info["speedup_vs_reference_11.9s"] = round(11.9 / epoch, 1)
