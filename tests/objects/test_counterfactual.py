"""Counterfactual queries on object scenes: the pymunk replay, paired futures, effect and collision scores, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from gns.cli import main
from gns.counterfactual import factual_scenario, run_counterfactuals
from gns.data.objects import open_object_split
from gns.domains import get_domain
from gns.errors import GnsInputError
from gns.interventions import Move, Remove, Resolved, Selection, apply_interventions, parse_interventions
from gns.rollout_io import read_rollouts

pytest.importorskip("pymunk")

STEPS = 12
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "interventions" / "objects2d.yaml"


@pytest.fixture(scope="module")
def setup(make_simulator, objects_dataset, test_windows):
    """An untrained model, its space, and the factual scenario and solver replay of test scene 0 at the model's
    first frame."""
    simulator = make_simulator()
    domain = get_domain("objects")
    start = simulator.window - 1
    factual = factual_scenario(test_windows, 0, start, STEPS, simulator.window, True)
    return (simulator, domain.intervention_space(simulator, objects_dataset), factual,
            domain.resimulator(simulator, objects_dataset, "test", 0, start), start)


class Oracle:
    """Stands in for the network: the exact inverse of decode + integrate for the next frames of ``truth``
    (field -> ``(N, S, F)``, every future of the batch in order)."""

    def __init__(self, simulator, truth: dict[str, torch.Tensor]) -> None:
        self.simulator, self.truth, self.t = simulator, truth, 0

    def __call__(self, state) -> torch.Tensor:
        target = self.simulator.target(state, {name: v[:, self.t] for name, v in self.truth.items()})
        self.t += 1
        return target


def test_the_replay_without_intervention_is_the_dataset_continuation(setup, objects_dataset, test_windows):
    simulator, _, _, _, start = setup
    later = start + 7
    replay = get_domain("objects").resimulator(simulator, objects_dataset, "test", 0, later)
    factual = factual_scenario(test_windows, 0, later, STEPS, simulator.window, True)
    truth, notes = replay.resimulate({"factual": factual}, STEPS)
    assert not notes
    with open_object_split(objects_dataset, "test") as split:
        stored = split[0]
    frames = slice(later + 1, later + 1 + STEPS)
    np.testing.assert_array_equal(truth["factual"]["position"].numpy(), stored.position[frames].transpose(1, 0, 2))
    np.testing.assert_array_equal(truth["factual"]["angle"][..., 0].numpy(), stored.angle[frames].T)


def test_an_oracle_answers_every_operation_as_the_solver_does(setup, make_simulator):
    """Every operation of the shipped example is replayed by the solver; a model that outputs the solver's
    accelerations has no effect error and agrees on every collision, and the solver's effects are not zero."""
    _, space, factual, replay, _ = setup
    variants, _ = parse_interventions(yaml.safe_load(EXAMPLE.read_text()), EXAMPLE)
    scenarios = {"factual": factual, **{n: apply_interventions(factual, v, space, n) for n, v in variants.items()}}
    truth, notes = replay.resimulate(scenarios, STEPS)
    assert not notes and list(truth) == list(scenarios)
    oracle = make_simulator()
    oracle.forward = Oracle(oracle, {name: torch.cat([truth[n][name] for n in scenarios])
                                     for name in ("position", "angle")})
    result = run_counterfactuals(oracle, factual, variants, STEPS, space, solver=replay, baselines=False,
                                 horizons=(1, 5, STEPS))
    for name in scenarios:
        for field_name in ("position", "angle"):
            assert torch.allclose(result.predicted[name][field_name], result.solver[name][field_name], atol=2e-5)
    for name in variants:
        scores = result.scores[name]
        assert scores["effect"]["model"]["full"] < 1e-9 and scores["effect_angle"]["model"]["full"] < 1e-8, name
        collisions = scores["collisions"]
        assert collisions["pairs"] == result.scenarios[name].state.num_entities * (
            result.scenarios[name].state.num_entities - 1) // 2
        assert set(collisions["agreement"]) == {"model", "no_effect"}
        assert all(share == 1.0 for table in ("agreement", "change_agreement")
                   for share in collisions[table]["model"].values()), name
    for name in ("move_0", "grow_0", "heavy_0", "kick_0", "stop_all", "push_0", "no_pushes"):
        assert result.scores[name]["effect"]["no_effect"]["full"] > 1e-10, name   # the solver's futures changed


def test_a_removed_object_is_absent_from_both_futures(setup, tmp_path):
    simulator, space, factual, replay, _ = setup
    from gns.counterfactual import write_counterfactuals
    from gns.domains import evaluation_for

    count = factual.state.num_entities
    result = run_counterfactuals(simulator, factual, {"gone": [Remove(Selection(index=(1,)))]}, STEPS, space,
                                 solver=replay, horizons=(1, STEPS))
    assert result.scenarios["gone"].origin.tolist() == [i for i in range(count) if i != 1]
    for source in (result.predicted, result.solver):
        assert source["gone"]["position"].shape == (count - 1, STEPS, 2)
        assert source["gone"]["angle"].shape == (count - 1, STEPS, 1)
        assert source["factual"]["position"].shape[0] == count
    assert result.scores["gone"]["collisions"]["pairs"] == (count - 1) * (count - 2) // 2
    write_counterfactuals(tmp_path / "cf.h5", result, evaluation_for(simulator), {"test": True})
    records, _ = read_rollouts(tmp_path / "cf.h5")
    assert [r.num_entities for r in records] == [count, count - 1]
    assert set(records[1].sources) == {"predicted", "solver"} and 1 not in records[1].static["origin"].tolist()


def test_the_solver_checks_every_scenario_before_anything_runs(setup):
    _, space, factual, replay, _ = setup
    position = factual.state.position[:, -1]
    offset = (position[0] - position[1]).numpy()
    onto = Resolved("move", np.array([1]), {"offset": offset})              # what the model-side check refuses
    bad = {"factual": factual, "onto": type(factual)(**{**vars(factual), "log": [onto]})}
    with pytest.raises(GnsInputError, match="cannot start from variant 'onto'.*overlap"):
        replay.prepare(bad, STEPS)
    retyped = {"retyped": type(factual)(**{**vars(factual), "log": [Resolved("set_type", np.array([0]), {})]})}
    states, notes = replay.prepare(retyped, STEPS)
    assert not states and "no counterpart of 'set_type'" in notes["retyped"]
    with pytest.raises(GnsInputError, match="would overlap"):           # and the model's own check, first
        apply_interventions(factual, [Move(Selection(index=(1,)), offset.tolist())], space, "onto")


def test_counterfactual_command_on_objects(tmp_path, capsys):
    """The CLI end to end: a tiny generated set, a model trained a few steps, the shipped example, a render."""
    dataset, run, out = tmp_path / "objects", tmp_path / "run", tmp_path / "cf.h5"
    assert main(["generate", "objects2d", "--out", str(dataset), "--small", "--param", "num_workers=1"]) == 0
    tiny = ["model.latent_size=16", "model.message_passing_steps=1", "model.hidden_layers=1", "train.steps=3",
            "train.batch_size=2", "train.log_every=3", "train.eval_every=3", "train.checkpoint_every=3",
            "train.valid_windows=2", "train.valid_rollouts=1", "train.valid_rollout_steps=2", "device=cpu"]
    assert main(["train", "--dataset", str(dataset), "--out", str(run), "--quiet",
                 *[item for key in tiny for item in ("--set", key)]]) == 0
    capsys.readouterr()
    assert main(["counterfactual", str(run), "--interventions", str(EXAMPLE), "--steps", "10", "--horizons", "1", "5",
                 "10", "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "9 futures" in text and "re-simulated" in text and "of the effect against the solver" in text
    assert "collisions:" in text and "collision outcome agrees with the solver" in text
    summary = json.loads(out.with_suffix(".json").read_text())
    collisions = summary["scores"]["kick_0"]["collisions"]
    assert set(collisions["agreement"]["model"]) == {"1", "5", "10", "full"}
    assert 0.0 <= collisions["change_agreement"]["model"]["full"] <= 1.0
    assert set(summary["scores"]["push_0"]["effect"]["model"]) == {"1", "5", "10", "full"}
    assert summary["variants"]["remove_0"]["solver"] == "re-simulated"
    assert main(["render", str(out), "--trajectory", "kick_0", "--out", str(tmp_path / "cf.gif"), "--stride", "5"]) == 0
    assert (tmp_path / "cf.gif").stat().st_size > 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("variants:\n  light: [{op: reweigh, select: {index: [1]}, mass: -1.0}]\n")
    assert main(["counterfactual", str(run), "--interventions", str(bad), "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "variants/light/0 (reweigh)" in err and "object 1: its mass must be positive" in err and "-1" in err


def test_scenes_with_obstacles_replay_intervene_and_roll_out(make_simulator, obstacles_dataset, obstacle_windows):
    """The solver re-runs an obstacle scene with its obstacles (the continuation of the stored one); moving an
    object into an obstacle is refused; a kick rolls out in the model and in the solver."""
    from gns.interventions import Kick

    simulator = make_simulator("objects.obstacles=true", dataset=obstacles_dataset)
    domain = get_domain("objects")
    start = simulator.window - 1
    factual = factual_scenario(obstacle_windows, 0, start, STEPS, simulator.window, True)
    assert int(factual.state.num_obstacles[0]) >= 1
    replay = domain.resimulator(simulator, obstacles_dataset, "test", 0, start)
    truth, notes = replay.resimulate({"factual": factual}, STEPS)
    assert not notes
    with open_object_split(obstacles_dataset, "test") as split:
        stored = split[0]
    np.testing.assert_array_equal(truth["factual"]["position"].numpy(),
                                  stored.position[start + 1:start + 1 + STEPS].transpose(1, 0, 2))
    space = domain.intervention_space(simulator, obstacles_dataset)
    centre = factual.state.system["obstacle_position"][0, 0]
    into = [Move(Selection(index=(0,)), (centre - factual.state.position[0, -1]).tolist())]
    with pytest.raises(GnsInputError, match="into a static obstacle"):
        apply_interventions(factual, into, space, "into")
    result = run_counterfactuals(simulator, factual, {"kick": [Kick(Selection(index=(0,)), [0.2, 0.0])]}, STEPS,
                                 space, solver=replay, baselines=False, horizons=(1, 5))
    assert result.solver["kick"]["position"].shape == result.predicted["kick"]["position"].shape
    assert result.scores["kick"]["effect"]["no_effect"]["full"] > 0
