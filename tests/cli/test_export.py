"""``python -m mmkgc_pyg.export``: a checkpoint's embeddings, names and manifest in a
folder, refused over an earlier export unless --overwrite, errors in one line."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from utils import random_kg
from mmkgc_pyg.checkpoint import load_checkpoint, save_checkpoint
from mmkgc_pyg.cli import export
from mmkgc_pyg.nn import MMKGCModel


def saved_model(path, nan=False):
    kg = random_kg()
    torch.manual_seed(0)
    model = MMKGCModel(kg.num_entities, kg.num_relations, 4, features=kg.features,
                       masks=kg.masks)
    model.entity_names, model.relation_names = kg.entity_names, kg.relation_names
    if nan:
        with torch.no_grad():
            model.node_emb.weight[0, 0] = float("nan")
    save_checkpoint(model, path)
    return str(path)


@pytest.fixture
def checkpoint(tmp_path):
    return saved_model(tmp_path / "model.pt")


@torch.no_grad()
def test_export_writes_arrays_names_and_manifest(checkpoint, tmp_path, capsys):
    out = tmp_path / "vectors"
    manifest = export.main(["--checkpoint", checkpoint, "--out", str(out), "--quiet"])
    model = load_checkpoint(checkpoint)
    joint = np.load(out / "entity_embeddings.npy")
    torch.testing.assert_close(torch.from_numpy(joint), model.entity_embeddings())
    assert np.load(out / "relation_embeddings.npy").shape == (model.num_relations, 4)
    assert (out / "entities.txt").read_text().splitlines() == model.entity_names
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["files"]["entity_embeddings"]["shape"] == [model.num_nodes, 8]
    printed = capsys.readouterr().out
    assert "entity_embeddings.npy      30x8 float32  rows: entities.txt" in printed
    assert f"wrote {out / 'manifest.json'}" in printed


def test_an_earlier_export_is_replaced_only_with_overwrite(checkpoint, tmp_path, capsys):
    out = tmp_path / "vectors"
    export.main(["--checkpoint", checkpoint, "--out", str(out), "--quiet"])
    with pytest.raises(SystemExit) as exc:
        export.main(["--checkpoint", checkpoint, "--out", str(out), "--format", "pt"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "holds an export (manifest.json" in err and "--overwrite" in err
    export.main(["--checkpoint", checkpoint, "--out", str(out), "--format", "pt",
                 "--overwrite", "--quiet"])
    assert sorted(p.suffix for p in out.iterdir()) == [".json", ".pt", ".pt", ".pt", ".txt",
                                                       ".txt"]
    table = torch.load(out / "structural_embeddings.pt")
    assert torch.equal(table, load_checkpoint(checkpoint).node_emb.weight)


@pytest.mark.parametrize("case, message", [
    ("file", "--out {out}: expected a folder, but it is a file"),
    ("nan", "{checkpoint}: the model's parameters hold NaN"),
    ("missing", "{checkpoint}"),
])
def test_bad_input_is_a_one_line_error(tmp_path, capsys, case, message):
    out = tmp_path / "vectors"
    checkpoint = saved_model(tmp_path / "model.pt", nan=case == "nan")
    if case == "file":
        out.write_text("")
    if case == "missing":
        checkpoint = str(tmp_path / "none.pt")
    with pytest.raises(SystemExit) as exc:
        export.main(["--checkpoint", checkpoint, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert message.format(out=out, checkpoint=checkpoint) in err


def test_the_module_runs_from_the_command_line(checkpoint, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mmkgc_pyg.export", "--checkpoint",
                           checkpoint, "--out", str(tmp_path / "v"), "--format", "pt"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "v" / "entity_embeddings.pt").is_file()
