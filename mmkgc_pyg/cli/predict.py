"""``python -m mmkgc_pyg.predict``: the most plausible answers of one query, by name."""
import argparse
import os
from pathlib import Path
from typing import Dict, List, Optional

from mmkgc_pyg.checkpoint import load_checkpoint
from mmkgc_pyg.cli.common import add_dataset_arguments, dataset_for, one_line_errors
from mmkgc_pyg.cli.run_folder import check_output_file
from mmkgc_pyg.errors import (AmbiguousNameError, InputError, NonFiniteModelError,
                              UnknownNameError)
from mmkgc_pyg.io import atomic_write_json
from mmkgc_pyg.nn.prediction import (lookup,
                                     predict_by_name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mmkgc_pyg.predict",
        description="The k most plausible tails of (HEAD, RELATION, ?) or heads of "
                    "(?, RELATION, TAIL) under a trained model. Entities and relations "
                    "are given by their names in the dataset, not by integer ids.")
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="model.pt written by mmkgc_pyg.train")
    query = parser.add_mutually_exclusive_group(required=True)
    query.add_argument("--head", metavar="NAME", help="predict the tails of (NAME, RELATION, ?)")
    query.add_argument("--tail", metavar="NAME", help="predict the heads of (?, RELATION, NAME)")
    parser.add_argument("--relation", required=True, metavar="NAME")
    parser.add_argument("--k", type=int, default=10, help="number of answers (default 10)")
    parser.add_argument("--filter", action="store_true",
                        help="leave out answers that complete a training triple of the "
                             "model's dataset (default: list them, marked known)")
    add_dataset_arguments(parser, "the folder the model was trained on")
    parser.add_argument("--out", metavar="PATH", help="also write the answers as JSON")
    return parser


def format_table(rows: List[Dict]) -> str:
    width = max([len("entity")] + [len(row["entity"]) for row in rows])
    lines = [f"{'rank':>4}  {'entity':<{width}}  {'score':>10}  known"]
    lines += [f"{row['rank']:>4}  {row['entity']:<{width}}  {row['score']:>10.4f}  "
              f"{'yes' if row['known'] else ''}".rstrip() for row in rows]
    return "\n".join(lines)


@one_line_errors
def main(argv: Optional[List[str]] = None):
    args = build_parser().parse_args(argv)
    if int(os.environ.get("RANK", "0")) != 0:
        return None  # under torchrun: one query is one pass over the entities, on rank 0
    if args.k < 1:
        raise InputError(f"--k {args.k}: expected a positive integer")
    if args.out:
        check_output_file(Path(args.out), "--out")
    model = load_checkpoint(args.checkpoint)
    side, argument = ("tail", "head") if args.head is not None else ("head", "tail")
    try:  # names first: a typo is reported before the dataset is loaded
        lookup(getattr(args, argument), model.entity_names, argument, "an entity")
        lookup(args.relation, model.relation_names, "relation", "a relation")
    except (UnknownNameError, AmbiguousNameError) as exc:
        raise InputError(f"--{exc.argument} {exc}") from None
    dataset = dataset_for(args, model)
    try:
        rows = [row.to_dict() for row in predict_by_name(
            model, head=args.head, relation=args.relation, tail=args.tail, k=args.k,
            known=dataset.train, filter=args.filter)]
    except NonFiniteModelError as exc:
        raise InputError(f"{args.checkpoint}: {exc}") from None

    query = {"head": args.head or "?", "relation": args.relation, "tail": args.tail or "?"}
    print(f"({query['head']}, {query['relation']}, {query['tail']}): top {len(rows)} "
          f"{side}s" + (", known training answers left out" if args.filter else ""))
    print(format_table(rows))
    result = {"query": query, "predict": side, "k": args.k, "filter": args.filter,
              "predictions": rows}
    if args.out:
        atomic_write_json(args.out, result)
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
