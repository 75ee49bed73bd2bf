"""``train --config FILE``: YAML, JSON and TOML files, flags over files, one-line errors
naming the file and key, and the run's own config.yaml repeating it."""
import pytest
import yaml

from utils import as_default_graph
from mmkgc_pyg.cli import train
from mmkgc_pyg.data import SyntheticGraph, make_synthetic_kg, write_openke
from mmkgc_pyg.training import TrainConfig

SMALL = ["--epochs", "2", "--eval-every", "1", "--dim", "8", "--negatives", "4", "--quiet"]


@pytest.fixture(scope="module")
def small_graph():
    """A small synthetic graph that train uses as its default one (for speed)."""
    graph = make_synthetic_kg(SyntheticGraph(
        num_entities=120, num_relations=4, num_clusters=6, domain_size=4, num_train=600,
        num_valid=40, num_test=40))
    with as_default_graph(graph):
        yield graph


def parse(argv):
    """The run spec, dataset and TrainConfig that ``train argv`` would use."""
    args = train.build_parser().parse_args(argv)
    spec, dataset, _, _ = train.new_run(args)
    return spec, dataset, spec.config


@pytest.mark.parametrize("suffix, text", [
    (".yaml", "dataset: synthetic\nlr: 1e-3\nnegatives: 6\ntrackers: [tensorboard]\n"
              "drop_modality_rate: 0.5\n"),
    (".json", '{"dataset": "synthetic", "lr": 0.001, "negatives": 6, '
              '"trackers": ["tensorboard"], "drop_modality_rate": 0.5}'),
    (".toml", 'dataset = "synthetic"\nlr = 1e-3\nnegatives = 6\ntrackers = ["tensorboard"]\n'
              'drop_modality_rate = 0.5\n'),
])
def test_config_files_map_to_settings_and_flags_override(small_graph, tmp_path, suffix,
                                                         text):
    folder = tmp_path / "configs"
    write_openke(small_graph, folder / "synthetic")  # relative to the file's folder
    path = folder / f"run{suffix}"
    path.write_text(text)
    spec, dataset, config = parse(["--config", str(path)])
    assert spec.dataset.path == str(folder / "synthetic") and dataset.num_entities == 120
    assert config.lr == 1e-3 and isinstance(config.lr, float) and config.negatives == 6
    assert config.trackers == ("tensorboard",) and spec.drop_modality_rate == 0.5
    assert config.margin == 6.0  # neither in the file nor a flag: the dataset's preset
    spec, _, config = parse(["--config", str(path), "--lr", "0.02", "--tracker", "tensorboard",
                             "--drop-modality-rate", "0"])
    assert config.lr == 0.02 and config.negatives == 6 and spec.drop_modality_rate == 0


@pytest.mark.parametrize("name, text, message", [
    ("bad.yaml", "lr: fast\n", "bad.yaml: lr='fast': expected a float"),
    ("bad.yaml", "patience: 0\n", "bad.yaml: patience=0: expected a positive integer"),
    ("bad.yaml", "batch-size: 8\n", "bad.yaml: 'batch-size': expected a training setting"
                                    " or one of dataset, features, masks, drop_modality_rate,"
                                    " device; did you mean 'batch_size'?"),
    ("bad.yaml", "lr: 1\n dim: 2\n", "bad.yaml:2: expected YAML"),
    ("bad.json", '{"lr": }', "bad.json: expected JSON"),
    ("bad.toml", "lr = \n", "bad.toml: expected TOML"),
    ("bad.yaml", "- lr\n", "bad.yaml: expected a mapping of settings"),
    ("bad.yaml", "drop_modality_rate: 2\n", "bad.yaml: drop_modality_rate=2: expected a "
                                            "number in [0, 1]"),
    ("bad.yaml", "features: [visual.pt]\n", "bad.yaml: features=['visual.pt']: expected a "
                                            "mapping"),
    ("bad.ini", "lr = 1\n", "--config {dir}/bad.ini: expected a .yaml, .yml, .json or .toml"),
    ("run.yaml", "modalities: false\ndrop_modality_rate: 0.5\n",  # checked on the run
     "run.yaml: drop_modality_rate=0.5: expected 0 for a model without modalities"),
    ("twice.yaml", "dim: 8\ndim: 16\n", "twice.yaml: 'dim' given twice (line 2)"),
    ("absent.yaml", None, "--config {dir}/absent.yaml: cannot read"),
])
def test_bad_files_are_one_line_errors_naming_file_and_key(small_graph, tmp_path, capsys,
                                                          name, text, message):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(SystemExit) as exc:
        train.main(["--config", str(path), "--out", str(tmp_path / "run"), *SMALL])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("error: ") and message.format(dir=tmp_path) in err
    assert not (tmp_path / "run").exists()


def test_config_yaml_repeats_the_run(small_graph, tmp_path):
    first = train.main(["--out", str(tmp_path / "a"), "--mu", "0.2", *SMALL])
    written = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert written["mu"] == 0.2 and written["dim"] == 8 and written["dataset"] is None
    assert set(TrainConfig.__dataclass_fields__) <= set(written)  # every training setting
    assert written["run"]["fingerprint"] == small_graph.fingerprint()
    again = train.main(["--config", str(tmp_path / "a" / "config.yaml"),
                        "--out", str(tmp_path / "b"), "--quiet"])
    assert again["valid"] == first["valid"] and again["test"] == first["test"]
    rewritten = yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())
    assert rewritten["run"]["id"] != written["run"]["id"]
    assert {k: v for k, v in rewritten.items() if k != "run"} == \
        {k: v for k, v in written.items() if k != "run"}


def test_config_cannot_change_a_resumed_run(small_graph, tmp_path, capsys):
    out = tmp_path / "run"
    train.main(["--out", str(out), "--checkpoint-every", "1", *SMALL])
    with pytest.raises(SystemExit):
        train.main(["--resume", str(out), "--config", str(out / "config.yaml")])
    assert "--config: cannot be given with --resume" in capsys.readouterr().err
