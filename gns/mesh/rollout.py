"""Mesh rollouts: the learned simulator and the baselines, with prescribed nodes held on their values.

Conventions: ``prescribed`` maps each predicted field to its ground truth over the rollout,
``(N, S, F)`` for ``S`` steps; nodes that the simulator does not integrate (handles, obstacles,
inflow and wall nodes) take these values at every step, in the model's rollout and the
baselines' alike, so the comparison is on the simulated nodes only. Input fields that the
simulator reads but does not predict (cloth: the wind) are prescribed too, on every node.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gns.errors import GnsInputError
from gns.mesh.simulator import MeshSimulator, MeshState


def _hold(values: dict[str, Tensor], prescribed: dict[str, Tensor], step: int, simulated: Tensor) -> dict[str, Tensor]:
    """Prescribed nodes take their given values at ``step``."""
    return {name: torch.where(simulated[:, None], v, prescribed[name][:, step]) for name, v in values.items()}


def _shift(state: MeshState, frames: dict[str, Tensor]) -> MeshState:
    """Drop the oldest frame of each field of ``frames`` and append its new frame ``(N, F)``."""
    shifted = {name: torch.cat([state.fields[name][:, 1:], frame[:, None]], dim=1) for name, frame in frames.items()}
    return state.with_fields({**state.fields, **shifted})


@torch.inference_mode()
def mesh_rollout(simulator: MeshSimulator, initial: MeshState, num_steps: int,
                 prescribed: dict[str, Tensor]) -> dict[str, Tensor]:
    """Roll the simulator ``num_steps`` steps from ``initial``.

    Args:
        initial: meshes whose target field (and input fields) hold at least ``simulator.window`` frames.
        prescribed: field -> ``(N, num_steps, F)`` values of every predicted field over the rollout
            (ground truth), used on the nodes the simulator does not integrate, and of every input
            field the simulator reads (``simulator.input_fields``), used on all nodes.

    Returns:
        field -> ``(N, num_steps, F)`` predicted frames (target field and output fields).
    """
    simulated = simulator.is_simulated(initial.node_type)
    target = simulator.target_field
    carried = [target, *simulator.input_fields]
    missing = [name for name in simulator.input_fields if name not in prescribed or name not in initial.fields]
    if missing:
        raise GnsInputError("the rollout needs the input fields the model reads over the whole rollout",
                            key="prescribed", expected=f"fields {simulator.input_fields}", found=sorted(prescribed))
    state = initial.with_fields({name: initial.fields[name][:, -simulator.window:] for name in carried})
    frames: dict[str, list[Tensor]] = {}
    for step in range(num_steps):
        nxt = _hold(simulator.predict_next(state), prescribed, step, simulated)
        for name, value in nxt.items():
            frames.setdefault(name, []).append(value)
        state = _shift(state, {target: nxt[target], **{name: prescribed[name][:, step]
                                                       for name in simulator.input_fields}})
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
