"""Shared command-line plumbing: error reporting, datasets and devices."""
import argparse
import errno
import functools
import logging
import sys
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch

from mmkgc_pyg import distributed
from mmkgc_pyg.errors import (ConfigError, DataWarning, InputError, MMKGCError,
                              NonFiniteModelError, TrainingDiverged)
from mmkgc_pyg.data.kg import MODALITY_NAME
from mmkgc_pyg.training.setup import DatasetSpec


#: Exit status of each error the library raises on purpose and the tools report in one
#: line (the first matching class wins); any other exception is a bug: its traceback shows.
EXIT_STATUS = ((InputError, 2), (NonFiniteModelError, 1), (TrainingDiverged, 1))


def one_line_errors(main: Callable) -> Callable:
    """Runs ``main`` with one-line reports: a user mistake (a file, setting or name)
    prints ``error: ...`` and exits with status 2, a model that cannot be ranked or a run
    that diverged with status 1 (:data:`EXIT_STATUS`), a data warning prints
    ``warning: ...``, and Ctrl-C exits with status 130, without a traceback. A path with
    a name longer than the file system allows (``ENAMETOOLONG``, wherever it is first
    used) is a user mistake too: status 2, naming the path. The library's log messages
    are shown (:func:`configure_logging`)."""

    @functools.wraps(main)
    def wrapped(argv: Optional[List[str]] = None):
        configure_logging()
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
            except OSError as exc:
                # Any path flag can carry one; other OS errors keep their traceback.
                if exc.errno != errno.ENAMETOOLONG:
                    raise
                path = exc.filename if exc.filename is not None else exc.filename2
                print(f"error: {path if path is not None else 'a path'}: expected a path "
                      "the file system accepts, got a name in it too long", file=sys.stderr)
                sys.exit(2)

    return wrapped


class _StderrHandler(logging.StreamHandler):
    # The stderr of the moment, not of when the handler was made (tests swap it).
    def emit(self, record):
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(quiet: bool = False) -> None:
    """Shows the messages the library logs (logger ``mmkgc_pyg``) on stderr, one line
    each as the message alone: from level INFO, or WARNING when ``quiet``. Calling it
    again only changes the level."""
    logger = logging.getLogger("mmkgc_pyg")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler())
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


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
        if not MODALITY_NAME.fullmatch(name):
            raise InputError(f"{flag} {value!r}: expected a modality name of letters, digits, "
                             "_ and - (no dots)")
        if name in pairs:
            raise InputError(f"{flag} {value!r}: modality {name!r} given twice (also "
                             f"{pairs[name]!r})")
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
    try:
        spec = DatasetSpec(args.dataset, name_path_pairs(args.feature, "--feature"),
                           name_path_pairs(args.mask, "--mask"))
    except ConfigError:
        raise InputError("--feature/--mask: expected --dataset DIR as well") from None
    return spec.load()


def dataset_for(args, model):
    """The graph the model was trained on: ``--dataset``, else the saved folder; each
    ``--feature`` must be a modality of the model with the shape of its table."""
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
    # The model ranks with its own feature tables: a --feature that is not one of them
    # (another modality, another width) would be read and silently ignored.
    tables = getattr(model, "features", {})
    for name, path in name_path_pairs(args.feature, "--feature").items():
        if name not in tables:
            raise InputError(f"--feature {name}={path}: expected a modality of "
                             f"{args.checkpoint} ({', '.join(tables) or 'it has none'}), "
                             f"got {name!r}")
        saved, given = list(tables[name].shape), list(dataset.features[name].shape)
        if saved != given:
            raise InputError(f"--feature {name}={path}: expected the shape {saved} of the "
                             f"{name} table in {args.checkpoint}, got {given}")
    return dataset


def resolve_device(name: str) -> torch.device:
    """:func:`mmkgc_pyg.distributed.resolve_device`, its errors naming ``--device``."""
    return _device_flag(distributed.resolve_device, name)


def init_distributed(name: str) -> Tuple[torch.device, int]:
    """:func:`mmkgc_pyg.distributed.init_distributed`, its errors naming ``--device``."""
    return _device_flag(distributed.init_distributed, name)


def _device_flag(function, name):
    try:
        return function(name)
    except ConfigError as exc:
        raise InputError(f"--device {name}: expected {exc.expected}") from None


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
