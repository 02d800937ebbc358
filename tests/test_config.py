import pytest

from gns.config import PRESETS_DIR, Config, config_from_dict, load_config, parse_overrides


@pytest.mark.parametrize("preset", sorted(PRESETS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_presets_load(preset):
    config = load_config(preset)
    assert config != Config()  # a preset overrides something


def test_overrides_and_round_trip():
    config = load_config(overrides=["train.steps=7", "train.lr_init=3e-3", "model.radius=0.02",
                                    "train.pushforward_unrolls=[0,1]", "eval.horizons=1,2"])
    assert config.train.steps == 7 and config.train.lr_init == 3e-3 and config.model.radius == 0.02
    assert config.train.pushforward_unrolls == (0, 1) and config.eval.horizons == (1, 2)
    assert config_from_dict(config.to_dict()) == config
    assert parse_overrides(["a.b=1"]) == {"a": {"b": "1"}}
