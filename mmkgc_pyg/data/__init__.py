r"""Datasets: the :class:`KGDataset` container, the OpenKE benchmark reader, modality
feature files, the synthetic default graph and PyG :class:`InMemoryDataset` classes."""
from mmkgc_pyg.data.kg import (CATEGORIES, SPLITS, DataWarning, KGDataset, data_findings,
                               relation_categories, relation_tph_hpt, split_by_category,
                               triples_from_data)
from mmkgc_pyg.data.features import clean_features, discover_feature_files, load_features
from mmkgc_pyg.data.openke import load_mask_file, load_openke, write_openke
from mmkgc_pyg.data.synthetic import SyntheticLatents, make_synthetic_kg
from mmkgc_pyg.data.datasets import DB15K, MKGW, MKGY

__all__ = [
    "CATEGORIES", "SPLITS", "KGDataset", "DataWarning", "data_findings", "relation_categories", "relation_tph_hpt",
    "split_by_category", "triples_from_data", "clean_features", "discover_feature_files",
    "load_features", "load_mask_file", "load_openke", "write_openke", "make_synthetic_kg",
    "SyntheticLatents", "DB15K", "MKGW", "MKGY",
]
