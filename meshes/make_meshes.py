"""Regenerate the mesh assets of this folder (nothing is downloaded).

Run from the repository root:

    .venv/bin/python meshes/make_meshes.py

Each asset is one function below returning ``(vertices, cells)``; ``tests/mesh/test_io.py``
checks that the committed files still equal what these functions make.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gns.mesh.io import make_rectangle_mesh, save_mesh

HERE = Path(__file__).resolve().parent


def flag_20x10() -> tuple[np.ndarray, np.ndarray]:
    """A 2 x 1 cloth sheet: 20 x 10 quads, alternating diagonals, 231 nodes, 400 triangles (z = 0)."""
    return make_rectangle_mesh(2.0, 1.0, 20, 10, diagonal="alternate")


def sphere_obstacle() -> tuple[np.ndarray, np.ndarray]:
    """An icosphere of radius 0.25 centred at the origin: 2 subdivisions, 162 nodes, 320 triangles."""
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.25)
    return np.asarray(sphere.vertices), np.asarray(sphere.faces, dtype=np.int64)


def box_obstacle() -> tuple[np.ndarray, np.ndarray]:
    """An axis-aligned cube of side 0.5 centred at the origin: 8 nodes, 12 triangles."""
    import trimesh

    box = trimesh.creation.box(extents=(0.5, 0.5, 0.5))
    return np.asarray(box.vertices), np.asarray(box.faces, dtype=np.int64)


ASSETS = {
    "flag_20x10.obj": flag_20x10,
    "sphere_obstacle.obj": sphere_obstacle,
    "box_obstacle.ply": box_obstacle,
}


def main() -> None:
    for name, make in ASSETS.items():
        vertices, cells = make()
        save_mesh(HERE / name, vertices, cells)
        print(f"{name}: {vertices.shape[0]} vertices, {cells.shape[0]} triangles")


if __name__ == "__main__":
    main()
