r"""The in-memory multi-modal knowledge graph and its PyG view.

:class:`KGDataset` holds the three splits as LongTensors ``[E, 3]`` in
``(head, relation, tail)`` order, the entity and relation names, and the modality
features. :meth:`KGDataset.to_data` turns it into one :class:`torch_geometric.data.Data`
in the layout of PyG's own knowledge graphs (``WordNet18RR``: every split's edges, told
apart by masks), and :meth:`KGDataset.from_data` turns such a ``Data`` back, losslessly:

======================  ==================  ============================================
attribute               shape / type        meaning
======================  ==================  ============================================
``edge_index``          ``[2, E]`` long     row 0 = heads, row 1 = tails
``edge_type``           ``[E]`` long        relation ids
``train_mask``,         ``[E]`` bool        which split an edge belongs to
``val_mask``,
``test_mask``
``num_nodes``           ``int``             number of entities :math:`N`
``num_relations``       ``int``             number of relations :math:`R`
``x_<modality>``        ``[N, d_m]`` float  features; rows of missing entities are zeros
``mask_<modality>``     ``[N]`` bool        ``True`` where the entity has the modality
``modalities``          ``list[str]``       the modality names, sorted
``entity_names``,       ``list[str]``       names by id
``relation_names``
``test_category``       ``[E]`` long        relation category of each test edge (index
                                            into ``CATEGORIES``; -1 elsewhere), if known
``name``                ``str``             the dataset's name
======================  ==================  ============================================

``to_data(split)`` gives one split alone (``edge_index`` holds only its edges, no masks),
as PyG's ``FB15k_237(split=...)`` does; :func:`triples_from_data` reads its triples.
The split names are ``train``, ``valid`` and ``test``; PyG's ``val`` is accepted too.
"""
import copy
import hashlib
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.data import Data

from mmkgc_pyg.errors import DataWarning, InvalidArgumentError


SPLITS = ("train", "valid", "test")
#: What a modality may be called (it names parameters: ``features.<name>``).
MODALITY_NAME = re.compile(r"[A-Za-z0-9_-]+")
_SPLIT_ALIASES = {"val": "valid"}
_MASKS = {"train": "train_mask", "valid": "val_mask", "test": "test_mask"}
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
    # (the split tensors hashed, their fingerprint): hashing Wikidata5M's 495 MB of triples
    # takes about a second, and a run asks for the fingerprint more than once.
    _fingerprint: Optional[Tuple[Tuple[Tensor, ...], str]] = field(
        default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        # One modality order everywhere (features, masks, models built from them): sorted.
        self.features = dict(sorted(self.features.items()))
        self.masks = dict(sorted(self.masks.items()))
        # Programming errors (the loaders report problems in user files themselves).
        for split in SPLITS:
            triples = getattr(self, split)
            if triples.dtype != torch.long or triples.dim() != 2 or triples.size(1) != 3:
                raise InvalidArgumentError(f"{split}: expected a LongTensor [E, 3], got "
                                           f"{triples.dtype} {list(triples.shape)}")
        if len(self.entity_names) != self.num_entities:
            raise InvalidArgumentError(f"expected {self.num_entities} entity names, got "
                                       f"{len(self.entity_names)}")
        if len(self.relation_names) != self.num_relations:
            raise InvalidArgumentError(f"expected {self.num_relations} relation names, got "
                                       f"{len(self.relation_names)}")
        if set(self.features) != set(self.masks):
            raise InvalidArgumentError(f"features {sorted(self.features)} and masks "
                                       f"{sorted(self.masks)} name different modalities")
        for m in self.features:
            if not MODALITY_NAME.fullmatch(m):
                raise InvalidArgumentError(f"features[{m!r}]: expected a modality name of "
                                           "letters, digits, _ and - (no dots)")
            x, mask = self.features[m], self.masks[m]
            if x.dim() != 2 or x.size(0) != self.num_entities or not x.is_floating_point():
                raise InvalidArgumentError(
                    f"features[{m!r}]: expected a float tensor [{self.num_entities}, d], got "
                    f"{x.dtype} {list(x.shape)}")
            if mask.dtype != torch.bool or mask.shape != (self.num_entities,):
                raise InvalidArgumentError(
                    f"masks[{m!r}]: expected a bool tensor [{self.num_entities}], got "
                    f"{mask.dtype} {list(mask.shape)}")

    @property
    def modalities(self) -> List[str]:
        r"""The modality names, sorted (the order of :attr:`features`)."""
        return list(self.features)

    def evaluation_triples(self, split: str, raw: bool = False) -> Tensor:
        r"""The triples of ``split`` as they are evaluated: each distinct triple once
        (first occurrences, in file order) and, for ``valid``, without training triples,
        since selecting a model on triples it trained on measures memorisation. With
        ``raw``, the split as in its file (for comparison with published numbers)."""
        triples = getattr(self, canonical_split(split))
        if raw:
            return triples
        keys = triple_keys(triples, self.num_entities, self.num_relations)
        keep = _first_occurrences(keys)
        if canonical_split(split) == "valid":
            train_keys = triple_keys(self.train, self.num_entities, self.num_relations)
            keep &= ~torch.isin(keys, train_keys)
        return triples[keep]

    def known_triples(self) -> Tensor:
        r"""All known triples (train, valid, test), ``[E, 3]``: the filter set of
        filtered link prediction."""
        return torch.cat([self.train, self.valid, self.test], dim=0)

    def fingerprint(self) -> str:
        r"""A short hash of the triples, saved with trained models so that a model is
        never evaluated against a different graph with the same sizes.

        Computed once: later calls return the stored hash while the splits are the same
        tensor objects (a split replaced by another tensor is hashed again; the triples
        are not to be modified in place)."""
        splits = tuple(getattr(self, split) for split in SPLITS)
        if self._fingerprint is not None and all(
                a is b for a, b in zip(self._fingerprint[0], splits)):
            return self._fingerprint[1]
        digest = hashlib.sha256()
        for triples in splits:
            digest.update(triples.contiguous().numpy())  # the buffer itself, no byte copy
        self._fingerprint = splits, digest.hexdigest()[:16]
        return self._fingerprint[1]

    def to_data(self, split: Optional[str] = None) -> Data:
        r"""The graph as a PyG :class:`~torch_geometric.data.Data` (attributes in the
        module docstring): all splits with ``train_mask``/``val_mask``/``test_mask``,
        or with ``split`` (``train``, ``valid``/``val``, ``test``) that split alone."""
        if split is not None:
            triples = getattr(self, canonical_split(split))
            data = Data(edge_index=triples[:, [0, 2]].t().contiguous(),
                        edge_type=triples[:, 1].contiguous(), num_nodes=self.num_entities)
        else:
            triples = self.known_triples()
            sizes = [len(getattr(self, s)) for s in SPLITS]
            which = torch.repeat_interleave(torch.arange(3), torch.tensor(sizes))
            data = Data(edge_index=triples[:, [0, 2]].t().contiguous(),
                        edge_type=triples[:, 1].contiguous(), num_nodes=self.num_entities,
                        **{_MASKS[s]: which == i for i, s in enumerate(SPLITS)})
            if self.test_categories:
                category = torch.full((len(triples), ), -1, dtype=torch.long)
                keys = triple_keys(triples, self.num_entities, self.num_relations)
                for i, name in enumerate(CATEGORIES):
                    members = self.test_categories.get(name, triples[:0])
                    member_keys = triple_keys(members, self.num_entities, self.num_relations)
                    category[data.test_mask & torch.isin(keys, member_keys)] = i
                data.test_category = category
        data.num_relations = self.num_relations
        for m in self.modalities:
            data[f"x_{m}"] = self.features[m]
            data[f"mask_{m}"] = self.masks[m]
        data.modalities = self.modalities
        data.entity_names = list(self.entity_names)
        data.relation_names = list(self.relation_names)
        data.name = self.name
        return data

    @classmethod
    def from_data(cls, data: Data, val_data: Optional[Data] = None,
                  test_data: Optional[Data] = None, name: Optional[str] = None) -> "KGDataset":
        r"""A :class:`KGDataset` from PyG data: one ``Data`` with ``train_mask``,
        ``val_mask`` and ``test_mask`` over its edges (as :meth:`to_data` and PyG's
        ``WordNet18RR`` make it), or three ``Data`` of one split each (``data`` the
        training split, as PyG's ``FB15k_237(split=...)``). Modalities are the
        ``x_<m>``/``mask_<m>`` attributes (a missing mask means present everywhere);
        names and categories are read when present, else entity ``i`` is named ``"i"``."""
        splits = [data] if val_data is None and test_data is None else [data, val_data, test_data]
        if len(splits) == 3 and any(d is None for d in splits):
            raise InvalidArgumentError("from_data: expected both val_data and test_data, or "
                                       "neither")
        num_entities = int(data.num_nodes)
        triples = [triples_from_data(d) for d in splits]
        num_relations = int(getattr(data, "num_relations", None) or
                            max((int(t[:, 1].max()) + 1 for t in triples if len(t)), default=1))
        if len(splits) == 1:
            if not all(hasattr(data, _MASKS[s]) for s in SPLITS):
                raise InvalidArgumentError("from_data: expected train_mask, val_mask and "
                                           "test_mask, or val_data and test_data")
            triples = [triples[0][data[_MASKS[s]]] for s in SPLITS]
        names = {key: list(getattr(data, key)) if getattr(data, key, None) is not None
                 else [str(i) for i in range(count)]
                 for key, count in (("entity_names", num_entities),
                                    ("relation_names", num_relations))}
        features, masks = modality_tables(data)
        categories = {}
        if len(splits) == 1 and getattr(data, "test_category", None) is not None:
            test_rows = data.test_category[data.test_mask]
            categories = {c: triples[2][test_rows == i] for i, c in enumerate(CATEGORIES)}
        return cls(name or getattr(data, "name", None) or "graph", num_entities, num_relations,
                   *triples, names["entity_names"], names["relation_names"], features, masks,
                   categories)

    def __repr__(self) -> str:
        mods = ", ".join(f"{m}: {self.features[m].size(1)}-d, {int(self.masks[m].sum())} present"
                         for m in self.modalities)
        return (f"KGDataset({self.name!r}, entities={self.num_entities}, "
                f"relations={self.num_relations}, train={len(self.train)}, "
                f"valid={len(self.valid)}, test={len(self.test)}, modalities={{{mods}}})")


def _first_occurrences(keys: Tensor) -> Tensor:
    """Bool mask of the first occurrence of each distinct key."""
    order = torch.argsort(keys, stable=True)
    ordered = keys[order]
    first = torch.ones_like(keys, dtype=torch.bool)
    first[order[1:]] = ordered[1:] != ordered[:-1]
    return first


def data_findings(dataset: "KGDataset") -> List[str]:
    """One line per finding that makes results misleading unless known, with counts."""
    findings = []
    for kind, plural, names in (("entity", "entities", dataset.entity_names),
                                ("relation", "relations", dataset.relation_names)):
        if len(set(names)) == len(names):  # the usual case, 3x faster than counting
            continue
        repeated = {n: c for n, c in Counter(names).items() if c > 1}
        example = next(iter(repeated))
        findings.append(f"{len(repeated)} {kind} names occur more than once (e.g. "
                        f"{example!r}, {repeated[example]} times): those {plural} cannot "
                        f"be told apart by name")
    key = {split: triple_keys(getattr(dataset, split), dataset.num_entities,
                              dataset.num_relations) for split in SPLITS}
    # One sort per split answers both questions: repeats are the keys less the distinct
    # keys, and membership is a binary search in the other split's distinct keys (where
    # torch.isin would sort the training keys again for each split).
    distinct = {split: _sorted_distinct(key[split]) for split in SPLITS}
    for split in SPLITS:
        repeats = len(key[split]) - len(distinct[split])
        if repeats:
            findings.append(f"{split}: {repeats} of {len(key[split])} lines repeat a triple "
                            f"of the split" + ("" if split == "train" else
                                               " (each distinct triple is evaluated once)"))
    for split, other in (("valid", "train"), ("test", "train"), ("test", "valid")):
        shared = sorted_contains(distinct[other], key[split])
        if bool(shared.any()):
            note = (" (model selection uses the other valid triples)" if split == "valid"
                    else "")
            findings.append(f"{split}: {int(shared.sum())} of {len(key[split])} triples are "
                            f"also {other} triples{note}")
    return findings


def warn_about_data(dataset: "KGDataset", where) -> None:
    """Emits each of :func:`data_findings` as a :class:`DataWarning` naming ``where``."""
    for finding in data_findings(dataset):
        warnings.warn(f"{where}: {finding}", DataWarning, stacklevel=3)


def canonical_split(split: str) -> str:
    """``train``, ``valid`` or ``test`` for a split name (PyG's ``val`` included)."""
    canonical = _SPLIT_ALIASES.get(split, split)
    if canonical not in SPLITS:
        raise InvalidArgumentError(f"split={split!r}: expected one of {', '.join(SPLITS)} (or "
                                   f"'val')")
    return canonical


def triple_keys(triples: Tensor, num_entities: int, num_relations: int,
                inverse: bool = False) -> Tensor:
    r"""Injective int64 key of each triple: :math:`(h R + r) N + t`.

    Keys lie in :math:`[0, R N^2)`; the bound :math:`R N^2 \le 2^{63} - 1` is checked so
    no key overflows (e.g. :math:`N = 10^6` entities allow :math:`R \approx 9 \cdot 10^6`).
    Sorting the keys groups the triples by :math:`(h, r)`, tails ascending within a group.

    Args:
        triples: LongTensor ``[..., 3]`` of (head, relation, tail).
        num_entities: :math:`N`.
        num_relations: :math:`R`.
        inverse: the key of the inverse triple instead, :math:`(t R + r) N + h` (sorted,
            grouped by :math:`(t, r)`, heads ascending).
    """
    if num_relations * num_entities * num_entities > _INT64_MAX:
        raise InvalidArgumentError(f"triple_keys: expected num_relations * num_entities**2 <= "
                                   f"2**63 - 1, "
                                   f"got {num_relations} * {num_entities}**2")
    head, rel, tail = triples.unbind(-1)
    first, last = (tail, head) if inverse else (head, tail)
    # In place after the first product: at 20M triples fresh temporaries cost 3x the
    # arithmetic.
    keys = first * num_relations
    keys += rel
    keys *= num_entities
    keys += last
    return keys



class TripleIndex:
    r"""The distinct triples of a set as sorted int64 keys, in both directions: the one
    sort of a graph's triples that filtered ranking
    (:class:`~mmkgc_pyg.evaluation.FilterIndex`) and filtered negative sampling
    (:class:`~mmkgc_pyg.training.NegativeSampler`) share.

    :attr:`forward` holds the keys :math:`(h R + r) N + t` (:func:`triple_keys`)
    ascending: the known tails of a query :math:`(h, r, ?)` are the keys
    :math:`qN + t` in :math:`[qN, (q + 1) N)`, :math:`q = h R + r`, tails ascending.
    :attr:`inverse` holds :math:`(t R + r) N + h` ascending: the same for
    :math:`(?, r, t)` and its heads. Sorting 1-D keys costs one :func:`torch.sort` each,
    where the row-wise ``torch.unique(dim=0)`` of the ``[E, 3]`` triples costs 15-30x
    more (45-90 s for Wikidata5M's 20.6M training triples on two CPU cores).

    Args:
        triples: LongTensor ``[E, 3]`` of (head, relation, tail) with ids in range (not
            checked here); the index lives on their device.
        num_entities: :math:`N`.
        num_relations: :math:`R`.
    """

    def __init__(self, triples: Tensor, num_entities: int, num_relations: int):
        self.num_entities, self.num_relations = num_entities, num_relations
        forward, inverse = self._keys(triples)
        #: Sorted distinct keys :math:`(h R + r) N + t`, ``[T]``.
        self.forward = _sorted_distinct(forward)
        #: The same triples' keys :math:`(t R + r) N + h`, sorted, ``[T]``.
        self.inverse = _sorted_distinct(inverse)

    def __len__(self) -> int:
        return self.forward.numel()

    @property
    def device(self) -> torch.device:
        return self.forward.device

    def to(self, device) -> "TripleIndex":
        """The index on ``device``."""
        return self._with(self.forward.to(device), self.inverse.to(device))

    def union(self, triples: Tensor) -> "TripleIndex":
        r"""The index of these triples and ``triples`` ``[E', 3]`` (e.g. the training
        index and the valid and test triples: the filter set of link prediction), without
        sorting again: only the new keys are sorted, then merged in,
        :math:`O(T + E' \log T)`."""
        merged = []
        for known, keys in zip((self.forward, self.inverse), self._keys(triples.to(self.device))):
            new = _sorted_distinct(keys)
            merged.append(_merge_sorted(known, new[~sorted_contains(known, new)]))
        return self._with(*merged)

    def _keys(self, triples: Tensor) -> Tuple[Tensor, Tensor]:
        # The forward and the inverse keys of triples [E, 3].
        return tuple(triple_keys(triples, self.num_entities, self.num_relations, inverse)
                     for inverse in (False, True))

    def _with(self, forward: Tensor, inverse: Tensor) -> "TripleIndex":
        index = copy.copy(self)
        index.forward, index.inverse = forward, inverse
        return index


def sorted_contains(sorted_keys: Tensor, keys: Tensor) -> Tensor:
    r"""Bool mask of the ``keys`` found in ``sorted_keys`` (ascending): a binary search
    each, where :func:`torch.isin` sorts both sets again."""
    if sorted_keys.numel() == 0:
        return torch.zeros_like(keys, dtype=torch.bool)
    found = torch.searchsorted(sorted_keys, keys).clamp(max=sorted_keys.numel() - 1)
    return sorted_keys[found] == keys


def _sorted_distinct(keys: Tensor) -> Tensor:
    return torch.unique_consecutive(torch.sort(keys).values)


def _merge_sorted(a: Tensor, b: Tensor) -> Tensor:
    """The ascending union of two ascending tensors without common values, in O(|a| +
    |b| log |a|): each value of ``b`` goes after the values of ``a`` below it and after
    the values of ``b`` before it."""
    at = torch.searchsorted(a, b) + torch.arange(b.numel(), device=b.device)
    merged = a.new_empty(a.numel() + b.numel())
    from_b = torch.zeros(merged.numel(), dtype=torch.bool, device=a.device)
    from_b[at] = True
    merged[at] = b
    merged[~from_b] = a
    return merged


def modality_tables(data: Data) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
    r"""The modalities of a PyG graph: features ``x_<m>`` ``[N, d_m]`` and availability
    ``mask_<m>`` ``[N]`` (present everywhere when absent), in the order of
    ``data.modalities`` (sorted names when that is not set)."""
    modalities = getattr(data, "modalities", None) or sorted(
        key[2:] for key in data.keys() if key.startswith("x_"))
    features = {m: data[f"x_{m}"] for m in modalities}
    masks = {m: data[f"mask_{m}"] if f"mask_{m}" in data else
             torch.ones(int(data.num_nodes), dtype=torch.bool) for m in modalities}
    return features, masks


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
