"""A run's full training state: everything that continues training exactly where it
stopped (the weights, every optimiser, every random stream, the epoch and the position
inside it, the early stopper and its best weights), written to and read from one file.

A state carries the ``run_id`` of the run that wrote it, so that one run is never resumed
from another's file.
"""
from pathlib import Path
from typing import Dict, Optional

import torch.distributed as dist

from mmkgc_pyg.errors import CheckpointError
from mmkgc_pyg.io import atomic_torch_save, restricted_torch_load
from mmkgc_pyg.training.trainer import Trainer


def state_dict(trainer: Trainer, run_id: Optional[str] = None) -> Dict:
    """The training state of ``trainer`` (every rank must call it: it gathers every
    rank's sampling stream)."""
    return {
        "config": trainer.config.to_dict(),
        "epoch": trainer.epoch,
        "model": trainer.model.state_dict(),
        "step": trainer.step.state_dict(),
        "rng": _all_rank_rng_states(trainer),
        "shuffle_rng": trainer.shuffle_rng.get_state(),
        "stopper": trainer.stopper.state_dict(),
        "epoch_progress": trainer.epoch_progress,
        "run_id": run_id,
    }


def load_state_dict(trainer: Trainer, state: Dict) -> None:
    """Puts ``trainer`` back where :func:`state_dict` saw it."""
    trainer.epoch = state["epoch"]
    trainer.model.load_state_dict(state["model"])
    trainer.step.load_state_dict(state["step"])
    trainer.step.rng.set_state(state["rng"][trainer.rank].cpu())
    trainer.shuffle_rng.set_state(state["shuffle_rng"].cpu())
    trainer.stopper.load_state_dict(state["stopper"])
    trainer.resume_progress = state["epoch_progress"]
    if trainer.resume_progress is not None:
        trainer.resume_progress["shuffle_state"] = trainer.resume_progress["shuffle_state"].cpu()


def save(trainer: Trainer, path, run_id: Optional[str] = None) -> None:
    """Atomically writes the training state to ``path`` from rank 0; every rank must
    call it."""
    state = state_dict(trainer, run_id)
    if trainer.rank == 0:
        atomic_torch_save(state, path)


def resume(trainer: Trainer, path, run_id: Optional[str] = None) -> None:
    """Continues ``trainer`` from the state in ``path``, which must carry ``run_id``.

    Raises:
        CheckpointError: the file is missing or unreadable, belongs to another run, or
            does not fit the trainer.
    """
    path = Path(path)
    try:
        state = restricted_torch_load(path, map_location=trainer.device)
    except Exception as exc:  # unpickling errors vary by torch version
        raise CheckpointError(f"{path}: expected a training checkpoint of this run "
                              f"({exc.__class__.__name__})") from None
    if not isinstance(state, dict) or state.get("run_id") != run_id:
        found = state.get("run_id") if isinstance(state, dict) else None
        raise CheckpointError(f"{path}: belongs to another run (run id {found}, while this "
                              f"is run {run_id}); start a new run instead of resuming")
    try:
        load_state_dict(trainer, state)
    except Exception as exc:  # missing keys or mismatched shapes: not this run's
        raise CheckpointError(f"{path}: expected a training checkpoint of this run "
                              f"({exc.__class__.__name__}: {str(exc)[:120]})") from None


def position(trainer: Trainer) -> str:
    """Where training stands, in the words an interruption uses: ``in epoch E after step
    S`` inside an epoch, else ``after epoch E``."""
    progress = trainer.resume_progress or trainer.epoch_progress
    if progress is not None:
        return f"in epoch {trainer.epoch + 1} after step {progress['step']}"
    return f"after epoch {trainer.epoch}"


def _all_rank_rng_states(trainer: Trainer):
    """Every rank's sampling RNG state (each rank draws its own negatives)."""
    state = trainer.step.rng.get_state()
    if trainer.world_size == 1:
        return [state]
    states = [None] * trainer.world_size
    dist.all_gather_object(states, state)
    return states
