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


def test_crossing_a_periodic_boundary_is_no_impact(tmp_path):
    """Particles gliding at constant velocity through a periodic box: the wrap is a jump of one box width in
    position, not an acceleration."""
    from gns.data import DatasetMetadata, Trajectory, save_metadata, write_split

    t = np.arange(30, dtype=np.float64)[:, None, None]
    start = np.random.default_rng(0).uniform(0.0, 1.0, size=(1, 8, 2))
    position = ((start + t * np.array([0.07, -0.03])) % 1.0).astype(np.float32)         # (30, 8, 2)
    write_split(tmp_path / "train.h5", [Trajectory(position=position, particle_type=np.full(8, 5, np.int64))])
    meta = DatasetMetadata(dim=2, dt=0.01, bounds=[[0.0, 1.0], [0.0, 1.0]], sequence_length=29,
                           default_connectivity_radius=0.2, vel_mean=[0.07, -0.03], vel_std=[1e-3, 1e-3],
                           acc_mean=[0.0, 0.0], acc_std=[1e-3, 1e-3], periodic_boundary_conditions=[True, True])
    save_metadata(meta, tmp_path)
    windows = ParticleWindows(open_split(tmp_path, "train", load_metadata(tmp_path)))
    windows.impact_threshold = 1.0
    assert len(windows.impacts()) == 0
