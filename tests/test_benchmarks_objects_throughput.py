"""Smoke test of ``benchmarks/objects_throughput.py --quick``: it runs, and its JSON holds every figure."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "objects_throughput.py"

ROW_KEYS = {"label", "case", "objects", "objects_per_scene", "scenes", "pair_edges", "spring_edges", "box_m",
            "objects_per_m2", "parameters", "velocity_rms", "frames", "timing", "rollout_steps_per_s",
            "rollout_object_steps_per_s", "background_cores"}


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_objects_throughput_quick(tmp_path):
    out = tmp_path / "objects.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--json", str(out)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "| config" in res.stdout and "rollout object-steps/s" in res.stdout and "## batched rollout" in res.stdout
    data = json.loads(out.read_text())
    assert {"machine", "args", "batch", "source", "metadata", "model", "cases", "sweep", "wall_seconds"} <= set(data)
    assert data["model"]["latent_size"] == 128 and data["objects_config"]["contact_scale"] == 0.02
    assert [c["objects_per_scene"] for c in data["cases"]] == [4, 8]
    assert [c["scenes"] for c in data["sweep"]] == [1, 4]
    for row in data["cases"] + data["sweep"]:
        assert ROW_KEYS <= set(row), ROW_KEYS - set(row)
        n = row["objects_per_scene"]
        assert row["objects"] == n * row["scenes"]
        assert row["pair_edges"] == row["scenes"] * n * (n - 1)            # all pairs
        modes = ("rollout",) if row["case"]["sweep"] else ("train", "rollout")
        assert set(row["timing"]) == set(modes)
        for mode in modes:
            assert _positive(row[f"{mode}_steps_per_s"]) and _positive(row[f"{mode}_object_steps_per_s"])
            assert row[f"{mode}_object_steps_per_s"] == pytest.approx(row["objects"] * row[f"{mode}_steps_per_s"])
        assert "memory" not in row                                          # --quick: no memory subprocesses


def _module():
    spec = importlib.util.spec_from_file_location("objects_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module             # its dataclasses look their module up while it is executed
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module


def test_64_objects_fit_a_larger_box_without_overlap(tmp_path):
    import torch

    bench = _module()
    base = bench.base_for(tmp_path / "no_dataset")                          # synthetic metadata
    assert base.source.startswith("synthetic")
    built = bench.build(bench.Case(64, 2), base, torch.device("cpu"))
    info = built.info
    assert info["pair_edges"] == 2 * 4032
    side = math.sqrt(64 / base.solver.max_objects)
    assert info["box_m"] == pytest.approx([side, side])
    position = built.train_state.position.numpy()                           # (K, W + 1, 2)
    assert position.shape == (128, built.simulator.window + 1, 2)
    assert (position > 0).all() and (position < side).all()
    assert 0 < info["velocity_rms"] < 0.05                                  # m/step: the dataset's scale
    if info["frames"] == "pymunk":                                          # no overlaps beyond the solver's slack
        import dataclasses

        from gns.solvers.objects2d import overlap_depths, sample_scene

        solver = dataclasses.replace(base.solver, bounds=((0.0, side), (0.0, side)), min_objects=64,
                                     max_objects=64, num_steps=built.simulator.window + 1)
        scene = sample_scene(solver, 0, 0)[0]
        depth = overlap_depths(scene, position[:64].transpose(1, 0, 2), built.train_state.angle.numpy()[:64, :, 0].T)
        assert depth.max() <= base.solver.overlap_tolerance
    memory = bench.memory_child(bench.Case(4, 1), "rollout", tmp_path / "no_dataset", torch.device("cpu"))
    assert memory["mode"] == "rollout" and np.isfinite(memory["peak_rss_delta_mib"])
