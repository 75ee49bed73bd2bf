"""``python -m mmkgc_pyg.plot``: training curves and AdaMF modality weights of a run."""
import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional

import torch

from mmkgc_pyg.checkpoint import load_checkpoint
from mmkgc_pyg.cli.common import one_line_errors
from mmkgc_pyg.errors import InputError, NonFiniteModelError
from mmkgc_pyg.io import atomic_write_json
from mmkgc_pyg.nn.prediction import check_finite


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mmkgc_pyg.plot",
        description="Plot a training run: training_curves.png (losses, valid MRR) from "
                    "history.jsonl and modality_weights.png (+ .json: AdaMF's weights per "
                    "modality, grouped by which modalities entities have) from model.pt. "
                    "Needs matplotlib: pip install 'mmkgc-pyg[plot]'.")
    parser.add_argument("run", metavar="DIR", help="output folder of mmkgc_pyg.train")
    parser.add_argument("--out", metavar="DIR", help="where to write (default: DIR)")
    return parser


def new_figure(**kwargs):
    """A matplotlib figure drawn by the Agg backend (no display, no global pyplot)."""
    try:
        import matplotlib  # noqa: F401 -- the optional extra
    except ImportError:
        raise InputError("plotting needs matplotlib: expected it installed, e.g. "
                         "pip install 'mmkgc-pyg[plot]'") from None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def read_history(path: Path) -> List[Dict]:
    """The per-epoch records of ``history.jsonl``."""
    if not path.is_file():
        raise InputError(f"{path}: not found; expected the history.jsonl written by "
                         "mmkgc_pyg.train")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or not {"epoch", "loss"} <= record.keys():
            raise InputError(f"{path}:{number}: expected a JSON record with epoch and "
                             f"loss, got {line[:40]!r}")
        records.append(record)
    if not records:
        raise InputError(f"{path}: expected one JSON record per epoch, got none")
    return records


def plot_training_curves(records: List[Dict], path: Path):
    figure = new_figure(figsize=(10, 4), layout="constrained")
    losses, mrr = figure.subplots(1, 2)
    epochs = [r["epoch"] for r in records]
    losses.plot(epochs, [r["loss"] for r in records], label="loss")
    if any(r.get("generator_loss") for r in records):  # zero without MAT
        losses.plot(epochs, [r["generator_loss"] for r in records], label="generator loss")
    losses.set(xlabel="epoch", ylabel="mean loss per step", title="training loss")
    losses.legend()
    evaluated = [r for r in records if "valid" in r]
    mrr.plot([r["epoch"] for r in evaluated], [r["valid"]["mrr"] for r in evaluated],
             marker="o")
    mrr.set(xlabel="epoch", ylabel="MRR", title="valid MRR (filtered)")
    figure.savefig(path, dpi=100)


@torch.no_grad()
def modality_weight_groups(model) -> Dict[str, Dict]:
    """AdaMF's weights grouped by availability pattern (e.g. ``structure+visual``):
    per pattern the entity count, the mean weight and all weights of each modality
    present, largest group first."""
    with torch.no_grad():
        weights = model.entity_embeddings(return_attention_weights=True, chunked=True)[1]
    names = model.modality_names
    present = (model.fusion_mask if model.adamf is not None
               else torch.ones_like(weights, dtype=torch.bool))
    patterns, inverse = torch.unique(present, dim=0, return_inverse=True)
    groups = {}
    for p in torch.bincount(inverse).argsort(descending=True).tolist():
        columns = patterns[p].nonzero().flatten().tolist()
        w = weights[inverse == p][:, columns]
        groups["+".join(names[c] for c in columns)] = {
            "count": w.size(0),
            "mean_weight": {names[c]: w[:, j].mean().item() for j, c in enumerate(columns)},
            "weights": {names[c]: w[:, j].tolist() for j, c in enumerate(columns)},
        }
    return groups


def plot_modality_weights(groups: Dict[str, Dict], path: Path):
    columns = min(len(groups), 4)
    rows = -(-len(groups) // columns)
    figure = new_figure(figsize=(3.2 * columns, 3.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, sharey=True, squeeze=False).flatten()
    for ax, (pattern, group) in zip(axes, groups.items()):
        ax.boxplot(list(group["weights"].values()), flierprops={"markersize": 2})
        ax.set_xticks(range(1, len(group["weights"]) + 1), list(group["weights"]))
        ax.set_title(f"{pattern}\n({group['count']} entities)", fontsize=9)
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    axes[0].set(ylabel="AdaMF weight", ylim=(0, 1.05))
    figure.suptitle("Modality weights by which modalities an entity has")
    figure.savefig(path, dpi=100)


@one_line_errors
def main(argv: Optional[List[str]] = None):
    args = build_parser().parse_args(argv)
    run = Path(args.run)
    out = Path(args.out) if args.out else run
    records = read_history(run / "history.jsonl")
    new_figure()  # fail fast without matplotlib, before loading the model
    model = load_checkpoint(run / "model.pt")
    # As evaluate and predict do: NaN weights would be written as null, silently.
    try:
        check_finite(model, "modality weights")
    except NonFiniteModelError as exc:
        raise InputError(f"{run / 'model.pt'}: {exc}") from None
    groups = modality_weight_groups(model)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "training_curves.png", out / "modality_weights.png",
               out / "modality_weights.json"]
    plot_training_curves(records, written[0])
    plot_modality_weights(groups, written[1])
    atomic_write_json(written[2], {pattern: {k: g[k] for k in ("count", "mean_weight")}
                                   for pattern, g in groups.items()})
    print("wrote " + ", ".join(map(str, written)))
    return written


if __name__ == "__main__":
    main()
