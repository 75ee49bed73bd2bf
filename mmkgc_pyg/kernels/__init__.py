"""Triton kernels, each beside its custom op (``mmkgc::*``, traceable by ``torch.compile``)
and its plain PyTorch reference; ``utils`` holds what they share, including the choice of
path (:func:`set_kernel_mode`)."""
from mmkgc_pyg.kernels.utils import kernel_mode, kernel_mode_set, set_kernel_mode

__all__ = ["kernel_mode", "kernel_mode_set", "set_kernel_mode"]
