"""The command-line tools end to end: the default run, its outputs, evaluation from the
checkpoint, and clear errors for bad input."""
import json
import subprocess
import sys

import pytest
import torch
import yaml

from mmkgc_pyg import load_checkpoint
from mmkgc_pyg.cli import evaluate as evaluate_cli
from mmkgc_pyg.cli import train as train_cli
from mmkgc_pyg.data import make_synthetic_kg
from mmkgc_pyg.evaluation import FilterIndex, evaluate_link_prediction, missing_modality_mask

METRICS = ("mrr", "mr", "hits@1", "hits@3", "hits@10")


@pytest.fixture(scope="module")
def default_runs(tmp_path_factory):
    """The default run (AdaMF-MAT on the synthetic graph) and its structure-only twin,
    given 25 epochs to the default's 15 (at 15 it has barely started to learn)."""
    root = tmp_path_factory.mktemp("runs")
    full = train_cli.main(["--out", str(root / "adamf_mat"), "--quiet"])
    structure = train_cli.main(["--out", str(root / "structure"), "--quiet",
                                "--no-modalities", "--epochs", "25"])
    return root, full, structure


def test_default_run_writes_its_outputs(default_runs):
    root, full, _ = default_runs
    out = root / "adamf_mat"
    for name in ("model.pt", "config.yaml", "metrics.json", "metrics.md", "history.jsonl"):
        assert (out / name).is_file(), name
    assert not (out / ".lock").exists()  # a finished run removes its lock
    metrics = json.loads((out / "metrics.json").read_text())
    for split in ("valid", "test"):
        for part in (metrics[split], metrics[split]["head"], metrics[split]["tail"]):
            assert all(0 <= part[k] <= (1 if k != "mr" else 1e9) for k in METRICS)
    assert metrics["test"]["rank_type"] == "realistic"
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["run"]["name"] == "synthetic" and config["mat"] is True
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == list(range(1, len(history) + 1))
    model = load_checkpoint(out / "model.pt")
    assert model.entity_names[0].startswith("e") and len(model.relation_names) == 16
    assert model.modality_names == ["structure", "textual", "visual"]


def test_modalities_and_mat_beat_structure_only(default_runs):
    _, full, structure = default_runs
    num_entities = 2500
    random_mrr = sum(1 / r for r in range(1, num_entities + 1)) / num_entities  # ~0.0034
    assert structure["test"]["mrr"] > 5 * random_mrr
    assert full["test"]["mrr"] > 10 * random_mrr
    assert full["test"]["mrr"] >= 1.2 * structure["test"]["mrr"]


def test_evaluate_reproduces_train_metrics(default_runs, tmp_path):
    root, full, _ = default_runs
    out = tmp_path / "eval.json"
    results = evaluate_cli.main(["--checkpoint", str(root / "adamf_mat" / "model.pt"),
                                 "--out", str(out), "--quiet"])
    for split in ("valid", "test"):
        for key in METRICS:
            assert results[split][key] == pytest.approx(full[split][key], rel=1e-6)
    assert json.loads(out.read_text())["test"]["mrr"] == pytest.approx(full["test"]["mrr"])
    dropped = evaluate_cli.main(["--checkpoint", str(root / "adamf_mat" / "model.pt"),
                                 "--out", str(out), "--quiet", "--drop-modality-rate", "0.8"])
    assert dropped["test"]["drop_modality_rate"] == 0.8
    assert dropped["test"]["mrr"] != pytest.approx(full["test"]["mrr"])
    # The library's modality-missing setting hides the same entities as the CLI's.
    model = load_checkpoint(root / "adamf_mat" / "model.pt")
    dataset = make_synthetic_kg()
    library = evaluate_link_prediction(
        model, dataset.evaluation_triples("test"),
        FilterIndex(dataset.known_triples(), dataset.num_relations),
        fusion_mask=missing_modality_mask(model, 0.8, seed=0))
    for key in METRICS:
        assert library[key] == dropped["test"][key]


def write_openke(folder, train_lines, entities=3, relations=1):
    folder.mkdir()
    (folder / "entity2id.txt").write_text(
        f"{entities}\n" + "".join(f"e{i}\t{i}\n" for i in range(entities)))
    (folder / "relation2id.txt").write_text(
        f"{relations}\n" + "".join(f"r{i}\t{i}\n" for i in range(relations)))
    (folder / "train2id.txt").write_text(f"{len(train_lines)}\n" + "\n".join(train_lines) + "\n")
    for split in ("valid2id.txt", "test2id.txt"):
        (folder / split).write_text("1\n0 1 0\n")
    return folder


@pytest.mark.parametrize("case, expected", [
    ("count", "train2id.txt"),
    ("range", "train2id.txt:3"),
    ("malformed", "train2id.txt:2"),
    ("missing_dir", "no such directory"),
    ("feature_rows", "visual"),
    ("feature_nan", "visual"),
    ("bad_flag", "--feature"),
    ("bad_rate", "--lr 0.0: expected a positive finite rate"),
    ("empty_train", "expected at least one train triple"),
    ("drop_without_modalities", "--drop-modality-rate"),
])
def test_bad_input_gets_one_line_and_status_2(tmp_path, capsys, case, expected):
    folder = tmp_path / "kg"
    args = ["--dataset", str(folder), "--epochs", "1", "--quiet", "--out", str(tmp_path / "o"),
            "--negatives", "1", "--dim", "4"]
    if case == "count":
        write_openke(folder, ["0 1 0"]).joinpath("train2id.txt").write_text("5\n0 1 0\n")
    elif case == "range":
        write_openke(folder, ["0 1 0", "0 7 0"])
    elif case == "malformed":
        write_openke(folder, ["0 1", "1 2 0"])
    elif case == "missing_dir":
        pass
    elif case in ("feature_rows", "feature_nan"):
        write_openke(folder, ["0 1 0", "1 2 0"])
        x = torch.randn(3 if case == "feature_nan" else 5, 4)
        x[1, 0] = float("nan")  # a partly-NaN row is corrupt, not "missing"
        torch.save(x, tmp_path / "visual.pt")
        args += ["--feature", f"visual={tmp_path / 'visual.pt'}"]
    elif case == "bad_flag":
        write_openke(folder, ["0 1 0", "1 2 0"])
        args += ["--feature", "visual"]
    elif case == "bad_rate":
        write_openke(folder, ["0 1 0", "1 2 0"])
        args += ["--lr", "0"]
    elif case == "empty_train":
        write_openke(folder, [])
        (folder / "train2id.txt").write_text("0\n")
    elif case == "drop_without_modalities":
        write_openke(folder, ["0 1 0", "1 2 0"])
        args += ["--drop-modality-rate", "0.5"]
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(args)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    err = [line for line in lines if not line.startswith("warning: ")]  # data findings
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], lines


def test_bad_input_from_the_shell_has_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mmkgc_pyg.train", "--dataset", str(tmp_path / "absent")],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(tmp_path / "absent") in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "mmkgc_pyg.evaluate", "--checkpoint", str(tmp_path / "x.pt")],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_evaluate_refuses_a_different_graph(default_runs, tmp_path, capsys):
    root, _, _ = default_runs
    payload = torch.load(root / "adamf_mat" / "model.pt", weights_only=True)
    payload["dataset"]["fingerprint"] = "0" * 16  # as if trained on other triples
    torch.save(payload, tmp_path / "model.pt")
    with pytest.raises(SystemExit) as exit_info:
        evaluate_cli.main(["--checkpoint", str(tmp_path / "model.pt"), "--quiet"])
    assert exit_info.value.code == 2
    assert "fingerprint" in capsys.readouterr().err
