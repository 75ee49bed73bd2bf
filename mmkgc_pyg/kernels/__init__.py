"""Triton kernels with plain PyTorch references (see ``dispatch`` for the choice)."""
