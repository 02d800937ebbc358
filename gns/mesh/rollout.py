"""Mesh rollouts: the learned simulator and the baselines, with prescribed nodes held on their values.

Conventions: ``prescribed`` maps each predicted field to its ground truth over the rollout,
``(N, S, F)`` for ``S`` steps; nodes that the simulator does not integrate (handles, obstacles,
inflow and wall nodes) take these values at every step, in the model's rollout and the
baselines' alike, so the comparison is on the simulated nodes only.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gns.mesh.simulator import MeshSimulator, MeshState


def _hold(values: dict[str, Tensor], prescribed: dict[str, Tensor], step: int, simulated: Tensor) -> dict[str, Tensor]:
    """Prescribed nodes take their given values at ``step``."""
    return {name: torch.where(simulated[:, None], v, prescribed[name][:, step]) for name, v in values.items()}


def _shift(state: MeshState, field: str, frame: Tensor) -> MeshState:
    """Drop the oldest frame of ``field`` and append ``frame`` ``(N, F)``."""
    seq = state.fields[field]
    return state.with_fields({**state.fields, field: torch.cat([seq[:, 1:], frame[:, None]], dim=1)})


@torch.inference_mode()
def mesh_rollout(simulator: MeshSimulator, initial: MeshState, num_steps: int,
                 prescribed: dict[str, Tensor]) -> dict[str, Tensor]:
    """Roll the simulator ``num_steps`` steps from ``initial``.

    Args:
        initial: meshes whose target field holds at least ``simulator.window`` frames.
        prescribed: field -> ``(N, num_steps, F)`` values of every predicted field over the rollout
            (ground truth); used on the nodes the simulator does not integrate.

    Returns:
        field -> ``(N, num_steps, F)`` predicted frames (target field and output fields).
    """
    simulated = simulator.is_simulated(initial.node_type)
    target = simulator.target_field
    state = initial.with_fields({target: initial.fields[target][:, -simulator.window:]})
    frames: dict[str, list[Tensor]] = {}
    for step in range(num_steps):
        nxt = _hold(simulator.predict_next(state), prescribed, step, simulated)
        for name, value in nxt.items():
            frames.setdefault(name, []).append(value)
        state = _shift(state, target, nxt[target])
    return {name: torch.stack(v, dim=1) for name, v in frames.items()}


def persistence_rollout(initial: MeshState, num_steps: int, prescribed: dict[str, Tensor],
                        simulated: Tensor) -> dict[str, Tensor]:
    """Every field keeps its last input value (the MeshGraphNets baseline); prescribed nodes as given.

    ``initial.fields`` must hold every field of ``prescribed`` (its last frame is kept).
    """
    out = {}
    for name, truth in prescribed.items():
        last = initial.fields[name][:, -1:]                                           # (N, 1, F)
        out[name] = torch.where(simulated[:, None, None], last.expand_as(truth), truth)
    return out


def constant_velocity_rollout(initial: MeshState, field: str, num_steps: int, prescribed: Tensor,
                              simulated: Tensor) -> Tensor:
    """``(N, S, F)``: positions moving on with their last per-step velocity (Lagrangian meshes)."""
    seq = initial.fields[field]
    velocity = seq[:, -1] - seq[:, -2]
    steps = torch.arange(1, num_steps + 1, device=seq.device, dtype=seq.dtype)[None, :, None]
    moved = seq[:, -1:, :] + steps * velocity[:, None, :]
    return torch.where(simulated[:, None, None], moved, prescribed)
