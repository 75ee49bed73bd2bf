"""Run folders: one run per folder, one process at a time, and nothing outside the folder
written or removed through a link planted in it."""
import os

import pytest

from mmkgc_pyg.errors import OutputError
from mmkgc_pyg.run_folder import clear_for_new_run, locked


def test_the_lock_names_its_owner_and_is_removed_when_done(tmp_path):
    with locked(tmp_path):
        assert (tmp_path / ".lock").read_text().startswith(f"process {os.getpid()} on ")
        with pytest.raises(OutputError, match=f"in use by process {os.getpid()}"):
            with locked(tmp_path):
                pass
    assert not (tmp_path / ".lock").exists()


@pytest.mark.parametrize("link", ["symbolic", "hard"])
def test_a_linked_lock_never_writes_its_target(tmp_path, link):
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    folder = tmp_path / "run"
    folder.mkdir()
    (os.symlink if link == "symbolic" else os.link)(target, folder / ".lock")
    with pytest.raises(OutputError, match=r"\.lock: expected the run folder's lock file"):
        with locked(folder):
            pass
    assert target.read_text() == "keep me\n"


def test_overwrite_removes_links_not_what_they_point_to(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "events").write_text("someone else's\n")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "model.pt").write_text("old")
    os.symlink(elsewhere, folder / "tensorboard")
    with pytest.raises(OutputError, match="holds an earlier run"):
        clear_for_new_run(folder)
    clear_for_new_run(folder, overwrite=True)
    assert not os.path.lexists(folder / "tensorboard") and not (folder / "model.pt").exists()
    assert (elsewhere / "events").read_text() == "someone else's\n"
