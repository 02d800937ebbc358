"""Smoke test of ``benchmarks/inference.py`` (a tiny model, no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "inference.py"


def test_inference_benchmark_sweeps_piece_sizes(bouncing_dataset, small_config, train_small, tmp_path):
    run = tmp_path / "run"
    train_small(small_config(bouncing_dataset, run), steps=3)
    out = tmp_path / "inference.json"
    res = subprocess.run([sys.executable, str(SCRIPT), "--checkpoint", str(run / "checkpoints" / "latest.pt"),
                          "--dataset", str(bouncing_dataset), "--batch", "2", "--warmup-steps", "6", "--steps", "2",
                          "--settle-steps", "1", "--sizes", "0", "0.0005", "--train-steps", "0", "--repeats", "1",
                          "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "| whole |" in res.stdout and "| 0.0005 |" in res.stdout and "Training" not in res.stdout
    rows = json.loads(out.read_text())["sweep"]["rows"]
    assert set(rows) == {"0.0", "0.0005"}
    # the same positions to rounding, whichever path (the test of the block itself is tests/nn/test_network.py)
    assert rows["0.0"]["max_position_difference"] == 0.0 and rows["0.0005"]["max_position_difference"] < 1e-5
    assert all(v > 0 for row in rows.values() for v in row["rollout_s_per_step"] + row["network128_s"])


def test_inference_benchmark_needs_the_whole_path_first(tmp_path):
    res = subprocess.run([sys.executable, str(SCRIPT), "--sizes", "2", "4"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode != 0 and "--sizes must start with 0" in res.stderr
