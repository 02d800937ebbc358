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
from gns.particles.integrate import integrate
from gns.particles.simulator import ParticleSimulator
from gns.particles.state import ParticleState
from gns.particles.windows import ParticleWindows
from gns.state import State

__all__ = ["ConstantAcceleration", "ParticleEvaluation", "gravity_of", "kinetic_energy_per_system"]


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
    batch = state.batch
    sums = torch.zeros(state.num_systems, energy.shape[1], dtype=energy.dtype, device=energy.device)
    sums.index_add_(0, batch[mask], energy[mask])
    counts = torch.zeros(state.num_systems, device=energy.device).index_add_(0, batch, mask.to(energy.dtype))
    return sums / counts.clamp(min=1.0)[:, None]


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
                                     "periodic": list(self.metadata.periodic_boundary_conditions)}

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
        """Kinetic-energy error ``mean_t |KE_pred - KE_true|`` and the mean true kinetic energy, per system."""
        last = initial.fields["position"][:, -1]
        args = (initial, scored, self.simulator.bounds, self.simulator.periodic)
        ke_pred = kinetic_energy_per_system(last, predicted["position"], *args)
        ke_true = kinetic_energy_per_system(last, truth["position"], *args)
        return {"ke_error": (ke_pred - ke_true).abs().mean(1), "ke_true_mean": ke_true.mean(1)}

    def drawing(self, state: State) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        return {"particle_type": state.static["particle_type"].cpu().numpy()}, {}
