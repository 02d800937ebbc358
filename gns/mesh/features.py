"""Node and edge features of a mesh graph (before normalization and encoding).

Edge features are relative positions, so the model is invariant to translations of the mesh:
for an edge from sender ``s`` to receiver ``r`` the displacement is ``x_s - x_r``, the convention
of :mod:`gns.particles.features` (and of DeepMind's code), followed by its Euclidean norm.
Displacements are returned in the units of the positions given; scaling them is the
normalizer's job, so no unit or physical constant enters here.

Node features are the per-node inputs the caller chooses (e.g. the velocity) followed by the
one-hot node type.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from gns.errors import GnsInputError
from gns.mesh.types import NODE_TYPE_SIZE, one_hot

__all__ = ["mesh_edge_features", "world_edge_features", "node_features", "relative_displacement"]


def relative_displacement(position: Tensor, edge_index: Tensor) -> Tensor:
    """``(E, D + 1)``: ``position[sender] - position[receiver]`` and its norm.

    Args:
        position: ``(N, D)`` positions.
        edge_index: ``(2, E)`` int64, row 0 senders, row 1 receivers.
    """
    disp = position[edge_index[0]] - position[edge_index[1]]                      # (E, D)
    return torch.cat([disp, torch.linalg.vector_norm(disp, dim=-1, keepdim=True)], dim=-1)


def mesh_edge_features(mesh_pos: Tensor, world_pos: Tensor | None, edge_index: Tensor) -> Tensor:
    """Features of the mesh edges.

    The mesh-space part tells the model the rest shape (the reference configuration of cloth, or
    the mesh of a flow); the world-space part, given for Lagrangian systems such as cloth, tells it
    the current deformation. Together they let it compute strain.

    Args:
        mesh_pos: ``(N, Dm)`` mesh-space positions (``Dm`` = 2 for cloth and 2-D flow meshes).
        world_pos: ``(N, Dw)`` current world-space positions, or ``None`` (Eulerian meshes: the mesh
            does not move).
        edge_index: ``(2, E)`` int64 mesh edges, row 0 senders, row 1 receivers.

    Returns:
        ``(E, Dm + 1)`` ``[mesh disp, |mesh disp|]``, or with ``world_pos`` ``(E, Dm + 1 + Dw + 1)``
        ``[mesh disp, |mesh disp|, world disp, |world disp|]``; dtype of ``mesh_pos``.
    """
    _check(mesh_pos, "mesh_pos", edge_index)
    parts = [relative_displacement(mesh_pos, edge_index)]
    if world_pos is not None:
        _check(world_pos, "world_pos", edge_index, nodes=mesh_pos.shape[0])
        parts.append(relative_displacement(world_pos, edge_index).to(mesh_pos.dtype))
    return torch.cat(parts, dim=-1)


def strain_features(mesh_features: Tensor, mesh_dim: int) -> Tensor:
    """``(E, 1 + Dw)`` the strain of each mesh edge, ``|world disp| / |mesh disp| - 1``, and the strain along the
    world direction (the pull of a spring of that strain), from :func:`mesh_edge_features` with world positions
    (``[mesh disp (Dm), |mesh disp|, world disp (Dw), |world disp|]``; edges of zero rest length: strain 0)."""
    rest, world, length = (mesh_features[:, mesh_dim:mesh_dim + 1], mesh_features[:, mesh_dim + 1:-1],
                           mesh_features[:, -1:])
    strain = torch.where(rest > 0, length / rest.clamp(min=1e-12) - 1, torch.zeros_like(rest))      # (E, 1)
    return torch.cat([strain, strain * world / length.clamp(min=1e-12)], dim=-1)


def world_edge_features(world_pos: Tensor, edge_index: Tensor) -> Tensor:
    """Features of the world edges: ``(E, D + 1)`` ``[world disp, |world disp|]``.

    World edges join nodes that are close in space but far apart on the mesh, so their mesh-space
    displacement says nothing about contact and is left out (as in the paper).

    Args:
        world_pos: ``(N, D)`` world-space positions.
        edge_index: ``(2, E)`` int64 world edges, row 0 senders, row 1 receivers.
    """
    _check(world_pos, "world_pos", edge_index)
    return relative_displacement(world_pos, edge_index)


def node_features(node_type: Tensor, dynamic_inputs: Tensor | Sequence[Tensor] | None = None, *,
                  size: int = NODE_TYPE_SIZE) -> Tensor:
    """Per-node inputs followed by the one-hot node type.

    Args:
        node_type: ``(N,)`` or ``(N, 1)`` integer node types.
        dynamic_inputs: ``(N, F)`` per-node inputs (e.g. velocity, or velocity and pressure), a
            sequence of ``(N, F_k)`` tensors concatenated in order, or ``None`` (type only).
        size: width of the one-hot encoding.

    Returns:
        ``(N, F + size)`` in the dtype of the inputs (float32 without inputs).
    """
    inputs = [] if dynamic_inputs is None else (
        [dynamic_inputs] if isinstance(dynamic_inputs, Tensor) else list(dynamic_inputs))
    n = node_type.shape[0]
    for k, x in enumerate(inputs):
        if x.ndim != 2 or x.shape[0] != n:
            raise GnsInputError("node inputs must have one row per node", key=f"dynamic_inputs[{k}]",
                                expected=f"({n}, F)", found=tuple(x.shape))
    dtype = inputs[0].dtype if inputs else torch.float32
    return torch.cat([*inputs, one_hot(node_type, size, dtype=dtype).to(node_type.device)], dim=-1)


def _check(position: Tensor, name: str, edge_index: Tensor, nodes: int | None = None) -> None:
    if position.ndim != 2 or (nodes is not None and position.shape[0] != nodes):
        raise GnsInputError(f"{name} must hold one position per node", key=name,
                            expected="(N, D)" if nodes is None else f"({nodes}, D)", found=tuple(position.shape))
    if edge_index.ndim != 2 or edge_index.shape[0] != 2:
        raise GnsInputError("edge_index must be (2, E)", key="edge_index", expected="(2, E)",
                            found=tuple(edge_index.shape))
