"""The memory guard's estimate against what a run really takes.

``mmkgc_pyg.training.setup.memory_plan`` estimates, before anything is allocated, the
peak of a run: its state (parameters, gradients, optimiser state) plus the larger of one
training step and one evaluation. Each case here trains two steps and validates once in
a fresh process on the CPU, and compares the peak resident memory over the process's
memory once the dataset is loaded with the estimate. The estimate must not fall short by
more than 15 % (the guard would then let a run start that cannot finish) nor exceed the
measurement by more than 60 % plus 200 MiB (it would refuse runs that fit).

Run: ``pytest benchmarks/test_bench_memory.py --benchmark-only``.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

MEASURE = r"""
import json, sys
import torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[4])  # the benchmarks folder, for workloads
from workloads import peak_resident_bytes, reset_peak_resident
from mmkgc_pyg.data import make_synthetic_kg
from mmkgc_pyg.training import TrainConfig, Trainer, build_model
from mmkgc_pyg.training.setup import memory_plan
dim, negatives, batch = map(int, sys.argv[1:4])
data = make_synthetic_kg()
config = TrainConfig(dim=dim, margin=6.0, negatives=negatives, batch_size=batch, lr=1e-3,
                     mu=0.1)
plan = memory_plan(data, config, torch.device("cpu"))
base = reset_peak_resident()  # the peak from here on, over the memory here
trainer = Trainer(build_model(data, config), data, config, progress=False)
for start in (0, batch):
    trainer.step(trainer.train_triples[start:start + batch])
trainer.evaluate("valid", progress=False)
peak = peak_resident_bytes()
print(json.dumps({"measured": peak - base, "estimated": plan.needed}))
"""


def measure(dim: int, negatives: int, batch: int) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(dim), str(negatives), str(batch),
                          str(Path(__file__).parent)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("dim, negatives, batch", [(64, 32, 512), (512, 32, 512),
                                                   (1024, 8, 512), (1024, 64, 512),
                                                   (2048, 32, 128)])
def test_memory_estimate_bounds_the_peak(benchmark, dim, negatives, batch):
    benchmark.group = "memory guard: estimate / measured peak (CPU)"
    result = benchmark.pedantic(measure, args=(dim, negatives, batch), rounds=1,
                                iterations=1)
    measured, estimated = result["measured"], result["estimated"]
    benchmark.extra_info.update(result, ratio=estimated / measured)
    assert estimated >= 0.85 * measured
    assert estimated <= 1.6 * measured + (200 << 20)
