"""Cloth (flag) reference solver: mesh and scene construction, physics checks, the written dataset."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest

from gns.errors import GnsInputError
from gns.solvers.cloth import (
    HANDLE,
    NORMAL,
    OBSTACLE,
    ClothConfig,
    ClothScene,
    _hinges,
    build_trajectory,
    cloth_mesh,
    edge_strain,
    free_fall_check,
    generate_cloth,
    hanging_check,
    icosphere,
    initial_positions,
    main,
    prescribed_handles,
    prescribed_obstacle,
    sample_scene,
    simulate_scenes,
    validate_trajectory,
    wind_velocity,
)

# A 9 x 5 sheet, short trajectories, one process: each simulation below takes about a second.
SMALL = ClothConfig.small(num_workers=1, scenes_per_batch=2)
TINY = dataclasses.replace(SMALL, num_steps=20, obstacle_fraction=1.0)  # every trajectory with a sphere


@pytest.fixture(scope="module")
def datasets(generate_three):
    """The tiny dataset three times: reference, same seed on 2 workers / other batches, other seed."""
    pytest.importorskip("taichi")
    return generate_three(generate_cloth, TINY, "cloth", num_workers=2, scenes_per_batch=1)


# ------------------------------------------------------------------------------ config, meshes, scenes
def test_config_rejects_bad_values():
    with pytest.raises(GnsInputError, match="substeps"):
        ClothConfig(substeps=20)  # far above the membrane's CFL limit
    with pytest.raises(GnsInputError, match="damping number"):
        ClothConfig(membrane_damping=2e-3)  # stable for the CFL limit, not for explicit damping (blew up)
    ClothConfig(membrane_damping=2e-3, substeps=500)  # ran stably
    with pytest.raises(GnsInputError, match="poisson_ratio"):
        ClothConfig(poisson_ratio=0.5)
    with pytest.raises(GnsInputError, match="obstacle_fraction"):
        ClothConfig(obstacle_fraction=1.5)
    with pytest.raises(GnsInputError, match="wind_speed_range"):
        ClothConfig(wind_speed_range=(5.0, 2.0))


def test_default_config_is_a_300_node_flag_within_its_cfl_limit():
    config = ClothConfig()
    mesh_pos, cells, handles = cloth_mesh(config)
    assert 300 <= len(mesh_pos) <= 500 and cells.dtype == np.int32
    assert (mesh_pos[handles, 0] == 0).all() and len(handles) == config.nodes_v
    assert config.wave_speed * config.substep_dt / config.spacing <= 0.35
    assert config.world_edge_radius == pytest.approx(2 * config.spacing)  # two rest edges: contact visible
    assert config.to_dict()["gravity"] == [0.0, 0.0, -9.81]


def test_icosphere_is_a_closed_outward_unit_sphere():
    vertices, faces = icosphere(1)
    assert vertices.shape == (42, 3) and faces.shape == (80, 3)
    np.testing.assert_allclose(np.linalg.norm(vertices, axis=1), 1.0)
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    assert (np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c) > 0).all()  # normals point outwards
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all()  # closed: every edge has two faces


def test_hinge_weights_see_bending_but_not_in_plane_motion():
    mesh_pos, cells, _ = cloth_mesh(SMALL)
    nodes, weights, factor = _hinges(mesh_pos, cells)
    assert len(nodes) == len(cells) * 3 // 2 - (2 * (SMALL.nodes_u - 1) + 2 * (SMALL.nodes_v - 1)) // 2
    rng = np.random.default_rng(0)
    affine = mesh_pos @ rng.normal(size=(2, 3)) + rng.normal(size=3)  # any affine map of the rest sheet
    np.testing.assert_allclose(np.einsum("hk,hkd->hd", weights, affine[nodes]), 0.0, atol=1e-12)
    # lift only the two opposite nodes of one hinge by small heights: sum K z = the fold angle
    i0, i1, i2, i3 = nodes[0]
    edge = mesh_pos[i1] - mesh_pos[i0]
    normal = np.array([-edge[1], edge[0]]) / np.linalg.norm(edge)
    d2, d3 = (abs((mesh_pos[i] - mesh_pos[i0]) @ normal) for i in (i2, i3))
    z = np.zeros(len(mesh_pos))
    z[i2], z[i3] = 1e-3, 2e-3
    assert weights[0] @ z[nodes[0]] == pytest.approx(1e-3 / d2 + 2e-3 / d3)
    assert (factor > 0).all()


def test_scene_depends_only_on_seed_split_and_index():
    first = sample_scene(SMALL, 0, 1)
    assert first == sample_scene(dataclasses.replace(SMALL, num_train=50, num_workers=2), 0, 1)
    assert first != sample_scene(SMALL, 1, 1) and first != sample_scene(dataclasses.replace(SMALL, seed=1), 0, 1)
    # each part has its own random stream: the obstacle switch leaves the wind and the pose alone
    no_sphere = sample_scene(dataclasses.replace(SMALL, obstacle_fraction=0.0), 0, 1)
    assert (no_sphere.wind, no_sphere.yaw, no_sphere.handle_tilt) == (first.wind, first.yaw, first.handle_tilt)
    assert not no_sphere.has_obstacle


def test_obstacles_clear_the_sheet_and_the_pole():
    config = dataclasses.replace(SMALL, obstacle_fraction=1.0, moving_obstacle_fraction=1.0, handle_motion_fraction=1.0)
    mesh_pos, _, handles = cloth_mesh(config)
    times = np.arange(config.num_steps + 1) * config.frame_dt
    for index in range(5):
        scene = sample_scene(config, 0, index)
        assert scene.has_obstacle
        center = np.asarray(scene.obstacle_center)
        gap = np.linalg.norm(initial_positions(config, scene, mesh_pos) - center, axis=1).min()
        assert gap > scene.obstacle_radius + config.collision_margin
        trajectory = build_trajectory(config, scene, np.zeros((len(times), len(mesh_pos), 3)))
        pole = trajectory.handle_path  # (T, H, 3)
        assert (np.linalg.norm(pole - trajectory.obstacle_center[:, None], axis=-1) > scene.obstacle_radius).all()


def test_handle_path_starts_on_the_sheet_and_its_velocity_is_its_derivative():
    config = dataclasses.replace(SMALL, handle_motion_fraction=1.0)
    scene = sample_scene(config, 0, 0)
    mesh_pos, _, handles = cloth_mesh(config)
    times = np.linspace(0.0, 2.0, 2001)
    position, velocity = prescribed_handles(config, scene, mesh_pos[handles], times)  # (T, H, 3)
    np.testing.assert_allclose(position[0], initial_positions(config, scene, mesh_pos[handles]), atol=1e-15)
    assert np.abs(position - position[:1]).max() > 0.01  # it really moves
    central = (position[2:] - position[:-2]) / (times[2] - times[0])
    np.testing.assert_allclose(central, velocity[1:-1], atol=1e-4)
    # a rigid motion of the pole: distances between pole nodes never change
    np.testing.assert_allclose(np.linalg.norm(position[:, -1] - position[:, 0], axis=-1), config.height, rtol=1e-6)


def test_importing_the_solver_does_not_import_taichi():
    code = "import sys, gns.solvers.cloth; assert 'taichi' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------ simulation
def test_scene_result_does_not_depend_on_its_batch():
    pytest.importorskip("taichi")
    config = dataclasses.replace(SMALL, num_steps=30)
    scenes = [sample_scene(config, 0, i) for i in range(3)]
    alone = simulate_scenes(dataclasses.replace(config, scenes_per_batch=1), [scenes[1]])[0]
    batched = simulate_scenes(dataclasses.replace(config, scenes_per_batch=3), scenes)[1]
    np.testing.assert_array_equal(alone, batched)
    assert np.isfinite(batched).all()


def test_handles_follow_their_prescribed_path_exactly():
    pytest.importorskip("taichi")
    config = dataclasses.replace(SMALL, num_steps=30, handle_motion_fraction=1.0)
    scene = sample_scene(config, 0, 0)
    cloth = simulate_scenes(config, [scene])[0]
    trajectory = build_trajectory(config, scene, cloth)
    handles = np.flatnonzero(trajectory.node_type == HANDLE)
    assert len(handles) == config.nodes_v
    np.testing.assert_array_equal(cloth[:, handles], trajectory.handle_path)  # bit for bit, every frame
    assert np.abs(trajectory.handle_path[-1] - trajectory.handle_path[0]).max() > 0.01
    assert validate_trajectory(config, trajectory)["max_handle_error"] == 0.0


def test_free_sheet_falls_with_g():
    pytest.importorskip("taichi")
    result = free_fall_check(SMALL, duration=0.4)
    assert result["analytic_drop"] == pytest.approx(0.5 * 9.81 * 0.4 ** 2)
    # symplectic Euler: drop = g t^2 / 2 (1 + 1 / n) after n substeps, here n = 800
    assert result["relative_error"] < 2e-3
    assert result["max_edge_strain"] < 1e-9  # falling freely, the sheet is not deformed at all


def test_hanging_sheet_stretches_little_and_settles():
    pytest.importorskip("taichi")
    result = hanging_check(SMALL, duration=4.0)
    assert result["final_drop"] > 0.3  # it has swung down under its own weight
    assert result["max_edge_strain"] < 0.06  # while swinging
    assert result["final_max_edge_strain"] < 0.02  # hanging still
    assert result["final_to_peak_kinetic_energy"] < 0.05  # the air and the damping take the energy


def test_wind_blows_the_flag_into_a_sphere_without_penetration():
    pytest.importorskip("taichi")
    config = dataclasses.replace(SMALL, num_steps=60)
    # the flag starts along +x; the wind turns it by 37 degrees, into the sphere's way
    scene = ClothScene(yaw=0.0, wind=(4.0, 3.0, 0.0), obstacle_radius=0.2, obstacle_center=(0.7, 0.3, 0.3))
    cloth = simulate_scenes(config, [scene])[0]
    trajectory = build_trajectory(config, scene, cloth)
    report = validate_trajectory(config, trajectory)
    assert report["contact_frames"] > 5
    distance = np.linalg.norm(cloth - trajectory.obstacle_center[:, None], axis=-1)
    assert distance.min() >= scene.obstacle_radius + config.collision_margin - 1e-9
    assert report["max_penetration"] == 0.0
    # a touching node is within the world-edge radius of an obstacle node (contact is visible to the model)
    assert report["max_contact_to_vertex"] < config.world_edge_radius
    assert np.isfinite(trajectory.world_pos).all()


def test_obstacle_nodes_are_the_sphere_moved_along_its_path():
    config = dataclasses.replace(SMALL, obstacle_fraction=1.0, moving_obstacle_fraction=1.0)
    scene = sample_scene(config, 0, 0)
    times = np.arange(config.num_steps + 1)
    cloth = np.zeros((len(times), config.nodes_u * config.nodes_v, 3))
    trajectory = build_trajectory(config, scene, cloth)
    sphere = trajectory.node_type == OBSTACLE
    assert sphere.sum() == 42 and (trajectory.node_type[:len(cloth[0])] != OBSTACLE).all()
    distance = np.linalg.norm(trajectory.world_pos[:, sphere] - trajectory.obstacle_center[:, None], axis=-1)
    np.testing.assert_allclose(distance, scene.obstacle_radius)
    assert np.abs(trajectory.obstacle_center[-1] - trajectory.obstacle_center[0]).max() > 0.0
    assert trajectory.cells.max() == len(trajectory.node_type) - 1  # sphere faces index the sphere nodes


def test_edge_strain_of_a_stretched_sheet():
    mesh_pos, cells, _ = cloth_mesh(SMALL)
    world = np.concatenate([mesh_pos * np.array([1.1, 1.0]), np.zeros((len(mesh_pos), 1))], axis=1)[None]
    strain = edge_strain(world, mesh_pos, cells)
    assert strain.max() == pytest.approx(0.1) and strain.min() == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------------------ the dataset
def test_wind_velocity_follows_its_law():
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, size=(7, 5, 3))
    times = np.linspace(0.0, 3.0, 7)
    steady = wind_velocity(ClothScene(wind=(5.0, 1.0, 0.0)), points, times)
    np.testing.assert_array_equal(steady, np.broadcast_to([5.0, 1.0, 0.0], points.shape))
    # gust: the speed is modulated in time, the direction kept
    gusty = wind_velocity(ClothScene(wind=(4.0, 0.0, 0.0), gust=(0.3, 0.5, 1.0)), points, times)
    np.testing.assert_allclose(gusty[..., 0], np.broadcast_to(4.0 * (1 + 0.3 * np.sin(np.pi * times + 1.0))[:, None], (7, 5)))
    assert not gusty[..., 1:].any()
    # swing: the direction turns about z from the mean (zero at t = 0), the speed kept
    swung = wind_velocity(ClothScene(wind=(4.0, 0.0, 0.5), swing=(0.3, 0.2, 2.0)), points, times)
    np.testing.assert_allclose(np.linalg.norm(swung, axis=-1), np.hypot(4.0, 0.5))
    np.testing.assert_allclose(swung[0], np.broadcast_to([4.0, 0.0, 0.5], (5, 3)), atol=1e-12)
    assert np.abs(swung[1:, :, 1]).max() > 0.1 and np.allclose(swung[..., 2], 0.5)
    # turbulence: a frozen wave carried downwind at the mean speed
    scene = ClothScene(wind=(3.0, 4.0, 0.0), turbulence=(0.2, 1.5, 0.3))
    shift = 0.37
    moved = points + 5.0 * shift * np.array([0.6, 0.8, 0.0])
    np.testing.assert_allclose(wind_velocity(scene, moved, times + shift), wind_velocity(scene, points, times))
    speed = np.linalg.norm(wind_velocity(scene, points, times), axis=-1)
    assert speed.min() >= 5.0 * 0.8 - 1e-9 and speed.max() <= 5.0 * 1.2 + 1e-9 and speed.std() > 0.05


def test_generation_is_bit_identical_for_a_seed(datasets, read_splits):
    reference, again, other = (read_splits(d) for d in datasets)
    for split in reference:
        assert len(reference[split]) == len(again[split])
        for x, y in zip(reference[split], again[split]):
            np.testing.assert_array_equal(x.fields["world_pos"], y.fields["world_pos"])
            np.testing.assert_array_equal(x.cells, y.cells)
    assert not np.array_equal(reference["train"][0].fields["world_pos"][-1, :5],
                              other["train"][0].fields["world_pos"][-1, :5])


def test_dataset_reads_back_in_the_mesh_format(datasets, read_splits):
    from gns.data.mesh import load_mesh_metadata

    meta = load_mesh_metadata(datasets[0])
    assert (meta.domain, meta.mesh_dim, meta.cell_type) == ("cloth", 2, "triangle")
    assert meta.dt == TINY.frame_dt and meta.sequence_length == TINY.num_steps
    assert meta.target.field == "world_pos" and meta.target.order == 2 and meta.outputs == []
    # a steady wind (the default) is stored once per trajectory
    assert meta.inputs == ["wind"] and meta.fields["wind"].dim == 3 and not meta.fields["wind"].dynamic
    assert meta.node_types == {"NORMAL": NORMAL, "OBSTACLE": OBSTACLE, "HANDLE": HANDLE}
    assert meta.world_edge_radius == pytest.approx(TINY.world_edge_radius)
    generator = meta.generator
    assert generator["seed"] == TINY.seed and generator["config"] == TINY.to_dict()
    validation = generator["validation"]
    assert validation["trajectories"] == {"train": 2, "valid": 1, "test": 1}
    assert validation["finite"] and validation["max_handle_error"] == 0.0
    assert validation["max_obstacle_penetration"] == 0.0 and validation["with_obstacle"] == 4
    assert validation["free_fall"]["relative_error"] < 5e-3
    assert validation["hanging_still_air"]["final_to_peak_kinetic_energy"] < 0.05
    cloth_nodes = TINY.nodes_u * TINY.nodes_v
    mesh_pos, cells, handles = cloth_mesh(TINY)
    for split, trajectories in read_splits(datasets[0]).items():
        for index, trajectory in enumerate(trajectories):
            world_pos = trajectory.fields["world_pos"]
            assert world_pos.dtype == np.float32 and world_pos.shape[0] == TINY.num_steps + 1
            assert world_pos.shape[1:] == (cloth_nodes + 42, 3) and np.isfinite(world_pos).all()
            assert (trajectory.node_type[handles] == HANDLE).sum() == TINY.nodes_v
            assert (trajectory.node_type[cloth_nodes:] == OBSTACLE).all()
            np.testing.assert_array_equal(trajectory.mesh_pos[:cloth_nodes], mesh_pos.astype(np.float32))
            np.testing.assert_array_equal(trajectory.cells[:len(cells)], cells)
            # handles in the file are the prescribed path, cast to float32
            scene = sample_scene(TINY, ("train", "valid", "test").index(split), index)
            times = np.arange(TINY.num_steps + 1) * TINY.frame_dt
            path, _ = prescribed_handles(TINY, scene, mesh_pos[handles], times)
            np.testing.assert_array_equal(world_pos[:, handles], path.astype(np.float32))
            # the wind input: the scene's steady wind at every node (default config: no gusts)
            wind = trajectory.static_fields["wind"]
            assert wind.shape == world_pos.shape[1:] and wind.dtype == np.float32
            np.testing.assert_allclose(wind, np.broadcast_to(np.float32(scene.wind), wind.shape), rtol=1e-6)
            # no cloth node inside the sphere (float32 rounding aside)
            center, _ = prescribed_obstacle(scene, times)  # (T, 3)
            distance = np.linalg.norm(world_pos[:, :cloth_nodes] - center[:, None], axis=-1)
            assert distance.min() >= scene.obstacle_radius


def test_command_line_small_dataset(tmp_path, capsys):
    pytest.importorskip("taichi")
    main(["--out", str(tmp_path), "--small", "--seed", "3", "--workers", "1"])
    from gns.data.mesh import load_mesh_metadata

    assert load_mesh_metadata(tmp_path).generator["seed"] == 3
    assert "max_edge_strain" in capsys.readouterr().out
    assert math.isfinite(load_mesh_metadata(tmp_path).generator["validation"]["max_edge_strain"])


def test_an_unsteady_wind_is_stored_per_frame(tmp_path):
    pytest.importorskip("taichi")
    from gns.data.mesh import load_mesh_metadata, open_mesh_split

    config = dataclasses.replace(SMALL, num_steps=10, num_train=1, num_valid=0, num_test=0, obstacle_fraction=0.0,
                                 gust_amplitude_range=(0.2, 0.3), turbulence_amplitude_range=(0.1, 0.2))
    assert not config.steady_wind and SMALL.steady_wind
    generate_cloth(tmp_path, config, progress=False)
    meta = load_mesh_metadata(tmp_path)
    assert meta.inputs == ["wind"] and meta.fields["wind"].dynamic
    trajectory = open_mesh_split(tmp_path, "train")[0]
    world_pos, wind = trajectory.fields["world_pos"], trajectory.fields["wind"]
    assert wind.shape == world_pos.shape
    times = np.arange(config.num_steps + 1) * config.frame_dt
    want = wind_velocity(sample_scene(config, 0, 0), world_pos.astype(np.float64), times)
    np.testing.assert_allclose(wind, want, rtol=1e-5)
    assert wind[..., 0].std(axis=0).max() > 0.05 and wind[..., 0].std(axis=1).max() > 0.05  # varies in time and space
