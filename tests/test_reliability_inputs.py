"""What the project promises under bad input: a clear one-line error (exit status 2)
naming the file, line or flag, a warning with counts for data that loads but may mislead,
and never a silently wrong result."""
import json
import os
import re
import warnings

import pytest
import torch

from mmkgc_pyg import load_checkpoint
from mmkgc_pyg.cli import evaluate as evaluate_cli
from mmkgc_pyg.cli import predict as predict_cli
from mmkgc_pyg.cli import train as train_cli
from mmkgc_pyg.data import KGDataset, SyntheticGraph, load_openke, make_synthetic_kg
from mmkgc_pyg.data.openke import write_openke
from mmkgc_pyg.errors import DataWarning, InputError
from mmkgc_pyg.io import atomic_write_json

TINY = ["--dim", "4", "--negatives", "4", "--batch-size", "128", "--eval-every", "1",
        "--epochs", "1", "--quiet"]


def tiny_kg(**changes) -> KGDataset:
    kg = make_synthetic_kg(SyntheticGraph(
        num_entities=120, num_relations=4, num_clusters=6, domain_size=3, num_train=600,
        num_valid=40, num_test=40))
    return KGDataset(**{**kg.__dict__, **changes})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny dataset whose textual feature lives outside its folder, and a run on it."""
    root = tmp_path_factory.mktemp("trained")
    kg = tiny_kg()
    folder = write_openke(kg, root / "tiny", features=False)
    torch.save(kg.features["textual"], root / "text.pt")
    out = root / "run"
    metrics = train_cli.main(["--dataset", str(folder), "--feature",
                              f"textual={root / 'text.pt'}", "--out", str(out), *TINY])
    return folder, out, metrics


def exits_2(capsys, main, args, expected):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    err = [x for x in capsys.readouterr().err.strip().splitlines() if x.startswith("error: ")]
    assert info.value.code == 2 and len(err) == 1 and expected in err[0], err
    return err[0]


# --- results that must never be silently wrong ----------------------------------------

def test_a_model_with_nan_weights_is_refused_not_ranked_first(trained, tmp_path, capsys):
    folder, out, _ = trained
    payload = torch.load(out / "model.pt", weights_only=True)
    payload["state_dict"]["node_emb.weight"][3, 0] = float("nan")
    torch.save(payload, tmp_path / "nan.pt")
    exits_2(capsys, evaluate_cli.main, ["--checkpoint", tmp_path / "nan.pt", "--quiet"],
            expected="NaN or infinite values")
    model = load_checkpoint(out / "model.pt")
    exits_2(capsys, predict_cli.main, ["--checkpoint", tmp_path / "nan.pt", "--head",
                                       model.entity_names[0], "--relation",
                                       model.relation_names[0]],
            expected="NaN or infinite values")


def test_evaluation_uses_the_models_own_modalities(trained, tmp_path):
    """Trained with a feature file from outside the dataset folder, evaluated without
    repeating --feature: the same metrics, and the modality-missing setting still hides
    that modality."""
    folder, out, metrics = trained
    again = evaluate_cli.main(["--checkpoint", str(out / "model.pt"), "--quiet",
                               "--out", str(tmp_path / "e.json")])
    assert again["test"]["mrr"] == metrics["test"]["mrr"]
    hidden = evaluate_cli.main(["--checkpoint", str(out / "model.pt"), "--quiet",
                                "--drop-modality-rate", "1", "--out", str(tmp_path / "h.json")])
    assert hidden["test"]["mrr"] != metrics["test"]["mrr"]


def test_repeated_names_and_triples_are_reported_with_counts(tmp_path):
    kg = tiny_kg()
    names = list(kg.entity_names)
    names[5] = names[4]
    relations = list(kg.relation_names)
    relations[1] = relations[0]
    valid = torch.cat([kg.valid, kg.valid[:3], kg.train[:2]])
    test = torch.cat([kg.test, kg.train[5:9], kg.valid[:1]])
    folder = write_openke(KGDataset(**{**kg.__dict__, "entity_names": names, "valid": valid,
                                       "relation_names": relations, "test": test,
                                       "train": torch.cat([kg.train, kg.train[:1]])}),
                          tmp_path / "dup", features=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_openke(folder)
    messages = [str(w.message) for w in caught if w.category is DataWarning]
    assert any("1 entity names occur more than once" in m for m in messages)
    assert any(f"train: 1 of {len(kg.train) + 1} lines repeat" in m for m in messages)
    assert any("valid: 3 of 45 lines repeat" in m for m in messages)
    assert any("valid: 2 of 45 triples are also train triples" in m for m in messages)
    assert any("1 relation names occur more than once" in m for m in messages)
    assert any("test: 4 of 45 triples are also train triples" in m for m in messages)
    assert any("test: 1 of 45 triples are also valid triples" in m for m in messages)
    # Model selection uses each valid triple once, and none that is a training triple.
    used = loaded.evaluation_triples("valid")
    assert len(used) == 40 and len(loaded.evaluation_triples("valid", raw=True)) == 45


def test_valid_triples_used_are_recorded(tmp_path, capsys):
    kg = tiny_kg()
    valid = torch.cat([kg.valid, kg.train[:7]])
    folder = write_openke(KGDataset(**{**kg.__dict__, "valid": valid}), tmp_path / "leak",
                          features=False)
    results = train_cli.main(["--dataset", str(folder), "--out", str(tmp_path / "a"), *TINY])
    assert results["valid_triples_used"] == 40 and results["valid"]["count"] == 80
    assert "warning: " in capsys.readouterr().err  # one line per finding
    raw = train_cli.main(["--dataset", str(folder), "--out", str(tmp_path / "b"),
                          "--raw-splits", *TINY])
    assert raw["valid_triples_used"] == 47 and raw["raw_splits"] is True


def test_a_category_file_with_non_test_triples_is_an_error(tmp_path):
    folder = write_openke(tiny_kg(), tmp_path / "cat", features=False)
    lines = (folder / "1-n.txt").read_text().splitlines()
    h, r, t = map(int, tiny_kg().train[0])
    lines = [str(int(lines[0]) + 1), *lines[1:], f"{h} {t} {r}"]
    (folder / "1-n.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=rf"1-n.txt:{len(lines)}: expected test triples"):
        load_openke(folder)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    folder = write_openke(tiny_kg(), tmp_path / "bom", features=False)
    path = folder / "entity2id.txt"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_openke(folder).entity_names == tiny_kg().entity_names


# --- checkpoints --------------------------------------------------------------------

def corrupt(trained, tmp_path, change):
    payload = torch.load(trained[1] / "model.pt", weights_only=True)
    change(payload)
    torch.save(payload, tmp_path / "bad.pt")
    return tmp_path / "bad.pt"


@pytest.mark.parametrize("change, expected", [
    (lambda p: p["config"].pop("margin"), "expected config keys"),
    (lambda p: p["config"].update(hidden_channels="4"), "hidden_channels to be a positive int"),
    (lambda p: p["config"].update(interaction="hole"), "expected interaction in"),
    (lambda p: p["config"].update(num_nodes=10**12), "of shape [1000000000000, "),
    (lambda p: p["state_dict"].update({"rel_emb.weight": torch.zeros(2, 2)}),
     "rel_emb.weight of shape"),
    (lambda p: p.update(entity_names=["a"]), "entity_names to be 120 strings"),
    (lambda p: p.update(format="mmkgc-pyg/1"), "written by another version of mmkgc-pyg"),
    (lambda p: p.update(format="something-else"), "expected an mmkgc-pyg checkpoint"),
])
def test_a_broken_checkpoint_is_named_before_anything_is_built(trained, tmp_path, change,
                                                               expected):
    with pytest.raises(InputError, match=re.escape(expected)):
        load_checkpoint(corrupt(trained, tmp_path, change))


def test_outputs_must_be_files_where_folders_can_be_written(trained, tmp_path, capsys):
    checkpoint = trained[1] / "model.pt"
    exits_2(capsys, evaluate_cli.main, ["--checkpoint", checkpoint, "--out", tmp_path, "--quiet"],
            expected="expected a file path, got a folder")
    exits_2(capsys, predict_cli.main, ["--checkpoint", checkpoint, "--head", "e000",
                                       "--relation", "r0", "--out", tmp_path],
            expected="expected a file path, got a folder")
    exits_2(capsys, evaluate_cli.main, ["--checkpoint", tmp_path, "--quiet",
                                        "--out", tmp_path / "x.json"],
            expected="expected a checkpoint file, got a folder")


# --- flags and files ----------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    (["--margin", "inf"], "--margin inf: expected a positive finite margin"),
    (["--seed", str(2**64)], f"--seed {2**64}: expected an integer in [0, 2**63)"),
    (["--device", "meta"], "--device meta: expected auto, cpu, cuda or cuda:N"),
    (["--negatives", "100000"], "--negatives 100000: expected fewer negatives than the 120"),
    (["--dim", "10000000000"], "--dim 10000000000: expected a size that fits: the run needs "
                               "about"),
])
def test_bad_flags_get_one_line(trained, tmp_path, capsys, args, expected):
    folder = trained[0]
    exits_2(capsys, train_cli.main, ["--dataset", folder, "--out", tmp_path / "r",
                                     *TINY, *args], expected)


@pytest.mark.parametrize("make, expected", [
    (lambda p: torch.save(torch.eye(120, 4).to_sparse(), p), "got a torch.sparse_coo tensor"),
    (lambda p: torch.save(torch.empty(120, 4, device="meta"), p), "got a meta tensor"),
    (lambda p: torch.save(torch.full((120, 4), 1e300, dtype=torch.float64), p),
     "overflow float32"),
    (lambda p: os.mkdir(p), "expected a tensor file, got a folder"),
])
def test_bad_feature_files_get_one_line(trained, tmp_path, capsys, make, expected):
    make(tmp_path / "f.pt")
    exits_2(capsys, train_cli.main, ["--dataset", trained[0], "--feature",
                                     f"visual={tmp_path / 'f.pt'}", "--out", tmp_path / "r",
                                     *TINY], expected)


def test_json_outputs_hold_no_bare_nan_and_follow_the_umask(tmp_path):
    atomic_write_json(tmp_path / "w.json", {"mean": float("nan"), "rows": [float("inf"), 1.0]})
    text = (tmp_path / "w.json").read_text()
    assert "NaN" not in text and json.loads(text) == {"mean": None, "rows": [None, 1.0]}
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "w.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_name_shared_by_two_entities_is_refused_by_name_lookup():
    from mmkgc_pyg.errors import AmbiguousNameError
    from mmkgc_pyg.nn.prediction import NameIndex
    index = NameIndex(["Paris", "Lyon", "Paris"], "an entity")
    assert index.id("Lyon", "head") == 1
    with pytest.raises(AmbiguousNameError, match="shared by ids 0, 2"):
        index.id("Paris", "head")


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_a_float8_feature_file_names_the_dtypes_accepted(trained, tmp_path, capsys, dtype):
    # Its finiteness cannot be checked (isfinite is not implemented for float8).
    torch.save(torch.rand(120, 4).to(dtype), tmp_path / "f8.pt")
    exits_2(capsys, train_cli.main, ["--dataset", trained[0], "--feature",
                                     f"visual={tmp_path / 'f8.pt'}", "--out", tmp_path / "r",
                                     *TINY],
            f"{tmp_path / 'f8.pt'}: expected a floating-point feature tensor (float16, "
            f"bfloat16, float32, float64), got {dtype}")
