"""What the kernel modules share: the path choice and its error modes."""
import os
import subprocess
import sys

import pytest
import torch

from mmkgc_pyg.kernels import kernel_mode, kernel_mode_set, set_kernel_mode
from mmkgc_pyg.kernels.utils import use_triton


def test_modes_and_context(monkeypatch):
    monkeypatch.setattr("mmkgc_pyg.kernels.utils._mode", "auto")
    cpu = torch.zeros(2)
    assert kernel_mode() == "auto" and not use_triton(cpu)
    with kernel_mode_set("torch"):
        assert kernel_mode() == "torch" and not use_triton(cpu)
    assert kernel_mode() == "auto"
    assert set_kernel_mode("TORCH ") == "auto" and kernel_mode() == "torch"


def test_unknown_mode_is_refused(monkeypatch):
    monkeypatch.setattr("mmkgc_pyg.kernels.utils._mode", "auto")
    with pytest.raises(ValueError, match="'fast'.*auto, triton, torch"):
        set_kernel_mode("fast")
    assert kernel_mode() == "auto"


def test_triton_mode_without_interpreter_explains_itself():
    """A fresh interpreter without TRITON_INTERPRET: forcing Triton on CPU tensors says
    what is missing; a bad MMKGC_KERNELS is named when the mode is read."""
    code = ("import torch; from mmkgc_pyg.kernels.utils import use_triton\n"
            "try:\n    use_triton(torch.zeros(1))\nexcept Exception as e:\n    print(repr(e))")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "MMKGC_KERNELS": "triton"}).stdout
    assert "TRITON_INTERPRET=1" in out or "Triton is not installed" in out
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "MMKGC_KERNELS": "bogus"}).stdout
    assert "MMKGC_KERNELS" in out and "'bogus'" in out

