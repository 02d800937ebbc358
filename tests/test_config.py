import pytest

from gns.config import PRESETS_DIR, Config, config_from_dict, load_config, parse_overrides
from gns.errors import GnsInputError


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


def test_a_file_extends_a_preset_or_a_file(tmp_path):
    flow = load_config(PRESETS_DIR / "flow.yaml")
    (tmp_path / "base.yaml").write_text("extends: flow\nmodel:\n  latent_size: 16\ntrain:\n  steps: 9\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\ntrain:\n  lr_init: 2.0e-3\n")
    config = load_config(tmp_path / "child.yaml", ["train.steps=11"])
    # each layer changes what it names and nothing else: sections merge key by key
    assert config.model.latent_size == 16 and config.model.message_passing_steps == flow.model.message_passing_steps
    assert (config.train.steps, config.train.lr_init) == (11, 2e-3)
    assert config.train.lr_decay_steps == flow.train.lr_decay_steps
    assert config.dataset == flow.dataset


@pytest.mark.parametrize("text, message", [("extends: no_such_preset\n", "unknown preset 'no_such_preset'"),
                                           ("extends: missing.yaml\n", "config file not found"),
                                           ("extends: self.yaml\n", "in a circle"),
                                           ("extends: [flow]\n", "expected a preset name or a path")])
def test_a_bad_extends_names_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "self.yaml"
    path.write_text(text)
    with pytest.raises(GnsInputError, match=message) as info:
        load_config(path)
    assert info.value.file == path and info.value.key == "extends"


def test_the_long_recipes_state_only_what_they_change():
    # the longer recipes build on their domain's preset; what they do not set is the preset's
    for long, short in [("cloth_long", "cloth"), ("flow_long", "flow")]:
        a, b = load_config(PRESETS_DIR / f"{long}.yaml"), load_config(PRESETS_DIR / f"{short}.yaml")
        assert a.model == b.model and a.train.noise_std == b.train.noise_std and a.train.steps >= b.train.steps
        assert a.out_dir != b.out_dir
