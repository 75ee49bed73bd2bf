r"""The paper's benchmarks as PyG :class:`~torch_geometric.data.InMemoryDataset`\ s.

Each dataset holds one split as a single :class:`~torch_geometric.data.Data` (the
attributes of :meth:`KGDataset.to_data <mmkgc_pyg.data.KGDataset.to_data>`). The raw
files are the OpenKE files of the AdaMF-MAT reference repository
(``benchmarks/<NAME>/`` of github.com/zjukg/AdaMF-MAT). Modality features are
distributed separately by the paper's authors: put ``<NAME>-<modality>.pth`` files in
``root/raw`` or pass ``features``; after changing them, pass ``force_reload=True``.
"""
import os.path as osp
from typing import Callable, Dict, List, Optional

from torch_geometric.data import InMemoryDataset, download_url

from mmkgc_pyg.data.kg import SPLITS
from mmkgc_pyg.data.openke import CATEGORY_FILES, NAME_FILES, TRIPLE_FILES, load_openke

BASE_URL = "https://raw.githubusercontent.com/zjukg/AdaMF-MAT/main/benchmarks"


def fetch(url: str, folder: str) -> str:
    r"""Download ``url`` into ``folder`` (the one network access; tests replace it)."""
    return download_url(url, folder)


class _OpenKEBenchmark(InMemoryDataset):
    r"""One split of an OpenKE multi-modal benchmark.

    Args:
        root (str): root folder (``raw/`` and ``processed/`` go below it).
        split (str): ``'train'``, ``'valid'`` or ``'test'``.
        transform, pre_transform (callable, optional): as in PyG.
        features (Dict[str, str], optional): modality -> feature file, adding to the
            ``<NAME>-<modality>.*`` files found in ``root/raw``.
        force_reload (bool): process again even if processed files exist.
    """
    name: str = ""

    def __init__(self, root: str, split: str = "train", transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None,
                 features: Optional[Dict[str, str]] = None, force_reload: bool = False):
        if split not in SPLITS:
            raise ValueError(f"split={split!r}: expected one of {', '.join(SPLITS)}")
        self.split = split
        self.features = dict(features or {})
        super().__init__(root, transform, pre_transform, force_reload=force_reload)
        self.load(self.processed_paths[SPLITS.index(split)])

    @property
    def raw_file_names(self) -> List[str]:
        return list(NAME_FILES + TRIPLE_FILES + CATEGORY_FILES)

    @property
    def processed_file_names(self) -> List[str]:
        return [f"{split}.pt" for split in SPLITS]

    def download(self):
        for filename in self.raw_file_names:
            fetch(f"{BASE_URL}/{self.name}/{filename}", self.raw_dir)

    def process(self):
        kg = load_openke(self.raw_dir, features=self.features, name=self.name)
        for split, path in zip(SPLITS, self.processed_paths):
            data = kg.to_data(split)
            if self.pre_transform is not None:
                data = self.pre_transform(data)
            self.save([data], path)

    def __repr__(self) -> str:
        return f"{self.name}(split={self.split!r}, root={osp.abspath(self.root)!r})"


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
