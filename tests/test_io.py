"""Atomic outputs: a write either fully happens or leaves the old file untouched."""
import json

import pytest
import torch

from mmkgc_pyg.io import atomic_torch_save, atomic_write_json, atomic_write_text


def test_writes_create_folders_and_read_back(tmp_path):
    atomic_write_text(tmp_path / "a" / "b.txt", "héllo\n")
    assert (tmp_path / "a" / "b.txt").read_text() == "héllo\n"
    atomic_write_json(tmp_path / "m.json", {"mrr": 0.5, "x": None})
    assert json.loads((tmp_path / "m.json").read_text()) == {"mrr": 0.5, "x": None}
    atomic_torch_save({"w": torch.arange(3)}, tmp_path / "t.pt")
    assert torch.equal(torch.load(tmp_path / "t.pt")["w"], torch.arange(3))


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "m.json"
    atomic_write_json(path, {"old": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"bad": object()})  # not JSON: fails while writing
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
