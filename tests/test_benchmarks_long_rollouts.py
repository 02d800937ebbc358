"""Smoke tests of the long-rollout benchmarks on tiny data: they run and report every figure (no timing or
accuracy asserted: those live in the benchmarks' own runs and the docs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _run(*args, timeout=600):
    res = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=ENV, timeout=timeout)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    return res.stdout


def test_lever_table(bouncing_dataset, tmp_path):
    out = tmp_path / "levers"
    text = _run(BENCHMARKS / "long_rollouts.py", "--levers", "preset", "noise_3e-4", "--steps", "3", "--dataset",
                bouncing_dataset, "--out", out, "--threads", "1", "--jobs", "2")
    rows = [line for line in text.splitlines() if line.startswith("| preset") or line.startswith("| noise_3e-4")]
    assert len(rows) == 2, text
    result = json.loads((out / "noise_3e-4-s0" / "result.json").read_text())
    assert result["steps"] == 3 and result["overrides"] == ["train.noise_std=3e-4"]
    assert {"escape_max", "ke_window_factor_max", "full_mse", "multistart_ratio", "free_fall", "landing_spread",
            "rest_drift"} <= set(result)
    assert len(result["rest_drift"]["per_trajectory"]) == 2 == len(result["rest_drift"]["onset_step"])  # every test trajectory
    assert _run(BENCHMARKS / "long_rollouts.py", "--table", "--out", out).count("\n| ") == 2   # one row a run
    text = _run(BENCHMARKS / "long_rollouts.py", "--checks-of", out / "preset-s0" / "checkpoints" / "latest.pt",
                "--dataset", bouncing_dataset)
    assert "free fall x, y / g" in text and "landing spread" in text and "rest drift" in text


def test_lj3d_energy(tmp_path):
    out = tmp_path / "lj3d.json"
    text = _run(BENCHMARKS / "lj3d_energy.py", "--steps", "10", "--quick", "--out", tmp_path / "run", "--json", out)
    assert "predicted mean KE" in text
    result = json.loads(out.read_text())
    assert result["rollout_steps"] == 399 and len(result["energy_windows"]) == 8


def test_divergence_cost(tmp_path):
    text = _run(BENCHMARKS / "divergence_cost.py", "--repeats", "1", "--datasets", tmp_path / "none", "--threads", "1")
    assert "skipped" in text and "| test-sized particles (random weights) | 24 |" in text
