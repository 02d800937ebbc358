"""How mesh rollouts are scored: the baselines and the field error.

Metric (MeshGraphNets): RMSE of the target field (cloth: position, flow: velocity) over the
simulated nodes at each horizon, ``sqrt(mean over nodes and components of error^2)``, pooled over
trajectories before the square root; output fields (flow: pressure) get the same table.
Baselines: persistence (every field keeps its last input value) and, for Lagrangian meshes,
constant velocity. Nodes that are not simulated (handles, obstacles, inflow and wall nodes) take
their true values in every rollout, so the comparison is on the simulated nodes only.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from gns.baselines import ConstantVelocity, Persistence
from gns.evaluate import EvaluationDefaults
from gns.mesh.simulator import MeshSimulator
from gns.mesh.state import MeshState
from gns.mesh.types import NodeType
from gns.metrics import per_system_max
from gns.mesh.windows import MeshWindows
from gns.state import State

__all__ = ["Persistence", "ConstantVelocity", "MeshEvaluation", "PERSISTENCE", "CONSTANT_VELOCITY",
           "divergence_checks", "edge_strain_max", "shedding", "PROBE_DIAMETERS"]


# The flow probe sits this many cylinder diameters downstream of the cylinder's centre, on its axis.
PROBE_DIAMETERS = 3.0

PERSISTENCE = "persistence"
CONSTANT_VELOCITY = "constant_velocity"


def divergence_checks(simulator: MeshSimulator) -> dict:
    """The mesh domain's divergence checks (:class:`gns.rollout.Monitor`): non-finite values of any
    predicted field, and meshes whose simulated nodes' mean ``0.5 |v|^2`` exceeds that of a velocity
    :data:`gns.rollout.RUNAWAY_STD` training standard deviations from the training mean in every component (``v``:
    a Lagrangian mesh's per-step displacement, an Eulerian one's target field; the statistics are the
    model's node normalizer's, current frame). A mesh has no walls to leave."""
    from gns.metrics import per_system_mean
    from gns.rollout import non_finite, runaway_limit

    target, width, history = simulator.target_field, simulator.field_dim, simulator.history
    current = slice((history - 1) * width, history * width)      # the current frame's features

    def energy(state: State, frames) -> tuple[Tensor, Tensor] | None:
        normalizer = simulator.node_normalizer
        if float(normalizer.count) == 0:
            return None                                          # an untrained model has no statistics
        mean, std = normalizer.mean[current], normalizer.std[current]
        limit = runaway_limit(mean, std)
        new = frames[target]
        v = new - state.fields[target][:, -1] if simulator.lagrangian else new
        each = 0.5 * (v ** 2).sum(-1)                                                   # (N,)
        simulated = simulator.is_simulated(state.node_type)
        system = per_system_mean(each[:, None], state.batch, simulated, state.num_systems)[:, 0]
        return (system > limit)[state.batch] & simulated, each

    return {"non-finite": non_finite, "energy": energy}


def edge_strain_max(position: Tensor, state: MeshState) -> Tensor:
    """``(B,)`` the largest edge strain (world length over rest length) of each mesh over a rollout.

    Edges are the mesh edges between non-obstacle nodes; rest lengths come from ``mesh_pos`` (a
    cloth's rest coordinates).

    Args:
        position: ``(N, S, D)`` world positions over ``S`` steps; state: the meshes (their edges).
    """
    s, r = state.mesh_edges
    obstacle = state.node_type == int(NodeType.OBSTACLE)
    rest = (state.mesh_pos[s] - state.mesh_pos[r]).norm(dim=-1)                          # (E,)
    keep = ~obstacle[s] & ~obstacle[r] & (rest > 0)
    s, r, rest = s[keep], r[keep], rest[keep]
    strain = (position[s] - position[r]).norm(dim=-1).amax(1) / rest                     # (E,)
    strain = torch.nan_to_num(strain, nan=float("inf"))
    every = torch.ones_like(s, dtype=torch.bool)
    return per_system_max(strain, state.batch[s], every, state.num_systems)


def _crossings(signal: np.ndarray) -> np.ndarray:
    """Fractional steps where ``signal - mean`` crosses zero upwards (linear interpolation)."""
    x = signal - signal.mean()
    i = np.flatnonzero((x[:-1] < 0) & (x[1:] >= 0))
    return i + x[i] / (x[i] - x[i + 1])


def shedding(velocity: Tensor, state: MeshState, dt: float) -> list[dict[str, float]]:
    """Vortex shedding behind the cylinder of each flow mesh: frequency and amplitude at a probe.

    The cylinder is the WALL_BOUNDARY nodes off the channel's two walls (lowest and highest
    ``y``); the probe is the NORMAL node nearest to :data:`PROBE_DIAMETERS` diameters downstream of
    its centre. The frequency comes from the upward zero crossings of the transverse velocity there
    (mean removed; crossings interpolated); the amplitude is ``sqrt(2)`` times its standard
    deviation (the amplitude of a sine).

    Args:
        velocity: ``(N, S, 2)`` over ``S`` steps; dt: seconds between frames.

    Returns:
        Per mesh ``{"frequency": Hz (0 with fewer than two upward crossings: no shedding seen), "amplitude": m/s,
        "diameter": m, "probe": node index inside the mesh}``.
    """
    out = []
    offsets = state.offsets.tolist()
    for b in range(state.num_systems):
        sl = slice(offsets[b], offsets[b + 1])
        pos, types = state.mesh_pos[sl].cpu().numpy(), state.node_type[sl].cpu().numpy()
        wall = types == int(NodeType.WALL_BOUNDARY)
        y = pos[:, 1]
        cylinder = wall & (y > y[wall].min() + 1e-9) & (y < y[wall].max() - 1e-9)
        if not cylinder.any():
            out.append({"frequency": float("nan"), "amplitude": float("nan"), "diameter": float("nan"), "probe": -1})
            continue
        centre = pos[cylinder].mean(0)
        diameter = float(pos[cylinder, 0].max() - pos[cylinder, 0].min())
        target = centre + np.array([PROBE_DIAMETERS * diameter, 0.0])
        normal = np.flatnonzero(types == int(NodeType.NORMAL))
        probe = int(normal[np.argmin(((pos[normal] - target) ** 2).sum(1))])
        signal = velocity[sl][probe, :, 1].double().cpu().numpy()
        up = _crossings(signal)
        frequency = (len(up) - 1) / ((up[-1] - up[0]) * dt) if len(up) >= 2 else 0.0
        out.append({"frequency": float(frequency), "amplitude": float(np.sqrt(2) * signal.std()),
                    "diameter": diameter, "probe": probe})
    return out


class MeshEvaluation(EvaluationDefaults):
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

    def extra_metrics(self, predicted: Mapping[str, Tensor], truth: Mapping[str, Tensor], initial: State,
                      scored: Tensor) -> dict[str, Tensor]:
        """Whole-rollout physics, per mesh. Lagrangian meshes (cloth): ``edge_strain_max``, the largest
        edge strain (:func:`edge_strain_max`), and ``edge_strain_vs_truth_max``, ``|predicted / true - 1|``
        of it, and ``true_edge_strain_max``, the ground truth's. Meshes with a cylinder in a channel (flow): ``strouhal_error`` and
        ``shedding_amplitude_error``, ``|predicted / true - 1|`` of the shedding frequency and amplitude
        at the probe (:func:`shedding`; a predicted signal that does not shed has frequency 0, a 100%
        error; NaN only where the *true* signal does not shed twice within the rollout, which is then
        too short to measure it), and ``strouhal_true``, ``f D / U_mean`` of the ground truth
        (``U_mean``: 2/3 of the parabolic inflow's peak, as the flow2d card)."""
        field = self.target_field
        if self.simulator.lagrangian:
            strain = edge_strain_max(predicted[field], initial)
            true = edge_strain_max(truth[field], initial)
            return {"edge_strain_max": strain, "edge_strain_vs_truth_max": (strain / true - 1).abs(),
                    "true_edge_strain_max": true}
        if field != "velocity" or not (initial.node_type == int(NodeType.WALL_BOUNDARY)).any():
            return {}
        pred, true = shedding(predicted[field], initial, self.dt), shedding(truth[field], initial, self.dt)
        inflow = initial.node_type == int(NodeType.INFLOW)
        speed = truth[field][:, :, 0].mean(1)                                  # (N,) mean streamwise velocity
        out: dict[str, list[float]] = {"strouhal_error": [], "shedding_amplitude_error": [], "strouhal_true": []}
        offsets = initial.offsets.tolist()
        for b, (p, t) in enumerate(zip(pred, true)):
            sl = slice(offsets[b], offsets[b + 1])
            u_mean = 2 / 3 * float(speed[sl][inflow[sl]].max()) if inflow[sl].any() else float("nan")
            # a rollout too short for the truth to shed twice has no frequency to compare with: NaN, said so above
            out["strouhal_error"].append(abs(p["frequency"] / t["frequency"] - 1) if t["frequency"] > 0
                                         else float("nan"))
            out["shedding_amplitude_error"].append(abs(p["amplitude"] / t["amplitude"] - 1) if t["amplitude"] > 0
                                                   else float("nan"))
            out["strouhal_true"].append(t["frequency"] * t["diameter"] / u_mean)
        return {k: torch.tensor(v, dtype=torch.float64) for k, v in out.items()}

    def divergence_checks(self) -> dict:
        return divergence_checks(self.simulator)

    def drawing(self, state: MeshState) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        static = {"mesh_pos": state.mesh_pos.cpu().numpy(), "node_type": state.node_type.cpu().numpy()}
        return static, ({} if state.cells is None else {"cells": state.cells.cpu().numpy()})
