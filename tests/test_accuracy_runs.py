"""benchmarks/accuracy_runs.py (the paper's comparison in one command) at toy scale."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from mmkgc_pyg.data import SyntheticGraph, make_synthetic_kg

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy_runs.py"


@pytest.fixture(scope="module")
def module():
    """The script, imported from its file."""
    spec = importlib.util.spec_from_file_location("accuracy_runs", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def write_openke(dataset, folder: Path, with_features: bool):
    folder.mkdir()
    for name, names in (("entity2id.txt", dataset.entity_names),
                        ("relation2id.txt", dataset.relation_names)):
        (folder / name).write_text(f"{len(names)}\n" + "".join(
            f"{n}\t{i}\n" for i, n in enumerate(names)))
    for split in ("train", "valid", "test"):
        triples = getattr(dataset, split)
        (folder / f"{split}2id.txt").write_text(f"{len(triples)}\n" + "".join(
            f"{h} {t} {r}\n" for h, r, t in triples.tolist()))
    if with_features:
        torch.save(dataset.features["textual"], folder / f"{folder.name}-textual.pth")


def test_accuracy_runs_cover_every_configuration(module, tmp_path):
    data = make_synthetic_kg(SyntheticGraph(
        num_entities=120, num_relations=4, num_train=600, num_valid=40, num_test=40))
    write_openke(data, tmp_path / "toy", with_features=True)
    write_openke(data, tmp_path / "bare", with_features=False)
    out = tmp_path / "results"
    results = module.main([str(tmp_path / "toy"), str(tmp_path / "bare"), "--out", str(out),
                           "--mu", "0", "0.1", "--quiet", "--", "--epochs", "1", "--dim", "4",
                           "--negatives", "2", "--eval-every", "1", "--batch-size", "256"])
    rows = [(r["dataset"], r["model"], r["drop_rate"]) for r in results]
    assert rows == [("toy", "RotatE (structure only)", 0.0), ("toy", "AdaMF", 0.0),
                    ("toy", "AdaMF-MAT (mu=0)", 0.0), ("toy", "AdaMF-MAT (mu=0.1)", 0.0),
                    ("toy", "AdaMF-MAT (mu=0.1)", 0.2), ("toy", "AdaMF-MAT (mu=0.1)", 0.5),
                    ("toy", "AdaMF-MAT (mu=0.1)", 0.8), ("bare", "RotatE (structure only)", 0.0)]
    assert all(r["epochs"] == 1 and r["wall_s"] >= 0 for r in results if r["drop_rate"] == 0)
    assert all(0 < r["test"]["mrr"] <= 1 for r in results)
    saved = json.loads((out / "results.json").read_text())
    assert [r["test"]["mrr"] for r in saved] == [r["test"]["mrr"] for r in results]
    table = (out / "results.md").read_text()
    assert table.count("\n| toy |") == 7 and "--no-modalities" in table
    assert (out / "toy" / "adamf-mat-mu-0.1" / "drop0.5.json").exists()


def test_ablation_runs_every_switch_and_reports_both_counts(module, tmp_path):
    data = make_synthetic_kg(SyntheticGraph(
        num_entities=80, num_relations=3, num_train=300, num_valid=20, num_test=20))
    write_openke(data, tmp_path / "toy", with_features=True)
    out = tmp_path / "ablation"
    results = module.main([str(tmp_path / "toy"), "--ablate", "--seeds", "0", "--out",
                           str(out), "--quiet", "--", "--epochs", "2", "--dim", "4",
                           "--negatives", "2", "--eval-every", "1", "--batch-size", "128",
                           "--lr", "0.05"])
    assert [r["variant"] for r in results] == [
        "default (ours)", "--protocol reference", "--negative-sides per-negative",
        "--positives with-replacement", "--missing-rows fused", "--model-kept last"]
    for r in results:
        assert r["reference"]["rank_type"] == "optimistic" and r["reference"]["raw_splits"]
        # The toy test file repeats no line: the reference's count is our optimistic one.
        assert r["reference"]["test_triples_used"] == 20
        assert r["reference"]["mrr"] == pytest.approx(r["test"]["optimistic"]["mrr"])
        assert r["reference"]["mrr"] >= r["test"]["mrr"]
    assert [r["epochs"] for r in results] == [2] * 6
    table = (out / "ablation.md").read_text()
    assert table.count("\n| toy |") == 6 and "+0.0000 | +0.0000" in table  # the default's
    assert len(json.loads((out / "ablation.json").read_text())) == 6
