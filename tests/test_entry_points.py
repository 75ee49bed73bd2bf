"""Every command-line entry point reports a path the file system refuses (a name longer
than it allows: ``File name too long``) in one line naming the path, exit status 2,
never with a traceback."""
import pytest

from utils import random_kg
from mmkgc_pyg.cli import evaluate, features, plot, predict, train, tune
from mmkgc_pyg.data.openke import write_openke

# One component of 300 bytes: past the 255 that Linux file systems allow (macOS: 255).
LONG = "x" * 300
TINY = ["--dim", "4", "--negatives", "2", "--epochs", "1", "--quiet"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A folder holding a dataset folder ``kg``."""
    root = tmp_path_factory.mktemp("long")
    write_openke(random_kg(), root / "kg", features=False)
    return root


CASES = {
    "train --dataset": (train.main, lambda r: ["--dataset", r / LONG, *TINY]),
    "train --feature": (train.main, lambda r: ["--dataset", r / "kg", "--feature",
                                               f"visual={r / LONG / 'v.pt'}", *TINY]),
    "train --out": (train.main, lambda r: ["--dataset", r / "kg", "--out", r / LONG, *TINY]),
    "train --resume": (train.main, lambda r: ["--resume", r / LONG]),
    "evaluate --checkpoint": (evaluate.main, lambda r: ["--checkpoint", r / LONG / "model.pt"]),
    "predict --checkpoint": (predict.main, lambda r: ["--checkpoint", r / LONG / "model.pt",
                                                      "--head", "e0", "--relation", "r0"]),
    "plot": (plot.main, lambda r: [r / LONG]),
    "tune --study": (tune.main, lambda r: ["--dataset", r / "kg", "--study", r / LONG,
                                           *TINY]),
    "features text --out": (features.main, lambda r: ["text", "--dataset", r / "kg", "--out",
                                                      r / LONG / "t.pth"]),
    "features images --out": (features.main, lambda r: [
        "images", "--dataset", r / "kg", "--images", r, "--out", r / f"{LONG}.pth"]),
    "features images --images": (features.main, lambda r: [
        "images", "--dataset", r / "kg", "--images", r / LONG, "--out", r / "v.pth"]),
}


@pytest.mark.parametrize("case", CASES)
def test_a_name_too_long_is_one_line(case, root, capsys):
    if case.startswith("tune"):  # without its extra, tune stops before reading any path
        pytest.importorskip("optuna", reason="the [tune] extra (optuna) is not installed")
    main, argv = CASES[case]
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv(root)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1, err
    assert err[0].startswith("error: ") and LONG in err[0] and "too long" in err[0], err
