"""KGDataset (PyG view, modality dropping, relation categories) and the PyG
InMemoryDataset benchmarks, offline."""
import shutil
import socket
import urllib.error
from pathlib import Path

import pytest
import torch

import mmkgc_pyg.data.datasets as datasets_module
from mmkgc_pyg.data import (DB15K, MKGW, CATEGORIES, KGDataset, SyntheticGraph, load_openke,
                            make_synthetic_kg, relation_categories, relation_tph_hpt,
                            triples_from_data)
from mmkgc_pyg.data.openke import CATEGORY_FILES, write_openke
from mmkgc_pyg.errors import InputError

SMALL = dict(num_entities=200, num_relations=6, num_clusters=10, domain_size=4,
             num_train=1500, num_valid=100, num_test=100)


@pytest.fixture(scope="module")
def kg():
    return make_synthetic_kg(SyntheticGraph(**SMALL))


def full_modalities(kg: KGDataset) -> KGDataset:
    # Every entity has every modality (so dropped entities are easy to count).
    masks = {m: torch.ones(kg.num_entities, dtype=torch.bool) for m in kg.modalities}
    features = {m: torch.randn(kg.num_entities, x.size(1)) for m, x in kg.features.items()}
    return KGDataset(**{**kg.__dict__, "features": features, "masks": masks})


# --- KGDataset ---------------------------------------------------------------------

@pytest.mark.parametrize("split", ["train", "valid", "val", "test"])
def test_split_data(kg, split):
    data = kg.to_data(split)
    triples = getattr(kg, "valid" if split == "val" else split)
    assert data.num_nodes == kg.num_entities and data.num_relations == kg.num_relations
    assert data.edge_index.shape == (2, len(triples)) and data.edge_type.dtype == torch.long
    assert torch.equal(data.edge_index[0], triples[:, 0])
    assert torch.equal(data.edge_index[1], triples[:, 2])
    assert torch.equal(triples_from_data(data), triples)
    assert data.modalities == ["textual", "visual"]
    for m in data.modalities:
        assert torch.equal(data[f"x_{m}"], kg.features[m])
        assert torch.equal(data[f"mask_{m}"], kg.masks[m])
    data.validate(raise_on_error=True)


def assert_same_graph(a: KGDataset, b: KGDataset):
    assert (a.name, a.num_entities, a.num_relations) == (b.name, b.num_entities, b.num_relations)
    for split in ("train", "valid", "test"):
        assert torch.equal(getattr(a, split), getattr(b, split))
    assert a.entity_names == b.entity_names and a.relation_names == b.relation_names
    assert a.modalities == b.modalities
    for m in a.modalities:
        assert torch.equal(a.features[m], b.features[m]) and torch.equal(a.masks[m], b.masks[m])
    assert a.test_categories.keys() == b.test_categories.keys()
    for c in a.test_categories:
        assert torch.equal(a.test_categories[c], b.test_categories[c])


def test_whole_graph_data_round_trips(kg):
    data = kg.to_data()
    assert data.edge_index.size(1) == len(kg.train) + len(kg.valid) + len(kg.test)
    assert int(data.train_mask.sum()) == len(kg.train) and int(data.val_mask.sum()) == len(kg.valid)
    assert bool((data.test_category[~data.test_mask] == -1).all())
    data.validate(raise_on_error=True)
    assert_same_graph(KGDataset.from_data(data), kg)
    assert_same_graph(KGDataset.from_data(KGDataset.from_data(data).to_data()), kg)


def test_from_split_data_as_pyg_fb15k(kg):
    """Three Data of one split each (PyG's FB15k_237 style), without names: the triples,
    features and masks come back, entities are named by id."""
    train, val, test = (kg.to_data(s) for s in ("train", "val", "test"))
    for d in (train, val, test):
        del d.entity_names, d.relation_names, d.name
    back = KGDataset.from_data(train, val, test)
    for split in ("train", "valid", "test"):
        assert torch.equal(getattr(back, split), getattr(kg, split))
    assert back.entity_names[:3] == ["0", "1", "2"] and back.modalities == kg.modalities
    with pytest.raises(ValueError, match="val_data and test_data"):
        KGDataset.from_data(train, val)
    with pytest.raises(ValueError, match="train_mask"):
        KGDataset.from_data(train)


def test_to_data_rejects_unknown_split(kg):
    with pytest.raises(ValueError, match="split='dev'"):
        kg.to_data("dev")


def test_known_triples(kg):
    assert torch.equal(kg.known_triples(), torch.cat([kg.train, kg.valid, kg.test]))


def test_validation_of_hand_built_datasets(kg):
    with pytest.raises(ValueError, match="train: expected a LongTensor"):
        KGDataset(**{**kg.__dict__, "train": kg.train.float()})
    with pytest.raises(ValueError, match="name different modalities"):
        KGDataset(**{**kg.__dict__, "masks": {}})
    with pytest.raises(ValueError, match=r"features\['visual'\]"):
        KGDataset(**{**kg.__dict__, "features": {**kg.features,
                                                 "visual": kg.features["visual"][:5]}})


def test_relation_categories_by_hand():
    # r0: 1-1; r1: one head, three tails (1-n); r2: three heads, one tail (n-1);
    # r3: 2 x 2 complete (n-n); r4: no triples.
    triples = torch.tensor([[0, 0, 1], [2, 0, 3],
                            [0, 1, 1], [0, 1, 2], [0, 1, 3],
                            [1, 2, 0], [2, 2, 0], [3, 2, 0],
                            [0, 3, 2], [0, 3, 3], [1, 3, 2], [1, 3, 3]])
    tph, hpt = relation_tph_hpt(triples, 5)
    assert tph.tolist() == [1, 3, 1, 2, 0] and hpt.tolist() == [1, 1, 3, 2, 0]
    cats = [CATEGORIES[i] for i in relation_categories(triples, 5)]
    assert cats == ["1-1", "1-n", "n-1", "n-n", "1-1"]
    # Duplicates count (as in OpenKE's n-n.py): r0 twice more makes tph 2.
    dup = torch.cat([triples, torch.tensor([[0, 0, 1], [0, 0, 1]])])
    assert relation_tph_hpt(dup, 5)[0][0] == pytest.approx(4 / 2)


# --- PyG InMemoryDatasets, offline ---------------------------------------------------

@pytest.fixture
def db15k_root(datasets_dir, tmp_path):
    raw = tmp_path / "DB15K" / "raw"
    shutil.copytree(datasets_dir / "DB15K", raw)
    return tmp_path / "DB15K"


def test_db15k_is_one_graph_and_split_views(db15k_root):
    dataset = DB15K(str(db15k_root))
    data = dataset[0]
    assert len(dataset) == 1 and data.num_nodes == 12842 and data.num_relations == 279
    assert [int(data[m].sum()) for m in ("train_mask", "val_mask", "test_mask")] == \
        [79222, 9904, 9902]
    assert data.modalities == ["textual"] and data.x_textual.shape == (12842, 384)
    expected = load_openke(db15k_root / "raw", name="DB15K")
    assert_same_graph(KGDataset.from_data(data), expected)
    for split, name in (("train", "train"), ("val", "valid"), ("test", "test")):
        view = DB15K(str(db15k_root), split=split)[0]
        assert torch.equal(triples_from_data(view), getattr(expected, name))
    assert len(list((db15k_root / "processed").glob("graph-*.pt"))) == 1  # one stored copy


def test_processed_file_is_reused_until_features_change(tmp_path, kg, monkeypatch):
    write_openke(kg, tmp_path / "raw", features=False)
    first = MKGW(str(tmp_path), split="valid")
    assert torch.equal(triples_from_data(first[0]), kg.valid)
    assert first[0].modalities == []
    processed = sorted((tmp_path / "processed").glob("graph-*.pt"))

    def fail(*args, **kwargs):
        raise AssertionError("processed again")

    with monkeypatch.context() as patch:
        patch.setattr(datasets_module, "load_openke", fail)
        assert torch.equal(triples_from_data(MKGW(str(tmp_path), split="test")[0]), kg.test)
    # A new feature file is a different processed graph, not the stale one.
    torch.save(kg.features["visual"], tmp_path / "raw" / "MKG-W-visual.pth")
    assert MKGW(str(tmp_path))[0].modalities == ["visual"]
    assert len(sorted((tmp_path / "processed").glob("graph-*.pt"))) == len(processed) + 1


def test_features_argument_and_pre_transform(tmp_path, kg):
    write_openke(kg, tmp_path / "raw", features=False)
    torch.save(kg.features["visual"], tmp_path / "v.pt")

    def tag(data):
        data.tagged = True
        return data

    dataset = MKGW(str(tmp_path), features={"visual": str(tmp_path / "v.pt")},
                   pre_transform=tag)
    data = dataset[0]
    assert data.modalities == ["visual"] and data.tagged
    assert torch.equal(data.mask_visual, kg.masks["visual"])


def test_download_uses_the_reference_repository(tmp_path, kg, monkeypatch):
    source = write_openke(kg, tmp_path / "source", features=False)
    urls = []

    def fake_fetch(url, folder):
        # A local stand-in for the network: the URL's file name from ``source``.
        urls.append(url)
        target = Path(folder) / url.rsplit("/", 1)[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / target.name, target)
        return str(target)

    monkeypatch.setattr(datasets_module, "fetch", fake_fetch)
    dataset = DB15K(str(tmp_path / "root"), split="train")
    assert torch.equal(triples_from_data(dataset[0]), kg.train)
    assert dataset.split == "train"
    base = "https://raw.githubusercontent.com/zjukg/AdaMF-MAT/main/benchmarks/DB15K/"
    assert sorted(urls) == sorted(base + f for f in [*dataset.raw_file_names, *CATEGORY_FILES])
    assert "train2id.txt" in dataset.raw_file_names and "n-n.txt" not in dataset.raw_file_names


def unreachable(url, folder):
    # What download_url raises offline, after creating the file it was to write.
    (Path(folder) / url.rsplit("/", 1)[1]).write_bytes(b"")
    raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))


def test_offline_download_says_what_to_copy_where_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets_module, "fetch", unreachable)
    root = tmp_path / "data" / "MKG-W"
    with pytest.raises(InputError) as exc:
        MKGW(str(root))
    message = str(exc.value)
    assert "\n" not in message and message.startswith(f"{root / 'raw'}: expected the MKG-W files "
                                                      "entity2id.txt, relation2id.txt, ")
    assert "test2id.txt there" in message and "Name or service not known" in message
    assert "benchmarks/MKG-W/ of github.com/zjukg/AdaMF-MAT" in message
    assert not (tmp_path / "data").exists()  # no empty raw/ (nor root) left behind
    # A folder the user began to fill keeps its files; only the missing ones are named.
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "entity2id.txt").write_text("1\ne0\t0\n")
    with pytest.raises(InputError, match=r"files relation2id.txt, train2id.txt, valid2id.txt, "
                                         r"test2id.txt there"):
        MKGW(str(root))
    assert [p.name for p in (root / "raw").iterdir()] == ["entity2id.txt"]


def test_category_files_are_optional_offline(tmp_path, kg, monkeypatch):
    folder = write_openke(kg, tmp_path / "raw", features=False)
    for name in CATEGORY_FILES:
        (folder / name).unlink()
    monkeypatch.setattr(datasets_module, "fetch", unreachable)
    data = MKGW(str(tmp_path))[0]
    assert torch.equal(triples_from_data(data), torch.cat([kg.train, kg.valid, kg.test]))
    assert int((data.test_category >= 0).sum()) == len(kg.test)  # computed from the triples


def test_modality_widths_and_num_features(tmp_path, kg):
    write_openke(kg, tmp_path / "raw", features=False)
    torch.save(kg.features["visual"], tmp_path / "raw" / "MKG-W-visual.pth")
    torch.save(kg.features["textual"][:, :5], tmp_path / "raw" / "MKG-W-textual.pth")
    dataset = MKGW(str(tmp_path))
    assert dataset.num_modality_features == {"textual": 5,
                                             "visual": kg.features["visual"].size(1)}
    assert MKGW(str(tmp_path), split="test").num_modality_features == \
        dataset.num_modality_features
    assert dataset.num_features == 0  # PyG's: the width of x, which these graphs lack


class Planted:
    """Unpickled, it creates a file: what a planted processed file could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.parametrize("planted", ["graph", "pre_transform"])
def test_planted_processed_files_are_refused_not_run(tmp_path, kg, planted):
    write_openke(kg, tmp_path / "raw", features=False)
    MKGW(str(tmp_path))
    processed = tmp_path / "processed"
    target = (next(processed.glob("graph-*.pt")) if planted == "graph"
              else processed / "pre_transform.pt")
    marker = tmp_path / "ran"
    torch.save(Planted(marker), target)
    with pytest.raises(InputError) as exc:
        MKGW(str(tmp_path))
    assert not marker.exists()
    message = str(exc.value)
    assert "\n" not in message and message.startswith(f"{target}: expected a file processed by")
    assert "names io.open, outside the allow-list" in message
    assert message.endswith(f"delete the folder {processed} to reprocess")
    shutil.rmtree(processed)  # as the message says: processed again, and read
    assert torch.equal(triples_from_data(MKGW(str(tmp_path), split="test")[0]), kg.test)


def test_a_processed_file_of_another_kind_is_refused(tmp_path, kg):
    write_openke(kg, tmp_path / "raw", features=False)
    MKGW(str(tmp_path))
    target = next((tmp_path / "processed").glob("graph-*.pt"))
    torch.save({"edge_index": torch.zeros(2, 3)}, target)
    with pytest.raises(InputError, match=r"graph-\w+\.pt: expected a file processed by "
                                         r"mmkgc-pyg's MKG-W, got a dict; delete the folder"):
        MKGW(str(tmp_path))


def test_bad_split(tmp_path):
    with pytest.raises(ValueError, match="split='all'"):
        MKGW(str(tmp_path), split="all")
