"""Folders of labelled triples: ids from sorted names, the OpenKE files written beside them
(never over other files), one-line errors naming file and line, and the dispatcher that
reads either layout."""
import errno
import random
import warnings

import pytest
import torch

from utils import random_kg
from mmkgc_pyg import pipeline
from mmkgc_pyg.data import load_dataset_folder, load_labelled, load_openke, write_openke
from mmkgc_pyg.data import labelled
from mmkgc_pyg.errors import DataWarning, InputError
from mmkgc_pyg.training.setup import DatasetSpec

ID_FILES = ("entity2id.txt", "relation2id.txt", "train2id.txt", "valid2id.txt", "test2id.txt")


def name_triples(kg, split):
    return [(kg.entity_names[h], kg.relation_names[r], kg.entity_names[t])
            for h, r, t in getattr(kg, split).tolist()]


def write_labelled(folder, kg, shuffle_seed=None):
    """``kg`` as train.txt/valid.txt/test.txt of names (lines shuffled when asked)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        lines = ["\t".join(t) for t in name_triples(kg, split)]
        if shuffle_seed is not None:
            random.Random(shuffle_seed).shuffle(lines)
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def named_kg():
    """A random graph whose names are not in id order, with a space in one relation."""
    kg = random_kg(num_entities=20, num_relations=3, num_train=60, num_eval=8,
                   modalities=(("visual", 3),))
    kg.entity_names = [f"ent {19 - i:02d}" for i in range(20)]
    kg.relation_names = ["zeta", "alpha of", "mid"]
    return kg


def as_name_sets(dataset):
    return {split: sorted(name_triples(dataset, split)) for split in ("train", "valid", "test")}


def test_ids_come_from_sorted_names_and_are_written_as_openke_files(tmp_path):
    kg = named_kg()
    folder = write_labelled(tmp_path / "kg", kg, shuffle_seed=1)
    torch.save(kg.features["visual"][torch.tensor([19 - i for i in range(20)])],
               folder / "kg-visual.pth")  # rows in the order of the sorted names
    loaded = load_dataset_folder(folder)
    assert loaded.entity_names == sorted(kg.entity_names)
    assert loaded.relation_names == ["alpha of", "mid", "zeta"]
    assert as_name_sets(loaded) == as_name_sets(kg)
    assert loaded.modalities == ["visual"] and loaded.name == "kg"
    assert all((folder / f).is_file() for f in ID_FILES)
    assert not [p for p in folder.iterdir() if p.name.startswith(".openke-")]
    # The id files say the same, and later loads read them: same dataset, same fingerprint.
    again = load_openke(folder)
    assert again.entity_names == loaded.entity_names
    assert torch.equal(again.train, loaded.train)
    assert load_dataset_folder(folder).fingerprint() == loaded.fingerprint()
    # Line order changes nothing.
    other = load_dataset_folder(write_labelled(tmp_path / "kg2", kg, shuffle_seed=2))
    assert other.entity_names == loaded.entity_names
    assert as_name_sets(other) == as_name_sets(loaded)


def test_later_loads_read_the_id_files(tmp_path, monkeypatch):
    folder = write_labelled(tmp_path / "kg", named_kg())
    first = load_dataset_folder(folder)
    monkeypatch.setattr(labelled, "load_labelled", None)  # would fail if called
    assert torch.equal(load_dataset_folder(folder).test, first.test)


def test_a_conversion_cut_short_is_completed(tmp_path):
    folder = write_labelled(tmp_path / "kg", named_kg())
    first = load_dataset_folder(folder)
    for name in ("train2id.txt", "test2id.txt"):  # published last: a crash left them out
        (folder / name).unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = load_dataset_folder(folder)
    assert not [w for w in caught if "not written" in str(w.message)]  # nothing differs
    assert all((folder / f).is_file() for f in ID_FILES)
    assert again.fingerprint() == first.fingerprint()


def test_crlf_bom_blank_lines_and_spaces_around_names_are_accepted(tmp_path):
    folder = tmp_path / "kg"
    folder.mkdir()
    (folder / "train.txt").write_bytes("\ufeffa\tr\t b \r\n\r\nb\tr\tc\r\n".encode())
    (folder / "valid.txt").write_text("a\tr\tc\n\n\n")
    (folder / "test.txt").write_text("c\tr\ta")
    loaded = load_labelled(folder)
    assert loaded.entity_names == ["a", "b", "c"]
    assert loaded.train.tolist() == [[0, 0, 1], [1, 0, 2]]
    assert loaded.test.tolist() == [[2, 0, 0]]


@pytest.mark.parametrize("line, expected", [
    (b"a\tr", "got 'a\\tr'"),
    (b"a\tr\tb\tc", "expected `head<TAB>relation<TAB>tail` names"),
    (b"a\t\tb", "expected `head<TAB>relation<TAB>tail` names"),
    (b"a r b", "(separated by spaces, not tabs)"),
    (b"a\tr\t\xff", "expected UTF-8 text"),
    (b"a\tr\rx\tb", "expected `head<TAB>relation<TAB>tail` names"),
])
def test_bad_lines_are_one_line_errors_naming_file_and_line(tmp_path, line, expected):
    folder = tmp_path / "kg"
    folder.mkdir()
    (folder / "train.txt").write_bytes(b"a\tr\tb\n\n" + line + b"\n")
    for split in ("valid", "test"):
        (folder / f"{split}.txt").write_text("a\tr\tb\n")
    with pytest.raises(InputError) as exc:
        load_dataset_folder(folder)
    message = str(exc.value)
    assert message.startswith(f"{folder / 'train.txt'}:3: ") and expected in message
    assert "\n" not in message
    assert not (folder / "entity2id.txt").exists()


def test_a_missing_split_is_named(tmp_path):
    folder = write_labelled(tmp_path / "kg", named_kg())
    (folder / "test.txt").unlink()
    with pytest.raises(InputError, match=r"test\.txt: expected an existing file"):
        load_dataset_folder(folder)


def test_evaluation_names_absent_from_training_are_kept_with_a_warning(tmp_path):
    folder = tmp_path / "kg"
    folder.mkdir()
    (folder / "train.txt").write_text("a\tr\tb\nb\tr\tc\n")
    (folder / "valid.txt").write_text("a\tr\tc\nc\tr\tnew\n")
    (folder / "test.txt").write_text("new\tr\tnewer\n")
    with pytest.warns(DataWarning) as caught:
        loaded = load_dataset_folder(folder)
    messages = [str(w.message) for w in caught]
    assert any(m.startswith(f"{folder / 'valid.txt'}:2: entity 'new' occurs in no training "
                            "triple") and "2 such entities, in 2 valid and test lines" in m
               for m in messages), messages
    assert loaded.entity_names == ["a", "b", "c", "new", "newer"]
    assert loaded.test.tolist() == [[3, 0, 4]]


def test_an_id_file_with_other_contents_is_never_overwritten(tmp_path):
    kg = named_kg()
    folder = write_labelled(tmp_path / "kg", kg)
    theirs = "2\nx\t0\ny\t1\n"
    (folder / "entity2id.txt").write_text(theirs)
    with pytest.warns(DataWarning, match=r"entity2id\.txt exists with other ids.*would have "
                                         r"been written to .*train2id\.txt"):
        loaded = load_dataset_folder(folder)
    assert (folder / "entity2id.txt").read_text() == theirs
    assert not (folder / "train2id.txt").exists()
    assert as_name_sets(loaded) == as_name_sets(kg)


def test_a_read_only_folder_loads_and_says_where_the_ids_would_go(tmp_path, monkeypatch):
    kg = named_kg()
    folder = write_labelled(tmp_path / "kg", kg)
    torch.save(kg.features["visual"], folder / "kg-visual.pth")
    copy = write_labelled(tmp_path / "copy" / "kg", kg)
    torch.save(kg.features["visual"], copy / "kg-visual.pth")
    expected = load_dataset_folder(copy)
    real_mkdtemp = labelled.tempfile.mkdtemp

    def mkdtemp(prefix=None, dir=None):  # as in a folder without write permission
        if dir is not None:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_mkdtemp(prefix=prefix)

    monkeypatch.setattr(labelled.tempfile, "mkdtemp", mkdtemp)
    before = sorted(p.name for p in folder.iterdir())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_dataset_folder(folder)
    assert sorted(p.name for p in folder.iterdir()) == before
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert any("the folder cannot be written" in m and str(folder / "entity2id.txt") in m
               for m in messages), messages
    assert loaded.name == "kg" and loaded.entity_names == expected.entity_names
    assert loaded.fingerprint() == expected.fingerprint()
    assert torch.equal(loaded.features["visual"], expected.features["visual"])


def test_the_dispatcher_reads_openke_folders_and_names_both_layouts(tmp_path):
    kg = random_kg()
    openke = write_openke(kg, tmp_path / "openke")
    assert load_dataset_folder(openke).fingerprint() == load_openke(openke).fingerprint()
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"OpenKE files .*train2id\.txt.* or of labelled "
                                         r"triples \(train\.txt, valid\.txt, test\.txt"):
        load_dataset_folder(tmp_path / "empty")
    with pytest.raises(InputError, match="no such directory"):
        load_dataset_folder(tmp_path / "missing")
    (openke / "train2id.txt").unlink()  # an incomplete OpenKE folder: its own error
    with pytest.raises(InputError, match=r"train2id\.txt: expected an existing file"):
        load_dataset_folder(openke)


def test_runs_take_labelled_folders(tmp_path):
    kg = named_kg()
    folder = write_labelled(tmp_path / "kg", kg)
    assert as_name_sets(DatasetSpec(str(folder)).load()) == as_name_sets(kg)
    result = pipeline(str(folder), dict(dim=4, negatives=2, batch_size=32, epochs=1,
                                        eval_every=1), progress=False)
    assert result.model.entity_names == sorted(kg.entity_names)
    assert result.metrics["test"]["mrr"] > 0
