"""Mesh files through trimesh: round trips, node order, validation on load; the committed assets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from gns.errors import GnsInputError
from gns.mesh.io import load_mesh, make_rectangle_mesh, save_mesh
from gns.mesh.topology import cell_sizes, edges_from_cells, validate_mesh

MESHES = Path(__file__).resolve().parents[2] / "meshes"


def _bumpy_sheet() -> tuple[np.ndarray, np.ndarray]:
    vertices, cells = make_rectangle_mesh(1.5, 1.0, 6, 4, diagonal="forward")
    z = 0.1 * np.sin(3 * vertices[:, 0]) * np.cos(2 * vertices[:, 1])
    return np.concatenate([vertices, z[:, None]], axis=1).astype(np.float32), cells


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".off"])
def test_round_trip_keeps_vertices_and_cells(tmp_path, suffix):
    vertices, cells = _bumpy_sheet()
    path = save_mesh(tmp_path / f"sheet{suffix}", vertices, cells)
    loaded_vertices, loaded_cells = load_mesh(path)
    assert loaded_vertices.dtype == np.float32 and loaded_cells.dtype == np.int64
    assert np.array_equal(loaded_cells, cells)
    if suffix == ".ply":
        assert np.array_equal(loaded_vertices, vertices)                    # binary float32: exact
    else:
        np.testing.assert_allclose(loaded_vertices, vertices, rtol=0, atol=1e-9)
    assert [p.name for p in tmp_path.iterdir()] == [f"sheet{suffix}"]     # no temporary file left


def test_stl_round_trip_merges_its_unshared_corners(tmp_path):
    vertices, cells = _bumpy_sheet()
    loaded_vertices, loaded_cells = load_mesh(save_mesh(tmp_path / "sheet.stl", vertices, cells))
    assert loaded_vertices.shape == vertices.shape and loaded_cells.shape == cells.shape
    # same triangles, up to the numbering of the nodes
    key = lambda v, c: sorted(map(tuple, np.sort(v[c].reshape(len(c), -1), axis=1)))  # noqa: E731
    assert key(loaded_vertices, loaded_cells) == key(vertices, cells)


def test_two_dimensional_vertices(tmp_path):
    vertices, cells = make_rectangle_mesh(2.0, 1.0, 4, 2)
    path = save_mesh(tmp_path / "flat.obj", vertices, cells)
    loaded, _ = load_mesh(path, dim=2)
    assert loaded.shape == (15, 2) and np.array_equal(loaded, vertices)
    assert np.array_equal(load_mesh(path)[0][:, 2], np.zeros(15, np.float32))
    with pytest.raises(GnsInputError, match="dim=2 needs a planar mesh"):
        load_mesh(save_mesh(tmp_path / "bumpy.obj", *_bumpy_sheet()), dim=2)


def test_obj_keeps_file_order_and_unused_vertices(tmp_path):
    """trimesh's default would drop vertex 2 (unused) and renumber; we keep the file as it is."""
    path = tmp_path / "order.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 9 9 9\nv 0 1 0\nv 1 1 0\nf 4 5 2\nf 1 2 4\n")
    vertices, cells = load_mesh(path)
    assert vertices[:, :2].tolist() == [[0, 0], [1, 0], [9, 9], [0, 1], [1, 1]]
    assert cells.tolist() == [[3, 4, 1], [0, 1, 3]]
    assert validate_mesh(vertices, cells).unreferenced.tolist() == [2]


def test_quads_are_triangulated(tmp_path):
    path = tmp_path / "quad.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n")
    vertices, cells = load_mesh(path)
    assert cells.shape == (2, 3)
    assert float(cell_sizes(torch.as_tensor(vertices), torch.as_tensor(cells)).sum()) == 1.0


def test_load_validates_and_names_the_file(tmp_path):
    path = tmp_path / "crack.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\nf 4 6 5\n")
    with pytest.raises(GnsInputError, match=r"file '.*crack.obj'.*duplicate vertices: nodes 1 and 4"):
        load_mesh(path)
    assert load_mesh(path, validate=False)[0].shape == (6, 3)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.obj"):
        load_mesh(tmp_path / "missing.obj")
    with pytest.raises(GnsInputError, match=r"unsupported mesh file type.*found \.msh"):
        load_mesh(tmp_path / "mesh.msh")
    points = tmp_path / "points.obj"
    points.write_text("v 0 0 0\nv 1 0 0\n")
    with pytest.raises(GnsInputError, match="no triangles"):
        load_mesh(points)


def test_save_replaces_atomically_and_checks_shapes(tmp_path):
    path = tmp_path / "sheet.ply"
    save_mesh(path, *make_rectangle_mesh(1.0, 1.0, 2, 2))
    save_mesh(path, *make_rectangle_mesh(1.0, 1.0, 3, 3))                 # overwrite in place
    assert load_mesh(path)[1].shape == (18, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.ply"]
    with pytest.raises(GnsInputError, match="cells must be"):
        save_mesh(path, np.zeros((3, 3)), np.zeros((1, 4), dtype=np.int64))
    with pytest.raises(GnsInputError, match="vertices must be"):
        save_mesh(path, np.zeros((3, 4)), np.zeros((1, 3), dtype=np.int64))


# --------------------------------------------------------------------------------------------
# make_rectangle_mesh
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("diagonal", ["forward", "backward", "alternate"])
def test_rectangle_mesh(diagonal):
    vertices, cells = make_rectangle_mesh(3.0, 2.0, 6, 4, diagonal=diagonal)
    assert vertices.shape == (7 * 5, 2) and cells.shape == (2 * 6 * 4, 3)
    assert vertices[7 * 2 + 3].tolist() == [1.5, 1.0]                     # node (i=3, j=2)
    corner = vertices[cells]
    e1, e2 = corner[:, 1] - corner[:, 0], corner[:, 2] - corner[:, 0]
    signed = 0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    np.testing.assert_allclose(signed, 0.125, rtol=1e-6)                  # counter-clockwise, all equal
    summary = validate_mesh(vertices, cells)
    assert summary.num_boundary == 2 * (6 + 4) and summary.num_edges == 6 * 5 + 7 * 4 + 24
    # the diagonals of quads (0, 0) and (1, 0): a-c is "/", b-d is "\\" (7 nodes per row)
    edges = set(map(tuple, edges_from_cells(torch.as_tensor(cells), vertices.shape[0]).t().tolist()))
    slash = {"forward": [True, True], "backward": [False, False], "alternate": [True, False]}[diagonal]
    for i, forward in enumerate(slash):
        assert ((i, i + 8) in edges) == forward and ((i + 1, i + 7) in edges) == (not forward)


def test_rectangle_mesh_errors():
    with pytest.raises(GnsInputError, match="nx and ny"):
        make_rectangle_mesh(1.0, 1.0, 0, 3)
    with pytest.raises(GnsInputError, match="unknown diagonal"):
        make_rectangle_mesh(1.0, 1.0, 2, 3, diagonal="x")
    with pytest.raises(GnsInputError, match="positive"):
        make_rectangle_mesh(-1.0, 1.0, 2, 3)


# --------------------------------------------------------------------------------------------
# committed assets
# --------------------------------------------------------------------------------------------
def _make_meshes_module():
    spec = importlib.util.spec_from_file_location("make_meshes", MESHES / "make_meshes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_assets_equal_their_recipe():
    module = _make_meshes_module()
    readme = (MESHES / "README.md").read_text()
    for name, make in module.ASSETS.items():
        assert name in readme, name
        vertices, cells = load_mesh(MESHES / name)                           # also validates
        expected_vertices, expected_cells = make()
        assert np.array_equal(cells, expected_cells), name
        expected = np.zeros((expected_vertices.shape[0], 3))
        expected[:, :expected_vertices.shape[1]] = expected_vertices
        np.testing.assert_allclose(vertices, expected.astype(np.float32), rtol=0, atol=1e-7, err_msg=name)
    flag, _ = load_mesh(MESHES / "flag_20x10.obj", dim=2)
    assert flag.shape == (231, 2) and flag[210].tolist() == [0.0, 1.0]     # the pole x = 0: nodes 0, 21, ..., 210
