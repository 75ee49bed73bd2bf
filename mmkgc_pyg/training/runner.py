"""One call from a dataset and settings to a trained, evaluated model and its run folder:
the path ``python -m mmkgc_pyg.train`` takes (PyKEEN's ``pipeline``).

:func:`pipeline` accepts what a user has at hand (a folder, a
:class:`~mmkgc_pyg.data.KGDataset` or PyG ``Data``; a
:class:`~mmkgc_pyg.training.TrainConfig`, a mapping of settings or a configuration file)
and :func:`run` does the work on a :class:`~mmkgc_pyg.training.setup.RunSpec`. A run owns
its trackers from start to end, its folder while it writes (locked; never another run's),
and its outputs: ``config.yaml`` (the spec, and the run's identity), ``model.pt`` (the best
model by valid MRR, or the last with ``model_kept="last"``), ``checkpoint.pt`` (with
``checkpoint_every``), ``metrics.json`` and ``metrics.md``, ``history.jsonl``.
"""
import contextlib
import dataclasses
import json
import logging
import signal
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch
from torch_geometric.data import Data

from mmkgc_pyg.checkpoint import save_checkpoint
from mmkgc_pyg.data.kg import KGDataset
from mmkgc_pyg.distributed import init_distributed
from mmkgc_pyg.errors import (CheckpointError, ConfigError, InputError, NonFiniteModelError,
                              TrainingInterrupted)
from mmkgc_pyg.evaluation import evaluate_splits, metrics_table
from mmkgc_pyg.io import atomic_write_json, atomic_write_text, json_safe
from mmkgc_pyg.nn.model import MMKGCModel
from mmkgc_pyg.run_folder import clear_for_new_run, locked, writable_folder
from mmkgc_pyg.training import run_state
from mmkgc_pyg.training.callbacks import BestModelWriter, EpochLogger, TrainingCheckpointer
from mmkgc_pyg.training.config import TrainConfig
from mmkgc_pyg.training.config_file import read_run_file, write_run_file
from mmkgc_pyg.training.setup import (DatasetSpec, RunSpec, build_model, dataset_metadata,
                                      feature_shapes, memory_plan)
from mmkgc_pyg.training.trackers import make_trackers
from mmkgc_pyg.training.trainer import Trainer

logger = logging.getLogger(__name__)

#: Settings a resumed run may change: they extend the run or say where and how fast it
#: runs, never what it computes.
RESUMABLE = ("epochs", "patience", "time_budget", "checkpoint_every", "eval_batch_size",
             "device")


@dataclass
class PipelineResult:
    """What a run produced.

    Attributes:
        model: the trained model (its best weights by valid MRR, or its last with
            ``model_kept="last"``).
        metrics: ``valid`` and ``test`` metrics as in ``metrics.json`` (and
            ``reference`` with ``reference_metrics``).
        history: one record per epoch (losses, timings, valid metrics when validated).
        spec: the run's settings (``spec.config`` the hyperparameters).
        run_id: the run's identity.
        out: the run folder (None when the run wrote no files).
        dataset_metadata: how to find the dataset again (saved with the model).
    """
    model: MMKGCModel
    metrics: Dict[str, Any]
    history: List[Dict[str, Any]]
    spec: RunSpec
    run_id: str
    out: Optional[Path] = None
    dataset_metadata: Dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> TrainConfig:
        return self.spec.config

    def save(self, directory, overwrite: bool = False) -> Path:
        """Writes the run's files into ``directory`` (created; one holding another run is
        refused unless ``overwrite``): ``model.pt``, ``config.yaml``, ``metrics.json``,
        ``metrics.md`` and ``history.jsonl``. Returns the folder."""
        directory = Path(directory)
        writable_folder(directory, "directory")
        with locked(directory):
            clear_for_new_run(directory, overwrite, "directory",
                              "pass overwrite=True to replace it")
            save_checkpoint(self.model, directory / "model.pt", self.dataset_metadata)
            write_run_file(directory / "config.yaml", dataclasses.replace(
                self.spec, dataset=self.spec.dataset.absolute()), _run_identity(
                self.run_id, self.dataset_metadata), f"Run {self.run_id}.")
            _write_metrics(directory, self.metrics)
            atomic_write_text(directory / "history.jsonl", "".join(
                json.dumps(json_safe(record)) + "\n" for record in self.history))
        return directory


def pipeline(dataset: Union[None, str, Path, KGDataset, Data] = None,
             config: Union[None, TrainConfig, Dict[str, Any], str, Path] = None,
             out: Union[None, str, Path] = None, *, overwrite: bool = False,
             resume: bool = False, progress: bool = True, **settings) -> PipelineResult:
    """Trains and evaluates AdaMF-MAT in one call.

    Args:
        dataset: a dataset folder (OpenKE layout), a :class:`KGDataset`, a PyG ``Data``
            (see :meth:`KGDataset.from_data`), or None for the folder ``config`` names
            (else the embedded synthetic graph).
        config: a :class:`TrainConfig`, a mapping of settings (TrainConfig fields and
            ``features``, ``masks``, ``drop_modality_rate``, ``device``), or a YAML, JSON
            or TOML file of them. Settings not given take the dataset's preset (the
            paper's for DB15K, MKG-W, MKG-Y), then the defaults.
        out: the run folder (None: no files).
        overwrite: replace a run already in ``out``.
        resume: continue the run in ``out`` from its ``checkpoint.pt`` with its own
            settings; settings given here must equal the run's, except those in
            :data:`RESUMABLE`.
        progress: show progress bars.
        **settings: more settings, over those of ``config``.

    Raises:
        InputError: bad settings or files (one line naming them); also see :func:`run`.
    """
    if isinstance(config, TrainConfig):
        values = config.to_dict()
    elif isinstance(config, (str, Path)):
        values, _ = read_run_file(config)
    else:
        values = dict(config or {})
    values.update(settings)
    graph = dataset if isinstance(dataset, (KGDataset, Data)) else None
    if isinstance(graph, Data):
        graph = KGDataset.from_data(graph)
    if isinstance(dataset, (str, Path)):
        values["dataset"] = str(dataset)
    if resume:
        if out is None:
            raise InputError("pipeline: resume=True needs out, the run's folder")
        return resume_run(Path(out), values, progress=progress)
    spec, graph = RunSpec.from_settings(values, graph)
    return run(spec, graph, None if out is None else Path(out), overwrite=overwrite,
               progress=progress)


def run(spec: RunSpec, dataset: KGDataset, out: Optional[Path] = None, *,
        overwrite: bool = False, resume_id: Optional[str] = None,
        progress: bool = True, handle_signals: bool = False,
        argv: Optional[List[str]] = None) -> PipelineResult:
    """Trains ``spec`` on ``dataset`` and evaluates it, writing the run into ``out``.

    With ``resume_id`` the run in ``out`` continues from its ``checkpoint.pt`` (which
    must carry that id). With ``handle_signals``, SIGINT and SIGTERM stop training before
    its next step (a second one at once); the
    :class:`~mmkgc_pyg.errors.TrainingInterrupted` raised then has ``checkpoint`` set when
    ``checkpoint_every`` let it write the state of that exact point. ``argv`` is recorded
    with the run (the command that started it).

    Raises:
        InputError: the folder cannot take the run, the training state does not fit, the
            run does not fit the device's memory (a :class:`~mmkgc_pyg.errors.ConfigError`
            naming ``dim``).
        TrainingDiverged: the loss became NaN or infinite.
        TrainingInterrupted: a signal stopped training (``handle_signals``).
        NonFiniteModelError: the trained model cannot be ranked.
    """
    device, rank = init_distributed(spec.device)
    owner = rank == 0 and out is not None  # the process that writes the run's files
    if owner:
        created = not out.exists()
        writable_folder(out, "out")
    with deterministic(device), (locked(out) if owner else contextlib.nullcontext()):
        try:
            if owner and resume_id is None:
                clear_for_new_run(out, overwrite, "out")
            # Trackers first: one that cannot start leaves nothing of the run behind.
            trackers = make_trackers(spec.config.trackers, out if owner else None)
            trainer = new_trainer(dataset, spec.config, device, progress)
            run_id = resume_id or uuid.uuid4().hex
            if resume_id is not None and out is not None:
                run_state.resume(trainer, out / "checkpoint.pt", run_id)
                if rank == 0:
                    logger.info("resumed %s %s", out, run_state.position(trainer))
        except InputError:
            if owner and created:  # nothing of this run is left behind
                _remove_empty(out)
            raise
        return _train_and_evaluate(spec, dataset, trainer, trackers, out, run_id,
                                   resume_id is not None, handle_signals, argv)


def new_trainer(dataset: KGDataset, config: TrainConfig, device: torch.device,
                progress: bool = True) -> Trainer:
    """The trainer of a new run, as every entry point builds it: the run checked against
    the device's memory, the model seeded by ``config.seed`` and built on ``device``.

    Raises:
        InputError: the run does not fit the device's memory.
    """
    check_fits(dataset, config, device)
    torch.manual_seed(config.seed)
    return Trainer(build_model(dataset, config, device), dataset, config, progress)


def _train_and_evaluate(spec, dataset, trainer, trackers, out, run_id, resumed,
                        handle_signals, argv):
    metadata = dataset_metadata(spec, dataset)
    writes = out is not None and trainer.rank == 0
    if trainer.rank == 0:
        logger.info("%s\n%s\ndevice: %s x %d", dataset, trainer.model, trainer.device,
                    trainer.world_size)
    if writes and not resumed:  # absolute paths: the run loads from anywhere
        write_run_file(out / "config.yaml",
                       dataclasses.replace(spec, dataset=spec.dataset.absolute()),
                       _run_identity(run_id, metadata, argv),
                       f"Run {run_id}: python -m mmkgc_pyg.train --config config.yaml "
                       "repeats it.")
    history: List[Dict] = []
    callbacks = [history.append, EpochLogger(trackers)]
    checkpointer = None
    if out is not None:  # every rank runs them; rank 0 writes
        best_model = BestModelWriter(trainer, out / "model.pt", metadata)
        checkpointer = TrainingCheckpointer(trainer, out / "checkpoint.pt",
                                            spec.config.checkpoint_every, run_id)
        callbacks[:0] = [best_model, checkpointer]
        if resumed and writes:
            for tracker in trackers:
                tracker.resume(trainer.epoch)
            if trainer.stopper.best_state is not None:
                # model.pt may hold a best model of an epoch after the checkpoint: redo it.
                best_model.write()
    success = False
    try:
        for tracker in trackers:
            tracker.start_run({"run_id": run_id, **spec.to_dict()})
        with (stop_on_signals(trainer) if handle_signals else contextlib.nullcontext()):
            try:
                trainer.fit(callbacks)
            except TrainingInterrupted as exc:
                if spec.config.checkpoint_every and checkpointer is not None:
                    checkpointer.save()
                    exc.checkpoint = out / "checkpoint.pt"
                raise
        try:  # every rank ranks its share of the queries; rank 0 writes
            metrics = evaluate_splits(trainer.model, dataset, trainer.filter_index,
                                      spec.config.eval_batch_size, spec.drop_modality_rate,
                                      spec.config.seed, trainer.stopper.best_valid,
                                      spec.config.raw_splits,
                                      trainer.progress and trainer.rank == 0,
                                      spec.config.reference_metrics)
        except NonFiniteModelError as exc:
            raise NonFiniteModelError(f"the trained model cannot be evaluated: {exc}") from None
        metrics["best_epoch"] = trainer.best_epoch
        if spec.config.model_kept == "last":  # the weights evaluated are not the best's
            metrics["model_epoch"] = trainer.stopper.kept_epoch
        if writes:
            _write_metrics(out, metrics)
        for tracker in trackers:
            tracker.log_final(metrics)
            for name, kind in (("model.pt", "model"), ("config.yaml", "config"),
                               ("metrics.json", "metrics")):
                tracker.log_artifact(out / name, kind)
        success = True
    finally:
        for tracker in trackers:
            tracker.end_run(success)
    return PipelineResult(trainer.model, metrics, history, spec, run_id, out, metadata)


def resume_run(out: Path, given: Dict[str, Any], *, progress: bool = True,
               handle_signals: bool = False) -> PipelineResult:
    """Continues the run in ``out`` with its recorded settings; ``given`` settings must
    equal them, except those in :data:`RESUMABLE`, which replace them."""
    spec, identity, dataset = load_run(out, given)
    return run(spec, dataset, out, resume_id=identity["id"], progress=progress,
               handle_signals=handle_signals, argv=identity.get("argv"))


def load_run(out: Path, given: Dict[str, Any]):
    """The spec, identity (``run`` in its ``config.yaml``) and dataset of the run in
    ``out``, with the ``given`` settings applied (those of :data:`RESUMABLE`) or checked
    (any other must equal the run's).

    Raises:
        InputError: no resumable run in ``out``, a setting that differs (naming the old
            and new value), or a dataset that changed since.
    """
    path = out / "config.yaml"
    if not (out / "checkpoint.pt").is_file() or not path.is_file():
        raise CheckpointError(f"{out}: expected checkpoint.pt and config.yaml of a run "
                              "that wrote checkpoints (checkpoint_every)")
    settings, identity = read_run_file(path)
    if not identity or not isinstance(identity.get("id"), str) \
            or not isinstance(identity.get("fingerprint"), str):
        raise CheckpointError(f"{path}: expected the run's identity (run: id, fingerprint) "
                              "written by mmkgc_pyg.train")
    for key, value in given.items():
        if key not in RESUMABLE and settings.get(key, _MISSING) != value \
                and not _same_path(key, settings.get(key), value):
            raise ConfigError(key, value, f"the run's own value {settings.get(key)!r}: the "
                              f"run in {out} keeps its settings; only "
                              f"{', '.join(RESUMABLE)} may change")
    settings.update({k: v for k, v in given.items() if k in RESUMABLE})
    try:
        data = DatasetSpec(settings.get("dataset"), dict(settings.get("features") or {}),
                           dict(settings.get("masks") or {}))
    except (ConfigError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: {exc}") from None
    if data.path is not None and not Path(data.path).is_dir():
        raise InputError(f"{out}: the run's dataset folder {data.path} is gone")
    dataset = data.load()
    if dataset.fingerprint() != identity["fingerprint"]:
        raise InputError(f"{out}: the dataset at {data.path or 'synthetic'} has changed "
                         f"(fingerprint {dataset.fingerprint()}, the run was trained on "
                         f"{identity['fingerprint']})")
    _check_features(out, identity.get("feature_shapes"), feature_shapes(dataset))
    try:
        spec, _ = RunSpec.from_settings(settings, dataset)
    except ConfigError as exc:
        raise InputError(f"{path}: {exc}") from None
    return spec, identity, dataset


def _check_features(out: Path, recorded: Optional[Dict[str, list]],
                    found: Dict[str, list]) -> None:
    """The modality features a run was trained on must load again as they were."""
    if not isinstance(recorded, dict):
        return
    for modality in sorted(set(recorded) | set(found)):
        was, now = recorded.get(modality), found.get(modality)
        if was == now:
            continue
        if now is None:
            change = f"is gone (the run had {was})"
        elif was is None:
            change = f"is new ({now}; the run had none)"
        else:
            change = f"changed shape (the run had {was}, the file now gives {now})"
        raise InputError(f"{out}: the run's {modality} feature {change}; resume with the "
                         "features it was trained on, or start a new run")


def check_fits(dataset: KGDataset, config: TrainConfig, device: torch.device) -> None:
    """Refuses a run whose training state does not fit the device's free memory.

    Raises:
        ConfigError: naming ``dim``, with what is needed and what is free.
    """
    plan = memory_plan(dataset, config, device)
    logger.info("memory: %.1f MiB (%.1f MiB of parameters, gradients and optimiser state, "
                "%.0f bytes per entity; %.1f MiB for a step, %.1f MiB for evaluation)",
                plan.needed / 2**20, plan.state / 2**20, plan.state / dataset.num_entities,
                plan.step / 2**20, plan.evaluation / 2**20)
    if plan.free is not None and plan.needed > plan.free:
        raise ConfigError("dim", config.dim,
                          f"a size that fits: the run needs about {plan.needed / 2**30:.1f} "
                          f"GiB ({plan.state / 2**30:.1f} GiB of state, "
                          f"{max(plan.step, plan.evaluation) / 2**30:.1f} GiB for a step or "
                          f"evaluation) but {device} has {plan.free / 2**30:.1f} GiB free (a "
                          "smaller dim, batch or number of negatives, frozen features, or a "
                          "larger device)")


@contextlib.contextmanager
def stop_on_signals(trainer: Trainer):
    """SIGINT and SIGTERM stop training before its next step (a second one at once)."""
    def handler(signum, frame):
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.request_stop(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def deterministic(device: torch.device):
    """Deterministic kernels on the CPU while a run trains (multi-threaded kernels may
    sum in varying order; the seed should fix the run), restored after."""
    if device.type != "cpu":
        yield
        return
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


_MISSING = object()


def _same_path(key: str, recorded, given) -> bool:
    """Paths name the same file however they are written (the run records absolute ones)."""
    def absolute(value):
        if isinstance(value, str):
            return str(Path(value).resolve())
        if isinstance(value, dict):
            return {k: absolute(v) for k, v in value.items()}
        return value
    return key in ("dataset", "features", "masks") and absolute(recorded) == absolute(given)


def _run_identity(run_id: str, metadata: Dict[str, Any], argv=None) -> Dict[str, Any]:
    """The run's identity as ``config.yaml`` keeps it (its ``run`` entry)."""
    return {"id": run_id, "name": metadata.get("name"),
            "fingerprint": metadata.get("fingerprint"),
            "feature_shapes": metadata.get("feature_shapes"),
            **({"argv": list(argv)} if argv is not None else {})}


def _write_metrics(folder: Path, metrics: Dict[str, Any]) -> None:
    atomic_write_json(folder / "metrics.json", metrics)
    tables = {k: metrics[k] for k in ("valid", "test")}
    if "reference" in metrics:
        tables["test, as the reference (optimistic ranks, raw lines)"] = metrics["reference"]
    atomic_write_text(folder / "metrics.md", metrics_table(tables))


def _remove_empty(folder: Path) -> None:
    """Removes a folder a failed run created, if nothing but its lock is left in it."""
    with contextlib.suppress(OSError):
        (folder / ".lock").unlink(missing_ok=True)
        folder.rmdir()

