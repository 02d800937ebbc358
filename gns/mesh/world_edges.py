"""World edges: pairs of nodes close in world space that the mesh does not connect.

MeshGraphNets (Pfaff et al. 2020) adds, for Lagrangian systems (cloth, deforming solids), an edge
set between nodes within a radius in *world* space that are not already mesh neighbours: these
carry contact and self-collision, which the mesh edges cannot see. We build it with the particle
radius search (:func:`gns.neighbors.radius_graph`: O(N) cell lists, no neighbour cap,
batched) and remove the mesh edges with an integer-key set difference.

A radius in the wrong units would connect everything and exhaust memory, so it is refused up front
with the mesh's extent and a suggested radius.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gns.errors import GnsInputError, GraphTooLargeError
from gns.neighbors import default_max_edges, radius_graph

__all__ = ["world_edges", "suggest_world_radius"]

# Default limit on the radius search (before mesh edges are removed): this many pairs per node on
# average. Contact needs a handful; hundreds mean the radius spans many mesh edges.
_MAX_MEAN_DEGREE = 128
# ... but never refuse graphs this small in total (toy meshes in examples and tests).
_MIN_LIMIT = 1 << 16
# Graphs with at most this many nodes may be fully connected: it costs nothing.
_GUARD_MIN_NODES = 8


def world_edges(world_pos: Tensor, radius: float, mesh_edges: Tensor, *, batch: Tensor | None = None,
                max_edges: int | None = None, exclude_hops: int = 1) -> Tensor:
    """Pairs of nodes within ``radius`` in world space that are not mesh neighbours.

    A directed edge ``(j, i)`` is returned iff ``j != i``, both nodes are in the same graph,
    ``|x_j - x_i| <= radius`` (as :func:`~gns.neighbors.radius_graph` tests it) and
    ``j`` is more than ``exclude_hops`` mesh edges away from ``i``.

    Args:
        world_pos: ``(N, D)`` world-space positions, ``D`` in {1, 2, 3} (3 for cloth).
        radius: world-edge radius, in the units of ``world_pos``.
        mesh_edges: ``(2, E)`` int64 mesh edges (e.g. :func:`~gns.mesh.topology.edges_from_cells`);
            either or both directions, indices into the ``N`` nodes (of the whole batch).
        batch: ``(N,)`` graph id of every node, or ``None`` for one graph.
        max_edges: largest number of pairs the radius search may find (mesh neighbours included).
            ``None``: 128 per node on average (at least 65,536), and no more than fit in ~25% of
            the device's free memory.
        exclude_hops: pairs within this many mesh hops are left out. 1 (the paper): mesh
            neighbours only; 2 also drops neighbours of neighbours.

    Returns:
        ``(2, W)`` int64 on ``world_pos.device``: row 0 senders, row 1 receivers, sorted by
        receiver then sender; symmetric (``(j, i)`` comes with ``(i, j)``).

    Raises:
        GnsInputError: bad inputs, or a radius at least the bounding-box diagonal of a graph with
            more than 8 nodes (it would connect every pair); the message gives the extent and a
            suggested radius.
        GraphTooLargeError: the radius search would exceed ``max_edges``.
    """
    if not isinstance(world_pos, Tensor) or world_pos.ndim != 2 or not world_pos.is_floating_point():
        raise GnsInputError("world_pos must be a floating (N, D) tensor", key="world_pos", expected="(N, D) float",
                            found=tuple(world_pos.shape) if isinstance(world_pos, Tensor) else type(world_pos).__name__)
    n = world_pos.shape[0]
    mesh_edges = _as_mesh_edges(mesh_edges, n, world_pos)
    if int(exclude_hops) < 1:
        raise GnsInputError("exclude_hops must be at least 1 (mesh neighbours are never world edges)",
                            key="exclude_hops", expected=">= 1", found=exclude_hops)
    _check_radius_against_extent(world_pos, radius, mesh_edges, batch)
    limit = max_edges if max_edges is not None else _default_limit(n, world_pos.device)
    try:
        pairs = radius_graph(world_pos, radius, batch=batch, self_loops=False, max_edges=limit)
    except GraphTooLargeError as err:
        raise _too_many(world_pos, radius, mesh_edges, limit, err) from None
    if pairs.shape[1] == 0 or mesh_edges.shape[1] == 0:
        return pairs
    excluded = _within_hops(mesh_edges, n, int(exclude_hops))            # sorted receiver * n + sender
    keys = pairs[1] * n + pairs[0]
    at = torch.searchsorted(excluded, keys).clamp_(max=excluded.numel() - 1)
    return pairs[:, excluded[at] != keys]                                 # filtering keeps the order


def suggest_world_radius(world_pos: Tensor, mesh_edges: Tensor, factor: float = 2.0) -> float:
    """``factor`` times the median world-space length of the mesh edges (0 without edges).

    A world-edge radius of one to a few mesh edges is what contact needs: nodes on two layers of
    cloth meet before they overlap, and each node sees a handful of world neighbours."""
    if mesh_edges.shape[1] == 0:
        return 0.0
    lengths = torch.linalg.vector_norm(world_pos[mesh_edges[0]] - world_pos[mesh_edges[1]], dim=1)
    return factor * float(lengths.float().median())


# --------------------------------------------------------------------------------------------
# guards
# --------------------------------------------------------------------------------------------
def _check_radius_against_extent(world_pos: Tensor, radius: float, mesh_edges: Tensor,
                                 batch: Tensor | None) -> None:
    """Refuse a radius that reaches across a whole graph (of more than a few nodes)."""
    try:
        radius = float(radius)
    except (TypeError, ValueError):
        return  # radius_graph reports it
    if world_pos.shape[0] == 0 or not radius > 0:
        return  # radius_graph reports a bad radius with its own message
    x = world_pos.detach()
    if batch is None or batch.shape != (x.shape[0],):
        graph = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    else:
        graph = torch.unique(batch, return_inverse=True)[1]
    graphs = int(graph.max()) + 1
    index = graph[:, None].expand_as(x)
    lo = torch.full((graphs, x.shape[1]), float("inf"), dtype=x.dtype, device=x.device)
    hi = torch.full_like(lo, float("-inf"))
    lo = lo.scatter_reduce(0, index, x, "amin")
    hi = hi.scatter_reduce(0, index, x, "amax")                                # (G, D)
    diagonal = torch.linalg.vector_norm(hi - lo, dim=1)                          # (G,)
    size = torch.bincount(graph, minlength=graphs)
    covered = (diagonal <= radius) & (size > _GUARD_MIN_NODES)
    if not bool(covered.any()):
        return
    g = int(covered.nonzero()[0, 0])
    extent = " x ".join(f"{float(v):.3g}" for v in hi[g] - lo[g])
    which = f"graph {g} of the batch" if graphs > 1 else "the mesh"
    raise GnsInputError(
        f"world-edge radius {radius:g} is at least the bounding-box diagonal {float(diagonal[g]):.3g} of {which} "
        f"({int(size[g]):,} nodes spanning {extent}): it would connect every pair of nodes. "
        f"{_suggestion(world_pos, mesh_edges)}", key="radius",
        expected=f"radius < {float(diagonal[g]):.3g}", found=radius)


def _too_many(world_pos: Tensor, radius: float, mesh_edges: Tensor, limit: int,
              err: GraphTooLargeError) -> GraphTooLargeError:
    x = world_pos.detach()
    extent = " x ".join(f"{float(v):.3g}" for v in x.amax(dim=0) - x.amin(dim=0))
    n = max(x.shape[0], 1)
    return GraphTooLargeError(
        f"world edges: radius {radius:g} finds {err.found} among {x.shape[0]:,} nodes spanning {extent}, above the "
        f"limit max_edges={limit:,} (~{limit / n:.0f} per node). {_suggestion(world_pos, mesh_edges)} "
        "Or pass a larger max_edges", key="radius", expected=f"<= {limit:,} pairs", found=err.found)


def _suggestion(world_pos: Tensor, mesh_edges: Tensor) -> str:
    suggested = suggest_world_radius(world_pos.detach(), mesh_edges)
    if suggested <= 0:
        return "Use a smaller radius."
    return (f"The median mesh edge is {suggested / 2:.3g} long; a radius of 1-3 mesh edges "
            f"(e.g. {suggested:.3g}) is usual.")


def _default_limit(n: int, device: torch.device) -> int:
    limit = max(_MAX_MEAN_DEGREE * n, _MIN_LIMIT)
    # reading the free memory costs a syscall (or a CUDA query): only when the limit is large
    return limit if limit <= 1 << 22 else min(limit, default_max_edges(device))


# --------------------------------------------------------------------------------------------
# mesh neighbourhoods
# --------------------------------------------------------------------------------------------
def _within_hops(mesh_edges: Tensor, n: int, hops: int) -> Tensor:
    """Sorted unique keys ``receiver * n + sender`` of the ordered pairs ``j != i`` at most ``hops``
    mesh edges apart (the mesh taken as undirected)."""
    s, r = mesh_edges
    one_hop = torch.unique(torch.cat([r * n + s, s * n + r]))
    one_hop = one_hop[one_hop % n != one_hop // n]                         # a self loop is no neighbour
    if hops == 1:
        return one_hop
    # Adjacency in CSR form: one_hop is sorted by receiver, and symmetric, so the senders of the
    # run of receiver v are the neighbours of v.
    neighbor = one_hop % n
    degree = torch.bincount(one_hop // n, minlength=n)
    start = torch.cumsum(degree, 0) - degree
    reach = one_hop
    for _ in range(hops - 1):
        far, near = reach % n, reach // n                                   # far is within h hops of near
        count = degree[near]
        total = int(count.sum())
        rows = torch.repeat_interleave(torch.arange(near.numel(), device=near.device), count, output_size=total)
        within = torch.arange(total, device=near.device) - (torch.cumsum(count, 0) - count)[rows]
        step = neighbor[start[near][rows] + within]                         # neighbours of near
        keys = step * n + far[rows]                                         # far is within h+1 hops of step
        reach = torch.unique(torch.cat([reach, keys[step != far[rows]]]))
    return reach


def _as_mesh_edges(mesh_edges: Tensor, n: int, world_pos: Tensor) -> Tensor:
    edges = torch.as_tensor(mesh_edges)
    if edges.ndim != 2 or edges.shape[0] != 2:
        raise GnsInputError("mesh_edges must be a (2, E) edge index", key="mesh_edges", expected="(2, E)",
                            found=tuple(edges.shape))
    if edges.is_floating_point() or edges.is_complex() or edges.dtype == torch.bool:
        raise GnsInputError("mesh_edges must be integer", key="mesh_edges", expected="int64", found=edges.dtype)
    edges = edges.to(device=world_pos.device, dtype=torch.long)
    if edges.numel():
        lo, hi = (int(v) for v in torch.aminmax(edges))
        if lo < 0 or hi >= n:
            raise GnsInputError("mesh_edges refer to nodes that do not exist", key="mesh_edges",
                                expected=f"indices in [0, {n})", found=f"indices in [{lo}, {hi}]")
    return edges
