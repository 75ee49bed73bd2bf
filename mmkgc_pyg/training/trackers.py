"""Where a run's configuration, per-epoch figures, final metrics and files go: one small
interface, one class per destination (PyKEEN's result-tracker shape).

The MLflow and Weights & Biases trackers need their optional extras (``[mlflow]``,
``[wandb]``) and are configured by those tools' own environment variables.
"""
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from mmkgc_pyg.errors import InputError, InvalidArgumentError
from mmkgc_pyg.extras import require
from mmkgc_pyg.io import atomic_write_text, first_line


#: Numbers of a record that are sizes, not metrics (how many ranks a figure averages).
NOT_METRICS = ("count",)


def flatten(record: Dict, prefix: str = "") -> Dict[str, float]:
    """``{"valid": {"mrr": 0.3}}`` -> ``{"valid/mrr": 0.3}``: metrics only (numbers that
    are not sizes), nested keys joined by ``/``."""
    flat = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "/"))
        elif (isinstance(value, (int, float)) and not isinstance(value, bool)
              and key not in NOT_METRICS):
            flat[name] = float(value)
    return flat


def flatten_params(config: Dict, prefix: str = "") -> Dict[str, str]:
    """``{"features": {"visual": "v.pt"}, "lr": 0.1}`` -> ``{"features/visual": "v.pt",
    "lr": "0.1"}``: every setting as text, nested keys joined by ``/``."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten_params(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


class Tracker:
    """One run's destination: :meth:`start_run` with the run's settings, then one record
    per epoch, then the final metrics and the run's files, and :meth:`end_run` (PyKEEN's
    result-tracker lifecycle). One owner drives it from start to end:
    :func:`mmkgc_pyg.pipeline` (and so ``python -m mmkgc_pyg.train``)."""

    def start_run(self, settings: Dict) -> None:
        """``settings`` holds every setting of the run (and its ``run_id``)."""

    def log_epoch(self, record: Dict) -> None:
        """``record`` has ``epoch``, the training losses and timings, and ``valid``
        metrics on validation epochs."""

    def resume(self, epoch: int) -> None:
        """The run continues from a checkpoint after ``epoch``: the epochs after it that
        a killed run logged are about to be logged again."""

    def log_final(self, metrics: Dict) -> None:
        """The run's final ``metrics`` (as in ``metrics.json``)."""

    def log_artifact(self, path: Path, kind: str = "file") -> None:
        """A file of the run; ``kind`` is ``"model"``, ``"config"`` or ``"metrics"``."""

    def end_run(self, success: bool = True) -> None:
        """Ends the run: finished when ``success``, else failed or interrupted."""


class HistoryTracker(Tracker):
    """Appends each epoch's record as one JSON line to ``path`` (``history.jsonl``)."""

    def __init__(self, path):
        self.path = Path(path)

    def log_epoch(self, record: Dict) -> None:
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise InputError(f"{self.path}: cannot write ({exc.strerror})") from None

    def resume(self, epoch: int) -> None:
        """Drops the lines of epochs after ``epoch`` (they will be redone)."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line)["epoch"] <= epoch:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                break  # a line cut short by the kill: everything after it is redone
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))


class TensorBoardTracker(Tracker):
    """Scalars for TensorBoard in ``log_dir`` (the optional ``tensorboard`` package)."""

    def __init__(self, log_dir):
        require("tensorboard", "tensorboard", "the TensorBoard tracker")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def start_run(self, settings: Dict) -> None:
        self.writer.add_text("config", json.dumps(settings, indent=2))
        self.settings = settings

    def log_epoch(self, record: Dict) -> None:
        epoch = record["epoch"]
        for key, value in flatten({k: v for k, v in record.items() if k != "epoch"}).items():
            self.writer.add_scalar(key if "/" in key else f"train/{key}", value, epoch)
        self.writer.flush()

    def log_final(self, metrics: Dict) -> None:
        final = flatten(metrics, "final/")
        for key, value in final.items():
            self.writer.add_scalar(key, value, 0)
        # The HParams dashboard: the run's settings beside its final metrics.
        hparams = {k: v if isinstance(v, (int, float, str, bool)) else str(v)
                   for k, v in flatten_params(getattr(self, "settings", {})).items()}
        self.writer.add_hparams(hparams, {f"hparam/{k}": v for k, v in final.items()},
                                run_name=".")
        self.writer.flush()

    def end_run(self, success: bool = True) -> None:
        self.writer.close()


class MLflowTracker(Tracker):
    """One MLflow run: the settings as parameters, each epoch's figures as metrics at
    step ``epoch``, the final metrics under ``final/``, and the run's files as artifacts
    (the model under ``model/``).

    The store is MLflow's: ``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else MLflow's
    default (``sqlite:///mlflow.db`` in the working folder; artifacts in ``./mlruns``);
    the experiment is ``experiment``, else ``MLFLOW_EXPERIMENT_NAME``, else
    ``mmkgc-pyg``. Metric names take ``_at_`` for ``@`` (``valid/hits_at_10``), which
    MLflow does not allow.
    """

    def __init__(self, run_name: str, tracking_uri: Optional[str] = None,
                 experiment: Optional[str] = None):
        require("mlflow", "mlflow", "the MLflow tracker")
        from mlflow.tracking import MlflowClient

        store = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
        try:
            self.client = MlflowClient(tracking_uri)
        except Exception as exc:  # noqa: BLE001 - store errors vary by backend
            if "MLFLOW_ALLOW_FILE_STORE" in str(exc):  # MLflow 3 keeps file stores behind it
                raise InputError(f"MLflow tracker: the file store {store} needs "
                                 "MLFLOW_ALLOW_FILE_STORE=true, or use a database store "
                                 "(MLFLOW_TRACKING_URI=sqlite:///mlflow.db)") from None
            raise InputError(f"MLflow tracker: cannot open the store {store} "
                             f"({first_line(exc, 300)})") from None
        self.run_name = run_name
        self.experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME", "mmkgc-pyg")
        self.run_id: Optional[str] = None

    def _run(self, tags: Optional[Dict[str, str]] = None) -> str:
        if self.run_id is None:
            try:
                found = self.client.get_experiment_by_name(self.experiment)
                experiment_id = (found.experiment_id if found is not None
                                 else self.client.create_experiment(self.experiment))
                self.run_id = self.client.create_run(experiment_id, tags=tags,
                                                     run_name=self.run_name).info.run_id
            except Exception as exc:  # noqa: BLE001 - store errors vary by backend
                raise InputError(f"MLflow tracker: cannot start a run in "
                                 f"{self.client.tracking_uri} ({first_line(exc, 300)})") from None
        return self.run_id

    def _log_metrics(self, values: Dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key.replace("@", "_at_"), value, now, step)
                   for key, value in values.items()]
        run_id = self._run()
        for start in range(0, len(metrics), 1000):  # MLflow's batch limit
            self.client.log_batch(run_id, metrics=metrics[start:start + 1000])

    def start_run(self, settings: Dict) -> None:
        from mlflow.entities import Param

        run_id = self._run({"mmkgc.run_id": str(settings.get("run_id"))})
        params = [Param(k, v) for k, v in flatten_params(settings).items()]
        for start in range(0, len(params), 100):  # MLflow's batch limit
            self.client.log_batch(run_id, params=params[start:start + 100])

    def log_epoch(self, record: Dict) -> None:
        self._log_metrics(flatten({k: v for k, v in record.items() if k != "epoch"}),
                          record["epoch"])

    def log_final(self, metrics: Dict) -> None:
        self._log_metrics(flatten(metrics, "final/"), 0)

    def log_artifact(self, path: Path, kind: str = "file") -> None:
        self.client.log_artifact(self._run(), str(path),
                                 artifact_path="model" if kind == "model" else None)

    def end_run(self, success: bool = True) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, "FINISHED" if success else "KILLED")


class WandbTracker(Tracker):
    """One Weights & Biases run: the settings as its config, each epoch's figures at
    step ``epoch``, the final metrics in its summary under ``final/``, and the run's files
    as artifacts of their kind.

    Configured by W&B's variables: ``WANDB_MODE=offline`` logs with no account and no
    network (``wandb sync`` uploads later), ``WANDB_PROJECT`` (default ``mmkgc-pyg``),
    ``WANDB_DIR`` (default ``dir``, the run's folder: ``DIR/wandb/``).
    """

    def __init__(self, run_name: str, dir: Path):
        self.wandb = require("wandb", "wandb", "the W&B tracker")
        self.run_name, self.dir = run_name, Path(os.environ.get("WANDB_DIR") or dir)
        self.run: Any = None

    def _run(self, config: Optional[Dict] = None):
        if self.run is None:
            wandb = self.wandb
            self.dir.mkdir(parents=True, exist_ok=True)
            try:
                self.run = wandb.init(
                    project=os.environ.get("WANDB_PROJECT", "mmkgc-pyg"), name=self.run_name,
                    dir=str(self.dir), config=config,
                    settings=wandb.Settings(console="off", silent=True, disable_git=True,
                                            save_code=False, x_disable_stats=True))
            except Exception as exc:  # noqa: BLE001 - login, network and setup errors
                raise InputError(f"W&B tracker: cannot start a run "
                                 f"({type(exc).__name__}: {first_line(exc, 300)}); log in with "
                                 "`wandb login`, or set WANDB_MODE=offline") from None
        return self.run

    def start_run(self, settings: Dict) -> None:
        self._run(settings)

    def log_epoch(self, record: Dict) -> None:
        self._run().log(flatten({k: v for k, v in record.items() if k != "epoch"}),
                        step=record["epoch"])

    def log_final(self, metrics: Dict) -> None:
        self._run().summary.update(flatten(metrics, "final/"))

    def log_artifact(self, path: Path, kind: str = "file") -> None:
        run = self._run()
        artifact = self.wandb.Artifact(f"{kind}-{run.id}", type=kind)
        artifact.add_file(str(path))
        run.log_artifact(artifact)

    def end_run(self, success: bool = True) -> None:
        if self.run is not None:
            self.run.finish(exit_code=0 if success else 1)


def make_trackers(names: Iterable[str], out_dir: Optional[Path], *,
                  run_name: Optional[str] = None, tensorboard_dir: Optional[Path] = None,
                  history: bool = True):
    """The history file (with ``history``) and the named trackers (``tensorboard``,
    ``mlflow``, ``wandb``) of a run writing to ``out_dir``: MLflow and W&B runs named
    ``run_name`` (default: the folder's name), TensorBoard scalars in ``tensorboard_dir``
    (default: ``out_dir/tensorboard``)."""
    if out_dir is None:
        return []
    out_dir = Path(out_dir)
    run_name = run_name or out_dir.resolve().name
    trackers: List[Tracker] = [HistoryTracker(out_dir / "history.jsonl")] if history else []
    for name in names:
        if name == "tensorboard":
            trackers.append(TensorBoardTracker(tensorboard_dir or out_dir / "tensorboard"))
        elif name == "mlflow":
            trackers.append(MLflowTracker(run_name))
        elif name == "wandb":
            trackers.append(WandbTracker(run_name, out_dir))
        else:
            raise InvalidArgumentError(f"tracker {name!r}: expected tensorboard, mlflow or wandb")
    return trackers
