"""The multi-modal KGC model: structural embeddings, AdaMF fusion, a scorer, MAT."""
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.nn.kge.loader import KGTripletLoader

from mmkgc_pyg.nn.adamf import AdaMF
from mmkgc_pyg.nn.complex import ComplEx
from mmkgc_pyg.nn.distmult import DistMult
from mmkgc_pyg.nn.rotate import RotatE
from mmkgc_pyg.nn.transe import TransE
from mmkgc_pyg.nn.loss import self_adversarial_sigmoid_loss

SCORERS = {"rotate": RotatE, "transe": TransE, "distmult": DistMult, "complex": ComplEx}


class MMKGCModel(torch.nn.Module):
    r"""AdaMF-MAT: multi-modal knowledge graph completion with adaptive fusion and
    modality adversarial training (Zhang et al., LREC-COLING 2024).

    Entity :math:`e` is represented by its joint embedding
    :math:`\mathbf{j}_e = \mathrm{AdaMF}(\mathbf{s}_e, \{\mathbf{x}_e^m\})` (see
    :class:`~mmkgc_pyg.nn.AdaMF`), which replaces the entity embedding in the score
    function :math:`f(h, r, t)` (RotatE by default). Without modality features the
    model is the plain structural KGE model. The raw feature tables are trainable
    parameters initialised from the given features, as in the reference implementation.
    MAT's generators live beside the model during training (:class:`~mmkgc_pyg.nn.MAT`).

    The interface follows :class:`torch_geometric.nn.kge.KGEModel`:
    ``forward(head_index, rel_type, tail_index)``, :meth:`loss` and :meth:`loader`.

    Args:
        num_nodes (int): number of entities.
        num_relations (int): number of relations.
        hidden_channels (int): size :math:`D` of entity embeddings (real numbers; the
            complex scorers read it as :math:`D/2` complex numbers).
        features (Dict[str, torch.Tensor], optional): raw features ``[N, d_m]`` per
            modality.
        masks (Dict[str, torch.Tensor], optional): availability ``[N]`` per modality.
        scorer (str): ``"rotate"``, ``"transe"``, ``"distmult"`` or ``"complex"``.
        margin (float): the margin :math:`\gamma`.
        train_features (bool): fine-tune the raw feature tables.
    """

    def __init__(self, num_nodes: int, num_relations: int, hidden_channels: int,
                 features: Optional[Dict[str, Tensor]] = None,
                 masks: Optional[Dict[str, Tensor]] = None, scorer: str = "rotate",
                 margin: float = 12.0, train_features: bool = True):
        super().__init__()
        if scorer not in SCORERS:
            raise ValueError(f"scorer={scorer!r}: expected one of {', '.join(SCORERS)}")
        features = dict(features or {})
        masks = dict(masks or {})
        self.num_nodes = num_nodes
        self.num_relations = num_relations
        self.hidden_channels = hidden_channels
        self.scorer_name = scorer
        self.train_features = train_features
        self.modalities: List[str] = list(features)
        self.entity_names: Optional[List[str]] = None
        self.relation_names: Optional[List[str]] = None

        self.node_emb = torch.nn.Embedding(num_nodes, hidden_channels)
        self.scorer = SCORERS[scorer](num_relations, hidden_channels, margin)
        self.adamf = None
        if self.modalities:
            self.features = torch.nn.ParameterDict({
                name: torch.nn.Parameter(x.detach().float().clone(),
                                         requires_grad=train_features)
                for name, x in features.items()
            })
            self.adamf = AdaMF({n: x.size(1) for n, x in features.items()}, hidden_channels)
            self.register_buffer("fusion_mask", self.build_fusion_mask(masks))
        self.reset_parameters()

    def reset_parameters(self):
        self.scorer.reset_parameters()
        self.scorer.init_entity_embeddings(self.node_emb.weight)
        if self.adamf is not None:
            self.adamf.reset_parameters()

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
                          fusion_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Joint embeddings ``[n, D]`` and modality weights ``[n, 1 + M]`` of the
        entities ``index`` (all when None). ``fusion_mask`` ``[N, 1 + M]`` overrides the
        stored availability (e.g. to hide modalities at test time)."""
        struct = self.node_emb.weight if index is None else self.node_emb(index)
        if self.adamf is None:
            return struct, struct.new_ones(struct.size(0), 1)
        mask = self.fusion_mask if fusion_mask is None else fusion_mask
        features = {name: x for name, x in self.features.items()}
        if index is not None:
            features = {name: x[index] for name, x in features.items()}
            mask = mask[index]
        return self.adamf.fuse(self.adamf.project(struct, features), mask)

    # ---------------------------------------------------------------- scoring API
    def score_triples(self, head: Tensor, rel: Tensor, tail: Tensor) -> Tensor:
        """Scores ``[B]`` of the triples (higher = more plausible)."""
        joint, _ = self.entity_embeddings(torch.cat([head, tail]))
        head_emb, tail_emb = joint.split([head.numel(), tail.numel()])
        return self.scorer(head_emb, rel, tail_emb)

    def forward(self, head_index: Tensor, rel_type: Tensor, tail_index: Tensor) -> Tensor:
        return self.score_triples(head_index, rel_type, tail_index)

    def score_tails(self, head: Tensor, rel: Tensor) -> Tensor:
        """Scores ``[B, N]`` of every entity as the tail of ``(head, rel, ?)``."""
        joint, _ = self.entity_embeddings()
        return self.scorer.score_all(self.scorer.tail_query(joint[head], rel), joint)

    def score_heads(self, rel: Tensor, tail: Tensor) -> Tensor:
        """Scores ``[B, N]`` of every entity as the head of ``(?, rel, tail)``."""
        joint, _ = self.entity_embeddings()
        return self.scorer.score_all(self.scorer.head_query(rel, joint[tail]), joint)

    def predict_tails(self, head: Tensor, rel: Tensor, k: int = 10,
                      exclude: Optional[Tuple[Tensor, Tensor]] = None
                      ) -> Tuple[Tensor, Tensor]:
        """The ``k`` most plausible tails of each query ``(head, rel, ?)``: scores and
        entity ids, both ``[B, k]``, best first. ``exclude`` is a CSR pair
        ``(ptr, idx)`` of entities to skip per query, e.g. the known answers from
        :meth:`~mmkgc_pyg.evaluation.FilterIndex.answers`; skipped entities that still
        fill the ``k`` slots (fewer candidates than ``k``) score ``-inf``."""
        joint, _ = self.entity_embeddings()
        return self.scorer.topk(self.scorer.tail_query(joint[head], rel), joint, k,
                                *(exclude or (None, None)))

    def predict_heads(self, rel: Tensor, tail: Tensor, k: int = 10,
                      exclude: Optional[Tuple[Tensor, Tensor]] = None
                      ) -> Tuple[Tensor, Tensor]:
        """The ``k`` most plausible heads of each query ``(?, rel, tail)``, as in
        :meth:`predict_tails`."""
        joint, _ = self.entity_embeddings()
        return self.scorer.topk(self.scorer.head_query(rel, joint[tail]), joint, k,
                                *(exclude or (None, None)))

    def loss(self, head_index: Tensor, rel_type: Tensor, tail_index: Tensor,
             num_negatives: int = 1, adv_temperature: float = 0.0) -> Tensor:
        """PyG-style loss with uniform, unfiltered corruptions (head or tail at random)
        and the self-adversarial sigmoid loss. :class:`~mmkgc_pyg.training.Trainer`
        uses the filtered Bernoulli sampler instead."""
        batch = head_index.numel()
        joint, _ = self.entity_embeddings()
        head, tail = joint[head_index], joint[tail_index]
        corrupt_head = torch.rand(batch, device=joint.device) < 0.5
        query = torch.where(corrupt_head[:, None], self.scorer.head_query(rel_type, tail),
                            self.scorer.tail_query(head, rel_type))
        true = torch.where(corrupt_head, head_index, tail_index)
        negatives = torch.randint(self.num_nodes, (batch, num_negatives), device=joint.device)
        scores = self.scorer.score_candidates(query, joint,
                                              torch.cat([true[:, None], negatives], 1))
        return self_adversarial_sigmoid_loss(scores[:, 0], scores[:, 1:], adv_temperature)

    def loader(self, head_index: Tensor, rel_type: Tensor, tail_index: Tensor,
               **kwargs) -> KGTripletLoader:
        return KGTripletLoader(head_index, rel_type, tail_index, **kwargs)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.num_nodes}, num_relations="
                f"{self.num_relations}, hidden_channels={self.hidden_channels}, "
                f"modalities={self.modalities}, scorer={self.scorer.__class__.__name__})")
