"""Planning on object scenes: push a target object into a goal region with the agent (``docs/objects.md``).

The task (:class:`GoalTask`): within ``steps`` steps, move the scene's *agent* so that another
object, the *target*, enters the goal region, a disc of ``radius`` around the point ``goal``. The
controller (:func:`gns.plan.closed_loop`) plans the agent's force over the next ``horizon`` steps,
executes the first ``replan_every`` of them in the reference solver (pymunk,
:func:`gns.solvers.objects2d.simulate`), and plans again from where the solver got to. It succeeds
when the target's centre is within ``radius`` of ``goal`` at some step.

Only the agent acts: every other object gets no action (zero force and torque), so that the
future depends on the plan alone and the three planners face the same world. The agent's torque is
not planned (zero): a torque barely moves another object and would add a third of the dimensions
to search. Forces are planned normalized, ``[-1, 1]`` per axis, times ``max_acceleration`` times the
agent's mass.

Planners (:data:`PLANNERS`), all through the same search and loop:

* ``learned``: candidates rolled out *as one batch* through a trained
  :class:`~gns.objects.simulator.ObjectSimulator`: the current window (the last ``window`` frames
  the solver produced, or the stored frames before the start) repeated once per candidate
  (:meth:`gns.state.State.repeat`), the candidates' forces as the ``action`` input field
  (:func:`gns.rollout.rollout`);
* ``solver``: the same search with the solver itself as the model, candidates simulated one after
  the other from the solver's exact current state: the upper bound;
* ``random``: uniformly random forces held for ``action_hold`` steps: the lower bound.

Cost of a candidate (lower is better), over its predicted ``horizon`` steps: the mean distance from
the target's centre to the goal; plus ``approach_weight`` times the mean distance from the agent's
centre to the *pushing point*, the point behind the target on the line from the goal through the
target, at the distance of the two centres when their bounding circles touch (without it a horizon
that does not reach the target sees a flat cost and the agent would not move; the pushing point
rather than the target's centre, so that the pull does not lead the agent round to the wrong side);
plus ``action_penalty`` times the mean squared normalized force.

Start states and goals (:func:`sample_tasks`): held-out trajectories (the test split), at frame
``start_frame`` (the frames before it are the learned model's history); the target is the object
nearest to the agent; the goal is drawn ``goal_distance`` from the target's centre in a uniformly
random direction, where the target would fit inside the box and clear of every object other than
the agent and the target, and where the target would not drift by itself (the solver run without
any action never brings it into the goal region), deterministically from ``(seed, trajectory index)``.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from gns.data.objects import ObjectScene, ObjectSplit, ObjectState, ObjectTrajectory, bounding_radius, readable
from gns.errors import GnsInputError
from gns.plan import LoopResult, check_search, closed_loop
from gns.progress import no_bar
from gns.rollout import rollout, stepper_device

__all__ = ["PlanConfig", "GoalTask", "PLANNERS", "check_task", "sample_tasks", "task_from_trajectory",
           "LearnedModel", "SolverModel", "Episode", "run_episode", "evaluate_planners", "plan_on_split",
           "format_planning"]

PLANNERS = ("learned", "solver", "random")
FORCE_DIMS = 2  # the planned components of the agent's action: force x, y (torque stays zero)


@dataclass(frozen=True)
class PlanConfig:
    """Every setting of object planning: the task, the search and the loop (the one source of defaults).

    ``gns plan --set KEY=VALUE`` overrides any field.
    """

    # --- the task
    steps: int = 60                    # steps an episode may take (2 s at the default set's 30 frames/s)
    goal_radius: float = 0.05          # m: the goal region is the disc of this radius about the goal point
    goal_distance: tuple[float, float] = (0.1, 0.2)  # m: the goal is drawn this far from the target's start centre
    start_frame: int = 2               # frame of a held-out trajectory an episode starts from; the frames before
                                       # it are the learned model's history (it needs start_frame >= history)
    max_acceleration: float = 3.0      # m/s^2: the agent's force per axis is at most this times its mass (the
                                       # default set pushes the agent with 2 m/s^2 std per axis)
    # --- the search (gns.plan.search)
    method: str = "cem"                # "cem" (cross-entropy method), "shooting" (random shooting) or "random" (no
                                       # search: uniformly random forces, what the random planner always uses)
    horizon: int = 20                  # steps each candidate looks ahead
    action_hold: int = 5               # a planned force is held this many steps (the knots of a sequence)
    candidates: int = 64               # sequences rolled out per iteration (the learned model: as one batch)
    iterations: int = 3                # CEM rounds per plan (shooting: always 1)
    elites: int = 8                    # CEM: the cheapest candidates of a round set the next round's Gaussian
    initial_std: float = 0.5           # CEM: std of the first round's Gaussian, in normalized force units
    replan_every: int = 5              # steps executed in the solver between plans (a multiple of action_hold)
    # --- the cost
    approach_weight: float = 0.1       # weight of the mean distance of the agent to the pushing point behind the
                                       # target (pulls the agent to where it can push the target goalwards)
    action_penalty: float = 0.01       # weight of the mean squared normalized force
    # --- reproducibility
    seed: int = 0                      # goals: rng([seed, trajectory index]); searches: seed * 1_000_003 + episode

    def __post_init__(self) -> None:
        object.__setattr__(self, "goal_distance", tuple(float(v) for v in self.goal_distance))
        check_search(self)
        bad = [(key, rule) for key, ok, rule in (
            ("steps", self.steps >= 1, ">= 1"), ("goal_radius", self.goal_radius > 0, "> 0 (m)"),
            ("goal_distance", len(self.goal_distance) == 2 and self.goal_radius < self.goal_distance[0]
             <= self.goal_distance[1], "(min, max) with goal_radius < min <= max"),
            ("start_frame", self.start_frame >= 1, ">= 1 (a learned model reads at least two frames)"),
            ("max_acceleration", self.max_acceleration > 0, "> 0 (m/s^2)"),
            ("approach_weight", self.approach_weight >= 0, ">= 0"),
            ("action_penalty", self.action_penalty >= 0, ">= 0")) if not ok]
        if bad:
            key, rule = bad[0]
            raise GnsInputError("bad planning setting", key=key, expected=rule, found=getattr(self, key))

    def with_overrides(self, items: Sequence[str] = (), **fields: Any) -> "PlanConfig":
        """This config with some fields replaced: ``fields`` as given (None: kept), then ``KEY=VALUE``
        strings (``gns plan --set``), each value typed like the field it sets.

        Raises:
            GnsInputError: an item that is not ``KEY=VALUE`` of a field, or a value of the wrong type.
        """
        from gns.config import coerce_value

        known = {f.name for f in dataclasses.fields(self)}
        changes = {key: value for key, value in fields.items() if value is not None}
        for item in items:
            key, equals, value = item.partition("=")
            if key not in known or not equals:
                raise GnsInputError("a planning setting must look like KEY=VALUE with a PlanConfig field", key=key,
                                    expected=sorted(known), found=item)
            changes[key] = coerce_value(value, getattr(self, key), key)
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, eq=False)
class GoalTask:
    """Bring object ``target`` of a scene into the disc of ``radius`` about ``goal`` by pushing ``agent``.

    Attributes:
        scene: the scene (K objects); its box bounds the goal.
        past: the frames up to and including the start (``P >= 1`` frames, ``P - 1`` actions): the
            solver starts from its last frame, a learned model reads its last ``window`` frames.
        target: index of the object to move.
        goal: ``(2,)`` the centre of the goal region (m).
        radius: of the goal region (m).
        agent: index of the object the planner pushes (the scene's ``agent`` by default).
        name: where the task comes from (e.g. ``"test/00003@2"``).
    """

    scene: ObjectScene
    past: ObjectTrajectory
    target: int
    goal: np.ndarray
    radius: float
    agent: int
    name: str = ""

    @property
    def start(self) -> ObjectState:
        """The solver's state at the start."""
        return self.past.state(self.past.num_frames - 1)


def check_task(task: GoalTask) -> None:
    """Check a task before an episode.

    Raises:
        GnsInputError: the agent or the target is not an object of the scene (or they are the same),
            the goal is not a finite point inside the box, or the radius is not positive; the message
            names the task, the key and the value.
    """
    count = task.scene.num_objects
    where = task.name or None
    if not isinstance(task.agent, (int, np.integer)) or not 0 <= task.agent < count:
        raise GnsInputError("the agent is not an object of the scene", file=where, key="agent",
                            expected=f"an index in [0, {count})", found=task.agent)
    if not isinstance(task.target, (int, np.integer)) or not 0 <= task.target < count or task.target == task.agent:
        raise GnsInputError("the target is not another object of the scene", file=where, key="target",
                            expected=f"an index in [0, {count}) other than the agent {task.agent}", found=task.target)
    goal, bounds = np.asarray(task.goal, dtype=np.float64), np.asarray(task.scene.bounds, dtype=np.float64)
    if goal.shape != (2,) or not np.isfinite(goal).all() or not ((bounds[:, 0] < goal) & (goal < bounds[:, 1])).all():
        raise GnsInputError("the goal is not a point inside the box", file=where, key="goal",
                            expected=f"(x, y) inside {readable(bounds)}", found=readable(goal))
    if not task.radius > 0:
        raise GnsInputError("the goal region needs a positive radius", file=where, key="goal_radius",
                            expected="> 0 (m)", found=task.radius)
    if task.past.num_objects != count:
        raise GnsInputError("the past frames do not match the scene's objects", file=where, key="past",
                            expected=f"{count} objects", found=task.past.num_objects)


# ============================================================================ start states and goals
def task_from_trajectory(trajectory: ObjectTrajectory, config: PlanConfig, solver_config: Any,
                         rng: np.random.Generator, name: str = "") -> GoalTask | None:
    """A goal task at frame ``config.start_frame`` of a trajectory (see the module docstring), or
    None when no goal fits (100 draws) or the scene has a single object.

    A goal the target would reach with no action at all (the solver run ``config.steps`` steps from
    the start with every action zero: objects still drift at the start) is drawn again, so that every
    task needs the agent.

    Raises:
        GnsInputError: the trajectory is shorter than ``start_frame + 1`` frames.
    """
    from gns.solvers.objects2d import simulate

    start = config.start_frame
    if trajectory.num_frames <= start:
        raise GnsInputError("the trajectory ends before the planning start frame", file=name or None,
                            key="start_frame", expected=f"< {trajectory.num_frames}", found=start)
    scene = trajectory.scene
    if scene.num_objects < 2:
        return None
    position = trajectory.position[start].astype(np.float64)                                         # (K, 2)
    agent = int(scene.agent)
    gaps = np.linalg.norm(position - position[agent], axis=-1)
    gaps[agent] = np.inf
    target = int(np.argmin(gaps))
    radius = bounding_radius(scene.shape, scene.size)                                                 # (K,)
    bounds = np.asarray(scene.bounds, dtype=np.float64)
    others = [k for k in range(scene.num_objects) if k not in (agent, target)]
    drift = simulate(scene, trajectory.state(start), None, solver_config, num_steps=config.steps).position[1:, target]
    for _ in range(100):
        heading = rng.uniform(0, 2 * np.pi)
        goal = position[target] + rng.uniform(*config.goal_distance) * np.array([np.cos(heading), np.sin(heading)])
        inside = ((bounds[:, 0] + radius[target] < goal) & (goal < bounds[:, 1] - radius[target])).all()
        clear = all(np.linalg.norm(goal - position[k]) >= radius[target] + radius[k] for k in others)
        needs_agent = np.linalg.norm(drift - goal, axis=-1).min() > config.goal_radius
        if inside and clear and needs_agent:
            past = ObjectTrajectory(scene, *(getattr(trajectory, a)[:start + 1] for a in
                                             ("position", "angle", "velocity", "angular_velocity")),
                                    action=trajectory.action[:start])
            return GoalTask(scene, past, target, goal.astype(np.float32), float(config.goal_radius), agent, name)
    return None


def sample_tasks(split: ObjectSplit, count: int, config: PlanConfig, solver_config: Any) -> list[GoalTask]:
    """Goal tasks from the first trajectories of a (held-out) split, one per trajectory in order,
    skipping those where no goal fits, until ``count`` (fewer when the split runs out).

    Deterministic: trajectory ``i``'s goal comes from ``np.random.default_rng([config.seed, i])``;
    ``solver_config`` is the dataset's physics (:func:`gns.solvers.objects2d.config_from_metadata`).
    """
    tasks: list[GoalTask] = []
    keys = split.keys()
    for index in range(len(split)):
        if len(tasks) == count:
            break
        window = split.read_window(index, 0, config.start_frame + 1)
        task = task_from_trajectory(window, config, solver_config, np.random.default_rng([config.seed, index]),
                                    f"{split.path.stem}/{keys[index]}@{config.start_frame}")
        if task is not None:
            tasks.append(task)
    return tasks


# ============================================================================ models of the future
class FutureModel(Protocol):
    """What a planner rolls candidates out with."""

    def futures(self, episode: "Episode", forces: Tensor) -> Tensor:
        """``(N, H, K, 2)`` object centres after each of ``H`` steps of ``(N, H, K, 3)`` actions, from now."""


class LearnedModel:
    """A trained :class:`~gns.objects.simulator.ObjectSimulator`: every candidate in one batched rollout."""

    def __init__(self, simulator: torch.nn.Module) -> None:
        self.simulator = simulator

    def futures(self, episode: "Episode", forces: Tensor) -> Tensor:
        """``(N, H, K, 2)`` centres predicted for ``(N, H, K, 3)`` actions: the current window repeated N
        times, the first action at its last frame, the others fed as the ``action`` input field.

        Raises:
            GnsInputError: fewer frames so far than the model's window (``start_frame`` too small).
        """
        count, horizon = forces.shape[0], forces.shape[1]
        window = episode.window(self.simulator.window)                                           # one scene
        device = stepper_device(self.simulator, torch.device("cpu"))
        batch = window.repeat(count).to(device)                                                   # N scenes
        forces = forces.to(device=device, dtype=batch.action.dtype)
        per_object = forces.transpose(1, 2).reshape(count * window.num_entities, horizon, 3)     # (N K, H, 3)
        batch = batch.with_field("action", torch.cat([batch.action[:, :-1], per_object[:, :1]], dim=1))
        later = torch.cat([per_object[:, 1:], torch.zeros_like(per_object[:, :1])], dim=1)       # (N K, H, 3)
        position = rollout(self.simulator, batch, horizon, {"action": later})["position"]        # (N K, H, 2)
        return position.reshape(count, window.num_entities, horizon, 2).transpose(1, 2)


class SolverModel:
    """The reference solver as the model: candidates simulated one by one from the exact current state."""

    def __init__(self, solver_config: Any) -> None:
        self.solver_config = solver_config

    def futures(self, episode: "Episode", forces: Tensor) -> Tensor:
        """``(N, H, K, 2)`` centres the solver reaches under ``(N, H, K, 3)`` actions."""
        from gns.solvers.objects2d import simulate

        actions = forces.detach().cpu().numpy()
        frames = [simulate(episode.task.scene, episode.state, a, self.solver_config).position[1:] for a in actions]
        return torch.from_numpy(np.stack(frames))


# ============================================================================ one episode
class Episode:
    """A task under way: the solver's state, the frames so far, and the cost of candidate plans.

    Args:
        task: the goal task (checked).
        model: rolls candidates out (None for the random planner, which evaluates none).
        config: the planning settings (cost weights, force bound).
        solver_config: the solver's physics (:func:`gns.solvers.objects2d.config_from_metadata`).
    """

    def __init__(self, task: GoalTask, model: FutureModel | None, config: PlanConfig, solver_config: Any) -> None:
        check_task(task)
        self.task, self.model, self.config, self.solver_config = task, model, config, solver_config
        past = task.past
        self.position = list(past.position)                                          # frames so far, each (K, 2)
        self.angle = list(past.angle)                                                # (K,)
        self.action = list(past.action)                                              # one fewer: (K, 3)
        self.state = task.start
        self.steps = 0
        self.reached_at: int | None = None
        self.distance = [self._distance(past.position[-1:])[0]]                      # target-goal, per frame
        radius = bounding_radius(task.scene.shape, task.scene.size)
        self._contact_distance = float(radius[task.agent] + radius[task.target])     # centres of touching shapes (m)

    def _distance(self, position: np.ndarray) -> np.ndarray:
        """``(F,)`` target-goal distance of ``(F, K, 2)`` frames."""
        return np.linalg.norm(position[:, self.task.target].astype(np.float64) - self.task.goal, axis=-1)

    @functools.cached_property
    def _static(self) -> tuple:
        from gns.objects.windows import scene_static

        return scene_static(self.task.scene)

    def window(self, frames: int):
        """The last ``frames`` frames as an :class:`~gns.objects.state.ObjectState` of one scene (the
        action at the last frame zero: the plan sets it).

        Raises:
            GnsInputError: fewer frames so far.
        """
        from gns.objects.windows import frames_to_state

        if len(self.position) < frames:
            raise GnsInputError("the model reads more frames than the episode has before its start", key="start_frame",
                                expected=f">= {frames - 1} (the model's window - 1)", found=len(self.position) - 1)
        zero = np.zeros_like(self.position[0], shape=(self.task.scene.num_objects, 3))
        action = np.stack([*self.action[len(self.action) - frames + 1:], zero])                   # (W, K, 3)
        return frames_to_state(np.stack(self.position[-frames:]), np.stack(self.angle[-frames:]), action,
                               self._static)

    def forces(self, actions: Tensor) -> Tensor:
        """``(N, H, K, 3)`` world actions of every object for ``(N, H, 2)`` normalized agent forces."""
        count, horizon = actions.shape[:2]
        scale = self.config.max_acceleration * float(self.task.scene.mass[self.task.agent])
        forces = torch.zeros(count, horizon, self.task.scene.num_objects, 3, dtype=torch.float32)
        forces[:, :, self.task.agent, :FORCE_DIMS] = actions.float() * scale
        return forces

    def cost(self, actions: Tensor) -> Tensor:
        """``(N,)`` cost of ``(N, H, 2)`` normalized candidates (module docstring), through the model."""
        if self.model is None:
            raise GnsInputError("this planner has no model to evaluate candidates with", key="model",
                                expected="a learned or solver model", found=None)
        position = self.model.futures(self, self.forces(actions))                                # (N, H, K, 2)
        goal = torch.as_tensor(self.task.goal, dtype=position.dtype, device=position.device)
        target, agent = position[:, :, self.task.target], position[:, :, self.task.agent]        # (N, H, 2)
        offset = goal - target                                                                    # (N, H, 2)
        to_goal = offset.norm(dim=-1)                                                             # (N, H)
        behind = target - offset / to_goal.clamp(min=1e-6)[..., None] * self._contact_distance   # (N, H, 2)
        approach = (agent - behind).norm(dim=-1).mean(1)                                          # (N,)
        to_goal = to_goal.mean(1)
        effort = actions.to(position.device, position.dtype).pow(2).mean((1, 2))
        return to_goal + self.config.approach_weight * approach + self.config.action_penalty * effort

    def execute(self, actions: Tensor) -> bool:
        """Run ``(S, 2)`` normalized agent forces in the solver; True once the target entered the goal."""
        from gns.solvers.objects2d import simulate

        forces = self.forces(actions[None])[0].numpy()                                            # (S, K, 3)
        frames = simulate(self.task.scene, self.state, forces, self.solver_config)
        self.position += list(frames.position[1:])
        self.angle += list(frames.angle[1:])
        self.action += list(forces)
        self.state = frames.state(frames.num_frames - 1)
        distance = self._distance(frames.position[1:])
        inside = np.flatnonzero(distance <= self.task.radius)
        if self.reached_at is None and inside.size:
            self.reached_at = self.steps + int(inside[0]) + 1
        self.distance += distance.tolist()
        self.steps += len(forces)
        return self.reached_at is not None

    def record(self, loop: LoopResult) -> dict[str, Any]:
        """The episode's outcome as JSON-able values."""
        return {"task": self.task.name, "target": self.task.target, "agent": self.task.agent,
                "goal": [float(v) for v in self.task.goal], "reached": self.reached_at is not None,
                "steps_to_goal": self.reached_at, "steps": self.steps, "start_distance": self.distance[0],
                "final_distance": self.distance[-1], "min_distance": min(self.distance), "plans": loop.plans,
                "candidates_evaluated": loop.evaluated, "plan_seconds": loop.plan_seconds,
                "solver_seconds": loop.execute_seconds}


def run_episode(task: GoalTask, model: FutureModel | None, config: PlanConfig, solver_config: Any,
                generator: torch.Generator) -> dict[str, Any]:
    """One closed-loop episode (:func:`gns.plan.closed_loop`) of ``config.method``, or of random forces
    when ``model`` is None; returns :meth:`Episode.record`."""
    if model is None:
        config = dataclasses.replace(config, method="random")
    episode = Episode(task, model, config, solver_config)
    loop = closed_loop(episode.cost, episode.execute, FORCE_DIMS, config.steps, config, generator)
    return episode.record(loop)


def _summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    reached = [r for r in records if r["reached"]]
    plan_s = sum(r["plan_seconds"] for r in records)
    evaluated = sum(r["candidates_evaluated"] for r in records)
    return {"episodes": len(records), "successes": len(reached),
            "success_rate": len(reached) / len(records) if records else float("nan"),
            "mean_steps_to_goal": float(np.mean([r["steps_to_goal"] for r in reached])) if reached else None,
            "mean_final_distance": float(np.mean([r["final_distance"] for r in records])) if records else None,
            "seconds_per_episode": (plan_s + sum(r["solver_seconds"] for r in records)) / max(len(records), 1),
            "candidates_per_second": evaluated / plan_s if evaluated and plan_s > 0 else None,
            "per_episode": records}


def evaluate_planners(tasks: Sequence[GoalTask], models: dict[str, FutureModel | None], config: PlanConfig,
                      solver_config: Any, *, progress: bool = False,
                      on_episode: Callable[[str, dict], None] | None = None) -> dict[str, Any]:
    """Every planner on every task; episode ``i`` of every planner draws from the same random stream.

    Args:
        tasks: the goal tasks.
        models: planner name -> its model (None: random forces), e.g. ``{"learned": LearnedModel(sim),
            "solver": SolverModel(solver_config), "random": None}``.
        config: the planning settings; solver_config: the solver's physics.
        progress: a progress bar over episodes (quiet when not on a terminal).
        on_episode: called with the planner's name and each episode's record.

    Returns:
        ``{"config", "planners": {name: summary}, "learned_vs_solver"}``: each summary holds the
        episodes, successes, ``success_rate``, the mean steps to the goal of the successes, the mean
        final target-goal distance, seconds per episode, candidates evaluated per second of planning
        and the per-episode records; ``learned_vs_solver`` is the ratio of the two success rates
        (None without both, or when the solver planner never succeeded).
    """
    planners: dict[str, Any] = {}
    for name, model in models.items():
        records = []
        for i, task in enumerate(tqdm(tasks, desc=f"plan ({name})", disable=no_bar(progress), leave=False)):
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + i)
            records.append(run_episode(task, model, config, solver_config, generator))
            if on_episode is not None:
                on_episode(name, records[-1])
        planners[name] = _summary(records)
    ratio = None
    if "learned" in planners and "solver" in planners and planners["solver"]["success_rate"] > 0:
        ratio = planners["learned"]["success_rate"] / planners["solver"]["success_rate"]
    return {"config": dataclasses.asdict(config), "planners": planners, "learned_vs_solver": ratio}


def plan_on_split(simulator: torch.nn.Module, dataset: str | Path, split: str, episodes: int, config: PlanConfig,
                  planners: Sequence[str] = PLANNERS, *, progress: bool = False,
                  on_episode: Callable[[str, dict], None] | None = None) -> dict[str, Any]:
    """``gns plan``: goal tasks from the first ``episodes`` trajectories of a split of ``dataset``
    (:func:`sample_tasks`), every planner of ``planners`` on them (:func:`evaluate_planners`), with
    the dataset's own solver physics.

    Returns:
        :func:`evaluate_planners`' result plus ``dataset`` and ``split``.

    Raises:
        GnsInputError: the dataset differs from the model's (box, time step, shape codes), it was not
            made by the Objects2D solver, an unknown planner, or no goal fits any trajectory.
    """
    from gns.domains import open_split_for
    from gns.solvers.objects2d import config_from_metadata

    unknown = [name for name in planners if name not in PLANNERS]
    if unknown:
        raise GnsInputError("unknown planner", key="planners", expected=list(PLANNERS), found=unknown)
    with open_split_for(simulator, dataset, split) as trajectories:
        solver = config_from_metadata(trajectories.metadata)
        tasks = sample_tasks(trajectories, episodes, config, solver)
        if not tasks:
            raise GnsInputError("no goal fits any trajectory of the split", file=trajectories.path,
                                key="goal_distance", expected="a goal inside the box, clear of the other objects",
                                found=config.goal_distance)
    models = {"learned": LearnedModel(simulator), "solver": SolverModel(solver), "random": None}
    result = evaluate_planners(tasks, {name: models[name] for name in planners}, config, solver, progress=progress,
                               on_episode=on_episode)
    return {**result, "dataset": str(dataset), "split": split}


def format_planning(result: dict[str, Any]) -> str:
    """Plain-text report of :func:`evaluate_planners`: one line per planner, then the ratio."""
    config = result["config"]
    lines = [f"goal: the target's centre within {config['goal_radius']} m of a point {config['goal_distance'][0]}-"
             f"{config['goal_distance'][1]} m away, within {config['steps']} steps; {config['method']}, "
             f"{config['candidates']} candidates x {config['iterations']} iterations, horizon {config['horizon']}, "
             f"re-planned every {config['replan_every']} steps",
             f"{'planner':>10}{'success':>10}{'rate':>8}{'steps to goal':>15}{'final dist m':>14}{'s/episode':>11}"
             f"{'candidates/s':>14}"]
    for name, s in result["planners"].items():
        steps = "-" if s["mean_steps_to_goal"] is None else f"{s['mean_steps_to_goal']:.1f}"
        rate = "-" if s["candidates_per_second"] is None else f"{s['candidates_per_second']:.0f}"
        lines.append(f"{name:>10}{s['successes']:>6}/{s['episodes']:<3}{s['success_rate']:>8.2f}{steps:>15}"
                     f"{s['mean_final_distance']:>14.3f}{s['seconds_per_episode']:>11.2f}{rate:>14}")
    ratio = result.get("learned_vs_solver")
    if ratio is not None:
        lines.append(f"learned / solver success: {ratio:.2f}")
    return "\n".join(lines)
