"""``python -m mmkgc_pyg.tune``: a search that prunes, is killed and resumed, and whose
best configuration trains again to the valid MRR it recorded; the search space; errors."""
import csv
import importlib.util
import random
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml

from mmkgc_pyg.cli import train, tune
from mmkgc_pyg.data import SyntheticGraph, make_synthetic_kg, write_openke
from mmkgc_pyg.errors import ConfigError, InputError
from mmkgc_pyg.hpo import DEFAULT_SEARCH_SPACE, SearchSpace
from mmkgc_pyg.training.config import TrainConfig

BASE = {"epochs": 6, "eval_every": 2, "dim": 8, "negatives": 4, "batch_size": 128,
        "lr": 0.02, "mu": 0.1, "lr_g": 1.0e-3}
# The base configuration (trial 0) learns; a trial drawing lr 1e-5 cannot, and is pruned.
SPACE = {"lr": [1.0e-5, 0.02], "dim": [8, 12], "lr_g": None, "margin": None,
         "negatives": None, "adv_temperature": None, "mu": None}


@pytest.fixture
def optuna():
    """Optuna, for the tests that search; the search space and the error without it
    need no extra."""
    return pytest.importorskip("optuna", reason="the [tune] extra (optuna) is not installed")


@pytest.fixture(scope="module")
def kg(tmp_path_factory):
    graph = make_synthetic_kg(SyntheticGraph(
        num_entities=120, num_relations=4, num_clusters=6, domain_size=4, num_train=600,
        num_valid=40, num_test=40))
    root = tmp_path_factory.mktemp("tune")
    write_openke(graph, root / "synthetic")
    (root / "base.yaml").write_text(yaml.safe_dump({"dataset": "synthetic", **BASE}))
    (root / "space.yaml").write_text(yaml.safe_dump(SPACE))
    return root


def trials(storage):
    return storage.get_all_trials(storage.get_study_id_from_name("mmkgc"), deepcopy=False)


def trial_states(storage):
    return {t.number: t.state.name for t in trials(storage)}


def test_search_prunes_is_killed_resumes_and_its_best_trains_to_its_mrr(optuna, kg, tmp_path):
    study_dir = tmp_path / "study"
    argv = ["--config", str(kg / "base.yaml"), "--search-space", str(kg / "space.yaml"),
            "--study", str(study_dir), "--trials", "4", "--startup-trials", "1", "--quiet"]
    process = subprocess.Popen([sys.executable, "-m", "mmkgc_pyg.tune", *argv],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    storage, deadline = None, time.monotonic() + 120
    try:  # kill the search within a trial (begun: it has recorded its process), once
        # the first trial has finished
        while time.monotonic() < deadline and process.poll() is None:
            if storage is None and (study_dir / "study.db").is_file():
                time.sleep(0.5)  # let the search create its tables
                storage = optuna.storages.RDBStorage(f"sqlite:///{study_dir / 'study.db'}")
            if storage is not None:
                try:
                    found = trials(storage)
                except KeyError:  # the study is being created
                    found = []
                if any(t.state.name == "COMPLETE" for t in found) and any(
                        t.state.name == "RUNNING" and "process" in t.user_attrs for t in found):
                    break
            time.sleep(0.05)
        process.kill()
    finally:
        stderr = process.communicate()[1]
    assert process.returncode == -9, stderr  # killed, not finished
    killed = [n for n, s in trial_states(storage).items() if s == "RUNNING"]
    assert len(killed) == 1 and 0 < killed[0] < 4

    best = tune.main(argv)  # the same command resumes the search
    states = trial_states(storage)
    assert states[killed[0]] == "FAIL"  # the killed trial, not left running forever
    assert sum(s in ("COMPLETE", "PRUNED") for s in states.values()) == 4
    assert "PRUNED" in states.values()
    assert states[0] == "COMPLETE"  # the base configuration is the first trial
    rows = list(csv.DictReader((study_dir / "trials.csv").open()))
    assert [(int(r["number"]), r["state"]) for r in rows] == sorted(states.items())
    plots = {p.name for p in (study_dir / "plots").glob("*.png")}
    if importlib.util.find_spec("matplotlib") is not None:  # the [plot] extra draws them
        assert {"optimization_history.png", "intermediate_values.png"} <= plots
    else:
        assert not plots

    best_yaml = yaml.safe_load((study_dir / "best.yaml").read_text())
    assert best_yaml["lr"] == best.params["lr"] and best_yaml["epochs"] == 6
    result = train.main(["--config", str(study_dir / "best.yaml"),
                         "--out", str(tmp_path / "best"), "--quiet"])
    assert result["valid"]["mrr"] == best.value  # same seed, same device: bit for bit
    assert result["best_epoch"] == best.user_attrs["best_epoch"]


def test_resuming_with_other_settings_is_refused(optuna, kg, tmp_path, capsys):
    argv = ["--config", str(kg / "base.yaml"), "--search-space", str(kg / "space.yaml"),
            "--study", str(tmp_path / "s"), "--trials", "1", "--epochs", "2", "--quiet"]
    tune.main(argv)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        tune.main([*argv[:-2], "3", "--quiet"])  # --epochs 3 instead of 2
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "holds a search with other base settings (epochs: 2 there, 3 now)" in err
    assert tune.main([*argv[:6], "--trials", "1", "--epochs", "2"]) is not None  # done: as is


@pytest.mark.parametrize("space, message", [
    ({"lr": {"low": 1e-3}}, "lr={'low': 0.001}: expected {low: L, high: H}"),
    ({"lr": {"low": 1e-2, "high": 1e-3}}, "expected low <= high"),
    ({"lr": {"low": 0.0, "high": 1.0, "log": True}}, "log only with low > 0"),
    ({"interaction": {"low": 1, "high": 2}},
     "expected a list of choices (interaction is not a number)"),
    ({"dim": {"low": 1.5, "high": 8}}, "expected int bounds"),
    ({"negatives": [8, 0]}, "negatives=0: expected a positive integer"),
    ({"learning_rate": [1]}, "learning_rate=[1]: expected a TrainConfig field"),
    ({"interaction": []}, "expected at least one choice"),
    ({"trackers": [["tensorboard"], []]},
     "trackers=[['tensorboard'], []]: expected choices that are numbers, strings"),
])
def test_bad_search_spaces(space, message):
    with pytest.raises(ConfigError) as exc:
        SearchSpace.with_overrides(space)
    assert message in str(exc.value)


def test_search_space_entries_and_flags(kg, tmp_path, capsys):
    space = SearchSpace.with_overrides({"mu": 0.2, "margin": None, "interaction": ["rotate",
                                                                              "transe"]})
    assert set(space.parameters) == set(DEFAULT_SEARCH_SPACE) - {"mu", "margin"} | {"interaction"}
    assert space.fixed == {"mu": 0.2}
    assert space.contains(TrainConfig(dim=250, lr=1e-4, lr_g=1e-4, mu=0.2))
    assert not space.contains(TrainConfig(dim=260, lr=1e-4, lr_g=1e-4, mu=0.2))  # off-grid
    assert SearchSpace(space.to_dict()).to_dict() == space.to_dict()
    assert set(space.without(["dim", "mu"]).to_dict()) == set(space.to_dict()) - {"dim",
                                                                                   "mu"}

    args = tune.build_parser().parse_args(["--dataset", str(kg / "synthetic"), "--study",
                                           "x", "--negatives", "4", "--dim", "8"])
    spec, dataset, flags, _ = train.new_run(args)
    searched = tune.load_space(args, None, dataset, spec, set(flags))  # flags fix negatives, dim
    assert "negatives" not in searched.parameters and "dim" not in searched.parameters
    with pytest.raises(InputError, match="the default search space: negatives: 128 does "
                                             "not fit this run .* or --negatives V"):
        # the default choices go up to 256 negatives: too many here
        tune.load_space(args, None, dataset, spec, set(flags) - {"negatives"})


def test_tune_without_its_extra_is_one_line(kg, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(SystemExit) as exc:
        tune.main(["--study", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and 'pip install "mmkgc-pyg[tune]"' in err
    assert not (tmp_path / "s").exists()



def test_two_processes_share_one_new_study(optuna, kg, tmp_path):
    """Two searches started at once on a new study folder (creating its tables, recording
    its settings, enqueuing the base trial: check-then-act steps they take in turn)."""
    study_dir = tmp_path / "shared"
    argv = [sys.executable, "-m", "mmkgc_pyg.tune", "--config", str(kg / "base.yaml"),
            "--search-space", str(kg / "space.yaml"), "--study", str(study_dir),
            "--trials", "3", "--epochs", "2", "--quiet"]
    processes = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    errors = [p.communicate(timeout=300)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], errors
    storage = optuna.storages.RDBStorage(f"sqlite:///{study_dir / 'study.db'}")
    states = trial_states(storage)
    assert len(states) >= 3 and set(states.values()) <= {"COMPLETE", "PRUNED"}
    assert sum(t.params == {"lr": BASE["lr"], "dim": BASE["dim"]} for t in trials(storage)
               if t.number == 0) == 1  # the base configuration, enqueued once


def tiny_base(kg, folder, **settings):
    """A base configuration file for quick trials on the fixture's graph."""
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump({"dataset": str(kg / "synthetic"), "dim": 8, "epochs": 1,
                                    "negatives": 4, "batch_size": 256, **settings}))
    return path


def test_file_values_are_fixed_not_searched(optuna, kg, tmp_path, capsys):
    """The default search space searches dim; a base file that sets it fixes it."""
    study_dir = tmp_path / "study"
    tune.main(["--config", str(tiny_base(kg, tmp_path)), "--study", str(study_dir),
               "--trials", "2", "--quiet"])
    err = capsys.readouterr().err
    searching = next(line for line in err.splitlines() if "searching" in line)
    assert "dim" not in searching.split("searching ")[1].split(";")[0]
    storage = optuna.storages.RDBStorage(f"sqlite:///{study_dir / 'study.db'}")
    assert len(trials(storage)) == 2 and all("dim" not in t.params and "lr" in t.params
                                             for t in trials(storage))
    assert yaml.safe_load((study_dir / "best.yaml").read_text())["dim"] == 8


def test_each_trial_is_a_run_of_the_configured_tracker(optuna, kg, tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="the [mlflow] extra is not installed")
    from mlflow.tracking import MlflowClient
    monkeypatch.chdir(tmp_path)  # MLflow puts a SQLite store's artifacts in ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "search")
    study_dir = tmp_path / "study"
    tune.main(["--config", str(tiny_base(kg, tmp_path, epochs=2, eval_every=1,
                                         trackers=["mlflow"])),
               "--study", str(study_dir), "--trials", "2", "--quiet"])

    storage = optuna.storages.RDBStorage(f"sqlite:///{study_dir / 'study.db'}")
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("search").experiment_id])
    by_name = {run.info.run_name: run for run in runs}
    assert sorted(by_name) == ["study-trial-0", "study-trial-1"]
    for trial in trials(storage):
        run = by_name[f"study-trial-{trial.number}"]
        assert run.info.status == "FINISHED"
        assert float(run.data.params["lr"]) == trial.params["lr"]
        assert run.data.params["dim"] == "8"
        mrr = client.get_metric_history(run.info.run_id, "valid/mrr")
        assert [m.step for m in mrr] == [1, 2]
        assert [m.value for m in mrr] == [trial.intermediate_values[e] for e in (1, 2)]
        assert run.data.metrics["final/valid/mrr"] == trial.value


def test_a_study_in_a_database_given_by_url(optuna, kg, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    study_dir = tmp_path / "study"
    argv = ["--config", str(tiny_base(kg, tmp_path)), "--study", str(study_dir),
            "--storage", url, "--trials", "1", "--quiet"]
    tune.main(argv)
    assert not (study_dir / "study.db").exists()
    assert len(trials(optuna.storages.RDBStorage(url))) == 1
    assert f"Trial 0 of {url}:" in (study_dir / "best.yaml").read_text()
    capsys.readouterr()
    tune.main([*argv[:-3], "--trials", "2", "--quiet"])  # resumed from the database: one trial more
    assert "study " + url + ": 1 of 2 trials finished" in capsys.readouterr().err
    assert len(trials(optuna.storages.RDBStorage(url))) == 2


@pytest.mark.parametrize("url, message", [
    ("not a url", "not a url: expected an SQLAlchemy database URL"),
    # The password is never shown; no server listens on port 1 (or no driver is installed).
    ("postgresql://user:secret@localhost:1/db",
     "postgresql://user:***@localhost:1/db: expected an Optuna study storage that opens"),
])
def test_a_storage_that_does_not_open_is_one_line(optuna, kg, tmp_path, capsys, url,
                                                   message):
    with pytest.raises(SystemExit) as exc:
        tune.main(["--config", str(tiny_base(kg, tmp_path)), "--study", str(tmp_path / "s"),
                   "--storage", url, "--trials", "1", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and message in err[0], err
    assert "secret" not in err[0]


def sqlite_of_another_program(path):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        db.execute("INSERT INTO notes (text) VALUES ('keep me')")
    db.close()


@pytest.mark.parametrize("content, message", [
    ("random", "expected an Optuna study database (SQLite), got a file that is not one"),
    ("foreign", "expected an Optuna study database, got an SQLite database of another "
                "program (tables notes)"),
])
def test_a_study_db_that_is_not_optunas_is_refused_untouched(optuna, kg, tmp_path, capsys,
                                                             content, message):
    study_dir = tmp_path / "s"
    study_dir.mkdir()
    path = study_dir / "study.db"
    if content == "random":
        path.write_bytes(random.Random(0).randbytes(4096))
    else:
        sqlite_of_another_program(path)
    before = path.read_bytes()
    with pytest.raises(SystemExit) as exc:
        tune.main(["--config", str(tiny_base(kg, tmp_path)), "--study", str(study_dir),
                   "--trials", "1", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {path}: {message}")
    assert path.read_bytes() == before


def test_a_search_space_choice_that_is_a_list_is_one_line(optuna, kg, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("trackers: [[tensorboard], []]\n")
    with pytest.raises(SystemExit) as exc:
        tune.main(["--config", str(tiny_base(kg, tmp_path)), "--study", str(tmp_path / "s"),
                   "--search-space", str(space), "--trials", "1", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and err == [
        f"error: {space}: trackers=[['tensorboard'], []]: expected choices that are numbers, "
        "strings, booleans or null"]
