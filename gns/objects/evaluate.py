"""How object rollouts are scored: position and angle errors, energy, the box, collision events.

Metric (as for particles): the mean squared error of the positions (m^2) over every object and
both dimensions, per rollout, averaged over rollouts; the angles (rad^2) get the same table.
Baselines: constant velocity (position and angle move on with their last per-step change) and
persistence (nothing moves). Extra scalars of the rollouts from the first frame, per stepper:

* ``ke_error``: ``mean_t |KE_pred - KE_true|`` (J), with ``KE = sum 1/2 m |v|^2 + 1/2 I w^2`` over a
  scene's objects, velocities from consecutive frames; ``ke_true_mean``; ``ke_window_factor_max``,
  the largest factor between predicted and true mean energy over windows of
  :data:`gns.metrics.ENERGY_WINDOW` steps;
* ``outside_max``: how far (m) any predicted shape reaches through a wall, at worst;
* ``obstacle_overlap_max`` (models with ``objects.obstacles``): how far (m) any predicted shape reaches
  into an obstacle, at worst; ``obstacle_overlap_mean``, each rollout's worst, averaged over rollouts;
  ``obstacle_overlap_share``, the share of rollouts whose worst is deeper than :data:`OBSTACLE_OVERLAP`;
* ``contact_agreement_<h>`` (and ``_full``): the share of a scene's object pairs (and pairs of an
  object and an obstacle) on which prediction and truth agree about whether the two touched at some
  frame of the first ``h`` steps.
  Touching is decided from the shapes' geometry (:func:`gns.objects.geometry.touching`: rounded
  convex polygons, the model of the solver), at :data:`CONTACT_MARGIN` or closer, for the truth as
  for the prediction, so that the two are judged alike (the solver's own contact flags, recorded
  at every substep, also see bounces that happen between two frames).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from gns.baselines import ConstantVelocity, Persistence
from gns.evaluate import EvaluationDefaults
from gns.metrics import ENERGY_WINDOW, per_system_max, per_system_mean, per_system_sum, window_factor
from gns.objects.features import all_pairs, obstacle_pairs
from gns.objects.geometry import body_vertices, place, separation, touching, wall_gaps
from gns.objects.simulator import ObjectSimulator
from gns.objects.state import ATTRIBUTES
from gns.objects.windows import ObjectWindows
from gns.rollout import box_checks
from gns.state import State

__all__ = ["ObjectEvaluation", "CONTACT_MARGIN", "OBSTACLE_OVERLAP", "CONTACT_HORIZONS", "kinetic_energy",
           "contact_agreement", "outside_box", "object_pairs", "touched_by_step", "obstacle_gaps"]

# Two shapes closer than this (m) at a frame touch. The solver leaves overlaps of up to a few
# millimetres (collision slop, impacts); frames 33 ms apart see objects that bounce off each other
# a few millimetres apart at their closest.
CONTACT_MARGIN = 0.005
# A shape deeper than this (m) in a static obstacle is counted: the default overlap_tolerance of the solver,
# the deepest overlap it accepts in a state it starts from (its own frames stay a few millimetres deep at most).
OBSTACLE_OVERLAP = 0.02
# Horizons of the collision-event agreement (steps), besides the whole rollout.
CONTACT_HORIZONS = (1, 5, 10, 20, 50, 100)
POSE_FIELDS = ("position", "angle")


def kinetic_energy(last_input: Mapping[str, Tensor], frames: Mapping[str, Tensor], state: State, dt: float) -> Tensor:
    """``(B, S)`` kinetic energy of each scene at each step (J), linear and rotational.

    Args:
        last_input: ``position (K, 2)`` and ``angle (K, 1)`` before the first step.
        frames: ``position (K, S, 2)`` and ``angle (K, S, 1)``.
        state: the scenes (masses, moments, sizes).
    """
    energy = 0
    for name, inertia in (("position", state.static["mass"]), ("angle", state.static["moment"])):
        seq = torch.cat([last_input[name][:, None], frames[name]], dim=1)                 # (K, S+1, F)
        speed2 = (((seq[:, 1:] - seq[:, :-1]) / dt) ** 2).sum(-1)                          # (K, S)
        energy = energy + 0.5 * inertia[:, None] * speed2
    every = torch.ones(state.num_entities, dtype=torch.bool, device=state.device)
    return per_system_sum(energy, state.batch, every, state.num_systems)


def outside_box(frames: Mapping[str, Tensor], state: State, bounds: Tensor) -> Tensor:
    """``(B,)`` the farthest any shape of a scene reaches through a wall over the frames (m; 0 inside).

    Args:
        frames: ``position (K, S, 2)``, ``angle (K, S, 1)``; bounds: ``(2, 2)``.
    """
    vertices, rounding = body_vertices(state.static["shape"], state.static["size"])
    world = place(vertices, frames["position"].transpose(0, 1), frames["angle"][..., 0].T)     # (S, K, 4, 2)
    through = (-wall_gaps(world, rounding, bounds)).clamp(min=0).amax(dim=(0, 2))           # (K,)
    every = torch.ones_like(through, dtype=torch.bool)
    return per_system_max(torch.nan_to_num(through, nan=float("inf")), state.batch, every, state.num_systems)


def contact_agreement(predicted: Mapping[str, Tensor], truth: Mapping[str, Tensor], state: State,
                      margin: float = CONTACT_MARGIN,
                      predicted_obstacle_gaps: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """``(B, S)`` the share of each scene's object pairs (and object-obstacle pairs) on which ``predicted``
    and ``truth`` agree about whether the pair touched (:func:`gns.objects.geometry.touching`) at some
    frame up to each step.

    Args:
        predicted, truth: ``position (K, S, 2)``, ``angle (K, S, 1)``.
        state: the scenes (shapes, sizes, obstacles); a scene of one object and no obstacle has no pair
            and gets 0.
        predicted_obstacle_gaps: :func:`obstacle_gaps` of ``predicted``, if the caller has it already.
    """
    pairs = object_pairs(state)
    agree = (touched_by_step(predicted, state, pairs, margin) == touched_by_step(truth, state, pairs, margin)).float()
    owner = state.batch[pairs[0]]                                                              # agree: (P, S)
    gaps, objects = predicted_obstacle_gaps or obstacle_gaps(predicted, state)                # (Q, S), (Q,)
    if objects.numel():
        true_gaps = obstacle_gaps(truth, state)[0]
        blocked = lambda gap: torch.cummax((gap <= margin).int(), dim=1).values.bool()  # noqa: E731
        agree = torch.cat([agree, (blocked(gaps) == blocked(true_gaps)).float()])
        owner = torch.cat([owner, state.batch[objects]])
    every = torch.ones(owner.numel(), dtype=torch.bool, device=agree.device)
    return per_system_mean(agree, owner, every, state.num_systems)


def obstacle_gaps(frames: Mapping[str, Tensor], state: State) -> tuple[Tensor, Tensor]:
    """How far each object is from each static obstacle of its scene, frame by frame.

    Args:
        frames: ``position (K, S, 2)``, ``angle (K, S, 1)``.
        state: the scenes (shapes, sizes, :data:`gns.objects.state.OBSTACLES`).

    Returns:
        ``(Q, S)`` separation (m; negative: overlapping) of every (object, obstacle) pair of
        :func:`gns.objects.features.obstacle_pairs`, and ``(Q,)`` the object of each.
    """
    shapes = state.system.get("obstacle_shape")
    steps = frames["position"].shape[1]
    if shapes is None or not shapes.shape[1]:
        return frames["position"].new_zeros(0, steps), torch.zeros(0, dtype=torch.long, device=state.device)
    objects, flat = obstacle_pairs(state.batch, shapes)
    vertices, rounding = body_vertices(state.static["shape"], state.static["size"])
    world = place(vertices, frames["position"].transpose(0, 1), frames["angle"][..., 0].T)     # (S, K, 4, 2)
    corners, corner = body_vertices(shapes.flatten()[flat], state.system["obstacle_size"].flatten(0, 1)[flat])
    fixed = place(corners, state.system["obstacle_position"].flatten(0, 1)[flat],
                  state.system["obstacle_angle"].flatten()[flat])                             # (Q, 4, 2)
    count = objects.numel()
    gap = separation(world[:, objects].reshape(steps * count, *world.shape[2:]), rounding[objects].repeat(steps),
                     fixed.repeat(steps, 1, 1), corner.repeat(steps))
    return gap.reshape(steps, count).T, objects


def object_pairs(state: State) -> Tensor:
    """``(2, P)`` every pair of objects of each scene, once (first index smaller)."""
    pairs = all_pairs(state.n.to(state.device))
    return pairs[:, pairs[0] < pairs[1]]


def touched_by_step(frames: Mapping[str, Tensor], state: State, pairs: Tensor, margin: float = CONTACT_MARGIN
                    ) -> Tensor:
    """``(P, S)`` bool: whether the two objects of each pair ``(2, P)`` have touched
    (:func:`gns.objects.geometry.touching`) at some frame up to each step of ``frames``
    (``position (K, S, 2)``, ``angle (K, S, 1)``) of the scenes of ``state``."""
    touch = touching(state.static["shape"], state.static["size"], frames["position"], frames["angle"][..., 0], pairs,
                     margin)                                                                     # (P, S)
    return torch.cummax(touch.int(), dim=1).values.bool()


class ObjectEvaluation(EvaluationDefaults):
    """The :class:`gns.evaluate.Evaluation` of a trained :class:`ObjectSimulator`."""

    kind = "objects"
    metric = "mse"
    reduction = "per_rollout"
    target_field = "position"
    scored_fields = POSE_FIELDS

    def __init__(self, simulator: ObjectSimulator) -> None:
        self.simulator = simulator
        self.metadata = simulator.metadata
        self.domain = "objects"
        self.dt = float(self.metadata.dt)
        self.window = simulator.window
        self.steppers: dict[str, Any] = {"model": simulator,
                                         "constant_velocity": ConstantVelocity(POSE_FIELDS, simulator.held),
                                         "persistence": Persistence(POSE_FIELDS, simulator.held)}
        self.info: dict[str, Any] = {"bounds": self.metadata.bounds}

    def windows(self, split: Any) -> ObjectWindows:
        return ObjectWindows(split, obstacles=self.steppers["model"].obstacles)

    def extra_metrics(self, predicted: Mapping[str, Tensor], truth: Mapping[str, Tensor], initial: State,
                      scored: Tensor) -> dict[str, Tensor]:
        """Per scene: energy, the box and collision-event agreement (see the module docstring)."""
        last = {name: initial.fields[name][:, -1] for name in POSE_FIELDS}
        ke_pred = kinetic_energy(last, predicted, initial, self.dt)
        ke_true = kinetic_energy(last, truth, initial, self.dt)
        out = {"ke_error": (ke_pred - ke_true).abs().mean(1), "ke_true_mean": ke_true.mean(1),
               "ke_window_factor_max": window_factor(ke_pred, ke_true, ENERGY_WINDOW),
               "outside_max": outside_box(predicted, initial, self.simulator.bounds)}
        blocked = obstacle_gaps(predicted, initial)                                            # (Q, S), (Q,)
        if self.simulator.obstacles:  # 0 for a scene without obstacles
            gaps, objects = blocked
            inside = torch.nan_to_num(-gaps, nan=float("inf")).clamp(min=0).amax(dim=1)         # (Q,)
            worst = per_system_max(inside, initial.batch[objects], torch.ones_like(objects, dtype=torch.bool),
                                   initial.num_systems)                                        # (B,) m
            out.update({"obstacle_overlap_max": worst, "obstacle_overlap_mean": worst,
                        "obstacle_overlap_share": (worst > OBSTACLE_OVERLAP).to(worst.dtype)})
        agreement = contact_agreement(predicted, truth, initial, predicted_obstacle_gaps=blocked)   # (B, S)
        steps = agreement.shape[1]
        out.update({f"contact_agreement_{h}": agreement[:, h - 1] for h in CONTACT_HORIZONS if h <= steps})
        if steps:
            out["contact_agreement_full"] = agreement[:, -1]
        return out

    def collisions(self, state: State, frames: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Which objects collide (for counterfactual queries): every pair ``(2, P)`` of the scenes of ``state``,
        and ``(P, S)`` whether the two have touched by each step of ``frames`` (:func:`touched_by_step`)."""
        pairs = object_pairs(state)
        return pairs, touched_by_step(frames, state, pairs)

    def divergence_checks(self) -> dict:
        """The box checks on the objects' centres (:func:`gns.rollout.box_checks`): non-finite values,
        centres beyond a wall, runaway kinetic energy of the linear motion."""
        sim = self.simulator
        return box_checks(sim.bounds, sim.periodic, sim.velocity_normalizer.mean, sim.velocity_normalizer.std)

    def drawing(self, state: State) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The objects' attributes (shape, size, colour, ...) and springs ``(S, 2)``, so that a rollout file
        draws itself."""
        return ({name: state.static[name].cpu().numpy() for name in ATTRIBUTES},
                {"springs": state.links["springs"].T.cpu().numpy()})
