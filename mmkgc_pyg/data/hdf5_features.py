r"""Feature files in the MMRNS HDF5 layout, read directly.

The public features of MMRNS (Xu et al., ACM MM 2022), which many multi-modal KGC papers
use for DB15K, MKG-W and MKG-Y, are HDF5 files with one dataset per entity. Its key
names the entity: the DBpedia resource name (``Andy_Griffith``) or a Freebase mid
(``m.01m4kpp``). It holds several vectors ``[k, d]`` (up to 4 sentence embeddings, up to
24 image embeddings, rows of zeros padding the rest) or one vector ``[d]``.

Reading (:func:`read_hdf5_features`) maps every dataset's key (for a dataset inside
groups, its path such as ``AC/DC``) to an entity id with
:class:`~mmkgc_pyg.data.entity_names.EntityIndex`: by name in any form, or through the
aliases of link files, e.g. mmkb's ``DB15K_SameAsLink.txt`` that links the mids of the
DB15K image file to DBpedia names. Rows that are all zero or all NaN are padding and
dropped; an entity's feature is the mean of the remaining rows of all its keys; an
entity with no key (or only padding) gets a zero row, which marks it missing. Needs the
``hdf5`` extra (``pip install "mmkgc-pyg[hdf5]"``).
"""
from pathlib import Path
from typing import List, NamedTuple

import numpy as np
import torch
from torch import Tensor

from mmkgc_pyg.data.entity_names import EntityIndex
from mmkgc_pyg.errors import InputError
from mmkgc_pyg.extras import require

HDF5_SUFFIXES = (".h5", ".hdf5")


class HDF5Features(NamedTuple):
    r"""What :func:`read_hdf5_features` read: the features and how its keys matched."""
    x: Tensor  #: float32 ``[N, d]``, zero rows for entities without vectors
    matched: int  #: keys that name an entity
    unmatched: int  #: keys that name none

    def summary(self, path) -> str:
        present = int((self.x != 0).any(dim=1).sum())
        return (f"{path}: {self.matched} of {self.matched + self.unmatched} keys matched "
                f"an entity; {present} of {self.x.size(0)} entities have features")


def read_hdf5_features(path, entities: EntityIndex) -> HDF5Features:
    r"""Read an HDF5 feature file of the MMRNS layout (see the module docstring) into
    one mean-pooled row per entity of ``entities``."""
    path = Path(path)
    h5py = require("h5py", "hdf5", "reading HDF5 feature files")
    if not path.is_file():
        raise InputError(f"{path}: expected an existing HDF5 file, got no such file")
    try:
        file = h5py.File(path, "r")
    except OSError as e:
        reason = (str(e).strip().splitlines() or [""])[0][:200]
        raise InputError(f"{path}: expected an HDF5 file readable by h5py, got "
                         f"{type(e).__name__}: {reason}") from None
    sums, counts, dim = None, torch.zeros(entities.num_entities), None
    matched = unmatched = 0
    with file:
        keys: List[str] = []
        file.visititems(lambda name, obj: keys.append(name)
                        if isinstance(obj, h5py.Dataset) else None)
        for key in keys:
            entity = entities.lookup(key)
            if entity is None:
                unmatched += 1
                continue
            matched += 1
            value = np.asarray(file[key][()])
            if value.dtype.kind not in "biuf" or value.ndim not in (1, 2) or value.shape[-1] == 0:
                raise InputError(f"{path}: key {key!r}: expected numbers of shape "
                                 f"[k, d] or [d] with d >= 1, got {value.dtype} "
                                 f"{list(value.shape)}")
            rows = torch.from_numpy(value.astype(np.float64).reshape(-1, value.shape[-1]))
            if dim is None:
                dim = rows.size(1)
                sums = torch.zeros(entities.num_entities, dim, dtype=torch.float64)
            elif rows.size(1) != dim:
                raise InputError(f"{path}: key {key!r}: expected vectors of size {dim} "
                                 f"like the keys before it, got {rows.size(1)}")
            rows = rows[~((rows == 0).all(dim=1) | torch.isnan(rows).all(dim=1))]
            sums[entity] += rows.sum(dim=0)
            counts[entity] += len(rows)
    if sums is None:
        hint = f" (e.g. {keys[0]!r})" if keys else ""
        raise InputError(
            f"{path}: expected datasets keyed by entity names, got none of its "
            f"{unmatched} keys{hint} matching an entity; Freebase mids and other aliases "
            "need a link file (ent_links or *_SameAsLink.txt in the dataset folder)")
    x = (sums / counts.clamp(min=1).double().unsqueeze(1)).float()
    return HDF5Features(x, matched, unmatched)
