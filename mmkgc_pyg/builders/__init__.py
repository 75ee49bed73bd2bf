r"""Feature builders: offline preprocessing that turns a dataset's raw modality sources
(entity descriptions, image folders) into the feature files training reads
(:mod:`mmkgc_pyg.data.features`).

They run once per dataset, through ``python -m mmkgc_pyg.features`` (``mmkgc-features``),
and need models that training does not: the ``text`` and ``vision`` extras, imported
only when a builder runs. Training never imports this package; the feature files it
writes are plain tensors, and MMRNS HDF5 files are read at load time by
:mod:`mmkgc_pyg.data.hdf5_features`.
"""
from mmkgc_pyg.builders.descriptions import entity_texts, read_descriptions
from mmkgc_pyg.builders.image_features import ImageEncoder, find_entity_images, image_features
from mmkgc_pyg.builders.text_features import load_text_model, text_features

__all__ = [
    "entity_texts", "read_descriptions", "ImageEncoder", "find_entity_images",
    "image_features", "load_text_model", "text_features",
]
