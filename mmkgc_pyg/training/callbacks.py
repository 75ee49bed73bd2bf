"""Post-epoch callbacks of :meth:`Trainer.fit <mmkgc_pyg.training.Trainer.fit>` (PyKEEN's
training callbacks): what a run does after each epoch besides validating. A callback is
any callable of the epoch's record; these hold what they need."""
from pathlib import Path
from typing import Dict, Iterable, Optional

from mmkgc_pyg.checkpoint import save_checkpoint
from mmkgc_pyg.training import run_state
from mmkgc_pyg.training.trackers import Tracker
from mmkgc_pyg.training.trainer import Trainer


class BestModelWriter:
    """Writes the model file (``model.pt``, :func:`~mmkgc_pyg.save_checkpoint`) whenever
    an epoch's validation gives the best weights so far, from rank 0.

    Args:
        trainer: the trainer whose stopper keeps the best weights.
        path: the model file.
        dataset_metadata: saved with it (how to find the dataset again).
    """

    def __init__(self, trainer: Trainer, path, dataset_metadata: Dict):
        self.trainer, self.path, self.dataset_metadata = trainer, Path(path), dataset_metadata

    def __call__(self, record: Dict) -> None:
        if self.trainer.rank == 0 and self.trainer.stopper.improved_at(record["epoch"]):
            self.write()

    def write(self) -> None:
        save_checkpoint(self.trainer.model, self.path, self.dataset_metadata,
                        self.trainer.stopper.best_state)


class TrainingCheckpointer:
    """Writes the full training state (:mod:`~mmkgc_pyg.training.run_state`) every
    ``every`` epochs (0: never); every rank must run it.

    Args:
        trainer: the trainer.
        path: the state file (``checkpoint.pt``).
        every: epochs between writes.
        run_id: the run the state belongs to.
    """

    def __init__(self, trainer: Trainer, path, every: int, run_id: Optional[str] = None):
        self.trainer, self.path, self.every, self.run_id = trainer, Path(path), every, run_id

    def __call__(self, record: Dict) -> None:
        if self.every and record["epoch"] % self.every == 0:
            self.save()

    def save(self) -> None:
        run_state.save(self.trainer, self.path, self.run_id)


class EpochLogger:
    """Logs every epoch's record to the trackers."""

    def __init__(self, trackers: Iterable[Tracker]):
        self.trackers = list(trackers)

    def __call__(self, record: Dict) -> None:
        for tracker in self.trackers:
            tracker.log_epoch(record)
