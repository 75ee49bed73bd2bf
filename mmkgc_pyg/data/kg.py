r"""The in-memory multi-modal knowledge graph and its PyG view.

:class:`KGDataset` holds the three splits as LongTensors ``[E, 3]`` in
``(head, relation, tail)`` order, the entity and relation names, and the modality
features. :meth:`KGDataset.to_data` turns one split into a
:class:`torch_geometric.data.Data` with these attributes:

==================  ==================  ================================================
attribute           shape / type        meaning
==================  ==================  ================================================
``edge_index``      ``[2, E]`` long     row 0 = heads, row 1 = tails
``edge_type``       ``[E]`` long        relation ids
``num_nodes``       ``int``             number of entities :math:`N`
``num_relations``   ``int``             number of relations :math:`R`
``x_<modality>``    ``[N, d_m]`` float  features; rows of missing entities are zeros
``mask_<modality>`` ``[N]`` bool        ``True`` where the entity has the modality
``modalities``      ``list[str]``       the modality names, sorted
==================  ==================  ================================================

:func:`triples_from_data` inverts the triple part.
"""
import hashlib
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.data import Data

from mmkgc_pyg.errors import UserInputError

SPLITS = ("train", "valid", "test")
_INT64_MAX = 2**63 - 1
CATEGORIES = ("1-1", "1-n", "n-1", "n-n")


@dataclass
class KGDataset:
    r"""A multi-modal knowledge graph with train/valid/test triples.

    Args:
        name (str): dataset name.
        num_entities (int): number of entities :math:`N`.
        num_relations (int): number of relations :math:`R`.
        train, valid, test (torch.Tensor): LongTensors ``[E, 3]`` of
            ``(head, relation, tail)``.
        entity_names (List[str]): names indexed by entity id.
        relation_names (List[str]): names indexed by relation id.
        features (Dict[str, torch.Tensor]): modality name -> float32 ``[N, d_m]``;
            rows of entities without the modality are zeros.
        masks (Dict[str, torch.Tensor]): modality name -> bool ``[N]``, ``True`` where
            the entity has the modality.
        test_categories (Dict[str, torch.Tensor]): ``'1-1'``, ``'1-n'``, ``'n-1'``,
            ``'n-n'`` -> the test triples of relations in that category (empty when
            unknown).
    """
    name: str
    num_entities: int
    num_relations: int
    train: Tensor
    valid: Tensor
    test: Tensor
    entity_names: List[str]
    relation_names: List[str]
    features: Dict[str, Tensor] = field(default_factory=dict)
    masks: Dict[str, Tensor] = field(default_factory=dict)
    test_categories: Dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self):
        # Programming errors (the loaders validate user files with UserInputError).
        for split in SPLITS:
            triples = getattr(self, split)
            if triples.dtype != torch.long or triples.dim() != 2 or triples.size(1) != 3:
                raise ValueError(f"{split}: expected a LongTensor [E, 3], got "
                                 f"{triples.dtype} {list(triples.shape)}")
        if len(self.entity_names) != self.num_entities:
            raise ValueError(f"expected {self.num_entities} entity names, got "
                             f"{len(self.entity_names)}")
        if len(self.relation_names) != self.num_relations:
            raise ValueError(f"expected {self.num_relations} relation names, got "
                             f"{len(self.relation_names)}")
        if set(self.features) != set(self.masks):
            raise ValueError(f"features {sorted(self.features)} and masks "
                             f"{sorted(self.masks)} name different modalities")
        for m in self.features:
            x, mask = self.features[m], self.masks[m]
            if x.dim() != 2 or x.size(0) != self.num_entities or not x.is_floating_point():
                raise ValueError(f"features[{m!r}]: expected a float tensor "
                                 f"[{self.num_entities}, d], got {x.dtype} {list(x.shape)}")
            if mask.dtype != torch.bool or mask.shape != (self.num_entities,):
                raise ValueError(f"masks[{m!r}]: expected a bool tensor "
                                 f"[{self.num_entities}], got {mask.dtype} {list(mask.shape)}")

    @property
    def modalities(self) -> List[str]:
        r"""The modality names, sorted."""
        return sorted(self.features)

    def known_triples(self) -> Tensor:
        r"""All known triples (train, valid, test), ``[E, 3]``: the filter set of
        filtered link prediction."""
        return torch.cat([self.train, self.valid, self.test], dim=0)

    def fingerprint(self) -> str:
        r"""A short hash of the triples, saved with trained models so that a model is
        never evaluated against a different graph with the same sizes."""
        digest = hashlib.sha256()
        for split in SPLITS:
            digest.update(getattr(self, split).contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def to_data(self, split: str = "train") -> Data:
        r"""The triples of ``split`` and all modality features as a PyG
        :class:`~torch_geometric.data.Data` (attributes in the module docstring)."""
        if split not in SPLITS:
            raise ValueError(f"split={split!r}: expected one of {', '.join(SPLITS)}")
        triples = getattr(self, split)
        data = Data(edge_index=triples[:, [0, 2]].t().contiguous(),
                    edge_type=triples[:, 1].contiguous(), num_nodes=self.num_entities)
        data.num_relations = self.num_relations
        for m in self.modalities:
            data[f"x_{m}"] = self.features[m]
            data[f"mask_{m}"] = self.masks[m]
        data.modalities = self.modalities
        return data

    def drop_modalities(self, rate: float,
                        generator: Optional[torch.Generator] = None) -> "KGDataset":
        r"""A copy in which a random ``round(rate * N)`` entities lose *all* their
        modality features (mask ``False``, rows zeroed): the paper's modality-missing
        setting. Triples are shared with ``self``."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate={rate}: expected a fraction in [0, 1]")
        num_drop = round(rate * self.num_entities)
        dropped = torch.randperm(self.num_entities, generator=generator)[:num_drop]
        keep = torch.ones(self.num_entities, dtype=torch.bool)
        keep[dropped] = False
        masks = {m: mask & keep for m, mask in self.masks.items()}
        features = {m: x * masks[m].unsqueeze(1).to(x.dtype) for m, x in self.features.items()}
        return replace(self, features=features, masks=masks)

    def without_modalities(self) -> "KGDataset":
        r"""A structure-only copy (no features, no masks)."""
        return replace(self, features={}, masks={})

    def __repr__(self) -> str:
        mods = ", ".join(f"{m}: {self.features[m].size(1)}-d, {int(self.masks[m].sum())} present"
                         for m in self.modalities)
        return (f"KGDataset({self.name!r}, entities={self.num_entities}, "
                f"relations={self.num_relations}, train={len(self.train)}, "
                f"valid={len(self.valid)}, test={len(self.test)}, modalities={{{mods}}})")


def triple_keys(triples: Tensor, num_entities: int, num_relations: int) -> Tensor:
    r"""Injective int64 key of each triple: :math:`(h R + r) N + t`.

    Keys lie in :math:`[0, R N^2)`; the bound :math:`R N^2 \le 2^{63} - 1` is checked so
    no key overflows (e.g. :math:`N = 10^6` entities allow :math:`R \approx 9 \cdot 10^6`).
    Sorting the keys groups the triples by :math:`(h, r)`, tails ascending within a group.

    Args:
        triples: LongTensor ``[..., 3]`` of (head, relation, tail).
        num_entities: :math:`N`.
        num_relations: :math:`R`.
    """
    if num_relations * num_entities * num_entities > _INT64_MAX:
        raise UserInputError(f"triple_keys: expected num_relations * num_entities**2 <= 2**63 - 1, "
                             f"got {num_relations} * {num_entities}**2")
    head, rel, tail = triples.unbind(-1)
    return (head * num_relations + rel) * num_entities + tail


def triples_from_data(data: Data) -> Tensor:
    r"""The ``(head, relation, tail)`` triples ``[E, 3]`` of a split's
    :class:`~torch_geometric.data.Data`."""
    return torch.stack([data.edge_index[0], data.edge_type, data.edge_index[1]], dim=1)


def relation_tph_hpt(triples: Tensor, num_relations: int) -> Tuple[Tensor, Tensor]:
    r"""Tails per head and heads per tail of every relation.

    .. math::
        \mathrm{tph}_r = \frac{|\{(h, r, t)\}|}{|\{(h, r)\}|}, \qquad
        \mathrm{hpt}_r = \frac{|\{(h, r, t)\}|}{|\{(r, t)\}|}

    counting triples with multiplicity (as OpenKE's ``n-n.py`` does, which made the
    benchmark category files). Relations without triples get 0.
    """
    rel = triples[:, 1]
    count = torch.bincount(rel, minlength=num_relations).double()
    tph = count / _distinct_pairs(triples[:, 0], rel, num_relations).clamp(min=1)
    hpt = count / _distinct_pairs(triples[:, 2], rel, num_relations).clamp(min=1)
    return tph, hpt


def _distinct_pairs(ent: Tensor, rel: Tensor, num_relations: int) -> Tensor:
    # Number of distinct (entity, relation) pairs per relation.
    stride = int(ent.max()) + 1 if ent.numel() else 1
    keys = torch.unique(rel * stride + ent)
    return torch.bincount(keys // stride, minlength=num_relations).double()


def relation_categories(triples: Tensor, num_relations: int,
                        threshold: float = 1.5) -> Tensor:
    r"""The category of every relation as an index into
    ``CATEGORIES = ('1-1', '1-n', 'n-1', 'n-n')``, ``[R]`` long.

    The standard rule (Bordes et al., 2013; OpenKE's ``n-n.py``): a relation is
    "n" on the tail side when :math:`\mathrm{tph}_r \ge 1.5` and on the head side when
    :math:`\mathrm{hpt}_r \ge 1.5`, computed on train + valid + test
    (see :func:`relation_tph_hpt`).
    """
    tph, hpt = relation_tph_hpt(triples, num_relations)
    return (tph >= threshold).long() + 2 * (hpt >= threshold).long()


def split_by_category(test: Tensor, categories: Tensor) -> Dict[str, Tensor]:
    r"""The test triples grouped by the category of their relation."""
    cat = categories[test[:, 1]]
    return {name: test[cat == i] for i, name in enumerate(CATEGORIES)}
