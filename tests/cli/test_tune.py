"""``python -m mmkgc_pyg.tune``: a search that prunes, is killed and resumed, and whose
best configuration trains again to the valid MRR it recorded; the search space; errors."""
import csv
import subprocess
import sys
import time

import pytest
import yaml

from mmkgc_pyg.cli import train, tune
from mmkgc_pyg.data import make_synthetic_kg, write_openke
from mmkgc_pyg.errors import InputError
from mmkgc_pyg.errors import ConfigError
from mmkgc_pyg.training.config import TrainConfig

optuna = pytest.importorskip("optuna", reason="the [tune] extra (optuna) is not installed")

from mmkgc_pyg.hpo import DEFAULT_SEARCH_SPACE, SearchSpace  # noqa: E402

BASE = {"epochs": 6, "eval_every": 2, "dim": 8, "negatives": 4, "batch_size": 128,
        "lr": 0.02, "mu": 0.1, "lr_g": 1.0e-3}
# The base configuration (trial 0) learns; a trial drawing lr 1e-5 cannot, and is pruned.
SPACE = {"lr": [1.0e-5, 0.02], "dim": [8, 12], "lr_g": None, "margin": None,
         "negatives": None, "adv_temperature": None, "mu": None}


@pytest.fixture(scope="module")
def kg(tmp_path_factory):
    graph = make_synthetic_kg(num_entities=120, num_relations=4, num_clusters=6,
                              domain_size=4, num_train=600, num_valid=40, num_test=40)
    root = tmp_path_factory.mktemp("tune")
    write_openke(graph, root / "synthetic")
    (root / "base.yaml").write_text(yaml.safe_dump({"dataset": "synthetic", **BASE}))
    (root / "space.yaml").write_text(yaml.safe_dump(SPACE))
    return root


def trials(storage):
    return storage.get_all_trials(storage.get_study_id_from_name("mmkgc"), deepcopy=False)


def trial_states(storage):
    return {t.number: t.state.name for t in trials(storage)}


def test_search_prunes_is_killed_resumes_and_its_best_trains_to_its_mrr(kg, tmp_path):
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
    assert {"optimization_history.png", "intermediate_values.png"} <= plots

    best_yaml = yaml.safe_load((study_dir / "best.yaml").read_text())
    assert best_yaml["lr"] == best.params["lr"] and best_yaml["epochs"] == 6
    result = train.main(["--config", str(study_dir / "best.yaml"),
                         "--out", str(tmp_path / "best"), "--quiet"])
    assert result["valid"]["mrr"] == best.value  # same seed, same device: bit for bit
    assert result["best_epoch"] == best.user_attrs["best_epoch"]


def test_resuming_with_other_settings_is_refused(kg, tmp_path, capsys):
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
    dataset, base = train.load_new_run(args)
    searched = tune.load_space(args, dataset, base)  # flags fix negatives and dim
    assert "negatives" not in searched.parameters and "dim" not in searched.parameters
    args.negatives = None  # the default choices go up to 256 negatives: too many here
    with pytest.raises(InputError, match="the default search space: negatives: 128 does "
                                             "not fit this run .* or --negatives V"):
        tune.load_space(args, dataset, base)


def test_tune_without_its_extra_is_one_line(kg, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(SystemExit) as exc:
        tune.main(["--study", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and 'pip install "mmkgc-pyg[tune]"' in err
    assert not (tmp_path / "s").exists()



def test_two_processes_share_one_new_study(kg, tmp_path):
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
