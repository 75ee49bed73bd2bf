import json
import subprocess
import sys

import pytest
import torch

from mmkgc_pyg.checkpoint import load_checkpoint
from mmkgc_pyg.cli import predict, train
from mmkgc_pyg.data import make_synthetic_kg


@pytest.fixture(scope="module")
def dataset():
    """A small synthetic graph that the commands use as the default one (for speed)."""
    small = make_synthetic_kg(num_entities=200, num_relations=6, num_clusters=10,
                              domain_size=4, num_train=1500, num_valid=100, num_test=100)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("mmkgc_pyg.data.make_synthetic_kg", lambda: small)
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
