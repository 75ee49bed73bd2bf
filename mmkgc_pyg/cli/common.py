"""Shared command-line plumbing: error reporting, datasets and devices."""
import argparse
import atexit
import functools
import os
import sys
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist

from mmkgc_pyg.errors import (DataWarning, InputError, MMKGCError, NonFiniteModelError,
                              TrainingDiverged)


#: Exit status of each error the library raises on purpose and the tools report in one
#: line (the first matching class wins); any other exception is a bug: its traceback shows.
EXIT_STATUS = ((InputError, 2), (NonFiniteModelError, 1), (TrainingDiverged, 1))


def one_line_errors(main: Callable) -> Callable:
    """Runs ``main`` with one-line reports: a user mistake (a file, setting or name)
    prints ``error: ...`` and exits with status 2, a model that cannot be ranked or a run
    that diverged with status 1 (:data:`EXIT_STATUS`), a data warning prints
    ``warning: ...``, and Ctrl-C exits with status 130, without a traceback."""

    @functools.wraps(main)
    def wrapped(argv: Optional[List[str]] = None):
        with warnings.catch_warnings():
            warnings.simplefilter("always", DataWarning)
            warnings.showwarning = _one_line_warning
            try:
                return main(argv)
            except MMKGCError as exc:
                status = next((code for kind, code in EXIT_STATUS if isinstance(exc, kind)),
                              None)
                if status is None:
                    raise
                print(f"error: {exc}", file=sys.stderr)
                sys.exit(status)
            except KeyboardInterrupt:
                print("interrupted", file=sys.stderr)
                sys.exit(130)

    return wrapped


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, DataWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line),
              file=sys.stderr, end="")


def name_path_pairs(values: Optional[List[str]], flag: str) -> Dict[str, str]:
    """Parses repeated ``NAME=PATH`` flag values."""
    pairs = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise InputError(f"{flag} {value!r}: expected MODALITY=PATH")
        pairs[name] = path
    return pairs


def add_dataset_arguments(parser: argparse.ArgumentParser,
                          default: str = "the embedded synthetic graph"):
    parser.add_argument("--dataset", metavar="DIR",
                        help=f"OpenKE benchmark folder (default: {default})")
    parser.add_argument("--feature", action="append", metavar="MODALITY=PATH",
                        help="a modality feature file [N, d] (.pt/.pth/.npy), or an MMRNS "
                             "HDF5 file keyed by entity name (.h5/.hdf5); repeatable; "
                             "files named <DATASET>-<modality>.pth in the folder are found "
                             "automatically")
    parser.add_argument("--mask", action="append", metavar="MODALITY=PATH",
                        help="entities missing a modality: a bool tensor [N] or a text "
                             "file of entity ids; repeatable")


def load_dataset(args: argparse.Namespace):
    """The dataset named by the flags (the synthetic graph when ``--dataset`` is absent)."""
    from mmkgc_pyg.data import load_openke, make_synthetic_kg

    features = name_path_pairs(args.feature, "--feature")
    masks = name_path_pairs(args.mask, "--mask")
    if args.dataset is None:
        if features or masks:
            raise InputError("--feature/--mask: expected --dataset DIR as well")
        return make_synthetic_kg()
    return load_openke(args.dataset, features=features, mask_files=masks)


def dataset_for(args, model):
    """The graph the model was trained on: ``--dataset``, else the saved folder."""
    if args.dataset is None and model.dataset.get("name") != "synthetic":
        args.dataset = model.dataset.get("path")
        if args.dataset is None or not Path(args.dataset).is_dir():
            raise InputError(f"{args.checkpoint}: its dataset folder {args.dataset!r} "
                             "is not available; expected --dataset DIR")
    dataset = load_dataset(args)
    saved, current = model.dataset.get("fingerprint"), dataset.fingerprint()
    if saved is not None and saved != current:
        raise InputError(
            f"{args.dataset or 'synthetic'}: expected the triples {args.checkpoint} was "
            f"trained on (fingerprint {saved}), got different ones ({current})")
    if (dataset.num_entities, dataset.num_relations) != (model.num_nodes,
                                                         model.num_relations):
        raise InputError(
            f"{args.dataset or 'synthetic'}: expected {model.num_nodes} entities and "
            f"{model.num_relations} relations as in {args.checkpoint}, got "
            f"{dataset.num_entities} and {dataset.num_relations}")
    return dataset


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise InputError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    return device


def init_distributed(device_flag: str) -> Tuple[torch.device, int]:
    """Joins the process group when launched by ``torchrun`` with several processes:
    NCCL and one GPU per process on CUDA, gloo on CPUs. Returns the device and rank."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return resolve_device(device_flag), 0
    device = resolve_device(device_flag)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    atexit.register(dist.destroy_process_group)
    return device, dist.get_rank()


def positive_int(value: str) -> int:
    """argparse type for a count >= 1."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def non_negative_int(value: str) -> int:
    """argparse type for a count >= 0."""
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value!r}")
    return number


def fraction(value: str) -> float:
    """argparse type for a rate in [0, 1]."""
    try:
        rate = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value!r}")
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value}")
    return rate
