"""Trackers: the history file, TensorBoard, MLflow and W&B (read back through their own
formats), and the flattening they share."""
import json

import pytest
import yaml

from utils import as_default_graph
from mmkgc_pyg.cli import train
from mmkgc_pyg.data import SyntheticGraph, make_synthetic_kg
from mmkgc_pyg.training.trackers import (HistoryTracker, Tracker, flatten, flatten_params,
                                         make_trackers)

SMALL = ["--epochs", "3", "--eval-every", "1", "--dim", "8", "--negatives", "4", "--quiet"]


@pytest.fixture(scope="module")
def small_graph():
    graph = make_synthetic_kg(SyntheticGraph(
        num_entities=100, num_relations=4, num_clusters=5, domain_size=4, num_train=500,
        num_valid=30, num_test=30))
    with as_default_graph(graph):
        yield graph


def test_flatten_keeps_numbers_only():
    record = {"epoch": 3, "loss": 0.5, "generator_loss": None, "valid": {
        "mrr": 0.25, "rank_type": "realistic", "head": {"mrr": 0.2}, "ok": True}}
    assert flatten(record) == {"epoch": 3.0, "loss": 0.5, "valid/mrr": 0.25,
                               "valid/head/mrr": 0.2}


def test_history_appends_one_line_per_epoch(tmp_path):
    tracker = HistoryTracker(tmp_path / "history.jsonl")
    tracker.start_run({"lr": 1.0})  # the history holds epochs only
    tracker.log_epoch({"epoch": 1, "loss": 2.0})
    tracker.log_epoch({"epoch": 2, "loss": 1.0, "valid": {"mrr": 0.1}})
    lines = [json.loads(x) for x in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert lines == [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0, "valid": {"mrr": 0.1}}]


def test_make_trackers(tmp_path):
    assert make_trackers(["tensorboard"], None) == []
    (history, ) = make_trackers([], tmp_path)
    assert isinstance(history, HistoryTracker)
    with pytest.raises(ValueError, match="'neptune'"):
        make_trackers(["neptune"], tmp_path)
    assert Tracker().log_epoch({"epoch": 1}) is None  # the interface's defaults do nothing


def test_tensorboard_writes_scalars(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is an optional extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    (_, board) = make_trackers(["tensorboard"], tmp_path)
    board.log_epoch({"epoch": 1, "loss": 2.0, "valid": {"mrr": 0.5}})
    board.end_run()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) >= {"train/loss", "valid/mrr"}
    assert events.Scalars("valid/mrr")[0].value == 0.5


def test_flatten_params_keeps_every_setting_as_text():
    assert flatten_params({"lr": 0.1, "features": {"visual": "/v.pt"}, "trackers": ["mlflow"],
                           "dataset": None}) == {
        "lr": "0.1", "features/visual": "/v.pt", "trackers": "['mlflow']", "dataset": "None"}


def test_mlflow_run_read_back_through_mlflow(small_graph, tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="the [mlflow] extra is not installed")
    from mlflow.tracking import MlflowClient
    monkeypatch.chdir(tmp_path)  # MLflow puts a SQLite store's artifacts in ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "tiny")
    results = train.main(["--out", str(tmp_path / "run"), "--tracker", "mlflow", *SMALL])

    client = MlflowClient(uri)
    (run, ) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.tags["mmkgc.run_id"] == config["run"]["id"]
    assert run.data.params["dim"] == "8" and run.data.params["trackers"] == "['mlflow']"
    mrr = client.get_metric_history(run.info.run_id, "valid/mrr")
    assert [m.step for m in mrr] == [1, 2, 3]
    history = [json.loads(line) for line in
               (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [m.value for m in mrr] == [r["valid"]["mrr"] for r in history]
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 3
    assert run.data.metrics["final/test/mrr"] == results["test"]["mrr"]
    assert run.data.metrics["final/test/hits_at_10"] == results["test"]["hits@10"]
    files = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"model", "config.yaml", "metrics.json"} <= files
    assert "final/test/count" not in run.data.metrics  # a size, not a metric
    assert [f.path for f in client.list_artifacts(run.info.run_id, "model")] == ["model/model.pt"]


def test_wandb_offline_writes_its_run_folder(small_graph, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the [wandb] extra is not installed")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    results = train.main(["--out", str(tmp_path / "run"), "--tracker", "wandb", *SMALL])
    assert results["test"]["mrr"] > 0
    (folder, ) = (tmp_path / "run" / "wandb").glob("offline-run-*")  # in the run's folder
    (log, ) = folder.glob("run-*.wandb")
    data = log.read_bytes()  # W&B's record log: the config, the metrics, the artifacts
    for text in (b"valid/mrr", b"final/test/mrr", b"run_id", b"model.pt", b"metrics.json"):
        assert text in data, text


def test_a_missing_tracker_extra_is_one_line(small_graph, tmp_path, monkeypatch, capsys):
    import sys
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    with pytest.raises(SystemExit) as exc:
        train.main(["--out", str(tmp_path / "run"), "--tracker", "mlflow", *SMALL])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert 'pip install "mmkgc-pyg[mlflow]"' in err


def test_an_mlflow_file_store_is_one_line_and_leaves_nothing(small_graph, tmp_path,
                                                            monkeypatch, capsys):
    """MLflow 3 refuses file stores unless asked: one line naming the way out, exit 2,
    and the run folder it would have used is not left behind."""
    pytest.importorskip("mlflow", reason="the [mlflow] extra is not installed")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:./mlruns")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(SystemExit) as exc:
        train.main(["--out", str(tmp_path / "run"), "--tracker", "mlflow", *SMALL])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "MLFLOW_ALLOW_FILE_STORE=true" in err[0]
    assert not (tmp_path / "run").exists()
