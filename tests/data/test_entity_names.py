import pytest

from mmkgc_pyg.data.entity_names import (EntityIndex, entity_key, find_link_files,
                                         match_keys, readable_name)
from mmkgc_pyg.errors import InputError

NAMES = ["<http://dbpedia.org/resource/Andy_Griffith>",
         "<http://dbpedia.org/resource/AC/DC>",
         "<http://dbpedia.org/resource/Caf%C3%A9_society>",
         "http://www.wikidata.org/entity/Q42",
         "/m/0abc",
         "Plain name"]


@pytest.mark.parametrize("key, expected", [
    ("<http://dbpedia.org/resource/Andy_Griffith>", "Andy_Griffith"),
    ("http://dbpedia.org/resource/Andy%20Griffith", "Andy_Griffith"),
    (" Andy Griffith ", "Andy_Griffith"),
    ("<http://dbpedia.org/resource/AC/DC>", "AC/DC"),
    ("http://www.wikidata.org/entity/Q42", "Q42"),
    ("http://example.org/onto#Thing", "Thing"),
    ("/m/0abc", "m.0abc"),
    ("m.0abc", "m.0abc"),
])
def test_entity_key_forms(key, expected):
    assert entity_key(key) == expected


def test_readable_names_and_identifiers():
    assert readable_name(NAMES[0]) == "Andy Griffith"
    assert readable_name(NAMES[2]) == "Café society"
    assert readable_name("<http://dbpedia.org/resource/Rock_of_Ages_(2012_film)>") == \
        "Rock of Ages (2012 film)"
    # Identifiers say nothing a text model could use.
    for opaque in ("http://www.wikidata.org/entity/Q42", "/m/0abc", "12345", "<_>"):
        assert readable_name(opaque) is None


def test_index_matches_every_form_and_refuses_ambiguous_keys():
    index = EntityIndex(NAMES)
    assert index.lookup(NAMES[0]) == 0
    assert index.lookup("Andy_Griffith") == index.lookup("Andy Griffith") == 0
    assert index.lookup("AC/DC") == 1
    assert index.lookup("Café_society") == index.lookup("Caf%C3%A9_society") == 2
    assert index.lookup("Q42") == 3
    assert index.lookup("m.0abc") == 4
    assert index.lookup("Plain_name") == 5
    assert index.lookup("Nobody") is None

    twins = EntityIndex(["<http://a.org/resource/X>", "<http://b.org/resource/X>"])
    assert twins.lookup("X") is None
    assert twins.lookup("<http://b.org/resource/X>") == 1


def test_link_files_add_aliases(tmp_path):
    same_as = tmp_path / "DB15K_SameAsLink.txt"
    same_as.write_text("/m/01m4kpp <SameAs> <http://dbpedia.org/resource/Andy_Griffith> .\n"
                       "/m/0zzz <SameAs> <http://dbpedia.org/resource/Not_in_graph> .\n")
    ent_links = tmp_path / "ent_links"
    ent_links.write_text("http://dbpedia.org/resource/Douglas_Adams\t"
                         "http://www.wikidata.org/entity/Q42\n\n")
    (tmp_path / "other.txt").write_text("ignored\n")
    assert find_link_files(tmp_path) == [same_as, ent_links]

    index = EntityIndex(NAMES, find_link_files(tmp_path))
    assert index.lookup("m.01m4kpp") == index.lookup("/m/01m4kpp") == 0
    assert index.lookup("Douglas_Adams") == 3
    assert index.lookup("m.0zzz") is None


def test_conflicting_and_ambiguous_aliases_are_dropped(tmp_path):
    links = tmp_path / "ent_links"
    links.write_text("shared\tAndy_Griffith\n"
                     "shared\tQ42\n"     # the same alias for two entities
                     "Twin\tQ42\n"       # the key of two entities
                     "Q42\tPlain_name\n")  # both ends are entities
    index = EntityIndex(NAMES + ["<http://a.org/resource/Twin>",
                                 "<http://b.org/resource/Twin>"], [links])
    assert index.lookup("shared") is None
    assert index.lookup("Twin") is None
    assert index.lookup("Q42") == 3 and index.lookup("Plain_name") == 5


def test_bad_link_line_names_file_and_line(tmp_path):
    links = tmp_path / "ent_links"
    links.write_text("a\tb\nlonely\n")
    with pytest.raises(InputError, match=r"ent_links:2: expected two linked names"):
        EntityIndex(NAMES, [links])


def test_match_keys_reads_ids_or_names_per_source():
    index = EntityIndex(NAMES)
    where = "line {}".format
    assert match_keys(["5", "0", "3"], index, where) == [5, 0, 3]
    # One key that is no integer makes every key a name: "3" names no entity.
    assert match_keys(["3", "Andy_Griffith", "Nobody"], index, where) == [None, 0, None]
    with pytest.raises(InputError, match=r"^line 1: expected an entity id in \[0, 6\), got 6$"):
        match_keys(["0", "6"], index, where)


def test_match_keys_takes_the_first_spelling_that_matches():
    index = EntityIndex(NAMES + ["<http://dbpedia.org/resource/Apollo_11>"])
    keys = [("Apollo_11", "Apollo"), ("Plain_name_2", "Plain_name"), ("Nobody_1", "Nobody"),
            "AC/DC"]
    assert match_keys(keys, index, str) == [6, 5, None, 1]
    # Ids when every key has an integer spelling.
    assert match_keys([("4_1", "4"), ("2",)], index, str) == [4, 2]
