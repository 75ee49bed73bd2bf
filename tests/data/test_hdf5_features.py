"""HDF5 feature files of the MMRNS layout, on a synthesized file of that layout."""
import argparse
import logging
import sys
import tracemalloc

import numpy as np
import pytest
import torch

from utils import write_toy_openke
from mmkgc_pyg.cli.common import configure_logging, load_dataset
from mmkgc_pyg.data import hdf5_features, load_openke
from mmkgc_pyg.data.entity_names import EntityIndex
from mmkgc_pyg.data.features import load_features
from mmkgc_pyg.data.hdf5_features import read_hdf5_features
from mmkgc_pyg.errors import InputError, MissingExtraError

h5py = pytest.importorskip("h5py", reason="the [hdf5] extra (h5py) is not installed")

NAMES = ["<http://dbpedia.org/resource/Andy_Griffith>",
         "<http://dbpedia.org/resource/AC/DC>",
         "<http://dbpedia.org/resource/Taiwan>",
         "<http://dbpedia.org/resource/Prison>"]


@pytest.fixture
def dataset(tmp_path):
    """A four-entity OpenKE folder with the mmkb SameAs link file of DB15K's form."""
    folder = write_toy_openke(tmp_path / "TOY", NAMES, "0 1 0\n2 3 0")
    (folder / "DB15K_SameAsLink.txt").write_text(
        "/m/0d1w9 <SameAs> <http://dbpedia.org/resource/Prison> .\n"
        "/m/06f32 <SameAs> <http://dbpedia.org/resource/Taiwan> .\n")
    return folder


def write_h5(path, items):
    with h5py.File(path, "w") as f:
        for key, value in items.items():
            f[key] = value


def test_text_layout_mean_pools_sentences_and_masks_missing(dataset, caplog):
    caplog.set_level(logging.INFO, logger="mmkgc_pyg")
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
    assert caplog.messages == [f"{path}: 2 of 3 keys matched an entity; 2 of 4 entities "
                               "have features"]


def test_image_layout_maps_mids_through_the_link_file_and_drops_padding(dataset):
    rng = np.random.default_rng(1)
    images = np.zeros((24, 5), np.float32)  # 24 slots, 2 real images, zero padding
    images[:2] = rng.standard_normal((2, 5))
    images[5] = np.nan  # an all-NaN vector pads too
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


def test_feature_flag_reads_hdf5_and_the_tools_show_the_summary(dataset, capsys):
    path = dataset / "features.hdf5"
    write_h5(path, {"Taiwan": np.full((4,), 2.0, np.float32)})
    args = argparse.Namespace(dataset=str(dataset), feature=[f"visual={path}"], mask=None)
    configure_logging()  # as every command-line tool does
    data = load_dataset(args)
    assert data.masks["visual"].tolist() == [False, False, True, False]
    assert data.features["visual"][2].tolist() == [2.0] * 4
    assert capsys.readouterr().err == (f"{path}: 1 of 1 keys matched an entity; 1 of 4 "
                                       "entities have features\n")
    configure_logging(quiet=True)
    load_dataset(args)
    configure_logging()
    assert capsys.readouterr().err == ""


def test_blocks_pool_like_one_read(dataset, monkeypatch):
    # An entity's vectors may come from several keys (its name and its mid) and blocks.
    rng = np.random.default_rng(2)
    items = {"Andy_Griffith": rng.standard_normal((3, 4)), "AC/DC": rng.standard_normal(4),
             "Prison": rng.standard_normal((2, 4)), "m.0d1w9": rng.standard_normal((5, 4)),
             "Taiwan": np.zeros((6, 4))}
    path = dataset / "blocks.h5"
    write_h5(path, items)
    index = EntityIndex(NAMES, [dataset / "DB15K_SameAsLink.txt"])
    one_read = read_hdf5_features(path, index)
    monkeypatch.setattr(hdf5_features, "READ_BLOCK", 8)  # two vectors of 4 per block
    blocks = read_hdf5_features(path, index)
    prison = np.concatenate([items["Prison"], items["m.0d1w9"]]).mean(0)
    expected = np.stack([items["Andy_Griffith"].mean(0), items["AC/DC"], np.zeros(4), prison])
    for read in (one_read, blocks):
        torch.testing.assert_close(read.x, torch.from_numpy(expected).float())
        assert (read.matched, read.unmatched) == (5, 0)


def test_integer_keys_are_entity_ids(dataset):
    path = dataset / "ids.h5"
    write_h5(path, {"0": np.ones(3), "3": np.full((2, 3), 2.0)})
    x = read_hdf5_features(path, EntityIndex(NAMES)).x
    assert x.tolist() == [[1.0] * 3, [0.0] * 3, [0.0] * 3, [2.0] * 3]
    write_h5(path, {"0": np.ones(3), "7": np.ones(3)})
    with pytest.raises(InputError, match=r"ids.h5: key '7': expected an entity id in "
                                         r"\[0, 4\), got 7"):
        read_hdf5_features(path, EntityIndex(NAMES))


@pytest.mark.parametrize("shape", [(200_000, 20_000), (4, 1 << 20), (1 << 31,)])
def test_huge_declared_datasets_are_refused_before_reading(dataset, shape):
    path = dataset / "huge.h5"
    with h5py.File(path, "w") as f:  # declared, never written: the file stays small
        f.create_dataset("Taiwan", shape=shape, dtype="float32", chunks=(1,) * len(shape))
        f["Prison"] = np.ones(8, np.float32)
    assert path.stat().st_size < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as exc:
            read_hdf5_features(path, EntityIndex(NAMES))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(exc.value) == (f"{path}: key 'Taiwan': expected one entity's vectors, at "
                              "most 1024 of at most 16384 numbers, got a dataset of shape "
                              f"{list(shape)} (not read)")
    assert peak < 2**20


@pytest.mark.parametrize("vector, message", [
    ([1.0, float("nan"), 2.0], "NaN mixed with numbers in vector 1"),
    ([-float("inf")] * 3, "only -inf in vector 1"),
    ([1.0, float("inf"), -float("inf")], "inf/-inf mixed with numbers in vector 1"),
    ([1e39, 1.0, 1.0], "values beyond float32's range in vector 1"),
])
def test_unusable_values_name_the_key(dataset, vector, message):
    path = dataset / "bad.h5"
    write_h5(path, {"Andy_Griffith": np.ones((2, 3)),
                    "Taiwan": np.array([[0.0] * 3, vector, [1.0] * 3])})
    with pytest.raises(InputError) as exc:
        read_hdf5_features(path, EntityIndex(NAMES))
    assert str(exc.value) == (f"{path}: key 'Taiwan': expected finite vectors within "
                              "float32's range, or all-zero or all-NaN ones as padding, got "
                              + message)


@pytest.mark.parametrize("items, message", [
    ({"Taiwan": np.ones((2, 3)), "Prison": np.ones((2, 4))},
     # HDF5 lists keys in name order
     r"key 'Taiwan': expected vectors of size 4 like the keys before it, got 3"),
    ({"Taiwan": np.array([b"text"])}, r"key 'Taiwan': expected numbers of shape"),
    ({"Taiwan": np.float32(1.0)}, r"key 'Taiwan': expected numbers of shape .* float32 \[\]"),
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
