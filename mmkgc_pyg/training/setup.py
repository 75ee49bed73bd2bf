"""What a run is, and the objects it needs: the :class:`RunSpec` (the dataset, its feature
files, the :class:`~mmkgc_pyg.training.TrainConfig`, the test-time modality drop and the
device), the checks that tie settings to a dataset, the memory a run needs, and the model
it trains.

A spec is written in one shape, the flat mapping of configuration files (see
:mod:`~mmkgc_pyg.training.config_file`): the run settings of :data:`RUN_KEYS` beside the
:class:`~mmkgc_pyg.training.TrainConfig` fields. Precedence when one is assembled from
several sources: the defaults, then the dataset's preset (the protocol's:
:func:`~mmkgc_pyg.training.config.preset_for`), then a file, then explicit values (flags);
the switches a protocol sets (:data:`~mmkgc_pyg.training.config.PROTOCOLS`) apply where
neither a file nor a flag gives them.
"""
import contextlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch_geometric.data import Data

from mmkgc_pyg.data.kg import MODALITY_NAME, KGDataset
from mmkgc_pyg.errors import ConfigError
from mmkgc_pyg.nn.mat import MAT
from mmkgc_pyg.nn.model import MMKGCModel
from mmkgc_pyg.score_blocks import SCORE_BUDGET
from mmkgc_pyg.training.config import TrainConfig, preset_for, sparse_updates

#: Settings of a run beside its :class:`TrainConfig` (key: what it holds).
RUN_KEYS = {
    "dataset": "the dataset folder (null: the embedded synthetic graph)",
    "features": "modality -> feature file",
    "masks": "modality -> mask file",
    "drop_modality_rate": "fraction of entities whose modalities are hidden at test time",
    "device": "auto, cpu, cuda or cuda:N",
}


@dataclass
class DatasetSpec:
    """Where a run's graph comes from.

    Args:
        path: a dataset folder (OpenKE or labelled triples), or None for the embedded
            synthetic graph.
        features: modality name -> feature file (besides those the folder holds).
        masks: modality name -> mask file.
    """
    path: Optional[str] = None
    features: Dict[str, str] = field(default_factory=dict)
    masks: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        for key in ("features", "masks"):
            pairs = getattr(self, key)
            if not isinstance(pairs, dict) or not all(
                    isinstance(m, str) and MODALITY_NAME.fullmatch(m) and isinstance(p, str)
                    and p for m, p in pairs.items()):
                raise ConfigError(key, pairs, "a mapping of modality names (letters, digits, "
                                  "_ and -) to paths")
        if self.path is None and (self.features or self.masks):
            raise ConfigError("features", self.features or self.masks,
                              "a dataset folder as well (the synthetic graph has its own)")

    def absolute(self) -> "DatasetSpec":
        """The same spec with absolute paths (so that it loads from anywhere)."""
        def resolve(pairs):
            return {m: str(Path(p).resolve()) for m, p in pairs.items()}

        return DatasetSpec(str(Path(self.path).resolve()) if self.path else None,
                           resolve(self.features), resolve(self.masks))

    def load(self) -> KGDataset:
        """The dataset (warns about what may mislead, see
        :func:`~mmkgc_pyg.data.load_openke`)."""
        from mmkgc_pyg.data import load_dataset_folder, make_synthetic_kg

        if self.path is None:
            return make_synthetic_kg()
        return load_dataset_folder(self.path, features=self.features, mask_files=self.masks)


@dataclass
class RunSpec:
    """Everything that says what a run computes.

    Args:
        dataset: where the graph comes from.
        config: the hyperparameters.
        drop_modality_rate: fraction of entities whose modalities are hidden at test
            time (the paper's modality-missing setting).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """
    dataset: DatasetSpec
    config: TrainConfig
    drop_modality_rate: float = 0.0
    device: str = "auto"

    def __post_init__(self):
        rate = self.drop_modality_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ConfigError("drop_modality_rate", rate, "a number in [0, 1]")
        self.drop_modality_rate = float(rate)
        if not isinstance(self.device, str):
            raise ConfigError("device", self.device, "auto, cpu, cuda or cuda:N")

    def to_dict(self) -> Dict[str, Any]:
        """The flat shape of configuration files."""
        return {"dataset": self.dataset.path, "features": dict(self.dataset.features),
                "masks": dict(self.dataset.masks),
                "drop_modality_rate": self.drop_modality_rate, "device": self.device,
                **self.config.to_dict()}

    @classmethod
    def from_settings(cls, settings: Dict[str, Any],
                      dataset: Optional[KGDataset] = None) -> Tuple["RunSpec", KGDataset]:
        """The spec of flat ``settings`` (any subset of the file shape) and its dataset:
        ``dataset`` when given, else loaded from the settings. Settings not given take
        the dataset's preset, then the defaults.

        Raises:
            ConfigError: a setting of the wrong type or outside its range, naming it.
        """
        unknown = sorted(set(settings) - set(RUN_KEYS) - set(TrainConfig.__dataclass_fields__))
        if unknown:
            raise ConfigError(unknown[0], settings[unknown[0]], "a known setting")
        data = DatasetSpec(settings.get("dataset"), dict(settings.get("features") or {}),
                           dict(settings.get("masks") or {}))
        if dataset is None:
            dataset = data.load()
        names = {f.name for f in fields(TrainConfig)}
        given = {k: v for k, v in settings.items() if k in names}
        # An unknown protocol takes no preset; TrainConfig refuses it, naming it.
        preset = preset_for(dataset.name, given.get("protocol", "ours"))
        config = TrainConfig(**{**preset, **given})
        spec = cls(data, config, settings.get("drop_modality_rate") or 0.0,
                   settings.get("device") or "auto")
        check_run(dataset, spec)
        return spec, dataset


def check_run(dataset: KGDataset, spec: RunSpec) -> None:
    """Settings that are valid alone but not on this dataset.

    Raises:
        ConfigError: naming the setting.
    """
    for split in ("train", "valid", "test"):
        if len(getattr(dataset, split)) == 0:
            raise ConfigError("dataset", spec.dataset.path or dataset.name,
                              f"at least one {split} triple")
    if spec.config.negatives >= dataset.num_entities:
        raise ConfigError("negatives", spec.config.negatives,
                          f"fewer negatives than the {dataset.num_entities} entities")
    if spec.drop_modality_rate > 0 and not (spec.config.modalities and dataset.modalities):
        raise ConfigError("drop_modality_rate", spec.drop_modality_rate,
                          "0 for a model without modalities")


def dataset_metadata(spec: RunSpec, dataset: KGDataset) -> Dict[str, Any]:
    """How to load the dataset again from anywhere, saved with a run and its models:
    its name, fingerprint and feature shapes, and the spec's absolute paths."""
    absolute = spec.dataset.absolute()
    return {"name": dataset.name, "fingerprint": dataset.fingerprint(), "path": absolute.path,
            "features": absolute.features, "masks": absolute.masks,
            "feature_shapes": feature_shapes(dataset)}


def feature_shapes(dataset: KGDataset) -> Dict[str, list]:
    """Each modality's feature table shape ``[N, d]``."""
    return {m: list(x.shape) for m, x in dataset.features.items()}


def build_model(dataset: Union[KGDataset, Data], config: TrainConfig,
                device: Optional[Union[str, torch.device]] = None) -> MMKGCModel:
    """The model ``config`` describes for ``dataset`` (its sizes, and its modalities unless
    ``config.modalities`` is off; with ``config.missing_rows == "fused"`` every entity
    counts as having every modality), with the dataset's entity and relation names, on
    ``device`` (by default PyTorch's default device). A PyG ``Data`` is read by
    :meth:`KGDataset.from_data <mmkgc_pyg.data.KGDataset.from_data>`.

    The model is constructed on ``device``: its tables are allocated and initialised
    there and each feature table is copied there once, where building on the CPU and
    moving it would initialise millions of rows on the CPU and copy every table again."""
    if isinstance(dataset, Data):
        dataset = KGDataset.from_data(dataset)
    features = dataset.features if config.modalities else {}
    # Fused missing rows (the reference's way): every row counts as present, so a zero row
    # is projected to the projection's bias and fused and trained like the others.
    masks = dataset.masks if config.missing_rows == "masked" else {}
    with torch.device(device) if device is not None else contextlib.nullcontext():
        model = MMKGCModel(dataset.num_entities, dataset.num_relations, config.dim,
                           config.margin, features=features, masks=masks,
                           interaction=config.interaction,
                           train_features=config.train_features,
                           feature_dtype=getattr(torch, config.feature_dtype))
    model.entity_names, model.relation_names = dataset.entity_names, dataset.relation_names
    return model


@dataclass
class MemoryPlan:
    """The bytes a run needs on its device, by part, and what the device has free.

    Attributes:
        state: parameters, gradients and optimiser state (the model's and MAT's).
        step: what one training step allocates on top (activations and their gradients).
        evaluation: what ranking allocates on top of the parameters.
        free: the device's free memory now (None when unknown).
    """
    state: int
    step: int
    evaluation: int
    free: Optional[int]

    @property
    def needed(self) -> int:
        """The peak: the state, the larger of a step and an evaluation, and
        :data:`RUN_OVERHEAD`."""
        return self.state + max(self.step, self.evaluation) + RUN_OVERHEAD


#: Allocations of a run beyond the counted tensors (autograd's bookkeeping, the
#: optimiser's temporaries, first-call buffers), measured on the CPU.
RUN_OVERHEAD = 128 << 20


def memory_plan(dataset: KGDataset, config: TrainConfig, device: torch.device) -> MemoryPlan:
    r"""What a run of ``config`` on ``dataset`` needs on ``device``, counted before
    anything is allocated (the model and MAT's generators are built on the meta device).

    *State.* A trained value costs itself, its gradient and two Adam moments of its dtype
    (16 bytes in float32); a table of the sparse step itself and two float32 moments (its
    gradients hold the touched rows only); a frozen value itself.

    *A step* embeds :math:`S` entities (all of them when the step names at least as many
    ids, else the distinct ones, at most :math:`B(2 + K)`), each a stack of :math:`1 + M`
    vectors of :math:`D` reals, and scores :math:`B (1 + K)` candidates: about
    :math:`8 \cdot 4 S D (1 + M)` bytes for the fusion, its projections and their
    gradients, and, where candidates are gathered as tensors (the PyTorch path, off
    CUDA), :math:`3 \cdot 4 B (1 + K) D` for the gathered rows, their differences and
    gradients (twice that with ``negative_sides="per-negative"``: both queries are
    scored). *Evaluation* holds the joint table
    :math:`N D`, the query vectors of the larger split and four blocks of
    :data:`~mmkgc_pyg.score_blocks.SCORE_BUDGET` scores.

    The factors were fitted to the peak resident memory of one step and one validation
    on the CPU (the synthetic graph, RotatE dims 32 to 2048, 8 to 64 negatives, batches
    128 to 512: ``benchmarks/memory_calibration.py``), where the estimate is within -10 %
    to +15 % of the measured peak; the check refuses a run whose estimate exceeds the
    free memory.
    """
    with torch.device("meta"):
        model = build_model(dataset, config)
        mat = (MAT(model.modalities, model.interaction.entity_channels)
               if config.mat and model.adamf is not None else None)
    lazy = ("node_emb.weight", *(f"features.{m}" for m in model.modalities))
    sparse = sparse_updates(config, dataset.num_entities)
    state = 0
    for name, param in [*model.named_parameters(),
                        *(mat.named_parameters() if mat is not None else ())]:
        size = param.element_size()
        if not param.requires_grad:
            per_value = size
        elif sparse and name in lazy:
            per_value = size + 8
        else:
            per_value = 4 * size
        state += per_value * param.numel()
    width, stack = model.interaction.entity_channels, len(model.modality_names)
    ids = config.batch_size * (2 + config.negatives)
    rows = dataset.num_entities if not sparse and ids >= dataset.num_entities \
        else min(ids, dataset.num_entities)
    step = 8 * 4 * rows * width * stack
    if device.type != "cuda":
        sides = 2 if config.negative_sides == "per-negative" else 1  # both queries scored
        step += sides * 3 * 4 * config.batch_size * (1 + config.negatives) * width
    queries = 2 * max(len(dataset.valid), len(dataset.test))
    evaluation = 4 * (dataset.num_entities + queries) * width + 4 * 4 * SCORE_BUDGET
    return MemoryPlan(state, step, evaluation, _free_memory(device))


def _free_memory(device: torch.device) -> Optional[int]:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
