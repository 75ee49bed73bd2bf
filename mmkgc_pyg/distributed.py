"""Devices and processes: which device a run uses, and which process of a
``torch.distributed`` group this is (training and evaluation split their work by it)."""
import atexit
import os
from typing import Tuple

import torch
import torch.distributed as dist

from mmkgc_pyg.errors import ConfigError


def process_group() -> Tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def resolve_device(name: str) -> torch.device:
    """The device named ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        ConfigError: an unknown name, or CUDA asked for where there is none.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError("device", name, "auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", name, "a device this machine has (CUDA is not available)")
    return device


def init_distributed(device_name: str) -> Tuple[torch.device, int]:
    """The device of this process, joining the process group first when launched by
    ``torchrun`` with several processes (NCCL and one GPU per process on CUDA, gloo on
    CPUs). Returns the device and the rank."""
    device = resolve_device(device_name)
    if int(os.environ.get("WORLD_SIZE", "1")) == 1 or dist.is_initialized():
        return device, process_group()[0]
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    atexit.register(dist.destroy_process_group)
    return device, dist.get_rank()
