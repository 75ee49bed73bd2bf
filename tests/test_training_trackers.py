"""Trackers: the history file, TensorBoard, and the flattening they share."""
import json

import pytest

from mmkgc_pyg.training.trackers import HistoryTracker, Tracker, flatten, make_trackers


def test_flatten_keeps_numbers_only():
    record = {"epoch": 3, "loss": 0.5, "generator_loss": None, "valid": {
        "mrr": 0.25, "rank_type": "realistic", "head": {"mrr": 0.2}, "ok": True}}
    assert flatten(record) == {"epoch": 3.0, "loss": 0.5, "valid/mrr": 0.25,
                               "valid/head/mrr": 0.2}


def test_history_appends_one_line_per_epoch(tmp_path):
    tracker = HistoryTracker(tmp_path / "history.jsonl")
    tracker.log_config({"lr": 1.0})  # the history holds epochs only
    tracker.log_epoch({"epoch": 1, "loss": 2.0})
    tracker.log_epoch({"epoch": 2, "loss": 1.0, "valid": {"mrr": 0.1}})
    lines = [json.loads(x) for x in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert lines == [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0, "valid": {"mrr": 0.1}}]


def test_make_trackers(tmp_path):
    assert make_trackers(["tensorboard"], None) == []
    (history, ) = make_trackers([], tmp_path)
    assert isinstance(history, HistoryTracker)
    with pytest.raises(ValueError, match="'wandb'"):
        make_trackers(["wandb"], tmp_path)
    assert Tracker().log_epoch({"epoch": 1}) is None  # the interface's defaults do nothing


def test_tensorboard_writes_scalars(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is an optional extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    (_, board) = make_trackers(["tensorboard"], tmp_path)
    board.log_epoch({"epoch": 1, "loss": 2.0, "valid": {"mrr": 0.5}})
    board.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) >= {"train/loss", "valid/mrr"}
    assert events.Scalars("valid/mrr")[0].value == 0.5
