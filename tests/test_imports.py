"""Every public module imports on its own, in a fresh interpreter (no import cycles
that a particular import order would hide)."""
import subprocess
import sys

import pytest

MODULES = ["mmkgc_pyg", "mmkgc_pyg.data", "mmkgc_pyg.nn", "mmkgc_pyg.kernels.rotate",
           "mmkgc_pyg.training", "mmkgc_pyg.evaluation", "mmkgc_pyg.cli.train",
           "mmkgc_pyg.cli.evaluate", "mmkgc_pyg.cli.predict", "mmkgc_pyg.cli.plot"]


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone(module):
    result = subprocess.run([sys.executable, "-c", f"import {module}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
