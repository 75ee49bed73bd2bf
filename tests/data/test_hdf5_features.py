"""HDF5 feature files of the MMRNS layout, on a synthesized file of that layout."""
import argparse
import sys

import numpy as np
import pytest
import torch

from mmkgc_pyg.cli.common import load_dataset
from mmkgc_pyg.data import load_openke
from mmkgc_pyg.data.entity_names import EntityIndex
from mmkgc_pyg.data.features import load_features
from mmkgc_pyg.data.hdf5_features import read_hdf5_features
from mmkgc_pyg.errors import InputError
from mmkgc_pyg.errors import MissingExtraError

h5py = pytest.importorskip("h5py", reason="the [hdf5] extra (h5py) is not installed")

NAMES = ["<http://dbpedia.org/resource/Andy_Griffith>",
         "<http://dbpedia.org/resource/AC/DC>",
         "<http://dbpedia.org/resource/Taiwan>",
         "<http://dbpedia.org/resource/Prison>"]


@pytest.fixture
def dataset(tmp_path):
    """A four-entity OpenKE folder with the mmkb SameAs link file of DB15K's form."""
    folder = tmp_path / "TOY"
    folder.mkdir()
    (folder / "entity2id.txt").write_text(
        f"{len(NAMES)}\n" + "".join(f"{n}\t{i}\n" for i, n in enumerate(NAMES)))
    (folder / "relation2id.txt").write_text("1\nr\t0\n")
    for split in ("train2id.txt", "valid2id.txt", "test2id.txt"):
        (folder / split).write_text("2\n0 1 0\n2 3 0\n")
    (folder / "DB15K_SameAsLink.txt").write_text(
        "/m/0d1w9 <SameAs> <http://dbpedia.org/resource/Prison> .\n"
        "/m/06f32 <SameAs> <http://dbpedia.org/resource/Taiwan> .\n")
    return folder


def write_h5(path, items):
    with h5py.File(path, "w") as f:
        for key, value in items.items():
            f[key] = value


def test_text_layout_mean_pools_sentences_and_masks_missing(dataset, capsys):
    rng = np.random.default_rng(0)
    sentences = rng.standard_normal((3, 8)).astype(np.float32)
    one = rng.standard_normal(8).astype(np.float32)
    path = dataset / "text.h5"
    write_h5(path, {"Andy_Griffith": sentences, "AC/DC": one,   # a key inside a group
                    "Elsewhere": np.ones((2, 8), np.float32)})
    data = load_openke(dataset, features={"textual": str(path)})

    x, mask = data.features["textual"], data.masks["textual"]
    torch.testing.assert_close(x[0], torch.from_numpy(sentences.mean(0)))
    torch.testing.assert_close(x[1], torch.from_numpy(one))
    assert mask.tolist() == [True, True, False, False]
    assert x[2:].abs().sum() == 0
    err = capsys.readouterr().err
    assert f"{path}: 2 of 3 keys matched an entity; 2 of 4 entities have features" in err


def test_image_layout_maps_mids_through_the_link_file_and_drops_padding(dataset):
    rng = np.random.default_rng(1)
    images = np.zeros((24, 5), np.float32)  # 24 slots, 2 real images, zero padding
    images[:2] = rng.standard_normal((2, 5))
    only_padding = np.zeros((24, 5), np.float32)
    path = dataset / "TOY-visual.h5"  # found in the folder like a .pth feature file
    write_h5(path, {"m.0d1w9": images, "m.06f32": only_padding, "m.unknown": images})
    data = load_openke(dataset)

    x, mask = data.features["visual"], data.masks["visual"]
    torch.testing.assert_close(x[3], torch.from_numpy(images[:2].mean(0)))
    assert mask.tolist() == [False, False, False, True]  # padding only counts as missing

    without_links = EntityIndex(NAMES)
    with pytest.raises(InputError, match=r"none of its 3 keys .* need a link file"):
        read_hdf5_features(path, without_links)


def test_feature_flag_reads_hdf5(dataset, capsys):
    path = dataset / "features.hdf5"
    write_h5(path, {"Taiwan": np.full((4,), 2.0, np.float32)})
    args = argparse.Namespace(dataset=str(dataset), feature=[f"visual={path}"], mask=None)
    data = load_dataset(args)
    assert data.masks["visual"].tolist() == [False, False, True, False]
    assert data.features["visual"][2].tolist() == [2.0] * 4
    assert "1 of 1 keys matched" in capsys.readouterr().err


@pytest.mark.parametrize("items, message", [
    ({"Taiwan": np.ones((2, 3)), "Prison": np.ones((2, 4))},
     # HDF5 lists keys in name order
     r"key 'Taiwan': expected vectors of size 4 like the keys before it, got 3"),
    ({"Taiwan": np.array([b"text"])}, r"key 'Taiwan': expected numbers of shape"),
])
def test_inconsistent_keys_are_user_errors(dataset, items, message):
    path = dataset / "bad.h5"
    write_h5(path, items)
    with pytest.raises(InputError, match=message):
        read_hdf5_features(path, EntityIndex(NAMES))


def test_not_hdf5_is_a_user_error(dataset):
    path = dataset / "fake.h5"
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(InputError, match=r"fake.h5: expected an HDF5 file readable"):
        load_features(path, len(NAMES), EntityIndex(NAMES))


def test_missing_h5py_names_the_extra(dataset, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # import raises ImportError
    with pytest.raises(MissingExtraError) as exc:
        load_openke(dataset, features={"visual": str(dataset / "x.h5")})
    assert str(exc.value) == ('reading HDF5 feature files needs the [hdf5] extra: '
                              'pip install "mmkgc-pyg[hdf5]"')
    assert isinstance(exc.value, ImportError)
