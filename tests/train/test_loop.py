import csv
import dataclasses

import pytest
import torch

from gns.config import load_config
from gns.errors import CheckpointMismatchError, GnsInputError
from gns.train.checkpoint import load_checkpoint, save_checkpoint
from gns.domains import load_simulator
from gns.nn import bf16_native
from gns.particles.task import ParticleTask
from gns.train.loop import Trainer

def read_log(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_short_training_run_loss_falls(bouncing_dataset, tmp_path, small_config, train_small):
    trainer = train_small(small_config(bouncing_dataset, tmp_path / "run", "train.steps=150"))
    rows = read_log(trainer.log_path)
    losses = [float(r["loss"]) for r in rows]
    assert losses[-1] < 0.5 * losses[0], losses
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").exists()
    assert (tmp_path / "run" / "checkpoints" / "best.pt").exists()
    assert any(r["valid_rollout_mse"] for r in rows)


def test_resume_after_interrupt_continues_exactly(bouncing_dataset, tmp_path, small_config, train_small):
    straight = train_small(small_config(bouncing_dataset, tmp_path / "a", "train.steps=40"))
    interrupted = small_config(bouncing_dataset, tmp_path / "b", "train.steps=40")
    train_small(interrupted, steps=25)                       # stops at 25, checkpoint written
    resumed = train_small(interrupted)                       # picks up at 25, runs to 40
    assert resumed.step == 40
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    log_a, log_b = read_log(straight.log_path), read_log(resumed.log_path)
    assert [r["step"] for r in log_b] == ["10", "20", "25", "30", "40"]  # the stop at 25 left its own row
    regular_b = [r for r in log_b if r["step"] != "25"]
    assert [(r["step"], r["loss"]) for r in log_a] == [(r["step"], r["loss"]) for r in regular_b]


def test_best_checkpoint_prefers_rollouts_that_did_not_diverge(bouncing_dataset, tmp_path, small_config):
    """best.pt: fewer diverged validation rollouts first, then the lower rollout MSE; the log records the count."""
    from gns.domains import domain_for_dataset
    from gns.train.task import SimulatorTask

    config = small_config(bouncing_dataset, tmp_path / "run", "train.steps=40", "train.eval_every=10",
                          "train.log_every=10", "train.checkpoint_every=10")
    task = SimulatorTask(config, domain_for_dataset(config.dataset))
    scripted = iter([(1e-3, 1), (1e-2, 0), (1e-4, 2), (5e-3, 0)])   # steps 10, 20, 30, 40: step 40 is best
    task.validate = lambda: dict(zip(("valid_rollout_mse", "valid_diverged"), next(scripted)),
                                 valid_onestep_mse=0.1)
    trainer = Trainer(config, task, config.out_dir)
    trainer.train(progress=False)
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")["step"] == 40
    assert (trainer.best, trainer.best_diverged) == (5e-3, 0)
    assert [r["valid_diverged"] for r in read_log(trainer.log_path)] == ["1", "0", "2", "0"]


def test_validation_counts_diverged_rollouts_and_runs_to_the_end(bouncing_dataset, tmp_path, small_config):
    """A validation rollout (here to the trajectory's end: valid_rollout_steps=0) that leaves the box is counted."""
    from gns.domains import domain_for_dataset
    from gns.train.task import SimulatorTask

    config = small_config(bouncing_dataset, tmp_path / "v", "train.valid_rollout_steps=0", "train.valid_rollouts=1")
    task = SimulatorTask(config, domain_for_dataset(config.dataset))
    network = task.model.network
    with torch.no_grad():   # a network whose every output is a large push: the particles leave the box
        for p in network.parameters():
            p.zero_()
        [m for m in network.decoder.modules() if isinstance(m, torch.nn.Linear)][-1].bias.fill_(50.0)
    flagged = task.validate()
    assert flagged["valid_diverged"] == 1 and flagged["valid_rollout_mse"] > 0
    # the pushed particles drift further the longer the rollout: 0 is the whole trajectory, not zero steps
    task.config = dataclasses.replace(config, train=dataclasses.replace(config.train, valid_rollout_steps=2))
    assert task.validate()["valid_rollout_mse"] < flagged["valid_rollout_mse"]


@pytest.mark.parametrize("loss", ["pushforward", "bptt"])
def test_rollout_losses_train(bouncing_dataset, tmp_path, loss, small_config, train_small):
    extra = ["train.steps=20", f"train.loss={loss}", "train.pushforward_steps=[0,5]",
             "train.pushforward_unrolls=[0,2]", "train.pushforward_probs=[1,1]", "train.bptt_steps=3"]
    trainer = train_small(small_config(bouncing_dataset, tmp_path / loss, *extra))
    assert trainer.step == 20
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


@pytest.mark.skipif(not bf16_native("cpu"), reason="this CPU has no native bf16")
def test_bf16_autocast_trains_on_cpu(bouncing_dataset, tmp_path, small_config, train_small):
    """train.precision=bf16: the network's forward under bf16 autocast, everything else float32."""
    trainer = train_small(small_config(bouncing_dataset, tmp_path / "bf16", "train.steps=10", "train.log_every=5"))
    bf16 = train_small(small_config(bouncing_dataset, tmp_path / "bf16b", "train.steps=10", "train.log_every=5",
                                    "train.precision=bf16"))
    assert bf16.step == 10 and bf16.model.network.precision == "bf16"
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in bf16.model.parameters())
    losses, losses_bf16 = ([float(r["loss"]) for r in read_log(t.log_path)] for t in (trainer, bf16))
    assert losses_bf16 != losses                                  # it did compute in bf16...
    assert losses_bf16 == pytest.approx(losses, rel=0.1)          # ...to about the same figures
    simulator, config, _ = load_simulator(bf16.ckpt_dir / "latest.pt")
    # a loaded checkpoint computes in fp32 until told otherwise (`gns evaluate` applies eval.precision)
    assert config.train.precision == "bf16" and simulator.network.precision == "fp32"


def test_checkpointed_processor_trains_like_the_plain_one(bouncing_dataset, tmp_path, small_config, train_small):
    plain = train_small(small_config(bouncing_dataset, tmp_path / "plain", "train.steps=4"))
    recomputed = train_small(small_config(bouncing_dataset, tmp_path / "ckpt", "train.steps=4",
                                          "train.checkpoint_processor=true"))
    assert recomputed.model.network.checkpoint_processor
    for (name, a), (_, b) in zip(plain.model.state_dict().items(), recomputed.model.state_dict().items()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), name


def test_checkpoint_from_incompatible_config_is_refused(bouncing_dataset, tmp_path, small_config, train_small):
    train_small(small_config(bouncing_dataset, tmp_path / "run", "train.steps=5"))
    other = small_config(bouncing_dataset, tmp_path / "run", "train.steps=10", "model.latent_size=32")
    trainer = Trainer(other, ParticleTask(other), other.out_dir)
    with pytest.raises(CheckpointMismatchError, match="latent_size: checkpoint 16 vs now 32"):
        trainer.resume()


def test_checkpoint_is_atomic_and_corruption_is_reported(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"model": {}, "config": {}})
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]     # no temp file left behind
    path.write_bytes(path.read_bytes()[:20])                      # truncated by a crash elsewhere
    with pytest.raises(GnsInputError, match="cannot read checkpoint"):
        load_checkpoint(path)
    with pytest.raises(GnsInputError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_load_simulator_from_checkpoint_alone(bouncing_dataset, tmp_path, small_config, train_small):
    trainer = train_small(small_config(bouncing_dataset, tmp_path / "run", "train.steps=5"))
    sim, config, meta = load_simulator(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert config.model.latent_size == 16 and meta.dim == 2
    for (name, a), (_, b) in zip(sim.state_dict().items(), trainer.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_released_checkpoint_is_model_only_and_loads_alike(bouncing_dataset, tmp_path, small_config, train_small):
    """`gns release`: weights, config and statistics without the optimizer; the simulator it builds is the same."""
    from gns.cli import main

    train_small(small_config(bouncing_dataset, tmp_path / "run", "train.steps=5"))
    latest = tmp_path / "run" / "checkpoints" / "latest.pt"
    assert main(["release", str(tmp_path / "run"), "--out", str(tmp_path / "m.pt"), "--made-by", "gns train X"]) == 0
    released = load_checkpoint(tmp_path / "m.pt")
    assert "optimizer" not in released and "rng" not in released
    assert released["made_by"] == "gns train X" and released["step"] == 5
    assert (tmp_path / "m.pt").stat().st_size < latest.stat().st_size
    a, _, _ = load_simulator(latest)
    b, _, _ = load_simulator(tmp_path / "m.pt")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    assert main(["release", str(tmp_path / "none.pt"), "--out", str(tmp_path / "n.pt"), "--made-by", "x"]) == 2
    assert not (tmp_path / "n.pt").exists()
    # a setting without weights, stored in the copy: the model it builds averages over the left-right reflection
    assert main(["release", str(tmp_path / "run"), "--out", str(tmp_path / "avg.pt"), "--made-by", "gns train X",
                 "--mirror-average", "0"]) == 0
    averaged = load_checkpoint(tmp_path / "avg.pt")
    assert averaged["config"]["model"]["mirror_average"] == [0] and averaged["released_with"] == {"mirror_average": [0]}
    c, _, _ = load_simulator(tmp_path / "avg.pt")
    assert tuple(c.config.mirror_average) == (0,) and tuple(b.config.mirror_average) == ()
    for (name, x), (_, y) in zip(b.state_dict().items(), c.state_dict().items()):
        assert torch.equal(x, y), name
    # refused along gravity (dimension 1 of the bouncing set), before anything is written
    assert main(["release", str(tmp_path / "run"), "--out", str(tmp_path / "g.pt"), "--made-by", "x",
                 "--mirror-average", "1"]) == 2
    assert not (tmp_path / "g.pt").exists()


def test_unknown_config_key_is_a_clear_error(tmp_path):
    with pytest.raises(GnsInputError, match="train.stepz"):
        load_config(overrides=["train.stepz=3"])
    bad = tmp_path / "c.yaml"
    bad.write_text("model:\n  latent_size: abc\n")
    with pytest.raises(GnsInputError, match="model.latent_size"):
        load_config(bad)


def test_weight_average_is_checkpointed_validated_and_resumes_exactly(bouncing_dataset, tmp_path, small_config,
                                                                      train_small):
    """train.ema_decay: checkpoints hold the averaged weights as ``model`` and the raw ones as ``raw_model``;
    a resumed run ends with the same raw weights and the same average as one that never stopped."""
    straight = train_small(small_config(bouncing_dataset, tmp_path / "a", "train.steps=40", "train.ema_decay=0.9"))
    state = load_checkpoint(tmp_path / "a" / "checkpoints" / "latest.pt")
    assert state["ema_updates"] == 40
    for name, raw in straight.model.state_dict().items():
        assert torch.equal(state["raw_model"][name], raw), name
    assert any(not torch.equal(state["model"][k], state["raw_model"][k]) for k in state["model"])
    interrupted = small_config(bouncing_dataset, tmp_path / "b", "train.steps=40", "train.ema_decay=0.9")
    train_small(interrupted, steps=25)
    resumed = train_small(interrupted)
    resumed_state = load_checkpoint(tmp_path / "b" / "checkpoints" / "latest.pt")
    for key in ("model", "raw_model"):
        for name, value in state[key].items():
            assert torch.equal(resumed_state[key][name], value), (key, name)
    # the validation rows scored the averaged weights (the last row is step 40's), the same in both runs
    logged = float(read_log(straight.log_path)[-1]["valid_rollout_mse"])
    with straight.average.applied():
        assert straight.task.validate()["valid_rollout_mse"] == pytest.approx(logged, rel=1e-6)
    assert straight.task.validate()["valid_rollout_mse"] != pytest.approx(logged, rel=1e-6)
    assert [r["valid_rollout_mse"] for r in read_log(straight.log_path)] == \
        [r["valid_rollout_mse"] for r in read_log(resumed.log_path) if r["step"] != "25"]
    simulator, _, _ = load_simulator(tmp_path / "a" / "checkpoints" / "latest.pt")
    for name, value in simulator.state_dict().items():
        assert torch.equal(value, state["model"][name]), name


def test_weight_average_decay_of_one_is_a_clear_error(bouncing_dataset, tmp_path, small_config, train_small):
    with pytest.raises(GnsInputError, match="train.ema_decay"):
        train_small(small_config(bouncing_dataset, tmp_path / "run", "train.steps=5", "train.ema_decay=1.0"))


def _resumes_exactly_and_draws_otherwise(dataset, tmp_path, small_config, train_small, *overrides) -> None:
    """A 20-step run with ``overrides`` ends on the same weights whether or not it is interrupted at step 12, and
    its losses differ from a plain run's (the option draws windows or their transforms from the step's generator)."""
    straight = train_small(small_config(dataset, tmp_path / "a", *overrides))
    interrupted = small_config(dataset, tmp_path / "b", *overrides)
    train_small(interrupted, steps=12)
    resumed = train_small(interrupted)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    plain = train_small(small_config(dataset, tmp_path / "c", "train.steps=20"))
    assert [r["loss"] for r in read_log(plain.log_path)] != [r["loss"] for r in read_log(straight.log_path)]


def test_mirrored_training_windows(bouncing_dataset, tmp_path, small_config, train_small):
    """train.mirror_dims: each window reflected about the box's centre with probability 1/2, drawn from the step's
    generator (a run resumes exactly); bad dimensions, or one gravity points along, are clear errors."""
    task = ParticleTask(small_config(bouncing_dataset, tmp_path / "t", "train.mirror_dims=[0]"))
    truth = task.sampler.load(task.sampler.fixed_items(2, 7), 7)
    out = task.model.mirrored(truth, (0,), torch.tensor([True, False]))
    first = truth.batch == 0
    assert torch.allclose(out.position[first, :, 0], 1.0 - truth.position[first, :, 0])      # the box is [0, 1]
    assert torch.equal(out.position[first, :, 1], truth.position[first, :, 1])
    assert torch.equal(out.position[~first], truth.position[~first])
    back = task.model.mirrored(out, (0,), torch.tensor([True, False]))
    assert torch.allclose(back.position, truth.position, atol=1e-6)

    mirror = ("train.steps=20", "train.mirror_dims=[0]")
    _resumes_exactly_and_draws_otherwise(bouncing_dataset, tmp_path, small_config, train_small, *mirror)
    for dims in ("[0, 0]", "[2]", "[1]"):                    # repeated, not a dimension, along gravity
        with pytest.raises(GnsInputError, match="train.mirror_dims"):
            ParticleTask(small_config(bouncing_dataset, tmp_path / "bad", f"train.mirror_dims={dims}"))


def test_impact_windows_train_and_resume(bouncing_dataset, tmp_path, small_config, train_small):
    """train.impact_fraction: that share of the windows ends on an impact (a bounce of the balls), drawn from the
    step's generator (a run resumes exactly); a share outside [0, 1], a threshold that is not positive or that no
    step passes is a clear error before the first step."""
    impacts = ("train.steps=20", "train.impact_fraction=1.0", "train.impact_threshold=2.0")
    task = ParticleTask(small_config(bouncing_dataset, tmp_path / "t", *impacts))
    marked = {tuple(map(int, row)) for row in task.sampler.impacts()}
    window = task.model.window + 1
    items = task.sampler.with_impacts(task.sampler.sample_items(16, window, torch.Generator().manual_seed(0)),
                                      window, torch.Generator().manual_seed(1), 1.0)
    assert marked and all((traj, start + window - 2) in marked for traj, start in items)
    _resumes_exactly_and_draws_otherwise(bouncing_dataset, tmp_path, small_config, train_small, *impacts)
    for bad in (("train.impact_fraction=1.5",), ("train.impact_fraction=0.5", "train.impact_threshold=0"),
                ("train.impact_fraction=0.5", "train.impact_threshold=1e6")):           # no step that high
        with pytest.raises(GnsInputError, match="train.impact_"):
            ParticleTask(small_config(bouncing_dataset, tmp_path / "bad", *bad))


def test_a_stop_on_the_time_budget_is_said_and_resumes(bouncing_dataset, tmp_path, small_config, train_small):
    # a budget that runs out before the first step: the run stops short of its steps and says so
    short = train_small(small_config(bouncing_dataset, tmp_path / "run", "train.steps=20", "train.time_budget_s=1e-9"))
    assert short.step == 0 and short.out_of_time and not short.interrupted
    message = short.budget_message()
    assert "step 0 of 20" in message and "train.time_budget_s = 1e-09 s" in message and "for 0% of its steps" in message
    # the rerun resumes with a fresh budget and, reaching its steps, has nothing to say
    full = train_small(small_config(bouncing_dataset, tmp_path / "run", "train.steps=20", "train.time_budget_s=0"))
    assert full.step == 20 and not full.out_of_time and full.last_run[0] == 20
