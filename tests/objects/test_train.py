"""Training on object scenes with the shared loop, and the CLI from training to a rendered rollout."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from gns.cli import main
from gns.config import load_config
from gns.errors import GnsInputError
from gns.objects.task import ObjectTask
from gns.train.loop import Trainer
from gns.train.losses import unrolled_loss

TINY = ["model.latent_size=32", "model.message_passing_steps=2", "model.hidden_layers=1", "train.lr_init=3e-3",
        "train.lr_decay_steps=1000", "train.batch_size=4", "train.valid_windows=8", "train.valid_rollouts=1",
        "train.valid_rollout_steps=5", "train.num_threads=1", "device=cpu"]


def test_a_short_training_run_lowers_the_loss(objects_dataset, tmp_path, one_thread):
    config = load_config(overrides=[*TINY, f"dataset={objects_dataset}", f"out_dir={tmp_path}", "train.steps=120",
                                    "train.log_every=20", "train.eval_every=120", "train.checkpoint_every=120"])
    task = ObjectTask(config)
    trainer = Trainer(config, task, config.out_dir)
    trainer.train(progress=False)
    with open(trainer.log_path) as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f)]
    assert len(losses) == 6 and losses[-1] < 0.6 * losses[0], losses
    assert (tmp_path / "checkpoints" / "latest.pt").exists()


def test_the_shared_impact_share_points_to_the_objects_own(objects_dataset, tmp_path):
    """Object windows are drawn on impacts from the contact record (objects.impact_fraction), not by acceleration."""
    config = load_config(overrides=[*TINY, f"dataset={objects_dataset}", f"out_dir={tmp_path}",
                                    "train.impact_fraction=0.5"])
    with pytest.raises(GnsInputError, match="objects.impact_fraction"):
        ObjectTask(config)


def test_the_rollout_losses_train_the_angle_too(objects_dataset, tmp_path):
    """Pushforward: the unroll integrates and shifts the angle beside the position (both are read)."""
    config = load_config(overrides=[*TINY, f"dataset={objects_dataset}", f"out_dir={tmp_path}"])
    task = ObjectTask(config)
    model = task.model
    truth = task.sampler.load([(0, 3), (1, 7)], model.window + 3)
    seen = []
    forward = model.forward
    model.forward = lambda state: (seen.append(state.angle.clone()), forward(state))[1]
    loss = unrolled_loss(model, truth, 2, 0.0, 0.0, backprop_through_unroll=True)
    loss.backward()
    assert torch.isfinite(loss)
    # the third step reads two predicted angles, not the true ones
    w = model.window
    assert not torch.equal(seen[2][:, -2:], truth.angle[:, w:w + 2])
    assert torch.equal(seen[2][:, :-2], truth.angle[:, 2:w])


def test_cli_train_evaluate_rollout_render(objects_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    small = [item for key in TINY for item in ("--set", key)]
    assert main(["train", "--dataset", str(objects_dataset), "--out", str(run), "--quiet", *small,
                 "--set", "train.steps=10", "--set", "train.log_every=5", "--set", "train.eval_every=10"]) == 0
    out = tmp_path / "roll.h5"
    assert main(["evaluate", str(run), "--out", str(out), "--horizons", "1", "5", "20", "--device", "cpu"]) == 0
    table = capsys.readouterr().out
    assert "constant_velocity" in table and "persistence" in table and "MSE of angle" in table
    assert "contact_agreement_20" in table
    summary = json.loads(out.with_suffix(".json").read_text())
    assert set(summary["model"]["mse"]) == {"1", "5", "20", "full"}
    npz = tmp_path / "roll.npz"
    assert main(["rollout", str(run), "--out", str(npz), "--steps", "8", "--device", "cpu"]) == 0
    gif = tmp_path / "roll.gif"
    assert main(["render", str(npz), "--out", str(gif), "--stride", "2"]) == 0
    assert gif.stat().st_size > 0
