"""The timed workloads, shared by the pytest-benchmark suite and ``gpu_check.py``.

Each workload is built here once, so the one-command GPU check and
``pytest benchmarks/ --benchmark-only`` time exactly the same code:

* the device's copy bandwidth (the roofline of the memory-bound fusion);
* the fused AdaMF attention, forward and forward + backward;
* DB15K's full filtered test ranking (both directions, realistic ranks);
* training epochs at the paper's DB15K configuration, in several variants.

The paper-scale graph is DB15K's real triples when a folder is given (else random
triples of DB15K's sizes), always with random modality features of the paper's sizes
(visual 4096-d, textual 768-d; 80 % of entities have each), since the paper's feature
files are not redistributable.
"""
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

from mmkgc_pyg.data.kg import KGDataset
from mmkgc_pyg.evaluation import LinkPredictionQueries, Ranks, evaluate_link_prediction
from mmkgc_pyg.training import TrainConfig, Trainer
from mmkgc_pyg.training.setup import build_model
from mmkgc_pyg.training.step import tf32_matmuls

DB15K_SIZES = dict(entities=12_842, relations=279, train=79_222, valid=9_904, test=9_902)
PAPER_FEATURES = {"visual": 4096, "textual": 768}
# The paper's DB15K configuration, with MAT's loss on (mu = 0.1) so that every part runs.
PAPER_CONFIG = TrainConfig(dim=250, margin=12.0, negatives=128, batch_size=1024, lr=1e-4,
                           mu=0.1)

# name -> (changes to PAPER_CONFIG, whether the model has modalities)
TRAINING_VARIANTS: Dict[str, tuple] = {
    "default (CUDA graph, TF32)": ({}, True),
    "--no-cuda-graph": ({"cuda_graph": False}, True),
    "--no-tf32": ({"tf32": False}, True),
    "--bf16": ({"bf16": True}, True),
    "--mu 0 (released scripts)": ({"mu": 0.0}, True),
    "--no-mat": ({"mat": False}, True),
    "--no-modalities": ({}, False),
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], device: torch.device, repeats: int) -> List[float]:
    """Seconds of each of ``repeats`` calls, run back to back. On a GPU, CUDA events
    between the calls with one synchronisation before and one after: while the host runs
    ahead of the device, each interval is one call's device time, not its Python dispatch
    (the first interval also holds the first launch's latency, so take the median of
    several; a call that synchronises by itself includes its host time)."""
    if device.type != "cuda":
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return times
    events = [torch.cuda.Event(enable_timing=True) for _ in range(repeats + 1)]
    synchronize(device)
    events[0].record()
    for event in events[1:]:
        fn()
        event.record()
    events[-1].synchronize()
    return [start.elapsed_time(end) / 1e3 for start, end in zip(events, events[1:])]


def median(values: List[float]) -> float:
    return sorted(values)[len(values) // 2]


# ----------------------------------------------------------------------------- bandwidth
def copy_bandwidth(device: torch.device, elements: int = 2**28, repeats: int = 20) -> float:
    """Device-to-device copy bandwidth in bytes/s, counting bytes read and written (1 GiB
    of float32 by default)."""
    src = torch.empty(elements, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    seconds = median(time_calls(lambda: dst.copy_(src), device, repeats))
    return 2 * src.numel() * src.element_size() / seconds


# ----------------------------------------------------------------------------- fusion
def fusion_inputs(n: int, m: int, d: int, device: torch.device, seed: int = 0):
    """Random ``embs [n, m, d]``, ``attn [d]``, ``mask [n, m]``, ``grad_joint [n, d]``."""
    gen = torch.Generator(device=device).manual_seed(seed)
    embs = torch.randn(n, m, d, generator=gen, device=device)
    attn = torch.randn(d, generator=gen, device=device) / d**0.5
    mask = torch.rand(n, m, generator=gen, device=device) < 0.8
    grad_joint = torch.randn(n, d, generator=gen, device=device)
    return embs, attn, mask, grad_joint


def fusion_forward_bytes(n: int, m: int, d: int) -> int:
    """Least traffic of a fused forward: read embs and mask, write joint and weights."""
    return 4 * n * m * d + n * m + 4 * n * d + 4 * n * m


def fusion_backward_bytes(n: int, m: int, d: int) -> int:
    """Least traffic of a fused backward: read embs, grad_joint and weights, write
    grad_embs (the attention-gradient partials are O(d))."""
    return 2 * 4 * n * m * d + 4 * n * d + 4 * n * m


def fusion_runners(fusion, embs, attn, mask, grad_joint):
    """(forward, forward + backward) closures of a fusion function on these inputs."""
    leaf_embs = embs.detach().requires_grad_()
    leaf_attn = attn.detach().requires_grad_()

    def forward():
        with torch.no_grad():
            fusion(embs, attn, mask)

    def forward_backward():
        joint, _ = fusion(leaf_embs, leaf_attn, mask)
        torch.autograd.grad(joint, (leaf_embs, leaf_attn), grad_joint)

    return forward, forward_backward


# ----------------------------------------------------------------------------- datasets
def random_graph(sizes: Dict[str, int], feature_sizes: Dict[str, int],
                 availability: float = 0.8, name: str = "random", seed: int = 0) -> KGDataset:
    """Uniformly random triples of ``sizes`` (entities, relations, train, valid, test) and
    random features of ``feature_sizes`` for a fraction ``availability`` of the entities
    each: a stand-in of any size for timing (what it learns does not matter)."""
    g = torch.Generator().manual_seed(seed)
    n, r = sizes["entities"], sizes["relations"]

    def triples(count):
        return torch.stack([torch.randint(n, (count,), generator=g),
                            torch.randint(r, (count,), generator=g),
                            torch.randint(n, (count,), generator=g)], 1)

    masks = {m: torch.rand(n, generator=g) < availability for m in feature_sizes}
    features = {m: torch.randn(n, d, generator=g) * masks[m][:, None]
                for m, d in feature_sizes.items()}
    return KGDataset(name, n, r, triples(sizes["train"]), triples(sizes["valid"]),
                     triples(sizes["test"]), [f"e{i}" for i in range(n)],
                     [f"r{i}" for i in range(r)], features, masks)


def paper_scale_dataset(folder: Optional[Path] = None, seed: int = 0,
                        sizes: Optional[Dict[str, int]] = None,
                        feature_sizes: Optional[Dict[str, int]] = None) -> KGDataset:
    """DB15K's triples (from ``folder``, else random triples of ``sizes``) with random
    features of ``feature_sizes`` (default: the paper's) for 80 % of the entities each."""
    feature_sizes = feature_sizes or PAPER_FEATURES
    graph = random_graph(sizes or DB15K_SIZES, feature_sizes, name="DB15K-sized", seed=seed)
    if folder is None:
        return graph
    from mmkgc_pyg.data import load_openke
    base = load_openke(folder, features={})
    if base.num_entities != graph.num_entities:
        graph = random_graph({**DB15K_SIZES, "entities": base.num_entities}, feature_sizes,
                             seed=seed)
    return replace(base, features=graph.features, masks=graph.masks)


# Wikidata5M's size with a text feature for 90 % of its entities (the target).
WIKIDATA5M_SIZES = dict(entities=4_594_485, relations=822, train=20_614_279, valid=5_163,
                        test=5_133)


def make_trainer(dataset: KGDataset, config: TrainConfig, device: torch.device,
                 modalities: bool = True) -> Trainer:
    """The model ``python -m mmkgc_pyg.train`` builds for ``config``, and its trainer."""
    config = replace(config, modalities=config.modalities and modalities)
    torch.manual_seed(config.seed)
    return Trainer(build_model(dataset, config, device), dataset, config, progress=False)


def steps_per_epoch(trainer: Trainer) -> int:
    return math.ceil(trainer.train_triples.size(0) / trainer.config.batch_size)


def time_epochs(trainer: Trainer, epochs: int, warmup: int = 1) -> Dict[str, float]:
    """Median seconds per epoch after ``warmup`` epochs (compilation, autotuning, graph
    capture), ms per step, and the last epoch's mean loss."""
    for _ in range(warmup):
        trainer.train_epoch()
    records = [trainer.train_epoch() for _ in range(epochs)]  # each ends with one sync
    seconds = median([r["seconds"] for r in records])
    return {"epoch_s": seconds, "step_ms": 1e3 * seconds / steps_per_epoch(trainer),
            "loss": records[-1]["loss"]}


# ----------------------------------------------------------------------------- ranking
def filtered_test_ranking(dataset: KGDataset, config: TrainConfig, device: torch.device,
                          num_triples: Optional[int] = None):
    """The full filtered test of a freshly initialised model at ``config``: returns
    ``(rank, evaluate, queries, vectors, joint)``, where ``rank()`` ranks every query of
    both directions (from cached joint embeddings; one fused kernel call on the
    interaction's ``ranking_table`` where it has one) and ``evaluate()`` runs the whole
    :func:`evaluate_link_prediction` (fusion, queries, ranks, metrics)."""
    trainer = make_trainer(dataset, config, device)
    model = trainer.model.eval()
    test = dataset.test[:num_triples].to(device)
    queries = LinkPredictionQueries.build(test, trainer.filter_index)
    with torch.no_grad():
        joint = model.entity_embeddings()
        vectors = queries.vectors(model, joint)
        fused = model.interaction.fused_ranking(vectors, joint)
        # As evaluation does: the entities laid out for the kernel once, before the calls.
        table = model.interaction.ranking_table(joint) if fused else None
    args = (queries.target, queries.filter_ptr, queries.filter_idx)

    @torch.no_grad()
    def rank() -> Ranks:
        if fused:
            return Ranks(*model.interaction.rank_counts(vectors, table, *args))
        return Ranks.from_scores(model.interaction.score_all(vectors, joint), *args)

    def evaluate():
        return evaluate_link_prediction(model, queries)

    return rank, evaluate, queries, vectors, joint


# ----------------------------------------------------------------------------- scaling
SCALING_CONFIG = TrainConfig(dim=16, margin=6.0, negatives=32, batch_size=512, lr=1e-3,
                             mu=0.1, sparse=True)
SCALING_TRAIN_TRIPLES = 20_000


def scaling_graph(num_entities: int, seed: int = 0) -> KGDataset:
    """The synthetic generator at ``num_entities`` with types of 50 entities each, two
    modalities (textual 32-d for ~70 %, visual 16-d for ~50 %), and the same 20,000
    training triples at every size (so that only the number of entities changes)."""
    from mmkgc_pyg.data import SyntheticGraph, make_synthetic_kg
    kg = make_synthetic_kg(SyntheticGraph(
        num_entities=num_entities, num_clusters=max(40, num_entities // 50), domain_size=32,
        num_train=SCALING_TRAIN_TRIPLES, num_valid=500, num_test=500, long_tail=0.0,
        modalities={"textual": (32, 0.7), "visual": (16, 0.5)}), seed=seed)
    return replace(kg, train=kg.train[:SCALING_TRAIN_TRIPLES])


def table_bytes(trainer: Trainer) -> int:
    """Bytes of the parameters and optimiser state (what must grow with the graph), after
    a training step: Adam creates its moments at its first step, so one is taken here when
    no step has run yet (before it, the state would count a third of itself)."""
    optimizers = [o for o in (trainer.step.model_optimizer, trainer.step.table_optimizer)
                  if o is not None]
    if not all(optimizer.state for optimizer in optimizers):
        time_steps(trainer, steps=1, warmup=0)
    tensors = [p for p in trainer.model.parameters()]
    for optimizer in optimizers:
        tensors += [t for state in optimizer.state.values() for t in state.values()
                    if isinstance(t, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in tensors)


def time_steps(trainer: Trainer, steps: int, warmup: int = 3) -> float:
    """Median seconds of one training step (the full batch size) after ``warmup``, with
    TF32 products as the configuration asks (as ``train_epoch`` runs its steps)."""
    batch = trainer.train_triples[:trainer.config.batch_size]
    with tf32_matmuls(trainer.device, trainer.config.tf32):
        for _ in range(warmup):
            trainer.step(batch)
        return median(time_calls(lambda: trainer.step(batch), trainer.device, steps))


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))


def reset_peak_resident() -> int:
    """Starts a new peak-resident-memory window (Linux: ``clear_refs`` 5) and returns the
    resident memory now, the window's base."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_bytes("VmRSS")


def peak_resident_bytes() -> int:
    """This process's peak resident memory since :func:`reset_peak_resident` (CPU)."""
    return _status_bytes("VmHWM")
