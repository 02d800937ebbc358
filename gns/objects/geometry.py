"""Shapes of rigid objects in torch: vertices, gaps to the walls, separation of pairs, touching.

Every shape is a convex polygon *rounded* by a radius, Chipmunk's own model of shapes: a box or a
triangle is its vertices with radius 0, a disc is one point (its centre) with radius ``width / 2``.
Polygons are padded to :data:`MAX_VERTICES` by repeating their last vertex (a zero-length edge,
which every function here ignores), so a batch of mixed shapes is one ``(K, 4, 2)`` tensor.

The body-frame vertices come from :func:`gns.data.objects.local_vertices`, the one definition of
the shapes: each vertex is linear in ``(width, height)`` component by component, so the table of
unit shapes (``size = (1, 1)``) scaled by an object's size is its polygon.

Everything is plain torch on the inputs' device and dtype, batched over any leading axes; it is
used for node features (wall gaps), edge features (pair gaps) and the collision-event metric.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gns.data.objects import DISC, SHAPES, local_vertices

__all__ = ["MAX_VERTICES", "body_vertices", "place", "wall_gaps", "separation", "contact_frame", "touching"]

MAX_VERTICES = 4
# Edges shorter than this (m) are the padding's (exactly zero); real edges are centimetres long.
_DEGENERATE = 1e-9
# Cores closer than this (m) are touching: their contact normal comes from the separating-axis test.
_TOUCHING = 1e-6


def _unit_shapes() -> tuple[Tensor, Tensor]:
    """``(codes, 4, 2)`` vertices of every shape code at size (1, 1), and ``(codes,)`` bool: is a polygon."""
    codes = max(SHAPES.values()) + 1
    table = np.zeros((codes, MAX_VERTICES, 2))
    polygon = np.zeros(codes, dtype=bool)
    for code in SHAPES.values():
        if code == DISC:
            continue  # a point at the centre; its radius carries the shape
        local = local_vertices(code, (1.0, 1.0))                                    # (V, 2)
        table[code] = np.concatenate([local, np.repeat(local[-1:], MAX_VERTICES - len(local), 0)])
        polygon[code] = True
    return torch.as_tensor(table, dtype=torch.float32), torch.as_tensor(polygon)


_UNIT, _POLYGON = _unit_shapes()


def body_vertices(shape: Tensor, size: Tensor) -> tuple[Tensor, Tensor]:
    """The rounded polygon of each object in its body frame.

    Args:
        shape: ``(K,)`` int64 ``SHAPES`` codes; size: ``(K, 2)`` width and height (m).

    Returns:
        ``(K, 4, 2)`` vertices (a disc: four times its centre) and ``(K,)`` rounding radii (m).
    """
    unit = _UNIT.to(size)[shape]                                                     # (K, 4, 2)
    polygon = _POLYGON.to(shape.device)[shape]
    return unit * size[:, None, :], torch.where(polygon, torch.zeros_like(size[:, 0]), size[:, 0] / 2)


def place(vertices: Tensor, position: Tensor, angle: Tensor) -> Tensor:
    """Body-frame vertices ``(K, 4, 2)`` rotated by ``angle`` ``(..., K)`` about, and moved to,
    ``position`` ``(..., K, 2)``: ``(..., K, 4, 2)`` world coordinates."""
    c, s = torch.cos(angle)[..., None], torch.sin(angle)[..., None]                   # (..., K, 1)
    x = c * vertices[..., 0] - s * vertices[..., 1]                                  # (..., K, 4)
    y = s * vertices[..., 0] + c * vertices[..., 1]
    return torch.stack([x, y], dim=-1) + position[..., None, :]


def wall_gaps(world: Tensor, rounding: Tensor, bounds: Tensor) -> Tensor:
    """How far each shape is from each wall (m; negative: through it), walls in ``WALLS`` order.

    Args:
        world: ``(..., K, 4, 2)`` placed vertices; rounding: ``(K,)``; bounds: ``(2, 2)`` ``[[xlo, xhi], [ylo, yhi]]``.

    Returns:
        ``(..., K, 4)``: left, right, bottom, top.
    """
    lo, hi = world.amin(dim=-2), world.amax(dim=-2)                                  # (..., K, 2)
    bounds = bounds.to(world)
    gaps = torch.stack([lo[..., 0] - bounds[0, 0], bounds[0, 1] - hi[..., 0],
                        lo[..., 1] - bounds[1, 0], bounds[1, 1] - hi[..., 1]], dim=-1)
    return gaps - rounding[..., None]


def _nearest_vertex_to_segments(points: Tensor, polygon: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Of every point of ``points`` ``(E, P, 2)`` and every edge of ``polygon`` ``(E, 4, 2)``, the closest pair.

    Returns:
        ``(E,)`` their distance, ``(E, 2)`` the point, ``(E, 2)`` the nearest point of the polygon's edge.
    """
    start = polygon                                                                  # (E, 4, 2)
    edge = torch.roll(polygon, -1, dims=1) - polygon
    offset = points[:, :, None, :] - start[:, None, :, :]                             # (E, P, 4, 2)
    length2 = (edge ** 2).sum(-1)[:, None, :]                                         # (E, 1, 4)
    t = ((offset * edge[:, None]).sum(-1) / length2.clamp(min=_DEGENERATE ** 2)).clamp(0.0, 1.0)
    on_edge = start[:, None] + t[..., None] * edge[:, None]                           # (E, P, 4, 2)
    distance = torch.linalg.vector_norm(points[:, :, None, :] - on_edge, dim=-1).flatten(1)   # (E, P * 4)
    best = distance.argmin(dim=1)                                                     # (E,)
    rows = torch.arange(points.shape[0], device=points.device)
    point = points[rows, best // polygon.shape[1]]                                    # (E, 2)
    nearest = on_edge.flatten(1, 2)[rows, best]                                       # (E, 2)
    return distance[rows, best], point, nearest


def _axis_gaps(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The separating-axis test of two convex polygons ``(E, 4, 2)`` over both polygons' edge normals.

    Returns:
        ``(E, 8)`` the gap between the two projections on each axis (``-inf`` on the padding's
        axes; negative on every axis: the polygons overlap), ``(E, 8)`` bool whether ``b`` lies on the
        positive side of the axis, ``(E, 8, 2)`` the unit axes.
    """
    both = torch.cat([a, b], dim=1)                                                   # (E, 8, 2)
    edges = torch.cat([torch.roll(a, -1, 1) - a, torch.roll(b, -1, 1) - b], dim=1)    # (E, 8, 2)
    length = torch.linalg.vector_norm(edges, dim=-1)                                  # (E, 8)
    normals = torch.stack([edges[..., 1], -edges[..., 0]], dim=-1) / length.clamp(min=_DEGENERATE)[..., None]
    projection = torch.einsum("eak,evk->eav", normals, both)                         # (E, 8 axes, 8 vertices)
    pa, pb = projection[..., :MAX_VERTICES], projection[..., MAX_VERTICES:]
    b_ahead, a_ahead = pb.amin(-1) - pa.amax(-1), pa.amin(-1) - pb.amax(-1)            # (E, 8)
    gap = torch.where(length > _DEGENERATE, torch.maximum(b_ahead, a_ahead), torch.full_like(b_ahead, -torch.inf))
    return gap, b_ahead >= a_ahead, normals


def separation(a: Tensor, rounding_a: Tensor, b: Tensor, rounding_b: Tensor) -> Tensor:
    """Signed distance between pairs of rounded convex polygons (m).

    Apart, it is exact: the distance between two convex polygons is that of the closest vertex of
    one to an edge of the other, less the two rounding radii. Overlapping (the separating-axis test
    finds no gap on any edge normal), it is minus the least overlap over those normals, less the
    radii: the depth along the best separating direction, Chipmunk's contact depth for polygons.

    Args:
        a, b: ``(E, 4, 2)`` placed vertices of the two shapes of each pair; rounding_a, rounding_b: ``(E,)``.

    Returns:
        ``(E,)``: positive apart, zero touching, negative overlapping.
    """
    apart = torch.minimum(_nearest_vertex_to_segments(a, b)[0], _nearest_vertex_to_segments(b, a)[0])   # (E,)
    return _signed(apart, _axis_gaps(a, b)[0]) - rounding_a - rounding_b


def _signed(apart: Tensor, axis_gaps: Tensor) -> Tensor:
    """``(E,)`` the signed distance of two polygon cores: ``apart`` ``(E,)`` (closest vertex to edge), or, where the
    separating-axis test's gaps ``(E, 8)`` are all negative, minus the least overlap."""
    gap, has_axes = axis_gaps.amax(dim=1), torch.isfinite(axis_gaps).any(dim=1)
    return torch.where(has_axes & (gap < 0), gap, apart)


def contact_frame(a: Tensor, rounding_a: Tensor, b: Tensor, rounding_b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Where and along which direction two rounded convex polygons would touch.

    Apart, the closest points of the two cores (a vertex of one and the nearest point of an edge of
    the other) give the normal, from ``a`` towards ``b``, and the contact point, midway between
    the two surfaces along it. With the cores touching or overlapping (polygons pressed together),
    the normal is the separating-axis test's axis of least overlap, turned to point from ``a`` to
    ``b``, as Chipmunk's contact normal would be, and the point is the deepest vertex of the other
    shape (the one whose face is not that axis).

    Args:
        a, b: ``(E, 4, 2)`` placed vertices of the two shapes of each pair; rounding_a, rounding_b: ``(E,)``.

    Returns:
        ``(E, 2)`` unit normal from ``a`` to ``b``, ``(E, 2)`` contact point (world, m), and ``(E,)`` their
        :func:`separation` (m), which the same search gives.
    """
    d_ab, vertex_a, on_b = _nearest_vertex_to_segments(a, b)
    d_ba, vertex_b, on_a = _nearest_vertex_to_segments(b, a)
    first = (d_ab <= d_ba)[:, None]
    core_a = torch.where(first, vertex_a, on_a)                                        # (E, 2) on a's core
    core_b = torch.where(first, on_b, vertex_b)                                        # (E, 2) on b's core
    between = core_b - core_a
    length = torch.linalg.vector_norm(between, dim=-1, keepdim=True)
    gap, b_positive, axes = _axis_gaps(a, b)                                           # (E, 8), (E, 8), (E, 8, 2)
    axis = gap.argmax(dim=1)                                                          # (E,) the least overlap
    rows = torch.arange(a.shape[0], device=a.device)
    sign = torch.where(b_positive[rows, axis], 1.0, -1.0).to(a)
    sat_normal = axes[rows, axis] * sign[:, None]                                     # (E, 2)
    pressed = torch.isfinite(gap).any(dim=1) & (gap.amax(dim=1) < _TOUCHING)
    apart = ~pressed & (length[:, 0] > _DEGENERATE)
    normal = torch.where(apart[:, None], between / length.clamp(min=_DEGENERATE), sat_normal)
    surface_a = core_a + rounding_a[:, None] * normal
    surface_b = core_b - rounding_b[:, None] * normal
    # pressed: the deepest vertex of the shape whose face the axis is not (the incident one), on its surface
    deepest_b = b[rows, torch.einsum("evk,ek->ev", b, normal).argmin(dim=1)] - rounding_b[:, None] * normal
    deepest_a = a[rows, torch.einsum("evk,ek->ev", a, normal).argmax(dim=1)] + rounding_a[:, None] * normal
    incident = torch.where((axis < MAX_VERTICES)[:, None], deepest_b, deepest_a)
    signed = _signed(torch.minimum(d_ab, d_ba), gap) - rounding_a - rounding_b
    return normal, torch.where(apart[:, None], (surface_a + surface_b) / 2, incident), signed


def touching(shape: Tensor, size: Tensor, position: Tensor, angle: Tensor, pairs: Tensor, margin: float) -> Tensor:
    """Whether the two objects of each pair touch, frame by frame: their :func:`separation` is at most ``margin``.

    Args:
        shape, size: ``(K,)``, ``(K, 2)``; position: ``(K, S, 2)``; angle: ``(K, S)`` over ``S`` frames.
        pairs: ``(2, P)`` int64 object indices.
        margin: m; frames are sampled, so two objects that bounce between frames may never be seen
            closer than a few millimetres.

    Returns:
        ``(P, S)`` bool.
    """
    vertices, rounding = body_vertices(shape, size)
    world = place(vertices, position.transpose(0, 1), angle.transpose(0, 1))          # (S, K, 4, 2)
    steps, count = world.shape[0], pairs.shape[1]
    first = world[:, pairs[0]].reshape(steps * count, MAX_VERTICES, 2)                 # (S * P, 4, 2)
    second = world[:, pairs[1]].reshape(steps * count, MAX_VERTICES, 2)
    gap = separation(first, rounding[pairs[0]].repeat(steps), second, rounding[pairs[1]].repeat(steps))
    return (gap <= margin).reshape(steps, count).T
