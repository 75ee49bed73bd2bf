"""Training: the run spec and its setup, the configuration, negative sampling, the
AdaMF-MAT objective, the training step, early stopping, callbacks, trackers, the training
loop, the run state and the pipeline that ties them together."""
from mmkgc_pyg.training.callbacks import BestModelWriter, EpochLogger, TrainingCheckpointer
from mmkgc_pyg.training.config import PAPER_PRESETS, TrainConfig, preset_for
from mmkgc_pyg.training.objective import GeneratorLoss, ModelLoss
from mmkgc_pyg.training.runner import PipelineResult, pipeline
from mmkgc_pyg.training.sampler import NegativeSampler
from mmkgc_pyg.training.setup import DatasetSpec, RunSpec, build_model
from mmkgc_pyg.training.step import TrainingStep
from mmkgc_pyg.training.stoppers import EarlyStopper, EarlyStoppingLogic
from mmkgc_pyg.training.trackers import HistoryTracker, TensorBoardTracker, Tracker
from mmkgc_pyg.training.trainer import Trainer

__all__ = ["TrainConfig", "PAPER_PRESETS", "preset_for", "RunSpec", "DatasetSpec",
           "build_model", "NegativeSampler", "ModelLoss", "GeneratorLoss", "TrainingStep",
           "EarlyStopper", "EarlyStoppingLogic", "Tracker", "HistoryTracker",
           "TensorBoardTracker", "BestModelWriter", "TrainingCheckpointer", "EpochLogger",
           "Trainer", "pipeline", "PipelineResult"]
