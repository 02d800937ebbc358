"""Smoke test of ``benchmarks/objects_contacts.py`` on the small object set and a model trained a few steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "objects_contacts.py"

pytest.importorskip("pymunk")


def test_objects_contacts_reports_every_figure(objects_dataset, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    train = subprocess.run([sys.executable, "-m", "gns.cli", "train", "--preset", "objects", "--dataset",
                            str(objects_dataset), "--out", str(tmp_path / "run"), "--quiet",
                            "--set", "model.latent_size=16", "--set", "train.steps=4", "--set", "train.eval_every=4",
                            "--set", "train.log_every=2", "--set", "train.valid_rollouts=1"],
                           capture_output=True, text=True, env=env, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    out = tmp_path / "contacts.json"
    res = subprocess.run([sys.executable, str(SCRIPT), "--checkpoint", str(tmp_path / "run"), "--dataset",
                          str(objects_dataset), "--trajectories", "2", "--every", "2", "--action-law", "4",
                          "--impact-law", "4", "--impact-estimate", "4", "--json", str(out)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "free objects' acceleration unexplained" in res.stdout and "disc-disc impacts" in res.stdout
    assert "| pairs |" in res.stdout and "| walls |" in res.stdout                # the impact inputs' table
    (row,) = json.loads(out.read_text())
    assert row["free_objects"] > 0 and 0 <= row["pair_edge_ablation"]
    assert row["contact_scale"] == 0.02                                          # the preset's
