r"""Read a benchmark folder in the OpenKE text format (the format of the AdaMF-MAT
reference code).

Files in the folder:

* ``entity2id.txt``, ``relation2id.txt``: the count on line 1, then ``name id`` per
  line. The id is the last field; the name is everything before the last run of
  spaces/tabs (so names may contain spaces). Ids must be ``0 .. count-1``, each once.
* ``train2id.txt``, ``valid2id.txt``, ``test2id.txt``: the count on line 1, then
  ``head tail relation`` per line (note the order; the library reorders to
  ``(head, relation, tail)``). A count of 0 is allowed.
* optional ``1-1.txt``, ``1-n.txt``, ``n-1.txt``, ``n-n.txt``: the test triples by
  relation category, same format. Without them the categories are derived with
  :func:`~mmkgc_pyg.data.kg.relation_categories`.
* optional feature files ``<NAME>-<modality>.{pth,pt,npy,h5,hdf5}`` (see
  :mod:`mmkgc_pyg.data.features`), ``NAME`` being the dataset name (by default the
  folder's name).
* optional link files ``ent_links``, ``*_SameAsLink.txt``: aliases of entity names for
  the keys of HDF5 feature files (see :mod:`mmkgc_pyg.data.entity_names`).

Mask files (argument ``mask_files``) mark entities whose modality is missing, in
either of two forms: a tensor file (``.pth``/``.pt``/``.npy``) holding a bool or 0/1
*presence* mask ``[N]`` (``True``/1 = present, as in :attr:`KGDataset.masks`), or a
text file listing the ids of the entities *missing* the modality, one per line (no
count line; blank lines are ignored).

Trailing blank lines, a UTF-8 byte-order mark and ``\r\n`` line ends are accepted.
Anything else that does not match raises :class:`~mmkgc_pyg.errors.InputError`
naming the file and line. What loads but may mislead (repeated names or triples,
evaluation triples that are also training triples, relations that only valid or test
triples use) is reported as one :class:`~mmkgc_pyg.errors.DataWarning` per finding,
with counts.

*Relations absent from training.* Every id below the count of ``relation2id.txt`` is
in range, so a valid or test triple may use a relation that no training triple uses:
its embedding keeps its random initial value, so that triple measures nothing learnt,
and code that sizes the relation table from the training triples (PyG's
``num_edge_types`` of the training graph) fails with an ``IndexError`` at the first
validation. The loader warns (file, line and id of the first such line) instead of
refusing: the benchmarks themselves have such lines (MKG-W's valid relation 168,
DB15K's valid relation 194 and six test relations), and the library's tables always
have a row for every relation of ``relation2id.txt``.

*Speed.* Wikidata5M-sized files (20.6M triple lines, 4.6M names) are parsed with
NumPy, without a Python loop per line; a file the fast parsers do not recognise (any
malformed line, and rare forms such as ids with leading zeros or several spaces between
a name and its id) is read line by line, which gives the same result or the same
one-line error.
"""
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from mmkgc_pyg.data.entity_names import EntityIndex, find_link_files
from mmkgc_pyg.data.features import (HDF5_SUFFIXES, TENSOR_SUFFIXES, clean_features,
                                     discover_feature_files, load_features,
                                     load_tensor_file, presence_from_tensor)
from mmkgc_pyg.data.kg import (CATEGORIES, KGDataset, relation_categories, split_by_category,
                               triple_keys, warn_about_data)
from mmkgc_pyg.errors import DataWarning, InputError, InvalidArgumentError

TRIPLE_FILES = ("train2id.txt", "valid2id.txt", "test2id.txt")
NAME_FILES = ("entity2id.txt", "relation2id.txt")
CATEGORY_FILES = tuple(f"{c}.txt" for c in CATEGORIES)
# Ids past this many digits overflow int64 and are out of range anyway.
_MAX_DIGITS = 18
# What bytes.split() and bytes.strip() take for whitespace.
_WHITESPACE = b" \t\n\r\x0b\x0c"
# Bytes of whole lines that the fast integer parser reads at once (see _int_rows_fast).
_BLOCK = 1 << 22


def quote_line(path, line) -> str:
    """A file line for an error message: one line, at most 80 characters, and never the
    content of a file a link leads outside its folder to (a dataset's ``train2id.txt``
    linked to ``/etc/passwd`` must not print its first line)."""
    path = Path(path)
    if path.resolve().parent != path.absolute().parent.resolve():
        return f"a line of {path.resolve()}, which is outside the folder (not shown)"
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    text = repr(line)
    return text if len(text) <= 80 else text[:77] + "..."


def read_text(path) -> bytes:
    r"""A text file's lines as :func:`read_lines` gives them, joined by ``\n``: without
    a UTF-8 byte-order mark, ``\r\n`` line ends and trailing blank lines."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: expected an existing file, got no such file") from None
    except OSError as e:
        raise InputError(f"{path}: expected a readable file, got {e.strerror}") from None
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark, as some editors write
        raw = raw[3:]
    # Blank lines (nothing but whitespace) after the line of the last other byte go.
    last = len(raw)
    while last and raw[last - 1] in _WHITESPACE:  # a few bytes: no copy of the file
        last -= 1
    if not last:
        return b""
    cut = raw.find(b"\n", last)
    text = raw[:cut] if cut >= 0 else raw
    if b"\r" in text:
        text = text.replace(b"\r\n", b"\n")
        text = text[:-1] if text.endswith(b"\r") else text
    return text


def read_lines(path) -> List[bytes]:
    r"""The lines of a file as bytes, without ``\r\n``/``\n`` and trailing blank lines."""
    return _lines(read_text(path))


def _lines(text: bytes) -> List[bytes]:
    return text.split(b"\n") if text else []


def _split_count(path, text: bytes) -> bytes:
    # Check the count on line 1 against the number of lines that follow; returns those
    # lines, joined by \n.
    if not text:
        raise InputError(f"{path}:1: expected the number of lines, got an empty file")
    header, _, body = text.partition(b"\n")
    count = header.strip()
    if not count.isdigit():
        raise InputError(f"{path}:1: expected the number of lines as a non-negative "
                         f"integer, got {quote_line(path, header)}")
    count, num_lines = int(count), (body.count(b"\n") + 1 if body else 0)
    if num_lines != count:
        lineno = min(num_lines, count) + 2
        raise InputError(f"{path}:{lineno}: expected {count} lines after the count "
                         f"on line 1, got {num_lines}")
    return body


def parse_int_rows(path, text: bytes, num_fields: int, first_lineno: int,
                   what: str) -> np.ndarray:
    r"""Parse lines of ``num_fields`` non-negative integers (``text``: the lines joined by
    ``\n``) into an int64 array ``[lines, num_fields]``; ``first_lineno`` is the line
    number of the first line."""
    rows = _int_rows_fast(text, num_fields)
    if rows is not None:
        return rows
    lines = _lines(text)
    fields = [line.split() for line in lines]
    for i, row in enumerate(fields):
        if len(row) != num_fields:
            raise InputError(f"{path}:{i + first_lineno}: expected {what}, got "
                             f"{len(row)} fields: "
                             f"{quote_line(path, lines[i])}")
    flat = [x for row in fields for x in row]
    # One C-level scan for the common valid case; find the line only on failure.
    if not b"".join(flat).isdigit() or max(map(len, flat), default=0) > _MAX_DIGITS:
        for i, row in enumerate(fields):
            if not all(x.isdigit() and len(x) <= _MAX_DIGITS for x in row):
                raise InputError(f"{path}:{i + first_lineno}: expected {what} as "
                                 f"non-negative integers, got "
                                 f"{quote_line(path, lines[i])}")
    return np.array(flat, dtype=np.int64).reshape(len(lines), num_fields)


def _int_rows_fast(text: bytes, num_fields: int) -> Optional[np.ndarray]:
    r"""The rows of ``text`` parsed without a Python loop per line, when every line holds
    ``num_fields`` integers of at most 18 digits without leading zeros; None for anything
    else, which :func:`parse_int_rows` then reads or reports line by line.

    Each block of whole lines (about :data:`_BLOCK` bytes; NumPy's temporaries then stay
    small and reused, where whole-file ones cost more in fresh memory than in arithmetic)
    must hold only digits and the whitespace that ``bytes.split`` splits at. Then the
    numbers start where digit runs start, and line :math:`i` holds :math:`F` of them when
    the newline ending it lies between the starts of numbers :math:`(i + 1) F - 1` and
    :math:`(i + 1) F`; NumPy's C parser reads their values.
    """
    num_lines = text.count(b"\n") + 1 if text else 0
    rows = np.empty((num_lines, num_fields), dtype=np.int64)
    lo = done = 0
    while lo < len(text):
        hi = text.find(b"\n", lo + _BLOCK)
        hi = len(text) if hi < 0 else hi
        block = _int_block(text[lo:hi], num_fields)
        if block is None or done + len(block) > num_lines:
            return None
        rows[done:done + len(block)] = block
        lo, done = hi + 1, done + len(block)
    return rows if done == num_lines else None


def _int_block(block: bytes, num_fields: int) -> Optional[np.ndarray]:
    # The rows of one block of _int_rows_fast, or None.
    buf = np.frombuffer(block, dtype=np.uint8)
    if not buf.size or buf.max() > ord("9") or buf[-1] == ord("\n"):
        return None
    # Below "0" only space and \t \n \v \f \r (9 .. 13; uint8 arithmetic wraps the rest
    # past 5).
    if np.count_nonzero(buf < ord("0")) != (np.count_nonzero(buf == ord(" "))
                                            + np.count_nonzero(buf - 9 < 5)):
        return None
    is_digit = buf >= ord("0")
    run_start = is_digit.copy()
    run_start[1:] &= ~is_digit[:-1]
    starts = np.flatnonzero(run_start)
    newlines = np.flatnonzero(buf == ord("\n"))
    f = num_fields
    if (starts.size != f * (newlines.size + 1) or (starts[f - 1:-1:f] > newlines).any()
            or (starts[f::f] < newlines).any()):
        return None
    # Without leading zeros (which the line-by-line reader accepts), a number of more
    # than 18 digits shows in its value.
    if ((buf[starts] == ord("0")) & np.append(is_digit[1:], False)[starts]).any():
        return None
    values = np.fromstring(block, dtype=np.int64, sep=" ")
    if values.size != starts.size or values.max() >= 10**_MAX_DIGITS:  # saturates at 2**63-1
        return None
    return values.reshape(-1, f)


def read_name_file(path) -> List[str]:
    r"""Read ``entity2id.txt``/``relation2id.txt`` into names indexed by id."""
    body = _split_count(path, read_text(path))
    names = _names_fast(body)
    return names if names is not None else _names_by_line(path, _lines(body))


def _names_fast(body: bytes) -> Optional[List[str]]:
    r"""The names by id without a Python loop per line, when every line is
    ``name<space or tab>id`` (one separator; the name neither starts nor ends with a
    space or tab) and the ids are ``0 .. n-1`` once each; None for anything else, which
    :func:`_names_by_line` then reads or reports.

    The id is the run of digits ending each line; cutting each line's separator and id
    out of the file leaves the names, one per line, decoded and split at C speed.
    """
    if not body:
        return []
    buf = np.frombuffer(body, dtype=np.uint8)
    ends = np.append(np.flatnonzero(buf == ord("\n")), buf.size)
    starts = np.concatenate([[0], ends[:-1] + 1])
    is_digit = buf - ord("0") < 10  # uint8 arithmetic wraps the bytes below "0" past 10
    ids = np.zeros(ends.size, dtype=np.int64)
    id_len = np.zeros(ends.size, dtype=np.int64)
    in_id = np.ones(ends.size, dtype=bool)
    for k in range(1, _MAX_DIGITS + 2):  # one more than an id may have: it must stop
        at = ends - k
        in_id &= at >= starts
        in_id &= is_digit[np.maximum(at, 0)]
        if not in_id.any():
            break
        ids += np.where(in_id, (buf[at].astype(np.int64) - ord("0")) * 10**(k - 1), 0)
        id_len += in_id
    separator = ends - id_len - 1
    if in_id.any() or not (id_len > 0).all() or not (separator > starts).all():
        return None

    def blank(at):
        return (buf[at] == ord(" ")) | (buf[at] == ord("\t"))

    if not blank(separator).all() or blank(separator - 1).any() or blank(starts).any():
        return None
    if ids.max() >= ids.size or not (np.bincount(ids, minlength=ids.size) == 1).all():
        return None
    cut = np.zeros(buf.size + 1, dtype=np.int8)  # +1 from a separator to its line's end
    cut[separator] = 1
    cut[ends] -= 1
    try:
        names = buf[np.cumsum(cut[:-1], dtype=np.int8) == 0].tobytes().decode("utf-8")
    except UnicodeDecodeError:
        return None
    line_of_id = np.empty_like(ids)
    line_of_id[ids] = np.arange(ids.size)
    return list(map(names.split("\n").__getitem__, line_of_id.tolist()))


def _names_by_line(path, body: List[bytes]) -> List[str]:
    # The general reader: any spacing, and the exact line of the first problem.
    names, ids = [], []
    for i, raw in enumerate(body, start=2):
        try:
            line = raw.decode("utf-8").strip(" \t")
        except UnicodeDecodeError:
            raise InputError(f"{path}:{i}: expected UTF-8 text `name id`, got "
                             f"{quote_line(path, raw)}") from None
        cut = max(line.rfind(" "), line.rfind("\t"))
        name, id_ = line[:cut].rstrip(" \t"), line[cut + 1:]
        if cut < 0 or not name or not (id_.isascii() and id_.isdigit()):
            raise InputError(f"{path}:{i}: expected `name id`, got "
                             f"{quote_line(path, raw)}")
        names.append(name)
        ids.append(int(id_))
    ordered: List[Optional[str]] = [None] * len(body)
    for i, (name, id_) in enumerate(zip(names, ids), start=2):
        if id_ >= len(body):
            raise InputError(f"{path}:{i}: expected an id in [0, {len(body)}), got {id_}")
        if ordered[id_] is not None:
            raise InputError(f"{path}:{i}: expected each id once, got {id_} again")
        ordered[id_] = name
    return ordered


def read_triple_file(path, num_entities: int, num_relations: int) -> Tensor:
    r"""Read a ``head tail relation`` file into a LongTensor ``[E, 3]`` of
    ``(head, relation, tail)``, checking the ids' ranges."""
    body = _split_count(path, read_text(path))
    htr = parse_int_rows(path, body, 3, 2, "`head tail relation`")
    if len(htr) and (htr[:, :2].max() >= num_entities or htr[:, 2].max() >= num_relations):
        bad = (htr[:, :2] >= num_entities).any(axis=1) | (htr[:, 2] >= num_relations)
        i = int(bad.argmax())
        raise InputError(f"{path}:{i + 2}: expected entity ids in [0, {num_entities}) "
                         f"and a relation id in [0, {num_relations}), got "
                         f"{quote_line(path, _lines(body)[i])}")
    return torch.from_numpy(htr)[:, [0, 2, 1]]  # contiguous (NumPy's would be column-major)


def load_mask_file(path, num_entities: int) -> Tensor:
    r"""A presence mask ``[N]`` bool from a mask file (both forms are described in the
    module docstring)."""
    path = Path(path)
    if path.suffix in TENSOR_SUFFIXES:
        return presence_from_tensor(load_tensor_file(path), path, num_entities)
    lines = read_lines(path)
    kept = [(i, line) for i, line in enumerate(lines, start=1) if line.strip()]
    present = torch.ones(num_entities, dtype=torch.bool)
    for lineno, line in kept:  # few lines; per-line parsing gives exact line numbers
        ids = parse_int_rows(path, line, 1, lineno, "one entity id")
        if ids[0, 0] >= num_entities:
            raise InputError(f"{path}:{lineno}: expected an entity id in "
                             f"[0, {num_entities}), got {ids[0, 0]}")
        present[int(ids[0, 0])] = False
    return present


def _read_categories(folder: Path, train: Tensor, valid: Tensor, test: Tensor,
                     num_entities: int, num_relations: int) -> Dict[str, Tensor]:
    # The category files when present, else the standard rule on all triples.
    paths = [folder / f for f in CATEGORY_FILES]
    exists = [p.is_file() for p in paths]
    if not any(exists):
        rel_categories = relation_categories(torch.cat([train, valid, test]), num_relations)
        return split_by_category(test, rel_categories)
    if not all(exists):
        missing = paths[exists.index(False)]
        raise InputError(f"{missing}: expected all four category files "
                         f"({', '.join(CATEGORY_FILES)}) when any is present, got "
                         f"this one missing")
    categories = {}
    test_keys = triple_keys(test, num_entities, num_relations)
    for category, path in zip(CATEGORIES, paths):
        triples = read_triple_file(path, num_entities, num_relations)
        stray = ~torch.isin(triple_keys(triples, num_entities, num_relations), test_keys)
        if bool(stray.any()):
            row = int(stray.nonzero()[0])
            h, r, t = triples[row].tolist()
            raise InputError(f"{path}:{row + 2}: expected test triples only, got "
                             f"`{h} {t} {r}` which is not in test2id.txt "
                             f"({int(stray.sum())} such lines)")
        categories[category] = triples
    return categories


def _read_modalities(features: Dict[str, Path], mask_files: Dict[str, Path],
                     entity_names: List[str],
                     folder: Path) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
    for modality, path in mask_files.items():
        if modality not in features:
            raise InputError(f"{path}: expected a mask for one of the modalities "
                             f"{sorted(features)}, got modality {modality!r}")
    num_entities = len(entity_names)
    xs, masks, entities = {}, {}, None
    for modality in sorted(features):
        path = features[modality]
        if path.suffix in HDF5_SUFFIXES and entities is None:  # only HDF5 keys need it
            entities = EntityIndex(entity_names, find_link_files(folder))
        present = (load_mask_file(mask_files[modality], num_entities)
                   if modality in mask_files else None)
        xs[modality], masks[modality] = clean_features(
            load_features(path, num_entities, entities), path, present)
    return xs, masks


def _warn_about_untrained_relations(folder: Path, train: Tensor,
                                    evaluated: Dict[str, Tensor],
                                    relation_names: List[str]) -> None:
    # See "Relations absent from training" in the module docstring.
    trained = torch.bincount(train[:, 1], minlength=len(relation_names)) > 0
    for filename, triples in evaluated.items():
        untrained = ~trained[triples[:, 1]]
        if bool(untrained.any()):
            row = int(untrained.nonzero()[0])
            rel = int(triples[row, 1])
            warnings.warn(f"{folder / filename}:{row + 2}: relation {rel} "
                          f"({relation_names[rel]!r}) occurs in no training triple, so its "
                          f"embedding is never trained ({int(untrained.sum())} of "
                          f"{len(triples)} lines use relations absent from training, "
                          f"{len(triples[untrained, 1].unique())} distinct)", DataWarning,
                          stacklevel=3)


def load_openke(folder, features: Optional[Dict[str, str]] = None,
                mask_files: Optional[Dict[str, str]] = None,
                name: Optional[str] = None) -> KGDataset:
    r"""Load an OpenKE benchmark folder as a :class:`~mmkgc_pyg.data.KGDataset`.

    Args:
        folder: the benchmark folder (files in the module docstring).
        features (Dict[str, str], optional): modality -> feature file; adds to and
            overrides the files discovered in ``folder``.
        mask_files (Dict[str, str], optional): modality -> mask file marking the
            entities whose modality is missing.
        name (str, optional): the dataset name, also the ``NAME`` of discovered
            feature files; defaults to the folder's name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: expected a dataset folder, got no such directory")
    name = name or folder.resolve().name
    entity_names, relation_names = (read_name_file(folder / f) for f in NAME_FILES)
    num_entities, num_relations = len(entity_names), len(relation_names)
    train, valid, test = (read_triple_file(folder / f, num_entities, num_relations)
                          for f in TRIPLE_FILES)
    _warn_about_untrained_relations(folder, train, {TRIPLE_FILES[1]: valid,
                                                    TRIPLE_FILES[2]: test}, relation_names)
    feature_paths = {**discover_feature_files(folder, name),
                     **{m: Path(p) for m, p in (features or {}).items()}}
    xs, masks = _read_modalities(feature_paths,
                                 {m: Path(p) for m, p in (mask_files or {}).items()},
                                 entity_names, folder)
    categories = _read_categories(folder, train, valid, test, num_entities, num_relations)
    dataset = KGDataset(name=name, num_entities=num_entities, num_relations=num_relations,
                        train=train, valid=valid, test=test, entity_names=entity_names,
                        relation_names=relation_names, features=xs, masks=masks,
                        test_categories=categories)
    warn_about_data(dataset, folder)
    return dataset


def write_openke(dataset: KGDataset, folder, features: bool = True) -> Path:
    r"""Write ``dataset`` as an OpenKE folder that :func:`load_openke` reads back
    exactly (and the reference code reads): names with tab-separated ids, triples as
    ``head tail relation``, category files when known, and with ``features`` the
    modality tables as ``<folder name>-<modality>.pth`` (missing rows are zeros), where
    :func:`load_openke` finds them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for filename, names in zip(NAME_FILES, (dataset.entity_names, dataset.relation_names)):
        bad = [n for n in names if not n or n != n.strip(" \t") or "\n" in n or "\r" in n]
        if bad:
            raise InvalidArgumentError(f"{filename}: names must be non-empty, without line "
                                       f"breaks or leading/trailing spaces/tabs, got "
                                       f"{bad[0]!r}")
        lines = [str(len(names))] + [f"{n}\t{i}" for i, n in enumerate(names)]
        (folder / filename).write_text("\n".join(lines) + "\n", encoding="utf-8")
    splits = dict(zip(TRIPLE_FILES, (dataset.train, dataset.valid, dataset.test)))
    splits.update({f"{c}.txt": dataset.test_categories[c] for c in CATEGORIES
                   if dataset.test_categories})
    for filename, triples in splits.items():
        lines = [str(len(triples))] + [f"{h} {t} {r}" for h, r, t in triples.tolist()]
        (folder / filename).write_text("\n".join(lines) + "\n")
    for modality in dataset.modalities if features else ():
        torch.save(dataset.features[modality],
                   folder / f"{folder.resolve().name}-{modality}.pth")
    return folder
