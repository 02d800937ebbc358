"""Smoke tests of ``benchmarks/step_options.py`` and ``benchmarks/precision_accuracy.py`` (tiny sizes, no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gns.nn import bf16_native

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def test_step_options_quick(bouncing_dataset, tmp_path):
    out = tmp_path / "step_options.json"
    res = subprocess.run([sys.executable, str(BENCHMARKS / "step_options.py"), "--quick", "--models", "demo",
                          "--checkpoint-models", "demo", "--dataset", str(bouncing_dataset), "--max-background", "0",
                          "--scratch", str(tmp_path / "scratch"), "--json", str(out)],
                         capture_output=True, text=True, timeout=600, env=ENV)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    data = json.loads(out.read_text())
    variants = data["variants"]["demo/300"]
    expected = {"plain", "segment", "scatter_add"} | ({"bf16"} if bf16_native("cpu") else set())
    assert {k.split("/")[1] for k in variants["timing"]} == expected
    assert all(t["median_s"] > 0 for t in variants["timing"].values())
    # every faster path computes the same outputs: fp32 paths to rounding; bf16 (8-bit mantissa, 4e-3 per rounding)
    # within what its roundings add up to over the demo model's 10 message-passing steps (a random network: 0.093 of
    # the largest output on the development machine; a wrong path is off by the whole output)
    for variant, diff in variants["max_rel_diff"].items():
        assert diff < (0.2 if "bf16" in variant else 1e-5), (variant, diff)
    profile = data["profile"]
    assert set(profile["phases_s"]) == {"forward + loss (data, noise, graph, network)", "backward",
                                        "optimizer (clip + Adam)"}
    assert abs(sum(profile["categories"].values()) - 1) < 1e-6
    rows = {(r["n"], r["variant"]): r for r in data["checkpointing"]}
    assert set(rows) == {(300, "plain"), (300, "checkpoint"), (600, "plain"), (600, "checkpoint")}
    assert all(r["seconds"] > 0 and r["peak_mib"] >= 0 for r in rows.values())
    assert "| variant" in res.stdout and "gradient checkpointing" in res.stdout


@pytest.mark.slow
def test_precision_accuracy_quick(bouncing_dataset, tmp_path):
    out = tmp_path / "precision.json"
    tiny = ["--set", "model.latent_size=16", "--set", "model.message_passing_steps=2", "--set", "model.hidden_layers=1"]
    res = subprocess.run([sys.executable, str(BENCHMARKS / "precision_accuracy.py"), "--quick", "--dataset",
                          str(bouncing_dataset), "--eval-precisions", "fp32", "bf16", *tiny, "--json", str(out)],
                         capture_output=True, text=True, timeout=600, env=ENV)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    data = json.loads(out.read_text())
    trained = [r["train_precision"] for r in data["runs"]]
    assert trained == (["fp32", "bf16"] if bf16_native("cpu") else ["fp32"])
    for run in data["runs"]:
        assert run["steps_per_s"] > 0
        for evaluation in run["eval"].values():
            assert set(evaluation["first_frame"]) == {"1", "10", "20", "full"}
    assert "| train" in res.stdout
