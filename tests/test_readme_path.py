"""The README's path from a folder of triples, descriptions and images to a tuned model,
run command by command on a tiny graph: text features from descriptions, image features
from generated images, a two-trial search, training its best configuration, prediction
by name. Only sizes (and local models instead of hub downloads) are added to the
commands; the commands themselves are read from README.md."""
import re
import shlex
from pathlib import Path

import pytest

from feature_models import minilm_path, require_vision, save_image, save_tiny_vit
from mmkgc_pyg import load_checkpoint
from mmkgc_pyg.cli import features, predict, train, tune
from mmkgc_pyg.data import SyntheticGraph, make_synthetic_kg, write_openke

README = Path(__file__).resolve().parents[1] / "README.md"
TOOLS = {"features": features, "tune": tune, "train": train, "predict": predict}


def readme_commands():
    """The ``python -m mmkgc_pyg.<tool>`` lines of the README's path section."""
    text = README.read_text()
    section = text.split("## From a folder of triples to a tuned model", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = [shlex.split(line) for line in block.replace("\\\n", " ").splitlines()
                if line.startswith("python -m mmkgc_pyg.")]
    return [(argv[2].split(".", 1)[1], argv[3:]) for argv in commands]


@pytest.fixture
def mykg(tmp_path, monkeypatch):
    """``mykg/`` as the README describes it: triples, descriptions of some entities,
    images of others (one unreadable)."""
    minilm_path()  # skips, naming the extra, where the README path's extras are missing
    require_vision()
    pytest.importorskip("optuna", reason="the [tune] extra (optuna) is not installed")
    graph = make_synthetic_kg(SyntheticGraph(
        num_entities=120, num_relations=4, num_clusters=6, domain_size=4, num_train=600,
        num_valid=40, num_test=40))
    graph.entity_names = ["Paris", "France", *(f"Place_{i}" for i in range(2, 120))]
    graph.relation_names = ["capital_of", *(f"relation_{i}" for i in range(1, 4))]
    folder = write_openke(graph, tmp_path / "mykg", features=False)
    (folder / "descriptions.tsv").write_text("".join(
        f"{name}\tA place in cluster {i % 6}, described in words.\n"
        for i, name in enumerate(graph.entity_names) if i % 3))
    for i, name in enumerate(graph.entity_names[:80]):
        save_image(folder / "images" / name / "0.png", seed=i, size=(16, 16))
    (folder / "images" / "Paris" / "broken.jpg").write_bytes(b"not an image")
    monkeypatch.chdir(tmp_path)  # the README's paths are relative
    return graph


def test_readme_path_from_triples_to_a_tuned_model(mykg, tmp_path, capsys):
    extra = {  # local models and tiny sizes; the rest is the README's command
        "features text": ["--model", minilm_path(), "--device", "cpu"],
        "features images": ["--model", save_tiny_vit(tmp_path / "vit"), "--device", "cpu"],
        "tune": ["--trials", "2", "--epochs", "4", "--eval-every", "2", "--dim", "8",
                 "--negatives", "4", "--batch-size", "128", "--quiet"],
        "train": ["--quiet"],
        "predict": [],
    }
    commands = readme_commands()
    assert [tool for tool, _ in commands] == ["features", "features", "tune", "train",
                                              "predict"]
    for tool, argv in commands:
        key = f"{tool} {argv[0]}" if tool == "features" else tool
        result = TOOLS[tool].main([*argv, *extra[key]])
    out = capsys.readouterr().out

    assert (tmp_path / "mykg" / "mykg-textual.pth").is_file()
    assert (tmp_path / "mykg" / "mykg-visual.pth").is_file()
    assert (tmp_path / "studies" / "mykg" / "best.yaml").is_file()
    model = load_checkpoint(tmp_path / "runs" / "mykg" / "model.pt")
    assert model.modalities == ["textual", "visual"]  # found in the folder by their names
    rows = result["predictions"]
    assert result["query"] == {"head": "Paris", "relation": "capital_of", "tail": "?"}
    assert len(rows) == 10 and all(row["entity"] in mykg.entity_names for row in rows)
    assert "(Paris, capital_of, ?): top 10 tails" in out
    assert [row.to_dict() for row in model.predict(head="Paris", relation="capital_of")] == \
        [{**row, "known": False} for row in rows]  # the library gives the same answers
