"""Model checkpoints: the weights plus everything needed to rebuild and use the model."""
from pathlib import Path
from typing import Dict, Optional

import torch

from mmkgc_pyg.errors import UserInputError
from mmkgc_pyg.io import atomic_torch_save
from mmkgc_pyg.nn.model import MMKGCModel

FORMAT = "mmkgc-pyg/1"


def model_config(model: MMKGCModel) -> Dict:
    """Constructor arguments that rebuild ``model`` (feature tables come from weights)."""
    return {
        "num_nodes": model.num_nodes,
        "num_relations": model.num_relations,
        "hidden_channels": model.hidden_channels,
        "feature_shapes": {n: list(x.shape) for n, x in getattr(model, "features", {}).items()},
        "train_features": model.train_features,
        "scorer": model.scorer_name,
        "margin": model.scorer.margin,
    }


def save_checkpoint(model: MMKGCModel, path, dataset: Optional[Dict] = None,
                    state_dict: Optional[Dict] = None) -> None:
    """Writes ``path`` atomically; ``dataset`` holds metadata such as its name and folder,
    ``state_dict`` other weights for the same model (default: its current ones)."""
    atomic_torch_save({
        "format": FORMAT,
        "config": model_config(model),
        "state_dict": model.state_dict() if state_dict is None else state_dict,
        "entity_names": model.entity_names,
        "relation_names": model.relation_names,
        "dataset": dataset or {},
    }, path)


def load_checkpoint(path, map_location="cpu") -> MMKGCModel:
    """Rebuilds a trained model from ``path`` (written by ``mmkgc_pyg.train --out``).

    The model carries ``entity_names`` and ``relation_names`` (lists indexed by id) and
    ``dataset`` (the metadata saved with it), and is in eval mode.
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UserInputError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # unpickling errors vary by torch version
        raise UserInputError(f"{path}: not a readable checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserInputError(f"{path}: expected an mmkgc-pyg checkpoint ({FORMAT})")
    config = dict(payload["config"])
    shapes = config.pop("feature_shapes")
    features = {name: torch.zeros(shape) for name, shape in shapes.items()}
    model = MMKGCModel(features=features, **config)
    model.load_state_dict(payload["state_dict"])
    model.entity_names = payload["entity_names"]
    model.relation_names = payload["relation_names"]
    model.dataset = payload["dataset"]
    return model.eval()
