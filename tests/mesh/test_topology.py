"""Mesh edges against a brute-force reference; every validation error and its message."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import torch

from gns.errors import GnsInputError
from gns.mesh.io import make_rectangle_mesh
from gns.mesh.topology import cell_sizes, edges_from_cells, validate_mesh

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


def brute_force_edges(cells: torch.Tensor) -> torch.Tensor:
    """Every ordered pair of distinct nodes sharing a cell, sorted by (receiver, sender)."""
    pairs = {(a, b) for row in cells.tolist() for a, b in itertools.permutations(row, 2) if a != b}
    ordered = sorted(pairs, key=lambda p: (p[1], p[0]))
    return torch.tensor(ordered, dtype=torch.long).reshape(-1, 2).t()


def random_cells(gen: torch.Generator, num_cells: int, k: int, num_nodes: int) -> torch.Tensor:
    """``(C, k)`` cells of ``k`` distinct random nodes each (not a geometric mesh: topology only)."""
    return torch.rand(num_cells, num_nodes, generator=gen).argsort(dim=1)[:, :k]


def cube_tets(n: int, size: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A conforming tetrahedral mesh of ``[0, size]^3``: ``n^3`` cubes, 6 tets each (Kuhn)."""
    grid = np.stack(np.meshgrid(*[np.linspace(0, size, n + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    index = lambda i, j, k: (i * (n + 1) + j) * (n + 1) + k  # noqa: E731
    cells = []
    for i, j, k in itertools.product(range(n), repeat=3):
        for order in itertools.permutations(range(3)):
            corner, path = [i, j, k], [index(i, j, k)]
            for axis in order:
                corner[axis] += 1
                path.append(index(*corner))
            cells.append(path)
    return grid, np.asarray(cells, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# edges_from_cells
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", [3, 4])
def test_edges_match_brute_force_random(device, k):
    gen = torch.Generator().manual_seed(10 + k)
    for trial in range(6):
        num_nodes = int(torch.randint(k, 60, (1,), generator=gen))
        cells = random_cells(gen, int(torch.randint(1, 80, (1,), generator=gen)), k, num_nodes)
        got = edges_from_cells(cells.to(device), num_nodes)
        assert got.device.type == device and got.dtype == torch.long
        assert torch.equal(got.cpu(), brute_force_edges(cells)), trial


def test_edges_of_a_triangle_sheet_and_a_tet_mesh():
    vertices, cells = make_rectangle_mesh(1.0, 1.0, 3, 2)
    edges = edges_from_cells(torch.as_tensor(cells), vertices.shape[0])
    # nodes 4 x 3: 3*3 horizontal + 4*2 vertical + 6 diagonals, each both ways
    assert edges.shape == (2, 2 * (9 + 8 + 6))
    assert torch.equal(edges, brute_force_edges(torch.as_tensor(cells)))
    points, tets = cube_tets(2)
    edges = edges_from_cells(torch.as_tensor(tets), points.shape[0])
    assert torch.equal(edges, brute_force_edges(torch.as_tensor(tets)))
    assert not bool((edges[0] == edges[1]).any())


def test_edges_drop_repeated_nodes_and_accept_int32():
    cells = torch.tensor([[0, 1, 1], [1, 2, 3]], dtype=torch.int32)
    edges = edges_from_cells(cells, 4)
    assert torch.equal(edges, brute_force_edges(cells.long()))
    assert edges_from_cells(torch.zeros(0, 3, dtype=torch.long), 5).shape == (2, 0)


def test_edges_out_of_range():
    with pytest.raises(GnsInputError, match=r"cell 1 \(nodes \[1, 2, 7\]\) refers to node 7"):
        edges_from_cells(torch.tensor([[0, 1, 2], [1, 2, 7]]), 4)
    with pytest.raises(GnsInputError, match="integer"):
        edges_from_cells(torch.tensor([[0.0, 1.0, 2.0]]), 4)


# --------------------------------------------------------------------------------------------
# validate_mesh: meshes that pass
# --------------------------------------------------------------------------------------------
def test_valid_meshes_and_summary():
    vertices, cells = make_rectangle_mesh(2.0, 1.0, 4, 4)
    summary = validate_mesh(vertices, cells)
    assert (summary.num_nodes, summary.num_cells, summary.cell_type) == (25, 32, "triangle")
    assert summary.num_edges == 4 * 5 + 5 * 4 + 16 and summary.num_boundary == 16
    assert summary.unreferenced.numel() == 0
    assert summary.median_edge_length == pytest.approx(0.5, rel=1e-6)      # 20 x 0.25, 20 x 0.5, 16 diagonals
    assert summary.median_cell_size == pytest.approx(0.5 * 0.25 / 2, rel=1e-6)
    points, tets = cube_tets(3)
    summary = validate_mesh(torch.as_tensor(points), torch.as_tensor(tets))
    assert summary.cell_type == "tetra" and summary.num_cells == 6 * 27
    assert summary.num_boundary == 12 * 9                                  # 2 triangles per boundary square
    assert float(cell_sizes(torch.as_tensor(points), torch.as_tensor(tets)).sum()) == pytest.approx(1.0)


def test_unreferenced_nodes_are_reported_not_rejected():
    vertices, cells = make_rectangle_mesh(1.0, 1.0, 2, 2)
    extra = np.array([[5.0, 5.0], vertices[0]], dtype=np.float32)     # the second duplicates node 0, unused
    summary = validate_mesh(np.concatenate([vertices, extra]), cells)
    assert summary.unreferenced.tolist() == [9, 10]
    assert "2 nodes in no cell (9, 10)" in str(summary)
    empty = validate_mesh(vertices, np.zeros((0, 3), dtype=np.int64))
    assert empty.num_edges == 0 and empty.unreferenced.numel() == 9


def test_3d_triangle_surface():
    vertices, cells = make_rectangle_mesh(1.0, 1.0, 3, 3)
    bent = np.stack([vertices[:, 0], np.sin(vertices[:, 1]), np.cos(vertices[:, 1])], axis=1)
    assert validate_mesh(bent, cells).num_cells == 18


def test_validation_is_fast_for_1e5_cells():
    vertices, cells = make_rectangle_mesh(1.0, 1.0, 250, 200)                # 100,000 triangles
    start = time.perf_counter()
    validate_mesh(vertices, cells)
    assert time.perf_counter() - start < 10.0                              # ~0.1 s alone; the CI is shared


# --------------------------------------------------------------------------------------------
# validate_mesh: each error
# --------------------------------------------------------------------------------------------
def _square() -> tuple[np.ndarray, np.ndarray]:
    return make_rectangle_mesh(1.0, 1.0, 4, 4)                             # 25 nodes, 32 cells, edge 0.25


def _raises(parts: list[str], *args, **kwargs) -> str:
    with pytest.raises(GnsInputError) as info:
        validate_mesh(*args, **kwargs)
    message = str(info.value)
    for part in parts:
        assert part in message, (part, message)
    assert "Traceback" not in message
    return message


def test_index_out_of_range():
    vertices, cells = _square()
    cells[[5, 9], 1] = [25, -1]
    _raises(["file 'flag.h5'", "key '00003/cells'", "cell 5", "refers to node 25", "25 nodes",
             "2 cell(s) refer to nodes that do not exist", "indices in [0, 25)"],
            vertices, cells, file="flag.h5", key="00003")


def test_repeated_index_in_a_cell():
    vertices, cells = _square()
    cells[7] = [3, 8, 3]
    _raises(["cell 7 repeats a node", "[3, 8, 3]", "1 cell(s)", "3 distinct nodes per cell"], vertices, cells)


def test_zero_area_cell():
    vertices, cells = _square()
    cells = np.concatenate([cells, [[0, 1, 2]]])                            # three nodes on the bottom row
    _raises(["cell 32", "[0, 1, 2]", "has zero area", "median cell area", "1 degenerate cell(s)"], vertices, cells)


def test_tiny_cell():
    vertices, cells = _square()
    tiny = np.array([[3.0, 3.0], [3.0 + 1e-5, 3.0], [3.0, 3.0 + 1e-5]], dtype=np.float32)
    cells = np.concatenate([cells, [[25, 26, 27]]])
    _raises(["cell 32", "has zero area", "<= 1e-08 x the median cell area"], np.concatenate([vertices, tiny]), cells)


def test_flat_cell():
    vertices, cells = _square()
    sliver = np.array([[10.0, 0.0], [12.0, 0.0], [11.0, 1e-7]])
    cells = np.concatenate([cells, [[25, 26, 27]]])
    _raises(["cell 32 (nodes [25, 26, 27] at (10, 0), (12, 0), (11, 1e-07))", "is flat", "colinear"],
            np.concatenate([vertices.astype(np.float64), sliver]), cells)


def test_flat_tetrahedron():
    points, tets = cube_tets(2)
    flat = np.array([[5.0, 5.0, 5.0], [6.0, 5.0, 5.0], [5.0, 6.0, 5.0], [6.0, 6.0, 5.0 + 1e-7]])
    n = points.shape[0]
    _raises(["cell 48", "volume", "coplanar"], np.concatenate([points, flat]),
            np.concatenate([tets, [[n, n + 1, n + 2, n + 3]]]))


def test_duplicate_vertices():
    vertices = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [1, 0], [0, 1]], dtype=np.float32)
    cells = np.array([[0, 1, 2], [3, 5, 4]])                               # 4 = 1 and 5 = 2: a crack
    _raises(["duplicate vertices", "nodes 1 and 4", "(1, 0) and (1, 0)", "2 such pair(s)", "Merge them"],
            vertices, cells, file="mesh.obj")
    vertices[4] += [0.0, 1e-8]                                             # within the tolerance too
    _raises(["nodes 1 and 4"], vertices.astype(np.float64), cells)
    assert validate_mesh(vertices, cells, check_duplicates=False).num_cells == 2


def test_non_manifold_edge():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]], dtype=np.float32)
    cells = np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4]])
    _raises(["non-manifold", "edge between nodes 0 and 1", "shared by 3 cells (0, 1, 2)", "1 such edge(s)",
             "at most 2 cells"], vertices, cells)


def test_non_manifold_face():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, -1], [0.2, 0.2, 2]], dtype=np.float32)
    cells = np.array([[0, 1, 2, 3], [0, 1, 2, 4], [2, 1, 0, 5]])
    _raises(["non-manifold", "face with nodes [0, 1, 2]", "shared by 3 cells (0, 1, 2)", "tetrahedron face"],
            vertices, cells)


def test_duplicate_cells():
    vertices, cells = _square()
    cells = np.concatenate([cells, cells[[4]][:, ::-1]])
    _raises(["cells 4 and 32 have the same nodes", "1 duplicated cell(s)"], vertices, cells)


@pytest.mark.parametrize("pos, cells, parts", [
    (np.zeros((4, 4)), np.array([[0, 1, 2]]), ["(N, 2) or (N, 3)", "key 'mesh_pos'"]),
    (np.zeros((4, 2)), np.array([[0, 1, 2, 3]]), ["tetrahedra need 3-D positions"]),
    (np.zeros((6, 3)), np.array([[0, 1, 2, 3, 4]]), ["triangles or tetrahedra", "(1, 5)"]),
    (np.zeros((4, 2)), np.array([[0.0, 1.0, 2.0]]), ["integer node indices"]),
    (np.array([[0, 0], [1, 0], [np.nan, 1]]), np.array([[0, 1, 2]]), ["node 2 has a non-finite position"]),
])
def test_malformed_inputs(pos, cells, parts):
    _raises(parts, pos, cells)
