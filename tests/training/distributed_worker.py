"""Trains a small AdaMF-MAT model in one process, or in each of several under torchrun;
every rank saves its final parameters and its test metrics (each rank ranks its share of
the queries), and the metrics of a fixed untrained model. Used by
test_distributed.py."""
import json
import os
import sys

import torch
import torch.distributed as dist

from mmkgc_pyg.data import SyntheticGraph, make_synthetic_kg
from mmkgc_pyg.training import TrainConfig, Trainer
from mmkgc_pyg.training.setup import build_model


def main(out: str):
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    data = make_synthetic_kg(SyntheticGraph(
        num_entities=500, num_relations=8, num_train=4000, num_valid=300, num_test=300))
    config = TrainConfig(dim=16, margin=6.0, negatives=16, batch_size=256, lr=0.01,
                         lr_g=1e-3, mu=0.1, epochs=12, eval_every=4, patience=5)
    torch.manual_seed(config.seed)
    trainer = Trainer(build_model(data, config), data, config, progress=False)
    last = {}
    trainer.fit([lambda _: last.update(
        {k: v.detach().clone() for k, v in trainer.model.state_dict().items()})])
    torch.save(last, os.path.join(out, f"rank{rank}.pt"))
    metrics = trainer.evaluate("test")  # every rank ranks its share
    with open(os.path.join(out, f"metrics{rank}.json"), "w") as f:
        json.dump({"test": metrics, "world_size": trainer.world_size}, f)
    # The evaluation alone, of one fixed model, split across the ranks.
    torch.manual_seed(0)
    fixed = build_model(data, config)
    fixed_metrics = Trainer(fixed, data, config, progress=False).evaluate("test")
    with open(os.path.join(out, f"fixed{rank}.json"), "w") as f:
        json.dump(fixed_metrics, f)


if __name__ == "__main__":
    main(sys.argv[1])
    # Only now, with the trainers (and their DDP reducers) freed: a reducer that outlives
    # the group destroys it while holding the GIL, which can deadlock gloo's threads.
    if dist.is_initialized():
        dist.destroy_process_group()
