"""One-command GPU check: kernel tests on CUDA, ranking, fusion and training speed.

    python benchmarks/gpu_check.py [--dataset DIR/DB15K] [--out check.json]
    python benchmarks/gpu_check.py --cpu      # tiny sizes, Triton's interpreter (CI)

Run from the project root on a GPU machine (no network needed); prints one Markdown table
and optionally writes every figure as JSON. Sections (each runs even if another fails):

1. DB15K's full filtered test ranking (19,804 queries, realistic ranks): the first call
   (compilation, autotuning) and the median of later calls, which must give identical
   ranks; the kernel alone and the whole evaluation; 256 queries against a float64
   reference;
2. the fused AdaMF attention, forward and forward + backward, at N = 1e5 and 1e6 (M = 3,
   D = 500), as a fraction of the copy bandwidth measured in the same run;
3. ms per training step and seconds per DB15K epoch at the paper's configuration for
   each variant of ``workloads.TRAINING_VARIANTS``;
4. the kernel tests (``tests/kernels/`` and the CUDA-only training tests) on the
   GPU (``--kernel-device cuda``), pass/fail;
5. with ``--scale``, a graph of Wikidata5M's size: setup from OpenKE files and from a
   graph in memory, the captured sparse step, an epoch, the full filtered test.

Without ``--scale`` the check takes under 5 minutes on an H100/H200.

The same workloads are timed by ``pytest benchmarks/ --benchmark-only`` (see
``workloads.py``). ``--cpu`` runs every section at toy sizes on the CPU (the kernels in
Triton's interpreter, a subset of the kernel tests) so that CI catches a broken script;
its timings mean nothing.
"""
import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNEL_TESTS = ["tests/kernels", "tests/training/test_cuda.py"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true",
                        help="toy sizes on the CPU, Triton kernels interpreted (for CI)")
    parser.add_argument("--dataset", type=Path, default=None,
                        help="DB15K folder (default: random triples of DB15K's sizes)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--skip", action="append", default=[],
                        choices=["tests", "ranking", "fusion", "training", "profile", "scale"],
                        help="leave a section out (repeatable)")
    parser.add_argument("--workers", type=int, default=8,
                        help="pytest-xdist workers for the kernel tests on a GPU")
    parser.add_argument("--profile", metavar="VARIANT", default=None,
                        help="also profile one eager training step of this variant of "
                             "workloads.TRAINING_VARIANTS: its top CUDA kernels")
    parser.add_argument("--scale", type=int, default=0, metavar="STEPS",
                        help="also a graph of Wikidata5M's size (4.6M entities, 20.6M "
                             "triples, 384-d text for 90 %%; sparse updates): setup from "
                             "OpenKE files and from memory, STEPS timed steps (0: skip; -1: "
                             "a whole epoch besides), and the full filtered test")
    parser.add_argument("--tests-timeout", type=float, default=240,
                        help="seconds the kernel tests may take (default 240)")
    return parser.parse_args(argv)


ARGS = parse_args()
if ARGS.cpu:  # before any Triton kernel is imported (decorated)
    os.environ["TRITON_INTERPRET"] = "1"
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import workloads  # noqa: E402
from mmkgc_pyg.kernels.adamf_fusion import adamf_fusion  # noqa: E402
from mmkgc_pyg.evaluation import (LinkPredictionQueries, Ranks,  # noqa: E402
                                  evaluate_link_prediction)
from mmkgc_pyg.kernels import kernel_mode_set  # noqa: E402
from mmkgc_pyg.kernels.rotate import rotate_scores_reference  # noqa: E402
from mmkgc_pyg.data import load_openke  # noqa: E402
from mmkgc_pyg.training.step import tf32_matmuls  # noqa: E402
from openke_folder import write_random_openke  # noqa: E402

if ARGS.cpu:
    DEVICE = torch.device("cpu")
    FUSION_SIZES, FUSION_M, FUSION_D = (64, 256), 3, 20
    TINY = dict(entities=300, relations=7, train=2_000, valid=60, test=60)
    DATASET_SIZES, FEATURE_SIZES = TINY, {"visual": 48, "textual": 16}
    CONFIG = replace(workloads.PAPER_CONFIG, dim=8, negatives=8, batch_size=256)
    EPOCHS, RANK_REPEATS, FUSION_REPEATS, REFERENCE_QUERIES = 1, 1, 1, 16
else:
    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device (use --cpu for the CPU mode)")
    DEVICE = torch.device("cuda")
    FUSION_SIZES, FUSION_M, FUSION_D = (100_000, 1_000_000), 3, 500
    DATASET_SIZES, FEATURE_SIZES = None, None  # DB15K's, the paper's
    CONFIG = workloads.PAPER_CONFIG
    EPOCHS, RANK_REPEATS, FUSION_REPEATS, REFERENCE_QUERIES = 3, 10, 20, 256


def run_section(results, name, fn):
    """Runs one section and records its figures or its error: a failure never stops
    the check."""
    start = time.perf_counter()
    print(f"== {name}", flush=True)
    try:
        results[name] = fn()
    except Exception as exc:  # the check reports every failure and goes on
        traceback.print_exc()
        results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    results[name]["section_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(results[name], indent=1), flush=True)


def kernel_tests():
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "--kernel-device", DEVICE.type, *KERNEL_TESTS]
    if ARGS.cpu:
        command += ["-k", "empty or exact_ties"]  # the plumbing only: CI runs them all
    elif ARGS.workers > 1:
        try:
            import xdist  # noqa: F401
            command += ["-n", str(ARGS.workers)]
        except ImportError:
            pass
    try:
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              timeout=ARGS.tests_timeout)
    except subprocess.TimeoutExpired as exc:
        print((exc.stdout or b"")[-6000:], flush=True)
        raise RuntimeError(f"the kernel tests took over {ARGS.tests_timeout:g} s") from None
    print(proc.stdout[-6000:], proc.stderr[-3000:], flush=True)
    summary = (proc.stdout.strip().splitlines() or [""])[-1]
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error)", summary)}
    return {"ok": proc.returncode == 0, **counts, "summary": summary,
            "command": " ".join(command[1:])}


@contextlib.contextmanager
def triton_kernels():
    """In the CPU mode, the timed kernels are the Triton ones too (interpreted)."""
    if not ARGS.cpu:
        yield
        return
    with kernel_mode_set("triton"):
        yield


def ranking():
    with triton_kernels():
        return _ranking()


def _ranking():
    dataset = workloads.paper_scale_dataset(ARGS.dataset, sizes=DATASET_SIZES,
                                            feature_sizes=FEATURE_SIZES)
    rank, evaluate, queries, vectors, joint = workloads.filtered_test_ranking(
        dataset, CONFIG, DEVICE)
    outputs = []
    [first_s] = workloads.time_calls(lambda: outputs.append(rank()), DEVICE, 1)
    first = outputs.pop().realistic
    times = workloads.time_calls(lambda: outputs.append(rank()), DEVICE, RANK_REPEATS)
    identical = all(torch.equal(first, later.realistic) for later in outputs)
    evaluation = workloads.time_calls(evaluate, DEVICE, max(1, RANK_REPEATS // 2))
    # A float64 reference for the first queries (exact ties are rare with random data).
    count = min(REFERENCE_QUERIES, len(queries))
    ptr = queries.filter_ptr[:count + 1]
    with torch.no_grad():
        reference = Ranks.from_scores(
            rotate_scores_reference(vectors[:count].double(), joint.double(), 0.0),
            queries.target[:count], ptr, queries.filter_idx[:int(ptr[-1])]).realistic
    difference = (first[:count].double() - reference.double()).abs()
    return {"dataset": str(ARGS.dataset or "random, DB15K-sized"), "queries": len(queries),
            "entities": joint.size(0), "complex_dims": joint.size(1) // 2,
            "first_call_ms": round(1e3 * first_s, 2),
            "median_ms": round(1e3 * workloads.median(times), 2),
            "later_calls_identical": identical,
            "evaluate_median_ms": round(1e3 * workloads.median(evaluation), 2),
            "reference_queries": count,
            "reference_equal": int((difference == 0).sum()),
            "reference_max_abs_diff": float(difference.max()) if count else 0.0}


def fusion():
    with triton_kernels():
        return _fusion()


def _fusion():
    copy = workloads.copy_bandwidth(DEVICE, elements=2**28 if not ARGS.cpu else 2**20)
    rows = {"copy_GBps": round(copy / 1e9, 1)}
    for n in FUSION_SIZES:
        inputs = workloads.fusion_inputs(n, FUSION_M, FUSION_D, DEVICE)
        forward, forward_backward = workloads.fusion_runners(adamf_fusion, *inputs)
        for name, fn, nbytes in (
                ("fwd", forward, workloads.fusion_forward_bytes(n, FUSION_M, FUSION_D)),
                ("fwd+bwd", forward_backward,
                 workloads.fusion_forward_bytes(n, FUSION_M, FUSION_D)
                 + workloads.fusion_backward_bytes(n, FUSION_M, FUSION_D))):
            fn()  # compile
            seconds = workloads.median(workloads.time_calls(fn, DEVICE, FUSION_REPEATS))
            rows[f"N={n} {name}"] = {"ms": round(1e3 * seconds, 3),
                                     "GBps": round(nbytes / seconds / 1e9, 1),
                                     "fraction_of_copy": round(nbytes / seconds / copy, 3)}
        del inputs, forward, forward_backward
    return rows


def training():
    dataset = workloads.paper_scale_dataset(ARGS.dataset, sizes=DATASET_SIZES,
                                            feature_sizes=FEATURE_SIZES)
    rows = {}
    for name, (changes, modalities) in workloads.TRAINING_VARIANTS.items():
        try:
            trainer = workloads.make_trainer(dataset, replace(CONFIG, **changes), DEVICE,
                                             modalities)
            figures = workloads.time_epochs(trainer, EPOCHS)
            rows[name] = {"step_ms": round(figures["step_ms"], 3),
                          "epoch_s": round(figures["epoch_s"], 4),
                          "loss": round(figures["loss"], 6),
                          "steps_per_epoch": workloads.steps_per_epoch(trainer)}
        except Exception as exc:
            traceback.print_exc()
            rows[name] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            trainer = None
            if DEVICE.type == "cuda":
                torch.cuda.empty_cache()
        print(name, rows[name], flush=True)
    return rows


def profile():
    """CUDA time per kernel of one eager training step: where the step's time goes."""
    changes, modalities = workloads.TRAINING_VARIANTS[ARGS.profile]
    dataset = workloads.paper_scale_dataset(ARGS.dataset, sizes=DATASET_SIZES,
                                            feature_sizes=FEATURE_SIZES)
    # Eager steps: a replayed CUDA graph would show as one event.
    trainer = workloads.make_trainer(dataset, replace(CONFIG, cuda_graph=False, **changes),
                                     DEVICE, modalities)
    batch = trainer.train_triples[:CONFIG.batch_size]
    activities = [torch.profiler.ProfilerActivity.CPU]
    if DEVICE.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with tf32_matmuls(DEVICE, trainer.config.tf32):  # as train_epoch runs the steps
        for _ in range(3):
            trainer.step(batch)
        workloads.synchronize(DEVICE)
        with torch.profiler.profile(activities=activities) as prof:
            for _ in range(5):
                trainer.step(batch)
            workloads.synchronize(DEVICE)
    events = [e for e in prof.key_averages() if e.device_type.name == DEVICE.type.upper()]
    key = "self_device_time_total" if DEVICE.type == "cuda" else "self_cpu_time_total"
    events.sort(key=lambda e: getattr(e, key), reverse=True)
    total = sum(getattr(e, key) for e in events) / 5 / 1e3
    print(prof.key_averages().table(sort_by=key, row_limit=30))
    return {"variant": ARGS.profile, "device_ms_per_step": round(total, 3),
            **{e.key[:70]: f"{getattr(e, key) / 5 / 1e3:.3f} ms x{e.count // 5}"
               for e in events[:25]}}


def scale():
    """Wikidata5M's size on one device: setup from files (an OpenKE folder written first)
    and from a graph in memory, memory per entity, seconds per step (captured) and per
    epoch, peak memory, and the full filtered test of both sides."""
    sizes = (dict(entities=20_000, relations=30, train=50_000, valid=100, test=200)
             if ARGS.cpu else workloads.WIKIDATA5M_SIZES)
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_random_openke(Path(tmp) / "wikidata5m", **sizes)
        start = time.perf_counter()
        dataset = load_openke(folder)
        trainer = workloads.make_trainer(dataset, replace(CONFIG, sparse=True, mu=0.1),
                                         DEVICE, modalities=False)
        workloads.synchronize(DEVICE)
        figures["setup_from_files_structure_only_s"] = round(time.perf_counter() - start, 1)
        del trainer, dataset
    start = time.perf_counter()
    dataset = workloads.random_graph(sizes, {"textual": 16 if ARGS.cpu else 384},
                                     availability=0.9, name="Wikidata5M-sized")
    generated_s = time.perf_counter() - start
    if DEVICE.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trainer = workloads.make_trainer(dataset, replace(CONFIG, sparse=True, mu=0.1), DEVICE)
    workloads.synchronize(DEVICE)
    steps_per_epoch = workloads.steps_per_epoch(trainer)
    figures.update({"entities": dataset.num_entities, "train_triples": len(dataset.train),
                    "graph_generated_s": round(generated_s, 1),
                    "setup_in_memory_s": round(time.perf_counter() - start, 1)})
    step = workloads.time_steps(trainer, 50 if ARGS.scale < 0 else ARGS.scale)
    figures.update(step_ms=round(1e3 * step, 2),
                   epoch_s_extrapolated=round(step * steps_per_epoch, 1),
                   state_bytes_per_entity=round(workloads.table_bytes(trainer)
                                                / dataset.num_entities))
    if ARGS.scale < 0:
        figures["epoch_s"] = round(trainer.train_epoch()["seconds"], 1)
    queries = LinkPredictionQueries.build(dataset.test.to(DEVICE), trainer.filter_index)
    [evaluation] = workloads.time_calls(
        lambda: evaluate_link_prediction(trainer.model, queries), DEVICE, 1)
    figures.update(test_triples=len(dataset.test), full_test_both_sides_s=round(evaluation, 2))
    if DEVICE.type == "cuda":
        figures["peak_GiB"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
    return figures


def table(results) -> str:
    lines = ["| check | result |", "|---|---|"]
    for name, figures in results.items():
        if name == "environment":
            continue
        if "error" in figures:
            lines.append(f"| {name} | ERROR {figures['error']} |")
            continue
        for key, value in figures.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in value.items())
            lines.append(f"| {name}: {key} | {value} |")
    return "\n".join(lines)


def main():
    results = {"environment": {
        "device": (torch.cuda.get_device_name() if DEVICE.type == "cuda"
                   else platform.processor() or platform.machine()),
        "torch": torch.__version__, "python": platform.python_version(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv), "mode": "cpu (toy sizes)" if ARGS.cpu else "gpu"}}
    try:
        import triton
        results["environment"]["triton"] = triton.__version__
    except ImportError:
        pass
    # The timings first: the tests compile many kernel variants and take longest.
    sections = (("ranking", "DB15K filtered test ranking", ranking),
                ("fusion", "AdaMF fusion", fusion),
                ("training", "training, paper configuration", training),
                ("tests", "kernel tests", kernel_tests))
    if ARGS.profile:
        sections = (("profile", f"profile of one step ({ARGS.profile})", profile), *sections)
    if ARGS.scale:
        sections = (*sections, ("scale", "Wikidata5M-sized graph", scale))
    for key, name, fn in sections:
        if key not in ARGS.skip:
            run_section(results, name, fn)
            if ARGS.out is not None:  # after every section: a killed run keeps the rest
                ARGS.out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results["environment"]))
    print(table(results))
    failed = [n for n, r in results.items() if "error" in r or r.get("ok") is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
