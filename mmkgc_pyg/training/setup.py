"""From a dataset and a :class:`~mmkgc_pyg.training.TrainConfig` to the objects a run
needs: the model."""
from typing import Optional, Union

import torch

from mmkgc_pyg.data.kg import KGDataset
from mmkgc_pyg.nn.model import MMKGCModel
from mmkgc_pyg.training.config import TrainConfig


def build_model(dataset: KGDataset, config: TrainConfig,
                device: Optional[Union[str, torch.device]] = None) -> MMKGCModel:
    """The model ``config`` describes for ``dataset`` (its sizes, and its modalities unless
    ``config.modalities`` is off), with the dataset's entity and relation names, on
    ``device``."""
    features = dataset.features if config.modalities else {}
    model = MMKGCModel(dataset.num_entities, dataset.num_relations, config.dim, config.margin,
                       config.sparse, features=features, masks=dataset.masks,
                       interaction=config.interaction, train_features=config.train_features,
                       feature_dtype=getattr(torch, config.feature_dtype))
    model.entity_names, model.relation_names = dataset.entity_names, dataset.relation_names
    return model if device is None else model.to(device)
