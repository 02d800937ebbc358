"""Node and edge features of an object graph (before normalization, except where noted).

Nodes are objects. Edges join objects of one scene: every ordered pair (:func:`all_pairs`, the
Interaction Networks' setting) or the pairs whose centres are within a radius; springs are a second
edge set, both directions of each spring (:func:`spring_features`). An edge's features
are written in its *receiver's* frame (rotated by minus the receiver's angle): what the receiver
feels of the sender (where it is, how it moves, how it is turned) is then the same whichever way
the receiver is turned, and only its orientation relative to the walls (a node feature) remains
for the network to learn.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gns.objects.geometry import place, separation, wall_gaps

__all__ = ["all_pairs", "both_directions", "velocity_history", "rotate", "edge_features", "num_edge_features",
           "gap_scales", "num_wall_features", "into_edge_frame", "EDGE_FRAMES", "approach_features",
           "spring_features", "num_spring_features", "wall_features"]


def all_pairs(n: Tensor) -> Tensor:
    """Every ordered pair of distinct entities inside each system, as an edge index.

    Args:
        n: ``(B,)`` int64 entities per system (contiguous).

    Returns:
        ``(2, E)`` int64 on ``n.device``, ``E = sum n_b (n_b - 1)``: row 0 senders, row 1 receivers,
        sorted by receiver then sender.
    """
    offsets = torch.cumsum(n, 0) - n                                                  # (B,) first entity
    batch = torch.repeat_interleave(torch.arange(n.numel(), device=n.device), n)       # (N,)
    receivers = torch.repeat_interleave(torch.arange(int(n.sum()), device=n.device), n[batch])   # (sum n_b^2,)
    block_start = torch.cumsum(n[batch], 0) - n[batch]                                # (N,) first row of each block
    rank = torch.arange(receivers.numel(), device=n.device) - block_start[receivers]  # 0..n_b-1 in each block
    senders = offsets[batch[receivers]] + rank
    keep = senders != receivers
    return torch.stack([senders[keep], receivers[keep]])


def velocity_history(seq: Tensor) -> Tensor:
    """``(N, C+1, F)`` positions or angles -> ``(N, C, F)`` per-step velocities (finite differences)."""
    return seq[:, 1:] - seq[:, :-1]


def rotate(vectors: Tensor, angle: Tensor) -> Tensor:
    """``(E, 2)`` vectors rotated counter-clockwise by ``angle`` ``(E,)``."""
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([c * vectors[:, 0] - s * vectors[:, 1], s * vectors[:, 0] + c * vectors[:, 1]], dim=-1)


def gap_scales(gap: Tensor, scale: float, contact_scale: float) -> Tensor:
    """``(..., G)`` gaps (m) -> ``(..., G)`` over ``scale``, then, if ``contact_scale > 0``, ``(..., 2G)``
    with the same gaps over ``contact_scale`` appended; each clipped to [-1, 1]."""
    coarse = (gap / scale).clamp(-1.0, 1.0)
    if contact_scale <= 0:
        return coarse
    return torch.cat([coarse, (gap / contact_scale).clamp(-1.0, 1.0)], dim=-1)


def num_wall_features(contact_scale: float) -> int:
    """Width of :func:`wall_features`."""
    return 8 if contact_scale > 0 else 4


def wall_features(vertices: Tensor, rounding: Tensor, position: Tensor, angle: Tensor, bounds: Tensor,
                  scale: float, contact_scale: float = 0.0) -> Tensor:
    """Each shape's gap to the left, right, bottom and top wall (:func:`gap_scales`): ``(N, 4)`` over
    ``scale`` (walls farther than ``scale`` carry no information, as for particles), then ``(N, 4)``
    over ``contact_scale`` if it is positive.

    Args:
        vertices: ``(N, 4, 2)`` body-frame vertices; rounding: ``(N,)``; position: ``(N, 2)``;
            angle: ``(N,)``; bounds: ``(2, 2)``.
    """
    return gap_scales(wall_gaps(place(vertices, position, angle), rounding, bounds), scale, contact_scale)


EDGE_FRAMES = ("receiver", "world")


def into_edge_frame(vectors: Tensor, angle: Tensor, receivers: Tensor, frame: str) -> Tensor:
    """``(E, 2)`` edge vectors in the edge frame: turned by minus the receiver's angle (``"receiver"``), or as
    they are (``"world"``, no work done)."""
    return rotate(vectors, -angle[receivers]) if frame == "receiver" else vectors


def num_edge_features(contact_scale: float = 0.0, approach: bool = False) -> int:
    """Width of :func:`edge_features`."""
    return 9 + (contact_scale > 0) + 2 * bool(approach)


def approach_features(offset: Tensor, relative_velocity: Tensor, gap: Tensor, velocity_scale: Tensor) -> Tensor:
    """``(E, 2)``: how fast the two centres close in, per step, over ``velocity_scale`` (negative: moving
    apart), and the share of the next step left after the shapes would meet at that speed,
    ``clamp(1 - gap / closing, 0, 1)`` (0 when they do not close in).

    Geometry of the inputs, not a force: a collision in the next step changes the velocity by an
    amount that grows with both, and the network would otherwise have to form the product of the
    offset and the relative velocity, and their ratio to the gap, from the separate features.

    Args:
        offset: ``(E, 2)`` sender minus receiver centre (m); relative_velocity: ``(E, 2)`` sender minus
            receiver per-step velocity (m/step), in the same frame; gap: ``(E,)`` (m).
        velocity_scale: scalar (m/step).
    """
    unit = offset / torch.linalg.vector_norm(offset, dim=-1, keepdim=True).clamp(min=1e-9)
    closing = -(relative_velocity * unit).sum(-1)                                       # (E,) m/step
    after = torch.where(closing > 0, 1 - gap.clamp(min=0) / closing.clamp(min=1e-12), torch.zeros_like(closing))
    return torch.stack([closing / velocity_scale, after.clamp(0.0, 1.0)], dim=-1)


def edge_features(position: Tensor, angle: Tensor, velocity: Tensor, angular_velocity: Tensor, world: Tensor,
                  rounding: Tensor, senders: Tensor, receivers: Tensor, scale: float, velocity_scale: Tensor,
                  angular_velocity_scale: Tensor, contact_scale: float = 0.0, frame: str = "receiver",
                  approach: bool = False) -> Tensor:
    """Features of the edges ``senders -> receivers``, in the receiver's frame.

    Args:
        position: ``(N, 2)`` current centres; angle: ``(N,)`` current angles.
        velocity: ``(N, 2)`` last per-step velocity; angular_velocity: ``(N,)``.
        world: ``(N, 4, 2)`` placed vertices; rounding: ``(N,)`` (:mod:`gns.objects.geometry`).
        scale: length scale (m) of positions, distances and gaps.
        velocity_scale: ``(2,)`` or scalar; angular_velocity_scale: ``(1,)`` or scalar.
        contact_scale: m; if positive, the gap is given a second time over it (:func:`gap_scales`).
        frame: ``"receiver"`` (vectors turned into the receiver's frame) or ``"world"`` (as they are, the
            frame of the predicted accelerations).
        approach: append :func:`approach_features` (2).

    Returns:
        ``(E, 9)`` to ``(E, 12)``: the sender's position relative to the receiver (2) and its length,
        over ``scale``; the gap between the two shapes over ``scale`` (and over ``contact_scale``),
        clipped to [-1, 1] (contact happens at 0); the relative velocity (2) over the velocity scale;
        the relative angular velocity over its scale; the cosine and sine of the sender's angle
        relative to the receiver's; then (``approach``) the closing speed and the share of the next
        step after contact.
    """
    between = position[senders] - position[receivers]                                  # (E, 2) m, world
    offset = into_edge_frame(between, angle, receivers, frame) / scale                  # (E, 2)
    distance = torch.linalg.vector_norm(offset, dim=-1, keepdim=True)                 # (E, 1)
    gap_m = separation(world[senders], rounding[senders], world[receivers], rounding[receivers])   # (E,)
    gap = gap_scales(gap_m[:, None], scale, contact_scale)                              # (E, 1 or 2)
    moving = velocity[senders] - velocity[receivers]                                   # (E, 2) m/step, world
    relative_velocity = into_edge_frame(moving, angle, receivers, frame) / velocity_scale
    relative_spin = ((angular_velocity[senders] - angular_velocity[receivers]) / angular_velocity_scale)[:, None]
    relative_angle = angle[senders] - angle[receivers]
    parts = [offset, distance, gap, relative_velocity, relative_spin,
             torch.cos(relative_angle)[:, None], torch.sin(relative_angle)[:, None]]
    if approach:
        parts.append(approach_features(between, moving, gap_m, velocity_scale))
    return torch.cat(parts, dim=-1)


def both_directions(links: Tensor) -> Tensor:
    """``(2, S)`` undirected links -> ``(2, 2S)`` edges: each link, then each reversed."""
    return torch.cat([links, links.flip(0)], dim=1)


def num_spring_features() -> int:
    """Width of :func:`spring_features`."""
    return 8


def spring_features(position: Tensor, angle: Tensor, velocity: Tensor, mass: Tensor, values: Tensor,
                    senders: Tensor, receivers: Tensor, scale: float, velocity_scale: Tensor,
                    acceleration_scale: Tensor, dt: float, frame: str = "receiver") -> Tensor:
    """Features of spring edges ``senders -> receivers``, in the receiver's frame.

    Args:
        position: ``(N, 2)``; angle: ``(N,)``; velocity: ``(N, 2)`` last per-step velocity; mass: ``(N,)``.
        values: ``(E, 3)`` rest length (m), stiffness (N/m), damping (N s/m) of each edge's spring.
        scale: length scale (m); velocity_scale: scalar (m/step); acceleration_scale: scalar (m/step^2).
        dt: seconds per step; frame: as for :func:`edge_features`.

    Returns:
        ``(E, 8)``: the sender's position relative to the receiver (2), the spring's length and its
        extension, over ``scale``; the acceleration the spring alone gives the receiver along it,
        ``k (L - L0) dt^2 / m_r``, over the acceleration scale, and the share of their relative
        velocity its damping removes in a step, ``c dt / m_r``; the relative velocity (2) over the
        velocity scale.
    """
    offset = into_edge_frame(position[senders] - position[receivers], angle, receivers, frame)   # (E, 2)
    length = torch.linalg.vector_norm(offset, dim=-1)                                  # (E,)
    extension = length - values[:, 0]
    receiver_mass = mass[receivers]
    pull = values[:, 1] * extension * dt ** 2 / receiver_mass / acceleration_scale
    damping = values[:, 2] * dt / receiver_mass
    moving = velocity[senders] - velocity[receivers]                                   # (E, 2) m/step, world
    relative_velocity = into_edge_frame(moving, angle, receivers, frame) / velocity_scale
    return torch.cat([offset / scale, (length / scale)[:, None], (extension / scale)[:, None], pull[:, None],
                      damping[:, None], relative_velocity], dim=-1)
