"""Planning on object scenes: the solver-planner reaches an easy goal, CEM lowers the cost, batched
candidates equal single ones, the learned model is fed actions as the evaluator feeds them, bad tasks
are named, and `gns plan` end to end."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from gns.cli import build_parser, main
from gns.data.objects import ObjectScene, ObjectTrajectory, open_object_split, object_moment
from gns.errors import GnsInputError
from gns.objects.plan import (PLANNERS, Episode, GoalTask, LearnedModel, PlanConfig, SolverModel, evaluate_planners,
                              format_planning, run_episode, sample_tasks)
from gns.plan import search
from gns.rollout import rollout

pymunk = pytest.importorskip("pymunk")
from gns.solvers.objects2d import Objects2DConfig, config_from_metadata  # noqa: E402

# A few candidates, short horizons: seconds per episode with the solver as the model.
QUICK = PlanConfig(steps=30, horizon=10, action_hold=5, replan_every=5, candidates=16, iterations=2, elites=4)


def two_discs(gap: float = 0.02, goal=(0.6, 0.5), agent: int = 0) -> GoalTask:
    """The agent (a disc of 0.1 m) at rest just left of a disc of the same size; the goal 0.13 m right of it."""
    shape, size = np.zeros(2, np.int64), np.full((2, 2), 0.1, np.float32)
    mass = np.full(2, 0.4, np.float32)
    scene = ObjectScene(bounds=np.array([[0.0, 1.0], [0.0, 1.0]], np.float32), shape=shape, size=size, mass=mass,
                        moment=object_moment(shape, size, mass).astype(np.float32),
                        friction=np.full(2, 0.5, np.float32), restitution=np.full(2, 0.5, np.float32),
                        colour=np.array([[1.0, 0.2, 0.2], [0.2, 0.2, 1.0]], np.float32), agent=0)
    position = np.array([[[0.35, 0.5], [0.45 + gap, 0.5]]], np.float32)                            # (1, 2, 2)
    past = ObjectTrajectory(scene, position, np.zeros((1, 2), np.float32), np.zeros((1, 2, 2), np.float32),
                            np.zeros((1, 2), np.float32), np.zeros((0, 2, 3), np.float32))
    return GoalTask(scene, past, target=1, goal=np.asarray(goal, np.float32), radius=0.04, agent=agent, name="discs")


def test_the_solver_planner_pushes_a_nearby_target_into_the_goal():
    solver = Objects2DConfig()
    record = run_episode(two_discs(), SolverModel(solver), QUICK, solver, torch.Generator().manual_seed(0))
    assert record["reached"] and record["steps_to_goal"] <= 30, record
    assert record["min_distance"] <= 0.04 < record["start_distance"]
    idle = run_episode(two_discs(), None, dataclasses.replace(QUICK, max_acceleration=1e-6), solver,
                       torch.Generator().manual_seed(0))
    assert not idle["reached"]  # nothing reaches the goal by itself


@pytest.mark.parametrize("change, key", [({"goal": np.array([1.2, 0.5], np.float32)}, "goal"),
                                          ({"goal": np.array([np.nan, 0.5], np.float32)}, "goal"),
                                          ({"agent": 2}, "agent"), ({"agent": -1}, "agent"),
                                          ({"target": 0}, "target"), ({"radius": 0.0}, "goal_radius")])
def test_bad_tasks_are_named(change, key):
    task = dataclasses.replace(two_discs(), **change)
    with pytest.raises(GnsInputError, match=f"key '{key}'") as error:
        Episode(task, None, QUICK, Objects2DConfig())
    assert "discs" in str(error.value)


@pytest.mark.parametrize("change, key", [({"replan_every": 7}, "replan_every"), ({"goal_distance": (0.01, 0.1)},
                                                                                 "goal_distance"),
                                          ({"method": "newton"}, "method"), ({"max_acceleration": 0.0},
                                                                             "max_acceleration")])
def test_bad_settings_are_named(change, key):
    with pytest.raises(GnsInputError, match=f"key '{key}'"):
        PlanConfig(**change)


@pytest.fixture(scope="module")
def small_tasks(objects_dataset):
    with open_object_split(objects_dataset, "test") as split:
        solver = config_from_metadata(split.metadata)
        return sample_tasks(split, 2, QUICK, solver), solver


def test_tasks_are_held_out_start_states_with_reachable_goals(small_tasks, objects_dataset):
    tasks, solver = small_tasks
    assert [t.name for t in tasks] == ["test/00000@2", "test/00001@2"]
    with open_object_split(objects_dataset, "test") as split:
        again = sample_tasks(split, 2, QUICK, solver)
    for task, same in zip(tasks, again):
        assert np.array_equal(task.goal, same.goal) and task.target == same.target  # deterministic by seed
        start = task.past.position[-1]
        assert task.agent == task.scene.agent != task.target and task.past.num_frames == QUICK.start_frame + 1
        assert QUICK.goal_distance[0] - 1e-6 <= np.linalg.norm(task.goal - start[task.target]) \
            <= QUICK.goal_distance[1] + 1e-6
        assert ((task.goal > 0) & (task.goal < 1)).all()


def test_batched_candidates_equal_one_at_a_time(make_simulator, small_tasks):
    simulator = make_simulator()
    task = small_tasks[0][0]
    episode = Episode(task, LearnedModel(simulator), QUICK, small_tasks[1])
    forces = episode.forces(torch.rand(5, 7, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1)  # (5, 7, K, 3)
    batched = episode.model.futures(episode, forces)
    single = torch.cat([episode.model.futures(episode, forces[i:i + 1]) for i in range(5)])
    assert batched.shape == (5, 7, task.scene.num_objects, 2)
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(batched[0], batched[1])  # the candidates' forces matter


def test_candidates_are_fed_actions_as_the_evaluator_feeds_recorded_ones(make_simulator, small_tasks, test_windows):
    """The stored actions of every object as one candidate: the rollout of the evaluator's convention."""
    simulator = make_simulator()
    task, solver = small_tasks[0][0], small_tasks[1]
    start, steps, window = QUICK.start_frame, 6, simulator.window
    episode = Episode(task, LearnedModel(simulator), QUICK, solver)
    stored = test_windows.split.read_window(0, start, start + steps + 1).action                  # (H, K, 3)
    planned = episode.model.futures(episode, torch.from_numpy(stored)[None])[0]                 # (H, K, 2)
    truth = test_windows.read(0, start + 1 - window, start + 1 + steps)
    expected = rollout(simulator, truth.window(0, window), steps, {"action": truth.action[:, window:]})
    torch.testing.assert_close(planned, expected["position"].transpose(0, 1), atol=1e-6, rtol=1e-6)


def test_cem_lowers_the_cost_of_the_learned_model_over_iterations(make_simulator, small_tasks):
    task, solver = small_tasks[0][0], small_tasks[1]
    episode = Episode(task, LearnedModel(make_simulator()), QUICK, solver)
    settings = dataclasses.replace(QUICK, candidates=32, iterations=4)
    result = search(episode.cost, 2, settings, torch.Generator().manual_seed(0))
    elite = [r["elite_mean"] for r in result.iterations]
    assert elite[-1] < elite[0], elite
    assert result.cost <= min(r["best"] for r in result.iterations)


def test_the_three_planners_report_success_rates(make_simulator, small_tasks):
    tasks, solver = small_tasks
    models = {"learned": LearnedModel(make_simulator()), "solver": SolverModel(solver), "random": None}
    config = dataclasses.replace(QUICK, steps=10, candidates=4)
    result = evaluate_planners(tasks[:1], models, config, solver)
    assert list(result["planners"]) == list(PLANNERS)
    for name, summary in result["planners"].items():
        assert summary["episodes"] == 1 and 0 <= summary["success_rate"] <= 1
        assert summary["per_episode"][0]["steps"] <= 10
    assert result["planners"]["random"]["per_episode"][0]["candidates_evaluated"] == 0
    assert result["planners"]["learned"]["per_episode"][0]["candidates_evaluated"] > 0
    assert "learned" in format_planning(result)
    json.dumps(result)


def test_cli_plan_on_a_tiny_set(objects_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    tiny = ["model.latent_size=16", "model.message_passing_steps=1", "model.hidden_layers=1", "train.steps=3",
            "train.log_every=3", "train.eval_every=3", "train.valid_windows=2", "train.valid_rollouts=1",
            "train.valid_rollout_steps=2", "train.num_threads=1"]
    assert main(["train", "--dataset", str(objects_dataset), "--out", str(run), "--quiet", "--device", "cpu",
                 *[item for key in tiny for item in ("--set", key)]]) == 0
    out = tmp_path / "plan.json"
    assert main(["plan", str(run), "--episodes", "1", "--candidates", "4", "--iterations", "2", "--horizon", "5",
                 "--steps", "10", "--set", "replan_every=5", "--set", "elites=2", "--device", "cpu", "--quiet",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "learned / solver success" in printed or "solver" in printed
    result = json.loads(out.read_text())
    assert set(result["planners"]) == set(PLANNERS)
    assert result["config"]["candidates"] == 4 and result["config"]["replan_every"] == 5
    assert result["split"] == "test" and result["planners"]["solver"]["episodes"] == 1
    assert main(["plan", str(run), "--episodes", "1", "--set", "nonsense=1", "--out", str(out)]) == 2
    assert "nonsense" in capsys.readouterr().err
    choices = next(a for a in build_parser()._subparsers._group_actions[0].choices["plan"]._actions
                   if a.dest == "planners").choices
    assert tuple(choices) == PLANNERS
