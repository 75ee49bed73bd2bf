"""``python -m mmkgc_pyg.predict``: the most plausible answers of one query, by name."""
import argparse
import difflib
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from mmkgc_pyg.checkpoint import load_checkpoint
from mmkgc_pyg.cli.common import add_dataset_arguments, dataset_for, user_errors_exit_2
from mmkgc_pyg.cli.run_folder import check_output_file
from mmkgc_pyg.errors import UserInputError
from mmkgc_pyg.evaluation.filtering import FilterIndex
from mmkgc_pyg.io import atomic_write_json


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


def lookup(name: str, names: Sequence[str], flag: str, kind: str) -> int:
    """The id of ``name``; an unknown name is a user error that suggests close ones."""
    try:
        return names.index(name)
    except ValueError:
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UserInputError(f"{flag} {name!r}: expected {kind} name of the model, got "
                             f"an unknown one{hint}") from None


@torch.no_grad()
def predict(model, known: FilterIndex, entity: int, rel: int, side: str, k: int,
            filter_known: bool) -> List[Dict]:
    """The ``k`` best ``side`` answers (``"tail"`` or ``"head"``) of the query built
    from ``entity`` and ``rel``, best first, each marked ``known`` when it completes a
    triple of ``known``."""
    entity, rel = torch.tensor([entity]), torch.tensor([rel])
    ptr, idx = known.answers(entity, rel, side)
    exclude = (ptr, idx) if filter_known else None
    if side == "tail":
        scores, ids = model.predict_tails(entity, rel, k, exclude)
    else:
        scores, ids = model.predict_heads(rel, entity, k, exclude)
    known_ids = set(idx.tolist())
    # -inf marks filtered entities that pad the list when fewer than k remain.
    return [{"rank": rank, "entity": model.entity_names[i], "id": i, "score": s,
             "known": i in known_ids}
            for rank, (s, i) in enumerate(zip(scores[0].tolist(), ids[0].tolist()), 1)
            if s > float("-inf")]


def format_table(rows: List[Dict]) -> str:
    width = max([len("entity")] + [len(row["entity"]) for row in rows])
    lines = [f"{'rank':>4}  {'entity':<{width}}  {'score':>10}  known"]
    lines += [f"{row['rank']:>4}  {row['entity']:<{width}}  {row['score']:>10.4f}  "
              f"{'yes' if row['known'] else ''}".rstrip() for row in rows]
    return "\n".join(lines)


@user_errors_exit_2
def main(argv: Optional[List[str]] = None):
    args = build_parser().parse_args(argv)
    if args.k < 1:
        raise UserInputError(f"--k {args.k}: expected a positive integer")
    if args.out:
        check_output_file(Path(args.out), "--out")
    model = load_checkpoint(args.checkpoint)
    side, flag, given = (("tail", "--head", args.head) if args.head is not None
                         else ("head", "--tail", args.tail))
    entity = lookup(given, model.entity_names, flag, "an entity")
    rel = lookup(args.relation, model.relation_names, "--relation", "a relation")
    dataset = dataset_for(args, model)
    known = FilterIndex(dataset.train, dataset.num_relations)
    rows = predict(model, known, entity, rel, side, args.k, args.filter)

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
