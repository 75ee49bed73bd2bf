import json
import subprocess
import sys

import pytest
import torch

from utils import as_default_graph
from mmkgc_pyg.checkpoint import load_checkpoint, save_checkpoint
from mmkgc_pyg.cli import predict, train
from mmkgc_pyg.data import SyntheticGraph, make_synthetic_kg


@pytest.fixture(scope="module")
def dataset():
    """A small synthetic graph that the commands use as the default one (for speed)."""
    small = make_synthetic_kg(SyntheticGraph(
        num_entities=200, num_relations=6, num_clusters=10, domain_size=4, num_train=1500,
        num_valid=100, num_test=100))
    with as_default_graph(small):
        yield small


@pytest.fixture(scope="module")
def checkpoint(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train.main(["--epochs", "2", "--eval-every", "1", "--dim", "8", "--negatives", "4",
                "--out", str(out), "--quiet"])
    return str(out / "model.pt")


def run_predict(checkpoint, *args):
    return predict.main(["--checkpoint", checkpoint, *args])


def test_predict_by_name_prints_and_writes_k_best(checkpoint, dataset, tmp_path, capsys):
    h, r, _ = dataset.train[0].tolist()
    out = tmp_path / "answers.json"
    result = run_predict(checkpoint, "--head", dataset.entity_names[h], "--relation",
                         dataset.relation_names[r], "--k", "7", "--out", str(out))
    rows = result["predictions"]
    assert [row["rank"] for row in rows] == list(range(1, 8))
    assert all(dataset.entity_names[row["id"]] == row["entity"] for row in rows)
    scores = [row["score"] for row in rows]
    assert scores == sorted(scores, reverse=True)
    assert result["predict"] == "tail" and result["query"]["tail"] == "?"
    assert json.loads(out.read_text()) == result
    printed = capsys.readouterr().out
    assert all(row["entity"] in printed for row in rows)


@pytest.mark.parametrize("side", ["tail", "head"])
def test_known_training_answers_are_marked_or_filtered(checkpoint, dataset, side):
    h, r, t = dataset.train[0].tolist()
    given, flag = (h, "--head") if side == "tail" else (t, "--tail")
    answer = 2 if side == "tail" else 0
    known = {tr[answer] for tr in dataset.train.tolist()
             if tr[1] == r and tr[2 - answer] == given}
    args = [flag, dataset.entity_names[given], "--relation", dataset.relation_names[r],
            "--k", str(dataset.num_entities)]
    marked = run_predict(checkpoint, *args)["predictions"]
    filtered = run_predict(checkpoint, *args, "--filter")["predictions"]
    assert {row["id"] for row in marked if row["known"]} == known
    assert len(marked) == dataset.num_entities
    assert [row["id"] for row in filtered] == [row["id"] for row in marked
                                               if row["id"] not in known]
    assert not any(row["known"] for row in filtered)


@pytest.mark.parametrize("side", ["tail", "head"])
@torch.no_grad()
def test_predict_methods_agree_with_all_entity_scores(checkpoint, side):
    model = load_checkpoint(checkpoint)
    ent, rel, k = torch.tensor([3, 17, 150]), torch.tensor([0, 5, 3]), 6
    if side == "tail":
        scores = model.score_tails(ent, rel)
        predicted = lambda exclude=None: model.predict_tails(ent, rel, k, exclude)  # noqa: E731
    else:
        scores = model.score_heads(rel, ent)
        predicted = lambda exclude=None: model.predict_heads(rel, ent, k, exclude)  # noqa: E731
    top, top_ids = predicted()
    torch.testing.assert_close(top, scores.topk(k).values)
    assert torch.equal(top_ids, scores.topk(k).indices)

    # Exclude the two best answers of query 0, nothing of query 1, the three best of 2.
    ptr, idx = torch.tensor([0, 2, 2, 5]), torch.cat([top_ids[0, :2], top_ids[2, :3]])
    scores[torch.repeat_interleave(torch.arange(3), ptr.diff()), idx] = float("-inf")
    top, top_ids = predicted((ptr, idx))
    torch.testing.assert_close(top, scores.topk(k).values)
    assert torch.equal(top_ids, scores.topk(k).indices)


@pytest.mark.parametrize("args, message", [
    (["--head", "e012x", "--relation", "r3"], "--head 'e012x'"),
    (["--tail", "e012", "--relation", "r3x"], "did you mean 'r3'?"),
    (["--head", "e012", "--relation", "r3", "--k", "0"], "--k 0"),
])
def test_one_line_errors(checkpoint, args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        run_predict(checkpoint, *args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_unknown_name_from_the_command_line(checkpoint):
    proc = subprocess.run([sys.executable, "-m", "mmkgc_pyg.predict", "--checkpoint",
                           checkpoint, "--head", "e012x", "--relation", "r3"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "did you mean 'e012'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("side", ["tail", "head"])
def test_library_predict_by_name_matches_the_command(checkpoint, dataset, side):
    model = load_checkpoint(checkpoint)
    h, r, t = dataset.train[0].tolist()
    names, relation = dataset.entity_names, dataset.relation_names[r]
    query = {"head": names[h]} if side == "tail" else {"tail": names[t]}
    flag = "--head" if side == "tail" else "--tail"
    for filtered in (False, True):
        rows = model.predict(relation=relation, k=9, known=dataset.train, filter=filtered,
                             **query)
        command = run_predict(checkpoint, flag, next(iter(query.values())), "--relation",
                              relation, "--k", "9", *(["--filter"] if filtered else []))
        assert [row.to_dict() for row in rows] == command["predictions"]
    plain = model.predict(relation=relation, k=3, **query)  # no known triples: none marked
    assert [p.rank for p in plain] == [1, 2, 3] and not any(p.known for p in plain)
    assert all(names[p.id] == p.entity for p in plain)


def test_library_predict_unknown_names_and_bad_queries(checkpoint):
    from mmkgc_pyg.errors import UnknownNameError
    model = load_checkpoint(checkpoint)
    with pytest.raises(UnknownNameError) as exc:
        model.predict(head="e012x", relation="r3")
    assert isinstance(exc.value, KeyError) and exc.value.argument == "head"
    assert "e012" in exc.value.suggestions
    assert str(exc.value).startswith("'e012x': expected an entity name")
    with pytest.raises(UnknownNameError, match="did you mean 'r3'"):
        model.predict(tail="e012", relation="r3x")
    for bad in (dict(head="e1", tail="e2"), dict(), dict(head="e1", k=0),
                dict(head="e1", filter=True)):
        with pytest.raises(ValueError):
            model.predict(relation="r3", **bad)


# ---------------------------------------------------------------- files of queries and triples
def write_lines(path, lines):
    path.write_text("".join("\t".join(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_a_file_of_queries_of_both_sides_is_answered_in_file_order(checkpoint, dataset,
                                                                    tmp_path, capsys):
    names, relations = dataset.entity_names, dataset.relation_names
    (h0, r0, _), (_, r1, t1), (h2, r2, _) = dataset.train[:3].tolist()
    queries = write_lines(tmp_path / "queries.tsv", [
        (names[h0], relations[r0], "?"), ("?", relations[r1], names[t1]),
        (names[h2], relations[r2], "?")])
    out = tmp_path / "answers.json"
    result = run_predict(checkpoint, "--queries", str(queries), "--k", "3", "--out", str(out))
    rows = result["rows"]
    assert [(r["line"], r["rank"]) for r in rows] == [(line, rank) for line in (1, 2, 3)
                                                      for rank in (1, 2, 3)]
    assert [r["predict"] for r in rows[::3]] == ["tail", "head", "tail"]
    model = load_checkpoint(checkpoint)
    expected = model.predict(tail=names[t1], relation=relations[r1], k=3, known=dataset.train)
    assert [(r["head"], r["score"], r["known"]) for r in rows[3:6]] == [
        (p.entity, p.score, p.known) for p in expected]
    assert all(r["head"] == names[h0] and r["relation"] == relations[r0] for r in rows[:3])
    train = set(map(tuple, dataset.train.tolist()))
    assert [r["known"] for r in rows] == [(r["head_id"], r["relation_id"], r["tail_id"]) in train
                                          for r in rows]
    assert json.loads(out.read_text()) == result
    printed = capsys.readouterr().out
    assert "line" in printed and all(r["tail"] in printed for r in rows[:3])


def test_filtered_answers_of_a_file_leave_training_triples_out(checkpoint, dataset, tmp_path):
    h, r, t = dataset.train[0].tolist()
    queries = write_lines(tmp_path / "q.tsv", [(dataset.entity_names[h],
                                                dataset.relation_names[r], "?")])
    rows = run_predict(checkpoint, "--queries", str(queries), "--k", "200", "--filter")["rows"]
    known = {tr[2] for tr in dataset.train.tolist() if tr[:2] == [h, r]}
    assert {row["tail_id"] for row in rows} == set(range(200)) - known


def test_a_file_of_triples_is_scored(checkpoint, dataset, tmp_path):
    names, relations = dataset.entity_names, dataset.relation_names
    triples = torch.cat([dataset.train[:2], dataset.test[:2]])
    path = write_lines(tmp_path / "triples.tsv", [(names[h], relations[r], names[t])
                                                  for h, r, t in triples.tolist()])
    rows = run_predict(checkpoint, "--score", str(path))["rows"]
    model = load_checkpoint(checkpoint)
    with torch.no_grad():
        scores = model(triples[:, 0], triples[:, 1], triples[:, 2])
    assert [r["line"] for r in rows] == [1, 2, 3, 4]
    assert [r["score"] for r in rows] == pytest.approx(scores.tolist())
    assert [r["known"] for r in rows] == [True, True, False, False]
    assert [r["tail_id"] for r in rows] == triples[:, 2].tolist()


def test_results_are_written_as_csv(checkpoint, dataset, tmp_path):
    import csv
    h, r, _ = dataset.train[0].tolist()
    queries = write_lines(tmp_path / "q.tsv", [(dataset.entity_names[h],
                                                dataset.relation_names[r], "?")])
    out = tmp_path / "answers.csv"
    result = run_predict(checkpoint, "--queries", str(queries), "--k", "4", "--out", str(out))
    with open(out, newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == list(result["rows"][0])
    assert [row["tail"] for row in table] == [row["tail"] for row in result["rows"]]
    assert [float(row["score"]) for row in table] == pytest.approx(
        [row["score"] for row in result["rows"]])
    single = run_predict(checkpoint, "--head", dataset.entity_names[h], "--relation",
                         dataset.relation_names[r], "--k", "2", "--out",
                         str(tmp_path / "one.csv"))
    assert (tmp_path / "one.csv").read_text().splitlines()[0] == "rank,entity,id,score,known"
    assert len(single["predictions"]) == 2


def test_results_are_written_as_parquet(checkpoint, dataset, tmp_path):
    pyarrow_parquet = pytest.importorskip("pyarrow.parquet")
    triples = dataset.test[:3].tolist()
    path = write_lines(tmp_path / "t.tsv", [(dataset.entity_names[h], dataset.relation_names[r],
                                             dataset.entity_names[t]) for h, r, t in triples])
    out = tmp_path / "scores.parquet"
    rows = run_predict(checkpoint, "--score", str(path), "--out", str(out))["rows"]
    assert pyarrow_parquet.read_table(out).to_pylist() == rows


def test_parquet_without_pyarrow_is_a_one_line_error_before_any_work(checkpoint, tmp_path,
                                                                     monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
    with pytest.raises(SystemExit) as exc:
        run_predict(checkpoint, "--queries", str(tmp_path / "not-read.tsv"), "--out",
                    str(tmp_path / "a.parquet"))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "Parquet" in err and 'pip install "mmkgc-pyg[tables]"' in err


def test_an_existing_output_is_replaced_only_with_overwrite(checkpoint, dataset, tmp_path,
                                                            capsys):
    out = tmp_path / "answers.json"
    out.write_text("mine")
    args = ["--head", dataset.entity_names[0], "--relation", dataset.relation_names[0],
            "--out", str(out)]
    with pytest.raises(SystemExit) as exc:
        run_predict(checkpoint, *args)
    assert exc.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert out.read_text() == "mine"
    result = run_predict(checkpoint, *args, "--overwrite")
    assert json.loads(out.read_text()) == result


def test_large_outputs_print_the_first_rows(checkpoint, dataset, tmp_path, capsys):
    lines = [(dataset.entity_names[i], dataset.relation_names[0], "?") for i in range(30)]
    queries = write_lines(tmp_path / "q.tsv", lines)
    run_predict(checkpoint, "--queries", str(queries), "--k", "5", "--out",
                str(tmp_path / "a.csv"))
    printed = capsys.readouterr().out
    assert f"... {150 - predict.PRINT_ROWS} more rows in {tmp_path / 'a.csv'}" in printed
    assert len(printed.splitlines()) == predict.PRINT_ROWS + 4  # summary, header, more, wrote


# {e} and {r} stand for an entity and a relation of the model.
@pytest.mark.parametrize("lines, flags, message", [
    ([("{e}", "{r}", "?"), ("?", "{r}", "?")], [], "q.tsv:2: expected `HEAD<TAB>RELATION"),
    ([("{e}", "{r}", "{e}")], [], "q.tsv:1: expected `HEAD<TAB>RELATION<TAB>?`"),
    ([("{e}", "?", "?")], [], "q.tsv:1: expected"),
    ([("{e}", "{r}", "?"), ("{e}x", "{r}", "?")], [],
     "q.tsv:2: head '{e}x': expected an entity name of the model, got an unknown one; "
     "did you mean"),
    ([("?", "{r}x", "{e}")], [], "q.tsv:1: relation '{r}x'"),
    ([("{e} {r} ?",)], [], "q.tsv:1: expected `head<TAB>relation<TAB>tail` names "
                           "(separated by spaces, not tabs)"),
    ([("{e}", "{r}", "?")], ["--relation", "{r}"], "--relation: expected with --head"),
    ([("{e}", "{r}", "?")], ["--out", "x.txt"], "expected a file ending in .json"),
])
def test_bad_query_files_are_one_line_errors(checkpoint, dataset, tmp_path, capsys, lines,
                                             flags, message):
    def named(text):
        return text.format(e=dataset.entity_names[1], r=dataset.relation_names[1])

    lines, flags, message = ([tuple(map(named, line)) for line in lines],
                             list(map(named, flags)), named(message))
    queries = write_lines(tmp_path / "q.tsv", lines)
    with pytest.raises(SystemExit) as exc:
        run_predict(checkpoint, "--queries", str(queries), *flags)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flags, message", [
    (["--k", "3"], "--k: expected with --head, --tail or --queries, not --score"),
    (["--filter"], "--filter: expected with"),
    ([], "t.tsv:1: tail 'e0xx'"),
])
def test_bad_score_requests_are_one_line_errors(checkpoint, dataset, tmp_path, capsys, flags,
                                                message):
    path = write_lines(tmp_path / "t.tsv", [(dataset.entity_names[1], dataset.relation_names[1],
                                             "e0xx")])
    with pytest.raises(SystemExit) as exc:
        run_predict(checkpoint, "--score", str(path), *flags)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def renamed_checkpoint(checkpoint, path, entity_names, relation_names):
    """``checkpoint`` saved again with other names."""
    model = load_checkpoint(checkpoint)
    model.entity_names, model.relation_names = entity_names, relation_names
    save_checkpoint(model, path, model.dataset)
    return str(path)


def test_a_checkpoint_without_names_is_a_one_line_error(checkpoint, tmp_path, capsys):
    nameless = renamed_checkpoint(checkpoint, tmp_path / "nameless.pt", None, None)
    with pytest.raises(SystemExit) as exc:
        run_predict(nameless, "--head", "e001", "--relation", "r1")
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert f"{nameless}: expected a model with entity and relation names" in err


def test_uri_names_are_found_by_their_readable_form(checkpoint, dataset, tmp_path, capsys):
    model_path = renamed_checkpoint(
        checkpoint, tmp_path / "uris.pt",
        [f"<http://dbpedia.org/resource/Thing_{n}>" for n in dataset.entity_names],
        dataset.relation_names)
    h, r, _ = dataset.train[0].tolist()
    readable = f"Thing {dataset.entity_names[h]}"
    result = run_predict(model_path, "--head", readable, "--relation",
                         dataset.relation_names[r], "--k", "3")
    plain = run_predict(checkpoint, "--head", dataset.entity_names[h], "--relation",
                        dataset.relation_names[r], "--k", "3")
    assert [row["id"] for row in result["predictions"]] == [row["id"] for row in
                                                            plain["predictions"]]
    with pytest.raises(SystemExit):
        run_predict(model_path, "--head", f"Thing {dataset.entity_names[h]}x", "--relation",
                    dataset.relation_names[r])
    err = capsys.readouterr().err
    assert f"did you mean 'Thing {dataset.entity_names[h]}'" in err
