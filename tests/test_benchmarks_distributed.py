"""Smoke test of ``benchmarks/distributed_scaling.py --quick``: 1 and 2 gloo ranks train, and every figure is kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "distributed_scaling.py"


def test_distributed_scaling_quick(bouncing_dataset, tmp_path):
    out = tmp_path / "scaling.json"
    tiny = ["--set", "model.latent_size=16", "--set", "model.message_passing_steps=2", "--set", "model.hidden_layers=1"]
    res = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--dataset", str(bouncing_dataset), *tiny,
                          "--json", str(out)], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "| ranks" in res.stdout and "samples/s with 2 ranks / with 1" in res.stdout
    data = json.loads(out.read_text())
    assert set(data["ranks"]) == {"1", "2"} and data["batch_size"] == 1
    for ranks, result in data["ranks"].items():
        assert result["global_batch"] == int(ranks)
        assert result["steps_per_s"] > 0
        assert result["samples_per_s"] == result["steps_per_s"] * int(ranks)
        assert len(result["runs"]) == 1 and len(result["background_cores"]) == 1
