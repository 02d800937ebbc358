"""Node and edge features of a particle graph (before the learned type embedding).

Node features (GNS): the last ``C`` velocities, normalized, and the distance to each
non-periodic wall divided by the connectivity radius, clipped to [-1, 1].
Edge features: the displacement ``x_sender - x_receiver`` divided by the radius (minimum
image in periodic boxes) and its norm; optionally (``model.edge_velocity``) the relative velocity
``v_sender - v_receiver`` of the last step divided by the velocity std.
"""

from __future__ import annotations

import math

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


def wall_lattice(bounds: Tensor, periodic: Tensor, spacing: float, radius: float) -> Tensor:
    """Static wall particles: layers ``spacing`` apart, the first on the wall itself, filling one ``radius``
    behind every non-periodic wall (corners included, up to ``radius`` from the box); along a wall they are
    ``spacing`` apart from its lower end (from the box's lower bound along periodic dimensions).

    Args:
        bounds: ``(D, 2)`` box; periodic: ``(D,)`` bool; spacing, radius: > 0.

    Returns:
        ``(W, D)`` float32 positions (``W`` = 0 in a box without walls).
    """
    bounds = bounds.detach().to(torch.float64).cpu()
    periodic = periodic.cpu()
    tol = 1e-4 * spacing                                                # float32 bounds' rounding
    layers = torch.arange(math.floor(radius / spacing + 1e-4) + 1, dtype=torch.float64) * spacing   # (K,)
    axes = []
    for d in range(bounds.shape[0]):
        lo, hi = float(bounds[d, 0]), float(bounds[d, 1])
        along = lo + torch.arange(math.ceil((hi - lo) / spacing - 1e-4), dtype=torch.float64) * spacing
        axes.append(along if bool(periodic[d]) else torch.cat([lo - layers.flip(0), along[1:], hi + layers]))
    points = torch.cartesian_prod(*axes).reshape(-1, bounds.shape[0])                      # (P, D)
    lo, hi = bounds[:, 0], bounds[:, 1]
    outside = torch.maximum(lo - points, points - hi).clamp(min=0)                          # (P, D)
    at_wall = ((points <= lo + tol) | (points >= hi - tol))[:, ~periodic].any(-1)
    keep = at_wall & (torch.linalg.vector_norm(outside, dim=-1) <= radius + tol)
    return points[keep].to(torch.float32)


def wall_pairs(position: Tensor, candidates: Tensor, lattice: Tensor, radius: float, bounds: Tensor,
               periodic: Tensor, chunk: int = 1 << 22) -> tuple[Tensor, Tensor]:
    """Pairs of a particle and a static wall particle at most ``radius`` apart.

    Args:
        position: ``(N, D)`` particle positions; candidates: ``(C,)`` int64 indices of the particles that
            can have wall neighbours (those within one radius of a wall or beyond it); lattice: ``(W, D)``
            from :func:`wall_lattice`; chunk: the most particle-wall distances held at once.

    Returns:
        ``(P,)`` particle indices and ``(P,)`` lattice indices, sorted by particle then lattice index.
    """
    empty = torch.zeros(0, dtype=torch.long, device=position.device)
    if not len(candidates) or not len(lattice):
        return empty, empty
    lattice = lattice.to(position)
    rows = max(1, chunk // len(lattice))
    found_p, found_w = [], []
    for start in range(0, len(candidates), rows):
        idx = candidates[start:start + rows]
        delta = minimum_image(lattice[None] - position[idx][:, None], bounds.to(position), periodic)  # (c, W, D)
        near = (delta ** 2).sum(-1) <= radius ** 2                                                     # (c, W)
        p, w = near.nonzero(as_tuple=True)
        found_p.append(idx[p])
        found_w.append(w)
    return torch.cat(found_p), torch.cat(found_w)
