"""Property tests of the OpenKE reader: valid folders round-trip exactly, malformed
ones always raise a InputError naming the broken file, and arbitrary bytes never
raise anything else."""
import random
import tempfile
from pathlib import Path

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkgc_pyg.data import KGDataset, load_openke, relation_categories, split_by_category
from mmkgc_pyg.data.openke import CATEGORY_FILES, NAME_FILES, TRIPLE_FILES, write_openke
from mmkgc_pyg.errors import InputError

# Any text without line breaks; the "n...x" frame keeps the ends free of whitespace and
# the last whitespace-separated token non-numeric, so a name never reads as an id.
NAMES = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)),
                max_size=6).map(lambda s: f"n{s}x")


@st.composite
def kgs(draw) -> KGDataset:
    num_entities, num_relations = draw(st.integers(1, 7)), draw(st.integers(1, 4))
    triple = st.tuples(st.integers(0, num_entities - 1), st.integers(0, num_relations - 1),
                       st.integers(0, num_entities - 1))
    train, valid, test = (torch.tensor(draw(st.lists(triple, min_size=lo, max_size=10)),
                                       dtype=torch.long).view(-1, 3) for lo in (1, 0, 0))
    categories = split_by_category(test, relation_categories(
        torch.cat([train, valid, test]), num_relations))
    features, masks = {}, {}
    if draw(st.booleans()):
        mask = torch.tensor(draw(st.lists(st.booleans(), min_size=num_entities,
                                          max_size=num_entities)))
        x = torch.rand(num_entities, 3, generator=torch.Generator().manual_seed(
            draw(st.integers(0, 2**16)))) + 0.5
        features, masks = {"visual": x * mask[:, None]}, {"visual": mask}
    return KGDataset(
        name="prop", num_entities=num_entities, num_relations=num_relations,
        train=train, valid=valid, test=test,
        entity_names=draw(st.lists(NAMES, min_size=num_entities, max_size=num_entities)),
        relation_names=draw(st.lists(NAMES, min_size=num_relations, max_size=num_relations)),
        features=features, masks=masks, test_categories=categories)


def text_files(folder: Path):
    return [p for p in (folder / f for f in NAME_FILES + TRIPLE_FILES + CATEGORY_FILES)
            if p.is_file()]


def read(path: Path):
    return path.read_text(encoding="utf-8").split("\n")


def write(path: Path, lines):
    path.write_text("\n".join(lines), encoding="utf-8")


def assert_same(a: KGDataset, b: KGDataset):
    for split in ("train", "valid", "test"):
        assert torch.equal(getattr(a, split), getattr(b, split))
    assert a.entity_names == b.entity_names and a.relation_names == b.relation_names
    assert a.modalities == b.modalities
    for m in a.modalities:
        assert torch.equal(a.features[m], b.features[m]) and torch.equal(a.masks[m], b.masks[m])
    assert a.test_categories.keys() == b.test_categories.keys()
    for c in a.test_categories:
        assert torch.equal(a.test_categories[c], b.test_categories[c])


@settings(max_examples=60, deadline=None)
@given(kgs(), st.randoms(use_true_random=False), st.booleans(), st.booleans(), st.booleans())
def test_valid_folders_round_trip(kg, rng, crlf, spaces, category_files):
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_openke(kg, Path(tmp) / kg.name)  # feature files named by the folder
        for name in CATEGORY_FILES if not category_files else ():
            (folder / name).unlink()  # then derived, equal to the files' content
        # Equivalent spellings: shuffled name lines, CRLF, spaces, no final newline.
        lines = read(folder / "entity2id.txt")
        body = lines[1:-1]
        rng.shuffle(body)
        write(folder / "entity2id.txt", [lines[0]] + body)
        for path in text_files(folder):
            text = path.read_text(encoding="utf-8")
            if spaces and path.name not in NAME_FILES:
                text = text.replace(" ", " \t ")
            path.write_bytes(text.replace("\n", "\r\n" if crlf else "\n").encode())
        assert_same(load_openke(folder), kg)


def corrupt(folder: Path, kg: KGDataset, rng: random.Random, kind: str) -> Path:
    """Break one file in a way a reader must notice; return that file."""
    files = text_files(folder)
    with_lines = [p for p in files if len(read(p)) > 2]  # count, >= 1 line, final ""
    triples = [p for p in with_lines if p.name not in NAME_FILES]
    if kind == "count":
        path = rng.choice(files)
        lines = read(path)
        count = int(lines[0])
        lines[0] = str(count + rng.choice([d for d in (-3, -2, -1, 1, 2, 3) if count + d >= 0]))
    elif kind == "count_token":
        path = rng.choice(files)
        lines = read(path)
        lines[0] = rng.choice(["", "x", "-1", "1.0", "0x1", "\uff11", "1 2"])
    elif kind == "names":
        path = rng.choice(NAME_FILES)
        path = folder / path
        lines = read(path)
        i = rng.randrange(1, len(lines) - 1)
        n = len(lines) - 2
        name = lines[i].rsplit("\t", 1)[0]
        others = [line.rsplit("\t", 1)[1] for j, line in enumerate(lines[1:-1], 1) if j != i]
        bad = [str(n + rng.randrange(3)), "x", "-1", "", *others[:1]]
        lines[i] = f"{name}\t{rng.choice(bad)}".rstrip("\t")
    else:
        path = rng.choice(triples if kind != "truncate" else with_lines)
        lines = read(path)
        i = rng.randrange(1, len(lines) - 1)
        fields = lines[i].split(" ")
        if kind == "fields":
            fields = fields[:-1] if rng.random() < 0.5 else fields + ["0"]
        elif kind == "token":
            fields[rng.randrange(3)] = rng.choice(["x", "-1", "+1", "1.5", "1e3", "\u0663",
                                                   "0x2", "1_0", "\uff11"])
        elif kind == "range":
            j = rng.randrange(3)
            fields[j] = str((kg.num_relations if j == 2 else kg.num_entities) + rng.randrange(3))
        elif kind == "truncate":
            del lines[-1 - rng.randint(1, len(lines) - 2):-1]  # drop whole last lines
        if kind != "truncate":
            lines[i] = " ".join(fields)
    write(path, lines)
    return path


@settings(max_examples=100, deadline=None)
@given(kgs(), st.randoms(use_true_random=False),
       st.sampled_from(["count", "count_token", "names", "fields", "token", "range",
                        "truncate", "garbage"]),
       st.binary(min_size=1, max_size=8))
def test_malformed_folders_raise_naming_the_file(kg, rng, kind, garbage):
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_openke(kg, Path(tmp) / "data")
        if kind == "garbage":
            # Bytes with an invalid UTF-8 byte, inserted anywhere in any file.
            path = rng.choice(text_files(folder))
            data = path.read_bytes()
            at = rng.randint(0, len(data))
            path.write_bytes(data[:at] + garbage + b"\xff" + data[at:])
        else:
            path = corrupt(folder, kg, rng, kind)
        try:
            load_openke(folder, name="prop")
        except InputError as e:
            assert str(path) in str(e) and "\n" not in str(e)
        else:
            raise AssertionError(f"{kind} corruption of {path.name} was accepted")


@settings(max_examples=60, deadline=None)
@given(kgs(), st.sampled_from(NAME_FILES + TRIPLE_FILES + CATEGORY_FILES),
       st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_user_errors(kg, filename, content):
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_openke(kg, Path(tmp) / "data")
        (folder / filename).write_bytes(content)
        try:
            loaded = load_openke(folder, name="prop")
        except InputError:
            return
        # Accepted bytes must have made a consistent graph.
        for triples in (loaded.train, loaded.valid, loaded.test):
            assert triples.dtype == torch.long and triples.shape[1] == 3
            assert bool((triples[:, [0, 2]] < loaded.num_entities).all())
            assert bool((triples[:, 1] < loaded.num_relations).all())
