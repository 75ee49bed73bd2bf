r"""Folders of labelled triples (``head<TAB>relation<TAB>tail`` by name), and the one entry
point that loads a dataset folder of either layout.

**Labelled folders** hold ``train.txt``, ``valid.txt`` and ``test.txt``, one triple of
names per line: the layout of PyKEEN's ``TriplesFactory.from_path``, FB15k-237, WN18RR
and CoDEx. Blank lines are skipped, spaces around a name are dropped, and a UTF-8
byte-order mark and ``\r\n`` line ends are accepted; any other line that is not three
non-empty tab-separated names raises :class:`~mmkgc_pyg.errors.InputError` naming the
file and line.

*Ids.* Entity and relation ids are assigned by sorting the names (Python's string
order, as PyKEEN does) over all three splits: the ids depend only on the set of names, not
on the order of the lines, and every valid and test triple loads. An entity or relation
that no training triple uses (WN18RR's test split has such entities) keeps its random
initial embedding, so the triples that use it measure nothing learnt. They are kept,
with a :class:`~mmkgc_pyg.errors.DataWarning` naming the first such line and the counts,
rather than dropped as PyKEEN drops them: an error would refuse standard benchmarks, and
dropping them silently changes what the metrics average over.

*The OpenKE files.* The ids are written beside the labelled files as the OpenKE files
``entity2id.txt``, ``relation2id.txt``, ``train2id.txt``, ``valid2id.txt`` and
``test2id.txt`` (:func:`~mmkgc_pyg.data.write_openke`), and the folder is then read as
an OpenKE folder (:func:`~mmkgc_pyg.data.load_openke`: feature files, mask files, link
files, categories and warnings as there), so the first load and every later one give the
same dataset, and a trained model's ids can be read off ``entity2id.txt``. Each file is
published atomically and only where no file of its name exists, ``train2id.txt`` last (it
marks the folder as converted). A file that exists with other contents is never
overwritten: the folder is then read through a temporary copy of the ids, with a warning
naming the file; so is a folder that cannot be written, with a warning saying where the
ids would have been written. To convert again after editing the labelled files, delete
the ``*2id.txt`` files.

:func:`load_dataset_folder` picks the layout: OpenKE when ``train2id.txt`` exists (the
converted labelled folder included), labelled when ``train.txt`` exists.
"""
import errno
import logging
import os
import shutil
import tempfile
import warnings
from array import array
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from mmkgc_pyg.data.kg import KGDataset
from mmkgc_pyg.data.openke import (NAME_FILES, TRIPLE_FILES, load_openke, quote_line,
                                    write_openke)
from mmkgc_pyg.errors import DataWarning, InputError

logger = logging.getLogger(__name__)

LABELLED_FILES = ("train.txt", "valid.txt", "test.txt")
#: The OpenKE files a conversion writes, in the order it publishes them.
ID_FILES = (*NAME_FILES, TRIPLE_FILES[1], TRIPLE_FILES[2], TRIPLE_FILES[0])
_BOM = "\ufeff"


def read_labelled_triples(path) -> Iterator[Tuple[int, str, str, str]]:
    r"""The ``(line number, head, relation, tail)`` of each non-blank line of a file of
    ``head<TAB>relation<TAB>tail`` names, read one line at a time (the rules are in the
    module docstring). Also the format of ``python -m mmkgc_pyg.predict``'s query and
    triple files.

    Raises:
        InputError: a missing or unreadable file, or a line that is not three non-empty
            tab-separated names (file and line named).
    """
    path = Path(path)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{path}: expected an existing file, got no such file") from None
    except OSError as e:
        raise InputError(f"{path}: expected a readable file, got {e.strerror}") from None
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\n").removesuffix("\r")
            except UnicodeDecodeError:
                raise InputError(f"{path}:{lineno}: expected UTF-8 text, got "
                                 f"{quote_line(path, raw)}") from None
            if lineno == 1:
                line = line.removeprefix(_BOM)
            if not line.strip():
                continue
            fields = [field.strip(" ") for field in line.split("\t")]
            if len(fields) != 3 or not all(fields) or "\r" in line:
                spaced = " (separated by spaces, not tabs)" if len(line.split()) == 3 else ""
                raise InputError(f"{path}:{lineno}: expected `head<TAB>relation<TAB>tail` "
                                 f"names{spaced}, got {quote_line(path, line)}")
            yield lineno, fields[0], fields[1], fields[2]


def _read_splits(folder: Path):
    """The splits' triples under first-seen ids, the names in first-seen order, and each
    split's line numbers (for the warnings)."""
    entities: Dict[str, int] = {}
    relations: Dict[str, int] = {}
    splits, lines = [], []
    for filename in LABELLED_FILES:
        ids, numbers = array("q"), array("q")
        for lineno, head, relation, tail in read_labelled_triples(folder / filename):
            ids.extend((entities.setdefault(head, len(entities)),
                        relations.setdefault(relation, len(relations)),
                        entities.setdefault(tail, len(entities))))
            numbers.append(lineno)
        splits.append(np.frombuffer(ids, dtype=np.int64).reshape(-1, 3))
        lines.append(np.frombuffer(numbers, dtype=np.int64))
    return splits, lines, list(entities), list(relations)


def _sorted_ids(names: List[str]) -> Tuple[List[str], np.ndarray]:
    """The names sorted, and for each first-seen id its id among them."""
    order = sorted(range(len(names)), key=names.__getitem__)
    new_id: np.ndarray = np.empty(len(names), dtype=np.int64)
    new_id[order] = np.arange(len(names))
    return [names[i] for i in order], new_id


def _warn_about_untrained_entities(folder: Path, splits, lines, num_trained: int,
                                   names: List[str]) -> None:
    # With first-seen ids, the entities that training triples use are exactly the ids
    # below num_trained.
    untrained = [(filename, split[:, [0, 2]] >= num_trained, numbers)
                 for filename, split, numbers in zip(LABELLED_FILES[1:], splits[1:], lines[1:])]
    num_lines = sum(int(bad.any(axis=1).sum()) for _, bad, _ in untrained)
    if not num_lines:
        return
    filename, bad, numbers = next(u for u in untrained if u[1].any())
    row, column = np.argwhere(bad)[0]
    split = splits[LABELLED_FILES.index(filename)]
    warnings.warn(f"{folder / filename}:{numbers[row]}: entity "
                  f"{names[split[row, 2 * column]]!r} occurs in no training triple, so its "
                  f"embedding is never trained ({len(names) - num_trained} such entities, in "
                  f"{num_lines} valid and test lines)", DataWarning, stacklevel=4)


def _converted(folder: Path, name: str) -> KGDataset:
    """The labelled triples of ``folder`` under sorted-name ids (no features)."""
    splits, lines, entity_names, relation_names = _read_splits(folder)
    num_trained = int(splits[0][:, [0, 2]].max()) + 1 if len(splits[0]) else 0
    _warn_about_untrained_entities(folder, splits, lines, num_trained, entity_names)
    entity_names, entity_id = _sorted_ids(entity_names)
    relation_names, relation_id = _sorted_ids(relation_names)
    train, valid, test = (torch.from_numpy(np.stack(
        [entity_id[s[:, 0]], relation_id[s[:, 1]], entity_id[s[:, 2]]], axis=1))
        for s in splits)
    return KGDataset(name=name, num_entities=len(entity_names),
                     num_relations=len(relation_names), train=train, valid=valid, test=test,
                     entity_names=entity_names, relation_names=relation_names)


@contextmanager
def _scratch(folder: Path) -> Iterator[Tuple[Path, bool]]:
    """A temporary folder inside ``folder`` (so that its files can be linked into place),
    else elsewhere; and whether it is inside."""
    try:
        scratch, inside = Path(tempfile.mkdtemp(prefix=".openke-", dir=folder)), True
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise InputError(f"{folder}: cannot write the OpenKE id files ({e.strerror})") \
                from None
        scratch, inside = Path(tempfile.mkdtemp(prefix="mmkgc-openke-")), False
    try:
        yield scratch, inside
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _publish(scratch: Path, folder: Path) -> Optional[str]:
    """Links the id files from ``scratch`` into ``folder`` where absent (a link never
    replaces a file, so one that appears meanwhile is kept too); returns None, or why
    they were not all published (then none is when the reason is known beforehand)."""
    def differs(filename: str) -> bool:
        return (folder / filename).read_bytes() != (scratch / filename).read_bytes()

    existing = [f for f in ID_FILES if (folder / f).exists()]
    for filename in existing:
        if differs(filename):
            return f"{folder / filename} exists with other ids"
    for filename in ID_FILES:
        try:
            os.link(scratch / filename, folder / filename)
        except FileExistsError:
            if differs(filename):
                return f"{folder / filename} exists with other ids"
        except OSError as e:  # e.g. a file system without hard links
            return f"{folder / filename} cannot be written ({e.strerror})"
    return None


def _read_through(scratch: Path, folder: Path) -> None:
    """Fills ``scratch`` (which holds the id files) with links to the other entries of
    ``folder``, so that it reads as ``folder`` converted."""
    for entry in folder.iterdir():
        if entry.name not in ID_FILES and not (scratch / entry.name).exists():
            (scratch / entry.name).symlink_to(entry.resolve())


def load_labelled(folder, features: Optional[Dict[str, str]] = None,
                  mask_files: Optional[Dict[str, str]] = None,
                  name: Optional[str] = None) -> KGDataset:
    r"""Load a folder of labelled triples (module docstring), writing its OpenKE id files
    beside them where they are absent.

    Args:
        folder: the folder holding ``train.txt``, ``valid.txt`` and ``test.txt``.
        features, mask_files, name: as in :func:`~mmkgc_pyg.data.load_openke` (feature
            files ``<NAME>-<modality>.pth`` in the folder are found as there).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: expected a dataset folder, got no such directory")
    name = name or folder.resolve().name
    dataset = _converted(folder, name)
    with _scratch(folder) as (scratch, inside):
        write_openke(dataset, scratch, features=False)
        reason = _publish(scratch, folder) if inside else "the folder cannot be written"
        if reason is None:
            logger.info("%s: wrote the ids of the labelled triples (sorted names) as %s; later "
                        "loads read them", folder, ", ".join(ID_FILES))
            return load_openke(folder, features, mask_files, name)
        where = ", ".join(str(folder / f) for f in ID_FILES)
        warnings.warn(f"{folder}: the ids of the labelled triples were not written ({reason}); "
                      f"they would have been written to {where}; the folder is read with ids "
                      "assigned afresh", DataWarning, stacklevel=2)
        _read_through(scratch, folder)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loaded = load_openke(scratch, features, mask_files, name)
        for warning in caught:  # name the folder, not the temporary copy
            warnings.warn_explicit(str(warning.message).replace(str(scratch), str(folder)),
                                   warning.category, warning.filename, warning.lineno)
        return loaded


def load_dataset_folder(folder, features: Optional[Dict[str, str]] = None,
                        mask_files: Optional[Dict[str, str]] = None,
                        name: Optional[str] = None) -> KGDataset:
    r"""Load a dataset folder of either layout: OpenKE (``train2id.txt``,
    :func:`~mmkgc_pyg.data.load_openke`) or labelled triples (``train.txt``,
    :func:`load_labelled`); arguments as in :func:`~mmkgc_pyg.data.load_openke`.

    Raises:
        InputError: no such folder, or neither layout's files in it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: expected a dataset folder, got no such directory")
    if (folder / TRIPLE_FILES[0]).exists():
        return load_openke(folder, features, mask_files, name)
    if (folder / LABELLED_FILES[0]).exists():
        return load_labelled(folder, features, mask_files, name)
    if any((folder / f).exists() for f in (*NAME_FILES, *TRIPLE_FILES)):
        return load_openke(folder, features, mask_files, name)  # names what is missing
    raise InputError(f"{folder}: expected a dataset folder of OpenKE files "
                     f"({', '.join(ID_FILES)}) or of labelled triples "
                     f"({', '.join(LABELLED_FILES)}: HEAD<TAB>RELATION<TAB>TAIL lines), got "
                     "neither train2id.txt nor train.txt")
