r"""Modality feature files: one row of raw features per entity id.

A feature file is a ``.pth``/``.pt`` (a tensor or numpy array saved with
:func:`torch.save`, read with ``weights_only=True`` and an allow-list of tensor and numpy
globals only) or a ``.npy`` array of shape ``[N, d_m]`` and dtype float16, bfloat16,
float32 or float64, row :math:`i` belonging to entity :math:`i`; or an
HDF5 file ``.h5``/``.hdf5`` of the MMRNS layout, keyed by entity names and mean-pooled
into one row per entity (:mod:`mmkgc_pyg.data.hdf5_features`; it needs the entity
names). Benchmark folders name them ``<NAME>-<modality>.<ext>`` (e.g.
``DB15K-textual.pth``).

Missing modalities. A row is *missing* when it is all zeros, entirely NaN
(:func:`missing_rows`), or marked missing by a mask file; missing rows get mask
``False`` and are zeroed. A row that is not missing must be finite and within float32's
range (:func:`usable_values`): a row mixing NaN with numbers, or holding an infinity,
is an error rather than a guess. The HDF5 reader applies the same rules to each vector
of its keys.

Reading an HDF5 file logs how many of its keys matched an entity (logger
``mmkgc_pyg.data.features``, level INFO; the command-line tools show it on stderr).
"""
import logging
import re
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from mmkgc_pyg.data.entity_names import EntityIndex
from mmkgc_pyg.data.feature_rows import describe_unusable, missing_rows, usable_values
from mmkgc_pyg.data.hdf5_features import HDF5_SUFFIXES, read_hdf5_features
from mmkgc_pyg.errors import InputError, InvalidArgumentError
from mmkgc_pyg.io import TENSOR_GLOBALS, reader_failure, restricted_torch_load

TENSOR_SUFFIXES = (".pth", ".pt", ".npy")
FEATURE_SUFFIXES = TENSOR_SUFFIXES + HDF5_SUFFIXES
logger = logging.getLogger(__name__)


#: The dtypes a feature table may have (read as float32; float8 and the like are refused:
#: the finiteness checks are not implemented for them).
FEATURE_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
def _numpy_safe_globals() -> list:
    # What torch.load(weights_only=True) must allow to rebuild a saved numpy array
    # (plain numeric data; no code). numpy >= 2 moved ``core`` to ``_core``.
    multiarray = getattr(np, "_core", None) or np.core
    dtypes = [type(np.dtype(code)) for code in "?bBhHiIlLqQefdg"]
    return [np.ndarray, np.dtype, multiarray.multiarray._reconstruct, *dtypes]


#: What a saved numpy array's pickle names besides the classes above: ``_reconstruct``
#: under the name numpy < 2 wrote, and the encoder of its bytes.
NUMPY_ALIASES = frozenset({"numpy.core.multiarray _reconstruct", "_codecs encode"})


def load_tensor_file(path) -> Tensor:
    r"""Read a tensor from a ``.pth``/``.pt`` file (a tensor or numpy array) or a
    ``.npy`` file, on the CPU, without unpickling arbitrary objects
    (:func:`restricted_torch_load`)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: expected a tensor file, got a folder")
    if not path.is_file():
        raise InputError(f"{path}: expected an existing tensor file, got no such file")
    try:
        if path.suffix == ".npy":
            obj = np.load(path, allow_pickle=False)
        else:
            obj = restricted_torch_load(path, allowed=TENSOR_GLOBALS | NUMPY_ALIASES,
                                        classes=_numpy_safe_globals())
    except Exception as e:  # noqa: BLE001 - every reader failure is the file's fault
        raise InputError(f"{path}: expected a tensor readable by "
                         f"{'numpy.load' if path.suffix == '.npy' else 'torch.load'}, "
                         f"got {reader_failure(e)}") from None
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise InputError(f"{path}: expected a numeric array, got dtype {obj.dtype}")
        obj = torch.from_numpy(obj)
    if not isinstance(obj, Tensor):
        raise InputError(f"{path}: expected a tensor or numpy array, got "
                         f"{type(obj).__name__}")
    if obj.layout != torch.strided or obj.is_meta:
        kind = "a meta tensor (no data)" if obj.is_meta else f"a {obj.layout} tensor"
        raise InputError(f"{path}: expected a dense tensor with data, got {kind}")
    return obj


def load_features(path, num_entities: int, entities: Optional[EntityIndex] = None) -> Tensor:
    r"""Read a feature table ``[num_entities, d_m]`` of floating dtype as float32.

    An HDF5 file needs ``entities`` (the dataset's
    :class:`~mmkgc_pyg.data.entity_names.EntityIndex`) to map its keys to ids; how many
    of them matched is logged in one line.
    """
    if Path(path).suffix in HDF5_SUFFIXES:
        if entities is None or entities.num_entities != num_entities:
            raise InvalidArgumentError(f"{path}: an HDF5 feature file needs the EntityIndex of the "
                                       f"{num_entities} entities")
        read = read_hdf5_features(path, entities)
        logger.info(read.summary(path))
        x = read.x
    else:
        x = load_tensor_file(path)
    if x.dim() != 2 or x.size(1) == 0:
        raise InputError(f"{path}: expected a 2-D feature tensor [num_entities, d] "
                         f"with d >= 1, got shape {list(x.shape)}")
    if x.size(0) != num_entities:
        raise InputError(f"{path}: expected {num_entities} rows (one per entity), "
                         f"got {x.size(0)}")
    if x.dtype not in FEATURE_DTYPES:
        raise InputError(f"{path}: expected a floating-point feature tensor ("
                         f"{', '.join(str(d).split('.')[1] for d in FEATURE_DTYPES)}), "
                         f"got {x.dtype}")
    overflow = torch.isfinite(x) & ~usable_values(x)
    if bool(overflow.any()):
        row = int(overflow.any(dim=1).nonzero()[0])
        raise InputError(f"{path}: expected values within float32's range, got {x.dtype} "
                         f"values that overflow float32 (row {row}, "
                         f"{int(overflow.any(dim=1).sum())} such rows)")
    return x.to(torch.float32)


def presence_from_tensor(t: Tensor, path, num_entities: int) -> Tensor:
    r"""A presence mask ``[N]`` bool from a tensor of bools or 0/1 values
    (``True``/1 = present)."""
    if t.shape != (num_entities,):
        raise InputError(f"{path}: expected a mask of shape [{num_entities}], "
                         f"got {list(t.shape)}")
    if t.dtype != torch.bool and not bool(((t == 0) | (t == 1)).all()):
        raise InputError(f"{path}: expected a bool or 0/1 mask, got other values")
    return t != 0


def clean_features(x: Tensor, path, present: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    r"""Find the missing rows of ``x`` and zero them.

    Args:
        x (torch.Tensor): features ``[N, d]``.
        path: the file ``x`` came from (for error messages).
        present (torch.Tensor, optional): bool ``[N]`` from a mask file; ``False`` marks
            a row missing whatever it holds.

    Returns:
        ``(features, mask)``: ``x`` with missing rows zeroed, and ``mask`` ``[N]``
        bool, ``True`` where present.
    """
    mask = ~missing_rows(x)
    if present is not None:
        mask &= present
    bad = mask & ~usable_values(x).all(dim=1)
    if bool(bad.any()):
        row = int(bad.nonzero()[0])
        raise InputError(f"{path}: expected finite values within float32's range, or an "
                         f"all-zero or all-NaN row for a missing entity, got "
                         f"{describe_unusable(x[row])} in row {row} ({int(bad.sum())} "
                         "such rows)")
    return torch.where(mask.unsqueeze(1), x, torch.zeros((), dtype=x.dtype)), mask


def discover_feature_files(folder, name: str) -> Dict[str, Path]:
    r"""The feature files ``<name>-<modality>.{pth,pt,npy,h5,hdf5}`` in ``folder``, as a dict
    modality -> path sorted by modality (``<modality>`` is letters, digits, ``_``)."""
    pattern = re.compile(re.escape(name) + r"-(\w+)(" +
                         "|".join(re.escape(s) for s in FEATURE_SUFFIXES) + r")$")
    found: Dict[str, Path] = {}
    for path in sorted(Path(folder).iterdir()):
        match = pattern.match(path.name)
        if match is None or not path.is_file():
            continue
        modality = match.group(1)
        if modality in found:
            raise InputError(f"{path}: expected one feature file for modality "
                             f"{modality!r}, got also {found[modality].name}")
        found[modality] = path
    return dict(sorted(found.items()))
