"""Triangle meshes from and to files (through trimesh), and structured sheets made in code.

Arrays here are numpy, like the rest of the file layer (:mod:`gns.data`): ``vertices`` float32
``(N, 3)`` (or ``(N, 2)`` for planar meshes) and ``cells`` int64 ``(C, 3)``. ``torch.as_tensor``
turns them into the tensors :mod:`gns.mesh.topology` takes.

trimesh "processes" meshes by default (merging close vertices, dropping unused ones, reordering),
which would silently renumber nodes; we always load with ``process=False`` and, for OBJ, with
``maintain_order=True``, so the node order of the file is the node order of the arrays.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gns.atomic import write_bytes_atomic
from gns.errors import GnsInputError

__all__ = ["load_mesh", "save_mesh", "make_rectangle_mesh", "MESH_SUFFIXES"]

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off")

# Decimal places written to the text formats (OBJ, OFF): float32 needs ~9 significant digits to
# round-trip, which 10 decimals give for coordinates down to ~0.01 in magnitude.
_TEXT_DIGITS = 10


def load_mesh(path: str | os.PathLike, *, dim: int = 3, validate: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read a triangle mesh, keeping the file's vertices and their order.

    STL stores every triangle with its own three corners (no shared vertices), so for ``.stl``
    only, vertices at exactly the same position are merged (numbered in order of first use).
    Polygons with more than three corners are triangulated by trimesh.

    Args:
        path: a ``.obj``, ``.ply``, ``.stl`` or ``.off`` file.
        dim: 3, or 2 to drop the z coordinate, which must then be the same for all vertices.
        validate: run :func:`gns.mesh.topology.validate_mesh` (degenerate cells, duplicate
            vertices, non-manifold edges, ...) and raise on the first problem.

    Returns:
        ``vertices`` float32 ``(N, dim)`` and ``cells`` int64 ``(C, 3)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        GnsInputError: an unsupported suffix, a file trimesh cannot read, a file without
            triangles, a non-planar mesh with ``dim=2``, or a mesh that fails validation.
    """
    import trimesh

    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise FileNotFoundError(f"mesh file not found: '{path}'")
    options = {"maintain_order": True} if suffix == ".obj" else {}
    try:
        mesh = trimesh.load(str(path), file_type=suffix[1:], process=False, force="mesh", **options)
    except Exception as err:  # trimesh raises many types for malformed files
        raise GnsInputError(f"trimesh could not read it: {type(err).__name__}: {err}", file=path) from None
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    cells = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
    if cells.shape[0] == 0:
        raise GnsInputError("the file holds no triangles", file=path, expected="at least one face",
                            found=f"{vertices.shape[0]} vertices, 0 faces")
    if suffix == ".stl":
        vertices, cells = _merge_identical(vertices, cells)
    vertices = _to_dim(vertices, dim, path).astype(np.float32)
    if validate:
        from gns.mesh.topology import validate_mesh

        validate_mesh(vertices, cells, file=path)
    return vertices, cells


def save_mesh(path: str | os.PathLike, vertices: np.ndarray, cells: np.ndarray) -> Path:
    """Write a triangle mesh through trimesh, atomically.

    The file is written beside ``path`` under a temporary name and moved into place with
    :func:`os.replace`, so ``path`` is either the old file or the complete new one. PLY is written
    binary (exact float32); OBJ and OFF as text with 10 decimals; STL loses the shared vertices
    (see :func:`load_mesh`).

    Args:
        path: destination; its suffix (``.obj``, ``.ply``, ``.stl``, ``.off``) picks the format.
        vertices: ``(N, 3)`` or ``(N, 2)`` positions (2-D meshes are written with z = 0).
        cells: ``(C, 3)`` integer node indices.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    import trimesh

    path = Path(path)
    suffix = _suffix(path)
    vertices = np.asarray(vertices, dtype=np.float64)
    cells = np.asarray(cells)
    if vertices.ndim != 2 or vertices.shape[1] not in (2, 3):
        raise GnsInputError("vertices must be (N, 2) or (N, 3)", file=path, key="vertices",
                            expected="(N, 2) or (N, 3)", found=vertices.shape)
    if cells.ndim != 2 or cells.shape[1] != 3 or not np.issubdtype(cells.dtype, np.integer):
        raise GnsInputError("cells must be (C, 3) integer triangles", file=path, key="cells",
                            expected="(C, 3) int", found=f"{cells.shape} {cells.dtype}")
    if vertices.shape[1] == 2:
        vertices = np.concatenate([vertices, np.zeros((vertices.shape[0], 1))], axis=1)
    mesh = trimesh.Trimesh(vertices=vertices, faces=cells.astype(np.int64), process=False, validate=False)
    options = {".obj": {"include_normals": False, "include_color": False, "include_texture": False,
                        "digits": _TEXT_DIGITS, "header": None},
               ".off": {"digits": _TEXT_DIGITS},
               ".ply": {"encoding": "binary"}}.get(suffix, {})
    data = mesh.export(file_type=suffix[1:], **options)
    if isinstance(data, str):
        data = data.encode("utf-8")
    return write_bytes_atomic(path, data)


def make_rectangle_mesh(width: float, height: float, nx: int, ny: int, *,
                        diagonal: str = "alternate") -> tuple[np.ndarray, np.ndarray]:
    """A structured triangle sheet over ``[0, width] x [0, height]`` (e.g. a cloth flag).

    The rectangle is cut into ``nx x ny`` quads, each split into two counter-clockwise triangles.
    Node ``(i, j)`` (column ``i`` along x, row ``j`` along y) has index ``j * (nx + 1) + i``; the
    two triangles of quad ``(i, j)`` are cells ``2 * (j * nx + i)`` and ``+ 1``.

    Args:
        width, height: side lengths, > 0.
        nx, ny: quads along x and y, >= 1 (``(nx + 1) (ny + 1)`` nodes, ``2 nx ny`` triangles).
        diagonal: ``"forward"`` splits every quad along its ``/`` diagonal, ``"backward"`` along
            ``\\``, ``"alternate"`` switches in a checkerboard, so the mesh has no preferred shear
            direction (with all diagonals alike, a sheet responds differently to shear along and across them).

    Returns:
        ``vertices`` float32 ``(N, 2)`` and ``cells`` int64 ``(C, 3)``.
    """
    if not (width > 0 and height > 0):
        raise GnsInputError("width and height must be positive", key="width, height", expected="> 0",
                            found=(width, height))
    if int(nx) != nx or int(ny) != ny or nx < 1 or ny < 1:
        raise GnsInputError("nx and ny count quads and must be integers >= 1", key="nx, ny", expected=">= 1",
                            found=(nx, ny))
    if diagonal not in ("forward", "backward", "alternate"):
        raise GnsInputError("unknown diagonal", key="diagonal", expected="forward | backward | alternate",
                            found=diagonal)
    nx, ny = int(nx), int(ny)
    x, y = np.meshgrid(np.linspace(0.0, width, nx + 1), np.linspace(0.0, height, ny + 1))   # (ny+1, nx+1)
    vertices = np.stack([x.ravel(), y.ravel()], axis=1).astype(np.float32)
    j, i = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")                        # (ny, nx)
    a = (j * (nx + 1) + i).ravel()   # lower left corner of each quad, then counter-clockwise b, c, d
    b, c, d = a + 1, a + nx + 2, a + nx + 1
    if diagonal == "alternate":
        forward = ((i + j) % 2 == 0).ravel()
    else:
        forward = np.full(a.shape, diagonal == "forward")
    first = np.where(forward[:, None], np.stack([a, b, c], 1), np.stack([a, b, d], 1))     # (Q, 3)
    second = np.where(forward[:, None], np.stack([a, c, d], 1), np.stack([b, c, d], 1))
    cells = np.stack([first, second], axis=1).reshape(-1, 3).astype(np.int64)
    return vertices, cells


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise GnsInputError("unsupported mesh file type", file=path, expected=" | ".join(MESH_SUFFIXES),
                            found=suffix or "no suffix")
    return suffix


def _merge_identical(vertices: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices with bit-identical positions (numbered in order of first occurrence)."""
    _, first, inverse = np.unique(vertices, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)                       # unique rows by first occurrence
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return vertices[first[order]], rank[inverse.reshape(-1)][cells]


def _to_dim(vertices: np.ndarray, dim: int, path: Path) -> np.ndarray:
    if dim == 3:
        return vertices
    if dim != 2:
        raise GnsInputError("dim must be 2 or 3", file=path, key="dim", expected="2 or 3", found=dim)
    z = vertices[:, 2]
    if z.size and np.any(z != z[0]):
        raise GnsInputError("dim=2 needs a planar mesh with one z for all vertices", file=path, key="dim",
                            expected=f"z = {z[0]:g} everywhere", found=f"z in [{z.min():g}, {z.max():g}]")
    return vertices[:, :2]
