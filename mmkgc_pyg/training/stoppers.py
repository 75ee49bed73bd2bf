"""Early stopping on a validation metric (higher is better)."""
import math
from dataclasses import asdict, dataclass
from typing import Dict

from mmkgc_pyg.errors import InvalidArgumentError


@dataclass
class EarlyStopper:
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
            raise InvalidArgumentError(f"EarlyStopper: expected frequency >= 1 and patience >= "
                                       f"1, got "
                                       f"{self.frequency} and {self.patience}")

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
