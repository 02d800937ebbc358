"""Strain limiting (gns.mesh.constraints): a named projection that shortens over-stretched edges, off by default."""

from __future__ import annotations

import pytest
import torch

from gns.errors import GnsInputError
from gns.mesh.constraints import StrainLimit, edge_groups, limit_strain, undirected_rest_edges
from gns.mesh.io import make_rectangle_mesh
from gns.mesh.topology import edges_from_cells


def _sheet(nx: int = 6, ny: int = 5):
    """A flat rectangular sheet: rest coordinates (N, 2), edges (2, E) both ways, world positions (N, 3)."""
    vertices, cells = make_rectangle_mesh(1.0, 0.8, nx, ny)
    mesh_pos = torch.as_tensor(vertices, dtype=torch.float64)
    edges = edges_from_cells(torch.as_tensor(cells), len(mesh_pos))
    world = torch.cat([mesh_pos, torch.zeros(len(mesh_pos), 1, dtype=torch.float64)], dim=1)
    return mesh_pos, edges, world


def _strain(world, s, r, rest):
    return (world[s] - world[r]).norm(dim=-1) / rest


def test_edges_once_with_a_movable_node():
    mesh_pos, edges, _ = _sheet()
    movable = torch.ones(len(mesh_pos), dtype=torch.bool)
    movable[:3] = False
    s, r, rest = undirected_rest_edges(edges, mesh_pos, movable)
    assert (s < r).all()
    with_movable = movable[edges[0]] | movable[edges[1]]
    assert len(s) * 2 == int(with_movable.sum())             # every such edge once: the sheet's go both ways
    both_held = ~movable[s] & ~movable[r]
    assert not both_held.any()
    assert torch.allclose(rest, (mesh_pos[s] - mesh_pos[r]).norm(dim=-1))


def test_a_stretched_sheet_is_brought_to_the_limit_and_held_nodes_stay():
    mesh_pos, edges, world = _sheet()
    generator = torch.Generator().manual_seed(0)
    movable = mesh_pos[:, 0] > 1e-9                          # the edge at u = 0 is the pole, held at rest
    stretched = world * torch.tensor([1.6, 1.3, 1.0], dtype=torch.float64)
    stretched = stretched + 0.02 * torch.randn(stretched.shape, generator=generator, dtype=torch.float64)
    stretched = torch.where(movable[:, None], stretched, world)
    s, r, rest = undirected_rest_edges(edges, mesh_pos, movable)
    assert _strain(stretched, s, r, rest).max() > 1.5
    settings = StrainLimit(1.1, iterations=500, tolerance=1e-4)
    projected, done = limit_strain(stretched, s, r, rest, movable, settings)
    assert _strain(projected, s, r, rest).max() <= 1.1 * (1 + 2e-4)
    assert done["strain_after"] <= 1.1 * (1 + 2e-4) < done["strain_before"]
    assert torch.equal(projected[~movable], stretched[~movable])
    assert done["moved"] > 0 and done["moved_max"] > 0


def test_edges_within_the_limit_are_left_alone_and_compression_is_free():
    mesh_pos, edges, world = _sheet()
    movable = torch.ones(len(mesh_pos), dtype=torch.bool)
    s, r, rest = undirected_rest_edges(edges, mesh_pos, movable)
    folded = world * torch.tensor([0.5, 1.05, 1.0], dtype=torch.float64)    # squeezed along u, 5% longer along v
    projected, done = limit_strain(folded, s, r, rest, movable, StrainLimit(1.1))
    assert torch.equal(projected, folded)
    assert done["moved"] == 0 and done["iterations"] == 0


def test_edge_groups_share_no_node_and_cover_every_edge():
    mesh_pos, edges, _ = _sheet(8, 7)
    s, r, _ = undirected_rest_edges(edges, mesh_pos, torch.ones(len(mesh_pos), dtype=torch.bool))
    groups = edge_groups(s, r, len(mesh_pos))
    assert sorted(torch.cat(groups).tolist()) == list(range(len(s)))
    for group in groups:
        nodes = torch.cat([s[group], r[group]])
        assert len(torch.unique(nodes)) == len(nodes)
    assert len(groups) <= 11                                  # greedy: at most 2 x 6 - 1 (6: the most edges of a node)


def test_settings_are_checked():
    with pytest.raises(GnsInputError, match="strain_limit"):
        StrainLimit(0.9)
    with pytest.raises(GnsInputError, match="iterations"):
        StrainLimit(1.1, iterations=0)
    with pytest.raises(GnsInputError, match="relaxation"):
        StrainLimit(1.1, relaxation=2.0)
