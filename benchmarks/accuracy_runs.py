"""Accuracy on the real benchmarks: every configuration of the paper's comparison in one
command, results collated into a Markdown table and a JSON file.

For each dataset folder: structure-only RotatE (``--no-modalities``), AdaMF (``--no-mat``)
and AdaMF-MAT for each ``--mu``, each trained with the dataset's paper preset plus the
given overrides, then the last AdaMF-MAT model evaluated in the modality-missing setting
(``--drop-modality-rate`` 0.2 / 0.5 / 0.8). Datasets without modality features run the
structure-only configuration alone. The table is rewritten after every row, so an
interrupted session keeps what it finished.

    python benchmarks/accuracy_runs.py ../shared/datasets/DB15K ../shared/datasets/MKG-W \\
        --out results --mu 0 0.1 -- --epochs 1000 --eval-every 50 --time-budget 300

Extra flags after ``--`` go to every training run (e.g. ``-- --bf16``).

``--ablate`` measures instead what each departure from the paper's code is worth
(:data:`mmkgc_pyg.training.config.PROTOCOLS`): per dataset, the default run, the whole
reference protocol, and each switch of it alone on top of the default, for every
``--seeds`` seed; every run also reports the test as the reference counts it (optimistic
ranks, raw test lines). It writes ``ablation.json`` (every run) and ``ablation.md``
(mean and spread over the seeds, and the change of MRR against the default):

    python benchmarks/accuracy_runs.py ../shared/datasets/MKG-W ../shared/datasets/DB15K \
        --ablate --out ablation -- --dim 32 --negatives 32 --batch-size 1024 --lr 1e-2 \
        --mu 0.1 --epochs 6 --eval-every 2
"""
import argparse
import json
import re
import statistics
import time
from pathlib import Path

from mmkgc_pyg.cli import evaluate as evaluate_cli
from mmkgc_pyg.cli import train as train_cli
from mmkgc_pyg.data import load_dataset_folder
from mmkgc_pyg.data.features import discover_feature_files
from mmkgc_pyg.io import atomic_write_json, atomic_write_text

DROP_RATES = (0.2, 0.5, 0.8)
COLUMNS = ("mrr", "hits@1", "hits@3", "hits@10")


def configurations(has_modalities: bool, mus):
    yield "RotatE (structure only)", ["--no-modalities"]
    if has_modalities:
        yield "AdaMF", ["--no-mat"]
        for mu in mus:
            yield f"AdaMF-MAT (mu={mu:g})", ["--mu", str(mu)]


def ablations(has_missing_rows: bool):
    """The ablation's runs: (label, flags); the fusion switch only where some entity
    lacks a modality (elsewhere it changes nothing)."""
    yield "default (ours)", []
    yield "--protocol reference", ["--protocol", "reference"]
    yield "--negative-sides per-negative", ["--negative-sides", "per-negative"]
    yield "--positives with-replacement", ["--positives", "with-replacement"]
    if has_missing_rows:
        yield "--missing-rows fused", ["--missing-rows", "fused"]
    yield "--model-kept last", ["--model-kept", "last"]


def last_epoch(run_dir: Path) -> int:
    lines = (run_dir / "history.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["epoch"] if lines else 0


def run_dataset(folder: Path, out: Path, common, mus, quiet: bool,
                structure_only: bool = False):
    """Yields one result row per trained or evaluated configuration."""
    has_modalities = (bool(discover_feature_files(folder, folder.resolve().name))
                      and not structure_only)
    for label, flags in configurations(has_modalities, mus):
        run_dir = out / folder.name / re.sub(r"[^a-z0-9.]+", "-", label.lower()).strip("-")
        args = ["--dataset", str(folder), "--out", str(run_dir), *flags, *common]
        start = time.perf_counter()
        metrics = train_cli.main(args + (["--quiet"] if quiet else []))
        yield {"model": label, "drop_rate": 0.0, "test": metrics["test"],
               "epochs": last_epoch(run_dir), "best_epoch": metrics["best_epoch"],
               "wall_s": round(time.perf_counter() - start, 1),
               "command": "python -m mmkgc_pyg.train " + " ".join(args)}
    if has_modalities:
        checkpoint = run_dir / "model.pt"  # the last configuration: AdaMF-MAT
        for rate in DROP_RATES:
            args = ["--checkpoint", str(checkpoint), "--drop-modality-rate", str(rate),
                    "--out", str(run_dir / f"drop{rate:g}.json")]
            metrics = evaluate_cli.main(args + (["--quiet"] if quiet else []))
            yield {"model": label, "drop_rate": rate, "test": metrics["test"],
                   "command": "python -m mmkgc_pyg.evaluate " + " ".join(args)}


def run_ablation(folder: Path, out: Path, common, seeds, quiet: bool):
    """Yields one row per run of the ablation on ``folder``."""
    masks = load_dataset_folder(folder).masks.values()
    for label, flags in ablations(any(not bool(mask.all()) for mask in masks)):
        for seed in seeds:
            name = re.sub(r"[^a-z0-9.]+", "-", label.lower()).strip("-")
            run_dir = out / folder.name / f"{name}-seed{seed}"
            args = ["--dataset", str(folder), "--out", str(run_dir), "--overwrite",
                    "--reference-metrics", "--seed", str(seed), *flags, *common]
            start = time.perf_counter()
            metrics = train_cli.main(args + (["--quiet"] if quiet else []))
            yield {"dataset": folder.name, "variant": label, "seed": seed,
                   "test": metrics["test"], "reference": metrics["reference"],
                   "epochs": last_epoch(run_dir),
                   "wall_s": round(time.perf_counter() - start, 1),
                   "command": "python -m mmkgc_pyg.train " + " ".join(args)}


def render_ablation(results) -> str:
    """Mean and spread over the seeds per dataset and variant, and the change of the
    mean MRR against the default run."""
    groups = {}
    for r in results:
        groups.setdefault((r["dataset"], r["variant"]), []).append(r)

    def summary(rows, part, metric):
        values = [r[part][metric] for r in rows]
        return statistics.mean(values), max(values) - min(values)

    table = ["| dataset | run | seeds | MRR | Hits@10 | MRR, reference's count | "
             "change of MRR | change, reference's count | wall s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (dataset, variant), rows in groups.items():
        cells = []
        for part, metric in (("test", "mrr"), ("test", "hits@10"), ("reference", "mrr")):
            mean, spread = summary(rows, part, metric)
            cells.append(f"{mean:.4f} ± {spread / 2:.4f}")
        default = groups.get((dataset, "default (ours)"))
        for part in ("test", "reference"):
            cells.append(f"{summary(rows, part, 'mrr')[0] - summary(default, part, 'mrr')[0]:+.4f}"
                         if default else "-")
        wall = statistics.mean(r["wall_s"] for r in rows)
        table.append(f"| {dataset} | {variant} | {len(rows)} | {' | '.join(cells)} | "
                     f"{wall:.0f} |")
    return "\n".join(table) + (
        "\n\nFiltered test metrics: ours (realistic ranks, distinct test triples) and the "
        "reference's count (optimistic ranks, every line of the test file); mean ± half "
        "the range over the seeds; the change is against the default run's mean.\n")


def render(results) -> str:
    table = ["| dataset | model | drop rate | " + " | ".join(c.upper() for c in COLUMNS)
             + " | epochs | wall s | command |",
             "|---|---|---|" + "---|" * len(COLUMNS) + "---|---|---|"]
    for r in results:
        values = " | ".join(f"{r['test'][c]:.3f}" for c in COLUMNS)
        table.append(f"| {r['dataset']} | {r['model']} | {r['drop_rate']:g} | {values} | "
                     f"{r.get('epochs', '-')} | {r.get('wall_s', '-')} | `{r['command']}` |")
    return "\n".join(table) + "\n\nFiltered test metrics, realistic ranks.\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path, help="OpenKE dataset folders")
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--mu", type=float, nargs="+", default=[0.1],
                        help="MAT weights of the AdaMF-MAT runs (default 0.1)")
    parser.add_argument("--no-modalities-only", action="store_true",
                        help="train the structure-only baseline alone")
    parser.add_argument("--ablate", action="store_true",
                        help="measure each departure from the paper's code instead")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                        help="seeds of every ablation run (default 0 1)")
    parser.add_argument("--quiet", action="store_true")
    args, common = parser.parse_known_args(argv)
    common = [a for a in common if a != "--"]
    results = []
    if args.ablate:
        for folder in args.datasets:
            for row in run_ablation(folder, args.out, common, args.seeds, args.quiet):
                results.append(row)
                atomic_write_text(args.out / "ablation.md", render_ablation(results))
                atomic_write_json(args.out / "ablation.json", results)
        print(render_ablation(results))
        return results
    for folder in args.datasets:
        for row in run_dataset(folder, args.out, common, args.mu, args.quiet,
                               args.no_modalities_only):
            results.append({"dataset": folder.name, **row})
            atomic_write_text(args.out / "results.md", render(results))
            atomic_write_json(args.out / "results.json", results)
    print(render(results))
    return results


if __name__ == "__main__":
    main()
