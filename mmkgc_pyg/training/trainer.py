"""The training loop of AdaMF-MAT: sample, update the model, update MAT's generators,
validate, stop early, checkpoint."""
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch_geometric.data import Data
from tqdm.auto import tqdm

from mmkgc_pyg.checkpoint import save_checkpoint
from mmkgc_pyg.data.kg import KGDataset
from mmkgc_pyg.distributed import process_group
from mmkgc_pyg.errors import CheckpointError, TrainingDiverged, TrainingInterrupted
from mmkgc_pyg.evaluation import FilterIndex, LinkPredictionQueries, evaluate_link_prediction
from mmkgc_pyg.io import atomic_torch_save
from mmkgc_pyg.nn.mat import MAT
from mmkgc_pyg.nn.model import MMKGCModel
from mmkgc_pyg.training.config import TrainConfig
from mmkgc_pyg.training.lazy_adam import LazyAdam
from mmkgc_pyg.training.objective import GeneratorLoss, ModelLoss
from mmkgc_pyg.training.sampler import NegativeSampler
from mmkgc_pyg.training.stoppers import EarlyStopper
from mmkgc_pyg.training.trackers import Tracker, make_trackers


@contextmanager
def tf32_matmuls(device: torch.device, enabled: bool):
    """TF32 tensor-core matrix products on CUDA while inside (restored after): the wide
    feature projections run several times faster, with a 10-bit mantissa per input."""
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


class Trainer:
    r"""Trains an :class:`~mmkgc_pyg.nn.MMKGCModel` as AdaMF-MAT.

    Each step draws :math:`K` filtered negatives per positive
    (:class:`~mmkgc_pyg.training.NegativeSampler`), updates the model with
    :class:`~mmkgc_pyg.training.objective.ModelLoss` (the self-adversarial sigmoid loss plus
    :math:`\mu` times MAT's term), then MAT's generators with
    :class:`~mmkgc_pyg.training.objective.GeneratorLoss` (only for :math:`\mu > 0`: at
    :math:`\mu = 0` they cannot affect the model, so their update is skipped and the run is
    the same as one that trains them). A step projects and fuses only the entities it
    touches (:func:`~mmkgc_pyg.nn.touched.touched_entities`, a buffer of static size), so
    its cost does not grow with the graph; when a step names at least as many ids as
    there are entities (DB15K at the paper's batch) it fuses every entity once instead.

    No host synchronisation happens inside an epoch: losses are accumulated on the
    device and read once per epoch. On one GPU every full batch after a few warm-up
    steps replays one captured CUDA graph of the whole step (``cuda_graph``). Validation
    runs every ``eval_every`` epochs; the best model by valid MRR is kept (and written to
    ``out_dir/model.pt``); the :class:`~mmkgc_pyg.training.stoppers.EarlyStopper` ends
    training after ``patience`` validations without improvement.

    Args:
        model: the model to train.
        dataset (KGDataset or torch_geometric.data.Data): the graph (train/valid/test
            triples, names); a PyG ``Data`` is read by :meth:`KGDataset.from_data
            <mmkgc_pyg.data.KGDataset.from_data>`.
        config (TrainConfig): hyperparameters.
        out_dir (str or Path, optional): where checkpoints and logs go.
        progress (bool): show a progress bar.
        dataset_info (dict, optional): saved with the model, e.g. the dataset's folder
            (``path``) so that evaluation can find it again.
        trackers (List[Tracker], optional): where epochs are logged (default: the history
            file and ``config.trackers`` in ``out_dir``).
    """

    def __init__(self, model: MMKGCModel, dataset, config: TrainConfig,
                 out_dir: Optional[Path] = None, progress: bool = True,
                 dataset_info: Optional[Dict] = None,
                 trackers: Optional[List[Tracker]] = None):
        self.model = model
        if isinstance(dataset, Data):
            dataset = KGDataset.from_data(dataset)
        self.dataset = dataset
        self.dataset_info = {"name": dataset.name, "fingerprint": dataset.fingerprint(),
                             **(dataset_info or {})}
        self.config = config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.progress = progress
        self.device = model.node_emb.weight.device
        self.train_triples = dataset.train.to(self.device)
        self.sampler = NegativeSampler(dataset.train, dataset.num_entities,
                                       dataset.num_relations, config.negatives,
                                       mode=config.sampling, device=self.device)
        self.filter_index = FilterIndex(dataset.known_triples(),
                                        dataset.num_relations).to(self.device)
        self._queries: Dict[str, LinkPredictionQueries] = {}
        self.rank, self.world_size = process_group()
        # Sparse gradients have data-dependent sizes: no CUDA graph for a sparse model.
        self.graphable = (config.cuda_graph and self.device.type == "cuda"
                          and self.world_size == 1 and not model.sparse)
        # Every rank shuffles alike (the same global batches) but draws its own
        # negatives and noise.
        self.shuffle_rng = torch.Generator(device=self.device).manual_seed(config.seed)
        self.rng = torch.Generator(device=self.device).manual_seed(config.seed + 1 + self.rank)
        # MAT needs modalities to imitate; its generators train beside the model.
        self.mat = (MAT(model.modalities, model.interaction.entity_channels).to(self.device)
                    if config.mat and model.adamf is not None else None)
        # On CUDA one fused kernel updates all parameters (the default Adam launches
        # several per tensor); the CPU keeps the default for bit-for-bit reproducible runs.
        # A sparse model's tables get a lazy Adam over the rows a step touched.
        adam = dict(fused=True, capturable=self.graphable) if self.device.type == "cuda" else {}
        tables = ([model.node_emb.weight, model.rel_emb.weight,
                   *(model.features.values() if model.adamf is not None else ())]
                  if model.sparse else [])
        tables = [p for p in tables if p.requires_grad]
        self.model_optimizer = torch.optim.Adam(
            [p for p in model.parameters() if p.requires_grad and all(p is not t for t in tables)],
            lr=config.lr, **adam)
        self.sparse_optimizer = LazyAdam(tables, lr=config.lr) if tables else None
        self.generator_optimizer = (torch.optim.Adam(self.mat.parameters(), lr=config.lr_g,
                                                     **adam)
                                    if self.mat is not None else None)
        self.model_loss = self._distributed(ModelLoss(model, config.adv_temperature, config.mu,
                                                      config.mat_loss))
        self.generator_loss = (self._distributed(GeneratorLoss(self.mat, config.adv_temperature))
                               if self.mat is not None else None)
        self.stopper = EarlyStopper(config.eval_every, config.patience)
        self.trackers = (trackers if trackers is not None
                         else make_trackers(config.trackers, self.out_dir if self.rank == 0
                                            else None))
        self.epoch = 0
        self.best_state: Optional[Dict[str, Tensor]] = None
        self.best_valid: Optional[Dict] = None  # the valid metrics of best_state
        self._graph = None  # the captured step (CUDA graphs), built on first use
        self._graph_warmup = 3  # eager steps before capture (optimiser state, autotuning)
        self.run_id: Optional[str] = None  # saved in checkpoints: which run they belong to
        self._stop_signal: Optional[int] = None
        # Within an epoch: where it started and how far it got, so that a checkpoint
        # written between two steps resumes exactly there.
        self._progress: Optional[Dict] = None
        self._resume_progress: Optional[Dict] = None

    def _distributed(self, loss: torch.nn.Module) -> torch.nn.Module:
        """With several processes, DDP averages the update's gradients over the ranks."""
        if self.world_size == 1:
            return loss
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(loss, device_ids=ids)

    @property
    def trains_generators(self) -> bool:
        """MAT's generators are trained only when their fakes enter the model's loss
        (``mu > 0``): at ``mu = 0`` they cannot change the model."""
        return self.mat is not None and self.config.mu > 0

    # ---------------------------------------------------------------- one step
    def step(self, batch: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """One model update and, when :attr:`trains_generators`, one generator update.

        Returns the model loss and the generator loss (None without a generator update)
        as 0-d tensors, without host synchronisation. With ``cuda_graph`` every full
        batch after a few eager warm-up steps replays one captured CUDA graph of the
        whole step (same arithmetic, no per-kernel launch cost)."""
        if self.graphable and batch.size(0) == self.config.batch_size:
            if self._graph is not None:
                self._static_batch.copy_(batch)
                self._graph.replay()
                return tuple(None if x is None else x.clone() for x in self._static_losses)
            if self._graph_warmup == 0:
                self._capture(batch)
                return self.step(batch)
            self._graph_warmup -= 1
            side = torch.cuda.Stream(self.device)  # warm-up off the capture stream
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                losses = self._eager_step(batch)
            torch.cuda.current_stream(self.device).wait_stream(side)
            return losses
        return self._eager_step(batch)

    def _eager_step(self, batch: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        candidates, corrupt_head = self.sampler(batch, generator=self.rng)
        loss = self._update(self._model_optimizers, self.model_loss, batch, candidates,
                            corrupt_head, self.mat, self.rng)
        if self.trains_generators:
            return loss, self._update([self.generator_optimizer], self.generator_loss, batch,
                                      self.model, self.rng)
        if self.mat is not None:
            # The generator update would draw this noise from the same stream as the
            # negatives: draw it anyway, so mu = 0 samples what it always sampled.
            for _ in ("fake heads", "fake tails"):
                self.mat.draw_noise(batch.size(0), self.rng)
        return loss, None

    @property
    def _model_optimizers(self) -> List[torch.optim.Optimizer]:
        return [o for o in (self.model_optimizer, self.sparse_optimizer) if o is not None]

    def _update(self, optimizers, loss_fn, *args) -> Tensor:
        # Optional bf16 autocast: the projections of wide feature tables dominate. A CUDA
        # graph replays fixed kernels, so autocast must not cache casts across steps.
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.config.bf16,
                            cache_enabled=not self.graphable):
            loss = loss_fn(*args)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        return loss.detach()

    def _capture(self, batch: Tensor) -> None:
        """Records one whole step (both updates, optimiser steps included) as a CUDA
        graph reading ``_static_batch``; the sampling generator advances on each replay."""
        graph = torch.cuda.CUDAGraph()
        graph.register_generator_state(self.rng)
        self._static_batch = batch.clone()
        for optimizer in (self.model_optimizer, self.generator_optimizer):
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            self._static_losses = self._eager_step(self._static_batch)
        self._graph = graph

    # ---------------------------------------------------------------- epochs
    def request_stop(self, signal_number: int) -> None:
        """Makes training stop before its next step with :class:`TrainingInterrupted`
        (safe to call from a signal handler)."""
        self._stop_signal = signal_number

    def train_epoch(self) -> Dict:
        """One pass over the shuffled training triples (or the rest of an interrupted
        one, after :meth:`resume`)."""
        self.model.train()
        start = time.perf_counter()
        progress, self._resume_progress = self._resume_progress, None
        if progress is None:
            progress = {"shuffle_state": self.shuffle_rng.get_state(), "step": 0,
                        "loss_sum": torch.zeros((), device=self.device),
                        "generator_loss_sum": torch.zeros((), device=self.device),
                        "first_bad_step": torch.full((), -1, device=self.device),
                        "seconds": 0.0}
        self.shuffle_rng.set_state(progress["shuffle_state"])
        order = torch.randperm(self.train_triples.size(0), device=self.device,
                               generator=self.shuffle_rng)
        # Each rank takes its share of every global batch (a last batch too small to
        # give every rank a triple is dropped).
        batches = [b.tensor_split(self.world_size)[self.rank]
                   for b in order.split(self.config.batch_size) if b.numel() >= self.world_size]
        self._progress = progress
        with tf32_matmuls(self.device, self.config.tf32):
            for step in range(progress["step"], len(batches)):
                if self._stop_signal is not None:
                    progress["seconds"] += time.perf_counter() - start
                    raise TrainingInterrupted(self._stop_signal, self.epoch + 1, step)
                loss, generator_loss = self.step(self.train_triples[batches[step]])
                progress["loss_sum"] += loss
                finite = torch.isfinite(loss)
                if generator_loss is not None:
                    progress["generator_loss_sum"] += generator_loss
                    finite &= torch.isfinite(generator_loss)
                # Remember the first non-finite step without synchronising.
                bad = ~finite & (progress["first_bad_step"] < 0)
                progress["first_bad_step"] = torch.where(bad, step, progress["first_bad_step"])
                progress["step"] = step + 1
        self._progress = None
        self.epoch += 1
        loss_sum, generator_loss_sum = progress["loss_sum"], progress["generator_loss_sum"]
        first_bad_step = progress["first_bad_step"]
        if self.world_size > 1:  # one synchronisation per epoch: average the logs
            sums = torch.stack([loss_sum, generator_loss_sum]) / self.world_size
            dist.all_reduce(sums)
            loss_sum, generator_loss_sum = sums.unbind()
            dist.all_reduce(first_bad_step, op=dist.ReduceOp.MAX)
        if first_bad_step.item() >= 0:
            raise TrainingDiverged(
                f"non-finite loss at epoch {self.epoch}, step {first_bad_step.item() + 1} "
                f"of {len(batches)}; last good checkpoint left unchanged "
                "(try a lower lr or lr_g)")
        seconds = progress["seconds"] + time.perf_counter() - start
        return {"epoch": self.epoch, "loss": loss_sum.item() / len(batches),
                "generator_loss": (generator_loss_sum.item() / len(batches)
                                   if self.trains_generators else None),
                "seconds": seconds, "steps_per_s": len(batches) / seconds}

    def evaluate(self, split: str, categories=None, fusion_mask=None) -> Dict:
        """Filtered metrics of the current model on ``split`` (its
        :meth:`~mmkgc_pyg.data.KGDataset.evaluation_triples`; the filter holds every known
        triple); its ranking queries are built once, so repeated evaluations do not
        synchronise with the host."""
        if split not in self._queries:
            triples = self.dataset.evaluation_triples(split, self.config.raw_splits)
            self._queries[split] = LinkPredictionQueries.build(triples.to(self.device),
                                                               self.filter_index)
        return evaluate_link_prediction(self.model, self._queries[split], None,
                                        self.config.eval_batch_size, categories, fusion_mask,
                                        self.progress)

    def fit(self, on_epoch: Optional[Callable[[Dict], None]] = None) -> Dict:
        """Trains until ``epochs``, early stopping or the time budget; leaves the best
        weights loaded.

        Returns the last epoch's record; ``on_epoch`` sees every record."""
        cfg = self.config
        record: Dict = {}
        start = time.perf_counter()
        bar = tqdm(total=cfg.epochs, initial=self.epoch, desc="training", unit="epoch",
                   disable=not self.progress or self.rank != 0)
        while self.epoch < cfg.epochs and not self.stopper.stopped:
            record = self.train_epoch()
            out_of_time = 0 < cfg.time_budget <= time.perf_counter() - start
            if (self.stopper.should_evaluate(self.epoch) or self.epoch == cfg.epochs
                    or out_of_time):
                self._validate(record)
            if cfg.checkpoint_every and self.epoch % cfg.checkpoint_every == 0:
                self.save_training_state()
            for tracker in self.trackers:
                tracker.log_epoch(record)
            if on_epoch is not None:
                on_epoch(record)
            bar.update(1)
            best = f"{self.stopper.best_metric:.4f}" if self.best_state else "-"
            bar.set_postfix(loss=f"{record['loss']:.4f}", valid_mrr=best)
            if out_of_time:
                break
        bar.close()
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return record

    def _validate(self, record: Dict) -> None:
        """Every rank ranks its share of the valid queries and receives all ranks (the
        same metrics everywhere, so the stoppers agree); every rank keeps the best
        weights, rank 0 writes them."""
        record["valid"] = self.evaluate("valid")
        if self.stopper.report(self.epoch, record["valid"]["mrr"]):
            self.best_valid = record["valid"]
            self.best_state = {k: v.detach().to("cpu", copy=True)
                               for k, v in self.model.state_dict().items()}
            if self.out_dir is not None and self.rank == 0:
                self.save_best_model(self.out_dir / "model.pt")

    @property
    def best_epoch(self) -> int:
        return self.stopper.best_epoch

    @property
    def best_mrr(self) -> float:
        return self.stopper.best_metric

    # ---------------------------------------------------------------- persistence
    def save_best_model(self, path: Path):
        save_checkpoint(self.model, path, self.dataset_info, self.best_state)

    def state_dict(self) -> Dict:
        """Everything needed to continue training exactly where it stopped."""
        return {
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "mat": self.mat.state_dict() if self.mat is not None else None,
            "model_optimizer": self.model_optimizer.state_dict(),
            "sparse_optimizer": (self.sparse_optimizer.state_dict()
                                 if self.sparse_optimizer else None),
            "generator_optimizer": (self.generator_optimizer.state_dict()
                                    if self.generator_optimizer else None),
            "rng": self._all_rank_rng_states(),
            "shuffle_rng": self.shuffle_rng.get_state(),
            "stopper": self.stopper.state_dict(),
            "best_state": self.best_state,
            "best_valid": self.best_valid,
            "epoch_progress": self._progress,
            "run_id": self.run_id,
        }

    def load_state_dict(self, state: Dict):
        self.epoch = state["epoch"]
        self.model.load_state_dict(state["model"])
        if self.mat is not None:
            self.mat.load_state_dict(state["mat"])
        self.model_optimizer.load_state_dict(state["model_optimizer"])
        if self.sparse_optimizer is not None:
            self.sparse_optimizer.load_state_dict(state["sparse_optimizer"])
        if self.generator_optimizer is not None:
            self.generator_optimizer.load_state_dict(state["generator_optimizer"])
        self.rng.set_state(state["rng"][self.rank].cpu())
        self.shuffle_rng.set_state(state["shuffle_rng"].cpu())
        self.stopper.load_state_dict(state["stopper"])
        self.best_state = state["best_state"]
        self.best_valid = state["best_valid"]
        self._resume_progress = state["epoch_progress"]
        if self._resume_progress is not None:
            self._resume_progress["shuffle_state"] = self._resume_progress["shuffle_state"].cpu()

    def _all_rank_rng_states(self):
        """Every rank's sampling RNG state (each rank draws its own negatives)."""
        state = self.rng.get_state()
        if self.world_size == 1:
            return [state]
        states = [None] * self.world_size
        dist.all_gather_object(states, state)
        return states

    def save_training_state(self):
        """Atomically writes ``out_dir/checkpoint.pt`` from rank 0 (see
        :meth:`state_dict`); every rank must call it."""
        state = self.state_dict()
        if self.rank == 0:
            atomic_torch_save(state, self.out_dir / "checkpoint.pt")

    def resume(self, run_dir: Path):
        """Continues from ``run_dir/checkpoint.pt`` (which must carry :attr:`run_id`);
        the trackers drop the epochs logged after it (by a run that was killed), since
        they will be redone."""
        run_dir = Path(run_dir)
        path = run_dir / "checkpoint.pt"
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:  # unpickling errors vary by torch version
            raise CheckpointError(f"{path}: expected a training checkpoint of this run "
                                  f"({exc.__class__.__name__})") from None
        if not isinstance(state, dict) or state.get("run_id") != self.run_id:
            found = state.get("run_id") if isinstance(state, dict) else None
            raise CheckpointError(f"{path}: belongs to another run (run id {found}, while "
                                  f"config.json is run {self.run_id}); start a new run "
                                  f"instead of resuming")
        try:
            self.load_state_dict(state)
        except Exception as exc:  # missing keys or mismatched shapes: not this run's
            raise CheckpointError(f"{path}: expected a training checkpoint of this run "
                                  f"({exc.__class__.__name__}: {str(exc)[:120]})") from None
        if self.rank != 0:
            return
        # model.pt may hold a best model of an epoch after the checkpoint: redo it too.
        if self.best_state is not None:
            self.save_best_model(run_dir / "model.pt")
        for tracker in self.trackers:
            tracker.resume(self.epoch)
