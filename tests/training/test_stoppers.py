"""Early stopping: the bookkeeping, and the stopper that keeps the best weights."""
import pytest
import torch

from mmkgc_pyg.training import EarlyStopper, EarlyStoppingLogic


def test_stops_after_patience_validations_without_improvement():
    logic = EarlyStoppingLogic(frequency=2, patience=2)
    assert [e for e in range(1, 9) if logic.should_evaluate(e)] == [2, 4, 6, 8]
    assert logic.report(2, 0.3) and not logic.stopped
    assert not logic.report(4, 0.3)  # equal is no improvement
    assert logic.report(6, 0.4) and not logic.stopped
    assert not logic.report(8, 0.35) and not logic.stopped
    assert not logic.report(10, 0.39) and logic.stopped
    assert (logic.best_metric, logic.best_epoch) == (0.4, 6)


def test_state_round_trips():
    logic = EarlyStoppingLogic(5, 3)
    logic.report(5, 0.2)
    logic.report(10, 0.1)
    restored = EarlyStoppingLogic(5, 3)
    restored.load_state_dict(logic.state_dict())
    assert restored == logic


def test_bad_arguments():
    with pytest.raises(ValueError, match="patience"):
        EarlyStoppingLogic(1, 0)


def test_the_stopper_keeps_and_restores_the_best_weights():
    model = torch.nn.Linear(2, 1)
    metrics = iter([0.2, 0.5, 0.4])
    stopper = EarlyStopper(model, lambda: {"mrr": next(metrics)}, 1, 5)
    weights = []
    for epoch in (1, 2, 3):
        with torch.no_grad():
            model.weight.fill_(epoch)
        weights.append(model.weight.detach().clone())
        stopper.validate(epoch)
        assert stopper.improved_at(epoch) == (epoch != 3)
    assert stopper.best_valid == {"mrr": 0.5} and stopper.logic.best_epoch == 2
    stopper.restore_best()
    assert torch.equal(model.weight, weights[1])
    copy = EarlyStopper(torch.nn.Linear(2, 1), dict, 1, 5)
    copy.load_state_dict(stopper.state_dict())
    copy.restore_best()
    assert torch.equal(copy.model.weight, weights[1]) and copy.logic == stopper.logic


def test_keeping_the_last_weights_never_stops():
    model = torch.nn.Linear(2, 1)
    metrics = iter([0.5, 0.2, 0.1])
    stopper = EarlyStopper(model, lambda: {"mrr": next(metrics)}, 1, 1, keep="last")
    for epoch in (1, 2, 3):
        with torch.no_grad():
            model.weight.fill_(epoch)
        stopper.validate(epoch)
        assert stopper.improved_at(epoch) and not stopper.logic.stopped
    assert stopper.logic.best_epoch == 1 and stopper.kept_epoch == 3  # best recorded
    assert stopper.best_valid == {"mrr": 0.1}
    with torch.no_grad():
        model.weight.zero_()
    stopper.restore_best()
    assert (model.weight == 3).all()
    with pytest.raises(ValueError, match="keep"):
        EarlyStopper(model, dict, 1, 1, keep="first")
