"""Mesh topology: edges from cells, and the checks a mesh must pass before it becomes a graph.

Cells are rows of node indices: ``(C, 3)`` triangles or ``(C, 4)`` tetrahedra. The mesh graph
of MeshGraphNets connects every two nodes that share a cell, in both directions.

All functions take tensors (or arrays) and are vectorised: no Python loop runs over cells or
nodes. :func:`edges_from_cells` stays on the device of ``cells``; :func:`validate_mesh` is a
one-off check and runs on the CPU in float64, so that its tolerances are not float32 rounding.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gns.errors import GnsInputError, GraphTooLargeError

__all__ = ["edges_from_cells", "validate_mesh", "MeshSummary", "cell_sizes"]

_CELL_TYPES = {3: "triangle", 4: "tetra"}


# --------------------------------------------------------------------------------------------
# edges
# --------------------------------------------------------------------------------------------
def edges_from_cells(cells: Tensor, num_nodes: int) -> Tensor:
    """Every edge of a cell mesh, once in each direction.

    Two nodes are connected iff some cell contains both: the 3 sides of a triangle, the 6 edges
    of a tetrahedron (in general all ``K (K - 1) / 2`` pairs of a cell's ``K`` corners). An edge
    shared by several cells appears once per direction. Pairs of equal indices (a cell that
    repeats a node, which :func:`validate_mesh` reports) are dropped, so there are no self loops.

    Args:
        cells: ``(C, K)`` integer node indices in ``[0, num_nodes)``, ``K >= 2``; any device.
        num_nodes: number of nodes ``N`` of the mesh (nodes in no cell are allowed).

    Returns:
        ``(2, E)`` int64 on ``cells.device``: row 0 senders, row 1 receivers, sorted by receiver
        then sender (the order of :func:`gns.neighbors.radius_graph`). Every edge
        ``(j, i)`` comes with ``(i, j)``.

    Raises:
        GnsInputError: ``cells`` is not a 2-D integer array, or refers to a node outside
            ``[0, num_nodes)``.
    """
    cells = _as_cells(cells, key="cells")
    n = int(num_nodes)
    _check_index_range(cells, n, file=None, key="cells")
    first, second = (torch.tensor(side, device=cells.device)
                     for side in zip(*itertools.combinations(range(cells.shape[1]), 2)))
    a = cells.index_select(1, first).reshape(-1)                                   # (C * P,)
    b = cells.index_select(1, second).reshape(-1)
    keep = a != b
    a, b = a[keep], b[keep]
    # One integer key per directed edge, receiver-major: unique() both removes the copies of
    # shared edges and sorts by (receiver, sender). N^2 < 2^63 for any N below 3e9.
    keys = torch.unique(torch.cat([b * n + a, a * n + b]))
    return torch.stack([keys % n, keys // n])


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeshSummary:
    """What :func:`validate_mesh` found in a mesh that passed.

    Attributes:
        num_nodes: ``N``, rows of ``mesh_pos``.
        num_cells: ``C``, rows of ``cells``.
        cell_type: ``"triangle"`` or ``"tetra"``.
        num_edges: undirected mesh edges (the directed graph has twice as many).
        num_boundary: boundary edges (triangles: in one cell) or faces (tetrahedra: in one cell).
        unreferenced: ``(U,)`` int64 indices of nodes that are in no cell (allowed, reported).
        median_cell_size: median area (triangles) or volume (tetrahedra).
        median_edge_length: median length of the undirected edges, in mesh-space units.
    """

    num_nodes: int
    num_cells: int
    cell_type: str
    num_edges: int
    num_boundary: int
    unreferenced: Tensor
    median_cell_size: float
    median_edge_length: float

    def __str__(self) -> str:
        boundary = "edges" if self.cell_type == "triangle" else "faces"
        unused = self.unreferenced.numel()
        listed = ""
        if unused:
            head = self.unreferenced[:8].tolist()
            listed = f" ({', '.join(map(str, head))}{', ...' if unused > 8 else ''})"
        return (f"{self.num_nodes:,} nodes, {self.num_cells:,} {self.cell_type} cells, {self.num_edges:,} edges, "
                f"{self.num_boundary:,} boundary {boundary}, {unused:,} nodes in no cell{listed}, "
                f"median edge length {self.median_edge_length:.4g}")


def validate_mesh(mesh_pos: Tensor | np.ndarray, cells: Tensor | np.ndarray, *, file: object = None,
                  key: str | None = None, size_rtol: float = 1e-8, flat_tol: float = 1e-6,
                  duplicate_rtol: float = 1e-6, check_duplicates: bool = True) -> MeshSummary:
    """Check that a triangle or tetrahedral mesh can be turned into a mesh graph.

    Checks, in this order (the first failure raises):

    1. shapes and dtypes; finite positions; tetrahedra need 3-D positions;
    2. every index in ``[0, N)``;
    3. no cell repeats a node;
    4. no degenerate cell: a cell is *tiny* if its area (volume) is at most ``size_rtol`` times the
       median cell size, and *flat* if its area / (longest edge)^2 (volume / (longest edge)^3) is
       at most ``flat_tol`` (colinear or coplanar corners, at any scale);
    5. no two cells with the same set of nodes;
    6. manifold: a triangle edge lies in at most 2 triangles, a tetrahedron face in at most 2 tets;
    7. no duplicate vertices: two nodes used by cells closer than ``duplicate_rtol`` times the median
       edge length (a crack that looks closed but is not connected).

    Nodes in no cell are allowed (e.g. padding) and listed in the summary.

    Args:
        mesh_pos: ``(N, D)`` mesh-space positions, ``D`` in {2, 3}.
        cells: ``(C, K)`` integer node indices, ``K = 3`` (triangles) or ``4`` (tetrahedra).
        file: the file the mesh came from, for messages.
        key: the group the mesh came from (e.g. a trajectory ``"00003"``); messages name
            ``"<key>/cells"`` or ``"<key>/mesh_pos"``.
        size_rtol: tiny-cell tolerance, relative to the median cell size.
        flat_tol: flat-cell tolerance on the scale-free shape ratio above.
        duplicate_rtol: duplicate-vertex distance, relative to the median edge length.
        check_duplicates: run check 7 (a search over all nodes; skip it for meshes with
            intentional seams).

    Returns:
        A :class:`MeshSummary`.

    Raises:
        GnsInputError: naming the check, the cell index and its nodes (or the node pair and
            their positions), and how many cells, edges or pairs fail it.
    """
    pos_key, cells_key = _where(key, "mesh_pos"), _where(key, "cells")
    cells = _as_cells(cells, file=file, key=cells_key).cpu()
    pos = _as_positions(mesh_pos, file=file, key=pos_key)
    n, (c, k) = pos.shape[0], cells.shape
    if k not in _CELL_TYPES:
        raise GnsInputError("cells must be triangles or tetrahedra", file=file, key=cells_key,
                            expected="(C, 3) or (C, 4)", found=tuple(cells.shape))
    if k == 4 and pos.shape[1] != 3:
        raise GnsInputError("tetrahedra need 3-D positions", file=file, key=pos_key,
                            expected="(N, 3)", found=tuple(pos.shape))
    _check_index_range(cells, n, file=file, key=cells_key)
    _check_repeated_index(cells, file=file, key=cells_key)
    sizes = cell_sizes(pos, cells)
    median_size = float(sizes.median()) if c else 0.0
    _check_degenerate(pos, cells, sizes, median_size, size_rtol, flat_tol, file=file, key=cells_key)
    _check_duplicate_cells(cells, n, file=file, key=cells_key)
    num_boundary = _check_manifold(cells, n, file=file, key=cells_key)

    edges = edges_from_cells(cells, n)
    edges = edges[:, edges[0] < edges[1]]                                           # one per pair
    lengths = torch.linalg.vector_norm(pos[edges[0]] - pos[edges[1]], dim=1)
    median_edge = float(lengths.median()) if lengths.numel() else 0.0
    used = torch.zeros(n, dtype=torch.bool)
    used[cells.reshape(-1)] = True
    if check_duplicates and median_edge > 0:
        _check_duplicate_vertices(pos, used, duplicate_rtol * median_edge, file=file, key=pos_key)
    return MeshSummary(num_nodes=n, num_cells=c, cell_type=_CELL_TYPES[k], num_edges=int(edges.shape[1]),
                       num_boundary=num_boundary, unreferenced=(~used).nonzero().squeeze(1),
                       median_cell_size=median_size, median_edge_length=median_edge)


def cell_sizes(mesh_pos: Tensor, cells: Tensor) -> Tensor:
    """Unsigned area of each triangle (in 2-D or 3-D) or volume of each tetrahedron.

    Args:
        mesh_pos: ``(N, D)`` positions.
        cells: ``(C, 3)`` or ``(C, 4)`` int64 indices.

    Returns:
        ``(C,)`` in the dtype of ``mesh_pos``.
    """
    corner = mesh_pos[cells]                                                        # (C, K, D)
    spans = corner[:, 1:] - corner[:, :1]                                           # (C, K-1, D)
    if cells.shape[1] == 4:
        return torch.linalg.det(spans).abs() / 6
    e1, e2 = spans[:, 0], spans[:, 1]
    if mesh_pos.shape[1] == 2:
        return (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]).abs() / 2
    return torch.linalg.vector_norm(torch.linalg.cross(e1, e2, dim=1), dim=1) / 2


# --------------------------------------------------------------------------------------------
# the checks
# --------------------------------------------------------------------------------------------
def _check_index_range(cells: Tensor, n: int, *, file: object, key: str) -> None:
    if cells.numel() == 0:
        return
    lo, hi = (int(v) for v in torch.aminmax(cells))
    if lo >= 0 and hi < n:
        return
    bad_cells = ((cells < 0) | (cells >= n)).any(dim=1).nonzero().squeeze(1)
    first = int(bad_cells[0])
    row = cells[first].tolist()
    node = next(v for v in row if v < 0 or v >= n)
    raise GnsInputError(
        f"cell {first} (nodes {row}) refers to node {node}, but the mesh has {n:,} nodes; "
        f"{bad_cells.numel():,} cell(s) refer to nodes that do not exist", file=file, key=key,
        expected=f"indices in [0, {n})", found=f"indices in [{lo}, {hi}]")


def _check_repeated_index(cells: Tensor, *, file: object, key: str) -> None:
    ordered = cells.sort(dim=1).values
    repeated = (ordered[:, 1:] == ordered[:, :-1]).any(dim=1)
    if not bool(repeated.any()):
        return
    bad = repeated.nonzero().squeeze(1)
    first = int(bad[0])
    raise GnsInputError(
        f"cell {first} repeats a node: nodes {cells[first].tolist()}; {bad.numel():,} cell(s) like this",
        file=file, key=key, expected=f"{cells.shape[1]} distinct nodes per cell", found=cells[first].tolist())


def _check_degenerate(pos: Tensor, cells: Tensor, sizes: Tensor, median_size: float, size_rtol: float,
                      flat_tol: float, *, file: object, key: str) -> None:
    if cells.shape[0] == 0:
        return
    k = cells.shape[1]
    measure = "area" if k == 3 else "volume"
    corner = pos[cells]                                                             # (C, K, D)
    i, j = zip(*itertools.combinations(range(k), 2))
    longest = torch.linalg.vector_norm(corner[:, list(i)] - corner[:, list(j)], dim=2).amax(dim=1)  # (C,)
    shape_ratio = sizes / longest.clamp_min(torch.finfo(sizes.dtype).tiny) ** (k - 1)
    tiny = sizes <= size_rtol * median_size
    flat = shape_ratio <= flat_tol
    bad = (tiny | flat).nonzero().squeeze(1)
    if bad.numel() == 0:
        return
    first = int(bad[0])
    corners = ", ".join(_fmt_point(p) for p in corner[first])
    if bool(tiny[first]):
        why = (f"has zero {measure}: {measure} {float(sizes[first]):.3g} <= {size_rtol:g} x the median cell "
               f"{measure} {median_size:.3g}")
    else:
        why = (f"is flat (its corners are {'colinear' if k == 3 else 'coplanar'}): {measure} / longest "
               f"edge^{k - 1} = {float(shape_ratio[first]):.3g} <= {flat_tol:g}")
    raise GnsInputError(
        f"cell {first} (nodes {cells[first].tolist()} at {corners}) {why}; {bad.numel():,} degenerate cell(s)",
        file=file, key=key, expected=f"cells with a nonzero {measure}", found=f"{bad.numel():,} degenerate")


def _check_duplicate_cells(cells: Tensor, n: int, *, file: object, key: str) -> None:
    if cells.shape[0] < 2:
        return
    keys = _row_keys(cells.sort(dim=1).values, n)
    order = torch.argsort(keys, stable=True)
    same = keys[order[1:]] == keys[order[:-1]]
    if not bool(same.any()):
        return
    at = int(same.nonzero()[0, 0])
    a, b = sorted((int(order[at]), int(order[at + 1])))
    raise GnsInputError(
        f"cells {a} and {b} have the same nodes {cells[a].tolist()}; {int(same.sum()):,} duplicated cell(s)",
        file=file, key=key, expected="each cell once", found=f"cell {b} = cell {a}")


def _check_manifold(cells: Tensor, n: int, *, file: object, key: str) -> int:
    """Raise on a triangle edge / tetrahedron face in more than 2 cells; return the boundary count."""
    k = cells.shape[1]
    sides = list(itertools.combinations(range(k), k - 1))       # edges of a triangle, faces of a tet
    rows = cells[:, [s for side in sides for s in side]].reshape(-1, k - 1).sort(dim=1).values  # (C*k, k-1)
    unique, inverse, counts = torch.unique(_row_keys(rows, n), return_inverse=True, return_counts=True)
    shared = (counts > 2).nonzero().squeeze(1)
    if shared.numel() == 0:
        return int((counts == 1).sum())
    first = int(shared[0])
    owners = ((inverse == first).nonzero().squeeze(1) // k).tolist()                # cells holding it
    row = rows[int((inverse == first).nonzero()[0, 0])].tolist()
    what, limit = ("edge between nodes", "triangle edge") if k == 3 else ("face with nodes", "tetrahedron face")
    nodes = " and ".join(map(str, row)) if k == 3 else str(row)
    listed = ", ".join(map(str, owners[:8])) + (", ..." if len(owners) > 8 else "")
    raise GnsInputError(
        f"non-manifold mesh: the {what} {nodes} is shared by {len(owners)} cells ({listed}); "
        f"{shared.numel():,} such {'edge' if k == 3 else 'face'}(s)", file=file, key=key,
        expected=f"each {limit} in at most 2 cells", found=f"{len(owners)} cells")


def _check_duplicate_vertices(pos: Tensor, used: Tensor, tol: float, *, file: object, key: str) -> None:
    from gns.neighbors import radius_graph  # the O(N) cell-list search, no neighbour cap

    nodes = used.nonzero().squeeze(1)
    if nodes.numel() < 2:
        return
    limit = 32 * nodes.numel() + 1024
    try:
        pairs = radius_graph(pos[nodes], tol, self_loops=False, max_edges=limit)
    except GraphTooLargeError:
        raise GnsInputError(
            f"more than {limit // 2:,} pairs of nodes used by cells lie within {tol:.3g} of each other: the mesh "
            "has many duplicate vertices (was it saved without shared vertices, e.g. as STL?)",
            file=file, key=key, expected="distinct vertex positions", found="many duplicates") from None
    pairs = pairs[:, pairs[0] < pairs[1]]
    if pairs.shape[1] == 0:
        return
    i, j = int(nodes[pairs[0, 0]]), int(nodes[pairs[1, 0]])
    dist = float(torch.linalg.vector_norm(pos[i] - pos[j]))
    raise GnsInputError(
        f"duplicate vertices: nodes {i} and {j} are both used by cells and lie at {_fmt_point(pos[i])} and "
        f"{_fmt_point(pos[j])} (distance {dist:.3g} <= tolerance {tol:.3g}); {pairs.shape[1]:,} such pair(s). "
        "Merge them (renumbering the cells) or move them apart", file=file, key=key,
        expected="distinct vertex positions", found=f"{pairs.shape[1]:,} duplicate pair(s)")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _row_keys(rows: Tensor, n: int) -> Tensor:
    """``(M,)`` int64 keys, equal iff the rows of ``rows`` ``(M, k)`` (values in ``[0, n)``) are.

    Columns are folded in one at a time (``key * n + column``); when the next fold could overflow
    int64, the keys are first renumbered densely with ``unique``, so any ``n`` and ``k`` work."""
    key = rows[:, 0].clone()
    for col in range(1, rows.shape[1]):
        top = int(key.max()) + 1 if key.numel() else 1
        if top * n >= 2**62:
            key = torch.unique(key, return_inverse=True)[1]
        key = key * n + rows[:, col]
    return key


def _as_cells(cells: Tensor | np.ndarray, *, file: object = None, key: str = "cells") -> Tensor:
    cells = torch.as_tensor(cells)
    if cells.ndim != 2 or cells.shape[1] < 2:
        raise GnsInputError("cells must be a 2-D array of node indices", file=file, key=key,
                            expected="(C, K) with K >= 2", found=tuple(cells.shape))
    if cells.is_floating_point() or cells.is_complex() or cells.dtype == torch.bool:
        raise GnsInputError("cells must hold integer node indices", file=file, key=key,
                            expected="integer dtype", found=cells.dtype)
    return cells.long()


def _as_positions(mesh_pos: Tensor | np.ndarray, *, file: object, key: str) -> Tensor:
    """``(N, D)`` float64 on the CPU, checked."""
    pos = torch.as_tensor(mesh_pos)
    if pos.ndim != 2 or pos.shape[1] not in (2, 3):
        raise GnsInputError("mesh positions must be (N, D) with D = 2 or 3", file=file, key=key,
                            expected="(N, 2) or (N, 3)", found=tuple(pos.shape))
    if not pos.is_floating_point():
        raise GnsInputError("mesh positions must be floating point", file=file, key=key,
                            expected="float", found=pos.dtype)
    pos = pos.detach().cpu().double()
    finite = torch.isfinite(pos).all(dim=1)
    if not bool(finite.all()):
        bad = (~finite).nonzero().squeeze(1)
        raise GnsInputError(f"node {int(bad[0])} has a non-finite position {pos[int(bad[0])].tolist()}; "
                            f"{bad.numel():,} such node(s)", file=file, key=key, expected="finite values",
                            found=f"{bad.numel():,} non-finite")
    return pos


def _where(key: str | None, name: str) -> str:
    return f"{key}/{name}" if key else name


def _fmt_point(p: Tensor) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in p) + ")"
