"""Smoke test of ``benchmarks/objects_counterfactual.py --quick``: it trains, answers every kind, reports every
figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "objects_counterfactual.py"

pytest.importorskip("pymunk")


def test_objects_counterfactual_quick(tmp_path):
    out = tmp_path / "cf.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--dataset",
                          str(tmp_path / "objects"), "--run", str(tmp_path / "run"), "--json", str(out)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "effect MSE against the solver" in res.stdout and "collision outcome under intervention" in res.stdout
    data = json.loads(out.read_text())
    assert data["model"]["train_steps"] == 5 and len(data["states"]) == 2
    columns = [*map(str, data["horizons"]), "full"]
    answered = {kind: entry for kind, entry in data["aggregated"].items() if entry.get("states")}
    assert set(answered) == {"remove", "move", "resize", "reweigh", "kick", "set_velocity", "actions"}
    for entry in answered.values():
        assert set(entry["effect"]) == {"model", "constant_velocity", "no_effect"}
        assert list(entry["effect"]["model"]) == columns and list(entry["effect_angle"]["model"]) == columns
        assert 0.0 <= entry["collisions"]["agreement"]["model"]["full"] <= 1.0
    assert data["aggregated"]["all"]["collisions"]["pairs"] > 0
    assert data["aggregated"]["set_velocity"]["true_effect_distance"]["full"] > 0       # the solver's future changed
