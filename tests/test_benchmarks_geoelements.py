"""Smoke tests of ``benchmarks/geoelements.py``: loading a geoelements/gns checkout by path under another
package name, both training steps on the same (tiled) windows, the tables; no timing asserted.

geoelements/gns is never vendored: the first test runs against a stand-in checkout written here (their
module layout and call signatures, a tiny model); the second against a real checkout when
``GNS_GEOELEMENTS_CHECKOUT`` names one (with datasets/water2d present).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "geoelements.py"
ENV = dict(os.environ, OMP_NUM_THREADS="1")

STAND_IN = {
    "graph_network.py": '''
from torch import nn


class Mlp(nn.Sequential):
    def __init__(self, width_in, width_out):
        super().__init__(nn.Linear(width_in, 8), nn.ReLU(), nn.Linear(8, width_out))
''',
    "learned_simulator.py": '''
import torch
from torch import nn
from gns import graph_network


def radius_graph(*args, **kwargs):
    raise ImportError("stand-in: no native neighbour search")


class LearnedSimulator(nn.Module):
    def __init__(self, particle_dimensions, nnode_in, nedge_in, latent_dim, nmessage_passing_steps, nmlp_layers,
                 mlp_hidden_dim, connectivity_radius, boundaries, normalization_stats, nparticle_types,
                 particle_type_embedding_size, boundary_clamp_limit=1.0, device="cpu"):
        super().__init__()
        self._radius, self._stats = connectivity_radius, normalization_stats
        self._net = graph_network.Mlp(5 * particle_dimensions + 1, particle_dimensions)

    def predict_accelerations(self, next_positions, position_sequence_noise, position_sequence,
                              nparticles_per_example, particle_types, material_property=None):
        noisy = position_sequence + position_sequence_noise
        batch = torch.repeat_interleave(torch.arange(len(nparticles_per_example)), nparticles_per_example)
        edges = radius_graph(noisy[:, -1], r=self._radius, batch=batch, loop=True, max_num_neighbors=128)
        degree = torch.bincount(edges[1], minlength=len(noisy)).float()[:, None]
        velocity = (noisy[:, 1:] - noisy[:, :-1]) / self._stats["velocity"]["std"]
        predicted = self._net(torch.cat([velocity.flatten(1), degree], dim=-1))
        acceleration = next_positions + position_sequence_noise[:, -1] - 2 * noisy[:, -1] + noisy[:, -2]
        return predicted, (acceleration - self._stats["acceleration"]["mean"]) / self._stats["acceleration"]["std"]
''',
    "noise_utils.py": '''
import torch
from gns import learned_simulator


def get_random_walk_noise_for_position_sequence(position_sequence, noise_std_last_step):
    steps = position_sequence.shape[1] - 1
    noise = torch.randn(position_sequence[:, 1:].shape) * (noise_std_last_step / steps ** 0.5)
    noise = torch.cumsum(noise, dim=1)
    return torch.cat([torch.zeros_like(noise[:, :1]), torch.cumsum(noise, dim=1)], dim=1)
''',
    "train.py": '''
from absl import flags   # never imported by the benchmark: it reads acceleration_loss from the source


def acceleration_loss(pred_acc, target_acc, non_kinematic_mask):
    loss = ((pred_acc - target_acc) ** 2).sum(dim=-1)
    num_non_kinematic = non_kinematic_mask.sum()
    loss = torch.where(non_kinematic_mask.bool(), loss, torch.zeros_like(loss))
    return loss.sum() / num_non_kinematic
''',
}


def test_geoelements_against_a_stand_in_checkout(bouncing_dataset, tmp_path):
    checkout = tmp_path / "geoelements_gns"
    (checkout / "gns").mkdir(parents=True)
    for name, text in STAND_IN.items():
        (checkout / "gns" / name).write_text(text)
    out = tmp_path / "geo.json"
    res = subprocess.run([sys.executable, str(SCRIPT), str(checkout), "--dataset", str(bouncing_dataset),
                          "--particles", "48", "180", "--starts", "0", "20", "--ours-variants", "plain", "--repeats",
                          "1", "--target-seconds", "0.05", "--max-background", "0", "--threads", "1", "--no-check",
                          "--json", str(out)], capture_output=True, text=True, timeout=600, env=ENV)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "REPLACED by gns.neighbors.radius_graph" in res.stdout
    assert "NOT the pinned" in res.stdout and "not a git checkout" in res.stdout
    data = json.loads(out.read_text())
    small, tiled = data["sizes"]["48"], data["sizes"]["180"]
    assert (small["tiles"], small["particles_per_graph"]) == (1, 24)
    assert (tiled["tiles"], tiled["particles_per_graph"]) == (2, 96)      # 24 x 2 x 2 a graph, nearest 90
    for size in (small, tiled):
        assert set(size["timing"]) == {"ours", "geoelements/gns"}
        assert all(t["median_s"] > 0 for t in size["timing"].values())
        assert all(m["peak_rss_delta_mib"] >= 0 for m in size["memory"].values()), size["memory"]
    assert "tiled 2 x 2" in res.stdout and "| step" in res.stdout


@pytest.mark.skipif(not os.environ.get("GNS_GEOELEMENTS_CHECKOUT")
                    or not (REPO / "datasets" / "water2d" / "train.h5").exists(),
                    reason="set GNS_GEOELEMENTS_CHECKOUT to a geoelements/gns checkout (and generate datasets/water2d)")
def test_geoelements_real_checkout_computes_our_function():
    """With the same weights, their network and ours give the same normalized accelerations."""
    res = subprocess.run([sys.executable, str(SCRIPT), os.environ["GNS_GEOELEMENTS_CHECKOUT"], "--quick",
                          "--particles", "600", "--ours-variants", "plain", "--threads", "1", "--max-background", "0"],
                         capture_output=True, text=True, timeout=900, env=ENV)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    line = next(x for x in res.stdout.splitlines() if x.startswith("same weights"))
    assert float(line.split("= ")[1].split()[0]) < 1e-4, line
