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
"""
import hashlib
import os.path as osp
from pathlib import Path
from typing import Callable, Dict, List, Optional

from torch_geometric.data import InMemoryDataset, download_url

from mmkgc_pyg.data.features import discover_feature_files
from mmkgc_pyg.data.kg import KGDataset, canonical_split
from mmkgc_pyg.data.openke import CATEGORY_FILES, NAME_FILES, TRIPLE_FILES, load_openke

BASE_URL = "https://raw.githubusercontent.com/zjukg/AdaMF-MAT/main/benchmarks"


def fetch(url: str, folder: str) -> str:
    r"""Download ``url`` into ``folder`` (the one network access; tests replace it)."""
    return download_url(url, folder)


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
    """
    name: str = ""

    def __init__(self, root: str, split: Optional[str] = None,
                 transform: Optional[Callable] = None, pre_transform: Optional[Callable] = None,
                 features: Optional[Dict[str, str]] = None, force_reload: bool = False):
        self.split = None if split is None else canonical_split(split)
        self.features = dict(features or {})
        super().__init__(root, transform, pre_transform, force_reload=force_reload)
        self.load(self.processed_paths[0])
        if self.split is not None:  # a view of the one stored graph
            self.data, self.slices = self.collate(
                [KGDataset.from_data(self._data).to_data(self.split)])

    @property
    def raw_file_names(self) -> List[str]:
        return list(NAME_FILES + TRIPLE_FILES + CATEGORY_FILES)

    @property
    def processed_file_names(self) -> List[str]:
        return [f"graph-{self._features_key()}.pt"]

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
        for filename in self.raw_file_names:
            fetch(f"{BASE_URL}/{self.name}/{filename}", self.raw_dir)

    def process(self):
        data = load_openke(self.raw_dir, features=self.features, name=self.name).to_data()
        if self.pre_transform is not None:
            data = self.pre_transform(data)
        self.save([data], self.processed_paths[0])

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
