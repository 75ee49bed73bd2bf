"""What a trained model answers: the most plausible entities of link prediction queries,
the scores of given triples, and its embeddings for vector search.

One code path serves one query and millions. :func:`predict` takes its queries as
tensors of ids or as names and asks the model's
:meth:`~mmkgc_pyg.nn.MMKGCModel.predict_tails` /
:meth:`~mmkgc_pyg.nn.MMKGCModel.predict_heads` a block of queries at a time, so memory
stays bounded on any graph and the interaction's top-k path (the RotatE kernels on a GPU)
does the work; :func:`predict_by_name` (:meth:`MMKGCModel.predict
<mmkgc_pyg.nn.MMKGCModel.predict>`, ``python -m mmkgc_pyg.predict --head``) is the
case of one query by name. :func:`score_triples` scores given triples in blocks the same
way, and :func:`export_embeddings` writes the embedding tables for FAISS or a vector
database (``python -m mmkgc_pyg.export``).

**Names.** A name is resolved by :class:`NameIndex`: the exact name first, else the name's
key of :func:`~mmkgc_pyg.data.entity_key` (URI tail, ``_`` for spaces, ``%XX`` decoded),
so that ``Anarchism`` or ``Andy Griffith`` name the DBpedia entities
``<http://dbpedia.org/resource/Anarchism>`` and ``<.../Andy_Griffith>`` when exactly one
entity has that key. A name that matches nothing raises
:class:`~mmkgc_pyg.errors.UnknownNameError` with up to three close names, in the readable
form (:func:`~mmkgc_pyg.data.readable_name`) where the names are URIs; one that several
entities share raises :class:`~mmkgc_pyg.errors.AmbiguousNameError`. The same errors
come from Python and the command line.
"""
import difflib
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from mmkgc_pyg.data.entity_names import entity_key, readable_name
from mmkgc_pyg.errors import (AmbiguousNameError, InvalidArgumentError, NonFiniteModelError,
                              OutputError, UnknownNameError)
from mmkgc_pyg.evaluation.filtering import FilterIndex
from mmkgc_pyg.io import atomic_save_npy, atomic_torch_save, atomic_write_json, atomic_write_text
from mmkgc_pyg.run_folder import writable_folder
from mmkgc_pyg.score_blocks import SCORE_BUDGET

#: One entity or relation, or many: a name, an id, a sequence of either, or ids ``[B]``.
Ids = Union[str, int, Sequence[str], Sequence[int], Tensor]
Known = Union[Tensor, FilterIndex, None]

__all__ = ["NameIndex", "name_index", "Prediction", "PredictionBatch", "ScoredTriples",
           "predict", "predict_by_name", "score_triples", "export_embeddings",
           "EXPORT_FORMATS", "UnknownNameError", "AmbiguousNameError"]


class NameIndex:
    """Resolves names of entities (or relations) to ids: exact names, then their
    :func:`~mmkgc_pyg.data.entity_key` (module docstring).

    Args:
        names (Sequence[str]): the names, indexed by id.
        kind (str): ``"an entity"`` or ``"a relation"`` (words the errors).
    """

    def __init__(self, names: Sequence[str], kind: str):
        self.names, self.kind = names, kind
        self._exact: Dict[str, int] = {}
        self._shared: Dict[str, List[int]] = {}
        for i, name in enumerate(names):
            if self._exact.setdefault(name, i) != i:
                self._shared.setdefault(name, [self._exact[name]]).append(i)
        # Built at the first name that is not exact: millions of keys cost seconds.
        self._keys: Optional[Dict[str, List[int]]] = None

    def _key_index(self) -> Dict[str, List[int]]:
        if self._keys is None:
            self._keys = {}
            for i, full in enumerate(self.names):
                self._keys.setdefault(entity_key(full), []).append(i)
        return self._keys

    def id(self, name: str, argument: str) -> int:
        """The id ``name`` names; ``argument`` (``"head"``, ``"relation"``, ...) is named
        in the errors.

        Raises:
            UnknownNameError: no such name (with close names).
            AmbiguousNameError: several entities share the name, or its key.
        """
        exact = self._exact.get(name)
        if exact is not None:
            if name in self._shared:
                raise AmbiguousNameError(argument, name, self._shared[name])
            return exact
        ids = self._key_index().get(entity_key(name), [])
        if len(ids) > 1:
            raise AmbiguousNameError(argument, name, ids)
        if not ids:
            raise UnknownNameError(argument, name, self.kind, self.suggestions(name))
        return ids[0]

    def suggestions(self, name: str, n: int = 3) -> List[str]:
        """Up to ``n`` names close to ``name``, each spelled as it can be given: the
        readable name where the full one is decorated (a URI), else the name itself."""
        keys = self._key_index()
        spellings = []
        for full in self.names:
            key = entity_key(full)
            readable = readable_name(full) if key != full and len(keys[key]) == 1 else None
            spellings.append(readable or full)
        query = (readable_name(name) or name) if entity_key(name) != name else name
        return difflib.get_close_matches(query, list(dict.fromkeys(spellings)), n=n)


# One index per model and name list, so that a model asked many single queries indexes
# its names once (a list replaced by another is indexed again; lists are not to be changed
# in place).
_INDEXES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _names(model, kind: str) -> Sequence[str]:
    names = model.entity_names if kind == "entity" else model.relation_names
    if names is None:
        raise InvalidArgumentError(f"the model has no {kind}_names (set them, or load a trained "
                                   "model with mmkgc_pyg.load_checkpoint)")
    return names


def name_index(model, kind: str) -> NameIndex:
    """The :class:`NameIndex` of ``model.entity_names`` (``kind="entity"``) or
    ``model.relation_names`` (``kind="relation"``).

    Raises:
        InvalidArgumentError: the model has no names.
    """
    names = _names(model, kind)
    cached = _INDEXES.setdefault(model, {}).get(kind)
    if cached is None or cached[0] is not names:
        cached = names, NameIndex(names, "an entity" if kind == "entity" else "a relation")
        _INDEXES[model][kind] = cached
    return cached[1]


def _ids(model, values: Ids, kind: str, argument: str) -> Tensor:
    """``values`` as ids: a 0-d tensor for one name or id, else ``[B]``."""
    count = model.num_nodes if kind == "entity" else model.num_relations
    if isinstance(values, str):
        return torch.tensor(name_index(model, kind).id(values, argument))
    if isinstance(values, np.ndarray):
        values = torch.from_numpy(values)
    if isinstance(values, Tensor):
        if values.dtype.is_floating_point or values.dtype == torch.bool or values.dim() > 1:
            raise InvalidArgumentError(f"{argument}: expected integer ids, 0-d or [B], got "
                                       f"{values.dtype} {list(values.shape)}")
        ids = values.long().cpu()
    elif isinstance(values, int) and not isinstance(values, bool):
        ids = torch.tensor(values)
    elif isinstance(values, bool) or not isinstance(values, Iterable):
        raise InvalidArgumentError(f"{argument}: expected names or integer ids, got "
                                   f"{type(values).__name__}")
    else:
        values = list(values)
        if values and all(isinstance(v, str) for v in values):
            index = name_index(model, kind)
            ids = torch.tensor([index.id(v, f"{argument}[{i}]") for i, v in enumerate(values)])
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            ids = torch.tensor(values, dtype=torch.long)
        else:
            raise InvalidArgumentError(f"{argument}: expected all names or all integer ids")
    if ids.numel() and not (0 <= int(ids.min()) and int(ids.max()) < count):
        raise InvalidArgumentError(f"{argument}: expected {kind} ids in [0, {count}), got "
                                   f"{int(ids.min())}..{int(ids.max())}")
    return ids


def check_finite(model, results: str = "answers") -> None:
    """Refuses a model whose parameters hold NaN or infinity, saying which ``results``
    would be meaningless (one host synchronisation for all parameters).

    Raises:
        NonFiniteModelError: a parameter is not finite.
    """
    if not torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all():
        raise NonFiniteModelError("the model's parameters hold NaN or infinite values: its "
                                  f"{results} would be meaningless")


def _filter_index(model, known: Known) -> Optional[FilterIndex]:
    if known is None:
        return None
    index = known if isinstance(known, FilterIndex) else FilterIndex(known, model.num_relations)
    return index.to(model.device)


def _triple_columns(model, head: Tensor, relation: Tensor, tail: Tensor) -> Dict[str, list]:
    """Id columns of triples, and name columns when the model has names."""
    columns = {"head_id": head.tolist(), "relation_id": relation.tolist(),
               "tail_id": tail.tolist()}
    entities, relations = model.entity_names, model.relation_names
    if entities is not None and relations is not None:
        columns.update(head=[entities[i] for i in columns["head_id"]],
                       relation=[relations[i] for i in columns["relation_id"]],
                       tail=[entities[i] for i in columns["tail_id"]])
    return columns


def column_rows(columns: Dict[str, list]) -> List[Dict[str, Any]]:
    """A table given as columns (name -> list), as one dict per row."""
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


@dataclass
class Prediction:
    """One answer of a query: its ``rank`` (1 = most plausible), the ``entity`` name and
    ``id``, the model's ``score`` (higher = more plausible) and whether it completes one
    of the ``known`` triples given to :func:`predict`."""
    rank: int
    entity: str
    id: int
    score: float
    known: bool

    def to_dict(self) -> Dict:
        return asdict(self)


@dataclass(eq=False)
class PredictionBatch:
    """The ``k`` best answers of ``B`` queries of one side, from :func:`predict`.

    Attributes:
        model: the model that answered (for its names).
        side (str): the side predicted, ``"tail"`` for ``(h, r, ?)`` or ``"head"`` for
            ``(?, r, t)``.
        entity (torch.Tensor): ``[B]`` the given entity of each query (head or tail).
        relation (torch.Tensor): ``[B]`` the relations.
        ids (torch.Tensor): ``[B, k]`` the answers' entity ids, best first.
        scores (torch.Tensor): ``[B, k]`` their scores; ``-inf`` pads a query that
            ``filter`` left with fewer than ``k`` answers.
        known (torch.Tensor): ``[B, k]`` bool: the answer completes a known triple.
    """
    model: Any = field(repr=False)
    side: str
    entity: Tensor
    relation: Tensor
    ids: Tensor
    scores: Tensor
    known: Tensor

    def __len__(self) -> int:
        return self.entity.numel()

    def answers(self, query: int) -> List[Prediction]:
        """The answers of query ``query`` as :class:`Prediction` rows (needs the model's
        entity names)."""
        names = _names(self.model, "entity")
        return [Prediction(rank, names[i], i, s, k) for rank, (i, s, k) in enumerate(zip(
            self.ids[query].tolist(), self.scores[query].tolist(),
            self.known[query].tolist()), 1) if s > float("-inf")]

    def columns(self) -> Dict[str, list]:
        """The answers as a table, one row per answer in query order, best first:
        ``query`` (index), ``predict`` (the side), ``rank``, ``head_id``,
        ``relation_id``, ``tail_id`` (the completed triple), ``head``, ``relation``,
        ``tail`` (when the model has names), ``score``, ``known``. Column name -> list
        (``pandas.DataFrame(batch.columns())``, ``pyarrow.table(...)``)."""
        real = self.scores > float("-inf")
        query, slot = real.nonzero(as_tuple=True)
        given, answer = self.entity[query], self.ids[query, slot]
        head, tail = (given, answer) if self.side == "tail" else (answer, given)
        return {"query": query.tolist(), "predict": [self.side] * len(query),
                "rank": (slot + 1).tolist(),
                **_triple_columns(self.model, head, self.relation[query], tail),
                "score": self.scores[real].tolist(), "known": self.known[real].tolist()}

    def rows(self) -> List[Dict[str, Any]]:
        """:meth:`columns` as one dict per answer."""
        return column_rows(self.columns())


@dataclass(eq=False)
class ScoredTriples:
    """Triples and their scores, from :func:`score_triples`.

    Attributes:
        model: the model that scored them (for its names).
        head, relation, tail (torch.Tensor): ``[B]`` ids.
        scores (torch.Tensor): ``[B]`` (higher = more plausible).
        known (torch.Tensor): ``[B]`` bool: the triple is one of the known ones.
    """
    model: Any = field(repr=False)
    head: Tensor
    relation: Tensor
    tail: Tensor
    scores: Tensor
    known: Tensor

    def __len__(self) -> int:
        return self.scores.numel()

    def columns(self) -> Dict[str, list]:
        """One row per triple: ``query`` (index), the id columns, the name columns (when
        the model has names), ``score`` and ``known``."""
        return {"query": list(range(len(self))),
                **_triple_columns(self.model, self.head, self.relation, self.tail),
                "score": self.scores.tolist(), "known": self.known.tolist()}

    def rows(self) -> List[Dict[str, Any]]:
        """:meth:`columns` as one dict per triple."""
        return column_rows(self.columns())


def _broadcast(*values: Tensor) -> List[Tensor]:
    try:
        return [v.reshape(-1) for v in torch.broadcast_tensors(*values)]
    except RuntimeError:
        raise InvalidArgumentError("expected one name or id, or equally many, per argument; got "
                                   f"{' and '.join(str(v.numel()) for v in values)}") from None


def _block_size(batch_size: Optional[int], per_query: int) -> int:
    if batch_size is not None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InvalidArgumentError(f"batch_size={batch_size!r}: expected a positive "
                                       "integer")
        return batch_size
    return max(1, SCORE_BUDGET // per_query)


@torch.no_grad()
def predict(model, *, relation: Ids, head: Optional[Ids] = None, tail: Optional[Ids] = None,
            k: int = 10, known: Known = None, filter: bool = False,
            batch_size: Optional[int] = None, progress: bool = False) -> PredictionBatch:
    """The ``k`` most plausible tails of queries ``(head, relation, ?)``, or heads of
    ``(?, relation, tail)``, best first.

    Each of ``relation`` and ``head`` (or ``tail``) is one name or id, or a sequence (or
    1-D tensor) of them; one name or id is used for every query. Names are resolved
    through the model's ``entity_names`` / ``relation_names`` (module docstring).

    Args:
        model (MMKGCModel): the model.
        relation: the relations.
        head: the heads: predict tails (give ``head`` or ``tail``).
        tail: the tails: predict heads.
        k (int): answers per query (at most the number of entities).
        known (torch.Tensor or FilterIndex, optional): known triples ``[T, 3]`` (head,
            relation, tail), e.g. the training triples: answers completing one are
            marked :attr:`PredictionBatch.known`.
        filter (bool): leave the known answers out (a query then has fewer than ``k``
            answers when fewer than ``k`` entities remain).
        batch_size (int, optional): queries per call of the model's prediction (default:
            as many as keep the queries and answers of a call within
            :data:`~mmkgc_pyg.score_blocks.SCORE_BUDGET` values; each call fuses every
            entity once, so fewer, larger calls are faster).
        progress (bool): show a progress bar over the calls.

    Raises:
        UnknownNameError, AmbiguousNameError: a name that names no entity, or several.
        NonFiniteModelError: the model's parameters hold NaN or infinity (NaN scores
            would be left out or come first, silently).
        InvalidArgumentError: neither or both of ``head`` and ``tail``, ``k < 1``, ids out
            of range, names for a model without names, or ``filter`` without ``known``.
    """
    if (head is None) == (tail is None):
        raise InvalidArgumentError("predict: expected exactly one of head= and tail=")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InvalidArgumentError(f"predict: k={k!r}: expected a positive integer")
    if filter and known is None:
        raise InvalidArgumentError("predict: filter=True needs known= (the triples to leave out)")
    side, argument, given = ("tail", "head", head) if head is not None else ("head", "tail", tail)
    entity, rel = _broadcast(_ids(model, given, "entity", argument),
                             _ids(model, relation, "relation", "relation"))
    check_finite(model)
    k = min(k, model.num_nodes)
    index = _filter_index(model, known)
    step = _block_size(batch_size, model.interaction.entity_channels + k)
    device = model.device
    table = model.prediction_table()  # every entity fused once, for all blocks
    parts = []
    for start in tqdm(range(0, len(entity), step), disable=not progress, desc="predicting",
                      unit="block"):
        ent, r = entity[start:start + step].to(device), rel[start:start + step].to(device)
        exclude = index.answers(ent, r, side) if filter else None
        if side == "tail":
            scores, ids = model.predict_tails(ent, r, k, exclude, table)
        else:
            scores, ids = model.predict_heads(r, ent, k, exclude, table)
        known_mask = (torch.zeros_like(ids, dtype=torch.bool) if index is None else
                      index.contains(ent[:, None], r[:, None], ids, side))
        # Answers leave the device block by block: only the queries' tables grow with B.
        parts.append((scores.float().cpu(), ids.cpu(), known_mask.cpu()))
    if parts:
        scores, ids, known_mask = (torch.cat(p) for p in zip(*parts))
    else:
        scores, ids, known_mask = (torch.zeros(0, k, dtype=dtype)
                                   for dtype in (torch.float, torch.long, torch.bool))
    return PredictionBatch(model, side, entity, rel, ids, scores, known_mask)


def predict_by_name(model, *, relation: str, head: Optional[str] = None,
                    tail: Optional[str] = None, k: int = 10, known: Known = None,
                    filter: bool = False) -> List[Prediction]:
    """The ``k`` most plausible tails of ``(head, relation, ?)`` or heads of ``(?,
    relation, tail)`` by name, best first: :func:`predict` of one query, as
    :class:`Prediction` rows (rank, entity name, id, score, known).

    Raises:
        UnknownNameError, AmbiguousNameError, NonFiniteModelError, InvalidArgumentError:
            as :func:`predict` (also for a model without names).
    """
    return predict(model, relation=relation, head=head, tail=tail, k=k, known=known,
                   filter=filter).answers(0)


@torch.no_grad()
def score_triples(model, head: Ids, relation: Ids, tail: Ids, *, known: Known = None,
                  batch_size: Optional[int] = None, progress: bool = False) -> ScoredTriples:
    """The scores of triples ``(head, relation, tail)`` (names or ids, as in
    :func:`predict`; one name or id is used for every triple), ``model(head, relation,
    tail)`` a block at a time.

    Args:
        known (torch.Tensor or FilterIndex, optional): known triples ``[T, 3]``: the
            triples among them are marked :attr:`ScoredTriples.known`.
        batch_size (int, optional): triples per call of the model (default: as many as
            keep the rows a call fuses within
            :data:`~mmkgc_pyg.score_blocks.SCORE_BUDGET` values).
        progress (bool): show a progress bar over the calls.

    Raises:
        as :func:`predict`.
    """
    h, r, t = _broadcast(_ids(model, head, "entity", "head"),
                         _ids(model, relation, "relation", "relation"),
                         _ids(model, tail, "entity", "tail"))
    check_finite(model)
    index = _filter_index(model, known)
    # A call fuses each triple's two entities: the projected stack [2, 1 + M, D] and the
    # raw feature rows of both.
    width = (model.interaction.entity_channels * len(model.modality_names)
             + sum(x.size(1) for x in getattr(model, "features", {}).values()))
    step = _block_size(batch_size, 2 * width)
    device = model.device
    scores, known_mask = [], []
    for start in tqdm(range(0, len(h), step), disable=not progress, desc="scoring",
                      unit="block"):
        hb, rb, tb = (x[start:start + step].to(device) for x in (h, r, t))
        scores.append(model(hb, rb, tb).float().cpu())
        if index is not None:
            known_mask.append(index.contains(hb, rb, tb, "tail").cpu())
    scores = torch.cat(scores) if scores else torch.zeros(0)
    known_mask = torch.cat(known_mask) if known_mask else torch.zeros(len(h), dtype=torch.bool)
    return ScoredTriples(model, h, r, t, scores, known_mask)


#: Formats of :func:`export_embeddings`: file suffix -> writer of one tensor.
EXPORT_FORMATS = {"npy": lambda x, path: atomic_save_npy(x.numpy(), path),
                  "pt": lambda x, path: atomic_torch_save(x, path)}
#: The manifest of an export, written last.
EXPORT_MANIFEST = "manifest.json"
_TABLES = ("entity_embeddings", "structural_embeddings", "relation_embeddings")
_NAME_FILES = ("entities.txt", "relations.txt")
#: Every file an export may write: an earlier export is recognised by any of them.
EXPORT_FILES = (EXPORT_MANIFEST, *_NAME_FILES,
                *(f"{t}.{f}" for t in _TABLES for f in EXPORT_FORMATS))
_RELATION_ROWS = {
    "rotate": "phases: row r holds k reals r_i, the rotation angle is r_i * pi / rho with "
              "rho = (margin + epsilon) / k (see RotatEInteraction)",
    "complex": "complex vectors: k real parts, then k imaginary parts",
}


@torch.no_grad()
def export_embeddings(model, folder, format: str = "npy", overwrite: bool = False,
                      progress: bool = False) -> Dict[str, Any]:
    """Writes the model's embedding tables to ``folder`` for vector search (FAISS, a
    vector database), each file atomically, and returns the manifest:

    * ``entity_embeddings.<format>`` ``[N, D]`` float32: the joint (AdaMF-fused)
      embeddings the model scores with, fused a block at a time;
    * ``structural_embeddings.<format>`` ``[N, D]``: the structural embeddings alone
      (``node_emb``; the joint ones without modality features);
    * ``relation_embeddings.<format>`` ``[R, D_r]``: the relation rows (``rel_emb``);
    * ``entities.txt``, ``relations.txt``: one name per line, in row order (when the
      model has names);
    * ``manifest.json``: which file is which, shapes, dtype, the interaction, its size
      and how its rows are laid out; written last, so a manifest means a whole export.

    ``format`` is ``"npy"`` (``numpy.load``) or ``"pt"`` (``torch.load``). Complex
    interactions (``rotate``, ``complex``) lay out an entity row as ``D / 2`` real parts,
    then ``D / 2`` imaginary parts.

    Raises:
        OutputError: ``folder`` holds an export and ``overwrite`` is not set, or cannot
            be written.
        InvalidArgumentError: an unknown ``format``, or names with line breaks.
    """
    if format not in EXPORT_FORMATS:
        raise InvalidArgumentError(f"format={format!r}: expected one of "
                                   f"{', '.join(EXPORT_FORMATS)}")
    folder = Path(folder)
    writable_folder(folder, "export folder")
    earlier = [name for name in EXPORT_FILES if (folder / name).exists()]
    if earlier and not overwrite:
        raise OutputError(f"{folder}: holds an export ({', '.join(earlier)}); replace it "
                          "(overwrite=True, --overwrite) or choose another folder")
    names = {"entities.txt": model.entity_names, "relations.txt": model.relation_names}
    for filename, listed in names.items():
        if listed is not None and any("\n" in n or "\r" in n for n in listed):
            raise InvalidArgumentError(f"{filename}: names with line breaks cannot be written "
                                       "one per line")
    check_finite(model)
    # An export replacing another is incomplete until its manifest is written again.
    (folder / EXPORT_MANIFEST).unlink(missing_ok=True)
    tables = {"entity_embeddings": lambda: model.entity_embeddings(chunked=True),
              "structural_embeddings": lambda: model.node_emb.weight,
              "relation_embeddings": lambda: model.rel_emb.weight}
    files = {}
    for table, compute in tqdm(tables.items(), disable=not progress, desc="exporting",
                               unit="table"):
        x = compute().detach().float().cpu()
        path = folder / f"{table}.{format}"
        EXPORT_FORMATS[format](x, path)
        rows = "relations.txt" if table == "relation_embeddings" else "entities.txt"
        files[table] = {"file": path.name, "shape": list(x.shape), "dtype": "float32",
                        "rows": rows if names[rows] is not None else None}
    for filename, listed in names.items():
        if listed is not None:
            atomic_write_text(folder / filename, "".join(f"{n}\n" for n in listed))
        else:  # an earlier export's names would mislabel these rows
            (folder / filename).unlink(missing_ok=True)
    interaction = model.interaction
    manifest = {
        "format": "mmkgc-pyg-embeddings/1",
        "interaction": model.interaction_name,
        "hidden_channels": model.hidden_channels,
        "complex_valued": interaction.complex_valued,
        "entity_layout": ("real parts, then imaginary parts" if interaction.complex_valued
                          else "real"),
        "relation_layout": _RELATION_ROWS.get(model.interaction_name, "real"),
        "margin": interaction.margin,
        "modalities": list(model.modalities),
        "num_entities": model.num_nodes,
        "num_relations": model.num_relations,
        "files": files,
    }
    atomic_write_json(folder / EXPORT_MANIFEST, manifest)
    # Tables of another format left by the export this one replaced.
    for name in EXPORT_FILES:
        if name.rpartition(".")[0] in _TABLES and not name.endswith(f".{format}"):
            (folder / name).unlink(missing_ok=True)
    return manifest
