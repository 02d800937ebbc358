"""Smoke test of ``benchmarks/render.py`` (a tiny rollout file, no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from gns.rollout_io import RolloutRecord, write_rollouts

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "render.py"


def test_render_benchmark_times_both_writers(tmp_path):
    position = np.random.default_rng(0).uniform(0.2, 0.8, size=(9, 30, 2))
    record = RolloutRecord("00000", {"predicted": {"position": position + 0.01}, "ground_truth": {"position": position}},
                           {"particle_type": np.full(30, 5)})
    rollouts = write_rollouts(tmp_path / "r.h5", [record], simulator="particles", domain="water2d", dt=0.0025,
                              target_field="position", info={"bounds": [[0, 1], [0, 1]]})
    out = tmp_path / "render.json"
    res = subprocess.run([sys.executable, str(SCRIPT), "--rollouts", str(rollouts), "--stride", "2", "--dpi", "30",
                          "--repeats", "1", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "| ours |" in res.stdout and "| matplotlib |" in res.stdout
    result = json.loads(out.read_text())
    assert result["frames"] == 5 and result["differing_pixels_max"] < 0.02
    assert all(len(t) == 1 and t[0] > 0 for t in result["seconds"].values())
    res = subprocess.run([sys.executable, str(SCRIPT), "--rollouts", str(tmp_path / "none.h5")], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2 and "none.h5" in res.stderr
