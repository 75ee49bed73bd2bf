"""Early stopping on a validation metric (higher is better): the bookkeeping alone
(:class:`EarlyStoppingLogic`), and the stopper that validates a model and keeps its best
weights (:class:`EarlyStopper`), as PyKEEN splits them."""
import math
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Optional

import torch
from torch import Tensor

from mmkgc_pyg.errors import InvalidArgumentError


@dataclass
class EarlyStoppingLogic:
    """Validates every ``frequency`` epochs and stops after ``patience`` validations in a
    row that did not improve on the best metric.

    Args:
        frequency (int): epochs between validations.
        patience (int): validations without improvement before stopping.
    """
    frequency: int = 50
    patience: int = 5
    best_metric: float = -math.inf
    best_epoch: int = 0
    evaluations_without_improvement: int = 0

    def __post_init__(self):
        if self.frequency < 1 or self.patience < 1:
            raise InvalidArgumentError(f"EarlyStoppingLogic: expected frequency >= 1 and "
                                       f"patience >= 1, got {self.frequency} and "
                                       f"{self.patience}")

    def should_evaluate(self, epoch: int) -> bool:
        return epoch % self.frequency == 0

    def report(self, epoch: int, metric: float) -> bool:
        """Records a validation result; True when it is the best so far."""
        if metric > self.best_metric:
            self.best_metric, self.best_epoch = metric, epoch
            self.evaluations_without_improvement = 0
            return True
        self.evaluations_without_improvement += 1
        return False

    @property
    def stopped(self) -> bool:
        return self.evaluations_without_improvement >= self.patience

    def state_dict(self) -> Dict:
        return asdict(self)

    def load_state_dict(self, state: Dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


class EarlyStopper:
    """Validates a model with ``evaluate`` (a function returning metrics with ``mrr``) on
    the epochs :class:`EarlyStoppingLogic` chooses, and keeps a copy of the weights (on
    the CPU) and their metrics: the best ones (``keep="best"``), or those of the latest
    validation (``keep="last"``, the reference's choice: it trains every epoch and keeps
    the last; the validations are still recorded, and never stop training).

    Args:
        model: the model whose weights are kept.
        evaluate: ``() -> metrics`` on the validation split.
        frequency, patience: as in :class:`EarlyStoppingLogic`.
        keep: ``"best"`` or ``"last"``.
    """

    def __init__(self, model: torch.nn.Module, evaluate: Callable[[], Dict], frequency: int,
                 patience: int, keep: str = "best"):
        if keep not in ("best", "last"):
            raise InvalidArgumentError(f"EarlyStopper: keep={keep!r}: expected 'best' or "
                                       "'last'")
        self.model, self.evaluate, self.keep = model, evaluate, keep
        self.logic = EarlyStoppingLogic(frequency, math.inf if keep == "last" else patience)
        self.best_state: Optional[Dict[str, Tensor]] = None  # the weights kept
        self.best_valid: Optional[Dict] = None  # the valid metrics of best_state
        self.kept_epoch = 0  # the epoch of best_state

    def validate(self, epoch: int) -> Dict:
        """Validates the current weights (recorded as ``epoch``'s) and keeps them when they
        are the best so far (or with ``keep="last"`` always); returns the metrics."""
        metrics = self.evaluate()
        if self.logic.report(epoch, metrics["mrr"]) or self.keep == "last":
            self.best_valid, self.kept_epoch = metrics, epoch
            self.best_state = {k: v.detach().to("cpu", copy=True)
                               for k, v in self.model.state_dict().items()}
        return metrics

    def improved_at(self, epoch: int) -> bool:
        """Whether ``epoch``'s validation gave the weights kept."""
        return self.best_state is not None and self.kept_epoch == epoch

    def restore_best(self) -> None:
        """Loads the weights kept into the model (nothing when none were kept)."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    def state_dict(self) -> Dict:
        return {"logic": self.logic.state_dict(), "best_state": self.best_state,
                "best_valid": self.best_valid, "kept_epoch": self.kept_epoch}

    def load_state_dict(self, state: Dict) -> None:
        self.logic.load_state_dict(state["logic"])
        self.best_state, self.best_valid = state["best_state"], state["best_valid"]
        self.kept_epoch = state["kept_epoch"]
