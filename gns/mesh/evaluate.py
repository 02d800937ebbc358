"""How mesh rollouts are scored: the baselines and the field error.

Metric (MeshGraphNets): RMSE of the target field (cloth: position, flow: velocity) over the
simulated nodes at each horizon, ``sqrt(mean over nodes and components of error^2)``, pooled over
trajectories before the square root; output fields (flow: pressure) get the same table.
Baselines: persistence (every field keeps its last input value) and, for Lagrangian meshes,
constant velocity. Nodes that are not simulated (handles, obstacles, inflow and wall nodes) take
their true values in every rollout, so the comparison is on the simulated nodes only.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
from torch import Tensor

from gns.mesh.simulator import MeshSimulator
from gns.mesh.state import MeshState
from gns.mesh.windows import MeshWindows
from gns.state import State

__all__ = ["Persistence", "ConstantVelocity", "MeshEvaluation", "PERSISTENCE", "CONSTANT_VELOCITY",
           "divergence_checks", "RUNAWAY_STD"]

# A mesh's energy "runs away" once its nodes' mean velocity (Lagrangian: per-step displacement;
# Eulerian: the field), per component, is this many training standard deviations from the training mean.
RUNAWAY_STD = 4.0

PERSISTENCE = "persistence"
CONSTANT_VELOCITY = "constant_velocity"


class Persistence:
    """Baseline stepper: every field keeps its last value (MeshGraphNets' baseline)."""

    window = 1
    input_fields = ()

    def __init__(self, fields: Sequence[str], held: Callable[[State], Tensor]) -> None:
        self.state_fields = self.predicted_fields = tuple(fields)
        self._held = held

    def held(self, state: State) -> Tensor:
        return self._held(state)

    def predict_next(self, state: State) -> dict[str, Tensor]:
        return {name: state.fields[name][:, -1] for name in self.predicted_fields}


class ConstantVelocity:
    """Baseline stepper for Lagrangian meshes: positions move on with their last per-step velocity."""

    window = 2
    input_fields = ()

    def __init__(self, field: str, held: Callable[[State], Tensor]) -> None:
        self.state_fields = self.predicted_fields = (field,)
        self._held = held

    def held(self, state: State) -> Tensor:
        return self._held(state)

    def predict_next(self, state: State) -> dict[str, Tensor]:
        seq = state.fields[self.predicted_fields[0]]
        return {self.predicted_fields[0]: 2 * seq[:, -1] - seq[:, -2]}


def divergence_checks(simulator: MeshSimulator) -> dict:
    """The mesh domain's divergence checks (:class:`gns.rollout.Monitor`): non-finite values of any
    predicted field, and meshes whose simulated nodes' mean ``0.5 |v|^2`` exceeds that of a velocity
    :data:`RUNAWAY_STD` training standard deviations from the training mean in every component (``v``:
    a Lagrangian mesh's per-step displacement, an Eulerian one's target field; the statistics are the
    model's node normalizer's, current frame). A mesh has no walls to leave."""
    from gns.metrics import per_system_mean
    from gns.rollout import non_finite

    target, width, history = simulator.target_field, simulator.field_dim, simulator.history
    current = slice((history - 1) * width, history * width)      # the current frame's features

    def energy(state: State, frames) -> tuple[Tensor, Tensor] | None:
        normalizer = simulator.node_normalizer
        if float(normalizer.count) == 0:
            return None                                          # an untrained model has no statistics
        mean, std = normalizer.mean[current], normalizer.std[current]
        limit = 0.5 * float(((mean.abs() + RUNAWAY_STD * std) ** 2).sum())
        new = frames[target]
        v = new - state.fields[target][:, -1] if simulator.lagrangian else new
        each = 0.5 * (v ** 2).sum(-1)                                                   # (N,)
        simulated = simulator.is_simulated(state.node_type)
        system = per_system_mean(each[:, None], state.batch, simulated, state.num_systems)[:, 0]
        return (system > limit)[state.batch] & simulated, each

    return {"non-finite": non_finite, "energy": energy}


class MeshEvaluation:
    """The :class:`gns.evaluate.Evaluation` of a trained :class:`MeshSimulator`."""

    kind = "mesh"
    metric = "rmse"
    reduction = "pooled"

    def __init__(self, simulator: MeshSimulator) -> None:
        self.simulator = simulator
        metadata = simulator.metadata
        self.domain, self.dt = metadata.domain, float(metadata.dt)
        self.target_field = simulator.target_field
        self.scored_fields = tuple(simulator.predicted_fields)
        self.window = simulator.window
        self.steppers: dict[str, Any] = {"model": simulator,
                                         PERSISTENCE: Persistence(simulator.predicted_fields, simulator.held)}
        if simulator.lagrangian:
            self.steppers[CONSTANT_VELOCITY] = ConstantVelocity(simulator.target_field, simulator.held)
        self.info: dict[str, Any] = {}

    def windows(self, split: Any) -> MeshWindows:
        return MeshWindows.for_simulator(self.simulator, split)

    def squared_error(self, name: str, predicted: Tensor, truth: Tensor) -> Tensor:
        return ((predicted - truth) ** 2).sum(-1)

    def scored(self, state: State) -> Tensor:
        return ~self.simulator.held(state)

    def extra_metrics(self, predicted: Mapping[str, Tensor], truth: Mapping[str, Tensor], initial: State,
                      scored: Tensor) -> dict[str, Tensor]:
        return {}

    def divergence_checks(self) -> dict:
        return divergence_checks(self.simulator)

    def drawing(self, state: MeshState) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        static = {"mesh_pos": state.mesh_pos.cpu().numpy(), "node_type": state.node_type.cpu().numpy()}
        return static, ({} if state.cells is None else {"cells": state.cells.cpu().numpy()})
