r"""Feature files in the MMRNS HDF5 layout, read directly.

The public features of MMRNS (Xu et al., ACM MM 2022), which many multi-modal KGC papers
use for DB15K, MKG-W and MKG-Y, are HDF5 files with one dataset per entity. Its key
names the entity: the DBpedia resource name (``Andy_Griffith``) or a Freebase mid
(``m.01m4kpp``). It holds several vectors ``[k, d]`` (up to 4 sentence embeddings, up to
24 image embeddings, rows of zeros padding the rest) or one vector ``[d]``.

Reading (:func:`read_hdf5_features`) maps every dataset's key (for a dataset inside
groups, its path such as ``AC/DC``) to an entity id with
:func:`~mmkgc_pyg.data.entity_names.match_keys`: entity ids when every key is an
integer, else names in any form, or the aliases of link files, e.g. mmkb's
``DB15K_SameAsLink.txt`` that links the mids of the DB15K image file to DBpedia names.
Vectors that are all zero or all NaN are padding and dropped; any other vector must be
finite and within float32's range (an error naming its key); an entity's feature is the
mean of the remaining vectors of all its keys; an entity with no key (or only padding)
gets a zero row, which marks it missing. Needs the ``hdf5`` extra
(``pip install "mmkgc-pyg[hdf5]"``).

The declared shapes of the matched keys are checked before anything is read, since a
file of a few kilobytes can declare datasets of any size: a key holds one entity's
vectors, so one declaring more than :data:`MAX_VECTORS` vectors, or vectors longer than
:data:`MAX_DIM`, is refused. The keys are then read in blocks of about
:data:`READ_BLOCK` numbers and pooled per block.
"""
from pathlib import Path
from typing import Iterator, List, NamedTuple, Tuple

import numpy as np
import torch
from torch import Tensor

from mmkgc_pyg.data.entity_names import EntityIndex, match_keys
from mmkgc_pyg.data.feature_rows import describe_unusable, missing_rows, usable_values
from mmkgc_pyg.errors import InputError
from mmkgc_pyg.io import reader_failure
from mmkgc_pyg.extras import require

HDF5_SUFFIXES = (".h5", ".hdf5")
MAX_VECTORS = 1024  #: vectors per key (MMRNS: at most 24)
MAX_DIM = 1 << 14  #: numbers per vector (common embeddings: 384 to 4096)
READ_BLOCK = 1 << 24  #: numbers read before they are pooled (128 MiB as float64)


class HDF5Features(NamedTuple):
    r"""What :func:`read_hdf5_features` read: the features and how its keys matched."""
    x: Tensor  #: float32 ``[N, d]``, zero rows for entities without vectors
    matched: int  #: keys that name an entity
    unmatched: int  #: keys that name none

    def summary(self, path) -> str:
        present = int((self.x != 0).any(dim=1).sum())
        return (f"{path}: {self.matched} of {self.matched + self.unmatched} keys matched "
                f"an entity; {present} of {self.x.size(0)} entities have features")


class _Key(NamedTuple):
    name: str
    dataset: object  # an h5py.Dataset, not read yet
    entity: int
    vectors: int


def _declared(path: Path, name: str, dataset) -> Tuple[int, int]:
    # (vectors, size) from the dataset's metadata; nothing is read.
    shape = dataset.shape
    if dataset.dtype.kind not in "biuf" or len(shape) not in (1, 2) or shape[-1] == 0:
        raise InputError(f"{path}: key {name!r}: expected numbers of shape [k, d] or [d] "
                         f"with d >= 1, got {dataset.dtype} {list(shape)}")
    vectors, size = (1, shape[0]) if len(shape) == 1 else shape
    if vectors > MAX_VECTORS or size > MAX_DIM:
        raise InputError(f"{path}: key {name!r}: expected one entity's vectors, at most "
                         f"{MAX_VECTORS} of at most {MAX_DIM} numbers, got a dataset of "
                         f"shape {list(shape)} (not read)")
    return vectors, size


def _blocks(keys: List[_Key], size: int) -> Iterator[List[_Key]]:
    block: List[_Key] = []
    numbers = 0
    for key in keys:
        block.append(key)
        numbers += key.vectors * size
        if numbers >= READ_BLOCK:
            yield block
            block, numbers = [], 0
    if block:
        yield block


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
        raise InputError(f"{path}: expected an HDF5 file readable by h5py, got "
                         f"{reader_failure(e)}") from None
    with file:
        datasets: List[Tuple[str, object]] = []
        file.visititems(lambda name, obj: datasets.append((name, obj))
                        if isinstance(obj, h5py.Dataset) else None)
        ids = match_keys([name for name, _ in datasets], entities,
                         lambda i: f"{path}: key {datasets[i][0]!r}")
        keys, size = [], None
        for (name, dataset), entity in zip(datasets, ids):
            if entity is None:
                continue
            vectors, key_size = _declared(path, name, dataset)
            if size is not None and key_size != size:
                raise InputError(f"{path}: key {name!r}: expected vectors of size {size} "
                                 f"like the keys before it, got {key_size}")
            size = key_size
            keys.append(_Key(name, dataset, entity, vectors))
        if not keys:
            hint = f" (e.g. {datasets[0][0]!r})" if datasets else ""
            raise InputError(
                f"{path}: expected datasets keyed by entity names, got none of its "
                f"{len(datasets)} keys{hint} matching an entity; Freebase mids and other "
                "aliases need a link file (ent_links or *_SameAsLink.txt in the dataset "
                "folder)")
        sums = torch.zeros(entities.num_entities, size, dtype=torch.float64)
        counts = torch.zeros(entities.num_entities, dtype=torch.float64)
        for block in _blocks(keys, size):
            rows = torch.from_numpy(np.concatenate(
                [np.asarray(k.dataset[()], dtype=np.float64).reshape(-1, size)
                 for k in block]))
            vectors = torch.tensor([k.vectors for k in block])
            owner = torch.repeat_interleave(torch.arange(len(block)), vectors)
            keep = ~missing_rows(rows)
            bad = keep & ~usable_values(rows).all(dim=1)
            if bool(bad.any()):
                row = int(bad.nonzero()[0])
                key = int(owner[row])
                within = row - int(vectors[:key].sum())
                raise InputError(f"{path}: key {block[key].name!r}: expected finite vectors "
                                 "within float32's range, or all-zero or all-NaN ones as "
                                 f"padding, got {describe_unusable(rows[row])} in vector "
                                 f"{within}")
            entity = torch.tensor([k.entity for k in block])[owner[keep]]
            sums.index_add_(0, entity, rows[keep])
            counts.index_add_(0, entity, torch.ones(len(entity), dtype=torch.float64))
    x = (sums / counts.clamp(min=1).unsqueeze(1)).float()
    return HDF5Features(x, len(keys), len(datasets) - len(keys))
