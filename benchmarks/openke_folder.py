"""A random OpenKE folder of any size, written in seconds: the input of the setup benchmark.

The files are those :func:`mmkgc_pyg.data.load_openke` reads (``entity2id.txt``,
``relation2id.txt``, ``train2id.txt``, ``valid2id.txt``, ``test2id.txt``; no category
files, so the loader derives the categories), with uniformly random triples. Entity names
are Wikidata-style ``Q<id>``, relation names ``P<id>``.

Writing 20.6M lines through Python's ``str`` (or NumPy's ``savetxt``, which formats row
by row) takes minutes; :func:`format_lines` renders whole columns of integers to ASCII
at once instead: the digits of a column are ``value // 10**k % 10`` for every position
``k`` of a fixed-width ``[n, width]`` byte matrix, leading zeros are dropped by a mask,
and the masked bytes, read row after row, are the lines.

Usage: ``write_random_openke(folder, **WIKIDATA5M_SIZES)`` (sizes in ``workloads``), or
``python benchmarks/openke_folder.py FOLDER [--scale S]`` (``S`` scales the entities and
training triples of Wikidata5M; 1 is the full size).
"""
import argparse
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from workloads import WIKIDATA5M_SIZES

_POWERS = 10 ** np.arange(19, dtype=np.uint64)  # 10**0 .. 10**18
# Rows rendered at once: bounds the byte matrices (~30 bytes a row) to a few dozen MB.
_CHUNK = 1 << 20


def _digits(values: np.ndarray):
    """The ASCII digits of non-negative ints as ``[n, width]`` bytes, and the mask of
    the bytes to keep (no leading zeros; ``0`` keeps one digit)."""
    values = values.astype(np.uint64, copy=False)
    width = max(1, int(np.searchsorted(_POWERS, values.max(initial=0), side="right")))
    powers = _POWERS[width - 1::-1]
    chars = (values[:, None] // powers % 10).astype(np.uint8) + ord("0")
    num_digits = np.maximum(np.searchsorted(_POWERS, values, side="right"), 1)
    keep = np.arange(width) >= (width - num_digits)[:, None]
    return chars, keep


def format_lines(fields: Sequence[Union[bytes, np.ndarray]]) -> bytes:
    """The lines ``b"".join(fields) + b"\\n"`` of every row, as one byte string: each field
    is a constant (bytes, the same on every line) or an int array (one value per line,
    written in decimal)."""
    rows = next(len(f) for f in fields if isinstance(f, np.ndarray))
    out = []
    for start in range(0, rows, _CHUNK):
        stop = min(start + _CHUNK, rows)
        blocks, masks = [], []
        for f in list(fields) + [b"\n"]:
            if isinstance(f, bytes):
                const = np.frombuffer(f, dtype=np.uint8)
                blocks.append(np.broadcast_to(const, (stop - start, len(const))))
                masks.append(np.ones((stop - start, len(const)), dtype=bool))
            else:
                chars, keep = _digits(f[start:stop])
                blocks.append(chars)
                masks.append(keep)
        out.append(np.hstack(blocks)[np.hstack(masks)].tobytes())
    return b"".join(out)


def _write(path: Path, count: int, body: bytes) -> None:
    path.write_bytes(f"{count}\n".encode() + body)


def write_random_openke(folder, entities: int, relations: int, train: int, valid: int,
                        test: int, seed: int = 0) -> Path:
    """Writes an OpenKE folder of uniformly random triples with these sizes (valid and
    test use only relations that occur in training, like Wikidata5M's transductive
    split) and returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for filename, prefix, count in (("entity2id.txt", b"Q", entities),
                                    ("relation2id.txt", b"P", relations)):
        ids = np.arange(count, dtype=np.int64)
        _write(folder / filename, count, format_lines([prefix, ids, b"\t", ids]))
    train_relations = rng.integers(relations, size=train)
    seen = np.unique(train_relations)
    for filename, count in (("train2id.txt", train), ("valid2id.txt", valid),
                            ("test2id.txt", test)):
        rel = train_relations if filename == "train2id.txt" else rng.choice(seen, size=count)
        head, tail = rng.integers(entities, size=(2, count))
        _write(folder / filename, count, format_lines([head, b" ", tail, b" ", rel]))
    return folder


def scaled_sizes(scale: float) -> dict:
    """Wikidata5M's sizes with its entities and training triples scaled by ``scale``
    (relations, valid and test kept)."""
    sizes = dict(WIKIDATA5M_SIZES)
    for key in ("entities", "train"):
        sizes[key] = max(1, round(sizes[key] * scale))
    return sizes


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write_random_openke(args.folder, **scaled_sizes(args.scale), seed=args.seed))
