"""The test setup of ``tests/conftest.py``: ``MMKGC_DATASETS`` points the tests at the
benchmark graphs (they skip, naming the variable, where it names no folder), and the
project's own ``DataWarning`` is ignored unless a test records warnings itself."""
import warnings

import pytest

from mmkgc_pyg.errors import DataWarning


def test_datasets_dir_is_the_folder_mmkgc_datasets_names(tmp_path, monkeypatch, request):
    (tmp_path / "DB15K").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MMKGC_DATASETS", ".")  # relative to where the tests run
    assert request.getfixturevalue("datasets_dir") == tmp_path.resolve()


def test_datasets_dir_skips_naming_the_variable(tmp_path, monkeypatch, request):
    monkeypatch.setenv("MMKGC_DATASETS", str(tmp_path / "absent"))
    with pytest.raises(pytest.skip.Exception) as skip:
        request.getfixturevalue("datasets_dir")
    assert str(tmp_path / "absent") in skip.value.msg and "MMKGC_DATASETS" in skip.value.msg


def test_data_warnings_are_ignored_unless_recorded_with_always():
    with warnings.catch_warnings(record=True) as caught:  # the filters the tests run with
        warnings.warn("train: 1 of 9 lines repeat", DataWarning)
        warnings.warn("another kind of warning", UserWarning)
    assert [w.category for w in caught] == [UserWarning]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("train: 1 of 9 lines repeat", DataWarning)
    assert [str(w.message) for w in caught] == ["train: 1 of 9 lines repeat"]
    with pytest.warns(DataWarning, match="lines repeat"):
        warnings.warn("train: 1 of 9 lines repeat", DataWarning)
