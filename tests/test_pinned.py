"""Behaviour is pinned: short deterministic runs of every domain reproduce the figures of gns 0.1.

The numbers in ``fixtures/pinned_runs.json`` were written by the code before the shared
simulator interface (see ``fixtures/README.md``); training losses, validation and evaluation
metrics must come out the same through the one rollout driver, loss, task and evaluator.
"""

import csv
import json
from pathlib import Path

import pytest

from gns.config import load_config
from gns.domains import domain_for_dataset, load_simulator, open_split_for
from gns.evaluate import evaluate_split
from gns.train.loop import Trainer
from gns.train.task import SimulatorTask

PINNED = json.loads((Path(__file__).parent / "fixtures" / "pinned_runs.json").read_text())
SMALL = ["model.latent_size=16", "model.message_passing_steps=2", "model.hidden_layers=1",
         "train.lr_init=3e-3", "train.lr_decay_steps=1000", "train.log_every=10", "train.eval_every=20",
         "train.checkpoint_every=20", "train.valid_windows=8", "train.valid_rollouts=1",
         "train.valid_rollout_steps=5", "device=cpu", "train.steps=40", "train.num_threads=1"]
PUSHFORWARD = ["train.loss=pushforward", "train.pushforward_steps=[0,10]", "train.pushforward_unrolls=[0,2]",
               "train.pushforward_probs=[1,1]"]
EXTRA = {"particles": PUSHFORWARD, "cloth": PUSHFORWARD + ["mesh.history=2", "train.noise_std=1e-3"],
         "flow": ["train.loss=bptt", "train.bptt_steps=2"]}


def _close(got, want, path=""):
    if isinstance(want, dict):
        for key, value in want.items():
            _close(got[key], value, f"{path}/{key}")
    elif want == "":
        assert got == "", path
    else:
        assert float(got) == pytest.approx(float(want), rel=1e-5, abs=1e-30), path



@pytest.mark.parametrize("kind", ["particles", "cloth", "flow"])
def test_short_run_reproduces_the_pinned_figures(kind, bouncing_dataset, cloth_inputs_dataset, flow_dataset,
                                                  tmp_path, one_thread):
    dataset = {"particles": bouncing_dataset, "cloth": cloth_inputs_dataset, "flow": flow_dataset}[kind]
    config = load_config(overrides=SMALL + EXTRA[kind] + [f"dataset={dataset}", f"out_dir={tmp_path}"])
    trainer = Trainer(config, SimulatorTask(config, domain_for_dataset(dataset)), config.out_dir)
    trainer.train(progress=False)
    with open(trainer.log_path) as f:
        rows = list(csv.DictReader(f))
    want = PINNED[kind]
    assert [r["step"] for r in rows] == [r["step"] for r in want["log"]]
    for row, pinned in zip(rows, want["log"]):
        _close({k: row[k] for k in pinned}, pinned, f"log step {row['step']}")

    simulator, _, _ = load_simulator(tmp_path / "checkpoints" / "latest.pt")
    summary = evaluate_split(simulator, open_split_for(simulator, dataset, "test"), (1, 5, 10), progress=False,
                             start_stride=5)
    for name in summary["rollouts"]:
        if kind == "particles":  # gns 0.1 kept the particle table itself; the mesh entries with their keys
            _close(summary[name]["mse"], want["metrics"][name], name)
            _close(summary["multistart"][name]["mse"], want["metrics"]["multistart"][name], f"multistart/{name}")
        else:
            _close(summary[name], want["metrics"][name], name)
            _close(summary["multistart"][name], want["metrics"]["multistart"][name], f"multistart/{name}")
    if kind == "particles":
        _close({n: summary[n]["ke_error"] for n in summary["rollouts"]}, want["metrics"]["ke"], "ke")
