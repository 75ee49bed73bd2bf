"""Training: negative sampling, the configuration and the training loop."""
from mmkgc_pyg.training.config import PAPER_PRESETS, TrainConfig, preset_for
from mmkgc_pyg.training.sampler import NegativeSampler
from mmkgc_pyg.training.trainer import Trainer, TrainingDiverged

__all__ = ["TrainConfig", "PAPER_PRESETS", "preset_for",
           "NegativeSampler", "Trainer", "TrainingDiverged"]
