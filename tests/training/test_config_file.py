"""Configuration files read defensively: bounded size, nesting and alias expansion, and
keys given twice refused by name."""
import time

import pytest

from mmkgc_pyg.errors import InputError
from mmkgc_pyg.training.config_file import read_mapping

BOMB = """trackers: &a [x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    start = time.perf_counter()
    with pytest.raises(InputError, match="values once YAML aliases are expanded"):
        read_mapping(path)
    assert time.perf_counter() - start < 5
    (tmp_path / "fine.yaml").write_text("a: &x [1, 2]\nb: *x\n")  # aliases as such are fine
    assert read_mapping(tmp_path / "fine.yaml") == {"a": [1, 2], "b": [1, 2]}


@pytest.mark.parametrize("suffix, make", [
    (".yaml", lambda n: "a: " + "[" * n + "]" * n + "\n"),
    (".json", lambda n: '{"a": ' + "[" * n + "]" * n + "}"),
    (".toml", lambda n: "a = " + "[" * n + "]" * n + "\n"),
])
@pytest.mark.parametrize("depth", [25, 100_000])
def test_deep_nesting_is_one_error(tmp_path, suffix, make, depth):
    path = tmp_path / f"deep{suffix}"
    path.write_text(make(depth))
    with pytest.raises(InputError, match="nested at most 20 levels"):
        read_mapping(path)


@pytest.mark.parametrize("suffix, text", [
    (".yaml", "dim: 8\nlr: 0.1\ndim: 16\n"),
    (".json", '{"dim": 8, "lr": 0.1, "dim": 16}'),
    (".toml", "dim = 8\nlr = 0.1\ndim = 16\n"),
])
def test_a_key_given_twice_is_refused_by_name(tmp_path, suffix, text):
    path = tmp_path / f"twice{suffix}"
    path.write_text(text)
    with pytest.raises(InputError, match="dim"):
        read_mapping(path)


def test_a_huge_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("# " + "x" * (2 << 20) + "\n")
    with pytest.raises(InputError, match="at most 1 MiB"):
        read_mapping(path)
