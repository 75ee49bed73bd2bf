"""An Optuna study in a folder: SQLite storage that several processes share and that an
interrupted search resumes, pruning at validation points, each trial logged to the
configured trackers, and the search's outputs (the best configuration, a table of
trials, plots).

The study lives in ``DIR/study.db``, or in any database Optuna accepts given as an
SQLAlchemy URL (a server that processes on several machines share), under the name
:data:`STUDY_NAME`: one search per database. It records the base settings and the
search space it was created with, so that a resumed or joined search cannot silently mix
trials of two different searches. A ``study.db`` that is not an Optuna database (another
program's SQLite file, or no database at all) is refused, never written to.

Processes that open a study at once take turns through the lock file ``DIR/study.lock``
(:mod:`filelock`: POSIX and Windows). Processes on other machines share no folder: with a
server database, two of them creating the study at the same moment may both enqueue the
base configuration (one trial more), nothing worse.
"""
import contextlib
import csv
import io
import json
import os
import socket
import sqlite3
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from filelock import FileLock

from mmkgc_pyg.errors import InputError
from mmkgc_pyg.extras import require
from mmkgc_pyg.hpo.space import SearchSpace
from mmkgc_pyg.io import atomic_write_bytes, reader_failure
from mmkgc_pyg.training.config import TrainConfig
from mmkgc_pyg.training.trackers import Tracker, make_trackers

STUDY_NAME = "mmkgc"
#: Settings that may differ between the processes of one search (where and how fast a
#: trial runs, not what it computes).
LOCAL_SETTINGS = ("device", "eval_batch_size", "checkpoint_every", "trackers")
#: The Optuna plots written by :func:`write_plots` (``optuna.visualization.matplotlib``).
PLOTS = ("optimization_history", "intermediate_values", "param_importances",
         "parallel_coordinate", "slice")


def _optuna():
    return require("optuna", "tune", "python -m mmkgc_pyg.tune")


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def storage_url(folder: Path, url: Optional[str] = None) -> str:
    """The study's SQLAlchemy URL: ``url``, else ``DIR/study.db`` as SQLite."""
    return url or f"sqlite:///{Path(folder).resolve() / 'study.db'}"


def shown_url(url: str) -> str:
    """``url`` with its password hidden, for messages and files."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL: shown as the user wrote it
        return url


def open_study(folder: Path, base: Dict[str, Any], space: SearchSpace,
               startup_trials: int = 5, sampler_seed: int = 0, url: Optional[str] = None):
    """The study in ``folder/study.db`` (or the database at the SQLAlchemy ``url``),
    created or resumed.

    A new study records ``base`` (every setting of a trial, as in ``config.yaml``) and
    ``space``, and its first trial is the base configuration itself when the space
    contains it. A resumed one must have been created with the same settings (those in
    :data:`LOCAL_SETTINGS` aside); its trials left running by a process of this machine
    that died are marked failed. Trials are sampled by TPE (random for the first
    ``startup_trials``, seeded by ``sampler_seed`` plus the number of trials so far) and
    pruned by the median rule after ``startup_trials`` finished trials.

    Raises:
        InputError: a storage that cannot be opened, or a ``study.db`` that is not an
            Optuna database (naming it); a study of other settings.
    """
    # Creating the tables, recording the settings and enqueuing the base trial are
    # check-then-act steps: processes that start a search at once take turns.
    with FileLock(str(Path(folder) / "study.lock")):
        return _open_study(folder if url is None else shown_url(url), base, space,
                           startup_trials, sampler_seed, storage_url(folder, url))


def _check_sqlite_file(path: Path) -> None:
    # Optuna would fail on a file that is no database, and add its tables to another
    # program's: either is refused before Optuna opens it. Read-only, so nothing changes.
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        with contextlib.closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro",
                                                uri=True)) as db:
            tables = {row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise InputError(f"{path}: expected an Optuna study database (SQLite), got a file "
                         f"that is not one ({exc}); give another study") from None
    if tables and not {"studies", "version_info"} <= tables:
        raise InputError(f"{path}: expected an Optuna study database, got an SQLite database "
                         f"of another program (tables {', '.join(sorted(tables)[:5])}"
                         f"{' ...' if len(tables) > 5 else ''}); give another study")


def _open_study(where, base: Dict[str, Any], space: SearchSpace,
                startup_trials: int, sampler_seed: int, url: str):
    # ``where`` names the study in messages: its folder, or its storage's URL.
    optuna = _optuna()
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's parse errors
        raise InputError(f"{url}: expected an SQLAlchemy database URL, e.g. "
                         f"postgresql://user@host/db ({type(exc).__name__})") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        _check_sqlite_file(Path(parsed.database))
    try:
        storage = optuna.storages.RDBStorage(
            url, engine_kwargs=({"connect_args": {"timeout": 60}}  # wait for others' writes
                                if parsed.get_backend_name() == "sqlite" else {}))
        earlier = len(storage.get_all_trials(storage.get_study_id_from_name(STUDY_NAME),
                                             deepcopy=False))
    except KeyError:  # no such study yet
        earlier = 0
    except Exception as exc:  # noqa: BLE001 - drivers, servers and schemas fail variously
        raise InputError(f"{shown_url(url)}: expected an Optuna study storage that opens, "
                         f"got {reader_failure(exc)}") from None
    study = optuna.create_study(
        storage=storage, study_name=STUDY_NAME, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=sampler_seed + earlier,
                                           n_startup_trials=startup_trials),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=startup_trials))
    compared = {k: v for k, v in base.items() if k not in LOCAL_SETTINGS}
    recorded = study.user_attrs.get("base")
    if recorded is None:
        study.set_user_attr("base", compared)
        study.set_user_attr("space", space.to_dict())
    else:
        _check_same(where, "base settings", recorded, json.loads(json.dumps(compared)))
        _check_same(where, "search space", study.user_attrs["space"],
                    json.loads(json.dumps(space.to_dict())))
    fail_dead_trials(study, storage)
    config = TrainConfig.from_dict({k: base[k] for k in TrainConfig.__dataclass_fields__})
    if not study.trials and space.contains(config):
        study.enqueue_trial({n: getattr(config, n) for n in space.parameters},
                            skip_if_exists=True)
    return study


def _check_same(where, what: str, recorded: Dict, current: Dict) -> None:
    for key in sorted(set(recorded) | set(current)):
        if recorded.get(key) != current.get(key):
            raise InputError(
                f"{where}: holds a search with other {what} ({key}: "
                f"{recorded.get(key)!r} there, {current.get(key)!r} now); give the same "
                "settings to resume it, or another study")


def fail_dead_trials(study, storage) -> List[int]:
    """Marks failed the running trials whose process, on this machine, is gone (killed
    searches); returns their numbers. ``storage`` is the study's. A trial names its
    process in its ``process`` user attribute, set first thing when it starts."""
    optuna = _optuna()
    host, failed = socket.gethostname(), []
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False,
                                  states=(optuna.trial.TrialState.RUNNING,)):
        owner_host, _, pid = str(trial.user_attrs.get("process", "")).rpartition(":")
        if owner_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
        failed.append(trial.number)
    return failed


def _alive(pid: int) -> bool:
    if pid == os.getpid():  # this process runs no trial yet: the pid was reused
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def trial_trackers(names, folder: Path, number: int) -> List[Tracker]:
    """The trackers (``trackers`` setting) of trial ``number`` of the study in ``folder``,
    which has no run folder per trial: an MLflow and a W&B run named
    ``<folder's name>-trial-<number>`` (W&B's files in ``folder/wandb``), TensorBoard
    scalars in ``folder/tensorboard/trial-<number>``."""
    return make_trackers(names, folder, run_name=f"{Path(folder).resolve().name}-trial-{number}",
                         tensorboard_dir=Path(folder) / "tensorboard" / f"trial-{number}",
                         history=False)


def pruning_callback(trial) -> Callable[[Dict], None]:
    """An ``on_epoch`` callback for :meth:`Trainer.fit
    <mmkgc_pyg.training.Trainer.fit>`: reports each validation's MRR to the ``trial``
    (step = epoch) and raises ``optuna.TrialPruned`` when the pruner says so."""
    optuna = _optuna()

    def on_epoch(record: Dict) -> None:
        if "valid" not in record:
            return
        trial.report(record["valid"]["mrr"], record["epoch"])
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {record['epoch']}")

    return on_epoch


def finished_trials(study) -> int:
    """Completed and pruned trials (failed ones do not count toward ``--trials``)."""
    states = _optuna().trial.TrialState
    return len(study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED)))


def best_trial(study):
    """The completed trial of the highest valid MRR, or None."""
    states = _optuna().trial.TrialState
    complete = study.get_trials(deepcopy=False, states=(states.COMPLETE,))
    return max(complete, key=lambda t: t.value) if complete else None


def trials_table(study) -> str:
    """Every trial as a CSV row: number, state, valid MRR and the epoch of the kept model
    (completed trials), the last validated epoch (pruned ones), seconds, why it failed,
    then the searched parameters."""
    trials = study.get_trials(deepcopy=False)
    params = list(dict.fromkeys(name for t in trials for name in t.params))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["number", "state", "valid_mrr", "best_epoch", "last_epoch", "seconds",
                     "failure", *params])
    for t in trials:
        seconds = ((t.datetime_complete - t.datetime_start).total_seconds()
                   if t.datetime_complete and t.datetime_start else None)
        writer.writerow([t.number, t.state.name, t.value, t.user_attrs.get("best_epoch"),
                         t.last_step, seconds and round(seconds, 3),
                         t.user_attrs.get("failure"), *(t.params.get(p) for p in params)])
    return out.getvalue()


def write_plots(study, folder: Path) -> List[str]:
    """Optuna's matplotlib plots of the study as ``folder/<name>.png`` (see
    :data:`PLOTS`), when matplotlib is installed (empty axes while the study has too few
    trials for a plot; one Optuna cannot draw is left out). Returns the names written."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return []

    optuna = _optuna()
    written = []
    for name in PLOTS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-API and few-trials warnings
            try:
                axes = getattr(optuna.visualization.matplotlib, f"plot_{name}")(study)
            except (ValueError, RuntimeError):  # e.g. a degenerate importance fit
                continue
        axes = axes.flat[0] if hasattr(axes, "flat") else axes
        figure = axes.figure
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        plt.close(figure)
        atomic_write_bytes(folder / f"{name}.png", buffer.getvalue())
        written.append(name)
    return written
