"""Training configuration and the presets of the paper's official runs."""
from dataclasses import asdict, dataclass, fields
from typing import Dict


@dataclass
class TrainConfig:
    """Hyperparameters of a training run (names follow the command-line flags).

    ``dim`` is the paper's embedding size: complex dimensions for RotatE and ComplEx
    (entity vectors hold ``2 * dim`` reals), real dimensions for TransE and DistMult.
    ``eval_batch_size`` caps the queries of one ranking call (0: as many as the scorer's
    memory budget allows). ``time_budget`` stops training after the first epoch that
    ends past that many seconds (0: no limit; the last epoch is evaluated). On CUDA,
    ``tf32`` runs training matmuls on TF32 tensor cores and ``cuda_graph`` replays each
    full training step as one captured CUDA graph (one process; 4x faster epochs at
    the paper's DB15K configuration on an H200, see BENCHMARKS.md).
    """
    dim: int = 250
    margin: float = 12.0
    negatives: int = 128
    batch_size: int = 1024
    lr: float = 1e-4
    lr_g: float = 1e-4
    mu: float = 0.0
    adv_temperature: float = 2.0
    epochs: int = 1000
    eval_every: int = 50
    patience: int = 5
    seed: int = 0
    sampling: str = "bernoulli"
    scorer: str = "rotate"
    modalities: bool = True
    mat: bool = True
    train_features: bool = True
    eval_batch_size: int = 0
    checkpoint_every: int = 0
    time_budget: float = 0.0
    bf16: bool = False
    tf32: bool = True
    cuda_graph: bool = True
    tensorboard: bool = False

    @property
    def hidden_channels(self) -> int:
        return 2 * self.dim if self.scorer in ("rotate", "complex") else self.dim

    def to_dict(self) -> Dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


# The reference's scripts (method.md), with the README's learning rate for DB15K.
PAPER_PRESETS: Dict[str, Dict] = {
    "DB15K": dict(dim=250, margin=12.0, lr=1e-4),
    "MKG-W": dict(dim=200, margin=12.0, lr=2e-5),
    "MKG-Y": dict(dim=200, margin=4.0, lr=2e-5),
}

# Sized for the embedded synthetic graph: about a minute on a 2-core CPU.
SYNTHETIC_PRESET: Dict = dict(dim=32, margin=6.0, negatives=32, batch_size=512, lr=5e-3,
                              lr_g=1e-3, mu=0.1, epochs=25, eval_every=5, patience=3)


def preset_for(dataset_name: str) -> Dict:
    """Defaults for a dataset: the paper's for its benchmarks, small ones for the
    synthetic graph, the generic defaults otherwise."""
    if dataset_name == "synthetic":
        return dict(SYNTHETIC_PRESET)
    canonical = {_plain(name): values for name, values in PAPER_PRESETS.items()}
    return dict(canonical.get(_plain(dataset_name), {}))


def _plain(name: str) -> str:
    """``mkg_w``, ``MKGW`` and ``MKG-W`` name the same benchmark."""
    return "".join(ch for ch in name.upper() if ch.isalnum())
