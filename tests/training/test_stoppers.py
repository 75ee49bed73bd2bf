"""Early stopping."""
import pytest

from mmkgc_pyg.training import EarlyStopper


def test_stops_after_patience_validations_without_improvement():
    stopper = EarlyStopper(frequency=2, patience=2)
    assert [e for e in range(1, 9) if stopper.should_evaluate(e)] == [2, 4, 6, 8]
    assert stopper.report(2, 0.3) and not stopper.stopped
    assert not stopper.report(4, 0.3)  # equal is no improvement
    assert stopper.report(6, 0.4) and not stopper.stopped
    assert not stopper.report(8, 0.35) and not stopper.stopped
    assert not stopper.report(10, 0.39) and stopper.stopped
    assert (stopper.best_metric, stopper.best_epoch) == (0.4, 6)


def test_state_round_trips():
    stopper = EarlyStopper(5, 3)
    stopper.report(5, 0.2)
    stopper.report(10, 0.1)
    restored = EarlyStopper(5, 3)
    restored.load_state_dict(stopper.state_dict())
    assert restored == stopper


def test_bad_arguments():
    with pytest.raises(ValueError, match="patience"):
        EarlyStopper(1, 0)
