"""Data-parallel training on 2 CPU processes (gloo), as torchrun runs it."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("distributed_worker.py")


def run(out, nproc):
    out.mkdir()
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 f"--nproc_per_node={nproc}"] if nproc > 1 else [sys.executable])
    result = subprocess.run([*launcher, str(WORKER), str(out)], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "metrics0.json").read_text())


def test_two_ranks_stay_identical_and_match_one_process(tmp_path):
    parallel = run(tmp_path / "ddp", 2)
    single = run(tmp_path / "single", 1)
    assert parallel["world_size"] == 2 and single["world_size"] == 1
    rank0 = torch.load(tmp_path / "ddp" / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "ddp" / "rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        torch.testing.assert_close(rank0[name], rank1[name], rtol=1e-5, atol=1e-6,
                                   msg=lambda m: f"{name}: {m}")
    # Different negatives per rank, the same global batches and schedule.
    assert parallel["test"]["mrr"] == pytest.approx(single["test"]["mrr"], rel=0.2)
    assert parallel["test"]["mrr"] > 0.05
    # Evaluation split across the ranks: every rank gets the metrics one process gets.
    rank1 = json.loads((tmp_path / "ddp" / "metrics1.json").read_text())
    assert rank1["test"] == parallel["test"]
    fixed = [json.loads((tmp_path / d / f).read_text())
             for d, f in (("ddp", "fixed0.json"), ("ddp", "fixed1.json"),
                          ("single", "fixed0.json"))]
    assert fixed[0] == fixed[1] == fixed[2]


def cli(tool, *args, nproc=2):
    launcher = (["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
                if nproc > 1 else [])
    result = subprocess.run([sys.executable, *launcher, "-m", f"mmkgc_pyg.{tool}",
                             *map(str, args)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_torchrun_cli_writes_outputs_from_rank_zero(tmp_path):
    out = tmp_path / "run"
    result = cli("train", "--out", out, "--dim", "8", "--negatives", "4", "--epochs", "2",
                 "--eval-every", "1", "--quiet")
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 < metrics["test"]["mrr"] <= 1
    assert "x 2" in result.stderr  # both processes joined the group

    # Evaluation split across two processes gives one process's metrics, written once.
    model = out / "model.pt"
    result = cli("evaluate", "--checkpoint", model, "--quiet", "--out", tmp_path / "two.json")
    assert result.stdout.count("wrote ") == 1
    cli("evaluate", "--checkpoint", model, "--quiet", "--out", tmp_path / "one.json", nproc=1)
    two, one = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("two", "one"))
    assert two["test"] == one["test"] and two["valid"] == one["valid"]
    assert two["test"]["mrr"] == pytest.approx(metrics["test"]["mrr"])

    names = torch.load(model, weights_only=True)
    entity, relation = names["entity_names"][0], names["relation_names"][0]
    result = cli("predict", "--checkpoint", model, "--head", entity, "--relation", relation)
    assert result.stdout.count("top 10 tails") == 1  # answered once, by rank 0
