r"""Entity names: matching the keys of other sources to entity ids, and readable names.

Feature sources name entities in their own ways: a descriptions file by the name in
``entity2id.txt`` or by its last URI segment, an image folder by a name that is safe as
a file name, the public MMRNS HDF5 files by the DBpedia resource name (``Andy_Griffith``)
or a Freebase mid (``m.01m4kpp``). :class:`EntityIndex` maps all of them to entity ids
through one canonical *key* (:func:`entity_key`):

* surrounding spaces and one pair of enclosing ``<>`` are dropped, ``%XX`` escapes are
  decoded;
* a Freebase mid, ``/m/0abc`` or ``m.0abc`` (likewise ``/g/``), becomes ``m.0abc``;
* a URI (``scheme://...``) becomes the part after ``/resource/`` (DBpedia names may
  hold ``/``), else the part after its last ``/`` or ``#``;
* spaces become ``_``.

So ``<http://dbpedia.org/resource/Andy_Griffith>``, ``Andy_Griffith``, ``Andy Griffith``
and ``http://dbpedia.org/resource/Andy%20Griffith`` name the same entity. A key that
several entities share is ambiguous: it then matches only by the exact full name.

**Link files** add aliases. Each line links two names: its first and its last field
(tab-separated when the line has a tab, else space-separated; the ``.`` that ends an
N-Triples line is ignored). The MMRNS ``ent_links`` (``dbpedia-uri<TAB>wikidata-uri``)
and mmkb's ``DB15K_SameAsLink.txt`` (``/m/0abc <SameAs> <http://dbpedia.org/resource/X> .``)
are of this form. The end that names an entity gives the id and the other end becomes
one more key for it; lines where neither or both ends name an entity add nothing, and
neither does an alias that several entities share as their key, or that two lines give
to different entities. :func:`find_link_files` finds the files named as
those downloads name them (``ent_links``, ``*_SameAsLink.txt``) in a dataset folder.

**Ids or names.** A source's keys (:func:`match_keys`: the lines of a descriptions file,
the entries of an images folder, the datasets of an HDF5 file) are read *per source*:
when every key is a non-negative integer they are entity ids, otherwise every key is a
name for :class:`EntityIndex`. One rule for all sources, so a file never mixes the two.
"""
import re
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union
from urllib.parse import unquote

from mmkgc_pyg.errors import InputError

LINK_FILE_PATTERNS = ("ent_links", "*_SameAsLink.txt")
_FREEBASE = re.compile(r"/?([mg])[./]([0-9a-z_]+)")
# Keys that are identifiers, not words: Freebase mids, Wikidata ids, bare numbers.
_OPAQUE = re.compile(r"[mg]\.[0-9a-z_]+|[QPL][0-9]+|[0-9]+")


def entity_key(name: str) -> str:
    r"""The canonical key of a name, URI or mid (rules in the module docstring)."""
    key = name.strip()
    if key.startswith("<") and key.endswith(">"):
        key = key[1:-1].strip()
    key = unquote(key)
    freebase = _FREEBASE.fullmatch(key)
    if freebase:
        return f"{freebase[1]}.{freebase[2]}"
    if "://" in key:
        _, resource, after = key.partition("/resource/")
        key = after if resource else re.split(r"[/#]", key)[-1]
    return key.replace(" ", "_")


def readable_name(name: str) -> Optional[str]:
    r"""The words an entity's name says (its key with ``_`` as spaces, e.g.
    ``Rock of Ages (2012 film)``), or ``None`` when the name is only an identifier
    (a Wikidata id ``Q42``, a Freebase mid, a number, nothing alphabetic)."""
    key = entity_key(name)
    if _OPAQUE.fullmatch(key) or not any(c.isalpha() for c in key):
        return None
    return " ".join(key.replace("_", " ").split())


def read_link_file(path) -> List[Tuple[int, str, str]]:
    r"""The ``(line number, first, last)`` name pairs of a link file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: expected an existing link file, got no such file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: expected a UTF-8 link file, got other bytes") from None
    except OSError as e:
        raise InputError(f"{path}: expected a readable link file, got {e.strerror}") from None
    pairs = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line.endswith(" ."):
            line = line[:-2]
        fields = [f.strip() for f in (line.split("\t") if "\t" in line else line.split())]
        fields = [f for f in fields if f]
        if not fields:
            continue
        if len(fields) < 2:
            raise InputError(f"{path}:{lineno}: expected two linked names "
                             f"(`KEY<TAB>NAME` or `KEY <p> NAME .`), got {line[:80]!r}")
        pairs.append((lineno, fields[0], fields[-1]))
    return pairs


def find_link_files(folder) -> List[Path]:
    r"""The link files of a dataset folder (:data:`LINK_FILE_PATTERNS`), sorted."""
    found = {p for pattern in LINK_FILE_PATTERNS for p in Path(folder).glob(pattern)}
    return sorted(p for p in found if p.is_file())


class EntityIndex:
    r"""Maps keys (entity names in any of the forms of :func:`entity_key`, and the
    aliases of link files) to entity ids.

    Args:
        names (Sequence[str]): the entity names, indexed by id (``entity2id.txt``).
        link_files (Iterable, optional): link files whose aliases to add.
    """

    def __init__(self, names: Sequence[str], link_files: Iterable = ()):
        self.num_entities = len(names)
        self._exact: Dict[str, int] = {}
        self._keys: Dict[str, int] = {}
        self._ambiguous = set()
        for i, name in enumerate(names):
            self._exact.setdefault(name, i)
            key = entity_key(name)
            if self._keys.setdefault(key, i) != i:
                self._ambiguous.add(key)
        for key in self._ambiguous:
            del self._keys[key]
        for path in link_files:
            self.add_links(path)

    def lookup(self, key: str) -> Optional[int]:
        r"""The id of the entity ``key`` names, or ``None``."""
        exact = self._exact.get(key)
        return exact if exact is not None else self._keys.get(entity_key(key))

    def add_links(self, path) -> int:
        r"""Add the aliases of a link file; returns how many were added."""
        aliases: Dict[str, int] = {}
        conflicting = set()
        for _, first, last in read_link_file(path):
            ids = self.lookup(first), self.lookup(last)
            if (ids[0] is None) == (ids[1] is None):
                continue
            alias, entity = (last, ids[0]) if ids[0] is not None else (first, ids[1])
            key = entity_key(alias)
            if key in self._ambiguous:  # several entities' own key: no alias settles it
                continue
            if aliases.setdefault(key, entity) != entity:
                conflicting.add(key)
        for key in conflicting:
            del aliases[key]
        self._keys.update(aliases)
        self._ambiguous |= conflicting
        return len(aliases)


def _is_id(spelling: str) -> bool:
    return spelling.isascii() and spelling.isdigit()


def match_keys(keys: Sequence[Union[str, Sequence[str]]], entities: EntityIndex,
               where: Callable[[int], str]) -> List[Optional[int]]:
    r"""The entity id that each key of one source names, ``None`` where it names none.

    The keys are ids when every key is a non-negative integer, else names (module
    docstring). A key may come in several spellings, in order of preference (the image
    file ``Paris_2.png``: ``Paris_2``, then ``Paris``); its first spelling that is an id,
    or in names its first that names an entity, counts.

    Args:
        keys: each key, or the tuple of its spellings.
        entities (EntityIndex): the entities to match.
        where (Callable[[int], str]): the place of key ``i`` for error messages (a file
            and line, a path, an HDF5 key).

    Raises:
        InputError: an id out of ``[0, num_entities)``.
    """
    spellings = [(key,) if isinstance(key, str) else tuple(key) for key in keys]
    if all(any(map(_is_id, options)) for options in spellings):
        ids = []
        for i, options in enumerate(spellings):
            spelling = next(s for s in options if _is_id(s))
            if int(spelling) >= entities.num_entities:
                raise InputError(f"{where(i)}: expected an entity id in "
                                 f"[0, {entities.num_entities}), got {spelling}")
            ids.append(int(spelling))
        return ids
    return [next((e for e in map(entities.lookup, options) if e is not None), None)
            for options in spellings]
