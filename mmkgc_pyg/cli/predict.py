"""``python -m mmkgc_pyg.predict``: the most plausible answers of link prediction queries,
and the scores of triples, by name.

One query comes from the flags (``--head``/``--tail`` and ``--relation``); many come from
a file (``--queries``: ``HEAD<TAB>RELATION<TAB>?`` and ``?<TAB>RELATION<TAB>TAIL`` lines,
sides mixed freely), and triples to score from another (``--score``:
``HEAD<TAB>RELATION<TAB>TAIL`` lines, the format of a labelled dataset's ``train.txt``).
Names are those of the dataset, or their readable forms (``Anarchism`` for
``<http://dbpedia.org/resource/Anarchism>``); a bad line or an unknown name is reported
in one line naming the file and line, before the dataset is loaded.

Results are printed as a table (the first :data:`PRINT_ROWS` rows when ``--out`` holds
them all) and written with ``--out`` by its suffix: ``.json`` (the result with its
settings), ``.csv`` (the rows) or ``.parquet`` (the rows, through pyarrow when it is
installed). An existing file is replaced only with ``--overwrite``.
"""
import argparse
import csv
import functools
import io
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from mmkgc_pyg.checkpoint import load_checkpoint
from mmkgc_pyg.cli.common import (add_dataset_arguments, dataset_for, one_line_errors,
                                  resolve_device)
from mmkgc_pyg.data.labelled import read_labelled_triples
from mmkgc_pyg.errors import (AmbiguousNameError, InputError, NonFiniteModelError, OutputError,
                              UnknownNameError)
from mmkgc_pyg.evaluation.filtering import FilterIndex
from mmkgc_pyg.extras import require
from mmkgc_pyg.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from mmkgc_pyg.nn.prediction import (column_rows, name_index, predict, predict_by_name,
                                     score_triples)
from mmkgc_pyg.run_folder import check_output_file

#: Rows printed when ``--out`` holds them all.
PRINT_ROWS = 50
OUT_SUFFIXES = (".json", ".csv", ".parquet")
_QUERY_LINE = "`HEAD<TAB>RELATION<TAB>?` or `?<TAB>RELATION<TAB>TAIL`"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mmkgc_pyg.predict",
        description="The k most plausible tails of (HEAD, RELATION, ?) or heads of "
                    "(?, RELATION, TAIL) under a trained model, for one query or a file of "
                    "them, or the scores of a file of triples. Entities and relations are "
                    "given by their names in the dataset, not by integer ids.")
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="model.pt written by mmkgc_pyg.train")
    query = parser.add_mutually_exclusive_group(required=True)
    query.add_argument("--head", metavar="NAME", help="predict the tails of (NAME, RELATION, ?)")
    query.add_argument("--tail", metavar="NAME", help="predict the heads of (?, RELATION, NAME)")
    query.add_argument("--queries", metavar="FILE",
                       help=f"many queries, one per line: {_QUERY_LINE} (tab-separated names)")
    query.add_argument("--score", metavar="FILE",
                       help="score triples, one per line: HEAD<TAB>RELATION<TAB>TAIL")
    parser.add_argument("--relation", metavar="NAME", help="the relation of --head/--tail")
    parser.add_argument("--k", type=int, metavar="K",
                        help="answers per query (default 10)")
    parser.add_argument("--filter", action="store_true",
                        help="leave out answers that complete a training triple of the "
                             "model's dataset (default: list them, marked known)")
    add_dataset_arguments(parser, "the folder the model was trained on")
    parser.add_argument("--device", default="auto",
                        help="auto (default: cuda when available), cpu, cuda or cuda:N")
    parser.add_argument("--out", metavar="PATH",
                        help="also write the results: .json, .csv or .parquet")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def format_table(rows: Sequence[Dict[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as aligned text columns: numbers right, names left, ``known`` as yes."""
    def cell(column: str, value) -> str:
        if column == "score":
            return f"{value:.4f}"
        if column == "known":
            return "yes" if value else ""
        return str(value)

    cells = [[cell(c, row[c]) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]
    right = {"line", "rank", "score"}
    return "\n".join("  ".join(text.rjust(w) if c in right else text.ljust(w)
                               for c, text, w in zip(columns, line, widths)).rstrip()
                     for line in [list(columns), *cells])


def _check_out(args) -> Optional[Path]:
    """The ``--out`` path, checked before any work: its suffix, that it may be written
    (and replaced only with ``--overwrite``), and pyarrow for Parquet."""
    if not args.out:
        return None
    out = Path(args.out)
    check_output_file(out, "--out")
    if out.suffix not in OUT_SUFFIXES:
        raise InputError(f"--out {out}: expected a file ending in {', '.join(OUT_SUFFIXES)}")
    if out.exists() and not args.overwrite:
        raise OutputError(f"--out {out}: exists; pass --overwrite to replace it")
    if out.suffix == ".parquet":
        _pyarrow(out)
    return out


def _pyarrow(out: Path) -> Tuple[ModuleType, ModuleType]:
    """pyarrow and pyarrow.parquet, which only Parquet output needs."""
    what = f"--out {out} (Parquet; .csv and .json need nothing)"
    return require("pyarrow", "tables", what), require("pyarrow.parquet", "tables", what)


def write_result(out: Path, result: Dict[str, Any], columns: Dict[str, list]) -> None:
    """``result`` to a ``.json`` file, or its rows (``columns``) to ``.csv``/``.parquet``."""
    if out.suffix == ".json":
        atomic_write_json(out, result)
    elif out.suffix == ".csv":
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(zip(*columns.values()))
        atomic_write_text(out, text.getvalue())
    else:
        pyarrow, parquet = _pyarrow(out)
        sink = pyarrow.BufferOutputStream()
        parquet.write_table(pyarrow.table(columns), sink)
        atomic_write_bytes(out, sink.getvalue())


def _resolve(model, path: Path, lineno: int, names: Dict[str, str]) -> Dict[str, int]:
    """The ids of a line's ``argument -> name``; unknown names named with the line."""
    ids = {}
    for argument, name in names.items():
        kind = "relation" if argument == "relation" else "entity"
        try:
            ids[argument] = name_index(model, kind).id(name, argument)
        except (UnknownNameError, AmbiguousNameError) as exc:
            raise InputError(f"{path}:{lineno}: {argument} {exc}") from None
    return ids


def read_queries(model, path: Path) -> List[Dict[str, int]]:
    """The queries of a ``--queries`` file: ``line`` and the ids of the given names."""
    queries = []
    for lineno, head, relation, tail in read_labelled_triples(path):
        if (head == "?") == (tail == "?") or relation == "?":
            line = "\t".join((head, relation, tail))
            raise InputError(f"{path}:{lineno}: expected {_QUERY_LINE}, got {line!r}")
        given = {"head": head} if tail == "?" else {"tail": tail}
        queries.append({"line": lineno,
                        **_resolve(model, path, lineno, {**given, "relation": relation})})
    return queries


def read_scored(model, path: Path) -> List[Dict[str, int]]:
    """The triples of a ``--score`` file: ``line`` and the ids of the names."""
    return [{"line": lineno, **_resolve(model, path, lineno,
                                        {"head": head, "relation": relation, "tail": tail})}
            for lineno, head, relation, tail in read_labelled_triples(path)]


def _with_lines(columns: Dict[str, list], lines: List[int]) -> Dict[str, list]:
    """``columns`` with the file's line number of each row's query first."""
    return {"line": [lines[q] for q in columns.pop("query")], **columns}


def _bulk_predictions(model, queries, args, known, progress) -> Dict[str, list]:
    """The answers of the queries of both sides, in file order, best first."""
    columns: Dict[str, list] = {}
    for given in ("head", "tail"):
        chosen = [q for q in queries if given in q]
        batch = predict(model, relation=torch.tensor([q["relation"] for q in chosen],
                                                     dtype=torch.long),
                        **{given: torch.tensor([q[given] for q in chosen], dtype=torch.long)},
                        k=args.k, known=known, filter=args.filter, progress=progress)
        part = _with_lines(batch.columns(), [q["line"] for q in chosen])
        columns = {c: columns.get(c, []) + values for c, values in part.items()}
    # Each side's rows come in file order, best first, and a line asks one side: a
    # stable sort by line interleaves the sides.
    order = torch.tensor(columns["line"], dtype=torch.long).argsort(stable=True).tolist()
    return {c: [values[i] for i in order] for c, values in columns.items()}


def _print_rows(rows: List[Dict[str, Any]], shown: Sequence[str], out: Optional[Path]) -> None:
    limit = PRINT_ROWS if out is not None else len(rows)
    if rows:
        print(format_table(rows[:limit], shown))
    if len(rows) > limit:
        print(f"... {len(rows) - limit} more rows in {out}")


def _filtered(args) -> str:
    return ", known training answers left out" if args.filter else ""


def answer_one(model, args, known, out) -> Tuple[Dict[str, Any], Dict[str, list]]:
    """The ``--head``/``--tail`` query: its result and its rows as columns."""
    rows = [row.to_dict() for row in predict_by_name(
        model, head=args.head, relation=args.relation, tail=args.tail, k=args.k, known=known,
        filter=args.filter)]
    query = {"head": args.head or "?", "relation": args.relation, "tail": args.tail or "?"}
    side = "tail" if args.head is not None else "head"
    print(f"({query['head']}, {query['relation']}, {query['tail']}): top {len(rows)} {side}s"
          + _filtered(args))
    print(format_table(rows, ("rank", "entity", "score", "known")))
    result = {"query": query, "predict": side, "k": args.k, "filter": args.filter,
              "predictions": rows}
    return result, {c: [row[c] for row in rows] for c in ("rank", "entity", "id", "score",
                                                          "known")}


def answer_queries(model, args, queries, known, out) -> Tuple[Dict[str, Any], Dict[str, list]]:
    """The queries of ``--queries`` (from :func:`read_queries`)."""
    columns = _bulk_predictions(model, queries, args, known, not args.quiet)
    rows = column_rows(columns)
    print(f"{args.queries}: {len(queries)} queries, top {args.k} answers each" + _filtered(args))
    _print_rows(rows, ("line", "head", "relation", "tail", "rank", "score", "known"), out)
    return {"queries": args.queries, "k": args.k, "filter": args.filter, "rows": rows}, columns


def score_file(model, args, triples, known, out) -> Tuple[Dict[str, Any], Dict[str, list]]:
    """The triples of ``--score`` (from :func:`read_scored`)."""
    ids = {part: torch.tensor([t[part] for t in triples], dtype=torch.long)
           for part in ("head", "relation", "tail")}
    scored = score_triples(model, ids["head"], ids["relation"], ids["tail"], known=known,
                           progress=not args.quiet)
    columns = _with_lines(scored.columns(), [t["line"] for t in triples])
    rows = column_rows(columns)
    print(f"{args.score}: {len(triples)} triples scored")
    _print_rows(rows, ("line", "head", "relation", "tail", "score", "known"), out)
    return {"score": args.score, "rows": rows}, columns


def _check_flags(args) -> None:
    single = args.head is not None or args.tail is not None
    if single and args.relation is None:
        raise InputError(f"--{'head' if args.head is not None else 'tail'}: expected "
                         "--relation NAME as well")
    if not single and args.relation is not None:
        raise InputError("--relation: expected with --head or --tail only (each line of "
                         f"{'--queries' if args.queries else '--score'} names its relation)")
    if args.score and (args.k is not None or args.filter):
        raise InputError(f"{'--k' if args.k is not None else '--filter'}: expected with "
                         "--head, --tail or --queries, not --score")
    args.k = 10 if args.k is None else args.k
    if args.k < 1:
        raise InputError(f"--k {args.k}: expected a positive integer")


def _check_names(model, args) -> None:
    """The names of ``--head``/``--tail`` and ``--relation``."""
    given = "head" if args.head is not None else "tail"
    try:
        name_index(model, "entity").id(getattr(args, given), given)
        name_index(model, "relation").id(args.relation, "relation")
    except (UnknownNameError, AmbiguousNameError) as exc:
        raise InputError(f"--{exc.argument} {exc}") from None


@one_line_errors
def main(argv: Optional[List[str]] = None):
    args = build_parser().parse_args(argv)
    if int(os.environ.get("RANK", "0")) != 0:
        return None  # under torchrun: the queries are answered on rank 0 alone
    _check_flags(args)
    out = _check_out(args)
    model = load_checkpoint(args.checkpoint).to(resolve_device(args.device))
    if model.entity_names is None or model.relation_names is None:
        raise InputError(f"{args.checkpoint}: expected a model with entity and relation names "
                         "(mmkgc_pyg.train saves them), got one without")
    # Names first: a typo is reported before the dataset is loaded.
    if args.queries:
        queries = read_queries(model, Path(args.queries))
        answer = functools.partial(answer_queries, model, args, queries)
    elif args.score:
        triples = read_scored(model, Path(args.score))
        answer = functools.partial(score_file, model, args, triples)
    else:
        _check_names(model, args)
        answer = functools.partial(answer_one, model, args)
    dataset = dataset_for(args, model)
    known = FilterIndex(dataset.train, model.num_relations)  # sorted once for all calls
    try:
        result, columns = answer(known, out)
    except NonFiniteModelError as exc:
        raise InputError(f"{args.checkpoint}: {exc}") from None
    if out is not None:
        write_result(out, result, columns)
        print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
