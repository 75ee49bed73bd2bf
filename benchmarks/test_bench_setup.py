"""Setup at Wikidata5M's size: from an OpenKE folder to a ready :class:`Trainer`.

The target (issue 18, "setup is CPU-bound"): a folder of Wikidata5M's size (4,594,485
entities, 822 relations, 20,614,279 training triples; 5,163 valid and 5,133 test
triples, as in its transductive split) is read by ``load_openke`` and gives a ready
``Trainer`` (``build_model`` then ``Trainer``, ``TrainConfig(dim=4, sparse=True,
modalities=False)``) in at most 60 s on the 2-core CPU machine.

The folder holds random triples (:func:`openke_folder.write_random_openke`), written
once per session into a temporary directory (about 10 s at full size; nothing is kept).
By default it is 1 % of Wikidata5M (45,945 entities and 206,143 training triples; the
same relations, valid and test), so that ``pytest benchmarks/ --benchmark-only`` stays
quick. ``MMKGC_SETUP_SCALE`` scales the entities and training triples: ``1`` is the
full size, and then the target is checked on the CPU.

Timed, each round on a dataset object of its own (nothing cached by an earlier round):
``load_openke`` alone, ``build_model`` + ``Trainer`` alone, and both together.

Run: ``pytest benchmarks/test_bench_setup.py --benchmark-only``; full size:
``MMKGC_SETUP_SCALE=1 pytest benchmarks/test_bench_setup.py --benchmark-only`` (a few
minutes, 7 GB of memory).
"""
import dataclasses
import os

import pytest
import torch

import workloads
from openke_folder import scaled_sizes, write_random_openke
from mmkgc_pyg.data import load_openke
from mmkgc_pyg.training import TrainConfig

SCALE = float(os.environ.get("MMKGC_SETUP_SCALE", "0.01"))
SIZES = scaled_sizes(SCALE)
CONFIG = TrainConfig(dim=4, sparse=True, modalities=False)
TARGET_SECONDS = 60.0
ON_CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if ON_CUDA else "cpu")
# A full-size round takes tens of seconds: one is enough there.
ROUNDS = 1 if SCALE >= 0.5 else 3


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_random_openke(tmp_path_factory.mktemp("setup") / "wikidata5m-sized",
                               **SIZES)


def ready_trainer(dataset):
    trainer = workloads.make_trainer(dataset, CONFIG, DEVICE)
    workloads.synchronize(DEVICE)
    return trainer


def describe(benchmark, what: str) -> None:
    benchmark.group = f"setup: {what} (Wikidata5M-sized OpenKE folder x {SCALE:g})"
    benchmark.extra_info.update(scale=SCALE, device=str(DEVICE), **SIZES)


def test_load_openke(benchmark, folder):
    describe(benchmark, "load_openke")
    benchmark.pedantic(load_openke, args=(folder,), rounds=ROUNDS, iterations=1)


def test_build_model_and_trainer(benchmark, folder):
    describe(benchmark, "build_model + Trainer")
    dataset = load_openke(folder)

    def fresh():  # a new dataset object: no fingerprint kept from the last round
        return (dataclasses.replace(dataset),), {}

    benchmark.pedantic(ready_trainer, setup=fresh, rounds=ROUNDS)


def test_load_and_trainer(benchmark, folder):
    describe(benchmark, "load_openke + build_model + Trainer")
    benchmark.pedantic(lambda: ready_trainer(load_openke(folder)), rounds=ROUNDS,
                       iterations=1)
    if benchmark.stats is not None and SCALE == 1 and not ON_CUDA:
        seconds = benchmark.stats.stats.median
        assert seconds <= TARGET_SECONDS, (f"a Wikidata5M-sized folder took {seconds:.1f} s "
                                           f"to a ready Trainer (target {TARGET_SECONDS} s)")
