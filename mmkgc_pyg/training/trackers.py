"""Where a run's configuration and per-epoch figures go: one small interface, one class
per destination (PyKEEN's result-tracker shape)."""
import json
from pathlib import Path
from typing import Dict, Iterable, Optional

from mmkgc_pyg.errors import UserInputError


def flatten(record: Dict, prefix: str = "") -> Dict[str, float]:
    """``{"valid": {"mrr": 0.3}}`` -> ``{"valid/mrr": 0.3}``: numbers only, nested keys
    joined by ``/``."""
    flat = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


class Tracker:
    """Receives the run's configuration once, then one record per epoch."""

    def log_config(self, config: Dict) -> None:
        pass

    def log_epoch(self, record: Dict) -> None:
        """``record`` has ``epoch``, the training losses and timings, and ``valid``
        metrics on validation epochs."""

    def close(self) -> None:
        pass


class HistoryTracker(Tracker):
    """Appends each epoch's record as one JSON line to ``path`` (``history.jsonl``)."""

    def __init__(self, path):
        self.path = Path(path)

    def log_epoch(self, record: Dict) -> None:
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise UserInputError(f"{self.path}: cannot write ({exc.strerror})") from None


class TensorBoardTracker(Tracker):
    """Scalars for TensorBoard in ``log_dir`` (the optional ``tensorboard`` package)."""

    def __init__(self, log_dir):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserInputError("--tracker tensorboard: expected the tensorboard package "
                                 "(pip install tensorboard)") from None
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def log_config(self, config: Dict) -> None:
        self.writer.add_text("config", json.dumps(config, indent=2))

    def log_epoch(self, record: Dict) -> None:
        epoch = record["epoch"]
        for key, value in flatten({k: v for k, v in record.items() if k != "epoch"}).items():
            self.writer.add_scalar(key if "/" in key else f"train/{key}", value, epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def make_trackers(names: Iterable[str], out_dir: Optional[Path]):
    """The history file and the named trackers of a run writing to ``out_dir``."""
    if out_dir is None:
        return []
    trackers = [HistoryTracker(out_dir / "history.jsonl")]
    for name in names:
        if name == "tensorboard":
            trackers.append(TensorBoardTracker(out_dir / "tensorboard"))
        else:
            raise ValueError(f"tracker {name!r}: expected tensorboard")
    return trackers
