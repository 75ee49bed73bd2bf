"""Run configuration files: ``--config FILE`` (YAML, JSON or TOML) and the ``config.yaml``
every run writes.

A file is one mapping of :class:`~mmkgc_pyg.training.TrainConfig` fields (``lr: 1e-4``,
``trackers: [mlflow]``) and the run settings in :data:`RUN_KEYS`. Relative paths in it are
relative to the file's folder. Precedence: the defaults, then the dataset's preset, then
the file, then the flags given on the command line (a given flag replaces the file's value
of its key). ``config.yaml`` holds every value a run used, with absolute paths, so that
``--config config.yaml`` repeats it.
"""
import difflib
import json
import re
from pathlib import Path
from typing import Any, Dict, Optional

import yaml

from mmkgc_pyg.errors import InputError
from mmkgc_pyg.io import atomic_write_text
from mmkgc_pyg.training.config import TrainConfig

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

#: Settings of a run beside its :class:`TrainConfig` (key: what it holds).
RUN_KEYS = {
    "dataset": "the OpenKE folder (null: the embedded synthetic graph)",
    "features": "modality -> feature file, as --feature",
    "masks": "modality -> mask file, as --mask",
    "drop_modality_rate": "fraction of entities whose modalities are hidden at test time",
    "device": "auto, cpu, cuda or cuda:N",
}
SUFFIXES = {".yaml": "YAML", ".yml": "YAML", ".json": "JSON", ".toml": "TOML"}


class _Loader(yaml.SafeLoader):
    """YAML with YAML 1.2 floats: ``1e-4`` is a number (PyYAML's YAML 1.1 reads a
    string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def read_mapping(path, flag: str = "--config") -> Dict[str, Any]:
    """The top-level mapping of a YAML, JSON or TOML file (by its suffix); a missing or
    malformed file is a :class:`~mmkgc_pyg.errors.InputError` naming it."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"{flag} {path}: expected a .yaml, .yml, .json or .toml file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InputError(f"{flag} {path}: cannot read ({reason})") from None
    try:
        if kind == "YAML":
            values = yaml.load(text, Loader=_Loader)
        elif kind == "JSON":
            values = json.loads(text)
        else:
            values = tomllib.loads(text)
    except (yaml.YAMLError, ValueError) as exc:  # JSON and TOML errors are ValueErrors
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        reason = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise InputError(f"{path}{where}: expected {kind} ({reason})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise InputError(f"{path}: expected a mapping of settings (key: value), got a "
                         f"{type(values).__name__}")
    return values


def _path(value, key: str, path: Path) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{path}: {key}={value!r}: expected a path")
    return str((path.parent / value) if not Path(value).is_absolute() else Path(value))


def apply_config_file(args, path) -> Dict[str, Any]:
    """Reads the run file ``path`` into ``args``: each run setting of :data:`RUN_KEYS`
    whose flag was not given (is None) takes the file's value. Returns the file's
    :class:`TrainConfig` values (checked by :func:`~mmkgc_pyg.cli.train.build_config`).
    An unknown key or a bad value is an error naming the file and the key."""
    path = Path(path)
    values = read_mapping(path)
    fields = TrainConfig.__dataclass_fields__
    for key in values:
        if key not in fields and key not in RUN_KEYS:
            close = difflib.get_close_matches(str(key), [*fields, *RUN_KEYS], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InputError(f"{path}: {key!r}: expected a training setting or one of "
                             f"{', '.join(RUN_KEYS)}{hint}")
    if "dataset" in values and args.dataset is None and values["dataset"] is not None:
        args.dataset = _path(values["dataset"], "dataset", path)
    for key, dest in (("features", "feature"), ("masks", "mask")):
        if key in values and getattr(args, dest) is None:
            pairs = values[key] or {}
            if not isinstance(pairs, dict):
                raise InputError(f"{path}: {key}={pairs!r}: expected a mapping "
                                 "modality: path")
            setattr(args, dest, [f"{m}={_path(p, f'{key}.{m}', path)}"
                                 for m, p in pairs.items()])
    rate = values.get("drop_modality_rate")
    if rate is not None and args.drop_modality_rate is None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise InputError(f"{path}: drop_modality_rate={rate!r}: expected a number "
                             "in [0, 1]")
        args.drop_modality_rate = float(rate)
    device = values.get("device")
    if device is not None and args.device is None:
        if not isinstance(device, str):
            raise InputError(f"{path}: device={device!r}: expected auto, cpu, cuda or "
                             "cuda:N")
        args.device = device
    return {key: value for key, value in values.items() if key in fields}


def resolved_config(dataset_record: Dict, drop_modality_rate: float, device: str,
                    config: TrainConfig) -> Dict[str, Any]:
    """Every setting of a run, as ``--config`` reads it: ``dataset_record`` is the run's
    dataset (absolute ``path``, ``features``, ``masks``)."""
    return {"dataset": dataset_record["path"], "features": dict(dataset_record["features"]),
            "masks": dict(dataset_record["masks"]),
            "drop_modality_rate": drop_modality_rate, "device": device, **config.to_dict()}


def write_config_yaml(path, settings: Dict[str, Any], comment: Optional[str] = None) -> None:
    """Writes ``settings`` (from :func:`resolved_config`) as YAML, atomically, under
    ``comment`` lines."""
    header = "".join(f"# {line}\n" for line in (comment or "").splitlines())
    atomic_write_text(path, header + yaml.safe_dump(settings, sort_keys=False))
