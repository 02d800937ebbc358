"""Object windows: impact-biased sampling for training, uniform validation windows, bad settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gns.data.objects import open_object_split
from gns.errors import GnsInputError
from gns.objects.windows import ObjectWindows


def _impact_at(split, traj: int, step: int) -> bool:
    touching = np.asarray(split.read_window(traj, 0, split.num_frames(traj)).contacts).any(-1).any(-1)
    return bool(touching[step] and not touching[step - 1])


def test_impact_windows_end_on_an_impact(objects_dataset):
    split = open_object_split(objects_dataset, "train")
    windows = ObjectWindows(split, impact_fraction=1.0)
    assert len(windows.impacts()) > 0
    window = 4                                           # 3 input frames and the scored one
    items = windows.sample_items(32, window, torch.Generator().manual_seed(0))
    for traj, start in items:
        assert start + window <= split.num_frames(traj)
        assert _impact_at(split, traj, start + window - 2), (traj, start)
    # the same draws every time (exact resume), and other draws than uniform sampling
    assert items == windows.sample_items(32, window, torch.Generator().manual_seed(0))
    uniform = ObjectWindows(split).sample_items(32, window, torch.Generator().manual_seed(0))
    assert items != uniform
    # validation stays uniform
    assert windows.fixed_items(16, window) == ObjectWindows(split).fixed_items(16, window)


def test_impact_fraction_out_of_range_is_named(objects_dataset):
    with pytest.raises(GnsInputError, match="objects.impact_fraction"):
        ObjectWindows(open_object_split(objects_dataset, "train"), impact_fraction=1.5)
