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

from gns.objects.geometry import body_vertices, contact_frame, place, separation

__all__ = ["all_pairs", "both_directions", "velocity_history", "rotate", "edge_features", "num_edge_features",
           "gap_scales", "num_wall_features", "into_edge_frame", "EDGE_FRAMES", "approach_features",
           "impact_features", "NUM_IMPACT_FEATURES", "wall_impact_features", "NUM_WALL_IMPACT_FEATURES",
           "spring_features", "num_spring_features", "wall_features", "obstacle_pairs", "obstacle_features",
           "num_obstacle_features", "obstacle_node_features", "num_obstacle_node_features", "GAP_COLUMN",
           "impact_change_columns"]


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


def wall_features(gaps: Tensor, scale: float, contact_scale: float = 0.0) -> Tensor:
    """Each shape's gap to the left, right, bottom and top wall (:func:`gap_scales`): ``(N, 4)`` over
    ``scale`` (walls farther than ``scale`` carry no information, as for particles), then ``(N, 4)``
    over ``contact_scale`` if it is positive.

    Args:
        gaps: ``(N, 4)`` m, :func:`gns.objects.geometry.wall_gaps` of the placed shapes.
    """
    return gap_scales(gaps, scale, contact_scale)


EDGE_FRAMES = ("receiver", "world")


def into_edge_frame(vectors: Tensor, angle: Tensor, receivers: Tensor, frame: str) -> Tensor:
    """``(E, 2)`` edge vectors in the edge frame: turned by minus the receiver's angle (``"receiver"``), or as
    they are (``"world"``, no work done)."""
    return rotate(vectors, -angle[receivers]) if frame == "receiver" else vectors


# Column of the (first) gap in :func:`edge_features`, after the relative position (2) and its length.
GAP_COLUMN = 3


def impact_change_columns(contact_scale: float = 0.0, approach: bool = False) -> slice:
    """The columns of :func:`edge_features` with ``impact`` that hold the receiver's velocity (2) and spin change."""
    start = num_edge_features(contact_scale, approach) + 6          # after normal (2), arm (2), closing, share
    return slice(start, start + 3)


def num_edge_features(contact_scale: float = 0.0, approach: bool = False, impact: bool = False) -> int:
    """Width of :func:`edge_features`."""
    return 9 + (contact_scale > 0) + 2 * bool(approach) + NUM_IMPACT_FEATURES * bool(impact)


def _share_after(gap: Tensor, closing: Tensor) -> Tensor:
    """``(E,)`` the share of the next step left after two shapes ``gap`` m apart, closing in at ``closing``
    m/step, would meet: ``clamp(1 - gap / closing, 0, 1)``; 0 when they do not close in."""
    after = torch.where(closing > 0, 1 - gap.clamp(min=0) / closing.clamp(min=1e-12), torch.zeros_like(closing))
    return after.clamp(0.0, 1.0)


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
    return torch.stack([closing / velocity_scale, _share_after(gap, closing)], dim=-1)


NUM_IMPACT_FEATURES = 9


def _cross(r: Tensor, v: Tensor) -> Tensor:
    """``(E,)`` the 2-D cross product ``r x v`` of ``(E, 2)`` vectors."""
    return r[:, 0] * v[:, 1] - r[:, 1] * v[:, 0]


def impact_features(position: Tensor, velocity: Tensor, angular_velocity: Tensor, mass: Tensor, moment: Tensor,
                    restitution: Tensor, contact: tuple[Tensor, Tensor, Tensor], senders: Tensor,
                    receivers: Tensor, into_frame, scale: float, velocity_scale: Tensor,
                    acceleration_scale: Tensor) -> Tensor:
    """``(E, 9)``: the contact geometry of each pair and what a frictionless impact would do to the receiver.

    Inputs, not a prediction: where the two shapes would touch (:func:`gns.objects.geometry.contact_frame`),
    how fast they close in *at that point* (spins included), how much of the next step would be left
    after they meet, and the change of the receiver's per-step velocity and spin that an impulse
    along the normal gives with the pair's restitution (Chipmunk's: the product of the two) and
    the pair's effective mass, over the share of the step after contact::

        j = (1 + e_r e_s) closing / (1/m_r + 1/m_s + (r_r x n)^2 / I_r + (r_s x n)^2 / I_s)
        dv_r = -j n / m_r * after,   dw_r = -(r_r x n) j / I_r * after

    as :func:`spring_features` give the acceleration of the spring alone: an impact is a product of
    four factors (restitution, masses, closing speed, timing) and the contact normal of two
    polygons, which the network otherwise has to form from separate features of a few thousand
    training impacts. It still learns what the data do (friction, resting contacts, several
    contacts at once, the solver's iterations).

    Args:
        position: ``(N, 2)`` centres; velocity: ``(N, 2)`` last per-step velocity (m/step);
            angular_velocity: ``(N,)`` (rad/step).
        mass, moment, restitution: ``(N,)``.
        contact: :func:`gns.objects.geometry.contact_frame` of each pair, receiver first: ``(E, 2)`` normal
            towards the sender, ``(E, 2)`` contact point, ``(E,)`` separation (m).
        into_frame: ``(E, 2) -> (E, 2)`` world vectors into the edge frame (:func:`into_edge_frame`).
        scale: length scale (m); velocity_scale: scalar (m/step); acceleration_scale: ``(3,)`` linear (2)
            and angular (1) per-step accelerations.

    Returns:
        ``(E, 9)``: the normal from receiver to sender (2) and the contact point relative to the
        receiver's centre over ``scale`` (2), in the edge frame; the closing speed at the contact point
        over ``velocity_scale`` (negative: moving apart); the share of the step after contact; the
        receiver's velocity change (2, edge frame) and spin change over ``acceleration_scale``.
    """
    normal, point, gap = contact
    arm_r, arm_s = point - position[receivers], point - position[senders]                  # (E, 2) m
    spin_r, spin_s = angular_velocity[receivers, None], angular_velocity[senders, None]
    at_r = velocity[receivers] + spin_r * torch.stack([-arm_r[:, 1], arm_r[:, 0]], dim=-1)   # (E, 2) m/step
    at_s = velocity[senders] + spin_s * torch.stack([-arm_s[:, 1], arm_s[:, 0]], dim=-1)
    closing = ((at_r - at_s) * normal).sum(-1)                                              # (E,) m/step
    after = _share_after(gap, closing)
    lever_r, lever_s = _cross(arm_r, normal), _cross(arm_s, normal)                          # (E,) m
    inverse_mass = (1 / mass[receivers] + 1 / mass[senders] + lever_r ** 2 / moment[receivers]
                    + lever_s ** 2 / moment[senders])
    impulse = (1 + restitution[receivers] * restitution[senders]) * closing.clamp(min=0) / inverse_mass * after
    dv = -impulse[:, None] * normal / mass[receivers, None]                                 # (E, 2) m/step^2
    dw = -lever_r * impulse / moment[receivers]                                             # (E,) rad/step^2
    return torch.cat([into_frame(normal), into_frame(arm_r) / scale, (closing / velocity_scale)[:, None],
                      after[:, None], into_frame(dv) / acceleration_scale[:2], (dw / acceleration_scale[2])[:, None]],
                     dim=-1)


NUM_WALL_IMPACT_FEATURES = 3
# Inward unit normals of the walls, in the order of gns.objects.geometry.wall_gaps (left, right, bottom, top).
_WALL_NORMALS = ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0))


def wall_impact_features(world: Tensor, rounding: Tensor, position: Tensor, velocity: Tensor,
                         angular_velocity: Tensor, mass: Tensor, moment: Tensor, restitution: Tensor, gaps: Tensor,
                         acceleration_scale: Tensor) -> Tensor:
    """``(N, 3)``: the velocity (2, world frame) and spin change that frictionless impacts with the four walls
    would give each object in the next step, over ``acceleration_scale``: :func:`impact_features` with a
    wall of infinite mass and restitution 1 (the generator's: Chipmunk multiplies it with the object's),
    touching at the shape's point farthest towards the wall, summed over the walls.

    Args:
        world: ``(N, 4, 2)`` placed vertices; rounding: ``(N,)``; position: ``(N, 2)``.
        velocity: ``(N, 2)`` m/step and angular_velocity ``(N,)`` rad/step over the next step if free.
        mass, moment, restitution: ``(N,)``; gaps: ``(N, 4)`` m (:func:`gns.objects.geometry.wall_gaps`).
        acceleration_scale: ``(3,)`` linear (2) and angular (1) per-step accelerations.
    """
    normals = torch.tensor(_WALL_NORMALS, dtype=world.dtype, device=world.device)            # (4, 2) into the box
    depth = torch.einsum("nvk,wk->nwv", world, normals)                                      # (N, 4 walls, 4 vertices)
    rows = torch.arange(world.shape[0], device=world.device)[:, None]
    vertex = world[rows, depth.argmin(dim=-1)]                                               # (N, 4, 2) the nearest
    point = vertex - rounding[:, None, None] * normals                                       # (N, 4, 2)
    arm = point - position[:, None]                                                          # (N, 4, 2)
    at = velocity[:, None] + angular_velocity[:, None, None] * torch.stack([-arm[..., 1], arm[..., 0]], dim=-1)
    closing = -(at * normals).sum(-1)                                                        # (N, 4) m/step
    lever = arm[..., 0] * normals[:, 1] - arm[..., 1] * normals[:, 0]                        # (N, 4) arm x normal
    impulse = ((1 + restitution[:, None]) * closing.clamp(min=0) / (1 / mass[:, None] + lever ** 2 / moment[:, None])
               * _share_after(gaps.flatten(), closing.flatten()).view_as(closing))           # (N, 4)
    dv = (impulse[..., None] * normals).sum(1) / mass[:, None]                               # (N, 2)
    dw = (lever * impulse).sum(1) / moment                                                   # (N,)
    return torch.cat([dv / acceleration_scale[:2], (dw / acceleration_scale[2])[:, None]], dim=-1)


def edge_features(position: Tensor, angle: Tensor, velocity: Tensor, angular_velocity: Tensor, world: Tensor,
                  rounding: Tensor, senders: Tensor, receivers: Tensor, scale: float, velocity_scale: Tensor,
                  angular_velocity_scale: Tensor, contact_scale: float = 0.0, frame: str = "receiver",
                  approach: bool = False, impact: tuple[Tensor, ...] | None = None) -> Tensor:
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
        impact: ``(coming_velocity (N, 2), coming_spin (N,), mass, moment, restitution (N,) each,
            acceleration_scale (3,))``: append :func:`impact_features` (9) for objects moving at
            ``coming_velocity`` over the next step (the last velocity and the free object's response to
            the actions).

    Returns:
        ``(E, 9)`` to ``(E, 12)``: the sender's position relative to the receiver (2) and its length,
        over ``scale``; the gap between the two shapes over ``scale`` (and over ``contact_scale``),
        clipped to [-1, 1] (contact happens at 0); the relative velocity (2) over the velocity scale;
        the relative angular velocity over its scale; the cosine and sine of the sender's angle
        relative to the receiver's; then (``approach``) the closing speed and the share of the next
        step after contact; then (``impact``) the contact frame and the impact estimate.
    """
    between = position[senders] - position[receivers]                                  # (E, 2) m, world
    offset = into_edge_frame(between, angle, receivers, frame) / scale                  # (E, 2)
    distance = torch.linalg.vector_norm(offset, dim=-1, keepdim=True)                 # (E, 1)
    if impact is not None:  # the contact frame's search gives the separation too
        contact = contact_frame(world[receivers], rounding[receivers], world[senders], rounding[senders])
        gap_m = contact[2]                                                               # (E,)
    else:
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
    if impact is not None:
        coming, coming_spin, mass, moment, restitution, acceleration_scale = impact
        parts.append(impact_features(position, coming, coming_spin, mass, moment, restitution, contact, senders,
                                     receivers, lambda v: into_edge_frame(v, angle, receivers, frame), scale,
                                     velocity_scale, acceleration_scale))
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


def obstacle_pairs(batch: Tensor, obstacle_shape: Tensor) -> tuple[Tensor, Tensor]:
    """Every (object, obstacle of its scene) pair.

    Args:
        batch: ``(K,)`` int64 scene of each object; obstacle_shape: ``(B, M)`` int64 (-1: padding).

    Returns:
        ``(P,)`` object indices and ``(P,)`` obstacle indices into the flattened ``(B * M)`` obstacles,
        sorted by object then obstacle.
    """
    width = obstacle_shape.shape[1]
    objects = torch.arange(batch.numel(), device=batch.device).repeat_interleave(width)         # (K * M,)
    obstacles = (batch[:, None] * width + torch.arange(width, device=batch.device)).flatten()  # (K * M,)
    keep = obstacle_shape.flatten()[obstacles] >= 0
    return objects[keep], obstacles[keep]


def num_obstacle_features(num_shapes: int, contact_scale: float = 0.0, approach: bool = False,
                          impact: bool = False) -> int:
    """Width of :func:`obstacle_features`."""
    return num_edge_features(contact_scale, approach, impact) + 2 + num_shapes


def obstacle_features(obstacles: dict[str, Tensor], objects: Tensor, flat: Tensor, num_shapes: int,
                      position: Tensor, angle: Tensor, velocity: Tensor, angular_velocity: Tensor, world: Tensor,
                      rounding: Tensor, scale: float, velocity_scale: Tensor, angular_velocity_scale: Tensor,
                      contact_scale: float = 0.0, frame: str = "receiver", approach: bool = False,
                      impact: tuple[Tensor, ...] | None = None) -> Tensor:
    """Features of the edges from each static obstacle to each object of its scene (:func:`obstacle_pairs`).

    An obstacle is a shape that does not move and cannot be moved: :func:`edge_features` with the
    obstacle as the sender at rest, and, for the impact estimate, of infinite mass and moment and
    restitution 1 (the generator's, as for the walls: Chipmunk multiplies it with the object's); then
    the obstacle's size over ``scale`` (2) and its shape (one-hot), which the object's own node does
    not carry as it does for another object.

    Args:
        obstacles: :data:`gns.objects.state.OBSTACLES` of the batch, ``(B, M, ...)``.
        objects, flat: ``(P,)`` :func:`obstacle_pairs`.
        num_shapes: shape codes of the one-hot.
        position .. rounding: of the ``N`` objects, as for :func:`edge_features`.
        impact: as for :func:`edge_features`, of the objects.

    Returns:
        ``(P, num_obstacle_features)``, in the frame of the object (the receiver).
    """
    shape = obstacles["obstacle_shape"].flatten()[flat]                                         # (P,)
    size = obstacles["obstacle_size"].flatten(0, 1)[flat]                                       # (P, 2)
    centre = obstacles["obstacle_position"].flatten(0, 1)[flat].to(position)                    # (P, 2)
    turn = obstacles["obstacle_angle"].flatten()[flat].to(angle)                                # (P,)
    vertices, corner = body_vertices(shape, size.to(position))
    count, pairs = position.shape[0], flat.numel()
    senders = torch.arange(count, count + pairs, device=position.device)                      # one sender per pair
    rest = position.new_zeros(pairs)
    if impact is not None:
        coming, coming_spin, mass, moment, restitution, acceleration_scale = impact
        infinite = position.new_full((pairs,), float("inf"))
        impact = (torch.cat([coming, rest[:, None].expand(-1, 2)]), torch.cat([coming_spin, rest]),
                  torch.cat([mass, infinite]), torch.cat([moment, infinite]),
                  torch.cat([restitution, torch.ones_like(rest)]), acceleration_scale)
    edges = edge_features(torch.cat([position, centre]), torch.cat([angle, turn]),
                          torch.cat([velocity, rest[:, None].expand(-1, 2)]), torch.cat([angular_velocity, rest]),
                          torch.cat([world, place(vertices, centre, turn)]), torch.cat([rounding, corner]),
                          senders, objects, scale, velocity_scale, angular_velocity_scale, contact_scale, frame,
                          approach, impact)
    return torch.cat([edges, size.to(position) / scale,
                      torch.nn.functional.one_hot(shape, num_shapes).to(position)], dim=-1)


def num_obstacle_node_features(contact_scale: float = 0.0, impact: bool = False) -> int:
    """Width of :func:`obstacle_node_features`."""
    return 1 + (contact_scale > 0) + 3 * bool(impact)


def obstacle_node_features(edges: Tensor, objects: Tensor, count: int, contact_scale: float = 0.0,
                           approach: bool = False, impact: bool = False) -> Tensor:
    """What the obstacles of its scene do to each object, on its node, as the walls' features are: the gap to
    the nearest obstacle (the columns of :func:`gap_scales`; 1, far, without any) and, with ``impact``, the
    sum over the obstacles of the impact estimate (velocity (2) and spin change, in the edge frame).

    The obstacle edges carry the same and more, but obstacle impacts are a few times rarer in the data than
    wall impacts, and the walls' node features are what the network learns to keep objects out with.

    Args:
        edges: ``(P, num_obstacle_features)`` :func:`obstacle_features`; objects: ``(P,)`` their objects.
        count: objects ``N``; contact_scale, approach, impact: the settings the edges were made with.

    Returns:
        ``(N, num_obstacle_node_features)``.
    """
    gaps = edges[:, GAP_COLUMN:GAP_COLUMN + 1 + (contact_scale > 0)]                         # (P, 1 or 2)
    nearest = edges.new_ones(count, gaps.shape[1]).scatter_reduce(0, objects[:, None].expand_as(gaps), gaps, "amin")
    if not impact:
        return nearest
    change = edges[:, impact_change_columns(contact_scale, approach)]                       # (P, 3) dv (2), dw
    return torch.cat([nearest, edges.new_zeros(count, 3).index_add_(0, objects, change)], dim=-1)
