"""The pipeline: one call from a dataset and settings to a trained model and its run
folder, following its settings; it owns the trackers from start to end."""
import json
import math

import pytest
import torch
import yaml

from utils import random_kg
from mmkgc_pyg import load_checkpoint, pipeline
from mmkgc_pyg.errors import TrainingDiverged
from mmkgc_pyg.training import TrainConfig, Tracker

SMALL = dict(dim=4, margin=6.0, negatives=5, batch_size=32, lr=1e-2, lr_g=1e-2, mu=0.5,
             epochs=3, eval_every=1, patience=3)


class Recorder(Tracker):
    def __init__(self):
        self.calls = []

    def start_run(self, settings):
        self.calls.append(("start_run", settings["run_id"]))

    def log_epoch(self, record):
        self.calls.append(("log_epoch", record["epoch"]))

    def log_final(self, metrics):
        self.calls.append(("log_final", "test" in metrics))

    def log_artifact(self, path, kind="file"):
        self.calls.append(("log_artifact", path.name))

    def end_run(self, success=True):
        self.calls.append(("end_run", success))


def test_pipeline_trains_evaluates_and_writes_the_run(tmp_path):
    data = random_kg()
    result = pipeline(data, TrainConfig(**SMALL), tmp_path / "run", progress=False)
    out = tmp_path / "run"
    assert {p.name for p in out.iterdir()} == {"config.yaml", "model.pt", "metrics.json",
                                               "metrics.md", "history.jsonl"}
    assert json.loads((out / "metrics.json").read_text())["test"] == result.metrics["test"]
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert written["run"]["id"] == result.run_id and written["dim"] == 4
    saved = load_checkpoint(out / "model.pt")
    for name, value in result.model.state_dict().items():
        assert torch.equal(saved.state_dict()[name], value.cpu())
    # The result saves itself elsewhere, never over another run unasked.
    copy = result.save(tmp_path / "copy")
    assert (copy / "model.pt").is_file() and (copy / "history.jsonl").read_text().count(
        "\n") == 3
    with pytest.raises(ValueError, match="holds an earlier run"):
        result.save(tmp_path / "copy")
    assert not (out / ".lock").exists()  # a finished run leaves no lock behind


def test_pipeline_follows_its_settings():
    """What the README's Python path used to ignore: interaction, margin, modalities and
    sparse updates all reach the model and the step."""
    data = random_kg()
    result = pipeline(data, {**SMALL, "interaction": "transe", "margin": 3.0,
                             "modalities": False, "sparse": True, "epochs": 1},
                      progress=False)
    assert result.model.interaction_name == "transe" and result.model.interaction.margin == 3.0
    assert result.model.adamf is None and result.config.sparse and result.out is None
    with pytest.raises(ValueError, match="negatives=40: expected fewer negatives"):
        pipeline(data, {**SMALL, "negatives": 40}, progress=False)


def test_the_pipeline_owns_the_trackers_from_start_to_end(tmp_path, monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr("mmkgc_pyg.training.runner.make_trackers",
                        lambda names, out: [recorder])
    result = pipeline(random_kg(), TrainConfig(**SMALL), tmp_path / "run", progress=False)
    assert recorder.calls == [("start_run", result.run_id), ("log_epoch", 1),
                              ("log_epoch", 2), ("log_epoch", 3), ("log_final", True),
                              ("log_artifact", "model.pt"), ("log_artifact", "config.yaml"),
                              ("log_artifact", "metrics.json"), ("end_run", True)]
    # A run that fails still ends its trackers' runs, as failed.
    recorder.calls.clear()
    data = random_kg()
    data.features["visual"][:] = math.inf  # diverges at once
    data.features["visual"][~data.masks["visual"]] = 0
    with pytest.raises(TrainingDiverged):
        pipeline(data, {**SMALL, "lr": 1e9}, tmp_path / "bad", progress=False)
    assert recorder.calls[0][0] == "start_run" and recorder.calls[-1] == ("end_run", False)


def test_history_and_tensorboard_logs(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is an optional extra")
    pipeline(random_kg(), {**SMALL, "epochs": 2, "trackers": ["tensorboard"]}, tmp_path,
             progress=False)
    records = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert {"loss", "generator_loss", "seconds", "steps_per_s", "valid"} <= set(records[0])
    event_files = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert event_files and event_files[0].stat().st_size > 0
