"""The solver-twin benchmark (benchmarks/solver_twin.py): its scoring on constructed trajectories, and its twins
of a tiny generated water set (an unperturbed twin is the dataset itself; a perturbed one is not)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def twin():
    spec = importlib.util.spec_from_file_location("solver_twin", BENCHMARKS / "solver_twin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_water(tmp_path_factory) -> Path:
    from gns.solvers.water2d import Water2DConfig, generate_water2d

    config = Water2DConfig(num_train=1, num_valid=1, num_test=2, num_steps=30, block_size_range=(0.1, 0.15),
                           num_workers=1, scenes_per_batch=2)
    return generate_water2d(tmp_path_factory.mktemp("twin") / "water2d", config, progress=False)


def test_score_twin_escape_energy_and_mse(twin):
    """A twin that moves twice as fast from the start frame on has 4x the energy and runs ahead of the truth's
    box; one particle lifted a tenth of the box width above the truth's highest at one step is an escape of 0.1."""
    bounds = np.array([[0.1, 0.9], [0.1, 0.9]])
    steps = np.arange(61, dtype=np.float64)
    x = np.linspace(0.3, 0.5, 10)
    truth = np.stack([x[None, :] + 1e-3 * steps[:, None], np.full((61, 10), 0.3)], -1)          # (T, N, 2)
    fast = truth.copy()                                                                        # the same inputs
    fast[6:, :, 0] = truth[5, :, 0] + 2e-3 * (steps[6:, None] - 5)                            # then twice as fast
    row = twin.score_twin(fast, truth, 5, bounds)
    assert row["ke_factor"] == pytest.approx(4.0, rel=1e-4) and row["ke_worst_frames"] == (6, 55)
    assert row["mse"] > 0 and row["escape"] == pytest.approx(1e-3 * 55 / 0.8, rel=1e-4)           # 55 steps ahead on the right
    lifted = truth.copy()
    lifted[40, 3, 1] += 0.08
    assert twin.score_twin(lifted, truth, 5, bounds)["escape"] == pytest.approx(0.1, rel=1e-4)
    same = twin.score_twin(truth, truth, 5, bounds)
    assert same["escape"] == 0.0 and same["ke_factor"] == pytest.approx(1.0) and same["mse"] == 0.0


def test_twins_of_a_generated_set(twin, tiny_water):
    """With no perturbation the twin re-simulated from the start frame is the stored truth (the start frame and
    the scored frames line up, clipping and float32 rounding as the dataset's); moved by 1e-3 m it is not; the
    finer-substeps twin is another discretization, close to but not the truth."""
    rows = twin.twins(tiny_water, eps=[0.0, 1e-3], draws=1, start=5)
    assert len(rows) == 2 * 3                                                       # 2 trajectories x 3 twins
    exact = [r for r in rows if r["twin"].startswith("positions moved by 0 m")]
    assert all(r["mse"] == 0.0 and r["escape"] == 0.0 and r["ke_factor"] == pytest.approx(1.0) for r in exact)
    moved = [r for r in rows if "0.001 m" in r["twin"]]
    assert all(r["mse"] > 0 for r in moved)
    finer = [r for r in rows if "substeps" in r["twin"]]
    assert all(0 < r["mse"] < 1e-2 for r in finer)
    assert twin.table(rows).count("\n| ") == 3


def test_cli_writes_json(tiny_water, tmp_path):
    import json

    out = tmp_path / "twin.json"
    res = subprocess.run([sys.executable, str(BENCHMARKS / "solver_twin.py"), "--dataset", str(tiny_water), "--eps",
                          "1e-3", "--draws", "1", "--substeps-factor", "1", "--json", str(out)],
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 0, res.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["trajectory"] for r in rows] == [0, 1] and all(r["mse"] > 0 for r in rows)
    assert res.stdout.count("\n| ") == 1                                          # one twin row under the header


def test_cli_refuses_other_data(bouncing_dataset):
    res = subprocess.run([sys.executable, str(BENCHMARKS / "solver_twin.py"), "--dataset", str(bouncing_dataset)],
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode != 0 and "generator/solver" in res.stderr and "Traceback" not in res.stderr
