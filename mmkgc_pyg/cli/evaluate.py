"""``python -m mmkgc_pyg.evaluate``: filtered link prediction of a saved model."""
import argparse
from pathlib import Path
from typing import List, Optional

from mmkgc_pyg.checkpoint import load_checkpoint
from mmkgc_pyg.cli.common import (add_dataset_arguments, dataset_for, fraction,
                                  positive_int, resolve_device, user_errors_exit_2)
from mmkgc_pyg.evaluation.filtering import FilterIndex
from mmkgc_pyg.evaluation.link_prediction import (evaluate_link_prediction,
                                                  missing_modality_mask)
from mmkgc_pyg.evaluation.report import metrics_table
from mmkgc_pyg.io import atomic_write_json


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mmkgc_pyg.evaluate",
        description="Filtered link prediction (realistic ranks) of a trained model.")
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="model.pt written by mmkgc_pyg.train")
    add_dataset_arguments(parser, "the folder the model was trained on")
    parser.add_argument("--drop-modality-rate", type=fraction, default=0.0, metavar="P",
                        help="hide all modalities of a random fraction P of entities")
    parser.add_argument("--seed", type=int, default=0, help="seed of the hidden fraction")
    parser.add_argument("--batch-size", type=positive_int, default=1024)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", metavar="PATH",
                        help="JSON output (default: evaluate.json beside the checkpoint)")
    parser.add_argument("--quiet", action="store_true")
    return parser


@user_errors_exit_2
def main(argv: Optional[List[str]] = None):
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    model = load_checkpoint(args.checkpoint).to(device)
    dataset = dataset_for(args, model)
    filter_index = FilterIndex(dataset.known_triples(), dataset.num_relations).to(device)
    fusion_mask = missing_modality_mask(model, dataset, args.drop_modality_rate, args.seed)
    progress = not args.quiet
    results = {
        "valid": evaluate_link_prediction(model, dataset.valid, filter_index,
                                          args.batch_size, progress=progress),
        "test": {**evaluate_link_prediction(model, dataset.test, filter_index,
                                            args.batch_size, dataset.test_categories,
                                            fusion_mask, progress),
                 "drop_modality_rate": args.drop_modality_rate},
    }
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "evaluate.json"
    atomic_write_json(out, results)
    print(metrics_table(results))
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    main()
