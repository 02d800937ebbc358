"""Mesh evaluation: RMSE tables from the first frame and from many starts, against the baselines."""

from __future__ import annotations

import numpy as np
import pytest

from gns.config import load_config
from gns.data.mesh import load_mesh_metadata, open_mesh_split
from gns.evaluate import evaluate_split, format_table
from gns.mesh.simulator import MeshSimulator


def _simulator(dataset) -> MeshSimulator:
    config = load_config(None, ["model.latent_size=16", "model.message_passing_steps=1"])
    simulator = MeshSimulator(config.model, config.mesh, load_mesh_metadata(dataset))
    return simulator.eval()


def test_persistence_tables_match_a_direct_computation(cloth_dataset):
    simulator = _simulator(cloth_dataset)
    split = open_mesh_split(cloth_dataset, "test")
    summary = evaluate_split(simulator, split, horizons=(1, 5), start_stride=7, progress=False)
    world = split[0].fields["world_pos"].astype(np.float64)                  # (T, N, 3)
    simulated = split[0].node_type == 0
    k, frames = 2, world.shape[0]
    # first frame: persistence keeps frame k - 1
    for h in (1, 5):
        want = np.sqrt(((world[k - 1 + h, simulated] - world[k - 1, simulated]) ** 2).mean())
        assert summary["persistence"]["rmse"][str(h)] == pytest.approx(want, rel=1e-5)
    # many starts: rollouts of 5 steps from frames 0, 7, 14, 21
    multi = summary["multistart"]
    starts = list(range(0, frames - k - 5 + 1, 7))
    assert multi["num_rollouts"] == len(starts) == 4 and multi["start_stride"] == 7
    for h in (1, 5):
        err = [((world[t0 + k - 1 + h, simulated] - world[t0 + k - 1, simulated]) ** 2).mean() for t0 in starts]
        assert multi["persistence"]["rmse"][str(h)] == pytest.approx(np.sqrt(np.mean(err)), rel=1e-5)
    assert set(multi) >= {"model", "persistence", "constant_velocity"}
    # "full" of the multi-start table: the mean MSE over its 5 steps and every start, then the root
    err = [((world[t0 + k - 1 + h, simulated] - world[t0 + k - 1, simulated]) ** 2).mean() for t0 in starts
           for h in range(1, 6)]
    assert multi["persistence"]["rmse"]["full"] == pytest.approx(np.sqrt(np.mean(err)), rel=1e-5)
    text = format_table(summary)
    assert "4 rollouts started every 7 frames" in text
    # persistence keeps the first frame, whose largest strain is the truth's at that frame
    assert summary["persistence"]["edge_strain_max"] > 0 and "edge_strain_vs_truth_max" in summary["model"]
    # each trajectory's own largest strain, of which the summary's is the largest; on the training split, whose
    # three trajectories are rolled out as one batch, so that each row must take its own system's figure
    split = open_mesh_split(cloth_dataset, "train")
    summary = evaluate_split(simulator, split, horizons=(1, 5), progress=False)
    rows = summary["per_trajectory"]
    assert len(rows) == len(split) == 3 and all(set(r["extras"]) == {"model", "persistence", "constant_velocity"}
                                                for r in rows)
    for name in ("model", "persistence"):
        each = [r["extras"][name]["edge_strain_max"] for r in rows]
        assert summary[name]["edge_strain_max"] == max(each)
    for i, r in enumerate(rows):
        # persistence holds the cloth (NORMAL) nodes at frame k - 1 while the handle nodes follow their
        # prescribed motion: the largest strain over the rollout's frames, computed here
        system = split[i]
        edges = np.concatenate([system.cells[:, [a, b]] for a, b in ((0, 1), (1, 2), (2, 0))])
        cloth = (system.node_type[edges] != 1).all(1)                        # OBSTACLE = 1: not cloth
        s_, r_ = edges[cloth].T
        rest = np.linalg.norm(system.mesh_pos[s_] - system.mesh_pos[r_], axis=-1)
        world = system.fields["world_pos"]
        held = np.where((system.node_type == 0)[:, None], world[k - 1][None], world[k:])    # (S, N, 3)
        want = (np.linalg.norm(held[:, s_] - held[:, r_], axis=-1) / rest).max()
        assert r["extras"]["persistence"]["edge_strain_max"] == pytest.approx(float(want), rel=1e-5)


def test_no_multistart_when_only_the_first_frame_fits(flow_dataset):
    simulator = _simulator(flow_dataset)
    split = open_mesh_split(flow_dataset, "test")
    summary = evaluate_split(simulator, split, horizons=(1, 20), start_stride=10, progress=False)
    assert "multistart" not in summary and "pressure_rmse" in summary["model"]
    # each trajectory's shedding figures, of which the summary's are the mean
    rows = summary["per_trajectory"]
    assert len(rows) == len(split)
    for name in ("model", "persistence"):
        for key in ("strouhal_error", "shedding_amplitude_error", "strouhal_true"):
            assert summary[name][key] == pytest.approx(np.mean([r["extras"][name][key] for r in rows]), nan_ok=True)
    summary = evaluate_split(simulator, split, horizons=(1, 5), start_stride=10, progress=False)
    assert summary["multistart"]["num_rollouts"] == 3 and "pressure_rmse" in summary["multistart"]["model"]


def _mesh(mesh_pos, node_type, edges):
    import torch

    from gns.mesh.state import MeshState

    n = len(node_type)
    return MeshState(torch.tensor(mesh_pos, dtype=torch.float32), torch.tensor(node_type),
                     torch.tensor(edges).T, {}, torch.tensor([n]))


def _cylinder_channel():
    """Node positions and a state of a channel (walls at y = 0 and 1) with a cylinder of diameter 0.1 at (0.4, 0.5)."""
    from gns.mesh.types import NodeType

    walls = [[x, y] for x in np.linspace(0, 2, 11) for y in (0.0, 1.0)]
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    cylinder = [[0.4 + 0.05 * np.cos(a), 0.5 + 0.05 * np.sin(a)] for a in angles]
    fluid = [[x, y] for x in np.linspace(0.1, 1.9, 19) for y in np.linspace(0.1, 0.9, 9)]
    pos = walls + cylinder + fluid
    types = [int(NodeType.WALL_BOUNDARY)] * (len(walls) + len(cylinder)) + [int(NodeType.NORMAL)] * len(fluid)
    return pos, _mesh(pos, types, [[0, 1]])


def test_edge_strain_against_direct_code():
    import torch

    from gns.mesh.evaluate import edge_strain_max

    # a 1 m edge between cloth nodes, a 2 m edge to a handle, an edge to an obstacle node (ignored)
    state = _mesh([[0, 0], [1, 0], [1, 2], [5, 5]], [0, 0, 3, 1], [[0, 1], [1, 0], [1, 2], [2, 1], [0, 3], [3, 0]])
    position = torch.zeros(4, 2, 3)
    position[1, :, 0] = torch.tensor([1.0, 1.1])          # the 1 m edge stretches to 1.1 m at step 2
    position[2, :, :2] = torch.tensor([1.0, 2.0])         # the 2 m edge stays at rest length
    position[3, :, 0] = 100.0                             # the obstacle is far: not an edge of the cloth
    assert edge_strain_max(position, state).tolist() == pytest.approx([1.1])


def test_shedding_frequency_and_amplitude_of_a_known_signal():
    import numpy as np
    import torch

    from gns.mesh.evaluate import PROBE_DIAMETERS, shedding

    pos, state = _cylinder_channel()
    dt, frequency, amplitude = 0.01, 3.3, 0.4
    t = np.arange(200) * dt
    velocity = torch.zeros(len(pos), 200, 2, dtype=torch.float64)
    velocity[:, :, 1] = torch.tensor(0.1 + amplitude * np.sin(2 * np.pi * frequency * t + 0.3))
    (got,) = shedding(velocity, state, dt)
    assert got["frequency"] == pytest.approx(frequency, rel=0.01)
    assert got["amplitude"] == pytest.approx(amplitude, rel=0.03)
    assert got["diameter"] == pytest.approx(0.1, rel=0.01)
    probe = np.array(pos[got["probe"]])
    assert probe == pytest.approx([0.4 + PROBE_DIAMETERS * 0.1, 0.5], abs=0.06)
    velocity[:, :, 1] = 0.2                                  # no shedding: no frequency, no amplitude
    (still,) = shedding(velocity, state, dt)
    assert still["frequency"] == 0 and still["amplitude"] == 0          # scored as 100% off, never NaN


def test_shedding_errors_when_one_side_does_not_shed():
    """A prediction that does not shed is 100% off; a truth that does not shed within the rollout (too short
    to measure) gives NaN for that rollout, never a crash."""
    import torch

    from gns.mesh.evaluate import MeshEvaluation

    pos, state = _cylinder_channel()
    evaluation = MeshEvaluation.__new__(MeshEvaluation)
    evaluation.simulator = type("Flow", (), {"lagrangian": False})()
    evaluation.target_field, evaluation.dt = "velocity", 0.01
    t = torch.arange(200, dtype=torch.float64) * 0.01
    shedding_field = torch.zeros(len(pos), 200, 2, dtype=torch.float64)
    shedding_field[:, :, 1] = 0.4 * torch.sin(2 * np.pi * 3.3 * t)
    steady = torch.full_like(shedding_field, 0.2)
    out = evaluation.extra_metrics({"velocity": steady}, {"velocity": shedding_field}, state, None)
    assert float(out["strouhal_error"][0]) == 1.0 and float(out["shedding_amplitude_error"][0]) == 1.0
    out = evaluation.extra_metrics({"velocity": shedding_field}, {"velocity": steady}, state, None)
    assert np.isnan(float(out["strouhal_error"][0])) and np.isnan(float(out["shedding_amplitude_error"][0]))


def test_multistart_from_frame_0_reuses_the_first_frame_rollouts(cloth_dataset, monkeypatch):
    """The multi-start rollouts from frame 0 are the first-frame rollouts' first steps: the model is not rolled
    from frame 0 twice, and the table is the one of rolling it again (a first-frame rollout too short to reuse)."""
    import gns.evaluate as evaluate

    simulator = _simulator(cloth_dataset)
    split = open_mesh_split(cloth_dataset, "test")
    rolled, plain_rollout = [], evaluate.rollout

    def counting(stepper, initial, steps, *args, **kwargs):
        if stepper is simulator:
            rolled.append((initial.num_systems, steps))
        return plain_rollout(stepper, initial, steps, *args, **kwargs)

    monkeypatch.setattr(evaluate, "rollout", counting)
    reused = evaluate_split(simulator, split, horizons=(1, 5), start_stride=7, progress=False)
    frames = split[0].fields["world_pos"].shape[0]
    assert rolled == [(1, frames - 2), (3, 5)]                          # starts 7, 14, 21 only
    rolled.clear()
    again = evaluate_split(simulator, split, horizons=(1, 5), start_stride=7, progress=False, num_steps=3)
    assert rolled == [(1, 3), (4, 5)]                                   # 3 < 5 steps: frame 0 rolled again
    assert reused["multistart"]["num_rollouts"] == again["multistart"]["num_rollouts"] == 4
    for name in ("model", "persistence"):
        for h, value in again["multistart"][name]["rmse"].items():
            assert reused["multistart"][name]["rmse"][h] == pytest.approx(value, rel=1e-5), (name, h)


def test_a_named_projection_is_reported_in_the_summary_and_the_table(cloth_dataset):
    simulator = _simulator(cloth_dataset)
    split = open_mesh_split(cloth_dataset, "test")
    plain = evaluate_split(simulator, split, horizons=(1, 5), progress=False)
    assert "projections" not in plain and "projection" not in format_table(plain)
    simulator.limit_strain(1.05)
    limited = evaluate_split(simulator, split, horizons=(1, 5), start_stride=7, progress=False)
    done = limited["projections"]["strain_limit"]
    # every step of the model's rollouts went through it: the first-frame one, then the later starts (7, 14, 21)
    # rolled out together, one batch of 5 steps
    assert done["limit"] == 1.05 and done["steps"] == limited["steps"] + 5
    assert "projection (a named option, not the model alone): strain limit 1.05" in format_table(limited)
    # the baselines are not projected
    assert limited["persistence"]["rmse"] == plain["persistence"]["rmse"]
