"""radius_graph against a brute-force oracle on randomized and corner-case inputs."""

from __future__ import annotations


import pytest
import torch

import gns.neighbors as neighbors
from gns.errors import GnsInputError, GraphTooLargeError
from gns.geometry import minimum_image
from gns.neighbors import count_neighbors, radius_graph


def brute_force(x: torch.Tensor, radius: float, batch=None, bounds=None, periodic=None,
                self_loops: bool = True) -> torch.Tensor:
    """All pairs: ``delta = x_j - x_i`` (minimum image), ``sum_d delta_d**2 <= radius**2``."""
    delta = x[None, :, :] - x[:, None, :]                                    # (N_i, N_j, D)
    if periodic is not None and bool(torch.as_tensor(periodic).any()):
        delta = minimum_image(delta, torch.as_tensor(bounds, dtype=x.dtype), torch.as_tensor(periodic))
    dist2 = delta[..., 0] * delta[..., 0]
    for d in range(1, x.shape[1]):
        dist2 = dist2 + delta[..., d] * delta[..., d]
    adjacent = dist2 <= radius * radius
    if batch is not None:
        adjacent &= batch[:, None] == batch[None, :]
    if not self_loops:
        adjacent.fill_diagonal_(False)
    receivers, senders = adjacent.nonzero(as_tuple=True)  # row-major: sorted by receiver, sender
    return torch.stack([senders, receivers])


def random_case(gen: torch.Generator, dim: int, n: int, periodic: list[bool], radius_fraction: float):
    """Box ``[-1, L-1]`` (L in [1, 6]); periodic coordinates inside the box, the others spill out."""
    length = torch.rand(dim, generator=gen, dtype=torch.float64) * 5 + 1
    bounds = torch.stack([-torch.ones(dim, dtype=torch.float64), length - 1], dim=1)
    per = torch.tensor(periodic)
    x = bounds[:, 0] + torch.rand(n, dim, generator=gen, dtype=torch.float64) * length
    x = torch.where(per, x, x + (torch.rand(n, dim, generator=gen, dtype=torch.float64) - 0.5))
    radius = radius_fraction * float(length.min()) / 2
    return x, radius, bounds, per


def assert_same(got: torch.Tensor, expected: torch.Tensor) -> None:
    assert got.dtype == torch.int64 and got.shape[0] == 2
    assert got.shape == expected.shape, f"{got.shape[1]} edges, brute force has {expected.shape[1]}"
    assert torch.equal(got, expected)


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("periodic", ["none", "all", "mixed"])
def test_matches_brute_force_random(dim, periodic):
    gen = torch.Generator().manual_seed(100 * dim + len(periodic))
    for trial in range(8):
        flags = {"none": [False] * dim, "all": [True] * dim,
                 "mixed": [bool((trial >> d) & 1) for d in range(dim)]}[periodic]
        # radii from 1/100 of the box (many cells) to just below L/2 (single-cell fallback)
        fraction = 0.98 * 10 ** (-2 * trial / 7)
        n = int(torch.randint(2, 500, (1,), generator=gen))
        x, radius, bounds, per = random_case(gen, dim, n, flags, fraction)
        self_loops = trial % 2 == 0
        got = radius_graph(x, radius, bounds=bounds, periodic=per, self_loops=self_loops)
        assert_same(got, brute_force(x, radius, None, bounds, per, self_loops))


@pytest.mark.parametrize("path", ["flat", "lanes", "small blocks", "finer cells"])
def test_scan_paths_agree_with_brute_force(monkeypatch, path):
    """The one-shot expansion (small inputs) and the lanes (large inputs), with tiny blocks so that
    lanes are split into row chunks and short lanes are grouped; and cells of half a radius in
    the other dimensions (pruned, shortened rows)."""
    monkeypatch.setattr(neighbors, "_FLAT_LIMIT", 10**12 if path == "flat" else -1)
    if path == "small blocks":
        monkeypatch.setattr(neighbors, "_CHUNK", 96)
        monkeypatch.setattr(neighbors, "_TAIL_BLOCK", 40)
    if path == "finer cells":
        monkeypatch.setattr(neighbors, "_OTHER_SPLIT", 2)
        monkeypatch.setattr(neighbors, "_FAST_SPLIT", 3)
    gen = torch.Generator().manual_seed(23)
    for trial in range(24):
        dim = 1 + trial % 3
        flags = [bool((trial >> (d + 1)) & 1) for d in range(dim)]
        x, radius, bounds, per = random_case(gen, dim, 400, flags, 0.98 * 10 ** (-1.5 * (trial % 6) / 5))
        batch = torch.randint(0, 2, (400,), generator=gen) if trial % 4 == 0 else None
        got = radius_graph(x, radius, batch=batch, bounds=bounds, periodic=per, self_loops=trial % 2 == 0)
        assert_same(got, brute_force(x, radius, batch, bounds, per, trial % 2 == 0))
    clustered = torch.rand(300, 2, generator=gen, dtype=torch.float64) * 0.01 + 0.5  # long ranges: many lanes
    assert_same(radius_graph(clustered, 0.1), brute_force(clustered, 0.1))


@pytest.mark.parametrize("table", ["dense", "sparse"])
def test_dense_and_sparse_cell_lookup(monkeypatch, table):
    """Both ways to find a cell's particles (a table over all keys, or a binary search)."""
    monkeypatch.setattr(neighbors, "_DENSE_KEYS_PER_PARTICLE", 10**9 if table == "dense" else -10**9)
    gen = torch.Generator().manual_seed(22)
    for dim, per in ((2, [True, False]), (3, [False, True, True])):
        bounds = torch.tensor([[0.0, 3.0]] * dim, dtype=torch.float64)
        x = torch.rand(900, dim, generator=gen, dtype=torch.float64) * 3
        batch = torch.randint(0, 3, (900,), generator=gen)
        got = radius_graph(x, 0.4, batch=batch, bounds=bounds, periodic=torch.tensor(per))
        assert_same(got, brute_force(x, 0.4, batch, bounds, torch.tensor(per)))


def test_float32_random_matches_brute_force():
    gen = torch.Generator().manual_seed(7)
    x = torch.rand(1500, 3, generator=gen) * 4 - 2
    for radius in (0.05, 0.3, 1.1):
        assert_same(radius_graph(x, radius), brute_force(x, radius))


def test_far_from_origin_float32():
    """Cells come from (x - min) / h; large offsets must not lose pairs to rounding."""
    gen = torch.Generator().manual_seed(8)
    x = torch.rand(800, 2, generator=gen) * 3 + 1.0e4
    assert_same(radius_graph(x, 0.2), brute_force(x, 0.2))


def test_periodic_cell_counts_around_the_fallback():
    """Boxes of 1..12 radii: single-cell fallback (< 3 cells), reduced fast split, full split."""
    gen = torch.Generator().manual_seed(9)
    for cells in [2.5, 3.0, 3.5, 4.2, 5.5, 7.3, 9.1, 12.0]:
        for dim in (2, 3):
            bounds = torch.tensor([[0.0, cells]] * dim, dtype=torch.float64)
            x = torch.rand(300, dim, generator=gen, dtype=torch.float64) * cells
            per = torch.ones(dim, dtype=torch.bool)
            per[0] = dim == 3 or cells < 5  # also one non-periodic dimension in some cases
            radius = 0.999 if cells >= 3 else 1.2
            got = radius_graph(x, radius, bounds=bounds, periodic=per)
            assert_same(got, brute_force(x, radius, None, bounds, per))


def test_exact_radius_boundary_is_included():
    """Dyadic coordinates make every distance exact: pairs at exactly the radius are edges,
    also across a periodic boundary, and diagonals (sqrt(2) spacing) are not."""
    g = torch.arange(16, dtype=torch.float32) * 0.25
    x = torch.cartesian_prod(g, g)                                          # spacing 0.25, box [0, 4)
    bounds = torch.tensor([[0.0, 4.0], [0.0, 4.0]])
    for per in (torch.tensor([False, False]), torch.tensor([True, True]), torch.tensor([True, False])):
        got = radius_graph(x, 0.5, bounds=bounds, periodic=per)
        assert_same(got, brute_force(x, 0.5, None, bounds, per))
        degree = torch.bincount(got[1], minlength=x.shape[0])
        # interior point: itself, 4 at 0.25, 4 at 0.5, 4 diagonals at 0.354 -> 13
        assert int(degree[5 * 16 + 5]) == 13
    corner = radius_graph(x, 0.5, bounds=bounds, periodic=torch.tensor([True, True]))
    assert int((corner[1] == 0).sum()) == 13  # the corner sees its images across both boundaries


def test_batched_graphs_never_connect_and_equal_separate_searches():
    gen = torch.Generator().manual_seed(11)
    for dim, per in ((2, [False, False]), (3, [True, False, True])):
        bounds = torch.tensor([[0.0, 2.0]] * dim, dtype=torch.float64)
        sizes = [0, 57, 1, 240, 133]
        x = torch.rand(sum(sizes), dim, generator=gen, dtype=torch.float64) * 2
        graph = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
        shuffle = torch.randperm(x.shape[0], generator=gen)              # ids in any order
        x, graph = x[shuffle], graph[shuffle]
        for ids in (graph, graph * 1_000_003 + 5):                        # dense and sparse ids
            got = radius_graph(x, 0.3, batch=ids, bounds=bounds, periodic=torch.tensor(per))
            assert bool((ids[got[0]] == ids[got[1]]).all())
            assert_same(got, brute_force(x, 0.3, ids, bounds, torch.tensor(per)))
        # the same as searching every graph alone and offsetting the indices
        parts = []
        for g in range(len(sizes)):
            members = (graph == g).nonzero().squeeze(1)
            local = radius_graph(x[members], 0.3, bounds=bounds, periodic=torch.tensor(per))
            parts.append(members[local])
        separate = torch.cat(parts, dim=1)
        order = torch.argsort(separate[1] * x.shape[0] + separate[0])
        assert_same(radius_graph(x, 0.3, batch=graph, bounds=bounds, periodic=torch.tensor(per)), separate[:, order])


@pytest.mark.parametrize("self_loops", [True, False])
def test_empty_and_single_particle(self_loops):
    for dim in (1, 2, 3):
        empty = radius_graph(torch.zeros(0, dim), 0.1, self_loops=self_loops)
        assert empty.shape == (2, 0) and empty.dtype == torch.int64
        one = radius_graph(torch.zeros(1, dim), 0.1, self_loops=self_loops)
        assert one.tolist() == ([[0], [0]] if self_loops else [[], []])
    lonely = radius_graph(torch.tensor([[0.0, 0.0], [5.0, 5.0]]), 0.1, self_loops=self_loops)
    assert lonely.tolist() == ([[0, 1], [0, 1]] if self_loops else [[], []])


def test_particles_outside_bounds_in_open_dimensions():
    gen = torch.Generator().manual_seed(12)
    bounds = torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    x = torch.rand(400, 2, generator=gen, dtype=torch.float64) * 3 - 1     # far outside [0, 1]
    per = torch.tensor([False, True])
    x[:, 1] = torch.rand(400, generator=gen, dtype=torch.float64)
    assert_same(radius_graph(x, 0.15, bounds=bounds, periodic=per), brute_force(x, 0.15, None, bounds, per))


def test_periodic_positions_outside_the_box_are_wrapped():
    bounds = torch.tensor([[0.0, 4.0], [0.0, 4.0]])
    per = torch.tensor([True, True])
    x = torch.tensor([[0.25, 1.0], [3.75 - 8.0, 1.0], [2.0, 2.0 + 4.0]])
    got = radius_graph(x, 0.6, bounds=bounds, periodic=per, self_loops=False)
    assert got.tolist() == [[1, 0], [0, 1]]


def test_duplicate_positions_all_connected():
    x = torch.tensor([[0.5, 0.5, 0.5]]).repeat(50, 1)
    got = radius_graph(x, 1e-6)
    assert got.shape[1] == 50 * 50
    assert_same(got, brute_force(x, 1e-6))


def test_output_sorted_int64_and_symmetric():
    gen = torch.Generator().manual_seed(13)
    x = torch.rand(3000, 2, generator=gen)
    got = radius_graph(x, 0.03, self_loops=False)
    key = got[1] * x.shape[0] + got[0]
    assert got.dtype == torch.int64 and bool((key[1:] > key[:-1]).all())
    mirrored = got.flip(0)
    assert torch.equal(mirrored[:, torch.argsort(mirrored[1] * x.shape[0] + mirrored[0])], got)


def test_count_neighbors_matches_degree():
    gen = torch.Generator().manual_seed(14)
    x = torch.rand(2000, 3, generator=gen)
    for self_loops in (True, False):
        edges = radius_graph(x, 0.1, self_loops=self_loops)
        degree = count_neighbors(x, 0.1, self_loops=self_loops)
        assert torch.equal(degree, torch.bincount(edges[1], minlength=x.shape[0]))


def test_accepts_noncontiguous_grad_and_half_inputs():
    gen = torch.Generator().manual_seed(15)
    base = torch.rand(500, 4, generator=gen, dtype=torch.float64)
    x = base[:, ::2]                                                        # non-contiguous (500, 2)
    expected = brute_force(x.contiguous(), 0.1)
    assert_same(radius_graph(x, 0.1), expected)
    assert_same(radius_graph(x.clone().requires_grad_(), 0.1), expected)
    half = x.half()
    assert_same(radius_graph(half, 0.1), brute_force(half.float(), 0.1))


def test_large_input_matches_scipy():
    spatial = pytest.importorskip("scipy.spatial")
    gen = torch.Generator().manual_seed(16)
    x = torch.rand(30_000, 3, generator=gen, dtype=torch.float64) * 20
    got = radius_graph(x, 0.6)
    pairs = torch.from_numpy(spatial.cKDTree(x.numpy()).query_pairs(0.6, output_type="ndarray")).long()
    n = x.shape[0]
    ref = torch.cat([pairs, pairs.flip(1), torch.arange(n)[:, None].repeat(1, 2)])  # (E, 2) [i, j]
    ref = ref[torch.argsort(ref[:, 1] * n + ref[:, 0])].t()
    assert_same(got, ref)


# --- memory guard ----------------------------------------------------------------------------
def test_guard_raises_instead_of_truncating():
    gen = torch.Generator().manual_seed(17)
    x = torch.rand(2000, 2, generator=gen)
    full = radius_graph(x, 0.05)
    assert_same(radius_graph(x, 0.05, max_edges=full.shape[1]), full)       # exactly at the limit: fine
    with pytest.raises(GraphTooLargeError) as info:
        radius_graph(x, 0.05, max_edges=full.shape[1] - 1)
    message = str(info.value)
    assert "radius=0.05" in message and "2,000 particles" in message and "smaller radius" in message
    assert f"max_edges={full.shape[1] - 1:,}" in message
    with pytest.raises(GraphTooLargeError, match="estimated from cell occupancy"):
        radius_graph(x, 0.05, max_edges=full.shape[1] // 4)                 # refused before any test
    with pytest.raises(GraphTooLargeError, match="self loops alone"):
        radius_graph(x, 0.05, max_edges=100)


def test_guard_exact_check_catches_what_the_estimate_misses():
    """Tight clusters: the uniform-density estimate is ~3x too low, the running count is exact."""
    gen = torch.Generator().manual_seed(18)
    centres = torch.cartesian_prod(torch.arange(10.0), torch.arange(10.0)) * 3 + 0.5
    x = (centres[:, None, :] + torch.rand(100, 20, 2, generator=gen) * 0.01).reshape(-1, 2)
    full = radius_graph(x, 1.0)
    assert full.shape[1] == 100 * 20 * 20
    with pytest.raises(GraphTooLargeError, match="counted so far"):
        radius_graph(x, 1.0, max_edges=full.shape[1] - 1)


def test_default_limit_comes_from_free_memory(monkeypatch):
    monkeypatch.setattr(neighbors, "_free_memory_bytes", lambda device: 64 * 1000)
    assert neighbors.default_max_edges("cpu") == 1000
    x = torch.rand(3000, 2)  # N^2 above 4M: small graphs skip the look at free memory
    with pytest.raises(GraphTooLargeError, match="max_edges=1,000"):
        radius_graph(x, 0.5)


# --- bad inputs --------------------------------------------------------------------------------
def test_bad_position_is_reported_with_the_particle():
    x = torch.rand(10, 2)
    x[7, 1] = float("nan")
    with pytest.raises(GnsInputError, match=r"key 'position': position of particle 7 is not finite"):
        radius_graph(x, 0.1)
    with pytest.raises(GnsInputError, match=r"expected \(N, D\), D in \{1, 2, 3\}, found \(10, 2, 1\)"):
        radius_graph(torch.rand(10, 2, 1), 0.1)
    with pytest.raises(GnsInputError, match="floating point"):
        radius_graph(torch.zeros(4, 2, dtype=torch.long), 0.1)


def test_bad_radius_and_box():
    x = torch.rand(10, 2)
    bounds = torch.tensor([[0.0, 1.0], [0.0, 4.0]])
    for radius in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(GnsInputError, match="key 'radius'"):
            radius_graph(x, radius)
    # radius >= L/2 in a periodic dim: one edge per pair, through the nearest image (LagrangeBench)
    big = radius_graph(x, 0.6, bounds=bounds, periodic=torch.tensor([True, False]), self_loops=False)
    d = x[:, None] - x[None]
    d[..., 0] -= torch.round(d[..., 0])
    expect = ((d**2).sum(-1) <= 0.36) & ~torch.eye(10, dtype=torch.bool)
    assert big.shape[1] == int(expect.sum())
    assert expect[big[1], big[0]].all()
    radius_graph(x, 0.5, bounds=bounds, periodic=torch.tensor([False, True]))  # 0.5 < 4 / 2: fine
    with pytest.raises(GnsInputError, match="key 'bounds': bounds are required"):
        radius_graph(x, 0.1, periodic=torch.tensor([True, False]))
    with pytest.raises(GnsInputError, match="key 'bounds'"):
        radius_graph(x, 0.1, bounds=torch.tensor([[0.0, 1.0]] * 3), periodic=torch.tensor([True, False]))
    with pytest.raises(GnsInputError, match="key 'periodic'"):
        radius_graph(x, 0.1, bounds=bounds, periodic=torch.tensor([True, False, True]))
    with pytest.raises(GnsInputError, match="key 'batch'"):
        radius_graph(x, 0.1, batch=torch.zeros(9, dtype=torch.long))
    with pytest.raises(GnsInputError, match="key 'batch'"):
        radius_graph(x, 0.1, batch=torch.zeros(10))


# --- devices -----------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(19)
    for dim, per in ((2, [True, False]), (3, [True, True, True])):
        bounds = torch.tensor([[0.0, 3.0]] * dim)
        x = torch.rand(5000, dim, generator=gen) * 3
        batch = torch.randint(0, 3, (5000,), generator=gen)
        cpu = radius_graph(x, 0.2, batch=batch, bounds=bounds, periodic=torch.tensor(per))
        gpu = radius_graph(x.cuda(), 0.2, batch=batch.cuda(), bounds=bounds.cuda(), periodic=torch.tensor(per).cuda())
        assert gpu.device.type == "cuda" and gpu.dtype == torch.int64
        assert torch.equal(gpu.cpu(), cpu)
        assert torch.equal(count_neighbors(x.cuda(), 0.2).cpu(), count_neighbors(x, 0.2))


def test_pure_torch_sort_path(monkeypatch):
    """The CUDA code path (torch.sort) gives the same result as the numpy sort used on CPU."""
    gen = torch.Generator().manual_seed(20)
    x = torch.rand(1000, 2, generator=gen)
    expected = radius_graph(x, 0.08)
    monkeypatch.setattr(neighbors, "USE_NUMPY_SORT_ON_CPU", False)
    assert_same(radius_graph(x, 0.08), expected)


def test_periodic_boxes_of_few_radii_random():
    """Random boxes of 2-12 radii with random periodic flags: wrapped row segments and extras."""
    gen = torch.Generator().manual_seed(21)
    for _ in range(150):
        dim = int(torch.randint(1, 4, (1,), generator=gen))
        length = torch.rand(dim, generator=gen, dtype=torch.float64) * 3 + 1
        bounds = torch.stack([torch.zeros(dim, dtype=torch.float64), length], dim=1)
        radius = float(length.min()) / (float(torch.rand(1, generator=gen)) * 10 + 2.05)
        x = torch.rand(150, dim, generator=gen, dtype=torch.float64) * length
        per = torch.rand(dim, generator=gen) < 0.7
        assert_same(radius_graph(x, radius, bounds=bounds, periodic=per), brute_force(x, radius, None, bounds, per))
