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

__all__ = ["MAX_VERTICES", "body_vertices", "place", "wall_gaps", "separation", "touching"]

MAX_VERTICES = 4
# Edges shorter than this (m) are the padding's (exactly zero); real edges are centimetres long.
_DEGENERATE = 1e-9


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


def _points_to_segments(points: Tensor, polygon: Tensor) -> Tensor:
    """``(E,)`` the smallest distance from any of ``points`` ``(E, P, 2)`` to any edge of ``polygon`` ``(E, 4, 2)``."""
    start = polygon                                                                  # (E, 4, 2)
    edge = torch.roll(polygon, -1, dims=1) - polygon
    offset = points[:, :, None, :] - start[:, None, :, :]                             # (E, P, 4, 2)
    length2 = (edge ** 2).sum(-1)[:, None, :]                                         # (E, 1, 4)
    t = ((offset * edge[:, None]).sum(-1) / length2.clamp(min=_DEGENERATE ** 2)).clamp(0.0, 1.0)
    nearest = offset - t[..., None] * edge[:, None]                                   # (E, P, 4, 2)
    return torch.linalg.vector_norm(nearest, dim=-1).flatten(1).amin(dim=1)


def _separating_axes(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """The separating-axis test of two convex polygons ``(E, 4, 2)`` over both polygons' edge normals.

    Returns:
        ``(E,)`` the largest gap between the two projections over the axes (negative on every axis:
        the polygons overlap, by at least its magnitude), and ``(E,)`` bool, whether the pair has
        any axis at all (two points have none).
    """
    both = torch.cat([a, b], dim=1)                                                   # (E, 8, 2)
    edges = torch.cat([torch.roll(a, -1, 1) - a, torch.roll(b, -1, 1) - b], dim=1)    # (E, 8, 2)
    length = torch.linalg.vector_norm(edges, dim=-1)                                  # (E, 8)
    valid = length > _DEGENERATE
    normals = torch.stack([edges[..., 1], -edges[..., 0]], dim=-1) / length.clamp(min=_DEGENERATE)[..., None]
    projection = torch.einsum("eak,evk->eav", normals, both)                         # (E, 8 axes, 8 vertices)
    pa, pb = projection[..., :MAX_VERTICES], projection[..., MAX_VERTICES:]
    gap = torch.maximum(pb.amin(-1) - pa.amax(-1), pa.amin(-1) - pb.amax(-1))         # (E, 8)
    gap = torch.where(valid, gap, torch.full_like(gap, -torch.inf))
    return gap.amax(dim=1), valid.any(dim=1)


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
    apart = torch.minimum(_points_to_segments(a, b), _points_to_segments(b, a))       # (E,)
    gap, has_axes = _separating_axes(a, b)
    core = torch.where(has_axes & (gap < 0), gap, apart)
    return core - rounding_a - rounding_b


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
