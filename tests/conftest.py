"""Shared fixtures: tiny datasets written in the canonical format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def make_bouncing_dataset(root: Path, num_trajectories=(3, 2, 2), steps: int = 40, particles: int = 24,
                          kinematic: int = 4, seed: int = 0) -> Path:
    """Balls falling under gravity and bouncing off the floor of a unit box, plus kinematic
    particles (type 3) moving on a prescribed circle. Written with the public data API."""
    from gns.data import DatasetMetadata, Trajectory, compute_statistics, save_metadata, write_split

    rng = np.random.default_rng(seed)
    bounds = [[0.0, 1.0], [0.0, 1.0]]
    g = np.array([0.0, -2e-4])
    splits = {}
    for name, count in zip(("train", "valid", "test"), num_trajectories):
        trajs = []
        for _ in range(count):
            x = rng.uniform(0.2, 0.8, size=(particles, 2))
            v = rng.normal(0, 2e-3, size=(particles, 2))
            frames = []
            for t in range(steps):
                v = v + g
                x = x + v
                below = x[:, 1] < 0.0
                x[below, 1] = -x[below, 1]
                v[below, 1] = -0.8 * v[below, 1]
                frames.append(x.copy())
            pos = np.stack(frames).astype(np.float32)
            phase = np.linspace(0, 2 * np.pi, kinematic, endpoint=False)
            t = np.arange(steps)[:, None]
            pos[:, :kinematic, 0] = 0.5 + 0.1 * np.cos(phase + 0.05 * t)
            pos[:, :kinematic, 1] = 0.5 + 0.1 * np.sin(phase + 0.05 * t)
            ptype = np.full(particles, 5, dtype=np.int64)
            ptype[:kinematic] = 3
            trajs.append(Trajectory(position=pos, particle_type=ptype))
        splits[name] = trajs
    root.mkdir(parents=True, exist_ok=True)
    for name, trajs in splits.items():
        write_split(root / f"{name}.h5", trajs)
    stats = compute_statistics(splits["train"], bounds, [False, False])
    meta = DatasetMetadata(dim=2, dt=0.01, bounds=bounds, sequence_length=steps - 1, default_connectivity_radius=0.2,
                           vel_mean=None, vel_std=None, acc_mean=None, acc_std=None,
                           periodic_boundary_conditions=[False, False], kinematic_particle_types=[3],
                           gravity=g.tolist()).with_statistics(stats)
    save_metadata(meta, root)
    return root


@pytest.fixture(scope="session")
def bouncing_dataset(tmp_path_factory) -> Path:
    return make_bouncing_dataset(tmp_path_factory.mktemp("bouncing"))


@pytest.fixture(scope="session")
def lj3d_dataset() -> Path:
    return FIXTURES / "lagrangebench_lj3d"
