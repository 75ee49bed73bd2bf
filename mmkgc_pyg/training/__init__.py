"""Training: negative sampling, the configuration, the AdaMF-MAT objective, early
stopping, trackers and the training loop."""
from mmkgc_pyg.training.config import (PAPER_PRESETS, TrainConfig,
                                       preset_for)
from mmkgc_pyg.training.objective import GeneratorLoss, ModelLoss
from mmkgc_pyg.training.sampler import NegativeSampler
from mmkgc_pyg.training.stoppers import EarlyStopper
from mmkgc_pyg.training.trackers import HistoryTracker, TensorBoardTracker, Tracker
from mmkgc_pyg.training.trainer import Trainer

__all__ = ["TrainConfig", "PAPER_PRESETS", "preset_for", "NegativeSampler",
           "ModelLoss", "GeneratorLoss", "EarlyStopper", "Tracker", "HistoryTracker",
           "TensorBoardTracker", "Trainer"]
