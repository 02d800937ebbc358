"""Smoke test of ``benchmarks/thread_contention.py`` (a tiny model, no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "thread_contention.py"


def test_thread_contention_runs_every_row(bouncing_dataset, tmp_path):
    out = tmp_path / "contention.json"
    tiny = ["--set", "model.latent_size=8", "--set", "model.message_passing_steps=1", "--set", "model.wall_spacing=0"]
    res = subprocess.run([sys.executable, str(SCRIPT), "--dataset", str(bouncing_dataset), *tiny, "--loads", "0", "1",
                          "--threads", "1", "--steps", "3", "--repeats", "1", "--settle", "0", "--json", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "| other 1-thread trainings" in res.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [(r["load"], r["threads"]) for r in rows] == [(0, 1), (1, 1)]
    for r in rows:
        assert r["default"] > 0 and r["PASSIVE"] > 0 and len(r["runs"]["PASSIVE"]) == 1
