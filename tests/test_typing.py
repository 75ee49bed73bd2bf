"""Type checkers see the installed package: mypy run on ``examples/`` and on a snippet that
imports ``mmkgc_pyg`` finds it typed (``py.typed``), not "missing library stubs" and not
"cannot find implementation".

An editable install (``pip install -e .``) of a flat layout gets setuptools' import hook,
which type checkers cannot follow; ``pyproject.toml`` names the packages' root
(``[tool.setuptools] package-dir``) so that the install is a plain ``.pth`` path entry
instead. An environment installed before that change still has the hook: reinstall.

mypy runs in a subprocess from a scratch folder (from the checkout, the package would be
found in the current directory whatever the install), skipping the analysis of everything
but ``mmkgc_pyg`` itself (torch alone would take minutes), and silent about errors inside
the package: only the resolution of its imports and the types it exports are checked.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[test]')")

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """\
[mypy]
follow_imports = skip
[mypy-mmkgc_pyg.*]
follow_imports = silent
[mypy-torch_geometric.*]
ignore_missing_imports = True
"""
SNIPPET = """\
from mmkgc_pyg import load_checkpoint, pipeline
from mmkgc_pyg.data import make_synthetic_kg
from mmkgc_pyg.nn.prediction import predict_by_name

reveal_type(pipeline)
model = load_checkpoint("model.pt")
reveal_type(predict_by_name(model, head="Paris", relation="capital_of"))
reveal_type(make_synthetic_kg().num_entities)
"""


def test_mypy_finds_the_typed_package(tmp_path):
    (tmp_path / "mypy.ini").write_text(CONFIG)
    (tmp_path / "uses_mmkgc.py").write_text(SNIPPET)
    examples = sorted(str(p) for p in (ROOT / "examples").glob("*.py"))
    assert examples
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--cache-dir", "cache",
         "--python-executable", sys.executable, "--no-color-output", "uses_mmkgc.py",
         *examples],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    unseen = [line for line in output.splitlines() if "mmkgc_pyg" in line and (
        "import-not-found" in line or "import-untyped" in line
        or "missing library stubs or py.typed marker" in line)]
    assert not unseen, ("mypy cannot see the installed mmkgc_pyg (an editable install with "
                        "setuptools' import hook? reinstall with pip install -e .):\n" + output)
    assert 'Revealed type is "def (dataset:' in output, output
    assert "mmkgc_pyg.training.runner.PipelineResult" in output, output
    # (mypy before 2.0 names builtins in full)
    assert re.search(r'Revealed type is "(builtins\.)?list\[mmkgc_pyg\.nn\.prediction\.'
                     r'Prediction\]"', output), output
    assert re.search(r'Revealed type is "(builtins\.)?int"', output), output
    assert proc.returncode == 0, output
