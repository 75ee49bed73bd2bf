"""``python -m mmkgc_pyg.tune``: search hyperparameters with Optuna, resumably.

Every trial trains as ``train`` would with the same settings (the base configuration from
the flags and ``--config``, then the trial's sampled values), so ``train --config
DIR/best.yaml`` trains the best trial's model again, to the same valid MRR on the same
device. It writes no run folder: the base configuration's ``trackers`` log each trial as
a run of its own (:func:`mmkgc_pyg.hpo.trial_trackers`).
"""
import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Dict, List, Optional

import torch
from tqdm.auto import tqdm

from mmkgc_pyg.cli.common import (non_negative_int, one_line_errors, positive_int,
                                  resolve_device)
from mmkgc_pyg.cli.train import add_run_arguments, config_flag, new_run
from mmkgc_pyg.errors import ConfigError, InputError, TrainingDiverged
from mmkgc_pyg.extras import require
from mmkgc_pyg.run_folder import writable_folder
from mmkgc_pyg.training.config import TrainConfig
from mmkgc_pyg.training.config_file import read_mapping, write_settings
from mmkgc_pyg.training.runner import deterministic, new_trainer
from mmkgc_pyg.training.setup import RunSpec, check_run


def positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got "
                                         f"{value!r}")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mmkgc_pyg.tune",
        description="Search hyperparameters with Optuna (TPE sampling, median pruning at "
                    "each validation). The study lives in DIR/study.db, or in the database "
                    "of --storage: run the same command again to resume it, or in several "
                    "processes at once to share it. Writes DIR/best.yaml (for train "
                    "--config), DIR/trials.csv and, with matplotlib, DIR/plots/. Training "
                    "flags and --config give the base configuration (the first trial, when "
                    "the space holds it); a flag fixes its setting, and so does a --config "
                    "entry unless --search-space lists that setting. With --tracker (or "
                    "trackers: in --config) each trial is logged as a run named <DIR's "
                    "name>-trial-<N> (TensorBoard's in DIR/tensorboard/trial-<N>). Needs "
                    "the [tune] extra.")
    add_run_arguments(parser)
    parser.add_argument("--study", required=True, metavar="DIR",
                        help="the study's folder (created, or resumed when it holds one)")
    parser.add_argument("--storage", metavar="URL",
                        help="keep the study in this database instead of DIR/study.db: an "
                             "SQLAlchemy URL Optuna accepts (e.g. "
                             "postgresql://user:password@host/db, with its driver "
                             "installed), shared by processes on several machines; one "
                             "search per database")
    parser.add_argument("--trials", type=positive_int, default=50, metavar="N",
                        help="finished (completed or pruned) trials the study should reach, "
                             "counting those of earlier and concurrent runs (default 50)")
    parser.add_argument("--timeout", type=positive_seconds, metavar="S",
                        help="start no trial after S seconds")
    parser.add_argument("--search-space", metavar="FILE",
                        help="YAML/JSON/TOML entries replacing the default search space's "
                             "(field: {low, high, log, step}, a list of choices, one value, "
                             "or null to leave the field out); a field listed here is "
                             "searched even when --config sets it")
    parser.add_argument("--startup-trials", type=non_negative_int, default=5, metavar="N",
                        help="trials sampled at random, and finished before any is pruned "
                             "(default 5)")
    parser.add_argument("--sampler-seed", type=non_negative_int, default=0, metavar="N",
                        help="seed of the sampler (plus the number of trials so far)")
    return parser


def load_space(args, overrides, dataset, spec: RunSpec, fixed):
    """The search space (defaults, then ``overrides``, the ``--search-space`` file's)
    without the ``fixed`` settings (given as flags or in ``--config``), each bound
    checked on this dataset."""
    from mmkgc_pyg.hpo import SearchSpace

    source = args.search_space or "the default search space"
    try:
        space = SearchSpace.with_overrides(overrides)
    except ConfigError as exc:
        raise InputError(f"{source}: {exc}") from None
    space = space.without(fixed)
    for name, values in space.extremes().items():
        for value in values:
            try:
                check_run(dataset, dataclasses.replace(
                    spec, config=dataclasses.replace(spec.config, **{name: value})))
            except ConfigError as exc:
                raise InputError(f"{source}: {name}: {value!r} does not fit this run "
                                 f"({exc}); give --search-space FILE or "
                                 f"{config_flag(name)} V") from None
    return space


def objective(dataset, base: TrainConfig, settings: Dict, space, device: torch.device,
              folder: Path, where: str):
    """The trial function: train the trial's configuration as ``train`` would and return
    its best valid MRR (pruned at validation points, failed when training diverges),
    logged to the ``trackers`` of ``base`` as one run per trial (``where`` names the
    study's storage in the run's settings)."""
    from mmkgc_pyg.hpo.study import pruning_callback, this_process, trial_trackers

    def run(trial) -> float:
        trial.set_user_attr("process", this_process())
        values = space.suggest(trial)
        config = dataclasses.replace(base, **values)
        trial.set_user_attr("settings", {**settings, **values})
        # Built as train builds it, so that best.yaml trains the same run again. No run
        # folder: no checkpoints; the trackers log the trial as a run.
        trainer = new_trainer(dataset, config, device, progress=False)
        trackers = trial_trackers(config.trackers, folder, trial.number)
        success = False
        try:
            for tracker in trackers:
                tracker.start_run({"run_id": f"{where} trial {trial.number}",
                                   **settings, **values})
            # The trackers first: the validation that prunes the trial is logged too.
            trainer.fit([*(tracker.log_epoch for tracker in trackers),
                         pruning_callback(trial)])
            for tracker in trackers:
                tracker.log_final({"valid": trainer.stopper.best_valid,
                                   "best_epoch": trainer.best_epoch})
            success = True
        except TrainingDiverged as exc:
            trial.set_user_attr("failure", str(exc))
            raise
        finally:  # a pruned trial's run ends unfinished, as a failed one's
            for tracker in trackers:
                tracker.end_run(success)
        trial.set_user_attr("best_epoch", trainer.best_epoch)
        return trainer.best_mrr

    return run


def reporter(bar, write=tqdm.write):
    """An Optuna callback: one line per finished trial, and the progress bar."""
    def report(study, trial) -> None:
        state = trial.state.name
        if state == "COMPLETE":
            line = (f"valid MRR {trial.value:.4f} (epoch {trial.user_attrs['best_epoch']}) "
                    + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in trial.params.items()))
        elif state == "PRUNED":
            line = (f"pruned at epoch {trial.last_step} (valid MRR "
                    f"{trial.intermediate_values[trial.last_step]:.4f})")
        else:
            line = f"failed: {trial.user_attrs.get('failure', state.lower())}"
        write(f"trial {trial.number}: {line}", file=sys.stderr)
        if state in ("COMPLETE", "PRUNED"):
            bar.update(1)
        if any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
            bar.set_postfix(best=f"{study.best_value:.4f}")

    return report


def write_outputs(study, folder: Path, where: str):
    """``trials.csv``, ``best.yaml`` (once a trial completed) and the plots; returns the
    best trial. ``where`` names the study's storage."""
    from mmkgc_pyg.hpo import best_trial, trials_table, write_plots
    from mmkgc_pyg.io import atomic_write_text

    atomic_write_text(folder / "trials.csv", trials_table(study))
    best = best_trial(study)
    if best is not None:
        write_settings(folder / "best.yaml", best.user_attrs["settings"],
                       f"Trial {best.number} of {where}: valid MRR {best.value!r} at epoch "
                       f"{best.user_attrs['best_epoch']}.\n"
                       "python -m mmkgc_pyg.train --config best.yaml trains it again.")
    write_plots(study, folder / "plots")
    return best


@one_line_errors
def main(argv: Optional[List[str]] = None):
    args = build_parser().parse_args(argv)
    optuna = require("optuna", "tune", "python -m mmkgc_pyg.tune")
    from mmkgc_pyg.hpo import finished_trials, open_study, shown_url

    spec, dataset, flags, from_file = new_run(args)
    # A flag fixes its setting; so does a --config entry, unless --search-space lists the
    # setting: then the entry is the base trial's value of a searched setting.
    overrides = (read_mapping(args.search_space, "--search-space") if args.search_space
                 else None)
    fixed = {*flags, *(set(from_file) - set(overrides or ()))}
    space = load_space(args, overrides, dataset, spec, fixed)
    settings = dataclasses.replace(spec, dataset=spec.dataset.absolute()).to_dict()
    base = spec.config
    device = resolve_device(spec.device)
    folder = Path(args.study)
    writable_folder(folder, "--study")
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per trial is ours
    study = open_study(folder, settings, space, args.startup_trials, args.sampler_seed,
                       args.storage)
    where = shown_url(args.storage) if args.storage else str(folder.resolve() / "study.db")
    done = finished_trials(study)
    kept = sorted(fixed & set(TrainConfig.__dataclass_fields__))
    print(f"{dataset}\nstudy {where}: {done} of {args.trials} trials "
          f"finished; searching {', '.join(space.parameters) or 'nothing'}; fixed by "
          f"--config or flags: {', '.join(kept) or 'nothing'}", file=sys.stderr)
    bar = tqdm(total=args.trials, initial=min(done, args.trials), desc="trials", unit="trial",
               disable=args.quiet)
    try:
        if done < args.trials:
            states = optuna.trial.TrialState
            with deterministic(device):  # as in train: best.yaml repeats its trial
                study.optimize(
                    objective(dataset, base, settings, space, device, folder, where),
                    n_trials=args.trials - done, timeout=args.timeout,
                    catch=(TrainingDiverged,),
                    callbacks=[optuna.study.MaxTrialsCallback(
                        args.trials, states=(states.COMPLETE, states.PRUNED)), reporter(bar)])
    finally:
        bar.close()
        best = write_outputs(study, folder, where)
    done = finished_trials(study)
    if best is None:
        print(f"{done} trials finished, none completed; wrote {folder}/trials.csv")
        return None
    print(f"{done} trials finished; best: trial {best.number}, valid MRR {best.value:.4f}; "
          f"wrote {folder}/best.yaml, trials.csv, plots/")
    return best


if __name__ == "__main__":
    main()
