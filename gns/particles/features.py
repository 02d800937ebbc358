"""Node and edge features of a particle graph (before the learned type embedding).

Node features (GNS): the last ``C`` velocities, normalized, and the distance to each
non-periodic wall divided by the connectivity radius, clipped to [-1, 1].
Edge features: the displacement ``x_sender - x_receiver`` divided by the radius (minimum
image in periodic boxes) and its norm; optionally (``model.edge_velocity``) the relative velocity
``v_sender - v_receiver`` of the last step divided by the velocity std.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gns.geometry import minimum_image


def velocity_history(position_seq: Tensor, bounds: Tensor, periodic: Tensor) -> Tensor:
    """``(N, C+1, D)`` positions -> ``(N, C, D)`` per-step velocities (minimum image)."""
    return minimum_image(position_seq[:, 1:] - position_seq[:, :-1], bounds, periodic)


def wall_distances(position: Tensor, bounds: Tensor, periodic: Tensor, radius: float) -> Tensor:
    """Distances to the lower and upper wall of every non-periodic dimension.

    Args:
        position: ``(N, D)`` most recent positions.

    Returns:
        ``(N, 2 * D_np)`` with ``D_np`` the number of non-periodic dims: ``(x - lo) / R`` then
        ``(hi - x) / R`` per dimension, clipped to ``[-1, 1]`` (far walls carry no information).
    """
    keep = ~periodic.to(position.device)
    lo = bounds[:, 0].to(position)[keep]
    hi = bounds[:, 1].to(position)[keep]
    x = position[:, keep]
    return torch.cat([(x - lo) / radius, (hi - x) / radius], dim=-1).clamp(-1.0, 1.0)


def wall_nearness(walls: Tensor) -> Tensor:
    """``(N,)`` how near each particle is to its closest wall, from the ``(N, 2 * D_np)`` features of
    :func:`wall_distances`: ``1 - distance / R``, 0 farther than one radius, 1 at a wall and beyond it;
    0 everywhere in a box without walls."""
    if not walls.shape[-1]:
        return walls.new_zeros(len(walls))
    return (1.0 - walls.amin(dim=-1)).clamp(0.0, 1.0)


def box_position(position: Tensor, bounds: Tensor, periodic: Tensor) -> Tensor:
    """``(N, D_np)`` the place of each particle in the box per non-periodic dimension, ``(x - lo) / (hi - lo) * 2 - 1``:
    -1 at the lower wall, 1 at the upper one, unclipped (a particle outside the box gets a value beyond)."""
    keep = ~periodic.to(position.device)
    lo, hi = bounds[:, 0].to(position)[keep], bounds[:, 1].to(position)[keep]
    return (position[:, keep] - lo) / (hi - lo) * 2 - 1


def num_wall_features(periodic: Tensor) -> int:
    return 2 * int((~periodic).sum())


def edge_features(position: Tensor, senders: Tensor, receivers: Tensor, bounds: Tensor, periodic: Tensor,
                  radius: float) -> Tensor:
    """``(E, D + 1)``: ``(x_s - x_r) / R`` (minimum image) and its norm."""
    disp = minimum_image(position[senders] - position[receivers], bounds, periodic) / radius  # (E, D)
    return torch.cat([disp, torch.linalg.vector_norm(disp, dim=-1, keepdim=True)], dim=-1)
