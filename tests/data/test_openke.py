"""The OpenKE folder reader: the real benchmarks, round trips, the vectorised readers
against the line-by-line ones, and every bad input."""
import dataclasses
import re
import shutil

import numpy as np
import pytest
import torch

import mmkgc_pyg.data.kg as kg_module
import mmkgc_pyg.data.openke as openke
from mmkgc_pyg.data import (CATEGORIES, KGDataset, load_mask_file, load_openke,
                            relation_categories, split_by_category)
from mmkgc_pyg.data.openke import parse_int_rows, read_name_file, read_text, write_openke
from mmkgc_pyg.errors import DataWarning, InputError


def small_kg(num_entities=6, num_relations=3, seed=0, categories=True) -> KGDataset:
    g = torch.Generator().manual_seed(seed)

    def triples(n):
        return torch.stack([torch.randint(num_entities, (n,), generator=g),
                            torch.randint(num_relations, (n,), generator=g),
                            torch.randint(num_entities, (n,), generator=g)], 1)

    train, valid, test = triples(12), triples(3), triples(4)
    cats = split_by_category(test, relation_categories(torch.cat([train, valid, test]),
                                                       num_relations))
    x = torch.randn(num_entities, 5, generator=g)
    mask = torch.tensor([True, False] * (num_entities // 2))
    return KGDataset(
        name="tiny", num_entities=num_entities, num_relations=num_relations,
        train=train, valid=valid, test=test,
        entity_names=[f"<http://x.org/E {i}>" for i in range(num_entities)],
        relation_names=[f"rel{i}" for i in range(num_relations)],
        features={"visual": x * mask[:, None]}, masks={"visual": mask},
        test_categories=cats if categories else {})


def assert_same(a: KGDataset, b: KGDataset):
    assert (a.num_entities, a.num_relations) == (b.num_entities, b.num_relations)
    for split in ("train", "valid", "test"):
        assert torch.equal(getattr(a, split), getattr(b, split))
    assert a.entity_names == b.entity_names and a.relation_names == b.relation_names
    assert a.modalities == b.modalities
    for m in a.modalities:
        assert torch.equal(a.features[m], b.features[m])
        assert torch.equal(a.masks[m], b.masks[m])
    assert a.test_categories.keys() == b.test_categories.keys()
    for c in a.test_categories:
        assert torch.equal(a.test_categories[c], b.test_categories[c])


@pytest.fixture
def folder(tmp_path):
    return write_openke(small_kg(), tmp_path / "tiny")


def as_set(triples):
    return set(map(tuple, triples.tolist()))


# --- the real benchmarks ---------------------------------------------------------

def test_db15k(datasets_dir):
    kg = load_openke(datasets_dir / "DB15K")
    assert kg.name == "DB15K"
    assert (kg.num_entities, kg.num_relations) == (12842, 279)
    assert (len(kg.train), len(kg.valid), len(kg.test)) == (79222, 9904, 9902)
    for triples in (kg.train, kg.valid, kg.test):
        assert triples.dtype == torch.long and triples.min() >= 0
        assert triples[:, [0, 2]].max() < kg.num_entities
        assert triples[:, 1].max() < kg.num_relations
    # File order is head, tail, relation: the first train line is `11208 6404 117`.
    assert kg.train[0].tolist() == [11208, 117, 6404]
    assert kg.entity_names[0] == "<http://dbpedia.org/resource/Anarchism>"
    assert kg.modalities == ["textual"]
    assert kg.features["textual"].shape == (12842, 384)
    assert kg.features["textual"].dtype == torch.float32
    assert bool(kg.masks["textual"].all())
    sizes = {c: len(t) for c, t in kg.test_categories.items()}
    assert sizes == {"1-1": 385, "1-n": 195, "n-1": 3887, "n-n": 5435}


@pytest.mark.parametrize("name", ["DB15K", "MKG-W"])
def test_derived_categories_match_the_benchmark_files(datasets_dir, name):
    # The files were made by OpenKE's n-n.py; relation_categories must agree exactly.
    kg = load_openke(datasets_dir / name)
    derived = split_by_category(kg.test, relation_categories(kg.known_triples(),
                                                             kg.num_relations))
    for c in CATEGORIES:
        assert sorted(kg.test_categories[c].tolist()) == sorted(derived[c].tolist())


def test_mkgw(datasets_dir):
    # Relation 168 is used by one valid line only: reported, and loaded all the same.
    with pytest.warns(DataWarning, match=r"MKG-W/valid2id.txt:3108: relation 168 .* occurs "
                                         r"in no training triple.* \(1 of 4276 lines"):
        kg = load_openke(datasets_dir / "MKG-W")
    assert (kg.num_entities, kg.num_relations) == (15000, 169)
    assert (len(kg.train), len(kg.valid), len(kg.test)) == (34196, 4276, 4274)
    assert kg.modalities == [] and kg.masks == {}
    assert sum(len(t) for t in kg.test_categories.values()) == len(kg.test)


# --- round trips and accepted variants --------------------------------------------

def test_round_trip(folder, blocks):
    original = small_kg()
    assert_same(load_openke(folder), original)


# --- the vectorised readers -----------------------------------------------------------

def line_by_line_rows(text, num_fields):
    """parse_int_rows without its fast path."""
    lines = text.split(b"\n") if text else []
    return np.array([[int(x) for x in line.split()] for line in lines],
                    dtype=np.int64).reshape(len(lines), num_fields)


@pytest.mark.parametrize("text", [
    b"1 2 3", b"0 0 0\n10 200 3000", b"12 0 7\n5 5 5\n999999999999999999 1 2",
    b"1\t2 3\n4  5\t\t6", b"  1 2 3  \n4 5 6\t", b"1\x0b2\x0c3\r\n4 5 6",
    b"007 2 3\n4 05 0",  # leading zeros: read by the line-by-line reader
])
def test_integer_rows_agree_with_the_line_by_line_reading(blocks, text):
    assert np.array_equal(parse_int_rows("f", text, 3, 2, "3 ids"),
                          line_by_line_rows(text, 3))


def test_the_fast_readers_take_the_files_the_library_writes(tmp_path):
    # A file the fast readers gave up on would load (line by line) 10-50x slower.
    kg = small_kg(num_entities=40, num_relations=5)
    folder = write_openke(kg, tmp_path / "kg")
    body = openke._split_count("f", read_text(folder / "train2id.txt"))
    assert np.array_equal(openke._int_rows_fast(body, 3), line_by_line_rows(body, 3))
    for filename in ("entity2id.txt", "relation2id.txt"):
        body = openke._split_count("f", read_text(folder / filename))
        fast = openke._names_fast(body)
        assert fast is not None
        assert fast == openke._names_by_line("f", body.split(b"\n"))


def test_the_fast_name_reader_leaves_other_spacings_to_the_line_by_line_one(tmp_path):
    path = tmp_path / "entity2id.txt"
    lines = ["3", "b  1", " c d\t2", "a 0 "]  # two spaces, a leading space, a trailing one
    path.write_text("\n".join(lines))
    body = openke._split_count(path, read_text(path))
    assert openke._names_fast(body) is None
    assert read_name_file(path) == ["a", "b", "c d"]
    path.write_text("3\nc d\t2\na\t0\nb 1\n")  # shuffled ids, one separator each
    assert openke._names_fast(openke._split_count(path, read_text(path))) == ["a", "b", "c d"]


@pytest.mark.parametrize("name", ["DB15K", "MKG-W"])
def test_the_fast_readers_take_the_real_benchmarks(datasets_dir, name):
    for filename in ("train2id.txt", "valid2id.txt", "test2id.txt"):
        body = openke._split_count("f", read_text(datasets_dir / name / filename))
        assert openke._int_rows_fast(body, 3) is not None, filename
    for filename in ("entity2id.txt", "relation2id.txt"):
        body = openke._split_count("f", read_text(datasets_dir / name / filename))
        assert openke._names_fast(body) is not None, filename


def test_relations_absent_from_training_are_reported_with_file_line_and_id(tmp_path):
    kg = small_kg(categories=False)
    train = kg.train.clone()
    train[:, 1] = train[:, 1] % 2  # relation 2 leaves the training triples
    valid, test = kg.valid.clone(), kg.test.clone()
    valid[:, 1], test[:, 1] = 0, 1
    valid[1, 1] = test[2, 1] = test[3, 1] = 2
    folder = write_openke(dataclasses.replace(kg, train=train, valid=valid, test=test),
                          tmp_path / "untrained")
    with pytest.warns(DataWarning) as caught:
        loaded = load_openke(folder)
    messages = [str(w.message) for w in caught if "no training triple" in str(w.message)]
    assert messages == [
        f"{folder / 'valid2id.txt'}:3: relation 2 ('rel2') occurs in no training triple, so "
        f"its embedding is never trained (1 of 3 lines use relations absent from training, "
        f"1 distinct)",
        f"{folder / 'test2id.txt'}:4: relation 2 ('rel2') occurs in no training triple, so "
        f"its embedding is never trained (2 of 4 lines use relations absent from training, "
        f"1 distinct)"]
    assert torch.equal(loaded.valid, valid)  # reported, not refused


def test_fingerprint_is_hashed_once_per_set_of_splits(folder, monkeypatch):
    kg = load_openke(folder)
    hashes, sha256 = [], kg_module.hashlib.sha256

    def counted_sha256():
        hashes.append(1)
        return sha256()

    monkeypatch.setattr(kg_module.hashlib, "sha256", counted_sha256)
    first = kg.fingerprint()
    assert kg.fingerprint() == first and len(hashes) == 1
    kg.train = kg.train.clone()  # the same triples in another tensor: hashed again, alike
    assert kg.fingerprint() == first and len(hashes) == 2
    fewer = dataclasses.replace(kg, train=kg.train[:-1])
    assert fewer.fingerprint() != first and kg.fingerprint() == first and len(hashes) == 3


def test_categories_are_derived_without_files(folder):
    for c in CATEGORIES:
        (folder / f"{c}.txt").unlink()
    kg = load_openke(folder)
    expected = split_by_category(kg.test, relation_categories(kg.known_triples(),
                                                              kg.num_relations))
    for c in CATEGORIES:
        assert torch.equal(kg.test_categories[c], expected[c])


def test_crlf_trailing_blank_lines_spaces_and_shuffled_ids(folder):
    lines = (folder / "entity2id.txt").read_text().splitlines()
    # Space-separated, shuffled, CRLF, trailing blank lines: same mapping.
    body = [line.replace("\t", "   ") for line in lines[1:]][::-1]
    (folder / "entity2id.txt").write_bytes(
        ("\r\n".join([lines[0]] + body) + "\r\n\r\n  \n").encode())
    text = (folder / "train2id.txt").read_text()
    (folder / "train2id.txt").write_text(text.replace(" ", "\t").rstrip("\n"))
    assert_same(load_openke(folder), small_kg())


def test_empty_splits_are_allowed(folder):
    (folder / "valid2id.txt").write_text("0\n")
    (folder / "test2id.txt").write_text("0")
    for c in CATEGORIES:
        (folder / f"{c}.txt").write_text("0\n")
    kg = load_openke(folder)
    assert kg.valid.shape == (0, 3) and kg.test.shape == (0, 3)
    assert len(kg.train) == 12


def test_feature_argument_adds_and_overrides(folder, tmp_path):
    other = torch.arange(12.0).view(6, 2) + 1
    torch.save(other, tmp_path / "t.pt")
    kg = load_openke(folder, features={"textual": tmp_path / "t.pt"})
    assert kg.modalities == ["textual", "visual"]
    assert torch.equal(kg.features["textual"], other)
    kg = load_openke(folder, features={"visual": tmp_path / "t.pt"})
    assert torch.equal(kg.features["visual"], other) and bool(kg.masks["visual"].all())


def test_mask_files(folder, tmp_path):
    (tmp_path / "missing.txt").write_text("0\n\n2\n")
    kg = load_openke(folder, mask_files={"visual": tmp_path / "missing.txt"})
    # small_kg has visual on even ids; the mask file removes 0 and 2.
    assert kg.masks["visual"].tolist() == [False, False, False, False, True, False]
    assert bool((kg.features["visual"][:4] == 0).all())
    torch.save(torch.tensor([1, 1, 1, 1, 0, 0]), tmp_path / "present.pt")
    kg = load_openke(folder, mask_files={"visual": tmp_path / "present.pt"})
    assert kg.masks["visual"].tolist() == [True, False, True, False, False, False]


# --- bad input: one-line errors naming the file and line ----------------------------

def edit_line(path, lineno, text):
    lines = path.read_text().split("\n")
    lines[lineno - 1] = text
    path.write_text("\n".join(lines))


BAD_EDITS = [
    # (file, line, new text or None to delete the line, expected message part)
    ("train2id.txt", 1, "twelve", "number of lines"),
    ("train2id.txt", 1, "13", "expected 13 lines"),
    ("train2id.txt", 1, "11", "expected 11 lines"),
    ("train2id.txt", 3, "1 2", "got 2 fields"),
    ("train2id.txt", 4, "1 2 0 0", "got 4 fields"),
    ("train2id.txt", 5, "1 x 0", "non-negative integers"),
    ("train2id.txt", 5, "1 -2 0", "non-negative integers"),
    ("train2id.txt", 5, "1 2.0 0", "non-negative integers"),
    ("train2id.txt", 6, "1 6 0", "entity ids in [0, 6)"),
    ("train2id.txt", 6, "1 2 3", "relation id in [0, 3)"),
    ("train2id.txt", 6, "1 2 99999999999999999999999", "non-negative integers"),
    ("valid2id.txt", 2, "", "got 0 fields"),
    ("entity2id.txt", 1, "", "number of lines"),
    ("entity2id.txt", 3, "<x>\t6", "id in [0, 6)"),
    ("entity2id.txt", 3, "<x>\t0", "each id once"),
    ("entity2id.txt", 4, "<nameonly>", "`name id`"),
    ("entity2id.txt", 4, "\t3", "`name id`"),
    ("relation2id.txt", 2, "rel0 zero", "`name id`"),
    ("n-n.txt", 1, "1000", "expected 1000 lines"),
]


@pytest.fixture(params=["one block", "blocks of 8 bytes"])
def blocks(request, monkeypatch):
    """The fast integer parser reads whole files at once, or in blocks of a few lines (as
    it reads large files): both must find the same rows and the same first bad line."""
    if request.param != "one block":
        monkeypatch.setattr(openke, "_BLOCK", 8)


@pytest.mark.parametrize("filename, lineno, text, message", BAD_EDITS)
def test_bad_line(folder, blocks, filename, lineno, text, message):
    path = folder / filename
    edit_line(path, lineno, text)
    with pytest.raises(InputError) as info:
        load_openke(folder)
    msg = str(info.value)
    assert "\n" not in msg and message in msg
    assert re.match(rf"{re.escape(str(path))}:\d+: expected ", msg)


@pytest.mark.parametrize("filename, expected_line", [("train2id.txt", 13), ("entity2id.txt", 7)])
def test_missing_lines_point_past_the_end(folder, filename, expected_line):
    path = folder / filename
    path.write_text("\n".join(path.read_text().split("\n")[:-2]))  # drop the last line
    with pytest.raises(InputError, match=rf"{re.escape(str(path))}:{expected_line}: "):
        load_openke(folder)


def test_garbage_bytes_and_bad_utf8(folder):
    path = folder / "train2id.txt"
    data = path.read_bytes().split(b"\n")
    data[2] = b"1 \xff\x00 2"
    path.write_bytes(b"\n".join(data))
    with pytest.raises(InputError, match=rf"{re.escape(str(path))}:3: "):
        load_openke(folder)
    path = folder / "entity2id.txt"
    data = path.read_bytes().split(b"\n")
    data[4] = b"<caf\xe9>\t3"  # latin-1, not UTF-8
    path.write_bytes(b"\n".join(data))
    with pytest.raises(InputError, match=rf"{re.escape(str(path))}:5: expected UTF-8"):
        load_openke(folder)


def test_empty_file(folder):
    (folder / "test2id.txt").write_bytes(b"")
    with pytest.raises(InputError, match=r"test2id.txt:1: .*empty file"):
        load_openke(folder)


@pytest.mark.parametrize("filename", ["entity2id.txt", "train2id.txt", "valid2id.txt"])
def test_missing_file(folder, filename):
    (folder / filename).unlink()
    with pytest.raises(InputError, match=rf"{re.escape(str(folder / filename))}: "
                                             r"expected an existing file"):
        load_openke(folder)


def test_unreadable_file(folder):
    (folder / "test2id.txt").unlink()
    (folder / "test2id.txt").mkdir()
    with pytest.raises(InputError, match="test2id.txt: expected a readable file"):
        load_openke(folder)


def test_missing_folder(tmp_path):
    with pytest.raises(InputError, match="expected a dataset folder"):
        load_openke(tmp_path / "nope")


def test_partial_category_files(folder):
    (folder / "1-n.txt").unlink()
    with pytest.raises(InputError, match=r"1-n.txt: expected all four category files"):
        load_openke(folder)


def test_bad_feature_file_names_the_file(folder):
    torch.save(torch.zeros(5, 3), folder / "tiny-textual.pth")  # 5 rows, 6 entities
    with pytest.raises(InputError, match=r"tiny-textual.pth: expected 6 rows"):
        load_openke(folder)


def test_bad_mask_files(folder, tmp_path):
    (tmp_path / "m.txt").write_text("1\n6\n")
    with pytest.raises(InputError, match=r"m.txt:2: expected an entity id in \[0, 6\)"):
        load_openke(folder, mask_files={"visual": tmp_path / "m.txt"})
    (tmp_path / "m.txt").write_text("1\nfive\n")
    with pytest.raises(InputError, match=r"m.txt:2: expected one entity id"):
        load_openke(folder, mask_files={"visual": tmp_path / "m.txt"})
    with pytest.raises(InputError, match=r"expected a mask for one of the modalities"):
        load_openke(folder, mask_files={"audio": tmp_path / "m.txt"})
    torch.save(torch.tensor([0, 1, 2, 0, 1, 0]), tmp_path / "m.pt")
    with pytest.raises(InputError, match=r"m.pt: expected a bool or 0/1 mask"):
        load_mask_file(tmp_path / "m.pt", 6)
    with pytest.raises(InputError, match=r"m.pt: expected a mask of shape \[7\]"):
        load_mask_file(tmp_path / "m.pt", 7)


def test_write_rejects_names_that_cannot_round_trip(tmp_path):
    kg = small_kg()
    kg.entity_names[2] = "ends with space "
    with pytest.raises(ValueError, match="entity2id.txt"):
        write_openke(kg, tmp_path / "out")


def test_feature_files_are_discovered_by_dataset_name(tmp_path):
    folder = write_openke(small_kg(), tmp_path / "elsewhere")  # elsewhere-visual.pth
    assert load_openke(folder).modalities == ["visual"]  # NAME is the folder's name
    assert load_openke(folder, name="tiny").modalities == []
    shutil.copy(folder / "elsewhere-visual.pth", folder / "elsewhere-visual.npy")
    with pytest.raises(InputError, match="expected one feature file for modality"):
        load_openke(folder)


def test_errors_never_show_a_line_of_a_file_linked_from_outside(tmp_path):
    """A triple file that links outside the dataset folder (e.g. to a secret) is named,
    its content is not: the error shows no line of it."""
    folder = write_openke(small_kg(), tmp_path / "tiny")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:the first line\n")
    (folder / "train2id.txt").unlink()
    (folder / "train2id.txt").symlink_to(secret)
    with pytest.raises(InputError) as info:
        load_openke(folder)
    assert "train2id.txt" in str(info.value) and "root:x" not in str(info.value)
    assert "outside the folder (not shown)" in str(info.value)
