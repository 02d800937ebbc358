"""Velocity/acceleration statistics against a direct numpy computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gns.data import Trajectory, compute_statistics, load_metadata, open_split, write_split
from gns.data import stats as stats_module

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def numpy_statistics(positions: list[np.ndarray], box_size: list[float] | None = None,
                     periodic: list[bool] | None = None) -> dict:
    """The definition, written out: all particles, steps and trajectories pooled."""
    velocities, accelerations = [], []
    for x in positions:
        v = np.diff(x.astype(np.float64), axis=0)
        if box_size is not None:
            size = np.asarray(box_size)
            v = np.where(periodic, v - size * np.round(v / size), v)  # minimum image
        velocities.append(v.reshape(-1, x.shape[-1]))
        accelerations.append(np.diff(v, axis=0).reshape(-1, x.shape[-1]))
    v, a = np.concatenate(velocities), np.concatenate(accelerations)
    return {"vel_mean": v.mean(0), "vel_std": v.std(0), "acc_mean": a.mean(0), "acc_std": a.std(0)}


def assert_stats_close(got: dict, expected: dict, **tol) -> None:
    assert sorted(got) == ["acc_mean", "acc_std", "vel_mean", "vel_std"]
    for key, value in expected.items():
        assert isinstance(got[key], list)
        np.testing.assert_allclose(got[key], value, **tol, err_msg=key)


def test_matches_numpy_non_periodic():
    rng = np.random.default_rng(3)
    trajectories = [Trajectory(np.cumsum(rng.normal(size=(t, n, 2)), axis=0).astype(np.float32),
                               np.zeros(n, dtype=np.int64))
                    for t, n in [(15, 4), (9, 6), (3, 2)]]
    got = compute_statistics(trajectories, [[-100, 100], [-100, 100]], [False, False])
    assert_stats_close(got, numpy_statistics([t.position for t in trajectories]), rtol=1e-10)


def test_periodic_crossing_has_no_jumps():
    # Particles move +0.3 per step along x in a periodic unit box and wrap around the edge.
    frames = np.arange(12)[:, None]
    x = np.mod(0.05 + 0.3 * frames + np.linspace(0, 0.5, 4)[None], 1.0)  # (T, N)
    y = np.full_like(x, 0.5) + 0.01 * frames  # non-periodic, steady drift
    position = np.stack([x, y], axis=-1).astype(np.float32)  # (T, N, 2)
    trajectories = [Trajectory(position, np.zeros(4, dtype=np.int64))]
    got = compute_statistics(trajectories, [[0.0, 1.0], [0.0, 1.0]], [True, False])
    np.testing.assert_allclose(got["vel_mean"], [0.3, 0.01], atol=1e-6)
    np.testing.assert_allclose(got["vel_std"], [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(got["acc_std"], [0.0, 0.0], atol=1e-6)
    assert_stats_close(got, numpy_statistics([position], [1.0, 1.0], [True, False]), atol=1e-12)
    # Without the minimum image, wrapping shows up as jumps of -1 (the box size).
    naive = compute_statistics(trajectories, [[0.0, 1.0], [0.0, 1.0]], [False, False])
    assert naive["vel_std"][0] > 0.3


def test_split_streaming_in_blocks_equals_whole(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    trajectories = [Trajectory(rng.uniform(0, 2, size=(t, 5, 3)).astype(np.float32),
                               np.zeros(5, dtype=np.int64)) for t in (23, 4, 11)]
    write_split(tmp_path / "train.h5", trajectories)
    bounds, periodic = [[0.0, 2.0]] * 3, [True, False, True]
    whole = compute_statistics(trajectories, bounds, periodic)
    for block in (1, 2, 3, 5):  # every stitching case: blocks shorter than a stencil, too
        monkeypatch.setattr(stats_module, "_BLOCK_FRAMES", block)
        streamed = compute_statistics(open_split(tmp_path, "train"), bounds, periodic)
        assert_stats_close(streamed, {k: np.array(v) for k, v in whole.items()}, rtol=1e-9,
                           atol=1e-15)
    expected = numpy_statistics([t.position for t in trajectories], [2.0] * 3, periodic)
    assert_stats_close(whole, expected, rtol=1e-9)


def test_lagrangebench_lj3d_periodic():
    directory = FIXTURES / "lagrangebench_lj3d"
    meta = load_metadata(directory)
    split = open_split(directory, "train")
    got = compute_statistics(split, meta.bounds, meta.periodic_boundary_conditions)
    assert_stats_close(got, numpy_statistics([split[0].position], [5.0] * 3,
                                                          [True] * 3), rtol=1e-9,
                       atol=1e-15)
    # Particles do cross the box (raw jumps of nearly L = 5), yet velocities stay small...
    assert np.abs(np.diff(split[0].position, axis=0)).max() > 4.0
    assert max(got["vel_std"]) < 0.01
    # ...and of the order of the published statistics (made from the full original run).
    np.testing.assert_allclose(got["vel_std"], meta.vel_std, rtol=0.5)


def test_needs_three_frames():
    with pytest.raises(ValueError, match="3 or more frames"):
        compute_statistics([Trajectory(np.zeros((2, 1, 1), np.float32), np.zeros(1, np.int64))],
                           [[0, 1]], None)
