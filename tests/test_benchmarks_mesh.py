"""Smoke test of ``benchmarks/mesh_throughput.py --quick``: it runs, and its JSON holds every figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "mesh_throughput.py"

CASE_KEYS = {"label", "case", "nodes", "mesh_edges", "world_edges", "mesh_edges_per_node", "world_edges_per_node",
             "grid", "parameters", "timing", "train_steps_per_s", "train_node_steps_per_s", "rollout_steps_per_s",
             "rollout_node_steps_per_s", "background_cores", "breakdown_s", "breakdown_background_cores"}
BREAKDOWN_KEYS = {"world-edge search", "features", "normalizers", "graph building", "network forward",
                  "noise, target, loss", "backward", "optimizer", "step"}


def test_mesh_throughput_quick(tmp_path):
    out = tmp_path / "mesh.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--json", str(out)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "| config" in res.stdout and "rollout node-steps/s" in res.stdout
    data = json.loads(out.read_text())
    assert {"machine", "args", "domains", "wall_seconds"} <= set(data)
    assert set(data["domains"]) == {"cloth", "flow"}
    for domain, result in data["domains"].items():
        assert {"base", "metadata", "preset", "cases"} <= set(result)
        labels = [case["label"] for case in result["cases"]]
        assert any("batch 2" in label for label in labels), labels
        for case in result["cases"]:
            assert CASE_KEYS <= set(case), (domain, CASE_KEYS - set(case))
            assert set(case["timing"]) == {"train", "rollout"}
            assert set(case["breakdown_s"]) == BREAKDOWN_KEYS
            assert case["train_steps_per_s"] > 0 and case["rollout_node_steps_per_s"] > 0
            assert case["rollout_node_steps_per_s"] == pytest.approx(case["nodes"] * case["rollout_steps_per_s"])
    cloth = data["domains"]["cloth"]["cases"]
    with_world = [c for c in cloth if c["case"]["world_edges"]]
    without = [c for c in cloth if not c["case"]["world_edges"]]
    assert with_world and without
    assert all(c["world_edges"] > 0 for c in with_world) and all(c["world_edges"] == 0 for c in without)
    assert all(c["breakdown_s"]["world-edge search"] > 0 for c in with_world)
    memory = cloth[0]["memory"]                          # --quick measures the first configuration only
    assert set(memory) == {"train", "rollout"}
    assert all("error" not in m and m["peak_rss_delta_mib"] >= 0 for m in memory.values()), memory


def test_mesh_speed_ratio_of_a_half_speed_rollout(tmp_path):
    from gns.mesh.export import mesh_record
    from gns.rollout_io import write_rollouts

    rng = np.random.default_rng(0)
    truth = np.cumsum(rng.normal(size=(12, 6, 3)), axis=0).astype(np.float32)     # (T, N, 3) random walk
    predicted = truth.copy()
    predicted[1:] = truth[1] + 0.5 * (truth[1:] - truth[1])                          # half the motion after frame 1
    node_type = np.array([0, 0, 0, 0, 3, 3], dtype=np.int32)                         # handles are not counted
    predicted[:, 4:] = truth[:, 4:] * 7
    rollout = mesh_record("00000", rng.normal(size=(6, 2)).astype(np.float32),
                          np.array([[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]], dtype=np.int32),
                          node_type, {"world_pos": predicted}, {"world_pos": truth})
    path = write_rollouts(tmp_path / "r.h5", [rollout], simulator="mesh", domain="cloth", dt=0.02,
                          target_field="world_pos")
    res = subprocess.run([sys.executable, str(SCRIPT.with_name("mesh_speed.py")), str(path), "--steps", "1", "5"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "00000:  0.50  0.50" in res.stdout and "range per step: 0.50-0.50 0.50-0.50" in res.stdout


def _load_frame_smoothness():
    import importlib.util

    spec = importlib.util.spec_from_file_location("frame_smoothness", SCRIPT.with_name("frame_smoothness.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_frame_smoothness_tells_resolved_motion_from_aliased_vibration():
    smoothness = _load_frame_smoothness().smoothness
    t = np.arange(200)[:, None, None]
    resolved = np.sin(2 * np.pi * t / 40) * np.ones((1, 5, 3))      # 40 frames a period
    aliased = np.sin(2 * np.pi * t * 0.49) * np.ones((1, 5, 3))     # just under the frame rate's Nyquist limit
    assert smoothness(resolved)["lag1"] == pytest.approx(np.cos(2 * np.pi / 40), abs=1e-3)
    assert smoothness(aliased)["lag1"] < -0.9
    still = smoothness(np.zeros((10, 2, 3)))
    assert still["acceleration_rms"] == 0 and np.isnan(still["lag1"])
    with pytest.raises(ValueError, match="T >= 4"):
        smoothness(np.zeros((3, 2, 3)))


def test_frame_smoothness_cli_on_a_cloth_dataset(cloth_dataset):
    res = subprocess.run([sys.executable, str(SCRIPT.with_name("frame_smoothness.py")), str(cloth_dataset)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    row = res.stdout.strip().splitlines()[-1]
    assert str(cloth_dataset) in row and "(train)" in row
