r"""One training step of AdaMF-MAT as one unit: sample, update the model, update MAT's
generators; optimisers, gradient averaging across processes, autocast and TF32, and the
capture of the whole step as one CUDA graph.

The step has two configurations (``TrainConfig.sparse``,
:func:`~mmkgc_pyg.training.config.sparse_updates`):

* **dense**: autograd carries the gradients to every table and one Adam updates all
  parameters (the paper's setting);
* **sparse**: the rows of the entities a batch names are gathered once into leaf tensors
  of static size (:func:`~mmkgc_pyg.training.objective.embed_batch`); their gradients go
  to :class:`~mmkgc_pyg.training.lazy_adam.LazyAdam`, which updates only those rows of
  the entity and feature tables, while the relation table and the fusion's weights take
  the dense Adam. A step then costs what the batch touches, not what the graph holds.

Neither synchronises with the host, so on one GPU every full batch after a few eager
warm-up steps replays one captured CUDA graph of the whole step. With several processes
(``torch.distributed``) every gradient is averaged across them in one all-reduce; the
sparse step first makes every process gather the union of all processes' entities, so
that their rows line up.
"""
from contextlib import contextmanager
from typing import Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
from torch import Tensor

from mmkgc_pyg.errors import ConfigError
from mmkgc_pyg.nn.mat import MAT
from mmkgc_pyg.nn.model import MMKGCModel
from mmkgc_pyg.training.config import TrainConfig
from mmkgc_pyg.training.lazy_adam import LazyAdam
from mmkgc_pyg.training.objective import GeneratorLoss, ModelLoss, StepRows, embed_batch
from mmkgc_pyg.training.sampler import NegativeSampler


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


class TrainingStep:
    r"""Runs training steps: each draws :math:`K` filtered negatives per positive, updates
    the model with :class:`~mmkgc_pyg.training.objective.ModelLoss` and, for :math:`\mu > 0`,
    MAT's generators with :class:`~mmkgc_pyg.training.objective.GeneratorLoss` (at
    :math:`\mu = 0` they cannot affect the model, so their update is skipped, its noise
    still drawn so that the random stream is the same).

    Args:
        model: the model (``sparse=False``: its gradients are the step's to form).
        sampler: draws the negatives.
        config: ``lr``, ``lr_g``, ``mu``, ``mat``, ``mat_loss``, ``adv_temperature``,
            ``bf16``, ``cuda_graph``, ``batch_size``, ``seed``.
        sparse: the sparse configuration (else the dense one).
        rank, world_size: this process and the number of processes.
    """

    def __init__(self, model: MMKGCModel, sampler: NegativeSampler, config: TrainConfig,
                 sparse: bool = False, rank: int = 0, world_size: int = 1):
        self.model, self.sampler, self.config, self.sparse = model, sampler, config, sparse
        self.device = model.device
        self.world_size = world_size
        self.graphable = (config.cuda_graph and self.device.type == "cuda"
                          and world_size == 1)
        # Every rank shuffles alike but draws its own negatives and noise.
        self.rng = torch.Generator(device=self.device).manual_seed(config.seed + 1 + rank)
        # MAT needs modalities to imitate; its generators train beside the model.
        self.mat = (MAT(model.modalities, model.interaction.entity_channels).to(self.device)
                    if config.mat and model.adamf is not None else None)
        if world_size > 1:  # every rank starts from rank 0's weights
            for tensor in [*model.state_dict().values(),
                           *(self.mat.state_dict().values() if self.mat else ())]:
                dist.broadcast(tensor, 0)
        # On CUDA one fused kernel updates all parameters (the default Adam launches
        # several per tensor); the CPU keeps the default for bit-for-bit reproducible runs.
        adam = dict(fused=True, capturable=self.graphable) if self.device.type == "cuda" else {}
        tables = ({"node_emb": model.node_emb.weight,
                   **{f"features.{name}": x for name, x in getattr(model, "features", {}).items()
                      if x.requires_grad}}
                  if sparse else {})
        self.dense_params = [p for p in model.parameters()
                             if p.requires_grad and all(p is not t for t in tables.values())]
        if any(p.dtype == torch.float16 for p in self.dense_params):
            # torch's Adam keeps a parameter's moments in its dtype: float16's squared
            # gradients underflow to 0 and the update divides by eps (NaN at once).
            raise ConfigError("feature_dtype", "float16",
                              "bfloat16, or float16 with frozen features or sparse updates "
                              "(whose Adam moments are float32): Adam's moments kept in "
                              "float16 underflow")
        self.model_optimizer = (torch.optim.Adam(self.dense_params, lr=config.lr, **adam)
                                if self.dense_params else None)
        self.table_optimizer = LazyAdam(tables, lr=config.lr) if tables else None
        self.generator_optimizer = (torch.optim.Adam(self.mat.parameters(), lr=config.lr_g,
                                                     **adam) if self.mat is not None else None)
        self.model_loss = ModelLoss(model, config.adv_temperature, config.mu, config.mat_loss)
        self.generator_loss = (GeneratorLoss(self.mat, config.adv_temperature)
                               if self.mat is not None else None)
        self.graph: Optional[torch.cuda.CUDAGraph] = None  # captured on first use
        self._graph_warmup = 3  # eager steps before capture (optimiser state, autotuning)

    @property
    def trains_generators(self) -> bool:
        """MAT's generators are trained only when their fakes enter the model's loss
        (``mu > 0``): at ``mu = 0`` they cannot change the model."""
        return self.mat is not None and self.config.mu > 0

    def __call__(self, batch: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """One model update and, when :attr:`trains_generators`, one generator update.

        Returns the model loss and the generator loss (None without a generator update)
        as 0-d tensors, without host synchronisation."""
        if self.graphable and batch.size(0) == self.config.batch_size:
            if self.graph is not None:
                self._static_batch.copy_(batch)
                self.graph.replay()
                return tuple(None if x is None else x.clone() for x in self._static_losses)
            if self._graph_warmup == 0:
                self._capture(batch)
                return self(batch)
            self._graph_warmup -= 1
            side = torch.cuda.Stream(self.device)  # warm-up off the capture stream
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                losses = self._eager(batch)
            torch.cuda.current_stream(self.device).wait_stream(side)
            return losses
        return self._eager(batch)

    def _eager(self, batch: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        candidates, corrupt_head = self.sampler(batch, generator=self.rng)
        loss = self._model_update(batch, candidates, corrupt_head)
        if self.trains_generators:
            return loss, self._generator_update(batch)
        if self.mat is not None:
            # The generator update would draw this noise from the same stream as the
            # negatives: draw it anyway, so mu = 0 samples what it always sampled.
            for _ in ("fake heads", "fake tails"):
                self.mat.draw_noise(batch.size(0), self.rng)
        return loss, None

    def _autocast(self):
        # Optional bf16 autocast: the projections of wide feature tables dominate. A CUDA
        # graph replays fixed kernels, so autocast must not cache casts across steps.
        return torch.autocast(self.device.type, torch.bfloat16, enabled=self.config.bf16,
                              cache_enabled=not self.graphable)

    def _model_update(self, batch: Tensor, candidates: Tensor, corrupt_head: Tensor) -> Tensor:
        head, rel, tail = batch.unbind(1)
        with self._autocast():
            rows = self._rows(head, tail, candidates)
            loss = self.model_loss(rows, rel, corrupt_head, self.mat, self.rng)
        if self.model_optimizer is not None:
            self.model_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        leaves = rows.leaves or {}
        self._average([p.grad for p in self.dense_params if p.grad is not None]
                      + [leaf.grad for leaf in leaves.values()])
        if self.model_optimizer is not None:
            self.model_optimizer.step()
        if leaves:
            self.table_optimizer.step(rows.entities, rows.count,
                                      {name: leaf.grad for name, leaf in leaves.items()})
        return loss.detach()

    def _rows(self, head: Tensor, tail: Tensor, candidates: Tensor) -> StepRows:
        if not self.sparse or self.world_size == 1:
            return embed_batch(self.model, head, tail, candidates, leaves=self.sparse)
        # Every rank gathers the rows of all ranks' entities (the same rows everywhere),
        # so that the rows' gradients line up for the all-reduce.
        ids = torch.cat([head, tail, candidates.reshape(-1)])
        # No rank's share of a global batch exceeds ceil(batch / world): padding every
        # rank to that size needs no exchange of sizes and no host synchronisation.
        share = -(-self.config.batch_size // self.world_size)
        longest = share * (3 + self.config.negatives)
        padded = torch.cat([ids, ids[:1].expand(longest - ids.numel())])
        gathered = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(gathered, padded)
        return embed_batch(self.model, head, tail, candidates, leaves=True,
                           union=torch.cat(gathered))

    def _generator_update(self, batch: Tensor) -> Tensor:
        with self._autocast():
            loss = self.generator_loss(batch, self.model, self.rng)
        self.generator_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._average([p.grad for p in self.mat.parameters() if p.grad is not None])
        self.generator_optimizer.step()
        return loss.detach()

    def _average(self, grads: List[Tensor]) -> None:
        """Averages gradients across the processes: one all-reduce of them all."""
        if self.world_size == 1 or not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        for grad, part in zip(grads, flat.split([g.numel() for g in grads])):
            grad.copy_(part.view_as(grad))

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
            self._static_losses = self._eager(self._static_batch)
        self.graph = graph

    # ---------------------------------------------------------------- state
    def state_dict(self) -> Dict:
        """The generators and every optimiser's state, and this rank's sampling RNG."""
        return {"mat": self.mat.state_dict() if self.mat is not None else None,
                "model_optimizer": (self.model_optimizer.state_dict()
                                    if self.model_optimizer else None),
                "table_optimizer": (self.table_optimizer.state_dict()
                                    if self.table_optimizer else None),
                "generator_optimizer": (self.generator_optimizer.state_dict()
                                        if self.generator_optimizer else None)}

    def load_state_dict(self, state: Dict) -> None:
        for name in ("mat", "model_optimizer", "table_optimizer", "generator_optimizer"):
            owner = getattr(self, name)
            if owner is not None:
                owner.load_state_dict(state[name])
