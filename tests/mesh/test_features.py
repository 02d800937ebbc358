"""Mesh features: sender - receiver displacements and norms, node inputs + one-hot type."""

from __future__ import annotations

import pytest
import torch

from gns.errors import GnsInputError
from gns.mesh.features import mesh_edge_features, node_features, strain_features, world_edge_features
from gns.mesh.topology import edges_from_cells
from gns.particles.features import edge_features as particle_edge_features


def _mesh():
    mesh_pos = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    world_pos = torch.tensor([[0.0, 0.0, 1.0], [3.0, 0.0, 1.0], [0.0, 0.0, 5.0]], dtype=torch.float64)
    edges = edges_from_cells(torch.tensor([[0, 1, 2]]), 3)
    return mesh_pos, world_pos, edges


def test_mesh_edge_features_values():
    mesh_pos, world_pos, edges = _mesh()
    features = mesh_edge_features(mesh_pos, world_pos, edges)
    assert features.shape == (6, 2 + 1 + 3 + 1) and features.dtype == torch.float64
    for row, (s, r) in enumerate(edges.t().tolist()):
        mesh_disp = mesh_pos[s] - mesh_pos[r]
        world_disp = world_pos[s] - world_pos[r]
        expected = torch.cat([mesh_disp, mesh_disp.norm().reshape(1), world_disp, world_disp.norm().reshape(1)])
        assert torch.allclose(features[row], expected)
    only_mesh = mesh_edge_features(mesh_pos, None, edges)
    assert torch.equal(only_mesh, features[:, :3])


def test_strain_features_are_stretch_over_rest_length():
    mesh_pos, world_pos, edges = _mesh()
    features = mesh_edge_features(mesh_pos, world_pos, edges)
    strain = strain_features(features, 2)                                          # (E, 1 + 3)
    for row, (s, r) in enumerate(edges.t().tolist()):
        world_disp = world_pos[s] - world_pos[r]
        expected = world_disp.norm() / (mesh_pos[s] - mesh_pos[r]).norm() - 1
        assert float(strain[row, 0]) == pytest.approx(float(expected))
        assert torch.allclose(strain[row, 1:], expected * world_disp / world_disp.norm())
    assert float(strain[:, 0].max()) == pytest.approx(2.0)                           # edge 0-1: 3 m over 1 m
    rest = mesh_edge_features(mesh_pos, torch.cat([mesh_pos, torch.zeros(3, 1, dtype=mesh_pos.dtype)], 1), edges)
    assert float(strain_features(rest, 2).abs().max()) < 1e-12                      # at rest: no strain


def test_convention_matches_particle_features():
    """Same sign convention as the particle simulator (sender - receiver), up to its radius scaling."""
    _, world_pos, edges = _mesh()
    bounds = torch.tensor([[-10.0, 10.0]] * 3, dtype=torch.float64)
    periodic = torch.zeros(3, dtype=torch.bool)
    particle = particle_edge_features(world_pos, edges[0], edges[1], bounds, periodic, radius=1.0)
    assert torch.allclose(world_edge_features(world_pos, edges), particle)


def test_translation_invariance():
    mesh_pos, world_pos, edges = _mesh()
    shifted = world_edge_features(world_pos + torch.tensor([5.0, -2.0, 7.0], dtype=torch.float64), edges)
    assert torch.allclose(shifted, world_edge_features(world_pos, edges))


def test_node_features():
    node_type = torch.tensor([0, 3, 1])
    velocity = torch.arange(9, dtype=torch.float64).reshape(3, 3)
    features = node_features(node_type, velocity)
    assert features.shape == (3, 3 + 9) and features.dtype == torch.float64
    assert torch.equal(features[:, :3], velocity)
    assert features[:, 3:].argmax(dim=1).tolist() == [0, 3, 1]
    two = node_features(node_type, [velocity, velocity[:, :1]])
    assert two.shape == (3, 4 + 9)
    assert node_features(node_type).shape == (3, 9)
    with pytest.raises(GnsInputError, match="one row per node"):
        node_features(node_type, torch.zeros(4, 2))


def test_shape_errors():
    mesh_pos, world_pos, edges = _mesh()
    with pytest.raises(GnsInputError, match="world_pos"):
        mesh_edge_features(mesh_pos, world_pos[:2], edges)
    with pytest.raises(GnsInputError, match=r"\(2, E\)"):
        world_edge_features(world_pos, edges.t())
