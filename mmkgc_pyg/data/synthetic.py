r"""The embedded default dataset: a seeded synthetic multi-modal knowledge graph whose
modalities carry real, imbalanced signal, mostly useful for its long tail.

Generative process (all draws from one :class:`torch.Generator`):

1. Every entity :math:`e` gets a type :math:`c_e` (one of :math:`C` =
   ``num_clusters``, balanced) and a complex latent vector :math:`\mathbf{z}_e`
   (``latent_dim`` reals: real half, then imaginary half). Its planted embedding is
   :math:`[\mathbf{u}_{c_e}; \mathbf{z}_e]`, with type phases
   :math:`u_{c,j} = e^{2\pi i c j / C}` (:func:`type_embedding`).
2. Every relation :math:`r` has a domain (``domain_size`` head types), shifts types
   cyclically, :math:`f_r(c) = c + s_r \bmod C` (a rotation of the type phases), and
   rotates latents by phases :math:`\boldsymbol\theta_r`. A third of the relations
   are functional (one tail per head); a ``generic`` fraction has
   :math:`\beta_r = 0` (tails depend on the type only, like "instance of").
3. The *true* graph: each head :math:`h` of each relation gets
   :math:`1 + \mathrm{Poisson}(\lambda)` tails among the entities of type
   :math:`f_r(c_h)`, drawn without replacement with probability
   :math:`\propto \exp(-\tfrac{\beta_r}{2} \lVert \mathbf{z}_h \circ
   e^{i\boldsymbol\theta_r} - \mathbf{z}_t \rVert^2)`: a RotatE-shaped planted model.
4. Observation is uneven, as in real KGs. The least visible ``long_tail`` fraction of
   entities gets only 1..``long_tail_degree`` training triples, generic ones first
   (their type is recorded, their specifics are not); the training budget is then
   filled by sampling triples between the other entities without replacement with
   weight :math:`v_h v_t`, :math:`v_e = \mathrm{rank}_e^{-s}` (Zipf). Valid and test
   triples are unobserved true triples whose entities and relation appear in
   training; a ``test_long_tail`` share of them involves a long-tail entity.
5. Modality :math:`m` of entity :math:`e` is a random linear map of its planted
   embedding plus Gaussian noise (``noise`` relative to the signal, per column),
   present with probability ``availability`` shifted up for well-observed entities,
   so many entities lack one or both modalities (rows zeroed, masks ``False``).

Structure alone learns the well-observed entities; for the long tail, the modalities
are the main evidence of the latent vector. With the defaults (seed 0): 2,500
entities, 16 relations, 15,000 / 1,500 / 1,500 triples, 42% of the entities in at most
3 training triples, textual for ~71% and visual for ~59% of the entities, ~13% with
neither; generation takes well under a second.
"""
from dataclasses import dataclass
from typing import Dict, List, Literal, Optional, Tuple, Union, overload

import torch
from torch import Tensor

from mmkgc_pyg.errors import InvalidArgumentError
from mmkgc_pyg.data.kg import KGDataset, relation_categories, split_by_category

DEFAULT_MODALITIES = {"textual": (32, 0.7), "visual": (64, 0.6)}


@dataclass
class SyntheticLatents:
    r"""The planted ground truth of a synthetic graph (for tests and analysis)."""
    cluster: Tensor        # [N] type of each entity
    z: Tensor              # [N, k] complex latents (real half, imaginary half)
    visibility: Tensor     # [N] observation weight (Zipf)
    domains: List[Tensor]  # per relation: its head types
    target: Tensor         # [R, C] target type of each (relation, head type)
    rotation: Tensor       # [R, k, k] the latent rotation as a real matrix
    sharpness: Tensor      # [R] weight of the latent distance
    functional: Tensor     # [R] bool: one true tail per head
    true_triples: Tensor   # [T, 3] the complete graph (observed or not)

    def in_domain(self) -> Tensor:
        r"""``[R, N]`` bool: the entity can be a head of the relation."""
        return torch.stack([torch.isin(self.cluster, d) for d in self.domains])

    def members(self) -> Tensor:
        r"""``[C, max size]`` entity ids of each type, padded with -1."""
        num_clusters = self.target.size(1)
        order = torch.argsort(self.cluster, stable=True)
        sizes = torch.bincount(self.cluster, minlength=num_clusters)
        members = torch.full((num_clusters, int(sizes.max())), -1, dtype=torch.long)
        slot = torch.arange(len(order)) - (torch.cumsum(sizes, 0) - sizes)[self.cluster[order]]
        members[self.cluster[order], slot] = order
        return members


def _domains(num_relations: int, num_clusters: int, domain_size: int, g) -> List[Tensor]:
    domains = [torch.randperm(num_clusters, generator=g)[:domain_size]
               for _ in range(num_relations)]
    # Every type must be in some domain so that every entity has a true triple.
    covered = torch.zeros(num_clusters, dtype=torch.bool)
    for d in domains:
        covered[d] = True
    for c in (~covered).nonzero().flatten().tolist():
        r = int(torch.randint(num_relations, (1,), generator=g))
        domains[r] = torch.cat([domains[r], torch.tensor([c])])
    return domains


def _rotations(num_relations: int, latent_dim: int, g) -> Tensor:
    # Complex rotation z -> z * exp(i theta) on (real half, imaginary half) as a matrix.
    phase = 2 * torch.pi * torch.rand(num_relations, latent_dim // 2, generator=g)
    cos, sin = torch.diag_embed(phase.cos()), torch.diag_embed(phase.sin())
    return torch.cat([torch.cat([cos, -sin], 2), torch.cat([sin, cos], 2)], 1)


def _gumbel(shape, g) -> Tensor:
    return -torch.log(-torch.log(torch.rand(shape, generator=g).clamp(min=1e-12)))


def _true_triples(lat: SyntheticLatents, tails_per_head: Optional[float], size: int,
                  g) -> Tensor:
    members = lat.members()
    rels, heads = lat.in_domain().nonzero(as_tuple=True)
    if tails_per_head is None:
        # About ``size`` true triples: a third of the relations have one tail per head.
        tails_per_head = max(0.0, 1.5 * (size / len(heads) - 1))
    target = lat.target[rels, lat.cluster[heads]]
    cand = members[target]  # [P, M], -1 = padding
    query = torch.einsum("rij,nj->rni", lat.rotation, lat.z)[rels, heads]
    # -beta/2 ||q - z_t||^2 up to the per-row constant |q|^2 (rotations keep norms).
    safe = cand.clamp(min=0)
    logits = (torch.einsum("pk,pmk->pm", query, lat.z[members.clamp(min=0)][target])
              - lat.z.pow(2).sum(1)[safe] / 2)
    logits = lat.sharpness[rels].unsqueeze(1) * logits
    logits = logits.masked_fill((cand < 0) | (cand == heads.unsqueeze(1)), float("-inf"))
    # Gumbel top-n per row: n tails without replacement from the softmax of logits.
    num_tails = 1 + torch.poisson(torch.full((len(heads),), float(tails_per_head)),
                                  generator=g).long()
    num_tails = torch.where(lat.functional[rels], 1, num_tails).clamp(max=cand.size(1))
    perturbed, order = torch.topk(logits + _gumbel(logits.shape, g), int(num_tails.max()), dim=1)
    keep = (torch.arange(order.size(1)) < num_tails.unsqueeze(1)) & torch.isfinite(perturbed)
    rows = keep.nonzero(as_tuple=True)[0]
    return torch.stack([heads[rows], rels[rows], cand.gather(1, order)[keep]], dim=1)


def _give(true: Tensor, observed: Tensor, need: Tensor, score: Tensor) -> None:
    # Observe, for each entity, its ``need`` best-scoring unobserved triples (as head or
    # tail), in place.
    ent = torch.cat([true[:, 0], true[:, 2]])
    idx = torch.arange(len(true)).repeat(2)
    pick = (~observed[idx] & (need[ent] > 0)).nonzero().flatten()
    # Order by entity, then by descending score: one float sort on a composite key
    # (much faster than a stable integer sort).
    rank = torch.empty(len(pick), dtype=torch.float64)
    rank[torch.argsort(score[idx[pick]], descending=True)] = torch.arange(
        len(pick), dtype=torch.float64) / max(len(pick), 1)
    pick = pick[torch.argsort(ent[pick] + rank)]
    first = torch.searchsorted(ent[pick], ent[pick])
    observed[idx[pick[torch.arange(len(pick)) - first < need[ent[pick]]]]] = True


def _observe(true: Tensor, lat: SyntheticLatents, tail_degree: Tensor, num_train: int,
             g) -> Tensor:
    # Which true triples are training triples. Long-tail entities (tail_degree > 0)
    # get that many, with their most visible partners; the rest of the budget is a
    # sample without replacement of triples between the other entities, weighted by
    # v_h v_t; finally every entity gets at least one.
    log_v = lat.visibility.log()
    score = log_v[true[:, 0]] + log_v[true[:, 2]] + _gumbel(len(true), g)
    observed = torch.zeros(len(true), dtype=torch.bool)
    # Long-tail entities are known by generic facts first (their type, not latent).
    generic = (lat.sharpness == 0)[true[:, 1]]
    _give(true, observed, tail_degree, score + 1e3 * generic)
    core = (tail_degree == 0)[true[:, 0]] & (tail_degree == 0)[true[:, 2]] & ~observed
    core = core.nonzero().flatten()
    budget = max(0, min(num_train - int(observed.sum()), len(core)))
    observed[core[torch.topk(score[core], budget).indices]] = True
    degree = torch.bincount(true[observed][:, [0, 2]].flatten(), minlength=len(log_v))
    _give(true, observed, (degree == 0).long(), score)
    return observed


def _hold_out(true: Tensor, observed: Tensor, is_tail: Tensor, count: int,
              tail_share: float, num_relations: int, g) -> Tensor:
    # ``count`` unobserved true triples whose entities and relation are in training:
    # a ``tail_share`` of them touching a long-tail entity, the rest between others.
    train = true[observed]
    seen = torch.zeros(len(is_tail), dtype=torch.bool)
    seen[train[:, [0, 2]].flatten()] = True
    seen_rel = torch.zeros(num_relations, dtype=torch.bool)
    seen_rel[train[:, 1]] = True
    pool = true[~observed & seen[true[:, 0]] & seen[true[:, 2]] & seen_rel[true[:, 1]]]
    pool = pool[torch.randperm(len(pool), generator=g)]
    touches = is_tail[pool[:, 0]] | is_tail[pool[:, 2]]
    tail_pool, core_pool = pool[touches], pool[~touches]
    num_tail = min(len(tail_pool), max(round(tail_share * count), count - len(core_pool)))
    held = torch.cat([tail_pool[:num_tail], core_pool[:count - num_tail]])
    return held[torch.randperm(len(held), generator=g)]


def type_embedding(lat: SyntheticLatents) -> Tensor:
    r"""``[N, k]`` the type part of the planted embedding: phases
    :math:`e^{2\pi i c m_j / C}` (real half, imaginary half) with the frequencies
    :math:`m_j = j`, under which every cyclic type shift :math:`f_r` is a rotation."""
    num_clusters, half = lat.target.size(1), lat.z.size(1) // 2
    phase = 2 * torch.pi * lat.cluster.unsqueeze(1) * torch.arange(1, half + 1) / num_clusters
    return torch.cat([phase.cos(), phase.sin()], dim=1) / half ** 0.5


def _modality(lat: SyntheticLatents, dim: int, noise: float, g) -> Tensor:
    # Noisy random linear view of the planted RotatE embedding (type phases, latent),
    # standardised per column.
    signal = torch.cat([type_embedding(lat), lat.z], dim=1)
    x = signal @ torch.randn(signal.size(1), dim, generator=g)
    x = x / x.std(0).clamp(min=1e-6) + noise * torch.randn(len(signal), dim, generator=g)
    return (x - x.mean(0)) / x.std(0).clamp(min=1e-6)


@dataclass
class SyntheticGraph:
    r"""The parameters of the synthetic multi-modal KG (process in the module docstring).

    Attributes:
        num_entities, num_relations (int): graph size.
        num_clusters (int): number of entity types :math:`C`.
        latent_dim (int): reals per latent vector (even: real and imaginary halves).
        domain_size (int): number of head types per relation.
        num_train (int): training triples (more if the long tail alone needs more;
            fewer if the true graph is too small, as with tiny types).
        num_valid, num_test (int): held-out triples (fewer if the true graph is too
            small).
        tails_per_head (float, optional): :math:`\lambda`, extra true tails per
            (head, relation); by default chosen so that the true graph has about 4.2
            times the requested triples.
        sharpness (float): median :math:`\beta_r` (log-uniform in
            :math:`[\beta/2, 2\beta]` per relation): how strongly latents pick tails.
        long_tail (float): fraction of entities observed in only
            1..``long_tail_degree`` training triples (uniformly), the least visible.
        long_tail_degree (int): most training triples of a long-tail entity.
        test_long_tail (float): share of valid/test triples that involve a long-tail
            entity (as far as the graph has them).
        zipf_exponent (float): visibility :math:`\mathrm{rank}^{-s}`, which skews the
            degrees of the other entities.
        noise (float): feature noise relative to the signal (per column).
        modalities (Dict[str, Tuple[int, float]], optional): name ->
            ``(dim, availability)``; default ``{'textual': (32, 0.7),
            'visual': (64, 0.6)}``.
        degree_bias (float): logit shift of availability per standard deviation of
            log training degree (well-observed entities more often have modalities).
    """
    num_entities: int = 2500
    num_relations: int = 16
    num_clusters: int = 40
    latent_dim: int = 8
    domain_size: int = 32
    num_train: int = 15000
    num_valid: int = 1500
    num_test: int = 1500
    tails_per_head: Optional[float] = None
    sharpness: float = 16.0
    generic: float = 0.25
    long_tail: float = 0.45
    long_tail_degree: int = 3
    test_long_tail: float = 0.7
    zipf_exponent: float = 1.0
    noise: float = 0.3
    modalities: Optional[Dict[str, Tuple[int, float]]] = None
    degree_bias: float = 0.3

    def __post_init__(self):
        if (self.num_entities < self.num_clusters or self.domain_size > self.num_clusters
                or self.latent_dim % 2):
            raise InvalidArgumentError(
                f"SyntheticGraph: expected num_clusters={self.num_clusters} <= num_entities="
                f"{self.num_entities}, domain_size={self.domain_size} <= num_clusters and an "
                f"even latent_dim, got latent_dim={self.latent_dim}")


# The return type follows return_latents, for type checkers.
@overload
def make_synthetic_kg(graph: Optional[SyntheticGraph] = None, seed: int = 0,
                      return_latents: Literal[False] = False) -> KGDataset: ...


@overload
def make_synthetic_kg(graph: Optional[SyntheticGraph], seed: int,
                      return_latents: Literal[True]) -> Tuple[KGDataset, SyntheticLatents]: ...


@overload
def make_synthetic_kg(graph: Optional[SyntheticGraph] = None, seed: int = 0, *,
                      return_latents: Literal[True]) -> Tuple[KGDataset, SyntheticLatents]: ...


def make_synthetic_kg(graph: Optional[SyntheticGraph] = None, seed: int = 0,
                      return_latents: bool = False
                      ) -> Union[KGDataset, Tuple[KGDataset, SyntheticLatents]]:
    r"""Generate the synthetic multi-modal KG (process in the module docstring).

    Args:
        graph (SyntheticGraph, optional): its parameters (default: the embedded default
            graph of ``python -m mmkgc_pyg.train``).
        seed (int): equal seeds give equal datasets.
        return_latents (bool): also return the planted :class:`SyntheticLatents`.
    """
    p = graph or SyntheticGraph()
    g = torch.Generator().manual_seed(seed)
    cluster = (torch.arange(p.num_entities) % p.num_clusters)[
        torch.randperm(p.num_entities, generator=g)]
    # The least visible ``long_tail`` fraction keeps only 1..long_tail_degree triples.
    rank = torch.randperm(p.num_entities, generator=g)
    tail_degree = torch.randint(1, p.long_tail_degree + 1, (p.num_entities,), generator=g)
    tail_degree[rank < round((1 - p.long_tail) * p.num_entities)] = 0
    lat = SyntheticLatents(
        cluster=cluster,
        # Unit expected norm, so ``sharpness`` sets the spread of logits for any k.
        z=torch.randn(p.num_entities, p.latent_dim, generator=g) / p.latent_dim ** 0.5,
        visibility=(rank.double() + 1).pow(-p.zipf_exponent).float(),
        domains=_domains(p.num_relations, p.num_clusters, p.domain_size, g),
        target=(torch.arange(p.num_clusters) + torch.randint(
            p.num_clusters, (p.num_relations, 1), generator=g)) % p.num_clusters,
        rotation=_rotations(p.num_relations, p.latent_dim, g),
        sharpness=p.sharpness * 2.0 ** (2 * torch.rand(p.num_relations, generator=g) - 1)
        * (torch.rand(p.num_relations, generator=g) >= p.generic),
        functional=torch.rand(p.num_relations, generator=g) < 1 / 3,
        true_triples=torch.empty(0, 3, dtype=torch.long))
    # The true graph is about 4x the requested triples, so that most of it is unseen.
    lat.true_triples = true = _true_triples(
        lat, p.tails_per_head, round(4.2 * (p.num_train + p.num_valid + p.num_test)), g)
    observed = _observe(true, lat, tail_degree, p.num_train, g)
    train = true[observed][torch.randperm(int(observed.sum()), generator=g)]
    held = _hold_out(true, observed, tail_degree > 0, p.num_valid + p.num_test,
                     p.test_long_tail, p.num_relations, g)
    valid, test = held[:p.num_valid], held[p.num_valid:]

    log_deg = torch.bincount(train[:, [0, 2]].flatten(), minlength=p.num_entities).float()
    log_deg = log_deg.clamp(min=1).log()
    log_deg = (log_deg - log_deg.mean()) / log_deg.std().clamp(min=1e-6)
    features, masks = {}, {}
    for name, (dim, availability) in sorted((p.modalities or DEFAULT_MODALITIES).items()):
        x = _modality(lat, dim, p.noise, g)
        logit = torch.logit(torch.tensor(availability)) + p.degree_bias * log_deg
        masks[name] = torch.rand(p.num_entities, generator=g) < torch.sigmoid(logit)
        features[name] = x * masks[name].unsqueeze(1)

    categories = relation_categories(torch.cat([train, valid, test]), p.num_relations)
    width_e, width_r = len(str(p.num_entities - 1)), len(str(p.num_relations - 1))
    dataset = KGDataset(
        name="synthetic", num_entities=p.num_entities, num_relations=p.num_relations,
        train=train, valid=valid, test=test,
        entity_names=[f"e{i:0{width_e}d}" for i in range(p.num_entities)],
        relation_names=[f"r{i:0{width_r}d}" for i in range(p.num_relations)],
        features=features, masks=masks, test_categories=split_by_category(test, categories))
    return (dataset, lat) if return_latents else dataset
