"""``python -m mmkgc_pyg.train``: train AdaMF-MAT, evaluate, write the results."""
import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

import torch

from mmkgc_pyg.cli.common import (add_dataset_arguments, fraction, init_distributed,
                                  load_dataset, user_errors_exit_2)
from mmkgc_pyg.errors import UserInputError
from mmkgc_pyg.evaluation.link_prediction import missing_modality_mask
from mmkgc_pyg.evaluation.report import metrics_table
from mmkgc_pyg.io import atomic_write_json, atomic_write_text
from mmkgc_pyg.nn.model import SCORERS, MMKGCModel
from mmkgc_pyg.training.config import TrainConfig, preset_for
from mmkgc_pyg.training.trainer import Trainer, TrainingDiverged

# Flags that override TrainConfig fields (None = keep the dataset's preset).
CONFIG_FLAGS = {
    "dim": int, "margin": float, "negatives": int, "batch_size": int, "lr": float,
    "lr_g": float, "mu": float, "adv_temperature": float, "epochs": int,
    "eval_every": int, "patience": int, "seed": int, "eval_batch_size": int,
    "checkpoint_every": int, "time_budget": float,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mmkgc_pyg.train",
        description="Train and evaluate AdaMF-MAT (multi-modal KG completion). Without "
                    "arguments: the embedded synthetic graph, about a minute on a CPU.")
    add_dataset_arguments(parser)
    for name, kind in CONFIG_FLAGS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None,
                            help=f"default: the dataset's preset ({TrainConfig.__dataclass_fields__[name].default} otherwise)")
    parser.add_argument("--scorer", choices=sorted(SCORERS), default=None,
                        help="score function (default rotate)")
    parser.add_argument("--sampling", choices=["bernoulli", "uniform"], default=None,
                        help="which side negatives corrupt (default bernoulli)")
    parser.add_argument("--no-modalities", action="store_true",
                        help="structure-only baseline (plain KGE model)")
    parser.add_argument("--no-mat", action="store_true", help="AdaMF without MAT")
    parser.add_argument("--freeze-features", action="store_true",
                        help="keep the raw feature tables fixed (default: fine-tune them)")
    parser.add_argument("--bf16", action="store_true",
                        help="bf16 autocast in training (projections run in bfloat16)")
    parser.add_argument("--no-tf32", action="store_true",
                        help="full fp32 matrix products on CUDA (default: TF32 tensor cores)")
    parser.add_argument("--no-cuda-graph", action="store_true",
                        help="launch every kernel of a training step from Python (default "
                             "on one GPU: replay the step as one captured CUDA graph)")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write TensorBoard logs to DIR/tensorboard")
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
    values = {**TrainConfig().to_dict(), **preset_for(dataset_name)}
    values.update({k: getattr(args, k) for k in CONFIG_FLAGS if getattr(args, k) is not None})
    for flag in ("scorer", "sampling"):
        if getattr(args, flag) is not None:
            values[flag] = getattr(args, flag)
    values["modalities"] = not args.no_modalities
    values["mat"] = not args.no_mat
    values["train_features"] = not args.freeze_features
    values["bf16"] = args.bf16
    values["tf32"] = not args.no_tf32
    values["cuda_graph"] = not args.no_cuda_graph
    values["tensorboard"] = args.tensorboard
    config = TrainConfig.from_dict(values)
    checks = {name: (lambda v: v >= 1, "a positive integer") for name in (
        "dim", "negatives", "batch_size", "epochs", "eval_every", "patience")}
    checks.update(lr=(lambda v: v > 0, "a positive rate"),
                  lr_g=(lambda v: v > 0, "a positive rate"),
                  margin=(lambda v: v > 0, "a positive margin"),
                  mu=(lambda v: v >= 0, "a weight >= 0"),
                  adv_temperature=(lambda v: v >= 0, "a temperature >= 0"),
                  checkpoint_every=(lambda v: v >= 0, "a number of epochs >= 0"),
                  eval_batch_size=(lambda v: v >= 0, "a number of queries >= 0 (0: auto)"),
                  time_budget=(lambda v: v >= 0, "a number of seconds >= 0 (0: no limit)"))
    for name, (valid, expected) in checks.items():
        if not valid(getattr(config, name)):
            raise UserInputError(f"--{name.replace('_', '-')} {getattr(config, name)}: "
                                 f"expected {expected}")
    return config


def build_model(dataset, config: TrainConfig) -> MMKGCModel:
    features = ({m: dataset.features[m] for m in dataset.modalities}
                if config.modalities else {})
    return MMKGCModel(dataset.num_entities, dataset.num_relations, config.hidden_channels,
                      features=features, masks=dataset.masks, scorer=config.scorer,
                      margin=config.margin, train_features=config.train_features)


def final_metrics(trainer: Trainer, dataset, drop_rate: float, seed: int):
    """Valid and test metrics of the best model; the test optionally with modalities
    hidden for a fraction of entities."""
    fusion_mask = missing_modality_mask(trainer.model, dataset, drop_rate, seed)
    return {
        "valid": trainer.evaluate("valid"),
        "test": {**trainer.evaluate("test", dataset.test_categories, fusion_mask),
                 "drop_modality_rate": drop_rate},
    }


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

    results = final_metrics(trainer, dataset, args.drop_modality_rate, config.seed)
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
