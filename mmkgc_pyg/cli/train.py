"""``python -m mmkgc_pyg.train``: train AdaMF-MAT, evaluate, write the results."""
import argparse
import contextlib
import json
import signal
import sys
import uuid
from dataclasses import fields
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from mmkgc_pyg.cli.common import (add_dataset_arguments, fraction, init_distributed,
                                  load_dataset, name_path_pairs, one_line_errors)
from mmkgc_pyg.cli.config_file import apply_config_file, resolved_config, write_config_yaml
from mmkgc_pyg.cli.run_folder import clear_for_new_run, locked, writable_folder
from mmkgc_pyg.data.kg import KGDataset
from mmkgc_pyg.errors import (ConfigError, InputError, NonFiniteModelError, TrainingDiverged,
                              TrainingInterrupted)
from mmkgc_pyg.evaluation import evaluate_splits, metrics_table
from mmkgc_pyg.io import atomic_write_json, atomic_write_text
from mmkgc_pyg.nn.interactions import INTERACTIONS
from mmkgc_pyg.training.config import TrainConfig, preset_for
from mmkgc_pyg.training.setup import build_model
from mmkgc_pyg.training.trainer import Trainer


# With --resume, flags that cannot change the run's results (or only extend it).
RESUMABLE = {"resume", "epochs", "patience", "time_budget", "checkpoint_every",
             "eval_batch_size", "device", "quiet"}
RESUMABLE_FLAGS = ("--epochs, --patience, --time-budget, --checkpoint-every, "
                   "--eval-batch-size, --device and --quiet")


def config_flag(name: str) -> str:
    """The command-line flag of a :class:`TrainConfig` field."""
    field = TrainConfig.__dataclass_fields__[name]
    if field.metadata["flag"]:
        return field.metadata["flag"]
    return "--tracker" if name == "trackers" else "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`TrainConfig` field, with its help; None when not given
    (the dataset's preset, then the field's default, apply)."""
    for f in fields(TrainConfig):
        meta = f.metadata
        if f.type is bool:
            parser.add_argument(config_flag(f.name), dest=f.name, action="store_const",
                                const=not f.default, default=None, help=meta["help"])
        elif f.name == "trackers":
            parser.add_argument(config_flag(f.name), dest=f.name, action="append",
                                choices=meta["choices"], default=None, help=meta["help"])
        else:
            parser.add_argument(config_flag(f.name), dest=f.name, type=f.type, default=None,
                                choices=meta["choices"], metavar=None if meta["choices"] else
                                f.name.upper(),
                                help=f"{meta['help']} (default: the dataset's preset, "
                                     f"else {f.default})")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that say what to train: the dataset, a configuration file, one flag per
    :class:`TrainConfig` field, the test-time modality drop and the device (shared by
    ``train`` and ``tune``)."""
    add_dataset_arguments(parser)
    parser.add_argument("--config", metavar="FILE",
                        help="settings from a YAML, JSON or TOML file (TrainConfig fields "
                             "and dataset, features, masks, drop_modality_rate, device; "
                             "e.g. a run's config.yaml); flags given override it")
    add_config_arguments(parser)
    parser.add_argument("--drop-modality-rate", type=fraction, default=None, metavar="P",
                        help="hide all modalities of a random fraction P of entities at "
                             "test time (the modality-missing setting; default 0)")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mmkgc_pyg.train", allow_abbrev=False,  # --resume checks whole flags
        description="Train and evaluate AdaMF-MAT (multi-modal KG completion). Without "
                    "arguments: the embedded synthetic graph, about a minute on a CPU.")
    add_run_arguments(parser)
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output folder (default runs/<dataset>)")
    parser.add_argument("--resume", metavar="DIR",
                        help=f"continue the interrupted run in DIR with its own settings (only "
                             f"{RESUMABLE_FLAGS} may be given)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run in --out (default: refuse)")
    return parser


def build_config(args: argparse.Namespace, dataset_name: str,
                 file_values: Optional[Dict] = None, file: Optional[str] = None) -> TrainConfig:
    """The dataset's preset overridden by ``file_values`` (read from the ``--config``
    ``file``), then by the given flags; a bad value is a user error naming its flag, or
    the file and its key."""
    flags = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
             if getattr(args, f.name) is not None}
    values = {**TrainConfig().to_dict(), **preset_for(dataset_name), **(file_values or {}),
              **flags}
    try:
        return TrainConfig(**values)
    except ConfigError as exc:
        if exc.name not in flags:
            raise InputError(f"{file}: {exc}") from None
        raise InputError(f"{config_flag(exc.name)} {exc.value}: "
                         f"expected {exc.expected}") from None


def load_new_run(args: argparse.Namespace) -> Tuple[KGDataset, TrainConfig]:
    """The dataset and configuration of a new run from the flags and ``--config``; the
    run settings that were given nowhere get their defaults in ``args``."""
    file_values = apply_config_file(args, args.config) if args.config else {}
    resolve_run_defaults(args)
    dataset = load_dataset(args)
    for split in ("train", "valid", "test"):
        if len(getattr(dataset, split)) == 0:
            raise InputError(f"{args.dataset}: expected at least one {split} triple")
    config = build_config(args, dataset.name, file_values, args.config)
    check_run(dataset, config, args)
    return dataset, config


def resolve_run_defaults(args: argparse.Namespace) -> None:
    """Defaults of the run settings given neither as flags nor in ``--config``."""
    args.drop_modality_rate = args.drop_modality_rate or 0.0
    args.device = args.device or "auto"


def check_run(dataset: KGDataset, config: TrainConfig, args: argparse.Namespace) -> None:
    """Settings that are valid alone but not on this dataset."""
    if config.negatives >= dataset.num_entities:
        raise InputError(f"{config_flag('negatives')} {config.negatives}: expected fewer "
                         f"negatives than the {dataset.num_entities} entities")
    if args.drop_modality_rate > 0 and not (config.modalities and dataset.modalities):
        raise InputError("--drop-modality-rate: expected a model with modalities")


def given_options(parser: argparse.ArgumentParser, argv: List[str]) -> set:
    """The ``dest`` of every option present in ``argv``."""
    flags = {flag: action.dest for action in parser._actions for flag in action.option_strings}
    return {flags[token.split("=", 1)[0]] for token in argv
            if token.split("=", 1)[0] in flags}


def dataset_record(args: argparse.Namespace, dataset) -> Dict:
    """How to load the dataset again from anywhere: absolute paths, and its fingerprint."""
    def absolute(pairs):
        return {m: str(Path(p).resolve()) for m, p in name_path_pairs(pairs, "--feature").items()}

    return {"name": dataset.name, "fingerprint": dataset.fingerprint(),
            "path": str(Path(args.dataset).resolve()) if args.dataset else None,
            "features": absolute(args.feature), "masks": absolute(args.mask)}


def load_run(run_dir: Path, args: argparse.Namespace, given: set, parser) -> Dict:
    """The saved record of the run in ``run_dir``, checked against the flags given with
    ``--resume``: only those that cannot change its results may differ."""
    if not (run_dir / "checkpoint.pt").is_file() or not (run_dir / "config.json").is_file():
        raise InputError(f"--resume {run_dir}: expected checkpoint.pt and config.json "
                         "from a run with --checkpoint-every")
    path = run_dir / "config.json"
    try:
        run = json.loads(path.read_text())
        config = TrainConfig.from_dict(run["train"])
        record, run_id, drop = run["dataset"], run["run_id"], float(run["drop_modality_rate"])
        if not isinstance(record, dict) or not isinstance(run_id, str):
            raise TypeError
    except ConfigError as exc:
        raise InputError(f"{path}: {exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InputError(f"{path}: expected the JSON written by mmkgc_pyg.train") from None
    refused = sorted(given - RESUMABLE)
    if refused:
        flag = next(f for a in parser._actions if a.dest == refused[0] for f in a.option_strings)
        raise InputError(f"{flag}: cannot be given with --resume (the run in {run_dir} "
                         f"keeps its settings; only {RESUMABLE_FLAGS} may change)")
    fields_given = given & set(TrainConfig.__dataclass_fields__)
    try:
        config = TrainConfig.from_dict({**config.to_dict(),
                                        **{name: getattr(args, name) for name in fields_given}})
    except ConfigError as exc:
        raise InputError(f"{config_flag(exc.name)} {exc.value}: "
                         f"expected {exc.expected}") from None
    return {"config": config, "dataset": record, "run_id": run_id, "drop_modality_rate": drop,
            "argv": run.get("argv", [])}


def reload_dataset(record: Dict, run_dir: Path):
    """The dataset of a saved run, from its absolute paths; refused if it changed."""
    args = argparse.Namespace(dataset=record.get("path"),
                              feature=[f"{m}={p}" for m, p in record.get("features", {}).items()],
                              mask=[f"{m}={p}" for m, p in record.get("masks", {}).items()])
    if args.dataset is not None and not Path(args.dataset).is_dir():
        raise InputError(f"--resume {run_dir}: its dataset folder {args.dataset} is gone")
    dataset = load_dataset(args)
    if dataset.fingerprint() != record["fingerprint"]:
        raise InputError(f"--resume {run_dir}: the dataset at {args.dataset or 'synthetic'} "
                         f"has changed (fingerprint {dataset.fingerprint()}, the run was "
                         f"trained on {record['fingerprint']})")
    return dataset


def memory_plan(dataset, config: TrainConfig, device: torch.device) -> Tuple[int, Optional[int]]:
    """Bytes of training state and the device's free memory (None when unknown). A
    trained float costs itself, its gradient and two Adam moments (16 bytes in float32),
    or with ``sparse`` itself and the moments (the gradients hold the touched rows only);
    a frozen feature table costs itself."""
    interaction = INTERACTIONS[config.interaction](config.dim, config.margin)
    per_trained = 3 if config.sparse else 4
    tables = (dataset.num_entities * interaction.entity_channels
              + dataset.num_relations * interaction.relation_channels)
    needed = 4 * per_trained * tables
    if config.modalities:
        width = getattr(torch, config.feature_dtype).itemsize
        features = sum(x.numel() for x in dataset.features.values())
        needed += width * features * (per_trained if config.train_features else 1)
        needed += 16 * sum(x.size(1) for x in dataset.features.values()) \
            * interaction.entity_channels
    if device.type == "cuda":
        return needed, torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return needed, int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return needed, None


def check_fits(dataset, config: TrainConfig, device: torch.device, quiet: bool) -> None:
    needed, free = memory_plan(dataset, config, device)
    per_entity = needed / dataset.num_entities
    if not quiet:
        print(f"memory: {needed / 2**20:.1f} MiB of parameters, gradients and optimiser "
              f"state ({per_entity:.0f} bytes per entity)", file=sys.stderr)
    if free is not None and needed > free:
        raise InputError(f"--dim {config.dim}: training needs about {needed / 2**30:.1f} GiB "
                         f"({per_entity:.0f} bytes per entity) but {device} has "
                         f"{free / 2**30:.1f} GiB free; use a smaller --dim, "
                         "--freeze-features, or a larger device")


@contextlib.contextmanager
def stop_on_signals(trainer: Trainer):
    """SIGINT and SIGTERM stop training before its next step (a second one at once)."""
    def handler(signum, frame):
        if trainer._stop_signal is not None:
            raise KeyboardInterrupt
        trainer.request_stop(signum)
        print(f"\n{signal.Signals(signum).name}: stopping after the current step "
              "(again to stop at once)", file=sys.stderr)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@one_line_errors
def main(argv: Optional[List[str]] = None):
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    given = given_options(parser, argv)
    resume_dir = Path(args.resume) if args.resume else None
    if resume_dir is not None:
        run = load_run(resume_dir, args, given, parser)
        resolve_run_defaults(args)
        dataset = reload_dataset(run["dataset"], resume_dir)
        config, run_id, record = run["config"], run["run_id"], run["dataset"]
        args.drop_modality_rate, argv_used = run["drop_modality_rate"], run["argv"]
        check_run(dataset, config, args)
        out = resume_dir
    else:
        dataset, config = load_new_run(args)
        record, run_id, argv_used = dataset_record(args, dataset), uuid.uuid4().hex, argv
        out = Path(args.out or Path("runs") / dataset.name)
    device, rank = init_distributed(args.device)
    if device.type == "cpu":
        # Multi-threaded CPU kernels may sum in varying order; the seed should fix the run.
        torch.use_deterministic_algorithms(True, warn_only=True)
    if rank == 0:
        writable_folder(out, "--resume" if resume_dir else "--out")
    with (locked(out) if rank == 0 else contextlib.nullcontext()):
        if rank == 0 and resume_dir is None:
            clear_for_new_run(out, args.overwrite)
        check_fits(dataset, config, device, args.quiet or rank != 0)
        return _train(args, dataset, config, device, rank, out, resume_dir, run_id, record,
                      argv_used)


def _train(args, dataset, config, device, rank, out, resume_dir, run_id, record, argv_used):
    torch.manual_seed(config.seed)
    model = build_model(dataset, config, device)
    trainer = Trainer(model, dataset, config, out_dir=out if rank == 0 else None,
                      progress=not args.quiet, dataset_info=record)
    trainer.run_id = run_id
    settings = resolved_config(record, args.drop_modality_rate, args.device, config)
    if resume_dir is not None:
        trainer.resume(out)
        if rank == 0:
            print(f"resumed {out} at epoch {trainer.epoch}", file=sys.stderr)
    elif rank == 0:
        atomic_write_json(out / "config.json", {
            "run_id": run_id, "argv": argv_used, "dataset": record,
            "drop_modality_rate": args.drop_modality_rate, "train": config.to_dict()})
        write_config_yaml(out / "config.yaml", settings,
                          f"Run {run_id}: python -m mmkgc_pyg.train --config config.yaml "
                          "repeats it.")
    if rank == 0:
        print(f"{dataset}\n{model}\ndevice: {device} x {trainer.world_size}", file=sys.stderr)
    try:  # the trackers' runs end however training ends
        for tracker in trainer.trackers:
            tracker.log_config({"run_id": run_id, **settings})
        return _fit_and_evaluate(args, dataset, config, rank, out, trainer)
    finally:
        for tracker in trainer.trackers:
            tracker.close()


def _fit_and_evaluate(args, dataset, config, rank, out, trainer):
    try:
        with stop_on_signals(trainer):
            trainer.fit()
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except TrainingInterrupted as exc:
        name = signal.Signals(exc.signal_number).name
        if config.checkpoint_every:
            trainer.save_training_state()
            how = f"checkpoint written; continue with: python -m mmkgc_pyg.train --resume {out}"
        else:
            how = "no checkpoint (train with --checkpoint-every N to be able to resume)"
        print(f"{name}: stopped at epoch {exc.epoch}, step {exc.step}; {how}", file=sys.stderr)
        sys.exit(128 + exc.signal_number)
    try:  # every rank ranks its share of the queries; rank 0 writes
        results = evaluate_splits(trainer.model, dataset, trainer.filter_index,
                                  config.eval_batch_size, args.drop_modality_rate, config.seed,
                                  trainer.best_valid, config.raw_splits, progress=not args.quiet)
    except NonFiniteModelError as exc:
        print(f"error: the trained model cannot be evaluated: {exc}", file=sys.stderr)
        sys.exit(1)
    if rank != 0:
        return None
    results["best_epoch"] = trainer.best_epoch
    atomic_write_json(out / "metrics.json", results)
    table = metrics_table({k: results[k] for k in ("valid", "test")})
    atomic_write_text(out / "metrics.md", table)
    for tracker in trainer.trackers:
        tracker.log_final(results)
        for name, kind in (("model.pt", "model"), ("config.yaml", "config"),
                           ("config.json", "config"), ("metrics.json", "metrics")):
            tracker.log_artifact(out / name, kind)
    print(table)
    print(f"best epoch {trainer.best_epoch}; wrote {out}/model.pt, config.json, "
          "config.yaml, metrics.json, metrics.md, history.jsonl")
    return results


if __name__ == "__main__":
    main()
