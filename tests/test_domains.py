"""The domain table's checkpoint loading: weights that do not fit the rebuilt model are a clear error."""

from __future__ import annotations

import pytest
import torch

from gns.domains import load_simulator
from gns.errors import GnsInputError


def test_weights_that_do_not_fit_their_config_are_named(bouncing_dataset, tmp_path, small_config, train_small):
    train_small(small_config(bouncing_dataset, tmp_path / "run", "train.steps=2"))
    path = tmp_path / "run" / "checkpoints" / "latest.pt"
    state = torch.load(path, weights_only=False)
    key = next(k for k, v in state["model"].items() if v.ndim == 2)
    state["model"][key] = torch.zeros(3, 5)
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    with pytest.raises(GnsInputError, match=r"bad\.pt.*do not fit|do not fit.*bad\.pt") as info:
        load_simulator(bad)
    assert key in str(info.value) and "(3, 5)" in str(info.value)


@pytest.mark.parametrize("setting", ["model.wall_spacing=0.01", "model.mirror_average=[0]", "model.edge_velocity=true"])
def test_particle_settings_are_refused_by_other_domains(setting, cloth_dataset, objects_dataset, tmp_path, capsys):
    """A particle-only model setting given to a mesh or object run is a clear error, not silently ignored."""
    from gns.cli import main

    for dataset in (cloth_dataset, objects_dataset):
        code = main(["train", "--dataset", str(dataset), "--out", str(tmp_path / dataset.name), "--quiet",
                     "--device", "cpu", "--set", setting])
        assert code == 2
        assert f"key '{setting.split('=')[0]}'" in capsys.readouterr().err
