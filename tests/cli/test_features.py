"""``python -m mmkgc_pyg.features``: text and image features end to end, and its errors."""
import shutil
import subprocess
import sys
import time

import pytest
import torch

from feature_models import minilm_path, save_image, save_tiny_vit
from utils import write_toy_openke
from mmkgc_pyg.builders.text_features import DEFAULT_TEXT_MODEL
from mmkgc_pyg.cli import features
from mmkgc_pyg.data import load_openke

NAMES = ["<http://dbpedia.org/resource/Andy_Griffith>",
         "<http://dbpedia.org/resource/Taiwan>",
         "http://www.wikidata.org/entity/Q42"]


@pytest.fixture
def dataset(tmp_path):
    folder = write_toy_openke(tmp_path / "TOY", NAMES, "0 1 0\n1 2 0")
    return folder


def run(argv, capsys):
    """Exit status, stdout and stderr of the tool run in this process."""
    try:
        features.main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_text_embeds_descriptions_else_names(dataset, tmp_path, capsys):
    model_path = minilm_path()
    from sentence_transformers import SentenceTransformer

    descriptions = tmp_path / "descriptions.txt"
    descriptions.write_text("Andy_Griffith\tAn American actor, singer and producer.\n"
                            "Not_in_the_graph\tSkipped.\n")
    code, out, err = run(["text", "--dataset", str(dataset), "--descriptions",
                          str(descriptions), "--model", model_path, "--batch-size", "2",
                          "--device", "cpu"], capsys)
    assert code == 0, err
    assert "1 entities described; 1 lines named no entity: 'Not_in_the_graph'" in err
    assert "2 of 3 entities have text (1 descriptions, 1 names)" in out

    x = torch.load(dataset / "TOY-textual.pth", weights_only=True)
    mask = torch.load(dataset / "TOY-textual-mask.pth", weights_only=True)
    assert mask.tolist() == [True, True, False] and x[2].abs().sum() == 0
    model = SentenceTransformer(model_path, device="cpu")
    described, name, taiwan = model.encode(
        ["An American actor, singer and producer.", "Andy Griffith", "Taiwan"],
        convert_to_tensor=True)
    torch.testing.assert_close(x[0], described, atol=1e-5, rtol=0)
    torch.testing.assert_close(x[1], taiwan, atol=1e-5, rtol=0)
    assert (x[0] - name).norm() > 0.1  # the description, not the name
    capsys.readouterr()

    # Training finds the file by its name; the mask file agrees with it.
    data = load_openke(dataset, mask_files={"textual": str(dataset / "TOY-textual-mask.pth")})
    assert data.modalities == ["textual"]
    assert data.masks["textual"].tolist() == [True, True, False]

    # An existing output is kept unless --overwrite is given.
    before = (dataset / "TOY-textual.pth").read_bytes()
    code, _, err = run(["text", "--dataset", str(dataset), "--model", model_path], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {dataset / 'TOY-textual.pth'}: exists;")
    assert (dataset / "TOY-textual.pth").read_bytes() == before
    out_file = tmp_path / "names.pt"
    code, _, err = run(["text", "--dataset", str(dataset), "--model", model_path,
                        "--out", str(out_file), "--device", "cpu"], capsys)
    assert code == 0, err
    torch.testing.assert_close(torch.load(out_file, weights_only=True)[0], name,
                               atol=1e-5, rtol=0)
    assert (tmp_path / "names-mask.pt").is_file()


def test_text_bad_model_folder_is_one_line(dataset, capsys):
    minilm_path()
    code, _, err = run(["text", "--dataset", str(dataset), "--model", str(dataset),
                        "--device", "cpu"], capsys)  # a folder that is no model
    assert code == 2
    assert err.splitlines()[-1].startswith(f"error: --model {dataset}: expected a local "
                                           "model folder or a hub name that can be loaded")
    assert "Traceback" not in err
    assert not (dataset / "TOY-textual.pth").exists()


@pytest.mark.parametrize("model", [None, "no-such-org/no-such-model"])
def test_text_hub_name_offline_fails_at_once_naming_the_packaged_model(
        dataset, capsys, monkeypatch, model):
    packaged = minilm_path()
    from huggingface_hub import try_to_load_from_cache

    name = model or DEFAULT_TEXT_MODEL
    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        pytest.skip(f"{name} is in the local hub cache")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    code, _, err = run(["text", "--dataset", str(dataset), "--device", "cpu",
                        *(["--model", model] if model else [])], capsys)
    assert time.monotonic() - start < 30  # the hub client alone retries for over a minute
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {name}: expected a local model folder, or a hub model "
                          "in the local cache while the Hugging Face hub is unreachable "
                          "(HF_HUB_OFFLINE is set)")
    assert err.endswith(f"; all-MiniLM-L6-v2 works offline: --model {packaged}\n")


def test_images_mean_pool_and_skip_corrupt_files(dataset, tmp_path, capsys):
    model_path = save_tiny_vit(tmp_path / "vit")
    images = tmp_path / "images"
    first = save_image(images / "0" / "a.png", seed=1)
    save_image(images / "0" / "b.jpg", seed=2)
    shutil.copy(first, images / "1_0.png")
    (images / "1_1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (images / "2").mkdir()
    (images / "2" / "broken.jpg").write_bytes(b"")
    out = tmp_path / "visual.pth"
    code, stdout, err = run(["images", "--dataset", str(dataset), "--images", str(images),
                             "--model", model_path, "--out", str(out)], capsys)
    assert code == 0, err
    assert "5 images of 3 entities; 0 entries named no entity" in err
    assert "skipped 2 unreadable images: '1_1.png', '2/broken.jpg'" in err
    assert "2 of 3 entities have images" in stdout

    x = torch.load(out, weights_only=True)
    mask = torch.load(tmp_path / "visual-mask.pth", weights_only=True)
    assert mask.tolist() == [True, True, False] and x[2].abs().sum() == 0
    assert (x[0] - x[1]).norm() > 1e-4  # entity 0 averages a.png with b.jpg


def test_images_name_the_first_entries_that_match_no_entity(dataset, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for stem in ["Nobody", "Somebody_1", "m.0zzz", "Q1", "Elsewhere", "Zeta", "Zulu"]:
        (images / f"{stem}.png").write_bytes(b"")
    code, _, err = run(["images", "--dataset", str(dataset), "--images", str(images)],
                       capsys)
    assert code == 2
    assert (f"{images}: 0 images of 0 entities; 7 entries named no entity: 'Elsewhere.png', "
            "'Nobody.png', 'Q1.png', 'Somebody_1.png', 'Zeta.png' and 2 more\n") in err
    assert err.splitlines()[-1].startswith(f"error: --images {images}: expected image files")


@pytest.mark.parametrize("command, module, extra", [
    ("text", "sentence_transformers", "text"), ("images", "transformers", "vision")])
def test_missing_extra_is_one_line_exit_2(dataset, tmp_path, monkeypatch, capsys,
                                          command, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "0.png").write_bytes(b"")  # found by name, never read
    extra_args = ["--images", str(tmp_path / "images")] if command == "images" else []
    code, out, err = run([command, "--dataset", str(dataset), *extra_args], capsys)
    assert code == 2
    kind = "text" if command == "text" else "image"
    assert err.splitlines()[-1] == (f"error: building {kind} features needs the [{extra}] "
                                    f'extra: pip install "mmkgc-pyg[{extra}]"')
    assert "Traceback" not in err
    assert not list(dataset.glob("TOY-*"))


@pytest.mark.parametrize("argv, message", [
    (["text", "--dataset", "{missing}"], "--dataset {missing}: expected a dataset folder"),
    (["text", "--dataset", "{dataset}", "--out", "{dataset}/x.npy"],
     "--out {dataset}/x.npy: expected a .pth or .pt file"),
    (["images", "--dataset", "{dataset}", "--images", "{dataset}"],
     "--images {dataset}: expected image files of the dataset's entities, got none"),
])
def test_user_errors(dataset, tmp_path, capsys, argv, message):
    fill = {"dataset": dataset, "missing": tmp_path / "missing"}
    code, _, err = run([a.format(**fill) for a in argv], capsys)
    assert code == 2
    assert err.splitlines()[-1].startswith("error: " + message.format(**fill))
    assert "Traceback" not in err


def test_module_entry_point(dataset):
    result = subprocess.run([sys.executable, "-m", "mmkgc_pyg.features", "text",
                             "--dataset", str(dataset), "--batch-size", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--batch-size: expected a positive integer, got '0'" in result.stderr
