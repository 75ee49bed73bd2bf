r"""Entity descriptions, and the text a text-feature builder embeds for each entity.

A descriptions file holds one ``KEY<TAB>TEXT`` line per entity (UTF-8; blank lines are
ignored; the text is everything after the first tab). Its keys are read *per file*
(:func:`~mmkgc_pyg.data.entity_names.match_keys`): when every key is a non-negative
integer they are entity ids, otherwise every key is an entity name (the full name, its
URI tail, percent-decoded, ``_`` or spaces, or an alias from a link file). Lines whose
name matches no entity are skipped and returned, since description dumps usually cover
more entities than a benchmark keeps; an id out of range, a line without a tab, or a
second description of the same entity is an error. A line with empty text gives no
description.

An entity's text (:func:`entity_texts`) is its description, else its readable name
(:func:`~mmkgc_pyg.data.entity_names.readable_name`: the URI tail, percent-decoded,
``_`` as space); an entity with neither, such as MKG-W's Wikidata ids without a
description, has no text and its textual modality is missing.
"""
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from mmkgc_pyg.data.entity_names import EntityIndex, match_keys, readable_name
from mmkgc_pyg.data.openke import read_lines
from mmkgc_pyg.errors import InputError


def read_descriptions(path, entities: EntityIndex) -> Tuple[Dict[int, str], List[str]]:
    r"""Read a descriptions file.

    Returns:
        ``(descriptions, unmatched)``: entity id -> text, and the keys (in file order)
        of the lines whose name matches no entity.
    """
    path = Path(path)
    rows = []
    for lineno, raw in enumerate(read_lines(path), start=1):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{path}:{lineno}: expected UTF-8 text") from None
        key, tab, text = line.partition("\t")
        if not tab or not key.strip():
            raise InputError(f"{path}:{lineno}: expected `KEY<TAB>TEXT` (an entity id "
                             f"or name, a tab, the description), got {line[:80]!r}")
        rows.append((lineno, key.strip(), text.strip()))
    ids = match_keys([key for _, key, _ in rows], entities,
                     lambda i: f"{path}:{rows[i][0]}")
    descriptions: Dict[int, str] = {}
    first_line: Dict[int, int] = {}
    unmatched = []
    for (lineno, key, text), entity in zip(rows, ids):
        if entity is None:
            unmatched.append(key)
            continue
        if entity in first_line:
            raise InputError(f"{path}:{lineno}: expected one description per entity, "
                             f"got entity {entity} again (first on line "
                             f"{first_line[entity]})")
        first_line[entity] = lineno
        if text:
            descriptions[entity] = text
    return descriptions, unmatched


def entity_texts(names: Sequence[str],
                 descriptions: Optional[Dict[int, str]] = None) -> List[Optional[str]]:
    r"""Each entity's text: its description, else its readable name, else ``None``."""
    descriptions = descriptions or {}
    return [descriptions.get(i) or readable_name(name) for i, name in enumerate(names)]
