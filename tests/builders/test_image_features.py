import shutil

import pytest
import torch

from feature_models import require_vision, save_image, save_tiny_clip, save_tiny_vit
from mmkgc_pyg.builders.image_features import (ImageEncoder, find_entity_images,
                                               image_features)
from mmkgc_pyg.data.entity_names import EntityIndex
from mmkgc_pyg.errors import InputError

NAMES = ["<http://dbpedia.org/resource/Andy_Griffith>",
         "<http://dbpedia.org/resource/Taiwan>",
         "<http://dbpedia.org/resource/Prison>",
         "<http://dbpedia.org/resource/Asia>",
         "<http://dbpedia.org/resource/Europe>"]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return ImageEncoder(save_tiny_vit(tmp_path_factory.mktemp("vit")))


@pytest.fixture
def id_layout(tmp_path):
    """Entity 0: two images in a folder; 1 and 2: one copy each of them, as flat files;
    3: only a corrupt image; 4: nothing."""
    require_vision()
    images = tmp_path / "images"
    first = save_image(images / "0" / "a.png", seed=1)
    second = save_image(images / "0" / "b.png", seed=2, size=(64, 30))
    shutil.copy(first, images / "1_0.png")
    shutil.copy(second, images / "2.png")
    (images / "3").mkdir()
    (images / "3" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (images / "0" / "notes.txt").write_text("not an image")
    return images


def test_id_layout(id_layout):
    images, unmatched = find_entity_images(id_layout, EntityIndex(NAMES))
    assert [[p.name for p in paths] for paths in images] == \
        [["a.png", "b.png"], ["1_0.png"], ["2.png"], ["broken.jpg"], []]
    assert unmatched == []


def test_mean_pooling_equals_mean_of_single_images(id_layout, encoder):
    images, _ = find_entity_images(id_layout, EntityIndex(NAMES))
    x, present, unreadable = image_features(images, encoder, batch_size=2, progress=False)
    assert present.tolist() == [True, True, True, False, False]
    assert unreadable == [id_layout / "3" / "broken.jpg"]
    assert x.shape == (5, 32) and x[3:].abs().sum() == 0
    torch.testing.assert_close(x[0], (x[1] + x[2]) / 2, atol=1e-5, rtol=0)
    assert (x[1] - x[2]).norm() > 1e-3


def test_name_layout_with_link_file_counts_strangers(tmp_path):
    require_vision()
    images = tmp_path / "images"
    save_image(images / "Andy_Griffith" / "1.jpg", seed=1)
    save_image(images / "m.0d1w9" / "sub" / "1.png", seed=2)  # Prison, through the link
    save_image(images / "Taiwan.png", seed=3)
    save_image(images / "Nobody" / "1.png", seed=4)
    save_image(images / ".cache" / "1.png", seed=5)
    links = tmp_path / "DB15K_SameAsLink.txt"
    links.write_text("/m/0d1w9 <SameAs> <http://dbpedia.org/resource/Prison> .\n")
    found, unmatched = find_entity_images(images, EntityIndex(NAMES, [links]))
    assert [len(paths) for paths in found] == [1, 1, 1, 0, 0]
    assert found[2][0].name == "1.png" and unmatched == ["Nobody"]


def names_of(found):
    return [[p.name for p in paths] for paths in found]


def test_numbered_files_split_alike_for_names_and_ids(tmp_path):
    # <key>_<n> is image n of <key>, for names as for ids, unless the whole stem is a key.
    index = EntityIndex(NAMES + ["<http://dbpedia.org/resource/Apollo_11>"])
    for folder, stems in (("names", ["Taiwan_0", "Taiwan_12", "Asia", "Apollo_11",
                                     "Apollo_11_2", "Nobody_1", "Asia_x"]),
                          ("ids", ["1_0", "1_12", "3", "5", "5_2"])):
        for stem in stems:
            (tmp_path / folder).mkdir(exist_ok=True)
            (tmp_path / folder / f"{stem}.png").write_bytes(b"")  # matched, never read
    found, unmatched = find_entity_images(tmp_path / "names", index)
    assert names_of(found) == [[], ["Taiwan_0.png", "Taiwan_12.png"], [], ["Asia.png"], [],
                               ["Apollo_11.png", "Apollo_11_2.png"]]
    assert unmatched == ["Asia_x.png", "Nobody_1.png"]
    found, unmatched = find_entity_images(tmp_path / "ids", index)
    assert names_of(found) == [[], ["1_0.png", "1_12.png"], [], ["3.png"], [],
                               ["5.png", "5_2.png"]]
    assert unmatched == []


def test_id_out_of_range_is_a_user_error(tmp_path):
    require_vision()
    save_image(tmp_path / "9_0.png", seed=0)
    with pytest.raises(InputError, match=r"9_0.png: expected an entity id in \[0, 5\)"):
        find_entity_images(tmp_path, EntityIndex(NAMES))


def test_uncached_hub_model_without_the_hub_fails_at_once():
    require_vision()  # feature_models sets HF_HUB_OFFLINE
    with pytest.raises(InputError, match=r"^no-such-org/no-such-model: expected a local "
                                         r"model folder, or a hub model in the local cache"):
        ImageEncoder("no-such-org/no-such-model")


def test_nothing_readable_is_a_user_error(id_layout, encoder):
    only_broken = [[], [], [], [id_layout / "3" / "broken.jpg"], []]
    with pytest.raises(InputError, match="broken.jpg: expected at least one readable"):
        image_features(only_broken, encoder, progress=False)


def test_clip_like_models_give_their_projected_embedding(tmp_path):
    clip = ImageEncoder(save_tiny_clip(tmp_path / "clip"))
    save_image(tmp_path / "a.png", seed=1)
    from PIL import Image

    with Image.open(tmp_path / "a.png") as image:
        assert clip([image.convert("RGB")] * 3).shape == (3, 8)  # projection_dim, not 16
