"""``python -m mmkgc_pyg.evaluate``: what its flags may and may not change."""
import pytest
import torch

from utils import random_kg
from mmkgc_pyg.checkpoint import save_checkpoint
from mmkgc_pyg.cli import evaluate
from mmkgc_pyg.data.openke import write_openke
from mmkgc_pyg.nn import MMKGCModel


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A model with visual [30, 6] and textual [30, 4] tables, saved with its dataset
    folder (which holds no feature file)."""
    root = tmp_path_factory.mktemp("evaluate")
    kg = random_kg()
    folder = write_openke(kg, root / "kg", features=False)
    torch.manual_seed(0)
    model = MMKGCModel(kg.num_entities, kg.num_relations, 4, features=kg.features,
                       masks=kg.masks)
    save_checkpoint(model, root / "model.pt", {"name": "kg", "path": str(folder),
                                               "fingerprint": kg.fingerprint()})
    return root, kg


def refused(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        evaluate.main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_a_feature_of_another_width_is_refused(saved, capsys):
    root, kg = saved
    torch.save(kg.features["visual"][:, :3], root / "narrow.pt")
    err = refused(capsys, ["--checkpoint", root / "model.pt", "--quiet",
                           "--feature", f"visual={root / 'narrow.pt'}"])
    assert err == (f"error: --feature visual={root / 'narrow.pt'}: expected the shape [30, 6] "
                   f"of the visual table in {root / 'model.pt'}, got [30, 3]")


def test_a_feature_of_another_modality_is_refused(saved, capsys):
    root, kg = saved
    torch.save(kg.features["visual"], root / "audio.pt")
    err = refused(capsys, ["--checkpoint", root / "model.pt", "--quiet",
                           "--feature", f"audio={root / 'audio.pt'}"])
    assert err == (f"error: --feature audio={root / 'audio.pt'}: expected a modality of "
                   f"{root / 'model.pt'} (textual, visual), got 'audio'")


def test_a_feature_of_the_models_shape_is_accepted(saved, tmp_path):
    root, kg = saved
    torch.save(kg.features["visual"], tmp_path / "visual.pt")
    plain = evaluate.main(["--checkpoint", str(root / "model.pt"), "--quiet",
                           "--out", str(tmp_path / "a.json")])
    given = evaluate.main(["--checkpoint", str(root / "model.pt"), "--quiet",
                           "--out", str(tmp_path / "b.json"),
                           "--feature", f"visual={tmp_path / 'visual.pt'}"])
    assert given["test"]["mrr"] == plain["test"]["mrr"]


@pytest.mark.parametrize("value", [str(2**63), "-1", "1e3"])
def test_a_seed_out_of_range_is_an_argument_error(saved, capsys, value):
    root, _ = saved
    with pytest.raises(SystemExit) as exc:
        evaluate.main(["--checkpoint", str(root / "model.pt"), "--quiet",
                       "--drop-modality-rate", "0.5", "--seed", value])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert f"argument --seed: expected an integer in [0, 2**63), got '{value}'" in err
