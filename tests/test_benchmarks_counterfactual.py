"""Smoke tests of the counterfactual benchmarks on tiny data: they run and report every figure (no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

pytest.importorskip("taichi")


def test_counterfactual_speed_quick(tmp_path):
    out = tmp_path / "speed.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(BENCHMARKS / "counterfactual_speed.py"), "--quick", "--threads", "1",
                          "--datasets", str(tmp_path / "none"), "--water-checkpoint", str(tmp_path / "none.pt"),
                          "--cloth-checkpoint", str(tmp_path / "none.pt"), "--scratch", str(tmp_path / "scratch"),
                          "--particles", "200", "--json", str(out)], capture_output=True, text=True, env=env,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "one batch futures/s" in res.stdout
    data = json.loads(out.read_text())
    for domain in ("water", "cloth"):
        cells = data["domains"][domain]["cells"]
        assert [c["k"] for c in cells] == [1, 2]
        for cell in cells:
            assert cell["batched_futures_per_s"] > 0 and cell["sequential_futures_per_s"] > 0
            assert cell["futures"] == cell["k"] + 1


def test_counterfactual_accuracy_on_a_tiny_water_set(tmp_path, small_config, train_small):
    from gns.solvers.water2d import Water2DConfig, generate_water2d

    config = Water2DConfig(num_train=2, num_valid=1, num_test=1, num_steps=30, block_size_range=(0.1, 0.15),
                           min_blocks=2, num_workers=1, scenes_per_batch=2)
    dataset = generate_water2d(tmp_path / "datasets" / "water2d", config, progress=False)
    train_small(small_config(dataset, tmp_path / "runs" / "demo", "train.steps=2"))
    out = tmp_path / "accuracy.json"
    res = subprocess.run([sys.executable, str(BENCHMARKS / "counterfactual_accuracy.py"), "--domains", "water",
                          "--datasets", str(tmp_path / "datasets"), "--water-checkpoint",
                          str(tmp_path / "runs" / "demo" / "checkpoints" / "latest.pt"), "--json", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads(out.read_text())["water"]
    assert data["metric"] == "MSE" and len(data["per_trajectory"]) == 1
    assert data["run"] == str(tmp_path / "runs" / "demo" / "checkpoints" / "latest.pt")   # the model it was given
    answered = {name: entry for name, entry in data["averaged"].items() if entry}
    assert "remove_left" in answered or "still" in answered
    for entry in answered.values():
        assert set(entry["effect"]) >= {"model", "constant_velocity", "no_effect"}
        assert list(entry["counterfactual"]["model"]) == ["1", "5", "10", "20", "50", "100", "full"]
