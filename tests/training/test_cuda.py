"""Training on CUDA: no host synchronisation inside steps, dense and sparse; CUDA graphs
bitwise equal to eager steps. Skipped without a GPU (``benchmarks/gpu_check.py`` runs
them on one)."""
from dataclasses import replace

import pytest
import torch

from utils import random_kg
from mmkgc_pyg.nn import MMKGCModel
from mmkgc_pyg.training import TrainConfig, Trainer, build_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CONFIG = TrainConfig(dim=8, margin=6.0, negatives=5, batch_size=32, lr=1e-2, lr_g=1e-2,
                     mu=0.5, cuda_graph=False)


def cuda_trainer(config: TrainConfig, num_entities: int = 30) -> Trainer:
    torch.manual_seed(0)
    data = random_kg(num_entities=num_entities, num_train=4 * num_entities)
    return Trainer(build_model(data, config, "cuda"), data, config, progress=False)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("num_entities", [30, 600])  # all entities / touched ones only
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_training_steps_never_synchronise_on_cuda(cuda_graph, num_entities, sparse):
    trainer = cuda_trainer(replace(CONFIG, cuda_graph=cuda_graph, sparse=sparse),
                           num_entities)
    batch = trainer.train_triples[:32]
    for _ in range(5):  # compilation, autotuning, graph warm-up and capture may sync
        trainer.step(batch)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            trainer.step(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert (trainer.step.graph is not None) == cuda_graph


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("mu", [0.0, 0.5])
@pytest.mark.parametrize("bf16", [False, True])
def test_cuda_graph_steps_equal_eager_steps_bitwise(mu, bf16, sparse):
    """The captured step (dense or sparse) replays the eager step bit for bit: the
    training kernel's gradient sums are deterministic (no atomics), so replay and eager
    order them alike, bf16 included."""
    config = replace(CONFIG, mu=mu, bf16=bf16, sparse=sparse)
    eager = cuda_trainer(config, num_entities=200)
    graphed = cuda_trainer(replace(config, cuda_graph=True), num_entities=200)
    for start in range(0, 120, 20):  # 6 steps: 3 warm-up, capture, 2 replays + 1 partial
        size = 32 if start < 100 else 20
        batch = eager.train_triples[start:start + size]
        for a, b in zip(eager.step(batch), graphed.step(batch)):
            assert (a is None) == (b is None)
            if a is not None:
                assert torch.equal(a, b)
    assert graphed.step.graph is not None
    for a, b in zip(eager.model.parameters(), graphed.model.parameters()):
        assert torch.equal(a, b)


def test_model_compiles_with_inductor_on_cuda():
    """The Triton kernels are custom ops, so ``torch.compile`` traces the CUDA path."""
    torch.manual_seed(0)
    data = random_kg()
    model = MMKGCModel(data.num_entities, data.num_relations, 4, features=data.features,
                       masks=data.masks).cuda()
    head, rel, tail = (x.cuda() for x in data.test.unbind(1))
    compiled = torch.compile(model)
    torch.testing.assert_close(compiled(head, rel, tail), model(head, rel, tail))
    torch.testing.assert_close(torch.compile(model.score_tails)(head, rel),
                               model.score_tails(head, rel))
