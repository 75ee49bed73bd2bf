import pytest

from mmkgc_pyg.builders.descriptions import entity_texts, read_descriptions
from mmkgc_pyg.data.entity_names import EntityIndex
from mmkgc_pyg.errors import InputError

NAMES = ["<http://dbpedia.org/resource/Andy_Griffith>",
         "<http://dbpedia.org/resource/Taiwan>",
         "http://www.wikidata.org/entity/Q42"]


@pytest.fixture
def index():
    return EntityIndex(NAMES)


def test_keys_are_names_unless_all_are_ids(tmp_path, index):
    by_name = tmp_path / "names.txt"
    by_name.write_text("Andy_Griffith\tAn American actor.\n\n"
                       "<http://dbpedia.org/resource/Taiwan>\tAn island.\tWith a tab.\r\n"
                       "Unknown_thing\tNot in the graph.\n"
                       "12\tA name that looks like an id.\n")
    descriptions, unmatched = read_descriptions(by_name, index)
    assert descriptions == {0: "An American actor.", 1: "An island.\tWith a tab."}
    assert unmatched == ["Unknown_thing", "12"]

    by_id = tmp_path / "ids.txt"
    by_id.write_text("2\tAn author.\n0\t\n")
    assert read_descriptions(by_id, index) == ({2: "An author."}, [])


@pytest.mark.parametrize("text, message", [
    ("0\tA\n7\tB\n", r"ids.txt:2: expected an entity id in \[0, 3\), got 7"),
    ("0\tA\n0\tB\n", r"ids.txt:2: expected one description per entity, got entity 0 "
                     r"again \(first on line 1\)"),
    ("0\tA\nno tab here\n", r"ids.txt:2: expected `KEY<TAB>TEXT`"),
])
def test_bad_lines_name_the_line(tmp_path, index, text, message):
    path = tmp_path / "ids.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_descriptions(path, index)


def test_texts_prefer_descriptions_then_readable_names():
    assert entity_texts(NAMES, {1: "An island."}) == ["Andy Griffith", "An island.", None]
    assert entity_texts(NAMES) == ["Andy Griffith", "Taiwan", None]
