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
    text = _run(BENCHMARKS / "long_rollouts.py", "--rest-motion-of", out / "preset-s0" / "checkpoints" / "latest.pt",
                "--dataset", bouncing_dataset, "--rest-from", "20", "--rest-steps", "19")
    rows = [line for line in text.splitlines() if "from frame 20, energy (rms speed x, y) predicted / true" in line]
    assert len(rows) == 2 and all(row.count("x (x ") == 1 for row in rows), text    # every test trajectory, 1 window


def test_lj3d_energy(tmp_path):
    out = tmp_path / "lj3d.json"
    text = _run(BENCHMARKS / "lj3d_energy.py", "--steps", "10", "--quick", "--out", tmp_path / "run", "--json", out)
    assert "predicted mean KE" in text
    result = json.loads(out.read_text())
    assert result["rollout_steps"] == 399 and len(result["energy_windows"]) == 8


def test_divergence_cost(tmp_path):
    text = _run(BENCHMARKS / "divergence_cost.py", "--repeats", "1", "--datasets", tmp_path / "none", "--threads", "1")
    assert "skipped" in text and "| test-sized particles (random weights) | 24 |" in text


def test_flight_reports_where_airborne_water_stops_falling(bouncing_dataset, tmp_path):
    """``--flight-of``: water above the middle of the box at the start, predicted against true acceleration
    while the truth falls freely; a prediction that goes on at a constant speed after step 20 is reported."""
    import numpy as np

    from gns.data import load_metadata
    from gns.rollout_io import RolloutRecord, write_rollouts

    g = load_metadata(bouncing_dataset).gravity[1]                                  # per step squared, < 0
    steps = np.arange(60, dtype=np.float64)
    true_y = 0.9 + 0.5 * g * steps ** 2                                              # free fall the whole time
    predicted_y = np.where(steps <= 20, true_y, true_y[20] + g * 20 * (steps - 20))  # then a constant speed
    x = np.linspace(0.2, 0.8, 10)
    position = {name: np.stack([np.broadcast_to(x, (60, 10)), np.broadcast_to(y[:, None], (60, 10))], -1)
                for name, y in (("predicted", predicted_y), ("ground_truth", true_y))}
    record = RolloutRecord("00000", {name: {"position": p} for name, p in position.items()},
                           {"particle_type": np.zeros(10, dtype=int)})
    rollouts = write_rollouts(tmp_path / "r.h5", [record], simulator="particles", domain="bouncing", dt=0.01,
                              target_field="position")
    text = _run(BENCHMARKS / "long_rollouts.py", "--flight-of", rollouts, "--dataset", bouncing_dataset)
    assert "00000 (10 particles above 0.50 m at the start)" in text
    # the acceleration at step t is from steps t - 1, t, t + 1: half of g at step 20, none from step 21
    assert "true 1.00, 1.00" in text and "predicted below 0.5 g from step 21" in text


def test_energy_reports_windows_and_sides(bouncing_dataset, tmp_path):
    """``--energy-of``: per 50-step window the predicted over the true kinetic energy, and how far the predicted
    particles reach beyond the truth's extent on each side; a prediction moving twice as fast (4x the energy) with
    one particle lifted at step 70 is reported so."""
    import numpy as np

    from gns.data import load_metadata
    from gns.rollout_io import RolloutRecord, write_rollouts

    bounds = np.asarray(load_metadata(bouncing_dataset).bounds, dtype=np.float64)
    width = float((bounds[:, 1] - bounds[:, 0]).max())
    steps = np.arange(81, dtype=np.float64)
    x = np.linspace(0.3, 0.5, 10)
    true = np.stack([x[None, :] + 1e-3 * steps[:, None], np.full((81, 10), 0.3)], -1)          # (T, N, 2)
    predicted = np.stack([x[None, :] + 2e-3 * steps[:, None], np.full((81, 10), 0.3)], -1)
    predicted[70, 0, 1] += 0.1 * width                                                         # one particle lifted
    record = RolloutRecord("00000", {"predicted": {"position": predicted}, "ground_truth": {"position": true}},
                           {"particle_type": np.zeros(10, dtype=int)})
    rollouts = write_rollouts(tmp_path / "r.h5", [record], simulator="particles", domain="bouncing", dt=0.01,
                              target_field="position")
    text = _run(BENCHMARKS / "long_rollouts.py", "--energy-of", rollouts, "--dataset", bouncing_dataset)
    assert "00000: KE predicted / true per 50 steps: 4x of 5.0e-07" in text
    assert "above 0.100 (step 70)" in text and "right " + f"{0.08 / width:.3f} (step 80)" in text


def test_motion_factors_split_energy_by_axis():
    """``motion_factors`` (behind ``--rest-motion-of``): a prediction that slides as the truth does but bounces
    twice as fast vertically is reported as such, per window, with the true energy beside it."""
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("long_rollouts", BENCHMARKS / "long_rollouts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    steps = np.arange(51, dtype=np.float64)
    bounce = np.where(steps % 2 == 0, 0.0, 1e-3)                                        # +-1e-3 per step
    truth = np.stack([0.3 + 1e-3 * steps, 0.2 + bounce], -1)[:, None, :]                 # (T, 1, 2)
    predicted = np.stack([0.3 + 1e-3 * steps, 0.2 + 2 * bounce], -1)[:, None, :]
    rows = module.motion_factors(predicted, truth, window=25)
    assert len(rows) == 2
    for energy, horizontal, vertical, true_energy in rows:
        assert np.isclose(horizontal, 1.0) and np.isclose(vertical, 2.0)
        assert np.isclose(true_energy, 1e-6) and np.isclose(energy, 2.5)                # (1 + 4) / (1 + 1)
