"""benchmarks/gpu_check.py in its CPU mode: every section runs (toy sizes, Triton's
interpreter), so a broken check script is caught before it reaches a GPU."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_every_section_on_the_cpu(tmp_path):
    out = tmp_path / "check.json"
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--cpu", "--scale", "2",
                           "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["kernel tests"]["ok"] and results["kernel tests"]["passed"] > 0
    ranking = results["DB15K filtered test ranking"]
    assert ranking["later_calls_identical"]
    assert ranking["reference_equal"] == ranking["reference_queries"] > 0
    assert all(v["ms"] > 0 and v["GBps"] >= 0 for k, v in results["AdaMF fusion"].items()
               if k.startswith("N="))
    training = results["training, paper configuration"]
    assert training["default (CUDA graph, TF32)"]["step_ms"] > 0
    assert training["--no-modalities"]["loss"] > 0
    assert "| kernel tests: ok | True |" in proc.stdout
    scale = results["Wikidata5M-sized graph"]
    assert scale["step_ms"] > 0 and scale["full_test_both_sides_s"] > 0
    assert scale["setup_from_files_structure_only_s"] >= 0 and scale["setup_in_memory_s"] >= 0
