"""RotatE kernels: Triton vs the PyTorch reference at DB15K's sizes.

* ``rotate ranking``: filtered ranking of DB15K's whole test (9,902 triples, both sides:
  19,804 queries) against its 12,842 entities, dim k = 250 (D = 500), with random filter
  lists of 0-8 entities per query. The physical limit (docs/anchors.md) is one square root
  per complex modulus: 6.4e10 of them, about 15 ms on an H100; the target is <= 30 ms.
  The Triton kernel runs on the entity rows as given (transposed by each call) and on
  their ``rotate_entity_columns`` table (laid out once, as evaluation does).
* ``rotate scores``: the same queries' full ``[B, N]`` score matrix.
* ``rotate training``: forward + backward of one training step's candidate scores,
  B = 1024 queries x C = 129 candidates (1 positive + 128 negatives) over the same entities.
* ``DB15K filtered test``: ``workloads.filtered_test_ranking`` -- a model at the paper's
  configuration ranks DB15K's whole test (real triples and filters when ``MMKGC_DB15K``
  names the folder) in one call, alone and as the whole ``evaluate_link_prediction``
  (the rows of ``gpu_check.py``); on the CPU the first ``CPU_QUERIES // 2`` test triples.

``extra_info`` reports queries/s and complex moduli/s (``B * N * k / time``; for training
``2 * B * C * k / time``, forward and backward each take one per pair and dim).

Without CUDA the Triton cases skip, and the references run on a documented subset
(``CPU_QUERIES`` queries, ``CPU_BATCH`` training queries) with a fixed number of rounds:
the full reference ranking takes many minutes on a CPU.
Run: ``pytest benchmarks/test_bench_rotate.py --benchmark-only``.
"""
import os
from pathlib import Path

import pytest
import torch

import workloads

from mmkgc_pyg.evaluation import Ranks
from mmkgc_pyg.kernels.rotate import (rotate_entity_columns, rotate_rank_counts, rotate_scores,
                                      rotate_scores_reference)
from mmkgc_pyg.kernels.rotate_train import (rotate_gather_scores,
                                            rotate_gather_scores_reference)

ON_CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if ON_CUDA else "cpu")
N, K = 12_842, 250  # DB15K entities, complex dims
CPU_QUERIES, CPU_BATCH = 32, 128
QUERIES = 19_804 if ON_CUDA else CPU_QUERIES
BATCH, CANDIDATES = (1024 if ON_CUDA else CPU_BATCH), 129
ROUNDS = {"triton": 20, "reference": 3}  # the references are slow
needs_cuda = pytest.mark.skipif(not ON_CUDA, reason="Triton kernels are benchmarked on CUDA only")
PATHS = [pytest.param("triton", marks=needs_cuda), "reference"]


def sync():
    if ON_CUDA:
        torch.cuda.synchronize()


def pick(path: str, monkeypatch, kernel, reference):
    """The function benchmarked on ``path``; the public kernel is forced onto Triton."""
    if path == "triton":
        monkeypatch.setattr("mmkgc_pyg.kernels.utils._mode", "triton")
        return kernel
    return reference


def rank_counts_reference(query, entities, target, filter_ptr, filter_idx):
    """Counts from the reference's score matrix (chunked: [B, N] at once)."""
    return Ranks.from_scores(rotate_scores_reference(query, entities, 0.0), target, filter_ptr,
                             filter_idx)


def measure(benchmark, path: str, run, moduli: int, queries: int):
    """Time ``run`` (after one untimed call: compilation, the tile's timing) and record
    rates."""
    run()
    benchmark.pedantic(run, rounds=ROUNDS[path], iterations=1)
    benchmark.extra_info.update(queries=queries, device=str(DEVICE))
    if benchmark.stats is not None:  # None under --benchmark-disable
        seconds = benchmark.stats.stats.median
        benchmark.extra_info["queries/s"] = round(queries / seconds)
        benchmark.extra_info["Gmoduli/s"] = round(moduli / seconds / 1e9, 2)


@pytest.fixture(scope="module")
def ranking_inputs():
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    query = torch.randn(QUERIES, 2 * K, generator=gen, device=DEVICE)
    entities = torch.randn(N, 2 * K, generator=gen, device=DEVICE)
    target = torch.randint(0, N, (QUERIES, ), generator=gen, device=DEVICE)
    counts = torch.randint(0, 9, (QUERIES, ), generator=gen, device=DEVICE)
    filter_ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    # Random entities; unique within a list (offsets from a random start, mod N).
    start = torch.randint(0, N, (QUERIES, ), generator=gen, device=DEVICE)
    offset = torch.arange(int(filter_ptr[-1]), device=DEVICE) - filter_ptr[:-1].repeat_interleave(
        counts)
    filter_idx = (start.repeat_interleave(counts) + 97 * offset) % N
    return query, entities, target, filter_ptr, filter_idx


@pytest.mark.parametrize("path", PATHS)
def test_filtered_ranking(benchmark, path, ranking_inputs, monkeypatch):
    benchmark.group = f"rotate ranking B={QUERIES} N={N} k={K}"
    rank = pick(path, monkeypatch, rotate_rank_counts, rank_counts_reference)

    def run():
        rank(*ranking_inputs)
        sync()

    measure(benchmark, path, run, QUERIES * N * K, QUERIES)


@needs_cuda
def test_filtered_ranking_entity_columns(benchmark, ranking_inputs, monkeypatch):
    benchmark.group = f"rotate ranking B={QUERIES} N={N} k={K}"
    rank = pick("triton", monkeypatch, rotate_rank_counts, rank_counts_reference)
    query, entities, *lists = ranking_inputs
    table = rotate_entity_columns(entities)

    def run():
        rank(query, table, *lists)
        sync()

    measure(benchmark, "triton", run, QUERIES * N * K, QUERIES)


@pytest.mark.parametrize("path", PATHS)
def test_scores(benchmark, path, ranking_inputs, monkeypatch):
    benchmark.group = f"rotate scores B={QUERIES} N={N} k={K}"
    score = pick(path, monkeypatch, rotate_scores, rotate_scores_reference)
    query, entities = ranking_inputs[:2]

    def run():
        score(query, entities, 12.0)
        sync()

    measure(benchmark, path, run, QUERIES * N * K, QUERIES)


@pytest.mark.parametrize("path", PATHS)
def test_training_forward_backward(benchmark, path, monkeypatch):
    benchmark.group = f"rotate training B={BATCH} C={CANDIDATES} N={N} k={K}"
    gather = pick(path, monkeypatch, rotate_gather_scores, rotate_gather_scores_reference)
    gen = torch.Generator(device=DEVICE).manual_seed(1)
    query = torch.randn(BATCH, 2 * K, generator=gen, device=DEVICE, requires_grad=True)
    entities = torch.randn(N, 2 * K, generator=gen, device=DEVICE, requires_grad=True)
    index = torch.randint(0, N, (BATCH, CANDIDATES), generator=gen, device=DEVICE)
    grad_out = torch.randn(BATCH, CANDIDATES, generator=gen, device=DEVICE)

    def run():
        scores = gather(query, entities, index, 12.0)
        torch.autograd.grad(scores, (query, entities), grad_out)
        sync()

    measure(benchmark, path, run, 2 * BATCH * CANDIDATES * K, BATCH)


@pytest.fixture(scope="module")
def db15k_test():
    folder = os.environ.get("MMKGC_DB15K")
    dataset = workloads.paper_scale_dataset(Path(folder) if folder else None)
    return workloads.filtered_test_ranking(dataset, workloads.PAPER_CONFIG, DEVICE,
                                           None if ON_CUDA else CPU_QUERIES // 2)


@pytest.mark.parametrize("what", ["ranking", "evaluate_link_prediction"])
def test_db15k_filtered_test(benchmark, what, db15k_test):
    rank, evaluate, queries = db15k_test[:3]
    benchmark.group = f"DB15K filtered test ({len(queries)} queries)"
    fn = rank if what == "ranking" else evaluate

    def run():
        fn()
        sync()

    path = "triton" if ON_CUDA else "reference"
    measure(benchmark, path, run, len(queries) * N * K, len(queries))
