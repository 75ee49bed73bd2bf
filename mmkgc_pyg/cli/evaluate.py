"""``python -m mmkgc_pyg.evaluate``: filtered link prediction of a saved model. Under
``torchrun`` every process ranks its share of the queries and rank 0 writes."""
import argparse
from pathlib import Path
from typing import List, Optional

from mmkgc_pyg.checkpoint import load_checkpoint
from mmkgc_pyg.cli.common import (add_dataset_arguments, dataset_for, fraction,
                                  init_distributed, non_negative_int, one_line_errors)
from mmkgc_pyg.evaluation import (FilterIndex, evaluate_splits,
                                  metrics_table)
from mmkgc_pyg.run_folder import check_output_file
from mmkgc_pyg.errors import InputError, NonFiniteModelError
from mmkgc_pyg.io import atomic_write_json


def seed(value: str) -> int:
    """argparse type for a seed: an integer in [0, 2**63), as ``train --seed``."""
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 <= number < 2**63:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**63), got {value!r}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mmkgc_pyg.evaluate",
        description="Filtered link prediction (realistic ranks) of a trained model. The "
                    "model ranks with the feature tables saved in its checkpoint, and their "
                    "presence masks: --feature and --mask do not replace them (a --feature "
                    "of a modality the model lacks, or of another shape than its table, is "
                    "refused); evaluating other features takes training on them.")
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="model.pt written by mmkgc_pyg.train")
    add_dataset_arguments(parser, "the folder the model was trained on")
    parser.add_argument("--drop-modality-rate", type=fraction, default=0.0, metavar="P",
                        help="hide all modalities of a random fraction P of entities")
    parser.add_argument("--seed", type=seed, default=0,
                        help="seed of the hidden fraction, in [0, 2**63) (default 0)")
    parser.add_argument("--raw-splits", action="store_true",
                        help="evaluate valid and test as in their files (repeated triples, "
                             "and valid triples that are training triples, kept)")
    parser.add_argument("--batch-size", type=non_negative_int, default=0,
                        help="queries per ranking call (default 0: as many as fit)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", metavar="PATH",
                        help="JSON output (default: evaluate.json beside the checkpoint)")
    parser.add_argument("--quiet", action="store_true")
    return parser


@one_line_errors
def main(argv: Optional[List[str]] = None):
    args = build_parser().parse_args(argv)
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "evaluate.json"
    check_output_file(out, "--out")
    device, rank = init_distributed(args.device)
    model = load_checkpoint(args.checkpoint).to(device)
    dataset = dataset_for(args, model)
    filter_index = FilterIndex(dataset.known_triples(), dataset.num_relations).to(device)
    if args.drop_modality_rate > 0 and model.adamf is None:
        raise InputError("--drop-modality-rate: expected a model with modalities")
    try:
        results = evaluate_splits(model, dataset, filter_index, args.batch_size,
                                  args.drop_modality_rate, args.seed, raw_splits=args.raw_splits,
                                  progress=not args.quiet and rank == 0)
    except NonFiniteModelError as exc:
        raise InputError(f"{args.checkpoint}: {exc}") from None
    if rank != 0:
        return results
    atomic_write_json(out, results)
    print(metrics_table({split: results[split] for split in ("valid", "test")}))
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    main()
