"""Model checkpoints: the weights plus everything needed to rebuild and use the model.

A checkpoint is validated before anything is built from it: its format tag, the types and
ranges of the constructor arguments, and that every weight has the shape the arguments
imply (so a corrupt or hostile file cannot ask for a huge allocation).
"""
import math
from pathlib import Path
from typing import Dict, Optional

import torch

from mmkgc_pyg.data.kg import MODALITY_NAME
from mmkgc_pyg.errors import CheckpointError
from mmkgc_pyg.io import atomic_torch_save, restricted_torch_load
from mmkgc_pyg.nn.interactions import INTERACTIONS
from mmkgc_pyg.nn.model import MMKGCModel

FORMAT = "mmkgc-pyg/3"


def model_config(model: MMKGCModel) -> Dict:
    """Constructor arguments that rebuild ``model`` (feature tables come from weights)."""
    return {
        "num_nodes": model.num_nodes,
        "num_relations": model.num_relations,
        "hidden_channels": model.hidden_channels,
        "sparse": model.sparse,
        "feature_shapes": [[n, list(x.shape)] for n, x in getattr(model, "features", {}).items()],
        "train_features": model.train_features,
        "interaction": model.interaction_name,
        "margin": model.interaction.margin,
        "feature_dtype": (str(next(iter(model.features.values())).dtype).split(".")[1]
                          if model.adamf is not None else "float32"),
    }


def save_checkpoint(model: MMKGCModel, path, dataset_metadata: Optional[Dict] = None,
                    state_dict: Optional[Dict] = None) -> None:
    """Writes ``path`` atomically; ``dataset_metadata`` says how to find the dataset again
    (its name, fingerprint and folder: ``model.dataset`` once loaded), ``state_dict``
    holds other weights for the same model (default: its current ones)."""
    atomic_torch_save({
        "format": FORMAT,
        "config": model_config(model),
        "state_dict": model.state_dict() if state_dict is None else state_dict,
        "entity_names": model.entity_names,
        "relation_names": model.relation_names,
        "dataset": dataset_metadata or {},
    }, path)


def load_checkpoint(path, map_location="cpu") -> MMKGCModel:
    """Rebuilds a trained model from ``path`` (written by ``mmkgc_pyg.train --out``).

    The model carries ``entity_names`` and ``relation_names`` (lists indexed by id) and
    ``dataset`` (the metadata saved with it), and is in eval mode.

    Raises:
        CheckpointError: the file is missing, unreadable, from another version of the
            library, or inconsistent (one line naming the file and the problem).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: expected a checkpoint file, got a folder")
    try:
        payload = restricted_torch_load(path, map_location=map_location)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # unpickling errors vary by torch version
        raise CheckpointError(f"{path}: not a readable checkpoint "
                              f"({exc.__class__.__name__})") from None
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if not isinstance(fmt, str) or not fmt.startswith("mmkgc-pyg/"):
        raise CheckpointError(f"{path}: expected an mmkgc-pyg checkpoint ({FORMAT})")
    if fmt != FORMAT:
        raise CheckpointError(f"{path}: written by another version of mmkgc-pyg (format {fmt!r}; "
                              f"this version reads {FORMAT!r}): retrain, or use that version")
    config, state = _validated(path, payload)
    model = _build(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise CheckpointError(f"{path}: weights do not fit the saved configuration "
                              f"({first})") from None
    model.entity_names = payload.get("entity_names")
    model.relation_names = payload.get("relation_names")
    model.dataset = payload["dataset"]
    return model.eval()


def _build(config: Dict) -> MMKGCModel:
    """The model of a validated checkpoint configuration (its tables still to load)."""
    features = {name: torch.empty(shape) for name, shape in config.pop("feature_shapes")}
    dtype = getattr(torch, config.pop("feature_dtype"))
    return MMKGCModel(features=features, feature_dtype=dtype, **config)


def _validated(path: Path, payload: Dict):
    """The constructor arguments and state dict of a format-2 payload, checked."""
    def bad(what: str):
        return CheckpointError(f"{path}: corrupt checkpoint: {what}")

    for key, kind in (("config", dict), ("state_dict", dict), ("dataset", dict)):
        if not isinstance(payload.get(key), kind):
            raise bad(f"expected a {kind.__name__} under {key!r}")
    config, state = dict(payload["config"]), payload["state_dict"]
    expected = {"num_nodes", "num_relations", "hidden_channels", "sparse", "feature_shapes",
                "train_features", "interaction", "margin", "feature_dtype"}
    if set(config) != expected:
        raise bad(f"expected config keys {sorted(expected)}, got {sorted(config)}")
    for key in ("num_nodes", "num_relations", "hidden_channels"):
        if not isinstance(config[key], int) or isinstance(config[key], bool) or config[key] < 1:
            raise bad(f"expected {key} to be a positive int, got {config[key]!r}")
    for key in ("sparse", "train_features"):
        if not isinstance(config[key], bool):
            raise bad(f"expected {key} to be a bool, got {config[key]!r}")
    if config["feature_dtype"] not in ("float32", "bfloat16", "float16"):
        raise bad(f"expected feature_dtype float32, bfloat16 or float16, got "
                  f"{config['feature_dtype']!r}")
    if config["interaction"] not in INTERACTIONS:
        raise bad(f"expected interaction in {sorted(INTERACTIONS)}, got {config['interaction']!r}")
    margin = config["margin"]
    if not isinstance(margin, (int, float)) or not 0 < margin < math.inf:
        raise bad(f"expected a positive finite margin, got {margin!r}")
    shapes = config["feature_shapes"]
    if not isinstance(shapes, list) or not all(
            isinstance(s, list) and len(s) == 2 and isinstance(s[0], str)
            and MODALITY_NAME.fullmatch(s[0]) and isinstance(s[1], list) and len(s[1]) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in s[1])
            for s in shapes):
        raise bad("expected feature_shapes as [[modality name, [rows, columns]], ...]")
    # Every tensor the configuration implies must be in the file with that shape: the
    # file's own tensors bound what building the model allocates. The shapes are those
    # of the model itself, built on the meta device (nothing allocated).
    with torch.device("meta"):
        implied = _build(dict(config)).state_dict()
    for key, value in implied.items():
        tensor = state.get(key)
        if not isinstance(tensor, torch.Tensor) or tensor.shape != value.shape:
            got = list(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise bad(f"expected {key} of shape {list(value.shape)}, got {got}")
    for key, count in (("entity_names", config["num_nodes"]),
                       ("relation_names", config["num_relations"])):
        names = payload.get(key)
        if names is not None and (not isinstance(names, list) or len(names) != count
                                  or not all(isinstance(n, str) for n in names)):
            raise bad(f"expected {key} to be {count} strings")
    return config, state
