"""``python -m mmkgc_pyg.train``: train AdaMF-MAT, evaluate, write the results (through
:func:`mmkgc_pyg.training.runner.run`, the path :func:`mmkgc_pyg.pipeline` takes)."""
import argparse
import signal
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from mmkgc_pyg.cli.common import (add_dataset_arguments, fraction, name_path_pairs,
                                  one_line_errors)
from mmkgc_pyg.data.kg import KGDataset
from mmkgc_pyg.distributed import process_group
from mmkgc_pyg.errors import ConfigError, InputError, TrainingInterrupted
from mmkgc_pyg.evaluation import metrics_table
from mmkgc_pyg.training.config import TrainConfig
from mmkgc_pyg.training.config_file import read_run_file
from mmkgc_pyg.training.runner import RESUMABLE, load_run, run
from mmkgc_pyg.training.setup import RunSpec

#: Run settings that have a flag, beside the TrainConfig fields (setting: flag).
RUN_FLAGS = {"dataset": "--dataset", "features": "--feature", "masks": "--mask",
             "drop_modality_rate": "--drop-modality-rate", "device": "--device"}


def config_flag(name: str) -> str:
    """The command-line flag of a setting (a :class:`TrainConfig` field or a run
    setting)."""
    if name in RUN_FLAGS:
        return RUN_FLAGS[name]
    field = TrainConfig.__dataclass_fields__[name]
    if field.metadata["flag"]:
        return field.metadata["flag"]
    return "--tracker" if name == "trackers" else "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`TrainConfig` field, with its help; None when not given
    (a file's value, the dataset's preset, then the field's default apply)."""
    for f in fields(TrainConfig):
        meta = f.metadata
        if f.name == "sparse":  # three states: --sparse, --dense, or chosen by size
            parser.add_argument("--sparse", dest="sparse", action="store_const", const=True,
                                default=None, help=meta["help"])
            parser.add_argument("--dense", dest="sparse", action="store_const", const=False,
                                help="update every parameter with Adam (see --sparse)")
        elif f.type is bool:
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
                    "arguments: the embedded synthetic graph, about half a minute on a CPU.")
    add_run_arguments(parser)
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output folder (default runs/<dataset>)")
    parser.add_argument("--resume", metavar="DIR",
                        help=f"continue the interrupted run in DIR with its own settings "
                             f"(flags must equal them, except --{', --'.join(RESUMABLE)})"
                             .replace("_", "-"))
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run in --out (default: refuse)")
    return parser


def flag_settings(args: argparse.Namespace) -> Dict[str, Any]:
    """The settings given as flags (file shape): those left at None were not given."""
    settings = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
                if getattr(args, f.name) is not None}
    if args.dataset is not None:
        settings["dataset"] = args.dataset
    for key, dest in (("features", "feature"), ("masks", "mask")):
        if getattr(args, dest) is not None:
            settings[key] = name_path_pairs(getattr(args, dest), config_flag(key))
    for key in ("drop_modality_rate", "device"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    return settings


def worded(exc: ConfigError, flags: Dict[str, Any], file: Optional[str]) -> InputError:
    """A setting's error in the words of where it came from: its flag, or the file and
    key."""
    if exc.name in flags or file is None:
        return InputError(f"{config_flag(exc.name)} {flags.get(exc.name, exc.value)}: "
                          f"expected {exc.expected}")
    return InputError(f"{file}: {exc}")


def new_run(args: argparse.Namespace) -> Tuple[RunSpec, KGDataset, Dict, Dict]:
    """The spec and dataset of a new run from ``--config`` and the flags (which override
    the file), the flags given and the file's settings."""
    flags = flag_settings(args)
    from_file = read_run_file(args.config)[0] if args.config else {}
    try:
        spec, dataset = RunSpec.from_settings({**from_file, **flags})
    except ConfigError as exc:
        raise worded(exc, flags, args.config) from None
    return spec, dataset, flags, from_file


def resumed_run(args: argparse.Namespace):
    """The spec, identity and dataset of the run in ``--resume DIR``; flags must equal its
    settings, except the resumable ones."""
    if args.config:
        raise InputError("--config: cannot be given with --resume (the run keeps its "
                         "settings)")
    if args.out is not None and Path(args.out).resolve() != Path(args.resume).resolve():
        raise InputError(f"--out {args.out}: cannot differ from --resume {args.resume}")
    flags = flag_settings(args)
    try:
        return (*load_run(Path(args.resume), flags), flags)
    except ConfigError as exc:
        raise worded(exc, flags, None) from None


@one_line_errors
def main(argv: Optional[List[str]] = None):
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    resume = Path(args.resume) if args.resume else None
    if resume is not None:
        spec, identity, dataset, flags = resumed_run(args)
        out, file, run_id, argv = resume, None, identity["id"], identity.get("argv", argv)
    else:
        spec, dataset, flags, _ = new_run(args)
        file = args.config
        out, run_id = Path(args.out or Path("runs") / dataset.name), None
    try:
        result = run(spec, dataset, out, overwrite=args.overwrite, resume_id=run_id,
                     progress=not args.quiet, handle_signals=True, argv=argv)
    except ConfigError as exc:
        raise worded(exc, flags, file) from None
    except TrainingInterrupted as exc:
        how = (f"checkpoint written; continue with: python -m mmkgc_pyg.train --resume {out}"
               if exc.checkpoint else
               "no checkpoint (train with --checkpoint-every N to be able to resume)")
        print(f"\n{signal.Signals(exc.signal_number).name}: stopped in epoch {exc.epoch} "
              f"after step {exc.step}; {how}", file=sys.stderr)
        sys.exit(128 + exc.signal_number)
    if process_group()[0] != 0:  # the first process writes and reports
        return None
    print(metrics_table({k: result.metrics[k] for k in ("valid", "test")}))
    print(f"best epoch {result.metrics['best_epoch']}; wrote {out}/model.pt, config.yaml, "
          "metrics.json, metrics.md, history.jsonl")
    return result.metrics


if __name__ == "__main__":
    main()
