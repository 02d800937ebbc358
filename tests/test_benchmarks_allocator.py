"""Smoke test of ``benchmarks/allocator.py`` (a tiny model, no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "allocator.py"


def test_allocator_benchmark_measures_both_settings(bouncing_dataset, small_config, train_small, tmp_path):
    run = tmp_path / "run"
    train_small(small_config(bouncing_dataset, run), steps=3)
    out = tmp_path / "allocator.json"
    res = subprocess.run([sys.executable, str(SCRIPT), "--checkpoint", str(run / "checkpoints" / "latest.pt"),
                          "--dataset", str(bouncing_dataset), "--batch", "2", "--warmup-steps", "8", "--steps", "2",
                          "--settle-steps", "2", "--train-steps", "0", "--repeats", "1", "--json", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    # the training row is thread_contention.py's timed training (its own smoke test runs it): off here, for time
    assert "| rollout s/step |" in res.stdout and "training steps/s" not in res.stdout
    rows = json.loads(out.read_text())["rows"]
    assert set(rows) == {"rollout"} and set(rows["rollout"]) == {"glibc default", "tuned"}
    assert all(len(v) == 1 and v[0]["s_per_step"] > 0 for v in rows["rollout"].values())
    assert rows["rollout"]["tuned"][0]["tuned"] and not rows["rollout"]["glibc default"][0]["tuned"]


def test_allocator_benchmark_says_what_is_missing(tmp_path):
    res = subprocess.run([sys.executable, str(SCRIPT), "--dataset", str(tmp_path), "--checkpoint", "nope.pt"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "metadata.json is missing; make it with: gns generate water2d" in res.stderr
