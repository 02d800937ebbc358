"""World edges against an O(N^2) search minus mesh neighbours; batches; the radius guards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gns.errors import GnsInputError, GraphTooLargeError
from gns.mesh.io import make_rectangle_mesh
from gns.mesh.topology import edges_from_cells
from gns.mesh.world_edges import suggest_world_radius, world_edges

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


def brute_force(x: torch.Tensor, radius: float, mesh_edges: torch.Tensor, batch=None, hops: int = 1) -> torch.Tensor:
    """All pairs ``sum_d (x_j - x_i)_d**2 <= radius**2`` in one graph, minus self and ``hops``-hop mesh pairs."""
    n = x.shape[0]
    delta = x[None, :, :] - x[:, None, :]                                       # (N_i, N_j, D)
    dist2 = delta[..., 0] * delta[..., 0]
    for d in range(1, x.shape[1]):
        dist2 = dist2 + delta[..., d] * delta[..., d]                           # the search's summation order
    close = dist2 <= radius * radius
    if batch is not None:
        close &= batch[:, None] == batch[None, :]
    adjacent = torch.zeros(n, n, dtype=torch.bool)
    adjacent[mesh_edges[1], mesh_edges[0]] = True
    adjacent |= adjacent.clone().t()
    near = adjacent.clone()
    step = adjacent.long()
    for _ in range(hops - 1):
        step = ((step @ adjacent.long()) > 0).long()
        near |= step.bool()
    close &= ~near
    close.fill_diagonal_(False)
    receivers, senders = close.nonzero(as_tuple=True)                          # row-major: by receiver, sender
    return torch.stack([senders, receivers])


def folded_cloth(gen: torch.Generator, nx: int = 24, ny: int = 12, gap: float = 0.05):
    """A 2 x 1 sheet folded in half at x = 1 so that its two halves lie ``gap`` apart, with jitter."""
    vertices, cells = make_rectangle_mesh(2.0, 1.0, nx, ny)
    x, y = (torch.as_tensor(vertices[:, d], dtype=torch.float64) for d in range(2))
    folded = x > 1.0
    pos = torch.stack([torch.where(folded, 2.0 - x, x), y, torch.where(folded, gap, 0.0)], dim=1)
    pos = pos + 0.01 * torch.randn(pos.shape, generator=gen, dtype=torch.float64)
    cells = torch.as_tensor(cells)
    return pos, edges_from_cells(cells, pos.shape[0]), cells


@pytest.mark.parametrize("device", DEVICES)
def test_matches_brute_force_folded_cloth(device):
    gen = torch.Generator().manual_seed(0)
    for trial in range(5):
        pos, mesh_edges, _ = folded_cloth(gen)
        radius = float(torch.empty(1).uniform_(0.04, 0.25, generator=gen))
        got = world_edges(pos.to(device), radius, mesh_edges.to(device))
        assert got.device.type == device
        expected = brute_force(pos, radius, mesh_edges)
        assert torch.equal(got.cpu(), expected), trial
        if radius > 0.07:
            assert got.shape[1] > 0                          # the two layers of the fold meet


def test_excludes_mesh_neighbours_and_self():
    gen = torch.Generator().manual_seed(1)
    pos, mesh_edges, _ = folded_cloth(gen)
    got = world_edges(pos, 0.2, mesh_edges)
    n = pos.shape[0]
    assert not bool(torch.isin(got[1] * n + got[0], mesh_edges[1] * n + mesh_edges[0]).any())
    assert not bool((got[0] == got[1]).any())
    # symmetric, sorted by (receiver, sender)
    keys = got[1] * n + got[0]
    assert torch.equal(keys, keys.sort().values)
    assert torch.equal((got[0] * n + got[1]).sort().values, keys)


def test_one_direction_of_mesh_edges_is_enough():
    gen = torch.Generator().manual_seed(2)
    pos, mesh_edges, _ = folded_cloth(gen)
    half = mesh_edges[:, mesh_edges[0] < mesh_edges[1]]
    assert torch.equal(world_edges(pos, 0.15, half), world_edges(pos, 0.15, mesh_edges))


def test_batch_with_permuted_nodes():
    """Two overlapping cloths in one batch, nodes shuffled: graphs never meet, mesh edges follow."""
    gen = torch.Generator().manual_seed(3)
    for trial in range(3):
        pos_a, edges_a, _ = folded_cloth(gen, 16, 8)
        pos_b, edges_b, _ = folded_cloth(gen, 12, 10, gap=0.08)
        pos = torch.cat([pos_a, pos_b])
        edges = torch.cat([edges_a, edges_b + pos_a.shape[0]], dim=1)
        batch = torch.cat([torch.zeros(pos_a.shape[0]), torch.ones(pos_b.shape[0])]).long()
        perm = torch.randperm(pos.shape[0], generator=gen)                  # new node k = old node perm[k]
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(perm.numel())
        pos, batch, edges = pos[perm], batch[perm], inverse[edges]
        radius = 0.12
        got = world_edges(pos, radius, edges, batch=batch)
        assert torch.equal(got, brute_force(pos, radius, edges, batch)), trial
        assert torch.equal(batch[got[0]], batch[got[1]])


def test_exclude_two_hops():
    gen = torch.Generator().manual_seed(4)
    pos, mesh_edges, _ = folded_cloth(gen, 16, 8)
    for hops in (2, 3):
        got = world_edges(pos, 0.3, mesh_edges, exclude_hops=hops)
        assert torch.equal(got, brute_force(pos, 0.3, mesh_edges, hops=hops)), hops
    assert world_edges(pos, 0.3, mesh_edges, exclude_hops=2).shape[1] < world_edges(pos, 0.3, mesh_edges).shape[1]
    with pytest.raises(GnsInputError, match="exclude_hops"):
        world_edges(pos, 0.3, mesh_edges, exclude_hops=0)


def test_no_mesh_edges_is_a_plain_radius_graph():
    pos = torch.rand(50, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    empty = torch.zeros(2, 0, dtype=torch.long)
    assert torch.equal(world_edges(pos, 0.2, empty), brute_force(pos, 0.2, empty))


# --------------------------------------------------------------------------------------------
# guards
# --------------------------------------------------------------------------------------------
def test_radius_covering_the_mesh_is_refused():
    gen = torch.Generator().manual_seed(6)
    pos, mesh_edges, _ = folded_cloth(gen)
    with pytest.raises(GnsInputError) as info:
        world_edges(pos, 3.0, mesh_edges)
    message = str(info.value)
    for part in ("key 'radius'", "world-edge radius 3", "bounding-box diagonal", "would connect every pair",
                 "spanning", "median mesh edge", "e.g."):
        assert part in message, (part, message)
    suggested = suggest_world_radius(pos, mesh_edges)
    assert 0.1 < suggested < 0.25                                       # 2 x the ~0.08 mesh edge
    assert f"{suggested:.3g}" in message


def test_guard_names_the_graph_of_a_batch_and_spares_tiny_graphs():
    gen = torch.Generator().manual_seed(7)
    pos, mesh_edges, _ = folded_cloth(gen)
    square = torch.tensor([[0.0, 0, 0], [0.01, 0, 0], [0, 0.01, 0], [0.01, 0.01, 0]], dtype=torch.float64)
    square_edges = edges_from_cells(torch.tensor([[0, 1, 2], [1, 3, 2]]), 4)
    # a 4-node graph may be fully connected: the one non-mesh pair is returned
    assert world_edges(square, 1.0, square_edges).shape == (2, 2)
    both = torch.cat([pos, 100 + square])
    batch = torch.cat([torch.zeros(pos.shape[0]), torch.ones(4)]).long()
    edges = torch.cat([mesh_edges, square_edges + pos.shape[0]], dim=1)
    assert world_edges(both, 0.1, edges, batch=batch).shape[1] > 0
    with pytest.raises(GnsInputError, match="graph 0 of the batch"):
        world_edges(both, 5.0, edges, batch=batch)


def test_edge_limit_refusal_says_what_to_do():
    gen = torch.Generator().manual_seed(8)
    pos, mesh_edges, _ = folded_cloth(gen)
    with pytest.raises(GraphTooLargeError) as info:
        world_edges(pos, 0.5, mesh_edges, max_edges=1000)
    message = str(info.value)
    for part in ("world edges: radius 0.5", "max_edges=1,000", "spanning", "median mesh edge", "e.g."):
        assert part in message, (part, message)


def test_default_limit_is_per_node():
    """Below the bounding box but far too large: 128 pairs per node by default."""
    vertices, cells = make_rectangle_mesh(2.0, 1.0, 60, 30)                   # 1,891 nodes, edge ~0.033
    pos = torch.as_tensor(np.concatenate([vertices, np.zeros((vertices.shape[0], 1), np.float32)], axis=1))
    mesh_edges = edges_from_cells(torch.as_tensor(cells), pos.shape[0])
    assert world_edges(pos, 0.1, mesh_edges).shape[1] > 0
    with pytest.raises(GraphTooLargeError, match="max_edges=242,048"):
        world_edges(pos, 1.0, mesh_edges)
    assert world_edges(pos, 1.0, mesh_edges, max_edges=10**7).shape[1] > 242_048


def test_bad_inputs():
    pos = torch.rand(10, 3)
    with pytest.raises(GnsInputError, match=r"\(2, E\)"):
        world_edges(pos, 0.1, torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(GnsInputError, match=r"indices in \[0, 10\)"):
        world_edges(pos, 0.1, torch.tensor([[0], [10]]))
    with pytest.raises(GnsInputError, match="world_pos"):
        world_edges(np.zeros((10, 3)), 0.1, torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(GnsInputError, match="radius"):
        world_edges(pos, -1.0, torch.zeros(2, 0, dtype=torch.long))
