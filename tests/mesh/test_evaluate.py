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


def test_no_multistart_when_only_the_first_frame_fits(flow_dataset):
    simulator = _simulator(flow_dataset)
    split = open_mesh_split(flow_dataset, "test")
    summary = evaluate_split(simulator, split, horizons=(1, 20), start_stride=10, progress=False)
    assert "multistart" not in summary and "pressure_rmse" in summary["model"]
    summary = evaluate_split(simulator, split, horizons=(1, 5), start_stride=10, progress=False)
    assert summary["multistart"]["num_rollouts"] == 3 and "pressure_rmse" in summary["multistart"]["model"]
