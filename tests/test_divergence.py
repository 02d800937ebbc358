"""Divergence is reported, never silent: the monitor finds the right step and entities; stop stops there."""

from __future__ import annotations

import pytest
import torch

from gns.config import ModelConfig
from gns.data import load_metadata
from gns.errors import GnsInputError
from gns.particles.evaluate import divergence_checks
from gns.rollout import OUTSIDE_MARGIN, RUNAWAY_STD
from gns.particles.simulator import ParticleSimulator
from gns.particles.state import ParticleState
from gns.rollout import Monitor, rollout, rollout_many


class Scripted:
    """A stepper whose next positions come from ``rule(step, position window)``."""

    window, state_fields, input_fields, predicted_fields = 2, ("position",), (), ("position",)

    def __init__(self, rule):
        self.rule, self.step = rule, 0

    def held(self, state):
        return torch.zeros(state.num_entities, dtype=torch.bool)

    def predict_next(self, state):
        self.step += 1
        return {"position": self.rule(self.step, state.position)}


def _setup(dataset):
    simulator = ParticleSimulator(ModelConfig(latent_size=8, message_passing_steps=1), load_metadata(dataset), 1e-4)
    g = torch.Generator().manual_seed(0)
    position = (0.3 + 0.4 * torch.rand(2 * 10, 1, 2, generator=g)).repeat(1, 2, 1)   # at rest, two systems
    return simulator, ParticleState(position, torch.full((20,), 5), torch.tensor([10, 10]))


def test_nan_at_a_known_step(bouncing_dataset):
    simulator, state = _setup(bouncing_dataset)

    def rule(step, x):
        out = x[:, -1].clone()
        if step == 7:
            out[13, 1] = float("nan")                     # system 1, entity 3
        return out

    monitor = Monitor(divergence_checks(simulator))
    out = rollout(Scripted(rule), state, 12, monitor=monitor)
    assert out["position"].shape[1] == 12                # warn: the rollout goes on
    (event,) = [e for e in monitor.events if e.kind == "non-finite"]
    assert (event.step, event.system, event.entities, event.count) == (7, 1, [3], 1)
    stopped = Monitor(divergence_checks(simulator), "stop")
    out = rollout(Scripted(rule), state, 12, monitor=stopped)
    assert out["position"].shape[1] == 7 and stopped.stopped_at == 7


def test_a_particle_crossing_a_wall(bouncing_dataset):
    simulator, state = _setup(bouncing_dataset)
    margin = OUTSIDE_MARGIN * 1.0                        # the unit box

    def rule(step, x):
        out = x[:, -1].clone()
        out[2, 0] = 0.953 + 0.01 * step                    # system 0, entity 2 walks through the right wall
        return out

    state.position[2, :, 0] = 0.953
    monitor = Monitor(divergence_checks(simulator))
    rollout(Scripted(rule), state, 10, monitor=monitor)
    (event,) = [e for e in monitor.events if e.kind == "outside"]
    first = next(s for s in range(1, 11) if 0.953 + 0.01 * s - 1.0 > margin)
    assert (event.kind, event.step, event.system, event.entities) == ("outside", first, 0, [2])


def test_the_worst_of_a_divergence_is_kept_after_its_first_sighting(bouncing_dataset):
    """A particle that walks on through the floor after it first crosses the margin, joined by two more from
    step 8 and pulled back at step 9: the event keeps its first step and depth, and reports the deepest point, its
    step and the most particles outside at once, in words too."""
    from gns.rollout import worst_words

    simulator, state = _setup(bouncing_dataset)
    margin = OUTSIDE_MARGIN * 1.0                        # the unit box
    state.position[12, :, 1] = 0.0

    def rule(step, x):
        out = x[:, -1].clone()
        out[12, 1] = -0.005 * step if step < 9 else 0.5   # system 1, entity 2 sinks through the floor, then is back
        if step == 8:
            out[13:15, 1] = -margin - 0.001              # entities 3 and 4 just past the margin
        return out

    monitor = Monitor(divergence_checks(simulator))
    rollout(Scripted(rule), state, 12, monitor=monitor)
    (event,) = [e for e in monitor.events if e.kind == "outside"]
    first = next(s for s in range(1, 13) if 0.005 * s > margin)
    assert (event.step, event.system, event.entities, event.count) == (first, 1, [2], 1)
    assert event.detail == f"largest value {0.005 * first:.4g}"
    assert (event.worst_step, event.most) == (8, 3) and event.worst_value == pytest.approx(0.04)
    assert str(event).endswith("; at its worst 0.04 at step 8, up to 3 entities at once")
    assert worst_words({**vars(event), "worst_step": first, "most": 1}) == ""   # no worse than at first: nothing added


def test_runaway_energy(bouncing_dataset):
    simulator, state = _setup(bouncing_dataset)
    mean, std = simulator.velocity_normalizer.mean, simulator.velocity_normalizer.std
    limit = 0.5 * float(((mean.abs() + RUNAWAY_STD * std) ** 2).sum())

    def rule(step, x):                                    # system 1 speeds up: per-step speed 1e-4 * 2^step
        out = x[:, -1].clone()
        out[10:, 0] += 1e-4 * 2.0 ** step
        return out

    monitor = Monitor(divergence_checks(simulator))
    rollout(Scripted(rule), state, 14, monitor=monitor)
    energy = [e for e in monitor.events if e.kind == "energy"]
    first = next(s for s in range(1, 15) if 0.5 * (1e-4 * 2.0 ** s) ** 2 > limit)
    assert [(e.step, e.system, e.count) for e in energy] == [(first, 1, 10)]


def test_chunked_rollouts_name_their_state_and_stop_together(bouncing_dataset):
    simulator, state = _setup(bouncing_dataset)
    a, b = state.split()

    def rule(step, x):
        out = x[:, -1].clone()
        if step % 9 == 4 and float(x[0, -1, 0]) == float(b.position[0, -1, 0]):   # step 4 of b's rollout
            out[5] = float("inf")
        return out

    monitor = Monitor(divergence_checks(simulator), "stop")
    outs = rollout_many(Scripted(rule), [a, b, a], 9, [{}, {}, {}], max_entities=10, monitor=monitor)
    # an infinite position is non-finite, outside the box and of runaway energy, all at once
    assert {(e.kind, e.system, e.step) for e in monitor.events} == {("non-finite", 1, 4), ("outside", 1, 4),
                                                                     ("energy", 1, 4)}
    assert all(o["position"].shape[1] == 4 for o in outs)


def test_unknown_policy_is_refused():
    with pytest.raises(GnsInputError, match="on_divergence"):
        Monitor({}, "ignore")


def test_evaluation_reports_divergence(bouncing_dataset):
    from gns.domains import open_split_for
    from gns.evaluate import evaluate_split, format_table

    simulator, _ = _setup(bouncing_dataset)
    with torch.no_grad():                                # a model that pushes every particle out of the box
        simulator.network.decoder[-1].bias.fill_(50.0)
    summary = evaluate_split(simulator, open_split_for(simulator, bouncing_dataset, "test"), (1, 5), progress=False)
    events = summary["divergence"]["first_frame"]
    assert events and {e["kind"] for e in events} >= {"outside"} and events[0]["trajectory"] == "00000"
    assert "divergence of the model from the first frame" in format_table(summary)
    stopped = evaluate_split(simulator, open_split_for(simulator, bouncing_dataset, "test"), (1, 5), progress=False,
                             on_divergence="stop")
    assert stopped["steps"] < summary["steps"]


def test_escape_from_the_region_the_truth_occupies():
    from gns.particles.evaluate import escape_from_truth

    bounds = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    periodic = torch.tensor([False, False])
    truth = torch.tensor([[0.2, 0.2], [0.4, 0.3], [0.6, 0.6], [0.7, 0.8]])[:, None].repeat(1, 3, 1)   # (4, 3, 2)
    predicted = truth.clone()
    predicted[1, 2, 1] = 0.35            # system 0 (particles 0, 1): 0.05 above its true top at step 2
    predicted[3, 1, 0] = 0.71            # system 1 (particles 2, 3): 0.01 right of its true extent at step 1
    state = ParticleState(truth[:, :1], torch.zeros(4, dtype=torch.long), torch.tensor([2, 2]))
    worst, share = escape_from_truth(predicted, truth, state, torch.ones(4, dtype=torch.bool), bounds, periodic)
    assert worst.tolist() == pytest.approx([0.05, 0.01], abs=1e-6)
    assert share.tolist() == pytest.approx([0.5, 0.0])      # only system 0 goes past the 2% margin
