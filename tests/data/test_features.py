"""Modality feature files: formats, missing rows, and bad tables."""
import datetime

import numpy as np
import pytest
import torch

from mmkgc_pyg.data import clean_features, discover_feature_files, load_features
from mmkgc_pyg.data.features import load_tensor_file
from mmkgc_pyg.errors import InputError


@pytest.fixture
def table():
    return torch.randn(7, 4, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".npy"])
@pytest.mark.parametrize("as_numpy", [False, True])
def test_formats_load_the_same_table(tmp_path, table, suffix, as_numpy):
    path = tmp_path / f"f{suffix}"
    if suffix == ".npy":
        np.save(path, table.double().numpy())
    else:
        torch.save(table.double().numpy() if as_numpy else table.double(), path)
    x = load_features(path, 7)
    assert x.dtype == torch.float32 and torch.equal(x, table)


def test_zero_and_nan_rows_are_missing(table):
    table[1] = 0
    table[4] = float("nan")
    x, mask = clean_features(table.clone(), "f.pt")
    assert mask.tolist() == [True, False, True, True, False, True, True]
    assert bool((x[[1, 4]] == 0).all()) and bool(torch.isfinite(x).all())
    assert torch.equal(x[mask], table[mask])


@pytest.mark.parametrize("bad, name", [(float("nan"), "NaN"), (float("inf"), "inf"),
                                       (-float("inf"), "-inf")])
def test_partial_nan_or_inf_is_an_error(table, bad, name):
    table[3, 2] = bad
    with pytest.raises(InputError, match=rf"f.pt: .*got {name} mixed with numbers in row 3 "
                                         r"\(1 such rows\)"):
        clean_features(table, "f.pt")


@pytest.mark.parametrize("row, got", [
    ([-float("inf")] * 4, "only -inf"),
    ([float("nan"), float("inf"), float("nan"), float("nan")], "only NaN/inf"),
    ([1e39, 0.0, 0.0, 0.0], "values beyond float32's range"),
])
def test_unusable_rows_say_what_they_hold(table, row, got):
    table = table.double()
    table[[2, 5]] = torch.tensor(row, dtype=torch.float64)
    with pytest.raises(InputError) as exc:
        clean_features(table, "f.pt")
    assert str(exc.value) == ("f.pt: expected finite values within float32's range, or an "
                              "all-zero or all-NaN row for a missing entity, got "
                              f"{got} in row 2 (2 such rows)")


def test_a_mask_file_overrides_bad_rows(table):
    table[3, 2] = float("inf")
    present = torch.ones(7, dtype=torch.bool)
    present[[3, 5]] = False
    x, mask = clean_features(table, "f.pt", present)
    assert mask.tolist() == [True, True, True, False, True, False, True]
    assert bool((x[[3, 5]] == 0).all())


@pytest.mark.parametrize("value, message", [
    (torch.zeros(6, 4), "expected 7 rows"),
    (torch.zeros(7), "expected a 2-D feature tensor"),
    (torch.zeros(7, 2, 2), "expected a 2-D feature tensor"),
    (torch.zeros(7, 0), "with d >= 1"),
    (torch.zeros(7, 4, dtype=torch.long), "expected a floating-point"),
    ({"x": torch.zeros(7, 4)}, "expected a tensor or numpy array, got dict"),
])
def test_bad_tables(tmp_path, value, message):
    path = tmp_path / "bad.pt"
    torch.save(value, path)
    with pytest.raises(InputError, match=message) as info:
        load_features(path, 7)
    assert str(info.value).startswith(str(path))


def test_unreadable_files(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"\x00not a tensor file")
    with pytest.raises(InputError, match=r"junk.pth: expected a tensor readable by "
                                             r"torch.load"):
        load_tensor_file(tmp_path / "junk.pth")
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputError, match=r"junk.npy: expected a tensor readable by "
                                             r"numpy.load"):
        load_tensor_file(tmp_path / "junk.npy")
    np.save(tmp_path / "obj.npy", np.array(["a", "b"]))
    with pytest.raises(InputError, match=r"obj.npy: expected a numeric array"):
        load_tensor_file(tmp_path / "obj.npy")
    with pytest.raises(InputError, match=r"none.pt: expected an existing tensor file"):
        load_tensor_file(tmp_path / "none.pt")


def test_arbitrary_pickled_objects_are_refused(tmp_path):
    # weights_only=True: a global outside the allow-list is never unpickled.
    torch.save(datetime.date(2024, 1, 1), tmp_path / "evil.pt")
    with pytest.raises(InputError, match=r"evil.pt: expected a tensor readable"):
        load_tensor_file(tmp_path / "evil.pt")


def test_discovery(tmp_path):
    for name in ["KG-visual.pth", "KG-textual.npy", "KG-audio.pt", "KG-visual-mask.pth",
                 "other-visual.pth", "KG-notes.txt", "KG-.pth"]:
        (tmp_path / name).write_bytes(b"")
    found = discover_feature_files(tmp_path, "KG")
    assert list(found) == ["audio", "textual", "visual"]
    assert found["textual"].name == "KG-textual.npy"
