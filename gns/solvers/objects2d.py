"""Objects2D: rigid discs, boxes and triangles in a walled 2D box, simulated with pymunk (Chipmunk2D).

The reference solver behind the object datasets (``docs/objects.md``), in the setting of
Interaction Networks and Visual Interaction Networks (Battaglia et al. 2016, Watters et al. 2017):
3-8 objects of random shape, size, mass, friction and restitution, seen from above on a table
(no gravity by default; ``damping`` stands in for the table's friction), pushed by random external
forces ("actions"), optionally joined by damped springs and obstructed by static obstacles. One
object per scene is the *agent*, the object a planner controls. Chipmunk2D, through pymunk, does all
of the physics: collision detection, the contact and spring solver and the integration.

Restart exactness. A pymunk space carries state that no stored array describes: cached contacts
whose impulses warm-start the next step, and shape ids given in order of insertion. So every frame
is simulated in a *fresh* space built from that frame's stored arrays, in a fixed order, with every
value already rounded to the stored dtype (float32): the state at each frame boundary, and the
scene's attributes and the actions before the simulation starts. Step ``t -> t + 1`` is therefore a
deterministic function of (scene, state ``t``, action ``t``, config) alone, and
``simulate(scene, trajectory.state(t), trajectory.action[t:], config)`` reproduces frames ``t..``
bit for bit, whatever happened before frame ``t``; an edited state (moved, removed, resized,
re-weighed or kicked objects, other actions) is simulated by the very same function. The price:
contacts restart cold at every frame (within a frame the ``substeps`` warm-start each other), so a
resting stack would jitter a little more than in a long-lived space; objects on a table do not stack.

Determinism. Each trajectory's initial scene and actions come from
``np.random.default_rng([seed, split_id, index])`` only, so a trajectory does not depend on how many
were generated, on the batch size or on the number of worker processes. Chipmunk runs on one thread.

pymunk is an optional dependency (``pip install "gns[solvers]"``), imported only by the functions
that simulate, so importing this module never requires it.
"""

from __future__ import annotations

import colorsys
import dataclasses
import functools
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from gns.data.objects import (ATTRIBUTE_ARRAYS, DISC, SHAPES, SPRING_ARRAYS, STATE_ARRAYS, WALLS, ObjectMetadata,
                              ObjectScene, ObjectState, ObjectTrajectory, bounding_radius, box_excursion,
                              canonical_scene, canonical_state, check_scene, inner_radius, local_vertices,
                              object_area, object_moment, readable)
from gns.errors import GnsInputError
from gns.solvers.common import (SPLITS, GeneratorConfig, NotResimulable, Replayer, batch_tasks, check_at_least,
                                check_positive, config_error, generator_config, generator_parser, package_version,
                                print_generation, run_batches, write_splits)

SOLVER_NAME = "gns.solvers.objects2d (pymunk / Chipmunk2D)"
SOLVER_VERSION = "1"
ACTION_TARGETS = ("all", "agent", "none")  # which objects the random actions push


@dataclass(frozen=True)
class Objects2DConfig(GeneratorConfig):
    """Every parameter of the Objects2D generator and solver (the one source of defaults).

    Units are SI: metres, seconds, kilograms (2D density in kg/m^2), newtons. The physics fields
    (time, box, physics) are recorded in ``metadata.json`` with the rest, so a dataset's solver
    can be rebuilt from its files (:func:`config_from_metadata`) to re-simulate it.
    """

    # --- dataset size and reproducibility
    seed: int = 0                      # root of every random stream: rng([seed, split_id, index])
    num_train: int = 800               # trajectories in train.h5
    num_valid: int = 100               # trajectories in valid.h5
    num_test: int = 100                # trajectories in test.h5 (planning needs 50 held-out start states)
    num_steps: int = 150               # steps per trajectory (metadata sequence_length): 151 frames, 5 s

    # --- time
    frame_dt: float = 1 / 30           # seconds between stored frames (metadata dt); actions change per frame
    substeps: int = 10                 # pymunk steps per frame: 3.3 ms, so a 1.5 m/s impact moves 5 mm a step

    # --- the box
    bounds: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 1.0), (0.0, 1.0))  # inner walls (m)
    wall_thickness: float = 0.25       # walls are solid boxes this thick: fast objects cannot tunnel through
    wall_friction: float = 1.0         # of walls and obstacles; Chipmunk multiplies the two shapes' values,
    wall_restitution: float = 1.0      # so 1 lets each object's own friction and restitution decide

    # --- objects (values drawn uniformly from each range, independently per object)
    min_objects: int = 3               # objects per scene, drawn uniformly in [min, max]
    max_objects: int = 8
    shape_kinds: tuple[str, ...] = ("disc", "box", "triangle")  # drawn uniformly; names of SHAPES
    size_range: tuple[float, float] = (0.08, 0.16)  # width (a disc's diameter) (m)
    aspect_range: tuple[float, float] = (0.5, 1.0)  # height / width of boxes and triangles
    density_range: tuple[float, float] = (25.0, 100.0)  # kg/m^2: masses of 0.05-2.4 kg in the default set
    friction_range: tuple[float, float] = (0.2, 0.8)
    restitution_range: tuple[float, float] = (0.3, 0.95)
    initial_speed_range: tuple[float, float] = (0.0, 0.5)  # m/s, in a uniformly random direction
    initial_angular_speed: float = 2.0  # rad/s: angular velocity uniform in [-this, this]
    placement_gap: float = 0.01        # minimum clearance between objects, obstacles and walls at the start (m)

    # --- springs (damped, centre to centre) between object pairs
    spring_probability: float = 0.0    # chance that a pair of objects is joined (0: no springs)
    spring_stiffness_range: tuple[float, float] = (5.0, 20.0)  # N/m
    spring_damping_range: tuple[float, float] = (0.0, 0.5)  # N s/m
    spring_rest_scale_range: tuple[float, float] = (0.8, 1.2)  # rest length / initial distance

    # --- static obstacles
    min_obstacles: int = 0             # obstacles per scene, drawn uniformly in [min, max] (0: none)
    max_obstacles: int = 0
    obstacle_shape_kinds: tuple[str, ...] = ("disc", "box")
    obstacle_size_range: tuple[float, float] = (0.08, 0.2)  # width (m); boxes take aspect_range too

    # --- actions: random forces and torques at each object's centre of mass, held for a few frames
    action_objects: str = "all"        # which objects are pushed: "all", "agent" or "none"
    action_acceleration_std: float = 1.0  # m/s^2: force = mass * N(0, std^2) per axis (light and heavy alike)
    action_angular_acceleration_std: float = 5.0  # rad/s^2: torque = moment * N(0, std^2)
    action_hold_frames: int = 5        # a random action is redrawn every this many frames (smooth pushes)
    agent_action_scale: float = 2.0    # the agent is pushed this much harder than the other objects

    # --- physics
    gravity: tuple[float, float] = (0.0, 0.0)  # m/s^2; top-down table. (0, -9.81) for a side view
    damping: float = 0.5               # fraction of (angular) velocity kept after 1 s without contact (pymunk)
    solver_iterations: int = 10        # Chipmunk's contact / spring solver iterations per substep
    collision_slop: float = 0.001      # overlap Chipmunk leaves unresolved (m; its default 0.1 is for pixels)
    overlap_tolerance: float = 0.02    # a given state may overlap objects or cross walls this much (m): the
                                       # solver's own frames do (slop, impacts: 6.5 mm at most in the default
                                       # set); deeper is an error

    # --- execution (never changes the data)
    num_workers: int = 2               # worker processes
    scenes_per_batch: int = 25         # trajectories per worker job

    def __post_init__(self) -> None:
        # Overrides from YAML/JSON/CLI arrive as (nested) lists: store tuples so the config stays
        # immutable and equal to the same config written in Python.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (list, tuple)):
                value = tuple(tuple(v) if isinstance(v, (list, tuple)) else v for v in value)
                object.__setattr__(self, f.name, value)
        _validate_config(self)

    @classmethod
    def small(cls, **overrides) -> "Objects2DConfig":
        """A seconds-long smoke-test dataset (4 / 2 / 2 trajectories of 40 steps)."""
        return cls(**{"num_train": 4, "num_valid": 2, "num_test": 2, "num_steps": 40, **overrides})

    @property
    def substep_dt(self) -> float:
        """Seconds per pymunk step."""
        return self.frame_dt / self.substeps


def _validate_config(c: Objects2DConfig) -> None:
    bad = functools.partial(config_error, c)
    check_at_least(c, ("num_train", "num_valid", "num_test", "min_obstacles"), 0)
    check_at_least(c, ("num_steps", "substeps", "solver_iterations", "min_objects", "action_hold_frames",
                       "num_workers", "scenes_per_batch"), 1)
    check_positive(c, ("frame_dt", "wall_thickness", "damping", "collision_slop", "overlap_tolerance"))
    if not c.min_objects <= c.max_objects:
        raise bad("min_objects/max_objects", "min_objects <= max_objects", (c.min_objects, c.max_objects))
    if not c.min_obstacles <= c.max_obstacles:
        raise bad("min_obstacles/max_obstacles", "min_obstacles <= max_obstacles", (c.min_obstacles, c.max_obstacles))
    for key, kinds in (("shape_kinds", c.shape_kinds), ("obstacle_shape_kinds", c.obstacle_shape_kinds)):
        if not kinds or any(k not in SHAPES for k in kinds):
            raise bad(key, f"a non-empty tuple of {list(SHAPES)}", kinds)
    if c.action_objects not in ACTION_TARGETS:
        raise bad("action_objects", " or ".join(ACTION_TARGETS), c.action_objects)
    for key in ("size_range", "aspect_range", "density_range", "obstacle_size_range", "spring_rest_scale_range"):
        low, high = getattr(c, key)
        if not 0 < low <= high:
            raise bad(key, "0 < min <= max", getattr(c, key))
    for key in ("friction_range", "restitution_range", "initial_speed_range", "spring_stiffness_range",
                "spring_damping_range"):
        low, high = getattr(c, key)
        if not 0 <= low <= high:
            raise bad(key, "0 <= min <= max", getattr(c, key))
    if c.aspect_range[1] > 1:
        raise bad("aspect_range", "at most 1 (width is the longer side)", c.aspect_range)
    if not c.damping <= 1:
        raise bad("damping", "in (0, 1]: the fraction of velocity kept per second", c.damping)
    if not 0 <= c.spring_probability <= 1:
        raise bad("spring_probability", "in [0, 1]", c.spring_probability)
    for key in ("initial_angular_speed", "action_acceleration_std", "action_angular_acceleration_std",
                "agent_action_scale", "wall_friction", "wall_restitution", "placement_gap"):
        if not getattr(c, key) >= 0:
            raise bad(key, ">= 0", getattr(c, key))
    bounds = np.asarray(c.bounds, dtype=float)
    if bounds.shape != (2, 2) or not (bounds[:, 0] < bounds[:, 1]).all():
        raise bad("bounds", "((xlo, xhi), (ylo, yhi)) with lo < hi", c.bounds)
    if np.asarray(c.gravity, dtype=float).shape != (2,):
        raise bad("gravity", "(gx, gy)", c.gravity)
    largest = max(c.size_range[1], c.obstacle_size_range[1]) * math.sqrt(2) + 2 * c.placement_gap
    if largest > (bounds[:, 1] - bounds[:, 0]).min():
        raise bad("size_range", "objects (plus gaps) that fit in the box", c.size_range)


# ---------------------------------------------------------------------------------------------------
# Random scenes and actions (numpy only)
# ---------------------------------------------------------------------------------------------------


def sample_scene(config: Objects2DConfig, split_id: int, index: int) -> tuple[ObjectScene, ObjectState, np.ndarray]:
    """The scene, initial state and random actions of trajectory ``index`` of split ``split_id``.

    Depends only on ``(config, split_id, index)``: the random stream is
    ``np.random.default_rng([config.seed, split_id, index])``. Everything is rounded to the stored
    dtypes (see :func:`gns.data.objects.canonical_scene`).

    Returns:
        the scene (K objects), the initial state, and ``(num_steps, K, 3)`` float32 actions.

    Raises:
        GnsInputError: the objects could not be placed in 100 tries (too many or too large).
    """
    rng = np.random.default_rng([config.seed, split_id, index])
    for _ in range(100):
        drawn = _draw_scene(config, rng)
        if drawn is not None:
            scene, state = drawn
            return scene, state, sample_actions(config, scene, config.num_steps, rng)
    raise GnsInputError("could not place the objects without overlap in 100 tries; lower max_objects or "
                        "size_range", key="size_range", found=config.size_range)


def _draw_scene(config: Objects2DConfig, rng: np.random.Generator) -> tuple[ObjectScene, ObjectState] | None:
    """One random scene and initial state, or None when the shapes did not fit in the box."""
    bounds = np.asarray(config.bounds, dtype=np.float64)
    num_obstacles = int(rng.integers(config.min_obstacles, config.max_obstacles + 1))
    obstacle_shape, obstacle_size = _draw_shapes(config, rng, num_obstacles, config.obstacle_shape_kinds,
                                                 config.obstacle_size_range)
    num_objects = int(rng.integers(config.min_objects, config.max_objects + 1))
    shape, size = _draw_shapes(config, rng, num_objects, config.shape_kinds, config.size_range)
    radius = bounding_radius(np.concatenate([obstacle_shape, shape]), np.concatenate([obstacle_size, size]))
    centres = _place(bounds, radius, config.placement_gap, rng)
    if centres is None:
        return None
    mass = (rng.uniform(*config.density_range, num_objects) * object_area(shape, size)).astype(np.float32)
    pairs = [(i, j) for i in range(num_objects) for j in range(i + 1, num_objects)]
    joined = [p for p, u in zip(pairs, rng.uniform(size=len(pairs))) if u < config.spring_probability]
    position = centres[num_obstacles:]
    distance = np.array([np.linalg.norm(position[i] - position[j]) for i, j in joined]).reshape(-1)
    scene = ObjectScene(
        bounds=bounds, shape=shape, size=size, mass=mass, moment=object_moment(shape, size, mass),
        friction=rng.uniform(*config.friction_range, num_objects),
        restitution=rng.uniform(*config.restitution_range, num_objects),
        colour=_distinct_colours(num_objects, rng), agent=int(rng.integers(num_objects)),
        spring_pairs=np.array(joined, dtype=np.int64).reshape(-1, 2),
        spring_rest_length=distance * rng.uniform(*config.spring_rest_scale_range, len(joined)),
        spring_stiffness=rng.uniform(*config.spring_stiffness_range, len(joined)),
        spring_damping=rng.uniform(*config.spring_damping_range, len(joined)),
        obstacle_shape=obstacle_shape, obstacle_position=centres[:num_obstacles],
        obstacle_angle=rng.uniform(-np.pi, np.pi, num_obstacles), obstacle_size=obstacle_size)
    speed = rng.uniform(*config.initial_speed_range, num_objects)
    heading = rng.uniform(0, 2 * np.pi, num_objects)
    state = ObjectState(
        position=position, angle=rng.uniform(-np.pi, np.pi, num_objects),
        velocity=speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], 1),
        angular_velocity=rng.uniform(-config.initial_angular_speed, config.initial_angular_speed, num_objects))
    return canonical_scene(scene), canonical_state(state)


def _draw_shapes(config: Objects2DConfig, rng: np.random.Generator, count: int, kinds: Sequence[str],
                 size_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """``(count,)`` shape codes and ``(count, 2)`` float32 sizes (rounded first: mass and moment
    are computed from the sizes that are stored)."""
    shape = np.array([SHAPES[k] for k in kinds], dtype=np.int64)[rng.integers(len(kinds), size=count)]
    width = rng.uniform(*size_range, count)
    height = np.where(shape == DISC, width, width * rng.uniform(*config.aspect_range, count))
    return shape, np.stack([width, height], 1).astype(np.float32)


def _place(bounds: np.ndarray, radius: np.ndarray, gap: float, rng: np.random.Generator) -> np.ndarray | None:
    """``(N, 2)`` centres of N bounding circles, ``gap`` apart and inside the walls; None when stuck."""
    centres: list[np.ndarray] = []
    for r in radius:
        for _attempt in range(200):
            candidate = rng.uniform(bounds[:, 0] + r + gap, bounds[:, 1] - r - gap)
            if all(np.linalg.norm(candidate - c) >= r + radius[i] + gap for i, c in enumerate(centres)):
                centres.append(candidate)
                break
        else:
            return None
    return np.array(centres).reshape(-1, 2)


def _distinct_colours(count: int, rng: np.random.Generator) -> np.ndarray:
    """``(count, 3)`` saturated, bright RGB colours with evenly spread hues (objects stay
    distinguishable in rendered video: the slots learned from it need that)."""
    hues = (rng.uniform() + np.arange(count) / count + rng.uniform(-0.2, 0.2, count) / count) % 1.0
    rng.shuffle(hues)
    saturation, value = rng.uniform(0.6, 1.0, count), rng.uniform(0.75, 1.0, count)
    return np.array([colorsys.hsv_to_rgb(h, s, v) for h, s, v in zip(hues, saturation, value)]).reshape(-1, 3)


def sample_actions(config: Objects2DConfig, scene: ObjectScene, num_steps: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Random actions: forces and torques redrawn every ``action_hold_frames`` frames.

    Force ``mass * N(0, action_acceleration_std^2)`` per axis and torque
    ``moment * N(0, action_angular_acceleration_std^2)``, so light and heavy objects are pushed
    alike; the agent ``agent_action_scale`` times harder; objects that ``action_objects`` leaves
    out get zeros.

    Returns:
        ``(num_steps, K, 3)`` float32 (N, N, N m).
    """
    count, hold = scene.num_objects, config.action_hold_frames
    blocks = -(-num_steps // hold)
    acceleration = rng.normal(0.0, config.action_acceleration_std, (blocks, count, 2))
    angular = rng.normal(0.0, config.action_angular_acceleration_std, (blocks, count, 1))
    scale = np.zeros(count) if config.action_objects != "all" else np.ones(count)
    if config.action_objects != "none":
        scale[scene.agent] = config.agent_action_scale
    force = acceleration * (scene.mass * scale)[:, None]                  # (blocks, K, 2)
    torque = angular * (scene.moment * scale)[:, None]                    # (blocks, K, 1)
    actions = np.repeat(np.concatenate([force, torque], -1), hold, axis=0)[:num_steps]
    return actions.astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# The solver (pymunk)
# ---------------------------------------------------------------------------------------------------


def _import_pymunk():
    try:
        import pymunk
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError('The Objects2D solver needs pymunk: pip install "gns[solvers]"') from error
    return pymunk


class _Frame:
    """A fresh pymunk space holding one frame: walls, obstacles, the objects at their state, the
    springs, and a contact recorder. Built in a fixed order, so that shape ids (which order the
    contact solver) are the same whenever the same frame is built."""

    def __init__(self, scene: ObjectScene, state: ObjectState, config: Objects2DConfig) -> None:
        pymunk = _import_pymunk()
        count = scene.num_objects
        self.space = space = pymunk.Space()
        space.iterations = config.solver_iterations
        space.gravity = tuple(float(g) for g in config.gravity)
        space.damping = config.damping
        space.collision_slop = config.collision_slop
        # Contact columns: objects 0..K-1, then the walls in WALLS order, then the obstacles.
        self.touch = np.zeros((count, count + len(WALLS) + scene.num_obstacles), dtype=bool)
        tags = _add_static(pymunk, space, scene, config, first_column=count)
        self.bodies = []
        for k in range(count):
            body = pymunk.Body(float(scene.mass[k]), float(scene.moment[k]))
            body.position, body.angle = _vec(state.position[k]), float(state.angle[k])
            body.velocity, body.angular_velocity = _vec(state.velocity[k]), float(state.angular_velocity[k])
            shape = _make_shape(pymunk, body, int(scene.shape[k]), scene.size[k])
            shape.friction, shape.elasticity = float(scene.friction[k]), float(scene.restitution[k])
            space.add(body, shape)
            tags[shape] = k
            self.bodies.append(body)
        for (a, b), rest, stiffness, damping in zip(scene.spring_pairs, scene.spring_rest_length,
                                                    scene.spring_stiffness, scene.spring_damping):
            space.add(pymunk.DampedSpring(self.bodies[a], self.bodies[b], (0.0, 0.0), (0.0, 0.0), float(rest),
                                          float(stiffness), float(damping)))

        def record(arbiter, _space, _data) -> None:  # called for every touching pair after each substep
            i, j = tags[arbiter.shapes[0]], tags[arbiter.shapes[1]]
            if i < count:
                self.touch[i, j] = True
            if j < count:
                self.touch[j, i] = True

        space.on_collision(None, None, post_solve=record)

    def step(self, action: np.ndarray, dt: float, substeps: int) -> ObjectState:
        """Advance one frame under ``(K, 3)`` actions; return the new state rounded to float32."""
        pushes = [(_vec(a[:2]), float(a[2])) for a in action]
        for _ in range(substeps):
            for body, (force, torque) in zip(self.bodies, pushes):  # Chipmunk clears them every step
                body.force, body.torque = force, torque
            self.space.step(dt)
        return ObjectState(
            position=np.array([tuple(b.position) for b in self.bodies], dtype=np.float64).astype(np.float32),
            angle=np.array([b.angle for b in self.bodies], dtype=np.float64).astype(np.float32),
            velocity=np.array([tuple(b.velocity) for b in self.bodies], dtype=np.float64).astype(np.float32),
            angular_velocity=np.array([b.angular_velocity for b in self.bodies], dtype=np.float64).astype(np.float32))


def _add_static(pymunk, space, scene: ObjectScene, config: Objects2DConfig, first_column: int) -> dict[Any, int]:
    """Add the four walls and the obstacles to ``space``; return shape -> contact column (walls from
    ``first_column`` in ``WALLS`` order, then the obstacles)."""
    tags: dict[Any, int] = {}
    for column, wall in enumerate(_wall_boxes(scene.bounds, config.wall_thickness)):
        shape = pymunk.Poly.create_box_bb(space.static_body, pymunk.BB(*wall))
        shape.friction, shape.elasticity = config.wall_friction, config.wall_restitution
        space.add(shape)
        tags[shape] = first_column + column
    for o in range(scene.num_obstacles):
        body = pymunk.Body(body_type=pymunk.Body.STATIC)
        body.position, body.angle = _vec(scene.obstacle_position[o]), float(scene.obstacle_angle[o])
        shape = _make_shape(pymunk, body, int(scene.obstacle_shape[o]), scene.obstacle_size[o])
        shape.friction, shape.elasticity = config.wall_friction, config.wall_restitution
        space.add(body, shape)
        tags[shape] = first_column + len(WALLS) + o
    return tags


def _vec(values: np.ndarray) -> tuple[float, float]:
    return float(values[0]), float(values[1])


def _make_shape(pymunk, body, shape: int, size: np.ndarray):
    """The pymunk shape of a ``SHAPES`` code with its ``(width, height)`` (geometry: gns.data.objects)."""
    if shape == DISC:
        return pymunk.Circle(body, float(size[0]) / 2)
    return pymunk.Poly(body, [tuple(v) for v in local_vertices(shape, size)])


def _wall_boxes(bounds: np.ndarray, thickness: float) -> list[tuple[float, float, float, float]]:
    """``(left, bottom, right, top)`` of the four solid walls, in ``WALLS`` order; their inner faces
    are the box's bounds exactly."""
    (xlo, xhi), (ylo, yhi) = np.asarray(bounds, dtype=np.float64).tolist()
    return [(xlo - thickness, ylo - thickness, xlo, yhi + thickness),   # left
            (xhi, ylo - thickness, xhi + thickness, yhi + thickness),   # right
            (xlo - thickness, ylo - thickness, xhi + thickness, ylo),   # bottom
            (xlo - thickness, yhi, xhi + thickness, yhi + thickness)]   # top


def simulate(scene: ObjectScene, state: ObjectState, actions: np.ndarray | None,
             config: Objects2DConfig = Objects2DConfig(), *, num_steps: int | None = None) -> ObjectTrajectory:
    """Simulate a scene from a state under given actions: the solver's one entry point.

    Use it to make data and to re-simulate any stored or edited state: a stored frame ``t`` with the
    stored actions from ``t`` reproduces the stored frames ``t..`` bit for bit (see the module
    docstring). Edits: move or kick objects (``state``), remove them (``scene.select`` and
    ``state.select``), resize or re-weigh them (``scene`` arrays; keep ``moment`` consistent with
    ``gns.data.objects.object_moment``), or change the actions.

    Args:
        scene: the static part (K objects); rounded to the stored dtypes first.
        state: the first frame; rounded to float32 first.
        actions: ``(S, K, 3)`` force x, y (N) and torque (N m) per step and object, rounded to
            float32; None for no actions (then ``num_steps`` is needed).
        config: the physics (time step, substeps, walls, damping, gravity, solver settings); the
            dataset's own comes from :func:`config_from_metadata`.
        num_steps: S, when given: ``actions`` must cover exactly that many steps.

    Returns:
        An ``ObjectTrajectory`` of ``S + 1`` frames (the first is ``state``), with the actions and
        the contacts of every step.

    Raises:
        GnsInputError: a bad scene (non-positive mass or size, ...: see
            ``gns.data.objects.check_scene``), a state of the wrong shape or not finite, objects
            overlapping each other or an obstacle, or reaching outside the box, by more than
            ``config.overlap_tolerance``, or actions of the wrong shape or length. The message
            names the object index and the value.
    """
    scene, state = canonical_scene(scene), canonical_state(state)
    check_scene(scene)
    check_state(scene, state, config)
    actions = _check_actions(actions, scene.num_objects, num_steps)
    count, steps = scene.num_objects, len(actions)
    states = [state]
    touch = np.zeros((steps, count, count + len(WALLS) + scene.num_obstacles), dtype=bool)
    for t in range(steps):
        frame = _Frame(scene, states[-1], config)  # fresh: nothing but the stored arrays carries over
        states.append(frame.step(actions[t], config.substep_dt, config.substeps))
        touch[t] = frame.touch
        if not np.isfinite(states[-1].position).all():
            raise FloatingPointError(f"Objects2D simulation produced non-finite positions at step {t}")
    walls = slice(count, count + len(WALLS))
    return ObjectTrajectory(
        scene=scene, **{name: np.stack([getattr(s, name) for s in states]) for name in STATE_ARRAYS},
        action=actions, contacts=touch[:, :, :count], wall_contacts=touch[:, :, walls],
        obstacle_contacts=touch[:, :, walls.stop:])


def _check_actions(actions: np.ndarray | None, count: int, num_steps: int | None) -> np.ndarray:
    """``(S, K, 3)`` float32 actions, checked; zeros when None."""
    if actions is None:
        if num_steps is None:
            raise GnsInputError("without actions, say how many steps to simulate", key="num_steps",
                                expected="an integer >= 1", found=None)
        actions = np.zeros((num_steps, count, 3), dtype=np.float32)
    actions = np.asarray(actions)
    steps = "S" if num_steps is None else num_steps
    if actions.ndim != 3 or actions.shape[1:] != (count, 3) or len(actions) < 1:
        raise GnsInputError("actions must hold force x, y and torque per step and object", key="actions",
                            expected=f"shape ({steps}, {count}, 3), S >= 1", found=f"shape {actions.shape}")
    if num_steps is not None and len(actions) != num_steps:
        raise GnsInputError(f"actions cover {len(actions)} steps, not the {num_steps} asked for", key="actions",
                            expected=f"shape ({num_steps}, {count}, 3)", found=f"shape {actions.shape}")
    finite = np.isfinite(actions)
    if not finite.all():
        step, k, component = (int(i) for i in np.argwhere(~finite)[0])
        raise GnsInputError(f"object {k}: non-finite action at step {step}", key="actions",
                            expected="finite values", found=readable(actions[step, k]))
    return actions.astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# Checking states: overlaps and walls
# ---------------------------------------------------------------------------------------------------


def check_state(scene: ObjectScene, state: ObjectState, config: Objects2DConfig = Objects2DConfig()) -> None:
    """Check that a state can start a simulation of ``scene``.

    Raises:
        GnsInputError: arrays of the wrong shape or not finite; objects that overlap each other or
            an obstacle, or reach outside the box, by more than ``config.overlap_tolerance`` (the
            message names the objects, the depth and their positions).
    """
    count = scene.num_objects
    for name, width in zip(STATE_ARRAYS, ((2,), (), (2,), ())):
        values = np.asarray(getattr(state, name))
        if values.shape != (count, *width):
            raise GnsInputError(f"the state's {name} does not match the scene's {count} objects", key=f"state/{name}",
                                expected=f"shape {(count, *width)}", found=f"shape {values.shape}")
        finite = np.isfinite(values)
        if not finite.all():
            k = int(np.argwhere(~finite)[0][0])
            raise GnsInputError(f"object {k}: non-finite {name}", key=f"state/{name}", expected="finite values",
                                found=readable(values[k]))
    tolerance = config.overlap_tolerance
    outside = box_excursion(scene.shape, scene.size, state.position, state.angle, scene.bounds)      # (K,)
    if outside.max(initial=0.0) > tolerance:
        k = int(outside.argmax())
        raise GnsInputError(f"object {k} reaches {outside[k]:.4g} m outside the box {readable(scene.bounds)}",
                            key="state/position", expected=f"at most overlap_tolerance = {tolerance} m outside",
                            found=readable(state.position[k]))
    obstacles = box_excursion(scene.obstacle_shape, scene.obstacle_size, scene.obstacle_position,
                              scene.obstacle_angle, scene.bounds)
    if obstacles.max(initial=0.0) > tolerance:
        o = int(obstacles.argmax())
        raise GnsInputError(f"obstacle {o} reaches {obstacles[o]:.4g} m outside the box", key="obstacle_position",
                            expected=f"at most overlap_tolerance = {tolerance} m outside",
                            found=readable(scene.obstacle_position[o]))
    depth = overlap_depths(scene, state.position[None], state.angle[None])[0]                      # (K, K + O)
    if depth.max(initial=0.0) > tolerance:
        i, j = (int(v) for v in np.unravel_index(depth.argmax(), depth.shape))
        other = f"object {j}" if j < count else f"obstacle {j - count}"
        where = state.position[j] if j < count else scene.obstacle_position[j - count]
        raise GnsInputError(f"object {i} and {other} overlap by {depth[i, j]:.4g} m", key="state/position",
                            expected=f"an overlap of at most overlap_tolerance = {tolerance} m",
                            found={f"object {i}": readable(state.position[i]), other: readable(where)})


def overlap_depths(scene: ObjectScene, position: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """How deep objects overlap each other and the obstacles, frame by frame (Chipmunk's geometry).

    Args:
        scene: the shapes.
        position, angle: ``(F, K, 2)``, ``(F, K)`` object states over F frames.

    Returns:
        ``(F, K, K + O)`` float64 penetration depths (m; 0 apart), column ``K + o`` obstacle ``o``;
        symmetric in its first K columns.
    """
    pymunk = _import_pymunk()
    count, frames = scene.num_objects, len(position)
    shapes = np.concatenate([scene.shape, scene.obstacle_shape])
    sizes = np.concatenate([scene.size, scene.obstacle_size])
    radius = bounding_radius(shapes, sizes)                                                     # (K + O,)
    obstacles = np.broadcast_to(scene.obstacle_position, (frames, scene.num_obstacles, 2))
    centres = np.concatenate([position, obstacles], 1)                                         # (F, K + O, 2)
    angles = np.concatenate([angle, np.broadcast_to(scene.obstacle_angle, (frames, scene.num_obstacles))], 1)
    gaps = np.linalg.norm(centres[:, :count, None] - centres[:, None], axis=-1)                  # (F, K, K + O)
    near = gaps < radius[:count, None] + radius[None]
    near &= np.arange(count)[:, None] < np.arange(len(shapes))[None]  # each pair once, no self pairs
    # A lower bound that holds whatever Chipmunk says: the circles inscribed about the two centres
    # overlap by this much (Chipmunk reports no depth for shapes placed exactly on top of each other).
    inner = inner_radius(shapes, sizes)
    depth = np.maximum(inner[:count, None] + inner[None] - gaps, 0.0) * near                     # (F, K, K + O)
    if not near.any():
        return depth
    # One probe space per shape: Space.shape_query reports only colliding pairs (Shape.shapes_collide
    # fails on pairs that do not touch), with Chipmunk's own contact depths.
    probes = []
    for code, size in zip(shapes, sizes):
        space, body = pymunk.Space(), pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        shape = _make_shape(pymunk, body, int(code), size)
        space.add(body, shape)
        probes.append((space, body, shape))
    placed_frame = np.full(len(shapes), -1)
    for t, i, j in np.argwhere(near):
        for k in (i, j):
            if placed_frame[k] != t:  # move a probe only when the frame changes
                space, body, shape = probes[k]
                body.position, body.angle = _vec(centres[t, k]), float(angles[t, k])
                space.reindex_shapes_for_body(body)
                placed_frame[k] = t
        for hit in probes[j][0].shape_query(probes[i][2]):
            depth[t, i, j] = max([depth[t, i, j], *(-p.distance for p in hit.contact_point_set.points)])
    depth[:, :, :count] = np.maximum(depth[:, :, :count], depth[:, :, :count].transpose(0, 2, 1))
    return depth


# ---------------------------------------------------------------------------------------------------
# Dataset generation
# ---------------------------------------------------------------------------------------------------


def _simulate_task(task: tuple[Objects2DConfig, int, tuple[int, ...]]) -> list[tuple[ObjectTrajectory, dict]]:
    """Worker job: simulate and check trajectories ``indices`` of split ``split_id``."""
    config, split_id, indices = task
    results = []
    for index in indices:
        scene, state, actions = sample_scene(config, split_id, index)
        trajectory = simulate(scene, state, actions, config)
        results.append((trajectory, _report(config, split_id, index, trajectory)))
    return results


def _report(config: Objects2DConfig, split_id: int, index: int, trajectory: ObjectTrajectory) -> dict:
    """Check every frame of a trajectory as a restart state would be checked, and summarize it.

    Raises:
        RuntimeError: a frame overlaps or leaves the box by more than ``overlap_tolerance`` (it
            could not be restarted from; the physics settings need more substeps or a larger
            tolerance).
    """
    scene = trajectory.scene
    overlap = overlap_depths(scene, trajectory.position, trajectory.angle).max(initial=0.0)
    outside = box_excursion(scene.shape, scene.size, trajectory.position, trajectory.angle, scene.bounds).max()
    if max(overlap, outside) > config.overlap_tolerance:
        raise RuntimeError(f"Objects2D {SPLITS[split_id]} trajectory {index}: objects overlap by {overlap:.3g} m "
                           f"and leave the box by {outside:.3g} m (overlap_tolerance {config.overlap_tolerance} m); "
                           "its frames could not be restarted from: use more substeps")
    speed = np.linalg.norm(trajectory.velocity, axis=-1)                                          # (T, K)
    first, second = np.triu_indices(scene.num_objects, 1)
    pair_contacts = trajectory.contacts[:, first, second]                                         # (T-1, P)
    return {
        "num_objects": scene.num_objects, "num_springs": scene.num_springs, "num_obstacles": scene.num_obstacles,
        "shapes": [int((scene.shape == code).sum()) for code in SHAPES.values()],
        "max_overlap": float(overlap), "max_outside_box": float(outside),
        "max_speed": float(speed.max()), "mean_speed": float(speed.mean()),
        "steps_with_object_contact": int(pair_contacts.any(1).sum()),
        "object_contact_starts": int((pair_contacts[1:] & ~pair_contacts[:-1]).sum() + pair_contacts[0].sum()),
        "wall_contact_steps": int(trajectory.wall_contacts.any((1, 2)).sum()),
    }


def _metadata(config: Objects2DConfig, statistics: dict | None = None, generator: dict | None = None) -> ObjectMetadata:
    """The dataset's ``ObjectMetadata`` (docs/objects.md)."""
    return ObjectMetadata(bounds=[list(b) for b in config.bounds], dt=config.frame_dt,
                          sequence_length=config.num_steps, num_objects=[config.min_objects, config.max_objects],
                          shape_kinds=dict(SHAPES), contacts=True, statistics=statistics, generator=generator)


def _write_splits(out_dir: Path, config: Objects2DConfig, progress: bool) -> dict[str, list[dict]]:
    """Simulate and write ``<split>.h5`` for every split; return the per-trajectory reports."""
    from gns.data.objects import write_object_split

    metadata = _metadata(config)  # the writer checks the box, object counts and shape codes against it
    reports: dict[str, list[dict]] = {split: [] for split in SPLITS}

    def object_trajectory(split: str, result: tuple[ObjectTrajectory, dict]) -> ObjectTrajectory:
        trajectory, report = result
        reports[split].append(report)
        return trajectory

    results = run_batches(_simulate_task, batch_tasks(config, config.scenes_per_batch),
                          num_workers=config.num_workers, desc="objects2d trajectories", progress=progress)
    write_splits(out_dir, config.split_sizes, results, object_trajectory,
                 lambda path, trajectories: write_object_split(path, trajectories, metadata))
    return reports


def restart_check(dataset_dir: str | os.PathLike, split: str = "train", index: int = 0,
                  start: int | None = None) -> dict:
    """Re-simulate a stored trajectory from one of its stored frames and compare, bit for bit.

    Reads only the files: the physics comes from ``metadata.json`` (:func:`config_from_metadata`).

    Returns:
        ``{"split", "index", "start", "frames", "identical"}`` (``identical``: every state array and
        contact array of frames ``start..`` equals the stored one exactly).
    """
    from gns.data.objects import load_object_metadata, open_object_split

    metadata = load_object_metadata(dataset_dir)
    with open_object_split(dataset_dir, split, metadata) as trajectories:
        stored = trajectories[index]
    start = stored.num_frames // 2 if start is None else start
    again = simulate(stored.scene, stored.state(start), stored.action[start:], config_from_metadata(metadata))
    same = all(np.array_equal(getattr(again, name), getattr(stored, name)[start:]) for name in STATE_ARRAYS)
    same &= all(np.array_equal(getattr(again, name), getattr(stored, name)[start:])
                for name in ("contacts", "wall_contacts", "obstacle_contacts"))
    return {"split": split, "index": index, "start": start, "frames": stored.num_frames - start,
            "identical": bool(same)}


def _summarize(config: Objects2DConfig, reports: dict[str, list[dict]], restart: dict) -> dict:
    """Dataset-level validation record for ``metadata["generator"]["validation"]``."""
    every = [r for split in SPLITS for r in reports[split]]
    counts = np.array([r["num_objects"] for r in every])
    return {
        "trajectories": {split: len(reports[split]) for split in SPLITS},
        "objects_per_trajectory": {"min": int(counts.min()), "mean": float(counts.mean()), "max": int(counts.max())},
        "shapes": dict(zip(SHAPES, np.sum([r["shapes"] for r in every], 0).tolist())),
        "springs": sum(r["num_springs"] for r in every), "obstacles": sum(r["num_obstacles"] for r in every),
        "finite": True,  # simulate raised otherwise
        "max_overlap": max(r["max_overlap"] for r in every),
        "max_outside_box": max(r["max_outside_box"] for r in every),
        "max_speed": max(r["max_speed"] for r in every),
        "mean_speed": float(np.mean([r["mean_speed"] for r in every])),
        "fraction_of_steps_with_object_contact": float(np.mean([r["steps_with_object_contact"] for r in every])
                                                       / config.num_steps),
        "object_contact_starts_per_trajectory": float(np.mean([r["object_contact_starts"] for r in every])),
        "wall_contact_steps_per_trajectory": float(np.mean([r["wall_contact_steps"] for r in every])),
        "restart": restart,
    }


def generate_objects2d(out_dir: str | os.PathLike, config: Objects2DConfig = Objects2DConfig(), *,
                       progress: bool = True) -> Path:
    """Simulate the Objects2D dataset and write it in the canonical object layout (docs/objects.md).

    Writes ``metadata.json`` and ``train.h5``, ``valid.h5``, ``test.h5`` (a split with zero
    trajectories is not written) into ``out_dir``. Statistics come from the train split;
    ``metadata["generator"]`` records the solver, the pymunk version, the full config, the seed, the
    measured time, every trajectory's report and the validation summary (including a restart of the
    first train trajectory from its middle frame, which must reproduce it exactly).

    Args:
        out_dir: dataset directory (created if missing; files of the same names are replaced).
        config: every generation parameter; the same config gives bit-identical files.
        progress: show a tqdm bar over trajectories.

    Returns:
        ``out_dir`` as a Path.
    """
    from gns.data.objects import compute_object_statistics, open_object_split, save_object_metadata

    if config.num_train < 1:
        raise GnsInputError("the train split cannot be empty (statistics come from it)", key="num_train",
                            expected=">= 1", found=config.num_train)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    reports = _write_splits(out_dir, config, progress)
    simulation_seconds = time.perf_counter() - started
    with open_object_split(out_dir, "train", _metadata(config)) as train:
        statistics = compute_object_statistics(train)
    generator = {"solver": SOLVER_NAME, "solver_version": SOLVER_VERSION, "pymunk_version": package_version("pymunk"),
                 "seed": config.seed, "config": config.to_dict()}
    save_object_metadata(_metadata(config, statistics, generator), out_dir)  # restart_check reads it
    validation = _summarize(config, reports, restart_check(out_dir))
    generator.update(generation_seconds=round(time.perf_counter() - started, 2),
                     simulation_seconds=round(simulation_seconds, 2), validation=validation,
                     trajectories=reports)
    save_object_metadata(_metadata(config, statistics, generator), out_dir)
    return out_dir


def config_from_metadata(metadata: ObjectMetadata) -> Objects2DConfig:
    """The config a dataset was generated with (``metadata.generator.config``): its physics, to
    re-simulate its trajectories exactly.

    Raises:
        GnsInputError: the dataset was not made by this solver.
    """
    generator = metadata.generator or {}
    if generator.get("solver") != SOLVER_NAME or "config" not in generator:
        raise GnsInputError("the dataset was not made by the Objects2D solver", key="generator/solver",
                            expected=SOLVER_NAME, found=generator.get("solver"))
    known = {f.name for f in dataclasses.fields(Objects2DConfig)}
    return Objects2DConfig(**{k: v for k, v in generator["config"].items() if k in known})


# ---------------------------------------------------------------------------------------------------
# Counterfactuals: the solver restarted from an intervened state
# ---------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Replay:
    """One scenario's start for the solver: the scene, the state at the start frame and the actions from it on."""

    scene: ObjectScene
    state: ObjectState
    actions: np.ndarray                                                            # (S, K, 3)


class ObjectReplay(Replayer):
    """Re-simulates counterfactual scenarios of one stored object trajectory (a :class:`gns.solvers.common.Replayer`).

    The solver restarts exactly from any stored frame (see the module docstring), so the start is the
    stored frame itself with the stored actions from it on: with no intervention the replay *is* the
    dataset's continuation, bit for bit. Each scenario's interventions are replayed on a copy:
    ``move`` shifts objects, ``remove`` deletes them (their springs go too; the agent, which only
    names the object a planner controls, passes to the first object left), ``add`` copies them
    (with their springs among them and their actions), ``kick`` / ``set_velocity`` change the
    linear and angular velocity, ``resize`` / ``reweigh`` set the sizes, masses and moments the
    model was given, ``set_input`` on ``action`` sets or scales the selected objects' actions over
    its frames. ``set_type`` and ``set_context`` have no counterpart.

    Args:
        config: the physics of the dataset (:func:`config_from_metadata`).
        trajectory: the stored trajectory from the start frame on (its first frame is the start).
    """

    def __init__(self, config: Objects2DConfig, trajectory: ObjectTrajectory) -> None:
        _import_pymunk()  # fail now, not after the model's rollout
        self.config, self.trajectory = config, trajectory

    @classmethod
    def from_dataset(cls, dataset: str | os.PathLike, split: str, index: int, start: int) -> "ObjectReplay":
        """The replay of frame ``start`` of trajectory ``index`` of a split, with the dataset's own physics.

        Raises:
            GnsInputError: the dataset was not made by this solver, or by another version of it.
        """
        from gns.data.objects import load_object_metadata, open_object_split

        metadata = load_object_metadata(dataset)
        version = (metadata.generator or {}).get("solver_version")
        config = config_from_metadata(metadata)
        if str(version) != SOLVER_VERSION:
            raise GnsInputError("the dataset was made by another version of the Objects2D solver",
                                file=Path(dataset) / "metadata.json", key="generator/solver_version",
                                expected=SOLVER_VERSION, found=version)
        with open_object_split(dataset, split, metadata) as trajectories:
            return cls(config, trajectories.read_window(index, start, trajectories.num_frames(index)))

    def start_state(self, steps: int) -> _Replay:
        stored = self.trajectory
        if steps > len(stored.action):
            raise GnsInputError("the stored trajectory has too few actions after the start frame", key="steps",
                                expected=f"<= {len(stored.action)}", found=steps)
        return _Replay(stored.scene, stored.state(0), stored.action[:steps].copy())

    def apply(self, replay: _Replay, record) -> _Replay:
        idx, params, op = np.asarray(record.entities, dtype=np.int64), record.params, record.op
        scene, state, actions = replay.scene, replay.state, replay.actions
        position, angle = state.position.copy(), state.angle.copy()
        velocity, spin = state.velocity.copy(), state.angular_velocity.copy()
        if op == "move":
            position[idx] += params["offset"]
        elif op in ("kick", "set_velocity"):
            for values, key in ((velocity, "delta" if op == "kick" else "velocity"), (spin, "spin")):
                if params.get(key) is not None:
                    values[idx] = values[idx] + params[key] if op == "kick" else params[key]
        elif op in ("resize", "reweigh"):
            arrays = {name: getattr(scene, name).copy() for name in ("size", "mass", "moment")}
            for name, values in arrays.items():
                if name in params:
                    values[idx] = params[name]
            scene = dataclasses.replace(scene, **arrays)
        elif op == "set_input" and params["field"] == "action":
            actions = actions.copy()
            chosen = actions[params["from_frame"]:params["to_frame"]]                  # (L, K, 3) the frames changed
            if params["value"] is None:
                chosen[:, idx] *= np.float32(params["scale"])
            else:
                value = np.asarray(params["value"], dtype=np.float32)
                chosen[:, idx] = value[:len(chosen), None] if value.ndim == 2 else value
        elif op == "remove":
            keep = np.setdiff1d(np.arange(scene.num_objects), idx)
            if scene.agent not in keep:  # the agent names the object a planner pushes; the physics ignores it
                scene = dataclasses.replace(scene, agent=int(keep[0]))
            return _Replay(scene.select(keep), state.select(keep), actions[:, keep])
        elif op == "add" and "offset" in params:
            copied = state.select(idx)
            state = ObjectState(np.concatenate([position, copied.position + params["offset"]]),
                                *(np.concatenate([getattr(state, name), getattr(copied, name)])
                                  for name in STATE_ARRAYS[1:]))
            return _Replay(_with_copies(scene, idx), state, np.concatenate([actions, actions[:, idx]], axis=1))
        else:
            raise NotResimulable(f"the Objects2D solver has no counterpart of '{op}'"
                                 + (f" on '{params['field']}'" if op == "set_input" else ""))
        return _Replay(scene, ObjectState(position, angle, velocity, spin), actions)

    def check(self, replay: _Replay, name: str) -> None:
        """The solver's own checks of the scene, state and actions it would start from (pymunk's overlaps)."""
        try:
            check_scene(canonical_scene(replay.scene))
            check_state(canonical_scene(replay.scene), canonical_state(replay.state), self.config)
            _check_actions(replay.actions, replay.scene.num_objects, len(replay.actions))
        except GnsInputError as error:
            raise GnsInputError(f"the Objects2D solver cannot start from variant '{name}': {error}",
                                key=f"variants/{name}") from None

    def simulate(self, states, steps: int):
        import torch

        out = {}
        for name, replay in states.items():
            trajectory = simulate(replay.scene, replay.state, replay.actions[:steps], self.config)
            out[name] = {"position": torch.from_numpy(trajectory.position[1:].transpose(1, 0, 2).copy()),
                         "angle": torch.from_numpy(trajectory.angle[1:].T[..., None].copy())}
        return out


def _with_copies(scene: ObjectScene, idx: np.ndarray) -> ObjectScene:
    """The scene with copies of objects ``idx`` appended (in that order), and copies of the springs among them."""
    count = scene.num_objects
    slot = {int(old): count + k for k, old in enumerate(idx)}
    copied = [s for s, (a, b) in enumerate(scene.spring_pairs) if int(a) in slot and int(b) in slot]
    pairs = [[slot[int(a)], slot[int(b)]] for a, b in scene.spring_pairs[copied]]
    return dataclasses.replace(
        scene, **{name: np.concatenate([getattr(scene, name), getattr(scene, name)[idx]]) for name in ATTRIBUTE_ARRAYS},
        spring_pairs=np.concatenate([scene.spring_pairs, np.array(pairs, dtype=np.int64).reshape(-1, 2)]),
        **{name: np.concatenate([getattr(scene, name), getattr(scene, name)[copied]]) for name in SPRING_ARRAYS[1:]})


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m gns.solvers.objects2d --out DIR [--seed S] [--small] [--workers W]``."""
    args = generator_parser("Generate the Objects2D rigid-object dataset (pymunk).", Objects2DConfig).parse_args(argv)
    out = generate_objects2d(args.out, generator_config(Objects2DConfig, args))
    from gns.data.objects import load_object_metadata

    generator = load_object_metadata(out).generator
    print_generation(out, generator, generator["validation"])


if __name__ == "__main__":
    main()
