"""The training loop of AdaMF-MAT: epochs of steps, validation and early stopping, and
the post-epoch callbacks (checkpoints, trackers, the best model's file)."""
import time
from typing import Callable, Dict, Iterable, Optional

import torch
import torch.distributed as dist
from torch_geometric.data import Data
from tqdm.auto import tqdm

from mmkgc_pyg.data.kg import KGDataset, TripleIndex
from mmkgc_pyg.distributed import process_group
from mmkgc_pyg.errors import InvalidArgumentError, TrainingDiverged, TrainingInterrupted
from mmkgc_pyg.evaluation import FilterIndex, LinkPredictionQueries, evaluate_link_prediction
from mmkgc_pyg.nn.model import MMKGCModel
from mmkgc_pyg.training.config import TrainConfig, sparse_updates
from mmkgc_pyg.training.sampler import NegativeSampler
from mmkgc_pyg.training.step import TrainingStep, tf32_matmuls
from mmkgc_pyg.training.stoppers import EarlyStopper

#: What runs after each epoch: a callable of the epoch's record (see
#: :mod:`mmkgc_pyg.training.callbacks`).
Callback = Callable[[Dict], None]


class Trainer:
    r"""Trains an :class:`~mmkgc_pyg.nn.MMKGCModel` as AdaMF-MAT.

    Each epoch is a pass over the shuffled training triples in batches (with
    ``positives="with-replacement"``: batches drawn with replacement), each batch one
    :class:`~mmkgc_pyg.training.step.TrainingStep` (negative sampling, the model update,
    MAT's generator update; only the entities a batch names are embedded, so a step's
    cost does not grow with the graph). No host synchronisation happens inside an epoch:
    losses are accumulated on the device and read once per epoch. Every ``eval_every``
    epochs the :class:`~mmkgc_pyg.training.stoppers.EarlyStopper` validates the model,
    keeps its best weights and ends training after ``patience`` validations without
    improvement (with ``model_kept="last"``: keeps the latest, never stops); then the
    callbacks of :meth:`fit` see the epoch's record.

    Same seed, same device, same result: on the CPU bit for bit (the step's gradient sums
    are deterministic); on CUDA up to the order of cuBLAS's reductions.

    Args:
        model: the model to train, built for ``config`` (see
            :func:`~mmkgc_pyg.training.setup.build_model`): a model whose interaction,
            size, margin or modalities disagree with ``config`` is refused.
        dataset (KGDataset or torch_geometric.data.Data): the graph (train/valid/test
            triples, names); a PyG ``Data`` is read by :meth:`KGDataset.from_data
            <mmkgc_pyg.data.KGDataset.from_data>`.
        config (TrainConfig): hyperparameters.
        progress (bool): show progress bars.
    """

    def __init__(self, model: MMKGCModel, dataset, config: TrainConfig,
                 progress: bool = True):
        check_model_fits_config(model, config)
        self.model = model
        self.dataset = KGDataset.from_data(dataset) if isinstance(dataset, Data) else dataset
        self.config = config
        self.progress = progress
        self.device = model.device
        self.rank, self.world_size = process_group()
        self.train_triples = self.dataset.train.to(self.device)
        # One sort of the training triples, on the device, serves the sampler and the filter.
        train_index = TripleIndex(self.train_triples, self.dataset.num_entities,
                                  self.dataset.num_relations)
        sampler = NegativeSampler(train_index, self.dataset.num_entities,
                                  self.dataset.num_relations, config.negatives,
                                  mode=config.sampling,
                                  per_negative=config.negative_sides == "per-negative")
        self.filter_index = FilterIndex(
            train_index.union(torch.cat([self.dataset.valid, self.dataset.test])),
            self.dataset.num_relations)
        self._queries: Dict[str, LinkPredictionQueries] = {}
        self.step = TrainingStep(model, sampler, config,
                                 sparse_updates(config, self.dataset.num_entities),
                                 self.rank, self.world_size)
        # Every rank shuffles alike: the same global batches.
        self.shuffle_rng = torch.Generator(device=self.device).manual_seed(config.seed)
        # Validation inside fit shows no ranking bar of its own under the epochs' bar.
        self.stopper = EarlyStopper(model, lambda: self.evaluate("valid", progress=False),
                                    config.eval_every, config.patience, config.model_kept)
        self.epoch = 0
        self._stop_signal: Optional[int] = None
        # Within an epoch: where it started and how far it got, so that a checkpoint
        # written between two steps resumes exactly there (see run_state).
        self.epoch_progress: Optional[Dict] = None
        self.resume_progress: Optional[Dict] = None

    @property
    def best_epoch(self) -> int:
        return self.stopper.logic.best_epoch

    @property
    def best_mrr(self) -> float:
        return self.stopper.logic.best_metric

    @property
    def stop_requested(self) -> bool:
        """Whether :meth:`request_stop` was called."""
        return self._stop_signal is not None

    def request_stop(self, signal_number: int) -> None:
        """Makes training stop before its next step with
        :class:`~mmkgc_pyg.errors.TrainingInterrupted` (safe to call from a signal
        handler)."""
        self._stop_signal = signal_number

    def train_epoch(self) -> Dict:
        """One pass over the shuffled training triples (or the rest of an interrupted
        one, after a resume); with ``positives="with-replacement"``, ``floor(n / batch)``
        batches (at least one) of positives drawn uniformly with replacement instead."""
        self.model.train()
        start = time.perf_counter()
        state, self.resume_progress = self.resume_progress, None
        if state is None:
            state = {"shuffle_state": self.shuffle_rng.get_state(), "step": 0,
                     "loss_sum": torch.zeros((), device=self.device),
                     "generator_loss_sum": torch.zeros((), device=self.device),
                     "first_bad_step": torch.full((), -1, device=self.device),
                     "seconds": 0.0}
        self.shuffle_rng.set_state(state["shuffle_state"])
        # The epoch's positives come from the state saved at its start: a resumed epoch
        # draws them again, identical.
        count, size = self.train_triples.size(0), self.config.batch_size
        if self.config.positives == "with-replacement":
            order = torch.randint(count, (max(1, count // size) * size,), device=self.device,
                                  generator=self.shuffle_rng)
        else:
            order = torch.randperm(count, device=self.device, generator=self.shuffle_rng)
        # Each rank takes its share of every global batch (a last batch too small to
        # give every rank a triple is dropped).
        batches = [b.tensor_split(self.world_size)[self.rank]
                   for b in order.split(size) if b.numel() >= self.world_size]
        self.epoch_progress = state
        with tf32_matmuls(self.device, self.config.tf32):
            for step in range(state["step"], len(batches)):
                if self._stop_signal is not None:
                    state["seconds"] += time.perf_counter() - start
                    raise TrainingInterrupted(self._stop_signal, self.epoch + 1, step)
                loss, generator_loss = self.step(self.train_triples[batches[step]])
                state["loss_sum"] += loss
                finite = torch.isfinite(loss)
                if generator_loss is not None:
                    state["generator_loss_sum"] += generator_loss
                    finite &= torch.isfinite(generator_loss)
                # Remember the first non-finite step without synchronising.
                bad = ~finite & (state["first_bad_step"] < 0)
                state["first_bad_step"] = torch.where(bad, step, state["first_bad_step"])
                state["step"] = step + 1
        self.epoch_progress = None
        self.epoch += 1
        sums = torch.stack([state["loss_sum"], state["generator_loss_sum"]])
        first_bad_step = state["first_bad_step"]
        if self.world_size > 1:  # average the logs across ranks
            sums /= self.world_size
            dist.all_reduce(sums)
            dist.all_reduce(first_bad_step, op=dist.ReduceOp.MAX)
        # The one host synchronisation of an epoch: its losses and first bad step.
        loss_sum, generator_loss_sum, first_bad = torch.cat(
            [sums.double(), first_bad_step.double().view(1)]).tolist()
        if first_bad >= 0:
            raise TrainingDiverged(
                f"non-finite loss at epoch {self.epoch}, step {int(first_bad) + 1} "
                f"of {len(batches)}; last good checkpoint left unchanged "
                "(try a lower lr or lr_g)")
        seconds = state["seconds"] + time.perf_counter() - start
        return {"epoch": self.epoch, "loss": loss_sum / len(batches),
                "generator_loss": (generator_loss_sum / len(batches)
                                   if self.step.trains_generators else None),
                "seconds": seconds, "steps_per_s": len(batches) / seconds}

    def evaluate(self, split: str, categories=None, fusion_mask=None,
                 progress: Optional[bool] = None) -> Dict:
        """Filtered metrics of the current model on ``split`` (its
        :meth:`~mmkgc_pyg.data.KGDataset.evaluation_triples`; the filter holds every known
        triple); its ranking queries are built once, so repeated evaluations do not
        synchronise with the host. ``progress`` shows a ranking bar (default: the
        trainer's ``progress``)."""
        progress = self.progress if progress is None else progress
        if split not in self._queries:
            triples = self.dataset.evaluation_triples(split, self.config.raw_splits)
            self._queries[split] = LinkPredictionQueries.build(triples.to(self.device),
                                                               self.filter_index)
        return evaluate_link_prediction(self.model, self._queries[split], None,
                                        self.config.eval_batch_size, categories, fusion_mask,
                                        progress and self.rank == 0)

    def fit(self, callbacks: Iterable[Callback] = ()) -> Dict:
        """Trains until ``epochs``, early stopping or the time budget; leaves the best
        weights loaded. After each epoch (validated first when due: the record then holds
        ``valid``) every callback is called with the epoch's record, in order.

        Returns the last epoch's record."""
        config, callbacks = self.config, list(callbacks)
        record: Dict = {}
        start = time.perf_counter()
        bar = tqdm(total=config.epochs, initial=self.epoch, desc="training", unit="epoch",
                   disable=not self.progress or self.rank != 0)
        while self.epoch < config.epochs and not self.stopper.logic.stopped:
            record = self.train_epoch()
            out_of_time = 0 < config.time_budget <= time.perf_counter() - start
            if (self.stopper.logic.should_evaluate(self.epoch) or self.epoch == config.epochs
                    or out_of_time):
                record["valid"] = self.stopper.validate(self.epoch)
            for callback in callbacks:
                callback(record)
            bar.update(1)
            best = f"{self.best_mrr:.4f}" if self.stopper.best_state else "-"
            bar.set_postfix(loss=f"{record['loss']:.4f}", valid_mrr=best)
            if out_of_time:
                break
        bar.close()
        self.stopper.restore_best()
        return record


def check_model_fits_config(model: MMKGCModel, config: TrainConfig) -> None:
    """A :class:`Trainer` follows its config: a model built for other settings is refused
    (it would silently train something else)."""
    problems = []
    for setting, wanted, built in (
            ("interaction", config.interaction, model.interaction_name),
            ("dim", config.dim, model.hidden_channels),
            ("margin", config.margin, model.interaction.margin)):
        if wanted != built:
            problems.append(f"config.{setting}={wanted!r} but the model has {built!r}")
    if not config.modalities and model.adamf is not None:
        problems.append("config.modalities=False but the model has modalities "
                        f"{model.modalities}")
    if model.adamf is not None:
        dtype = str(next(iter(model.features.values())).dtype).split(".")[1]
        if dtype != config.feature_dtype:
            problems.append(f"config.feature_dtype={config.feature_dtype!r} but the model "
                            f"stores its features in {dtype!r}")
        if model.train_features != config.train_features:
            problems.append(f"config.train_features={config.train_features} but the model "
                            f"has train_features={model.train_features}")
        if config.missing_rows == "fused" and not bool(model.fusion_mask.all()):
            problems.append("config.missing_rows='fused' but the model masks missing "
                            "modalities out of its fusion")
    if model.sparse:
        problems.append("the model gives PyG-style sparse gradients (sparse=True); the "
                        "Trainer forms its own (config.sparse chooses lazy row updates)")
    if problems:
        raise InvalidArgumentError("Trainer: the model does not fit the config: "
                                   + "; ".join(problems) + " (build it with "
                                   "mmkgc_pyg.training.setup.build_model(dataset, config))")
