"""Particle windows: impacts (a particle's acceleration above a threshold) for impact-biased training windows."""

from __future__ import annotations

import numpy as np
import pytest

from gns.data import load_metadata, open_split
from gns.errors import GnsInputError
from gns.particles.windows import ParticleWindows


def test_impacts_are_the_bounces_of_moving_particles(bouncing_dataset):
    """The balls fall (2e-4 per step^2) and bounce off the floor; the kinematic particles circle (2.5e-4 per
    step^2, not counted): at a threshold between the two, every bounce is marked and nothing in the air."""
    meta = load_metadata(bouncing_dataset)
    split = open_split(bouncing_dataset, "train", meta)
    windows = ParticleWindows(split)
    with pytest.raises(GnsInputError, match="train.impact_threshold"):
        windows.impacts()
    std = np.asarray(meta.acc_std)
    windows.impact_threshold = float(2.2e-4 / std.max())
    impacts = windows.impacts()
    assert len(impacts) > 0 and impacts.dtype == np.int64
    bounces, near_floor = set(), set()
    for k in range(len(split)):
        x = split.read_window(k, 0, split.sequence_length(k)).astype(np.float64)[:, split.particle_type(k) != 3]
        v = np.diff(x[..., 1], axis=0)                                   # v[s - 1]: frame s - 1 to s
        up = (v[:-1] < 0) & (v[1:] > 0) & (v[1:] - v[:-1] > 4e-4)       # down into frame s, up out of it
        bounces |= {(k, int(s) + 1) for s in np.flatnonzero(up.any(1))}
        low = (x[1:-1, :, 1] < 0.02).any(1)                               # a ball within 0.02 of the floor
        near_floor |= {(k, int(s) + 1) for s in np.flatnonzero(low)}
    marked = {tuple(map(int, row)) for row in impacts}
    assert bounces and bounces <= marked <= near_floor                   # every bounce, nothing in the air
    # threshold zero: every step with a moving particle is marked (all of them: gravity never stops)
    windows_all = ParticleWindows(split)
    windows_all.impact_threshold = 0.0
    assert len(windows_all.impacts()) == sum(int(n) - 2 for n in windows.lengths)
