"""Smoke test of the object planning benchmark on a tiny set and model: it runs and reports every figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

pytest.importorskip("pymunk")


def test_objects_planning_quick(objects_dataset, tmp_path, small_config, train_small):
    run = tmp_path / "run"
    train_small(small_config(objects_dataset, run, "train.steps=2"))
    out = tmp_path / "planning.json"
    res = subprocess.run([sys.executable, str(BENCHMARKS / "objects_planning.py"), "--quick", "--threads", "1",
                          "--checkpoint", str(run), "--dataset", str(objects_dataset), "--json", str(out)],
                         capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "planning success" in res.stdout and "learned futures/s" in res.stdout
    data = json.loads(out.read_text())
    assert set(data["planning"]["planners"]) == {"learned", "solver", "random"}
    assert data["planning"]["config"]["candidates"] == 4
    assert [c["k"] for c in data["futures"]] == [1, 2]
    for cell in data["futures"]:
        assert cell["learned_futures_per_s"] > 0 and cell["solver_futures_per_s"] > 0
    assert "loadavg_end" in data["machine"]
