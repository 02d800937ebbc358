import math

import pytest
import torch

from gns.particles.features import wall_lattice, wall_pairs


def _distance_to_box(points, lo, hi):
    return torch.linalg.vector_norm(torch.maximum(lo - points, points - hi).clamp(min=0), dim=-1)


def test_wall_lattice_fills_one_radius_behind_every_wall():
    bounds, spacing, radius = torch.tensor([[0.1, 0.9], [0.1, 0.9]]), 0.01, 0.025
    points = wall_lattice(bounds, torch.tensor([False, False]), spacing, radius).double()
    lo, hi = bounds[:, 0].double(), bounds[:, 1].double()
    # every point on or behind a wall, at most one radius from the box, on the lattice, none twice
    on_or_behind = ((points <= lo + 1e-6) | (points >= hi - 1e-6)).any(-1)
    assert bool(on_or_behind.all())
    assert float(_distance_to_box(points, lo, hi).max()) <= radius + 1e-6
    steps = (points - lo) / spacing
    assert torch.allclose(steps, steps.round(), atol=1e-3)
    assert len(torch.unique(steps.round().long(), dim=0)) == len(points)
    # three layers (0, 0.01, 0.02 behind the wall) under the floor, across its whole width and past the corners
    floor = points[(points[:, 0] > 0.1 + 1e-6) & (points[:, 0] < 0.9 - 1e-6)]
    below = floor[floor[:, 1] < 0.5]
    assert sorted({round(float(y), 4) for y in below[:, 1]}) == [0.08, 0.09, 0.1]
    assert len(below) == 3 * 79
    # nothing that is farther than the radius from the box: the corner points are cut to a quarter disc
    corner = points[(points[:, 0] < 0.1 - 1e-6) & (points[:, 1] < 0.1 - 1e-6)]
    assert len(corner) == 3 and float(_distance_to_box(corner, lo, hi).max()) <= radius


def test_wall_lattice_periodic_dimensions_have_no_walls():
    bounds = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    points = wall_lattice(bounds, torch.tensor([True, False]), 0.1, 0.25)
    assert len(points) == 2 * 3 * 10                      # floor and ceiling, 3 layers, 10 columns in [0, 1)
    assert float(points[:, 0].min()) >= 0 and float(points[:, 0].max()) < 1
    assert len(wall_lattice(bounds, torch.tensor([True, True]), 0.1, 0.25)) == 0
    cube = wall_lattice(torch.tensor([[0.0, 1.0]] * 3), torch.tensor([False] * 3), 0.1, 0.15)
    assert float(_distance_to_box(cube.double(), torch.zeros(3, dtype=torch.float64),
                                  torch.ones(3, dtype=torch.float64)).max()) <= 0.15 + 1e-6


@pytest.mark.parametrize("periodic", [[False, False], [True, False]])
def test_wall_pairs_match_brute_force(periodic):
    bounds, periodic = torch.tensor([[0.0, 1.0], [0.0, 1.0]]), torch.tensor(periodic)
    lattice = wall_lattice(bounds, periodic, 0.05, 0.12)
    g = torch.Generator().manual_seed(0)
    position = torch.rand(300, 2, generator=g) * 1.1 - 0.05          # some particles beyond the walls
    candidates = torch.arange(0, 300, 2)                             # only these may get wall neighbours
    particle, wall = wall_pairs(position, candidates, lattice, 0.12, bounds, periodic, chunk=1000)  # several chunks
    delta = lattice[None] - position[candidates][:, None]
    if bool(periodic[0]):
        delta[..., 0] -= torch.round(delta[..., 0])
    near = (delta ** 2).sum(-1) <= 0.12 ** 2
    want_p, want_w = near.nonzero(as_tuple=True)
    assert torch.equal(particle, candidates[want_p]) and torch.equal(wall, want_w)
    assert len(particle) > 0
    none_p, none_w = wall_pairs(position, candidates[:0], lattice, 0.12, bounds, periodic)
    assert none_p.numel() == 0 and none_w.numel() == 0
    assert math.isclose(float(lattice[:, 1].min()), -0.1, abs_tol=1e-6)
