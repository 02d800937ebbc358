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
