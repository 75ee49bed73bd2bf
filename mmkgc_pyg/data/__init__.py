r"""Datasets: the :class:`KGDataset` container, the OpenKE benchmark reader, modality
feature files (and their builders: entity names, descriptions, text and image encoders,
MMRNS HDF5 files), the synthetic default graph and PyG :class:`InMemoryDataset`
classes."""
from mmkgc_pyg.data.kg import (CATEGORIES, SPLITS, KGDataset, data_findings,
                               relation_categories, relation_tph_hpt, split_by_category,
                               triples_from_data)
from mmkgc_pyg.data.features import clean_features, discover_feature_files, load_features
from mmkgc_pyg.data.openke import load_mask_file, load_openke, write_openke
from mmkgc_pyg.data.entity_names import EntityIndex, entity_key, readable_name
from mmkgc_pyg.data.descriptions import entity_texts, read_descriptions
from mmkgc_pyg.data.hdf5_features import read_hdf5_features
from mmkgc_pyg.data.text_features import load_text_model, text_features
from mmkgc_pyg.data.image_features import ImageEncoder, find_entity_images, image_features
from mmkgc_pyg.data.synthetic import SyntheticLatents, make_synthetic_kg
from mmkgc_pyg.data.datasets import DB15K, MKGW, MKGY

__all__ = [
    "CATEGORIES", "SPLITS", "KGDataset", "data_findings",
    "relation_categories", "relation_tph_hpt", "split_by_category", "triples_from_data",
    "clean_features", "discover_feature_files",
    "load_features", "load_mask_file", "load_openke", "write_openke", "make_synthetic_kg",
    "SyntheticLatents", "DB15K", "MKGW", "MKGY", "EntityIndex", "entity_key",
    "readable_name", "entity_texts", "read_descriptions", "read_hdf5_features",
    "load_text_model", "text_features", "ImageEncoder", "find_entity_images",
    "image_features",
]
