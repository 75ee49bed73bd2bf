"""``python -m mmkgc_pyg.tune``: search hyperparameters with Optuna, resumably.

Every trial trains as ``train`` would with the same settings (the base configuration from
the flags and ``--config``, then the trial's sampled values), so ``train --config
DIR/best.yaml`` trains the best trial's model again, to the same valid MRR on the same
device.
"""
import argparse
import dataclasses
import sys
from dataclasses import fields
from pathlib import Path
from typing import Dict, List, Optional

import torch
from tqdm.auto import tqdm

from mmkgc_pyg.cli.common import non_negative_int, positive_int, resolve_device, \
    one_line_errors
from mmkgc_pyg.cli.config_file import read_mapping, resolved_config, write_config_yaml
from mmkgc_pyg.cli.run_folder import writable_folder
from mmkgc_pyg.cli.train import (add_run_arguments, check_run, config_flag,
                                 dataset_record, load_new_run)
from mmkgc_pyg.errors import ConfigError, InputError, TrainingDiverged
from mmkgc_pyg.extras import require
from mmkgc_pyg.training.config import TrainConfig
from mmkgc_pyg.training.setup import build_model
from mmkgc_pyg.training.trainer import Trainer


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
                    "each validation). The study lives in DIR/study.db: run the same "
                    "command again to resume it, or in several processes at once to share "
                    "it. Writes DIR/best.yaml (for train --config), DIR/trials.csv and, "
                    "with matplotlib, DIR/plots/. Training flags and --config give the "
                    "base configuration; a flag given for a searched setting fixes it. "
                    "Needs the [tune] extra.")
    add_run_arguments(parser)
    parser.add_argument("--study", required=True, metavar="DIR",
                        help="the study's folder (created, or resumed when it holds one)")
    parser.add_argument("--trials", type=positive_int, default=50, metavar="N",
                        help="finished (completed or pruned) trials the study should reach, "
                             "counting those of earlier and concurrent runs (default 50)")
    parser.add_argument("--timeout", type=positive_seconds, metavar="S",
                        help="start no trial after S seconds")
    parser.add_argument("--search-space", metavar="FILE",
                        help="YAML/JSON/TOML entries replacing the default search space's "
                             "(field: {low, high, log, step}, a list of choices, one value, "
                             "or null to leave the field out)")
    parser.add_argument("--startup-trials", type=non_negative_int, default=5, metavar="N",
                        help="trials sampled at random, and finished before any is pruned "
                             "(default 5)")
    parser.add_argument("--sampler-seed", type=non_negative_int, default=0, metavar="N",
                        help="seed of the sampler (plus the number of trials so far)")
    return parser


def load_space(args, dataset, base: TrainConfig):
    """The search space (defaults, then ``--search-space``) without the fields given as
    flags, each bound checked on this dataset."""
    from mmkgc_pyg.hpo import SearchSpace

    source = args.search_space or "the default search space"
    try:
        space = SearchSpace.with_overrides(read_mapping(args.search_space, "--search-space")
                                           if args.search_space else None)
    except ConfigError as exc:
        raise InputError(f"{source}: {exc}") from None
    space = space.without(f.name for f in fields(TrainConfig)
                          if getattr(args, f.name) is not None)
    for name, values in space.extremes().items():
        for value in values:
            try:
                check_run(dataset, dataclasses.replace(base, **{name: value}), args)
            except InputError as exc:
                raise InputError(f"{source}: {name}: {value!r} does not fit this run "
                                 f"({exc}); give --search-space FILE or "
                                 f"{config_flag(name)} V") from None
    return space


def objective(dataset, base: TrainConfig, settings: Dict, space, device: torch.device):
    """The trial function: train the trial's configuration as ``train`` would and return
    its best valid MRR (pruned at validation points, failed when training diverges)."""
    from mmkgc_pyg.hpo.study import pruning_callback, this_process

    def run(trial) -> float:
        trial.set_user_attr("process", this_process())
        values = space.suggest(trial)
        config = dataclasses.replace(base, **values)
        trial.set_user_attr("settings", {**settings, **values})
        torch.manual_seed(config.seed)
        model = build_model(dataset, config, device)
        # No run folder: no checkpoints, no trackers (the trial's settings keep them).
        trainer = Trainer(model, dataset, dataclasses.replace(config, checkpoint_every=0),
                          progress=False, trackers=[])
        try:
            trainer.fit(on_epoch=pruning_callback(trial))
        except TrainingDiverged as exc:
            trial.set_user_attr("failure", str(exc))
            raise
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


def write_outputs(study, folder: Path):
    """``trials.csv``, ``best.yaml`` (once a trial completed) and the plots; returns the
    best trial."""
    from mmkgc_pyg.hpo import best_trial, trials_table, write_plots
    from mmkgc_pyg.io import atomic_write_text

    atomic_write_text(folder / "trials.csv", trials_table(study))
    best = best_trial(study)
    if best is not None:
        write_config_yaml(folder / "best.yaml", best.user_attrs["settings"],
                          f"Trial {best.number} of {folder.resolve() / 'study.db'}: valid "
                          f"MRR {best.value!r} at epoch {best.user_attrs['best_epoch']}.\n"
                          "python -m mmkgc_pyg.train --config best.yaml trains it again.")
    write_plots(study, folder / "plots")
    return best


@one_line_errors
def main(argv: Optional[List[str]] = None):
    args = build_parser().parse_args(argv)
    optuna = require("optuna", "tune", "python -m mmkgc_pyg.tune")
    from mmkgc_pyg.hpo import finished_trials, open_study

    dataset, base = load_new_run(args)
    space = load_space(args, dataset, base)
    settings = resolved_config(dataset_record(args, dataset), args.drop_modality_rate,
                               args.device, base)
    device = resolve_device(args.device)
    if device.type == "cpu":  # as in train: the seed fixes the run, so best.yaml repeats it
        torch.use_deterministic_algorithms(True, warn_only=True)
    folder = Path(args.study)
    writable_folder(folder, "--study")
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per trial is ours
    study = open_study(folder, settings, space, args.startup_trials, args.sampler_seed)
    done = finished_trials(study)
    print(f"{dataset}\nstudy {folder / 'study.db'}: {done} of {args.trials} trials "
          f"finished; searching {', '.join(space.parameters) or 'nothing'}", file=sys.stderr)
    bar = tqdm(total=args.trials, initial=min(done, args.trials), desc="trials", unit="trial",
               disable=args.quiet)
    try:
        if done < args.trials:
            states = optuna.trial.TrialState
            study.optimize(objective(dataset, base, settings, space, device),
                           n_trials=args.trials - done, timeout=args.timeout,
                           catch=(TrainingDiverged,),
                           callbacks=[optuna.study.MaxTrialsCallback(
                               args.trials, states=(states.COMPLETE, states.PRUNED)),
                               reporter(bar)])
    finally:
        bar.close()
        best = write_outputs(study, folder)
    done = finished_trials(study)
    if best is None:
        print(f"{done} trials finished, none completed; wrote {folder}/trials.csv")
        return None
    print(f"{done} trials finished; best: trial {best.number}, valid MRR {best.value:.4f}; "
          f"wrote {folder}/best.yaml, trials.csv, plots/")
    return best


if __name__ == "__main__":
    main()
