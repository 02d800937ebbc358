"""Flow2D reference solver: mesh and node types, boundary values, physics checks, the written dataset."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from gns.errors import GnsInputError
from gns.solvers.flow2d import (
    INFLOW,
    NODE_TYPES,
    NORMAL,
    OUTFLOW,
    WALL_BOUNDARY,
    CylinderCase,
    Flow2DConfig,
    FlowDiscretisation,
    _import_optional,
    cylinder_force,
    dfg_case,
    dfg_steady_benchmark,
    dfg_unsteady_benchmark,
    generate_flow2d,
    main,
    mesh_channel,
    poiseuille_check,
    sample_case,
    shedding_analysis,
    simulate_case,
    solve_steady,
)

pytest.importorskip("skfem")
pytest.importorskip("triangle")

SMALL = Flow2DConfig.small()
# A coarse mesh for the physics checks (a few hundred nodes): seconds, not minutes.
COARSE = dataclasses.replace(Flow2DConfig(), mesh_size=0.05, cylinder_mesh_size=0.016, mesh_grading=0.2)


@pytest.fixture(scope="module")
def datasets(generate_three):
    """The small dataset three times: reference (1 process), same seed on 2 workers, another seed."""
    return generate_three(generate_flow2d, SMALL, "flow2d", num_workers=2)


# ------------------------------------------------------------------------------ config and cases
def test_config_rejects_bad_values():
    with pytest.raises(GnsInputError, match="min_wall_gap"):
        Flow2DConfig(radius_range=(0.1, 0.15))  # cannot keep clear of both walls
    with pytest.raises(GnsInputError, match="time_order"):
        Flow2DConfig(time_order=4)
    with pytest.raises(GnsInputError, match="spinup_time"):
        Flow2DConfig(spinup_time=0.1, kick_duration=0.2)
    with pytest.raises(GnsInputError, match="cylinder_mesh_size"):
        Flow2DConfig(cylinder_mesh_size=0.05, mesh_size=0.04)


def test_case_depends_only_on_seed_split_and_index():
    config = Flow2DConfig()
    first = sample_case(config, 0, 3)
    assert first == sample_case(dataclasses.replace(config, num_train=100, num_workers=1), 0, 3)
    assert first != sample_case(config, 1, 3)
    assert first != sample_case(dataclasses.replace(config, seed=5), 0, 3)
    for index in range(50):
        case = sample_case(config, 0, index)
        (x, y), r = case.center, case.radius
        assert config.radius_range[0] <= r <= config.radius_range[1]
        assert min(y - r, config.channel_height - y - r) >= config.min_wall_gap - 1e-12
        assert config.center_x_range[0] <= x <= config.center_x_range[1]
        assert 88 < case.reynolds(config.viscosity) < 201  # the documented Re range


def test_importing_the_solver_imports_no_optional_dependency():
    code = ("import sys, gns.solvers, gns.solvers.flow2d; "
            "assert 'skfem' not in sys.modules and 'triangle' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", ["triangle", "skfem"])
def test_missing_dependency_names_the_extra(monkeypatch, name):
    monkeypatch.setitem(sys.modules, name, None)  # makes `import <name>` raise ImportError
    with pytest.raises(ImportError, match=r'pip install "gns\[solvers\]"'):
        _import_optional(name)


def test_node_type_ids_match_the_mesh_format():
    from gns.data.mesh import NODE_TYPES as FORMAT_NODE_TYPES

    assert all(FORMAT_NODE_TYPES[name] == value for name, value in NODE_TYPES.items())


# ------------------------------------------------------------------------------ mesh and node types
def test_mesh_and_node_types_sit_on_the_right_boundaries():
    case = sample_case(SMALL, 0, 0)
    points, cells = mesh_channel(case, SMALL.mesh_size, SMALL.cylinder_mesh_size, SMALL.mesh_grading)
    assert 100 <= len(points) <= 250  # the small config's size
    disc = FlowDiscretisation(points, cells, case)
    node_type = disc.node_type
    x, y = points.T
    length, height = case.length, case.height
    tol = 1e-12
    on_cylinder = np.abs(np.hypot(x - case.center[0], y - case.center[1]) - case.radius) < 1e-9
    on_wall = (y < tol) | (y > height - tol) | on_cylinder
    on_inflow, on_outflow = x < tol, x > length - tol
    assert set(np.unique(node_type)) == {NORMAL, INFLOW, OUTFLOW, WALL_BOUNDARY}
    np.testing.assert_array_equal(node_type == WALL_BOUNDARY, on_wall)  # corners included
    np.testing.assert_array_equal(node_type == INFLOW, on_inflow & ~on_wall)
    np.testing.assert_array_equal(node_type == OUTFLOW, on_outflow & ~on_wall)
    np.testing.assert_array_equal(node_type == NORMAL, ~(on_wall | on_inflow | on_outflow))
    corners = [(0, 0), (length, 0), (length, height), (0, height)]
    for corner in corners:  # exact mesh vertices, typed as walls
        index = np.flatnonzero(np.hypot(x - corner[0], y - corner[1]) < tol)
        assert len(index) == 1 and node_type[index[0]] == WALL_BOUNDARY
    a, b, c = (points[cells[:, i]] for i in range(3))
    signed = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    assert (signed > 0).all()  # counter-clockwise


def test_mesh_refines_towards_the_cylinder():
    case = dfg_case(1.5)
    points, cells = mesh_channel(case, 0.035, 0.013)
    edges = np.linalg.norm(points[cells] - np.roll(points[cells], 1, axis=1), axis=2)  # (C, 3)
    distance = np.hypot(*(points[cells].mean(axis=1) - np.asarray(case.center)).T) - case.radius
    assert edges[distance < 0.02].mean() < 0.6 * edges[distance > 0.5].mean()


# ------------------------------------------------------------------------------ physics
def test_poiseuille_flow_is_reproduced_exactly():
    # P2 velocity / P1 pressure contain the parabola and the linear pressure: errors are round-off.
    result = poiseuille_check(COARSE, peak_velocity=1.3)
    assert result["velocity_error"] < 1e-9
    assert result["pressure_error"] < 1e-8


def test_time_stepping_keeps_poiseuille_flow_steady():
    # An empty channel started from Stokes (= Poiseuille) flow must stay there under SBDF3 with
    # explicit convection, whose term vanishes for this flow.
    config = dataclasses.replace(COARSE, spinup_time=0.02, kick_duration=0.01)
    case = CylinderCase(length=0.8, height=0.41, center=(0.0, 0.0), radius=0.0, peak_velocity=1.0)
    result = simulate_case(config, case, num_steps=5, substeps=4)
    y = result.mesh_pos[:, 1]
    exact = 4.0 * y * (0.41 - y) / 0.41 ** 2
    np.testing.assert_allclose(result.velocity[..., 0], np.broadcast_to(exact, result.velocity.shape[:2]),
                               atol=1e-9)
    np.testing.assert_allclose(result.velocity[..., 1], 0.0, atol=1e-9)
    assert result.report["continuity_residual"] < 1e-10


def test_dfg_2d1_drag_on_a_coarse_mesh():
    # Schaefer & Turek (1996) steady Re 20: drag coefficient 5.5795, pressure difference 0.11752.
    result = dfg_steady_benchmark(COARSE)
    assert result["nodes"] < 1200
    assert result["relative_error"]["drag_coefficient"] < 0.02
    assert result["relative_error"]["pressure_difference"] < 0.03
    assert abs(result["lift_coefficient"]) < 0.03


def test_dfg_2d2_sheds_at_the_benchmark_strouhal_number_on_a_coarse_mesh():
    # Schaefer & Turek (1996) periodic Re 100: St 0.295-0.305. About 600 nodes, 2.4 periods after a
    # 0.5 s kicked spin-up: a few seconds.
    config = dataclasses.replace(Flow2DConfig(), mesh_size=0.06, cylinder_mesh_size=0.02, mesh_grading=0.25)
    result = dfg_unsteady_benchmark(config, spinup_time=0.5, duration=0.8)
    assert result["nodes"] < 800
    assert result["strouhal"] == pytest.approx(0.3, rel=0.07)
    assert 2.9 < result["max_drag_coefficient"] < 3.4


def test_steady_solution_is_divergence_free_and_force_is_a_drag():
    case = dfg_case(0.3)
    points, cells = mesh_channel(case, COARSE.mesh_size, COARSE.cylinder_mesh_size, COARSE.mesh_grading)
    disc = FlowDiscretisation(points, cells, case)
    x, info = solve_steady(disc, 1e-3, max_iterations=3)
    measures = disc.divergence_measures(*disc.split(x)[:2])
    assert measures["continuity_residual"] < 1e-10  # the discrete continuity equation holds
    assert measures["divergence_l2"] < 0.05         # Taylor-Hood: weakly, not pointwise, solenoidal
    drag, _ = cylinder_force(disc, x, 1e-3)
    assert drag > 0


def test_shedding_analysis_recovers_a_known_frequency():
    case = dfg_case(1.5)  # D = 0.1, U_mean = 1
    dt = 1e-3
    t = np.arange(3000) * dt
    lift = 0.05 * np.sin(2 * np.pi * 3.0 * t + 0.3)          # 3 Hz -> St 0.3; C_L = 20 F
    drag = 0.16 + 0.001 * np.sin(2 * np.pi * 6.0 * t)
    result = shedding_analysis(drag, lift, case, dt)
    assert result["strouhal"] == pytest.approx(0.3, rel=1e-3)
    assert result["lift_coefficient_max"] == pytest.approx(1.0, rel=1e-3)  # 2 F / (U^2 D)
    assert result["amplitude_growth"] == pytest.approx(1.0, rel=1e-2)
    assert shedding_analysis(drag, 1e-6 * lift, case, dt)["strouhal"] is None  # a steady wake


# ------------------------------------------------------------------------------ the dataset
def test_generation_is_deterministic_and_worker_independent(datasets, read_splits):
    reference, again, other = (read_splits(d) for d in datasets)
    for split in reference:
        assert len(reference[split]) == len(again[split]) == SMALL.split_sizes[split]
        for a, b in zip(reference[split], again[split]):
            for name in ("mesh_pos", "cells", "node_type"):
                np.testing.assert_array_equal(a.array(name), b.array(name))
            for name in ("velocity", "pressure"):
                np.testing.assert_array_equal(a.fields[name], b.fields[name])
    assert not np.array_equal(reference["train"][0].mesh_pos[:20], other["train"][0].mesh_pos[:20])


def test_dataset_layout_and_metadata(datasets, read_splits):
    from gns.data.mesh import load_mesh_metadata

    meta = load_mesh_metadata(datasets[0])
    assert meta.domain == "flow" and meta.cell_type == "triangle" and meta.mesh_dim == 2
    assert meta.dt == SMALL.frame_dt and meta.sequence_length == SMALL.num_steps
    assert meta.node_types == NODE_TYPES
    assert meta.target.field == "velocity" and meta.target.order == 1 and meta.outputs == ["pressure"]
    assert {name: (spec.dim, spec.dynamic) for name, spec in meta.fields.items()} == {
        "velocity": (2, True), "pressure": (1, True)}
    generator = meta.generator
    assert generator["seed"] == SMALL.seed and generator["config"] == SMALL.to_dict()
    validation = generator["validation"]
    assert validation["trajectories"] == {"train": 2, "valid": 1, "test": 1}
    assert validation["finite"] and validation["retries"] == 0
    assert validation["continuity_residual_max"] < 1e-10
    assert len(validation["per_trajectory"]) == 4
    for trajectories in read_splits(datasets[0]).values():
        for traj in trajectories:
            frames, nodes = SMALL.num_steps + 1, len(traj.mesh_pos)
            assert traj.fields["velocity"].shape == (frames, nodes, 2)
            assert traj.fields["pressure"].shape == (frames, nodes, 1)
            assert traj.cells.shape[1] == 3 and traj.mesh_pos.dtype == np.float32
            assert np.isfinite(traj.fields["velocity"]).all() and np.isfinite(traj.fields["pressure"]).all()


def test_boundary_values_in_the_written_data(datasets, read_splits):
    from gns.data.mesh import load_mesh_metadata

    records = load_mesh_metadata(datasets[0]).generator["validation"]["per_trajectory"]
    cases = {(r["split"], r["index"]): r for r in records}
    for split, trajectories in read_splits(datasets[0]).items():
        for index, traj in enumerate(trajectories):
            velocity, node_type = traj.fields["velocity"], traj.node_type
            assert (velocity[:, node_type == WALL_BOUNDARY] == 0).all()  # no-slip, walls and cylinder
            record = cases[(split, index)]
            y = traj.mesh_pos[node_type == INFLOW, 1].astype(np.float64)
            profile = 4 * record["peak_velocity"] * y * (SMALL.channel_height - y) / SMALL.channel_height ** 2
            inflow = velocity[:, node_type == INFLOW]
            np.testing.assert_allclose(inflow[..., 0], np.broadcast_to(profile, inflow.shape[:2]), rtol=1e-6)
            assert (inflow[..., 1] == 0).all()
            # the flow moves: interior velocities change from frame to frame
            interior = node_type == NORMAL
            assert np.abs(np.diff(velocity[:, interior], axis=0)).max() > 1e-4


def test_command_line_small_dataset(tmp_path, capsys):
    from gns.data.mesh import load_mesh_metadata

    main(["--out", str(tmp_path), "--small", "--seed", "3"])
    assert load_mesh_metadata(tmp_path).generator["seed"] == 3
    assert "wrote" in capsys.readouterr().out
