"""Water2D reference solver: determinism, physics sanity checks and the written dataset."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from gns.errors import GnsInputError
from gns.solvers.water2d import (
    WATER_PARTICLE_TYPE,
    Water2DConfig,
    clip_to_bounds,
    free_fall_check,
    generate_water2d,
    kinetic_energy_per_frame,
    main,
    sample_scene,
    simulate_scenes,
)

# Small blocks and short trajectories: each generation below takes about a second.
TINY = Water2DConfig(num_train=3, num_valid=1, num_test=1, num_steps=30, block_size_range=(0.1, 0.15),
                     num_workers=1, scenes_per_batch=2)


@pytest.fixture(scope="module")
def datasets(generate_three):
    """The tiny dataset three times: reference, same seed on 2 workers / other batches, other seed."""
    pytest.importorskip("taichi")
    return generate_three(generate_water2d, TINY, "water2d", num_workers=2, scenes_per_batch=1)


# ------------------------------------------------------------------------------ config and scenes
def test_config_rejects_bad_values():
    with pytest.raises(GnsInputError, match="wall"):
        Water2DConfig(wall="bouncy")
    with pytest.raises(GnsInputError, match="substeps"):
        Water2DConfig(substeps=1)  # CFL far above 0.5 for the default bulk modulus
    with pytest.raises(GnsInputError, match="bounds"):
        Water2DConfig(bounds=((0.0, 0.9), (0.1, 0.9)))  # no room for the stencil beyond the wall


def test_default_config_matches_its_derived_quantities():
    config = Water2DConfig()
    assert config.particle_spacing == pytest.approx(0.01)
    assert config.connectivity_radius == pytest.approx(2.5 * config.particle_spacing)
    # a per-step displacement at the fastest bulk speed (~4 m/s) stays well below the radius
    assert 4.0 * config.frame_dt < 0.5 * config.connectivity_radius


def test_scene_depends_only_on_seed_split_and_index():
    first = sample_scene(TINY, split_id=0, index=1)
    again = sample_scene(dataclasses.replace(TINY, num_train=100, num_workers=2), split_id=0, index=1)
    np.testing.assert_array_equal(first.position, again.position)
    np.testing.assert_array_equal(first.velocity, again.velocity)
    assert not np.array_equal(first.position[:5], sample_scene(TINY, 1, 1).position[:5])
    assert len(first.position) <= TINY.max_particles
    lo, hi = np.asarray(TINY.bounds).T
    assert (first.position > lo).all() and (first.position < hi).all()


def test_missing_taichi_names_the_extra(monkeypatch):
    from gns.solvers.common import import_taichi

    monkeypatch.setitem(sys.modules, "taichi", None)  # makes `import taichi` raise ImportError
    with pytest.raises(ImportError, match=r'The Water2D solver needs Taichi: pip install "gns\[solvers\]"'):
        import_taichi("Water2D")


def test_importing_the_solver_does_not_import_taichi():
    code = "import sys, gns.solvers, gns.solvers.water2d; assert 'taichi' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_clip_to_bounds_counts_and_rejects_nan():
    position = np.array([[[0.05, 0.5], [0.5, 0.5]], [[0.5, 0.95], [0.5, 0.5]]])  # (T=2, N=2, 2)
    clipped, report = clip_to_bounds(position, ((0.1, 0.9), (0.1, 0.9)))
    assert report["num_clipped"] == 2 and report["max_excursion"] == pytest.approx(0.05)
    assert clipped[0, 0, 0] == pytest.approx(0.1) and clipped[1, 0, 1] == pytest.approx(0.9)
    with pytest.raises(FloatingPointError):
        clip_to_bounds(np.full((2, 1, 2), np.nan), ((0.1, 0.9), (0.1, 0.9)))


# ------------------------------------------------------------------------------ simulation
def test_scene_result_does_not_depend_on_its_batch():
    pytest.importorskip("taichi")
    scenes = [sample_scene(TINY, 0, i) for i in range(3)]
    alone = simulate_scenes(dataclasses.replace(TINY, scenes_per_batch=1), [scenes[1]])[0]
    batched = simulate_scenes(dataclasses.replace(TINY, scenes_per_batch=3), scenes)[1]
    np.testing.assert_array_equal(alone, batched)


def test_free_fall_follows_g_t_squared():
    pytest.importorskip("taichi")
    result = free_fall_check(dataclasses.replace(TINY, num_steps=400))
    assert result["time"] > 0.2  # a real fall, not a few frames
    assert result["relative_error"] < 0.02


def test_a_drop_splashes_and_settles():
    pytest.importorskip("taichi")
    config = dataclasses.replace(TINY, num_steps=400, scenes_per_batch=1)
    scene = sample_scene(config, 0, 0)
    trajectory = simulate_scenes(config, [scene])[0]
    energy = kinetic_energy_per_frame(trajectory, config.frame_dt)
    assert np.isfinite(trajectory).all()
    assert energy[-10:].mean() < 0.1 * energy.max()  # kinetic energy decays after the impact
    # the fluid ends as a layer on the floor
    assert trajectory[-1, :, 1].max() - config.bounds[1][0] < 0.15
    _, report = clip_to_bounds(trajectory, config.bounds)
    assert report["max_excursion"] < 0.5 * config.particle_spacing  # "by a hair" at most


# ------------------------------------------------------------------------------ the dataset
def test_generation_is_bit_identical_for_a_seed(datasets, read_splits):
    a, b, c = (read_splits(d) for d in datasets)
    for split in a:
        assert len(a[split]) == len(b[split])
        for x, y in zip(a[split], b[split]):
            # 1 worker / batches of 2 == 2 workers / batches of 1
            np.testing.assert_array_equal(x.position, y.position)
    assert not np.array_equal(a["train"][0].position[:, :5], c["train"][0].position[:, :5])


def test_dataset_is_readable_and_complete(datasets):
    from gns.data import load_metadata, open_split

    reference = datasets[0]
    meta = load_metadata(reference)
    assert meta.dim == 2 and meta.dt == TINY.frame_dt and meta.sequence_length == TINY.num_steps
    assert meta.bounds == [list(b) for b in TINY.bounds]
    assert meta.default_connectivity_radius == pytest.approx(TINY.connectivity_radius)
    assert meta.periodic_boundary_conditions == [False, False]
    assert meta.kinematic_particle_types == []
    assert meta.has_statistics()
    assert all(s > 0 for s in meta.vel_std + meta.acc_std)
    assert meta.gravity == pytest.approx([0.0, -9.81 * TINY.frame_dt ** 2])
    generator = meta.extra["generator"]
    assert generator["seed"] == TINY.seed and generator["config"] == TINY.to_dict()
    assert generator["taichi_version"].startswith("1.")
    assert generator["validation"]["trajectories"] == {"train": 3, "valid": 1, "test": 1}
    for split, count in (("train", 3), ("valid", 1), ("test", 1)):
        with open_split(reference, split) as trajectories:
            assert len(trajectories) == count
            for i in range(count):
                trajectory = trajectories[i]
                assert trajectory.position.dtype == np.float32
                assert trajectory.position.shape[0] == TINY.num_steps + 1
                assert (trajectory.particle_type == WATER_PARTICLE_TYPE).all()


def test_statistics_come_from_the_train_split(datasets):
    from gns.data import compute_statistics, load_metadata, open_split

    meta = load_metadata(datasets[0])
    stats = compute_statistics(open_split(datasets[0], "train"), meta.bounds, meta.periodic)
    for key in ("vel_mean", "vel_std", "acc_mean", "acc_std"):
        assert getattr(meta, key) == pytest.approx(stats[key])


def test_positions_stay_within_the_walls(datasets, read_splits):
    lo, hi = np.asarray(TINY.bounds, dtype=np.float32).T
    for trajectories in read_splits(datasets[0]).values():
        for trajectory in trajectories:
            assert (trajectory.position >= lo).all() and (trajectory.position <= hi).all()


def test_describe_dataset_counts_neighbours(datasets):
    pytest.importorskip("scipy")
    from gns.solvers.water2d import describe_dataset

    summary = describe_dataset(datasets[0], max_frames=3)
    assert summary["splits"]["train"] == {"trajectories": 3, "frames": [TINY.num_steps + 1]}
    assert 10 < summary["neighbours"]["median"] <= summary["neighbours"]["p90"] < 25


def test_command_line_small_dataset(tmp_path, capsys):
    pytest.importorskip("taichi")
    main(["--out", str(tmp_path), "--small", "--seed", "3", "--workers", "1"])
    from gns.data import load_metadata

    assert load_metadata(tmp_path).extra["generator"]["seed"] == 3
    assert "wrote" in capsys.readouterr().out
