r"""The paper's benchmarks as PyG :class:`~torch_geometric.data.InMemoryDataset`\ s.

``DB15K(root)[0]`` is the whole graph as one :class:`~torch_geometric.data.Data` (the
layout of :meth:`KGDataset.to_data <mmkgc_pyg.data.KGDataset.to_data>`: all splits with
masks, features, names), which :meth:`KGDataset.from_data
<mmkgc_pyg.data.KGDataset.from_data>`, :class:`~mmkgc_pyg.training.Trainer` and
:meth:`MMKGCModel.from_data <mmkgc_pyg.nn.MMKGCModel.from_data>` take; ``split=`` gives
one split alone. The raw files are the OpenKE files of the AdaMF-MAT reference
repository (``benchmarks/<NAME>/`` of github.com/zjukg/AdaMF-MAT). Modality features are
distributed separately by the paper's authors: put ``<NAME>-<modality>.pth`` files in
``root/raw`` or pass ``features``. The processed file is named after the feature files
used (their paths, sizes and modification times), so changed features are processed
again, and it holds one copy of the feature tables whatever the split.

Offline, copy the raw files into ``root/raw`` (the names in the error that a failed
download raises, which leaves nothing behind). The relation category files
(``1-1.txt`` ...) are downloaded with the rest but optional: without them the categories
are computed from the triples.

Modality features are not PyG's node features ``x``: each modality is its own table
``x_<modality>`` ``[N, d_m]`` of its own width, so ``num_features`` (the width of ``x``)
is 0; :attr:`num_modality_features <_OpenKEBenchmark.num_modality_features>` gives each
table's width.

Processed files are read with ``weights_only=True`` and an allow-list of their own
(tensors, plain values, :class:`~torch_geometric.data.Data`): PyG's own reader retries
without ``weights_only`` when a file names another class, which would run a planted
file's code. A file outside the allow-list is refused, naming it; deleting the
``processed`` folder makes the dataset process its raw files again.
"""
import hashlib
import logging
import os.path as osp
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Type

from torch_geometric.data import Data, InMemoryDataset, download_url

from mmkgc_pyg.data.features import discover_feature_files
from mmkgc_pyg.data.kg import KGDataset, canonical_split
from mmkgc_pyg.data.openke import CATEGORY_FILES, NAME_FILES, TRIPLE_FILES, load_openke
from mmkgc_pyg.errors import InputError
from mmkgc_pyg.io import atomic_torch_save, reader_failure, restricted_torch_load

BASE_URL = "https://raw.githubusercontent.com/zjukg/AdaMF-MAT/main/benchmarks"
REFERENCE = "benchmarks/{name}/ of github.com/zjukg/AdaMF-MAT"
logger = logging.getLogger(__name__)


def fetch(url: str, folder: str) -> str:
    r"""Download ``url`` into ``folder`` (the one network access; tests replace it)."""
    return download_url(url, folder)


def _describe(transform: Optional[Callable]) -> str:
    # What pre_transform.pt records: the callable's repr without its memory address.
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(transform))


def _new_folders(folder: Path) -> List[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    new = []
    while not folder.exists() and folder != folder.parent:
        new.append(folder)
        folder = folder.parent
    return new


class _OpenKEBenchmark(InMemoryDataset):
    r"""An OpenKE multi-modal benchmark: the whole graph as one ``Data``.

    Args:
        root (str): root folder (``raw/`` and ``processed/`` go below it).
        split (str, optional): ``'train'``, ``'valid'`` (or ``'val'``) or ``'test'`` for
            that split alone; None (default) for the whole graph with split masks.
        transform, pre_transform (callable, optional): as in PyG.
        features (Dict[str, str], optional): modality -> feature file, adding to the
            ``<NAME>-<modality>.*`` files found in ``root/raw``.
        force_reload (bool): process again even if processed files exist.

    Raises:
        InputError: raw files missing and not downloadable (naming the files and where
            to copy them), or a processed file that is not one this class wrote.
    """
    name: str = ""

    def __init__(self, root: str, split: Optional[str] = None,
                 transform: Optional[Callable] = None, pre_transform: Optional[Callable] = None,
                 features: Optional[Dict[str, str]] = None, force_reload: bool = False):
        self.split = None if split is None else canonical_split(split)
        self.features = dict(features or {})
        # PyG creates raw/ before downloading: what a failed download removes again.
        self._new_folders = _new_folders(Path(root).expanduser() / "raw")
        super().__init__(root, transform, pre_transform, force_reload=force_reload)
        self.load(self.processed_paths[0])
        if self.split is not None:  # a view of the one stored graph
            self.data, self.slices = self.collate(
                [KGDataset.from_data(self._data).to_data(self.split)])

    @property
    def raw_file_names(self) -> List[str]:
        """The files the graph needs (the category files are optional)."""
        return list(NAME_FILES + TRIPLE_FILES)

    @property
    def processed_file_names(self) -> List[str]:
        return [f"graph-{self._features_key()}.pt"]

    @property
    def num_modality_features(self) -> Dict[str, int]:
        """The width ``d_m`` of each modality's feature table ``x_<modality>``, by
        modality (``num_features`` is that of PyG's ``x``, which these graphs lack)."""
        data = self._data
        return {m: int(data[f"x_{m}"].size(1)) for m in data.modalities}

    def _features_key(self) -> str:
        """Names the feature files in use: a different set, or a changed file, gives
        another processed file."""
        found = discover_feature_files(self.raw_dir, self.name) if osp.isdir(self.raw_dir) else {}
        files = {**found, **{m: Path(p) for m, p in self.features.items()}}
        digest = hashlib.sha256()
        for modality, path in sorted(files.items()):
            stat = path.stat() if path.is_file() else None
            digest.update(f"{modality}={path.resolve()}:{stat and stat.st_size}:"
                          f"{stat and stat.st_mtime_ns};".encode())
        return digest.hexdigest()[:12]

    def download(self):
        raw = Path(self.raw_dir)
        missing = [f for f in self.raw_file_names if not (raw / f).is_file()]
        fetched = []  # the files this call creates: removed again when one fails
        try:
            for filename in self.raw_file_names + list(CATEGORY_FILES):
                if not (raw / filename).exists():
                    fetched.append(raw / filename)
                    fetch(f"{BASE_URL}/{self.name}/{filename}", self.raw_dir)
        except OSError as exc:  # no network, or the file is not there (URLError, HTTPError)
            for path in fetched:
                path.unlink(missing_ok=True)
            for folder in self._new_folders:
                try:
                    folder.rmdir()
                except OSError:  # holds something else: kept, and its parents too
                    break
            raise InputError(
                f"{raw}: expected the {self.name} files {', '.join(missing)} there, and "
                f"downloading them failed ({reader_failure(exc)}); copy them (OpenKE "
                f"layout) from {REFERENCE.format(name=self.name)} into that folder"
            ) from None

    def process(self):
        data = load_openke(self.raw_dir, features=self.features, name=self.name).to_data()
        if self.pre_transform is not None:
            data = self.pre_transform(data)
        self.save([data], self.processed_paths[0])

    def _process(self):
        # Replaces PyG's, which reads pre_transform.pt with weights_only=False (code in a
        # planted file would run) and pre_filter.pt (these datasets take no pre_filter).
        record = Path(self.processed_dir) / "pre_transform.pt"
        if not self.force_reload and record.is_file() and \
                self._read_processed(record) != _describe(self.pre_transform):
            warnings.warn(f"{record}: the processed graph was made with another "
                          "pre_transform; pass force_reload=True to process it again")
        if not self.force_reload and all(osp.exists(p) for p in self.processed_paths):
            return
        Path(self.processed_dir).mkdir(parents=True, exist_ok=True)
        logger.info("processing %s into %s", self.raw_dir, self.processed_dir)
        self.process()
        atomic_torch_save(_describe(self.pre_transform), record)

    def load(self, path: str, data_cls: Type[Data] = Data) -> None:
        """Reads the graph that :meth:`process` saved (refusing any other file)."""
        stored = self._read_processed(Path(path))
        if not (isinstance(stored, tuple) and len(stored) == 3 and isinstance(stored[0], dict)
                and isinstance(stored[1], (dict, type(None))) and stored[2] is data_cls):
            raise self._foreign(path, f"a {type(stored).__name__}")
        self.data, self.slices = data_cls.from_dict(stored[0]), stored[1]

    def _read_processed(self, path: Path) -> Any:
        try:
            return restricted_torch_load(path, classes=[Data])
        except Exception as exc:  # noqa: BLE001 - every reader failure is the file's fault
            raise self._foreign(path, reader_failure(exc)) from None

    def _foreign(self, path, got: str) -> InputError:
        return InputError(f"{path}: expected a file processed by mmkgc-pyg's {self.name}, got "
                          f"{got}; delete the folder {self.processed_dir} to reprocess")

    def __repr__(self) -> str:
        split = "" if self.split is None else f"split={self.split!r}, "
        return f"{self.name}({split}root={osp.abspath(self.root)!r})"


class DB15K(_OpenKEBenchmark):
    r"""DB15K (DBpedia; 12,842 entities, 279 relations, 79,222 / 9,904 / 9,902
    triples), from Liu et al., "MMKG: Multi-Modal Knowledge Graphs", ESWC 2019."""
    name = "DB15K"


class MKGW(_OpenKEBenchmark):
    r"""MKG-W (Wikidata; 15,000 entities, 169 relations, 34,196 / 4,276 / 4,274
    triples), from Xu et al., "Relation-enhanced Negative Sampling for Multimodal
    Knowledge Graph Completion", ACM MM 2022."""
    name = "MKG-W"


class MKGY(_OpenKEBenchmark):
    r"""MKG-Y (YAGO; 15,000 entities, 28 relations), from Xu et al., ACM MM 2022."""
    name = "MKG-Y"
