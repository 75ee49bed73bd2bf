import importlib.util
import json
import sys

import pytest
import torch

from utils import random_kg
from mmkgc_pyg.checkpoint import save_checkpoint
from mmkgc_pyg.cli import plot
from mmkgc_pyg.nn import MMKGCModel

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="the [plot] extra (matplotlib) is not installed")


@pytest.fixture
def run(tmp_path):
    """A run folder as mmkgc_pyg.train leaves it: model.pt and history.jsonl."""
    torch.manual_seed(0)
    data = random_kg()
    model = MMKGCModel(30, 4, 4, features=data.features, masks=data.masks)
    save_checkpoint(model, tmp_path / "model.pt", {"name": "random"})
    records = [{"epoch": e, "loss": 1.0 / e, "generator_loss": 0.5 / e, "seconds": 0.1,
                "steps_per_s": 10.0} for e in range(1, 5)]
    for record, mrr in zip(records[1::2], (0.1, 0.2)):
        record["valid"] = {"mrr": mrr, "hits@10": 0.3}
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return tmp_path, data


@needs_matplotlib
def test_writes_pngs_and_weight_summary(run, tmp_path_factory):
    folder, data = run
    out = tmp_path_factory.mktemp("plots")
    plot.main([str(folder), "--out", str(out)])
    for name in ("training_curves.png", "modality_weights.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    summary = json.loads((out / "modality_weights.json").read_text())

    present = torch.stack([data.masks[m] for m in data.modalities], 1)
    expected = {}
    for row in present.tolist():
        key = "+".join(["structure", *(m for m, p in zip(data.modalities, row) if p)])
        expected[key] = expected.get(key, 0) + 1
    assert {k: v["count"] for k, v in summary.items()} == expected
    for pattern, group in summary.items():
        assert list(group["mean_weight"]) == pattern.split("+")
        assert sum(group["mean_weight"].values()) == pytest.approx(1.0, abs=1e-5)
    assert summary["structure"]["mean_weight"] == {"structure": pytest.approx(1.0)}


def test_structure_only_model_has_one_pattern():
    groups = plot.modality_weight_groups(MMKGCModel(12, 3, 3))
    assert list(groups) == ["structure"] and groups["structure"]["count"] == 12


def test_missing_matplotlib_is_a_clear_error(run, monkeypatch, capsys):
    folder, _ = run
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import raises ImportError
    with pytest.raises(SystemExit) as exc:
        plot.main([str(folder)])
    assert exc.value.code == 2
    assert "pip install 'mmkgc-pyg[plot]'" in capsys.readouterr().err
    assert not (folder / "training_curves.png").exists()


@pytest.mark.parametrize("content", [None, "", "{not json\n", '{"epoch": 1}\n'])
def test_bad_history_names_the_file(run, content, capsys):
    folder, _ = run
    history = folder / "history.jsonl"
    if content is None:
        history.unlink()
    else:
        history.write_text(content)
    with pytest.raises(SystemExit) as exc:
        plot.main([str(folder)])
    assert exc.value.code == 2
    assert str(history) in capsys.readouterr().err


@needs_matplotlib
def test_a_model_with_nan_weights_is_refused(run, capsys):
    folder, _ = run
    payload = torch.load(folder / "model.pt", weights_only=True)
    payload["state_dict"]["node_emb.weight"][3, 0] = float("nan")
    torch.save(payload, folder / "model.pt")
    with pytest.raises(SystemExit) as exc:
        plot.main([str(folder)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and err == [
        f"error: {folder / 'model.pt'}: the model's parameters hold NaN or infinite values: "
        "its modality weights would be meaningless"]
    assert not (folder / "modality_weights.json").exists()
