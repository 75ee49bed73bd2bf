"""Run configuration files: the settings of a :class:`~mmkgc_pyg.training.setup.RunSpec`
in YAML, JSON or TOML (``train --config FILE``), and the ``config.yaml`` every run writes.

A file is one mapping in the flat shape of :meth:`RunSpec.to_dict
<mmkgc_pyg.training.setup.RunSpec.to_dict>`: :class:`~mmkgc_pyg.training.TrainConfig`
fields (``lr: 1e-4``, ``trackers: [mlflow]``) beside the run settings of
:data:`~mmkgc_pyg.training.setup.RUN_KEYS`. Relative paths in it are relative to the
file's folder. A run's ``config.yaml`` holds every value the run used, with absolute paths,
and its identity under ``run`` (id, dataset fingerprint, command line), which ``--resume``
reads and ``--config`` ignores: ``--config DIR/config.yaml`` trains the run again.

Files are read defensively: at most :data:`MAX_BYTES`, nested at most :data:`MAX_DEPTH`
levels, YAML at most :data:`MAX_VALUES` values once its aliases are expanded (a few
hundred bytes of nested aliases expand to gigabytes), and a key given twice is refused by
name (parsers keep the last silently).
"""
import difflib
import json
import re
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import yaml

from mmkgc_pyg.errors import InputError
from mmkgc_pyg.io import atomic_write_text
from mmkgc_pyg.training.config import TrainConfig
from mmkgc_pyg.training.setup import RUN_KEYS, RunSpec

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

SUFFIXES = {".yaml": "YAML", ".yml": "YAML", ".json": "JSON", ".toml": "TOML"}
#: The run's identity in its own ``config.yaml`` (read by ``--resume``, ignored by
#: ``--config``).
RUN_RECORD = "run"
MAX_BYTES = 1 << 20
MAX_DEPTH = 20
MAX_VALUES = 100_000


class _FileError(ValueError):
    """A limit of this module was crossed while parsing (worded by :func:`read_mapping`)."""


class _Loader(yaml.SafeLoader):
    """Safe YAML with YAML 1.2 floats (``1e-4`` is a number; PyYAML's YAML 1.1 reads a
    string), bounds on nesting and on the values aliases expand to, and duplicate keys
    refused."""

    def __init__(self, stream):
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _FileError(f"expected settings nested at most {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_VALUES:
            raise _FileError(f"expected at most {MAX_VALUES} values once YAML aliases are "
                             "expanded")
        return self.construct_document(node)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise _FileError(f"{key!r} given twice (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _expanded_size(node, memo: Dict[int, int]) -> int:
    """Values of a YAML node with every alias expanded, counted in time linear in the
    distinct nodes (an alias is the node it names: its size is remembered)."""
    if id(node) not in memo:
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        memo[id(node)] = 1 + sum(_expanded_size(child, memo) for child in children)
    return memo[id(node)]


def _json_object(pairs):
    keys = [key for key, _ in pairs]
    repeated = next((key for key in keys if keys.count(key) > 1), None)
    if repeated is not None:
        raise _FileError(f"{repeated!r} given twice")
    return dict(pairs)


def _toml(text: str) -> Dict[str, Any]:
    """TOML, whose parser refuses a key given twice without naming it: named here."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"Cannot overwrite a value \(at line (\d+)", str(exc))
        if where is None:
            raise
        line = int(where[1])
        key = text.splitlines()[line - 1].split("=", 1)[0].strip()
        raise _FileError(f"{key!r} given twice (line {line})") from None


def _depth(value) -> int:
    """Nesting depth of parsed values, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        children = item.values() if isinstance(item, dict) else (
            item if isinstance(item, list) else ())
        stack.extend((child, depth + 1) for child in children)
    return deepest


def read_mapping(path, what: str = "--config") -> Dict[str, Any]:
    """The top-level mapping of a YAML, JSON or TOML file (by its suffix).

    Raises:
        InputError: one line naming the file (``what`` names the argument that gave it
            when the file cannot be opened) and what was expected.
    """
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"{what} {path}: expected a .yaml, .yml, .json or .toml file")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise InputError(f"{path}: expected a settings file of at most {MAX_BYTES >> 20} "
                             f"MiB, got {path.stat().st_size} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InputError(f"{what} {path}: cannot read ({reason})") from None
    try:
        if kind == "YAML":
            loader = _Loader(text)
            try:
                values = loader.get_single_data()
            finally:
                loader.dispose()
        elif kind == "JSON":
            values = json.loads(text, object_pairs_hook=_json_object)
        else:
            values = _toml(text)
    except _FileError as exc:
        raise InputError(f"{path}: {exc}") from None
    except RecursionError:
        raise InputError(f"{path}: expected settings nested at most {MAX_DEPTH} "
                         "levels") from None
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
    if _depth(values) > MAX_DEPTH:
        raise InputError(f"{path}: expected settings nested at most {MAX_DEPTH} levels")
    return values


def _path(value, key: str, path: Path) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{path}: {key}={value!r}: expected a path")
    return str((path.parent / value) if not Path(value).is_absolute() else Path(value))


def read_run_file(path) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]]]:
    """The settings of the run file ``path`` (the flat shape, relative paths resolved
    against its folder) and the run's identity under ``run`` (None in a file a person
    wrote).

    Raises:
        InputError: an unknown key (with the closest known one) or a malformed run
            setting, naming the file and the key. Training settings are checked when
            the spec is assembled (:meth:`RunSpec.from_settings
            <mmkgc_pyg.training.setup.RunSpec.from_settings>`).
    """
    path = Path(path)
    values = read_mapping(path)
    known = [*TrainConfig.__dataclass_fields__, *RUN_KEYS]
    for key in values:
        if key not in known and key != RUN_RECORD:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InputError(f"{path}: {key!r}: expected a training setting or one of "
                             f"{', '.join(RUN_KEYS)}{hint}")
    settings = {k: v for k, v in values.items() if k != RUN_RECORD}
    if settings.get("dataset") is not None:
        settings["dataset"] = _path(settings["dataset"], "dataset", path)
    for key in ("features", "masks"):
        if key in settings:
            pairs = settings[key] or {}
            if not isinstance(pairs, dict):
                raise InputError(f"{path}: {key}={pairs!r}: expected a mapping modality: path")
            settings[key] = {str(m): _path(p, f"{key}.{m}", path) for m, p in pairs.items()}
    run = values.get(RUN_RECORD)
    if run is not None and not isinstance(run, dict):
        raise InputError(f"{path}: {RUN_RECORD}={run!r}: expected the run's identity (id, "
                         "fingerprint, argv) as written by mmkgc_pyg.train")
    return settings, run


def write_run_file(path, spec: RunSpec, run: Optional[Dict[str, Any]] = None,
                   comment: Optional[str] = None) -> None:
    """Writes ``spec`` (and the run's identity ``run``) as YAML, atomically, under
    ``comment`` lines."""
    values = spec.to_dict()
    if run is not None:
        values[RUN_RECORD] = run
    write_settings(path, values, comment)


def write_settings(path, settings: Dict[str, Any], comment: Optional[str] = None) -> None:
    """Writes settings of the file shape as YAML, atomically, under ``comment`` lines."""
    header = "".join(f"# {line}\n" for line in (comment or "").splitlines())
    atomic_write_text(path, header + yaml.safe_dump(settings, sort_keys=False))
