"""``python -m mmkgc_pyg.train``: train AdaMF-MAT, evaluate, write the results."""
import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import List, Optional

import torch

from mmkgc_pyg.cli.common import (add_dataset_arguments, fraction, init_distributed,
                                  load_dataset, user_errors_exit_2)
from mmkgc_pyg.errors import UserInputError
from mmkgc_pyg.evaluation import evaluate_splits, metrics_table
from mmkgc_pyg.io import atomic_write_json, atomic_write_text
from mmkgc_pyg.nn.model import MMKGCModel
from mmkgc_pyg.training.config import ConfigError, TrainConfig, preset_for
from mmkgc_pyg.training.trainer import Trainer, TrainingDiverged


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mmkgc_pyg.train",
        description="Train and evaluate AdaMF-MAT (multi-modal KG completion). Without "
                    "arguments: the embedded synthetic graph, about a minute on a CPU.")
    add_dataset_arguments(parser)
    add_config_arguments(parser)
    parser.add_argument("--drop-modality-rate", type=fraction, default=0.0, metavar="P",
                        help="hide all modalities of a random fraction P of entities at "
                             "test time (the modality-missing setting)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output folder (default runs/<dataset>)")
    parser.add_argument("--resume", metavar="DIR",
                        help="continue the interrupted run in DIR (its config is reused)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def build_config(args: argparse.Namespace, dataset_name: str) -> TrainConfig:
    """The dataset's preset overridden by the given flags; a bad value is a user error
    naming its flag."""
    values = {**TrainConfig().to_dict(), **preset_for(dataset_name)}
    values.update({f.name: getattr(args, f.name) for f in fields(TrainConfig)
                   if getattr(args, f.name) is not None})
    try:
        return TrainConfig(**values)
    except ConfigError as exc:
        raise UserInputError(f"{config_flag(exc.name)} {exc.value}: expected {exc.expected}") from None


def build_model(dataset, config: TrainConfig) -> MMKGCModel:
    features = dataset.features if config.modalities else {}
    return MMKGCModel(dataset.num_entities, dataset.num_relations, config.dim,
                      features=features, masks=dataset.masks, scorer=config.scorer,
                      margin=config.margin, train_features=config.train_features)


@user_errors_exit_2
def main(argv: Optional[List[str]] = None):
    args = build_parser().parse_args(argv)
    resume_dir = Path(args.resume) if args.resume else None
    if resume_dir is not None:
        if not (resume_dir / "checkpoint.pt").is_file() or not (resume_dir / "config.json").is_file():
            raise UserInputError(f"--resume {resume_dir}: expected checkpoint.pt and "
                                 "config.json from a run with --checkpoint-every")
        try:
            argv_used = json.loads((resume_dir / "config.json").read_text())["argv"]
        except (ValueError, KeyError):
            raise UserInputError(f"{resume_dir / 'config.json'}: expected the JSON written "
                                 "by mmkgc_pyg.train") from None
        # The saved flags rebuild the same run; the device may change.
        args = build_parser().parse_args(argv_used + ["--device", args.device])
    else:
        argv_used = list(sys.argv[1:] if argv is None else argv)
    dataset = load_dataset(args)
    for split in ("train", "valid", "test"):
        if len(getattr(dataset, split)) == 0:
            raise UserInputError(f"{args.dataset}: expected at least one {split} triple")
    config = build_config(args, dataset.name)
    if args.drop_modality_rate > 0 and not (config.modalities and dataset.modalities):
        raise UserInputError("--drop-modality-rate: expected a model with modalities")
    device, rank = init_distributed(args.device)
    if device.type == "cpu":
        # Multi-threaded CPU kernels may sum in varying order; the seed should fix the run.
        torch.use_deterministic_algorithms(True, warn_only=True)
    out = resume_dir or Path(args.out or Path("runs") / dataset.name)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(config.seed)
    model = build_model(dataset, config).to(device)
    model.entity_names, model.relation_names = dataset.entity_names, dataset.relation_names
    dataset_info = {"path": str(Path(args.dataset).resolve()) if args.dataset else None}
    trainer = Trainer(model, dataset, config, out_dir=out if rank == 0 else None,
                      progress=not args.quiet, dataset_info=dataset_info)
    if resume_dir is not None:
        trainer.resume(out)
        if rank == 0:
            print(f"resumed {out} at epoch {trainer.epoch}", file=sys.stderr)
    elif rank == 0:
        (out / "history.jsonl").unlink(missing_ok=True)
        atomic_write_json(out / "config.json", {"argv": argv_used, "dataset": dataset.name,
                                                "train": config.to_dict()})
    if rank == 0:
        print(f"{dataset}\n{model}\ndevice: {device} x {trainer.world_size}",
              file=sys.stderr)
    try:
        trainer.fit()
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    if rank != 0:  # rank 0 evaluates and writes the outputs
        return None

    results = evaluate_splits(trainer.model, dataset, trainer.filter_index,
                              config.eval_batch_size, args.drop_modality_rate, config.seed,
                              trainer.best_valid, progress=not args.quiet)
    results["best_epoch"] = trainer.best_epoch
    atomic_write_json(out / "metrics.json", results)
    table = metrics_table({k: results[k] for k in ("valid", "test")})
    atomic_write_text(out / "metrics.md", table)
    print(table)
    print(f"best epoch {trainer.best_epoch}; wrote {out}/model.pt, config.json, "
          "metrics.json, metrics.md, history.jsonl")
    return results


if __name__ == "__main__":
    main()
