"""What the project promises about runs: nothing already written is lost, a run never
resumes into something else, and a stopped run continues where it stopped.

Each test names the promise it checks; all use a tiny graph so that they run in seconds.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from mmkgc_pyg.cli import train as train_cli
from mmkgc_pyg.run_folder import locked
from mmkgc_pyg.data import SyntheticGraph, make_synthetic_kg
from mmkgc_pyg.data.openke import write_openke

TINY = ["--dim", "4", "--negatives", "4", "--batch-size", "128", "--eval-every", "1",
        "--quiet"]


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """A tiny OpenKE folder with a textual feature file."""
    kg = make_synthetic_kg(SyntheticGraph(
        num_entities=120, num_relations=4, num_clusters=6, domain_size=3, num_train=600,
        num_valid=40, num_test=40))
    return write_openke(kg, tmp_path_factory.mktemp("data") / "tiny")


def train(*args):
    return train_cli.main([*TINY, *map(str, args)])


def fails(capsys, *args, expected):
    """The run exits with status 2 and one line holding ``expected`` (a resumed run gets
    no flags but ``args``)."""
    with pytest.raises(SystemExit) as info:
        if args[0] == "--resume":
            train_cli.main([*map(str, args), "--quiet"])
        else:
            train(*args)
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if line.startswith("error: ")]
    assert info.value.code == 2 and len(err) == 1 and expected in err[0], err
    return err[0]


def test_a_folder_holding_a_run_is_not_overwritten_unasked(graph, tmp_path, capsys):
    out = tmp_path / "run"
    train("--dataset", graph, "--epochs", 1, "--out", out)
    before = (out / "model.pt").read_bytes()
    fails(capsys, "--dataset", graph, "--epochs", 1, "--out", out,
          expected="holds an earlier run (config.yaml, model.pt")
    assert (out / "model.pt").read_bytes() == before
    train("--dataset", graph, "--epochs", 1, "--out", out, "--overwrite", "--seed", 7)
    assert yaml.safe_load((out / "config.yaml").read_text())["seed"] == 7


def test_a_folder_in_use_by_another_process_is_refused(graph, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    with locked(out):
        fails(capsys, "--dataset", graph, "--epochs", 1, "--out", out,
              expected=f"{out}: in use by process {os.getpid()}")
    train("--dataset", graph, "--epochs", 1, "--out", out)  # released: free again


def test_a_lock_left_by_a_dead_process_is_taken_over(graph, tmp_path):
    out = tmp_path / "stale"
    out.mkdir()
    (out / ".lock").write_text("process 999999 on a-host-long-gone\n")
    train("--dataset", graph, "--epochs", 1, "--out", out)
    assert (out / "metrics.json").is_file()


@pytest.mark.parametrize("place", ["file", "under_file"])
def test_out_must_be_a_writable_folder(graph, tmp_path, capsys, place):
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" if place == "file" else tmp_path / "f" / "run"
    fails(capsys, "--dataset", graph, "--out", out, expected="expected a folder")


def tmpfs(path: Path, size: str, read_only: bool = False):
    path.mkdir()
    options = f"size={size}" + (",ro" if read_only else "")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root in a mount namespace)")
    return path


def test_read_only_and_full_disks_give_one_line(graph, tmp_path, capsys):
    read_only = tmpfs(tmp_path / "ro", "1m", read_only=True)
    full = tmpfs(tmp_path / "full", "24k")
    try:
        fails(capsys, "--dataset", graph, "--out", read_only / "run",
              expected="expected a writable folder")
        message = fails(capsys, "--dataset", graph, "--epochs", 1, "--out", full,
                        expected="cannot write (No space left on device, ENOSPC)")
        assert str(full) in message
    finally:
        subprocess.run(["umount", str(read_only)])
        subprocess.run(["umount", str(full)])


def test_resume_accepts_only_flags_that_keep_the_run(graph, tmp_path, capsys):
    out = tmp_path / "run"
    train("--dataset", graph, "--epochs", 2, "--out", out, "--checkpoint-every", 1)
    for flag, value, expected in (
            ("--dim", "8", "--dim 8: expected the run's own value 4"),
            ("--lr", "0.5", "--lr 0.5: expected the run's own value 0.0001"),
            ("--out", str(tmp_path / "elsewhere"), "cannot differ from --resume")):
        fails(capsys, "--resume", out, flag, value, expected=expected)
    # The original command, run again with --resume: every value equals the run's.
    results = train("--resume", out, "--dataset", graph, "--out", out, "--checkpoint-every",
                    1, "--epochs", 3)
    history = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2, 3] and results["test"]["count"] > 0


def test_resume_needs_the_same_dataset_found_from_anywhere(graph, tmp_path, capsys,
                                                           monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(graph, data)
    out = tmp_path / "run"
    monkeypatch.chdir(tmp_path)  # a relative --dataset path
    train("--dataset", "data", "--epochs", 1, "--out", out, "--checkpoint-every", 1)
    monkeypatch.chdir(graph.parent)  # resuming from another directory finds it
    train_cli.main(["--resume", str(out), "--epochs", "2", "--quiet"])
    # Same sizes, other triples: refused, naming both fingerprints.
    lines = (data / "train2id.txt").read_text().splitlines()
    h, t, r = lines[1].split()
    lines[1] = f"{t} {h} {r}"
    (data / "train2id.txt").write_text("\n".join(lines) + "\n")
    fails(capsys, "--resume", out, "--epochs", 3, expected=f"the dataset at {data.resolve()} "
                                                           "has changed (fingerprint")


def test_a_checkpoint_of_another_run_is_not_resumed(graph, tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    train("--dataset", graph, "--epochs", 1, "--out", first, "--checkpoint-every", 1)
    train("--dataset", graph, "--epochs", 1, "--out", second, "--checkpoint-every", 1,
          "--seed", 3)
    shutil.copy(first / "checkpoint.pt", second / "checkpoint.pt")
    fails(capsys, "--resume", second, expected="belongs to another run")


@pytest.mark.parametrize("key, value, expected", [
    ("dim", "four", "config.yaml: dim='four': expected a int"),
    ("drop_modality_rate", 7, "config.yaml: drop_modality_rate=7: expected a number in [0, 1]"),
])
def test_a_tampered_config_yaml_is_refused(graph, tmp_path, capsys, key, value, expected):
    out = tmp_path / "run"
    train("--dataset", graph, "--epochs", 1, "--out", out, "--checkpoint-every", 1)
    config = yaml.safe_load((out / "config.yaml").read_text())
    config[key] = value
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    fails(capsys, "--resume", out, expected=expected)


def run_cli(args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "mmkgc_pyg.train", *TINY, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_within_a_step_and_the_run_resumes_exactly(graph, tmp_path, signum,
                                                                   status):
    """Interrupted mid-epoch with a real signal: one line saying how to resume, the exit
    status of the signal, and the resumed run ends with the metrics of an uninterrupted
    one (bit for bit on the CPU)."""
    args = ["--dataset", graph, "--epochs", 6, "--batch-size", 16, "--checkpoint-every", 2]
    reference = train_cli.main(["--out", str(tmp_path / "whole"), *TINY,
                                *map(str, args)])
    out = tmp_path / "stopped"
    proc = run_cli([*args, "--out", out])
    history = out / "history.jsonl"
    deadline = time.time() + 120
    while not (history.exists() and history.read_text().count("\n") >= 2):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert f"--resume {out}" in last and "stopped in epoch" in last
    resumed = train_cli.main(["--resume", str(out), "--quiet"])
    for split in ("valid", "test"):
        assert resumed[split]["mrr"] == reference[split]["mrr"]
    lines = [json.loads(x)["loss"] for x in history.read_text().splitlines()]
    expected = [json.loads(x)["loss"] for x in
                (tmp_path / "whole" / "history.jsonl").read_text().splitlines()]
    assert lines == expected


def test_without_checkpoints_a_signal_still_exits_cleanly(graph, tmp_path):
    proc = run_cli(["--dataset", graph, "--epochs", 50, "--batch-size", 16,
                    "--out", tmp_path / "run"])
    history = tmp_path / "run" / "history.jsonl"
    deadline = time.time() + 120
    while not history.exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert "no checkpoint (train with --checkpoint-every N" in err


@pytest.mark.parametrize("change, expected", [
    ("remove", "the run's visual feature is gone (the run had [120, 64])"),
    ("reshape", "the run's visual feature changed shape (the run had [120, 64], the file "
                "now gives [120, 3])"),
])
def test_resume_names_a_feature_that_changed(graph, tmp_path, capsys, change, expected):
    data = tmp_path / graph.name  # features are found by the folder's name
    shutil.copytree(graph, data)
    out = tmp_path / "run"
    train("--dataset", data, "--epochs", 1, "--out", out, "--checkpoint-every", 1)
    visual = data / f"{graph.name}-visual.pth"
    if change == "remove":
        visual.unlink()
    else:
        torch.save(torch.rand(120, 3), visual)
    fails(capsys, "--resume", out, "--epochs", 2, expected=expected)
