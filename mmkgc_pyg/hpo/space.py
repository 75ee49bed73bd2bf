"""The search space of a hyperparameter search: which :class:`TrainConfig` fields vary,
and over what.

A space is a mapping field -> entry, as in a YAML file given to ``python -m
mmkgc_pyg.tune --search-space``::

    lr: {low: 1.0e-5, high: 1.0e-3, log: true}   # a range (int or float, by the field)
    dim: {low: 100, high: 400, step: 50}
    negatives: [32, 64, 128, 256]               # choices
    mu: 0.1                                     # one value: fixed in every trial
    margin: null                                # not searched: the base configuration's

A file's entries replace the default ones key by key (:data:`DEFAULT_SEARCH_SPACE`).
"""
import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from mmkgc_pyg.errors import ConfigError
from mmkgc_pyg.training.config import TrainConfig

#: Around the paper's settings: DB15K dim 250, margin 12, lr 1e-4; MKG-W and MKG-Y dim
#: 200, lr 2e-5, margin 12 and 4; 128 negatives, adversarial temperature 2, MAT's mu 0
#: in the released scripts.
DEFAULT_SEARCH_SPACE: Dict[str, Any] = {
    "dim": {"low": 100, "high": 400, "step": 50},
    "lr": {"low": 1e-5, "high": 1e-3, "log": True},
    "lr_g": {"low": 1e-5, "high": 1e-3, "log": True},
    "margin": {"low": 4.0, "high": 16.0},
    "negatives": [32, 64, 128, 256],
    "adv_temperature": {"low": 0.5, "high": 4.0},
    "mu": {"low": 0.0, "high": 0.5},
}


@dataclass(frozen=True)
class Parameter:
    """One searched field: a range ``[low, high]`` (``log`` scale, or a grid of ``step``)
    or a list of ``choices``."""
    name: str
    low: Any = None
    high: Any = None
    log: bool = False
    step: Optional[float] = None
    choices: Optional[Sequence[Any]] = None

    @property
    def kind(self) -> type:
        return TrainConfig.__dataclass_fields__[self.name].type

    def suggest(self, trial) -> Any:
        """The value of this parameter in an Optuna ``trial``."""
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind is int:
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1,
                                     log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        if not self.low <= value <= self.high:
            return False
        return self.step is None or math.isclose((value - self.low) / self.step,
                                                 round((value - self.low) / self.step))

    def extremes(self) -> List[Any]:
        """The values that bound what a trial may get (each is checked before a search)."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]


def _parameter(name: str, entry: Any) -> Parameter:
    kind = TrainConfig.__dataclass_fields__[name].type
    if isinstance(entry, list):
        if not entry:
            raise ConfigError(name, entry, "at least one choice")
        # Optuna's categorical values (a list, e.g. of trackers, is not one of them).
        if not all(c is None or isinstance(c, (bool, int, float, str)) for c in entry):
            raise ConfigError(name, entry, "choices that are numbers, strings, booleans or "
                              "null")
        return Parameter(name, choices=tuple(entry))
    unknown = sorted(set(entry) - {"low", "high", "log", "step"})
    if unknown or not {"low", "high"} <= set(entry):
        raise ConfigError(name, entry, "{low: L, high: H} with optional log and step, a "
                          "list of choices, or one value")
    if kind not in (int, float):
        raise ConfigError(name, entry, f"a list of choices ({name} is not a number)")
    low, high, log, step = entry["low"], entry["high"], entry.get("log", False), entry.get("step")
    numbers = (int,) if kind is int else (int, float)
    for value in (low, high, step):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers)):
            raise ConfigError(name, entry, f"{kind.__name__} bounds and step")
    if not isinstance(log, bool) or not low <= high or (log and (low <= 0 or step)) \
            or (step is not None and step <= 0):
        raise ConfigError(name, entry, "low <= high, a positive step, and log only with "
                          "low > 0 and no step")
    return Parameter(name, low if kind is int else float(low),
                     high if kind is int else float(high), log, step)


class SearchSpace:
    """The searched :class:`Parameter` objects and the values fixed in every trial.

    Args:
        entries (Mapping): field -> entry as in the module's description; ``None`` leaves
            the field out.
    """

    def __init__(self, entries: Mapping[str, Any]):
        self.parameters: Dict[str, Parameter] = {}
        self.fixed: Dict[str, Any] = {}
        fields = TrainConfig.__dataclass_fields__
        for name, entry in entries.items():
            if name not in fields:
                raise ConfigError(name, entry, "a TrainConfig field")
            if entry is None:
                continue
            if isinstance(entry, (list, dict)):
                self.parameters[name] = _parameter(name, entry)
            else:
                self.fixed[name] = entry
        for name, values in self.extremes().items():  # every bound is a valid setting
            for value in values:
                TrainConfig(**{name: value})

    @classmethod
    def with_overrides(cls, overrides: Optional[Mapping[str, Any]] = None) -> "SearchSpace":
        """:data:`DEFAULT_SEARCH_SPACE` with ``overrides`` replacing its entries."""
        return cls({**DEFAULT_SEARCH_SPACE, **(overrides or {})})

    def without(self, names: Iterable[str]) -> "SearchSpace":
        """The same space with ``names`` neither searched nor fixed (e.g. fields set on the
        command line)."""
        names = set(names)
        return SearchSpace({n: e for n, e in self.to_dict().items() if n not in names})

    def extremes(self) -> Dict[str, List[Any]]:
        return {**{n: p.extremes() for n, p in self.parameters.items()},
                **{n: [v] for n, v in self.fixed.items()}}

    def suggest(self, trial) -> Dict[str, Any]:
        """The settings of an Optuna ``trial``: sampled parameters and fixed values."""
        return {**{n: p.suggest(trial) for n, p in self.parameters.items()}, **self.fixed}

    def contains(self, config: TrainConfig) -> bool:
        """Whether ``config`` is one of the space's points."""
        return all(p.contains(getattr(config, n)) for n, p in self.parameters.items()) \
            and all(getattr(config, n) == v for n, v in self.fixed.items())

    def to_dict(self) -> Dict[str, Any]:
        """The entries that build this space again."""
        entries: Dict[str, Any] = dict(self.fixed)
        for name, p in self.parameters.items():
            if p.choices is not None:
                entries[name] = list(p.choices)
            else:
                entries[name] = {"low": p.low, "high": p.high,
                                 **({"log": True} if p.log else {}),
                                 **({"step": p.step} if p.step is not None else {})}
        return entries
