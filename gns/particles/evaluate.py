"""How particle rollouts are scored: the baselines, the position error, kinetic energy.

Metric (GNS): position MSE over the non-kinematic particles and every dimension, with the
minimum image in periodic dimensions, per rollout, averaged over rollouts. Baselines: constant
velocity and gravity only (constant acceleration), both kept inside the walls.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor

from gns.data import DatasetMetadata
from gns.geometry import minimum_image
from gns.metrics import ENERGY_WINDOW, per_system_extent, per_system_max, per_system_mean, window_factor
from gns.particles.integrate import integrate
from gns.particles.simulator import ParticleSimulator
from gns.particles.state import ParticleState
from gns.particles.windows import ParticleWindows
from gns.rollout import OUTSIDE_MARGIN, box_checks
from gns.state import State

__all__ = ["ConstantAcceleration", "ParticleEvaluation", "gravity_of", "kinetic_energy_per_system",
           "escape_from_truth", "divergence_checks"]



def gravity_of(metadata: DatasetMetadata) -> Tensor:
    """Per-step acceleration of the gravity-only baseline: ``metadata.gravity`` if given, else ``acc_mean``."""
    g = metadata.gravity if metadata.gravity is not None else metadata.acc_mean
    return torch.as_tensor(g, dtype=torch.float32)


class ConstantAcceleration:
    """Baseline stepper: ``x_{t+1} = x_t + v_t + a`` with a fixed per-step acceleration ``(D,)``
    (zero: constant velocity; gravity: gravity only), kept inside the non-periodic walls.

    Args:
        acceleration: ``(D,)`` per-step acceleration.
        bounds: ``(D, 2)`` walls; periodic: ``(D,)`` bool.
        held: the simulator's held-entity mask (kinematic particles follow their prescribed path).
    """

    window = 2
    state_fields = ("position",)
    input_fields = ()
    predicted_fields = ("position",)

    def __init__(self, acceleration: Tensor, bounds: Tensor, periodic: Tensor,
                 held: Callable[[State], Tensor]) -> None:
        self.acceleration, self.bounds, self.periodic, self._held = acceleration, bounds, periodic, held

    def held(self, state: ParticleState) -> Tensor:
        return self._held(state)

    def predict_next(self, state: ParticleState) -> dict[str, Tensor]:
        position = state.position
        nxt = integrate(position, self.acceleration.to(position).expand_as(position[:, -1]), self.bounds.to(position),
                        self.periodic.to(position.device))
        lo, hi = self.bounds[:, 0].to(nxt), self.bounds[:, 1].to(nxt)
        clamped = torch.maximum(torch.minimum(nxt, hi), lo)
        return {"position": torch.where(self.periodic.to(nxt.device), nxt, clamped)}


def kinetic_energy_per_system(last_input: Tensor, position: Tensor, state: State, mask: Tensor, bounds: Tensor,
                              periodic: Tensor) -> Tensor:
    """``(B, S)`` mean kinetic energy per particle, ``0.5 |v|^2`` (unit mass, per-step velocity).

    Args:
        last_input: ``(N, D)`` the position before the first step; position: ``(N, S, D)``.
        mask: ``(N,)`` particles averaged over.
    """
    seq = torch.cat([last_input[:, None], position], dim=1)                             # (N, S+1, D)
    v = minimum_image(seq[:, 1:] - seq[:, :-1], bounds.to(seq), periodic.to(seq.device))
    energy = 0.5 * (v ** 2).sum(-1)                                                     # (N, S)
    return per_system_mean(energy, state.batch, mask, state.num_systems)


def escape_from_truth(predicted: Tensor, truth: Tensor, state: State, mask: Tensor, bounds: Tensor,
                      periodic: Tensor) -> tuple[Tensor, Tensor]:
    """How far predicted particles stray from where the true ones are, per system.

    At each step, the region the ground truth occupies is the box spanned by the true positions of
    the system's masked particles; a predicted particle's escape is its distance beyond that box
    (largest over non-periodic dimensions), as a share of the widest wall-to-wall width.

    Args:
        predicted, truth: ``(N, S, D)``; mask: ``(N,)`` particles scored; bounds: ``(D, 2)``.

    Returns:
        ``(B,)`` the largest escape over steps and particles, and ``(B,)`` the largest share, over
        steps, of a system's particles farther out than :data:`OUTSIDE_MARGIN`.
    """
    lo, hi = per_system_extent(truth, state.batch, mask, state.num_systems)                # (B, S, D)
    idx = state.batch
    beyond = torch.maximum(lo[idx] - predicted, predicted - hi[idx]).clamp(min=0)             # (N, S, D)
    beyond = beyond * (~periodic.to(beyond.device))
    width = float((bounds[:, 1] - bounds[:, 0]).max())
    escape = beyond.amax(-1) / width                                                         # (N, S)
    escape = torch.nan_to_num(escape, nan=float("inf"))
    worst = per_system_max(escape, idx, mask, state.num_systems).amax(1)
    share = per_system_mean((escape > OUTSIDE_MARGIN).float(), idx, mask, state.num_systems).amax(1)
    return worst, share


def divergence_checks(simulator: ParticleSimulator) -> dict:
    """The particle domain's divergence checks (:class:`gns.rollout.Monitor`): :func:`gns.rollout.box_checks`
    with the box and the training velocity statistics of ``simulator``."""
    return box_checks(simulator.bounds, simulator.periodic, simulator.velocity_normalizer.mean,
                      simulator.velocity_normalizer.std)


class ParticleEvaluation:
    """The :class:`gns.evaluate.Evaluation` of a trained :class:`ParticleSimulator`."""

    kind = "particles"
    metric = "mse"
    reduction = "per_rollout"
    target_field = "position"
    scored_fields = ("position",)

    def __init__(self, simulator: ParticleSimulator) -> None:
        self.simulator = simulator
        self.metadata: DatasetMetadata = simulator.metadata
        self.domain = "particles"
        self.dt = float(self.metadata.dt or 1.0)
        self.window = simulator.window
        bounds, periodic = simulator.bounds, simulator.periodic
        gravity = gravity_of(self.metadata).to(bounds.device)
        self.steppers = {"model": simulator,
                         "constant_velocity": ConstantAcceleration(torch.zeros_like(gravity), bounds, periodic,
                                                                   simulator.held),
                         "constant_acceleration": ConstantAcceleration(gravity, bounds, periodic, simulator.held)}
        self.info: dict[str, Any] = {"bounds": self.metadata.bounds,
                                     "periodic": list(self.metadata.periodic_boundary_conditions),
                                     "mirror_average": list(simulator.config.mirror_average)}

    def windows(self, split: Any) -> ParticleWindows:
        return ParticleWindows(split, self.metadata.context_size)

    def squared_error(self, name: str, predicted: Tensor, truth: Tensor) -> Tensor:
        err = minimum_image(predicted - truth, self.simulator.bounds.to(predicted),
                            self.simulator.periodic.to(predicted.device))
        return (err ** 2).sum(-1)

    def scored(self, state: State) -> Tensor:
        return ~self.simulator.held(state)

    def extra_metrics(self, predicted: Mapping[str, Tensor], truth: Mapping[str, Tensor], initial: State,
                      scored: Tensor) -> dict[str, Tensor]:
        """Per system: the kinetic-energy error ``mean_t |KE_pred - KE_true|`` and the mean true kinetic
        energy; ``ke_window_factor_max``, the largest factor between predicted and true mean kinetic
        energy over windows of :data:`ENERGY_WINDOW` steps; ``escape_max``, how far any particle strays
        beyond the region the true particles occupy (share of the box width), and
        ``escaped_share_max``, the largest share of particles beyond :data:`OUTSIDE_MARGIN` of it at
        any step (:func:`escape_from_truth`)."""
        last = initial.fields["position"][:, -1]
        bounds, periodic = self.simulator.bounds, self.simulator.periodic
        args = (initial, scored, bounds, periodic)
        ke_pred = kinetic_energy_per_system(last, predicted["position"], *args)
        ke_true = kinetic_energy_per_system(last, truth["position"], *args)
        escape, share = escape_from_truth(predicted["position"], truth["position"], initial, scored, bounds, periodic)
        return {"ke_error": (ke_pred - ke_true).abs().mean(1), "ke_true_mean": ke_true.mean(1),
                "ke_window_factor_max": window_factor(ke_pred, ke_true, ENERGY_WINDOW),
                "escape_max": escape, "escaped_share_max": share}

    def divergence_checks(self) -> dict:
        return divergence_checks(self.simulator)

    def drawing(self, state: State) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        return {"particle_type": state.static["particle_type"].cpu().numpy()}, {}
