"""The multi-modal KGC model: structural embeddings, AdaMF fusion, an interaction, as a
PyG :class:`~torch_geometric.nn.kge.KGEModel`."""
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn.kge import KGEModel

from mmkgc_pyg.data.kg import modality_tables
from mmkgc_pyg.errors import InvalidArgumentError
from mmkgc_pyg.evaluation import (FilterIndex, LinkPredictionQueries,
                                  evaluate_link_prediction, link_prediction_ranks)
from mmkgc_pyg.nn.adamf import AdaMF
from mmkgc_pyg.nn.interactions import INTERACTIONS
from mmkgc_pyg.nn.loss import self_adversarial_sigmoid_loss
from mmkgc_pyg.nn.prediction import Prediction, predict_by_name
from mmkgc_pyg.nn.touched import touched_entities
from mmkgc_pyg.score_blocks import SCORE_BUDGET


class MMKGCModel(KGEModel):
    r"""AdaMF-MAT: multi-modal knowledge graph completion with adaptive fusion and
    modality adversarial training (Zhang et al., LREC-COLING 2024), as a PyG
    :class:`~torch_geometric.nn.kge.KGEModel` (a drop-in for PyG's ``RotatE``,
    ``TransE``, ``DistMult`` and ``ComplEx``: ``forward``, ``loss``, ``loader``,
    ``test``, ``random_sample``).

    Entity :math:`e` is represented by its joint embedding
    :math:`\mathbf{j}_e = \mathrm{AdaMF}(\mathbf{s}_e, \{\mathbf{x}_e^m\})` (see
    :class:`~mmkgc_pyg.nn.AdaMF`), which replaces the entity embedding in the score
    function :math:`f(h, r, t)` (RotatE by default). Without modality features the
    model is the plain structural KGE model. The raw feature tables are trainable
    parameters initialised from the given features, as in the reference implementation.
    MAT's generators live beside the model during training (:class:`~mmkgc_pyg.nn.MAT`).

    ``node_emb`` holds the structural embeddings (complex ones as real half | imaginary
    half: ``2 * hidden_channels`` columns, where PyG's ``RotatE`` keeps the imaginary half
    in a second table) and ``rel_emb`` the relation rows.

    Args:
        num_nodes (int): number of entities.
        num_relations (int): number of relations.
        hidden_channels (int): the embedding size as in PyG: complex dimensions for
            ``rotate`` and ``complex``, real dimensions for ``transe`` and ``distmult``.
        margin (float): the margin :math:`\gamma` (PyG's ``RotatE`` order: the fourth
            positional argument; the rest are keyword-only after ``sparse``).
        sparse (bool): sparse gradients of the rows of ``node_emb``, ``rel_emb`` and the
            feature tables that a batch touches (as in PyG; train with a sparse optimiser
            such as :class:`torch.optim.SparseAdam`), so that a step's cost does not grow
            with the graph.
        features (Dict[str, torch.Tensor], optional): raw features ``[N, d_m]`` per
            modality; the dict's order is the order of the modality weights.
        masks (Dict[str, torch.Tensor], optional): availability ``[N]`` per modality.
        interaction (str): the score function, ``"rotate"``, ``"transe"``, ``"distmult"`` or
            ``"complex"`` (:mod:`mmkgc_pyg.nn.interactions`).
        train_features (bool): fine-tune the raw feature tables.
        feature_dtype (torch.dtype): how the feature tables are stored: ``float32``, or
            ``bfloat16``/``float16`` to halve their memory (projected in float32).
    """

    def __init__(self, num_nodes: int, num_relations: int, hidden_channels: int,
                 margin: float = 12.0, sparse: bool = False, *,
                 features: Optional[Dict[str, Tensor]] = None,
                 masks: Optional[Dict[str, Tensor]] = None, interaction: str = "rotate",
                 train_features: bool = True, feature_dtype: torch.dtype = torch.float32):
        # KGEModel.__init__ would build [N, hidden_channels] tables; a complex interaction
        # needs 2 * hidden_channels reals per entity, so the tables are built here.
        torch.nn.Module.__init__(self)
        _check_arguments(num_nodes, num_relations, hidden_channels, margin, sparse, interaction,
                         train_features)
        features = dict(features or {})
        masks = dict(masks or {})
        self.num_nodes = num_nodes
        self.num_relations = num_relations
        self.hidden_channels = hidden_channels
        self.sparse = sparse
        self.interaction_name = interaction
        self.train_features = train_features
        self.modalities: List[str] = list(features)
        self.entity_names: Optional[List[str]] = None
        self.relation_names: Optional[List[str]] = None

        self.interaction = INTERACTIONS[interaction](hidden_channels, margin)
        # Each value is initialised once, where the tables are allocated (under
        # ``with torch.device(...)`` on that device): nn.Embedding's own initialisation
        # would draw N x D normals only to overwrite them, seconds at millions of entities.
        self.node_emb = torch.nn.Embedding.from_pretrained(
            torch.empty(num_nodes, self.interaction.entity_channels), freeze=False,
            sparse=sparse)
        self.rel_emb = torch.nn.Embedding.from_pretrained(
            torch.empty(num_relations, self.interaction.relation_channels), freeze=False,
            sparse=sparse)
        self._reset_tables()
        self.adamf = None
        # Availability [N, 1 + M] of the modalities (None without any): a buffer, so it
        # follows .to() and the state dict.
        self.register_buffer("fusion_mask", None)
        if self.modalities:
            if feature_dtype not in (torch.float32, torch.bfloat16, torch.float16):
                raise InvalidArgumentError(f"feature_dtype={feature_dtype}: expected float32, "
                                           "bfloat16 or float16")
            # One copy per table, straight to the tables' device and the storage dtype.
            self.features = torch.nn.ParameterDict({
                name: torch.nn.Parameter(x.detach().to(self.device, feature_dtype, copy=True),
                                         requires_grad=train_features)
                for name, x in features.items()
            })
            # AdaMF's constructor initialises it.
            self.adamf = AdaMF({n: x.size(1) for n, x in features.items()},
                               self.interaction.entity_channels)
            self.fusion_mask = self.build_fusion_mask(masks)

    @classmethod
    def from_data(cls, data, hidden_channels: int, **kwargs) -> "MMKGCModel":
        """A model for a PyG ``Data`` graph (e.g. ``DB15K(root)[0]``): its sizes, and its
        ``x_<m>`` features and ``mask_<m>`` masks as modalities; ``kwargs`` as in the
        constructor."""
        features, masks = modality_tables(data)
        num_relations = getattr(data, "num_relations", None) or int(data.edge_type.max()) + 1
        return cls(int(data.num_nodes), int(num_relations), hidden_channels, features=features,
                   masks=masks, **kwargs)

    def reset_parameters(self):
        self._reset_tables()
        if self.adamf is not None:
            self.adamf.reset_parameters()

    def _reset_tables(self):
        with torch.no_grad():
            self.interaction.reset_relations(self.rel_emb.weight)
            self.interaction.reset_entities(self.node_emb.weight)

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are."""
        return self.node_emb.weight.device

    @property
    def modality_names(self) -> List[str]:
        """Columns of the modality weights: ``structure`` then the extra modalities."""
        return ["structure", *self.modalities]

    def build_fusion_mask(self, masks: Dict[str, Tensor]) -> Tensor:
        """Availability ``[N, 1 + M]`` for the fusion from per-modality masks ``[N]``
        (a modality without a mask is present everywhere)."""
        return self.adamf.stack_masks(masks, self.num_nodes, self.node_emb.weight.device)

    # ---------------------------------------------------------------- embeddings
    def entity_embeddings(self, index: Optional[Tensor] = None,
                          fusion_mask: Optional[Tensor] = None,
                          return_attention_weights: bool = False, chunked: bool = False
                          ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Joint embeddings ``[n, D]`` of the entities ``index`` (all when None), and
        with ``return_attention_weights`` their modality weights ``[n, 1 + M]``.
        ``fusion_mask`` ``[N, 1 + M]`` overrides the stored availability (e.g. to hide
        modalities at test time). ``chunked`` (inference only: no autograd) fuses all
        entities a block at a time, so that only the ``[N, D]`` result grows with the
        graph, not the ``[N, 1 + M, D]`` stack of projected modalities."""
        if chunked and index is None and self.adamf is not None \
                and self.num_nodes > self._fusion_chunk:
            return self._chunked_embeddings(fusion_mask, return_attention_weights)
        struct = self.node_emb.weight if index is None else self.node_emb(index)
        if self.adamf is None:
            weights = struct.new_ones(struct.size(0), 1)
            return (struct, weights) if return_attention_weights else struct
        mask = self.fusion_mask if fusion_mask is None else fusion_mask
        features = dict(self.features.items())
        if index is not None:
            # An embedding lookup, so that with ``sparse`` the tables' gradients are too.
            features = {name: F.embedding(index, x, sparse=self.sparse)
                        for name, x in features.items()}
            mask = mask[index]
        return self.fuse_rows(struct, features, mask, return_attention_weights)

    def fuse_rows(self, struct: Tensor, features: Dict[str, Tensor], mask: Tensor,
                  return_attention_weights: bool = False):
        """Joint embeddings ``[n, D]`` of entity rows given directly: structural rows
        ``[n, D]``, raw feature rows ``[n, d_m]`` per modality and their availability
        ``[n, 1 + M]`` (e.g. rows a training step gathered once)."""
        # Tables stored in bf16/fp16 (to fit) are projected in float32.
        features = {name: x.float() for name, x in features.items()}
        return self.adamf.fuse(self.adamf.project(struct, features), mask,
                               return_attention_weights)

    @property
    def _fusion_chunk(self) -> int:
        """Entities per block of :meth:`_chunked_embeddings`: at most SCORE_BUDGET
        projected values, like the ranking's score blocks."""
        return max(1, SCORE_BUDGET // (self.node_emb.weight.size(1) * len(self.modality_names)))

    @torch.no_grad()
    def _chunked_embeddings(self, fusion_mask: Optional[Tensor],
                            return_attention_weights: bool):
        # Row slices of the tables are views: nothing is copied to feed the blocks.
        step = self._fusion_chunk
        mask = self.fusion_mask if fusion_mask is None else fusion_mask
        joint = weights = None
        for start in range(0, self.num_nodes, step):
            stop = min(start + step, self.num_nodes)
            rows = slice(start, stop)
            part, part_weights = self.fuse_rows(
                self.node_emb.weight[rows], {n: x[rows] for n, x in self.features.items()},
                mask[rows], True)
            if joint is None:
                joint = part.new_empty(self.num_nodes, part.size(1))
                weights = part_weights.new_empty(self.num_nodes, part_weights.size(1))
            joint[start:stop], weights[start:stop] = part, part_weights
        return (joint, weights) if return_attention_weights else joint

    def touched_embeddings(self, *index: Tensor) -> Tuple[Tensor, List[Tensor]]:
        """Joint embeddings of the entities that the index tensors name, and the index
        tensors remapped into them: only those entities are projected and fused, so the
        cost follows the batch, not the graph. When the tensors hold about as many ids as
        there are entities (and gradients are dense), all entities are embedded instead
        (same result, no gather). No host synchronisation (see
        :func:`~mmkgc_pyg.nn.touched.touched_entities`)."""
        ids = torch.cat([i.reshape(-1) for i in index])
        if ids.numel() >= self.num_nodes and not self.sparse:
            return self.entity_embeddings(), list(index)
        entities, position, _ = touched_entities(ids, self.num_nodes)
        parts = position.split([i.numel() for i in index])
        return self.entity_embeddings(entities), [p.view_as(i) for p, i in zip(parts, index)]

    # ---------------------------------------------------------------- scoring API
    def forward(self, head_index: Tensor, rel_type: Tensor, tail_index: Tensor) -> Tensor:
        """Scores ``[B]`` of the triples (higher = more plausible)."""
        joint = self.entity_embeddings(torch.cat([head_index, tail_index]))
        head, tail = joint.split([head_index.numel(), tail_index.numel()])
        return self.interaction(head, self.rel_emb(rel_type), tail)

    def tail_queries(self, head_index: Tensor, rel_type: Tensor, joint: Tensor) -> Tensor:
        """Queries of ``(head, rel, ?)`` from all entities' joint embeddings."""
        return self.interaction.tail_query(joint[head_index], self.rel_emb(rel_type))

    def head_queries(self, rel_type: Tensor, tail_index: Tensor, joint: Tensor) -> Tensor:
        """Queries of ``(?, rel, tail)`` from all entities' joint embeddings."""
        return self.interaction.head_query(self.rel_emb(rel_type), joint[tail_index])

    def candidate_scores(self, head_index: Tensor, rel_type: Tensor, tail_index: Tensor,
                         candidates: Tensor, corrupt_head: Tensor,
                         joint: Optional[Tensor] = None) -> Tensor:
        """Scores ``[B, C]`` of each triple's query against its candidate entities: the
        query is ``(?, r, t)`` where ``corrupt_head`` and ``(h, r, ?)`` elsewhere, and
        ``candidates [B, C]`` are entity ids (e.g. the true one, then negatives).
        ``corrupt_head`` is bool ``[B]`` (one side per triple) or ``[B, C]`` (one per
        candidate: both queries score every candidate and each keeps its side's score,
        twice the work of one side). Only the entities named are embedded
        (:meth:`touched_embeddings`); ``joint`` passes precomputed joint embeddings that
        the indices address instead."""
        if joint is None:
            joint, (head_index, tail_index, candidates) = self.touched_embeddings(
                head_index, tail_index, candidates)
        head_query = self.head_queries(rel_type, tail_index, joint)
        tail_query = self.tail_queries(head_index, rel_type, joint)
        if corrupt_head.dim() == 2:
            return torch.where(corrupt_head,
                               self.interaction.score_candidates(head_query, joint, candidates),
                               self.interaction.score_candidates(tail_query, joint, candidates))
        query = torch.where(corrupt_head[:, None], head_query, tail_query)
        return self.interaction.score_candidates(query, joint, candidates)

    def score_tails(self, head_index: Tensor, rel_type: Tensor) -> Tensor:
        """Scores ``[B, N]`` of every entity as the tail of ``(head, rel, ?)``."""
        joint = self.entity_embeddings()
        return self.interaction.score_all(self.tail_queries(head_index, rel_type, joint), joint)

    def score_heads(self, rel_type: Tensor, tail_index: Tensor) -> Tensor:
        """Scores ``[B, N]`` of every entity as the head of ``(?, rel, tail)``."""
        joint = self.entity_embeddings()
        return self.interaction.score_all(self.head_queries(rel_type, tail_index, joint), joint)

    def predict_tails(self, head_index: Tensor, rel_type: Tensor, k: int = 10,
                      exclude: Optional[Tuple[Tensor, Tensor]] = None,
                      table: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """The ``k`` most plausible tails of each query ``(head, rel, ?)``: scores and
        entity ids, both ``[B, k]``, best first. ``exclude`` is a CSR pair
        ``(ptr, idx)`` of entities to skip per query, e.g. the known answers from
        :meth:`~mmkgc_pyg.evaluation.FilterIndex.answers`; skipped entities that still
        fill the ``k`` slots (fewer candidates than ``k``) score ``-inf``. ``table``
        passes :meth:`prediction_table`, for callers that answer many blocks of queries
        with one fusion of the entities."""
        joint = self.prediction_table() if table is None else table
        return self.interaction.topk(self.tail_queries(head_index, rel_type, joint), joint, k,
                                     *(exclude or (None, None)))

    def predict_heads(self, rel_type: Tensor, tail_index: Tensor, k: int = 10,
                      exclude: Optional[Tuple[Tensor, Tensor]] = None,
                      table: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """The ``k`` most plausible heads of each query ``(?, rel, tail)``, as in
        :meth:`predict_tails`."""
        joint = self.prediction_table() if table is None else table
        return self.interaction.topk(self.head_queries(rel_type, tail_index, joint), joint, k,
                                     *(exclude or (None, None)))

    def prediction_table(self) -> Tensor:
        """All joint embeddings for top-k prediction: without autograd, fused in blocks and
        laid out once as the interaction's kernels read them."""
        if torch.is_grad_enabled():
            return self.entity_embeddings()
        return self.interaction.ranking_table(self.entity_embeddings(chunked=True))

    def predict(self, *, relation: str, head: Optional[str] = None,
                tail: Optional[str] = None, k: int = 10, known=None,
                filter: bool = False) -> List[Prediction]:
        """The ``k`` most plausible answers of ``(head, relation, ?)`` or ``(?, relation,
        tail)`` by name, best first, as :class:`~mmkgc_pyg.nn.prediction.Prediction`
        (rank, entity name, id, score, known): see
        :func:`~mmkgc_pyg.nn.prediction.predict_by_name`. An unknown name raises
        :class:`~mmkgc_pyg.errors.UnknownNameError` with close names."""
        return predict_by_name(self, relation=relation, head=head, tail=tail, k=k,
                               known=known, filter=filter)

    # ---------------------------------------------------------------- PyG's KGEModel API
    def loss(self, head_index: Tensor, rel_type: Tensor, tail_index: Tensor,
             num_negatives: int = 1, adv_temperature: float = 0.0) -> Tensor:
        """PyG-style loss with uniform, unfiltered corruptions (head or tail at random)
        and the self-adversarial sigmoid loss. :class:`~mmkgc_pyg.training.Trainer`
        uses the filtered Bernoulli sampler instead."""
        batch = head_index.numel()
        device = head_index.device
        corrupt_head = torch.rand(batch, device=device) < 0.5
        true = torch.where(corrupt_head, head_index, tail_index)
        negatives = torch.randint(self.num_nodes, (batch, num_negatives), device=device)
        scores = self.candidate_scores(head_index, rel_type, tail_index,
                                       torch.cat([true[:, None], negatives], 1), corrupt_head)
        return self_adversarial_sigmoid_loss(scores[:, 0], scores[:, 1:], adv_temperature)

    @torch.no_grad()
    def test(self, head_index: Tensor, rel_type: Tensor, tail_index: Tensor,
             batch_size: int = 0, k: int = 10, log: bool = True, *, filtered: bool = False,
             known_triples: Optional[Tensor] = None
             ) -> Union[Tuple[float, float, float], Dict]:
        r"""PyG's evaluation: ``(mean_rank, mrr, hits_at_k)`` of the true tails among
        all entities, raw (unfiltered) and with PyG's conventions (0-based mean rank),
        ranked in one fused pass instead of PyG's loop over triples.

        With ``filtered=True`` and ``known_triples`` ``[T, 3]`` (head, relation, tail: all
        known true triples), returns instead the filtered metrics of both directions as
        :func:`~mmkgc_pyg.evaluation.evaluate_link_prediction` does (realistic ranks, and
        ``optimistic`` / ``pessimistic`` ones).

        Args:
            batch_size (int): most queries per ranking call (0: as many as fit).
            log (bool): show a progress bar over the ranking calls.
        """
        triples = torch.stack([head_index, rel_type, tail_index], dim=1)
        if filtered:
            if known_triples is None:
                raise InvalidArgumentError("test(filtered=True): expected known_triples [T, 3]")
            index = FilterIndex(known_triples.to(triples.device), self.num_relations)
            return evaluate_link_prediction(self, LinkPredictionQueries.build(triples, index),
                                            batch_size=batch_size, progress=log)
        queries = LinkPredictionQueries.unfiltered(triples, both_sides=False)
        zero_based = link_prediction_ranks(self, queries, batch_size, progress=log).realistic - 1
        return (float(zero_based.mean()), float((1 / (zero_based + 1)).mean()),
                float((zero_based < k).float().mean()))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.num_nodes}, num_relations="
                f"{self.num_relations}, hidden_channels={self.hidden_channels}, "
                f"modalities={self.modalities}, interaction={self.interaction_name!r})")


def _check_arguments(num_nodes, num_relations, hidden_channels, margin, sparse, interaction,
                     train_features) -> None:
    """Types and ranges of :class:`MMKGCModel`'s arguments (a positional argument in the
    wrong place fails here, not at the first loss)."""
    for name, value in (("num_nodes", num_nodes), ("num_relations", num_relations),
                        ("hidden_channels", hidden_channels)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidArgumentError(f"{name}={value!r}: expected a positive int")
    if (not isinstance(margin, (int, float)) or isinstance(margin, bool)
            or not 0 < margin < float("inf")):
        raise InvalidArgumentError(f"margin={margin!r}: expected a positive finite number")
    for name, value in (("sparse", sparse), ("train_features", train_features)):
        if not isinstance(value, bool):
            raise InvalidArgumentError(f"{name}={value!r}: expected a bool")
    if interaction not in INTERACTIONS:
        raise InvalidArgumentError(f"interaction={interaction!r}: expected one of "
                                   f"{', '.join(INTERACTIONS)}")
