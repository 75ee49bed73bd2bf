"""TrainConfig validates itself; presets; the command line derives its flags from it."""
import math

import pytest

from mmkgc_pyg.cli.train import build_parser, config_flag
from mmkgc_pyg.errors import ConfigError
from mmkgc_pyg.training import TrainConfig, preset_for
from mmkgc_pyg.training.config import PAPER_PRESETS, SYNTHETIC_PRESET


@pytest.mark.parametrize("values, name", [
    (dict(lr=-1.0), "lr"), (dict(lr=math.inf), "lr"), (dict(margin=math.nan), "margin"),
    (dict(dim=0), "dim"), (dict(dim=2.5), "dim"), (dict(dim=True), "dim"),
    (dict(seed=2**64), "seed"), (dict(seed=-1), "seed"), (dict(mu=-0.1), "mu"),
    (dict(interaction="rotatE"), "interaction"), (dict(mat_loss="mean"), "mat_loss"),
    (dict(bf16="yes"), "bf16"), (dict(trackers=("mlflow-ish",)), "trackers"),
    (dict(time_budget=-1), "time_budget"), (dict(eval_batch_size=-1), "eval_batch_size"),
])
def test_invalid_values_are_refused(values, name):
    with pytest.raises(ConfigError, match=rf"^{name}=") as info:
        TrainConfig(**values)
    assert info.value.name == name and isinstance(info.value, ValueError)


def test_ints_are_accepted_as_floats_and_dicts_round_trip():
    config = TrainConfig(lr=1, trackers=["tensorboard"])
    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert config.trackers == ("tensorboard",)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="^colour="):
        TrainConfig.from_dict({**config.to_dict(), "colour": "red"})


def test_presets():
    assert preset_for("synthetic") == SYNTHETIC_PRESET
    spellings = {"DB15K": "DB15K", "db15k": "DB15K", "MKG-W": "MKG-W", "mkg_w": "MKG-W",
                 "MKGW": "MKG-W", "MKG-Y": "MKG-Y"}
    for spelling, name in spellings.items():
        assert preset_for(spelling) == PAPER_PRESETS[name]
    assert preset_for("FB15k") == {}
    for values in (*PAPER_PRESETS.values(), SYNTHETIC_PRESET):
        TrainConfig(**values)  # every preset is valid


def test_every_field_has_a_flag_with_its_help():
    parser = build_parser()
    flags = {flag: action for action in parser._actions for flag in action.option_strings}
    for name in TrainConfig.__dataclass_fields__:
        action = flags[config_flag(name)]
        assert action.dest == name and action.help
    args = parser.parse_args(["--no-mat", "--freeze-features", "--batch-size", "64",
                              "--tracker", "tensorboard", "--mat-loss", "per-positive"])
    assert (args.mat, args.train_features, args.batch_size, args.trackers, args.mat_loss) == \
        (False, False, 64, ["tensorboard"], "per-positive")
    assert args.lr is None and args.bf16 is None  # not given: the preset applies
