r"""Datasets: the :class:`KGDataset` container, the readers of OpenKE benchmark folders and
of folders of labelled triples (:func:`load_dataset_folder` reads either), modality
feature files (tensors, and MMRNS HDF5 files matched to entities by name), the synthetic
default graph and PyG :class:`InMemoryDataset` classes. Building feature files from
descriptions and images is :mod:`mmkgc_pyg.builders`' business."""
from mmkgc_pyg.data.kg import (CATEGORIES, SPLITS, KGDataset, data_findings,
                               relation_categories, relation_tph_hpt, split_by_category,
                               triples_from_data)
from mmkgc_pyg.data.features import clean_features, discover_feature_files, load_features
from mmkgc_pyg.data.openke import load_mask_file, load_openke, write_openke
from mmkgc_pyg.data.labelled import load_dataset_folder, load_labelled, read_labelled_triples
from mmkgc_pyg.data.entity_names import EntityIndex, entity_key, match_keys, readable_name
from mmkgc_pyg.data.hdf5_features import read_hdf5_features
from mmkgc_pyg.data.synthetic import SyntheticGraph, SyntheticLatents, make_synthetic_kg
from mmkgc_pyg.data.datasets import DB15K, MKGW, MKGY

__all__ = [
    "CATEGORIES", "SPLITS", "KGDataset", "data_findings", "relation_categories",
    "relation_tph_hpt", "split_by_category", "triples_from_data", "clean_features",
    "discover_feature_files", "load_features", "load_mask_file", "load_openke", "write_openke",
    "make_synthetic_kg", "SyntheticGraph", "SyntheticLatents", "DB15K", "MKGW", "MKGY",
    "EntityIndex", "entity_key", "match_keys", "readable_name", "read_hdf5_features",
    "load_dataset_folder", "load_labelled", "read_labelled_triples",
]
