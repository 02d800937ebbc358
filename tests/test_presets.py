"""Every shipped preset trains a few steps on a tiny dataset of its domain, as shipped (architecture, noise,
loss, schedules), and the main job's preset is pinned: its first losses on the tests' bouncing set are the
numbers in ``fixtures/pinned_runs.json`` (``demo_preset``). A change to the preset or to what it trains
shows up here first; re-pin with ``GNS_REPIN=1 pytest tests/test_presets.py`` when it is meant.

No accuracy is asserted: a few steps say nothing about it (that is the benchmarks' and the docs' job).
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import pytest

from gns.atomic import write_text_atomic
from gns.config import PRESETS_DIR, load_config
from gns.domains import domain_for_dataset
from gns.train.loop import Trainer
from gns.train.task import SimulatorTask

PINNED = Path(__file__).parent / "fixtures" / "pinned_runs.json"
QUICK = ["train.steps=6", "train.log_every=2", "train.eval_every=6", "train.checkpoint_every=6",
         "train.valid_windows=4", "train.valid_rollouts=1", "train.valid_rollout_steps=4", "train.time_budget_s=0",
         "train.num_threads=1", "device=cpu", "train.pushforward_steps=[0,2,4]", "train.pushforward_unrolls=[0,1,2]",
         "train.pushforward_probs=[1,1,1]"]
DOMAIN_OF = {"demo": "particles", "water_long": "particles", "cloth": "cloth", "cloth_long": "cloth", "flow": "flow",
             "flow_long": "flow", "objects": "objects"}



def _train(preset: Path, dataset: Path, out: Path) -> list[dict]:
    config = load_config(preset, QUICK + [f"dataset={dataset}", f"out_dir={out}"])
    base = load_config(preset)
    assert (config.model, config.train.noise_std, config.train.loss) == (base.model, base.train.noise_std,
                                                                         base.train.loss)
    trainer = Trainer(config, SimulatorTask(config, domain_for_dataset(dataset)), config.out_dir)
    trainer.train(progress=False)
    with open(trainer.log_path) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("preset", sorted(PRESETS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_preset_trains(preset, request, tmp_path, one_thread):
    kind = DOMAIN_OF.get(preset.stem)
    assert kind, f"a new preset {preset.name}: say which domain's fixture it trains on (DOMAIN_OF)"
    fixture = {"particles": "bouncing_dataset", "cloth": "cloth_inputs_dataset", "flow": "flow_dataset",
               "objects": "objects_dataset"}[kind]
    dataset = request.getfixturevalue(fixture)  # only the fixture this preset needs
    rows = _train(preset, dataset, tmp_path)
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    assert (tmp_path / "checkpoints" / "latest.pt").exists()


def test_the_main_jobs_preset_is_pinned(bouncing_dataset, tmp_path, one_thread):
    rows = _train(PRESETS_DIR / "demo.yaml", bouncing_dataset, tmp_path)
    got = [{"step": r["step"], "loss": r["loss"], "valid_onestep_mse": r["valid_onestep_mse"]} for r in rows]
    pinned = json.loads(PINNED.read_text())
    if os.environ.get("GNS_REPIN"):
        write_text_atomic(PINNED, json.dumps({**pinned, "demo_preset": got}, indent=1) + "\n")
        pytest.skip("re-pinned the main job's preset")
    want = pinned["demo_preset"]
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for g, w in zip(got, want):
        for key in ("loss", "valid_onestep_mse"):
            if w[key] == "":
                assert g[key] == "", (g, w)
            else:
                assert float(g[key]) == pytest.approx(float(w[key]), rel=1e-5), (key, g, w)
