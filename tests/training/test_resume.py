"""Runs that survive faults: SIGKILL mid-run, then --resume, ends as if never killed."""
import json
import os
import signal
import subprocess
import sys
import time

import torch

FLAGS = ["--dim", "8", "--negatives", "4", "--batch-size", "1024", "--epochs", "8",
         "--eval-every", "2", "--patience", "10", "--checkpoint-every", "1", "--quiet"]


def train(out, *extra):
    return subprocess.Popen([sys.executable, "-m", "mmkgc_pyg.train", "--out", str(out),
                             *FLAGS, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def checkpoint_epoch(out):
    try:
        return torch.load(out / "checkpoint.pt", weights_only=True)["epoch"]
    except Exception:  # not written yet
        return 0


def test_killed_and_resumed_run_matches_uninterrupted_run(tmp_path):
    reference = train(tmp_path / "whole")
    killed_dir = tmp_path / "killed"
    killed = train(killed_dir)
    deadline = time.time() + 300
    while checkpoint_epoch(killed_dir) < 3 and killed.poll() is None:
        assert time.time() < deadline
        time.sleep(0.02)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    assert not (killed_dir / "metrics.json").exists()  # it really died mid-run
    resumed = subprocess.run([sys.executable, "-m", "mmkgc_pyg.train",
                              "--resume", str(killed_dir), "--quiet"],
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    resumed_at = int(resumed.stderr.split(f"resumed {killed_dir} after epoch ")[1].split()[0])
    assert resumed_at >= 3  # it continued from the checkpoint, not from scratch
    assert reference.wait(timeout=600) == 0
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    again = json.loads((killed_dir / "metrics.json").read_text())
    assert again == whole
    history = [json.loads(line)["epoch"]
               for line in (killed_dir / "history.jsonl").read_text().splitlines()]
    assert history == list(range(1, 9))


def test_resume_needs_a_checkpoint(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mmkgc_pyg.train", "--resume",
                             str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "checkpoint.pt" in result.stderr
    assert "Traceback" not in result.stderr
