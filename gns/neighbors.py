"""Radius neighbour search with cell lists, in pure torch (runs on CPU and CUDA).

:func:`radius_graph` returns every ordered pair ``(sender j, receiver i)`` with
``|x_j - x_i| <= radius`` (minimum image in periodic dimensions), never connecting two graphs of
a batch and never capping the number of neighbours. The method (more in ``docs/neighbors.md``):

1. **Grid.** Cells of size ``h >= radius`` (inflated by a few ulps of the box so that float
   rounding can never push a true pair two cells apart). Non-periodic dimensions span the
   particles' own min/max, so positions may leave ``bounds`` there. A periodic dimension is cut into
   ``n = floor(L / h) >= 3`` whole cells whose neighbour index wraps modulo ``n``; with fewer than
   3 cells the wrap would visit a cell twice, so the dimension becomes a single cell and the
   distance test applies the minimum image instead. The *fast* dimension (the one with most cells)
   is cut ``_FAST_SPLIT`` times finer: a neighbour row then spans ``2 + 1/_FAST_SPLIT`` radii
   instead of 3, which removes a quarter of the candidates at no extra cost.
2. **Cell keys.** ``key = ((graph * n_a + c_a) * n_b + c_b) * n_f + c_f``: the graph id is part of
   the key, so graphs never meet, and the cells of a row along the fast dimension ``f`` are
   adjacent keys. One sort by key puts every cell's particles in a contiguous run, so one pair of
   ``searchsorted`` calls finds the particles of a whole row segment.
3. **Half shell.** Each unordered pair is tested once. From particle ``i`` (in key order) we scan
   the rest of its own row (``i+1`` to the end of the cell ``c_f + m``) and a full row segment
   ``c_f - m .. c_f + m`` in the lexicographically positive half of the ``3^(D-1) - 1``
   neighbouring rows: 2 ranges per particle in 2-D, 5 in 3-D (plus one per row for particles near
   the ends of a periodic fast dimension, whose segment wraps around).
4. **Lanes.** Ranges are sorted by length, longest first; lane ``k`` tests the ``k``-th candidate of
   every range longer than ``k``, which is a prefix of the range table. A lane is a dozen
   vectorised ops over at most ``R`` candidates (``R`` = number of ranges), split into blocks of
   ``_CHUNK``; the short lanes of the tail are grouped. Small inputs (``<= _FLAT_LIMIT``
   candidates) skip the lanes and expand all candidates at once, in fewer ops. There is no Python
   loop over particles and the candidate list is never materialised.
   Periodic images: a range whose neighbour cell was reached by wrapping carries the offset
   ``+-L`` of that image, added to the receiver's coordinate, so each (pair, image) is tested
   once, and with ``radius < L/2`` at most one image of a pair is within reach.
5. **Order.** Accepted pairs are mapped back to input indices, mirrored, joined with the self loops
   and sorted once as integer keys ``receiver << b | sender``; the keys are built and sorted inside
   the output tensor's memory. On CPU that sort is numpy's (``USE_NUMPY_SORT_ON_CPU``), which is
   ~5x faster than ``torch.sort``; everything else is torch.

Memory: the range tables take ~50 bytes per range while they are sorted (``R ~ 2N`` in 2-D, ``5N``
in 3-D, plus ~8% in periodic boxes), a block of candidates ~15 bytes per candidate (at most
``_CHUNK``), whatever the neighbour count. Accepted pairs cost 8 bytes each (4 per final edge) until
they are copied into the output, which is the only other large buffer on CPU: the peak is about
1.25x the returned ``(2, E)`` int64 tensor (16 bytes per edge) plus the range tables (measured peak
RSS: 1.3-1.8x the result, see ``docs/neighbors.md``). On CUDA ``torch.sort`` returns a sorted copy
and an index, so the output phase peaks at ~2x the result.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from gns.errors import GnsInputError, GraphTooLargeError
from gns.geometry import as_bounds, as_periodic

__all__ = ["radius_graph", "count_neighbors", "default_max_edges"]

# Candidates tested per vectorised block: large enough that per-op overhead (~5 us per op on CPU,
# a kernel launch on CUDA) is negligible, small enough to bound the temporaries (~15 bytes per
# candidate). Measured on CPU: 2^16 is 25% slower at 10^6 particles, 2^20 no slower at 10^4.
_CHUNK = 1 << 20
_CHUNK_CUDA = 1 << 23

# Up to this many candidates, all are expanded at once (``_scan_flat``): a few more memory passes
# per candidate than the lanes, but a fixed, small number of torch ops (small inputs).
_FLAT_LIMIT = 1 << 17

# Lanes are grouped into one block while the block stays this small, or while it has at most this
# many rows and at least half of it is real candidates: there, per-op overhead outweighs waste.
_TAIL_BLOCK = 1 << 13

# Cell lookups use a table over all keys (a gather) when there are at most this many keys per
# particle, else a binary search over the occupied cells (sparse clouds, far-apart graphs).
_DENSE_KEYS_PER_PARTICLE = 4

# Cells per radius along the fast dimension (see step 1). 4 gives 2.25 radii per row segment
# instead of 3; beyond it the gain (-> 2 radii) is smaller than the cost of the extra cells.
_FAST_SPLIT = 4

# Cells per radius along the other dimensions. 2 would cut the 3-D candidates by a third (rows
# 2.5 instead of 3 radii high, corner rows shortened) but needs 13 instead of 5 ranges per
# particle: measured 2x slower at 10^6 particles, no faster at 10^3. Kept for experiments.
_OTHER_SPLIT = 1

# Early guard: refuse up front when the cell-count estimate of the edge count exceeds the limit by
# this factor. The estimate assumes locally uniform density, so a modest overshoot is left to the
# exact check made while pairs are collected (which is never wrong, only later).
_ESTIMATE_SLACK = 1.25

# On CPU the final key sort uses numpy's vectorised sort (x86-simd-sort): it sorts keys only,
# ~5x faster than torch.sort, which always co-sorts an int64 index. Set False for pure torch.
USE_NUMPY_SORT_ON_CPU = True


@dataclass(frozen=True)
class _Grid:
    """Cell grid shared by all graphs of a batch (plain Python numbers, host side)."""

    lo: tuple[float, ...]        # lower corner of cell 0, per dim
    size: tuple[float, ...]      # cell size, per dim
    n: tuple[int, ...]           # number of cells, per dim
    wrap: tuple[bool, ...]       # periodic with whole cells: neighbour cell index wraps modulo n
    min_image: tuple[bool, ...]  # periodic, single cell: minimum image in the distance test
    length: tuple[float, ...]    # box length L (periodic dims; 0 otherwise)
    fast: int                    # dimension stored last in the key (adjacent cells = adjacent keys)
    others: tuple[int, ...]      # the remaining dimensions, most significant first
    rows: tuple[tuple[int, ...], ...]  # half-shell row offsets along ``others``, own row first
    row_reach: tuple[int, ...]   # per row: cells to scan on each side along the fast dimension
    region: float                # volume of the full shell of cells around a particle


@dataclass
class _Ranges:
    """Candidate ranges: receiver ``recv`` (key order) meets ``start .. start + length - 1``."""

    start: Tensor                # (R,) index dtype
    length: Tensor               # (R,) index dtype
    recv: Tensor                 # (R,) index dtype
    offset: list[Tensor | None]  # per dim: (R,) added to the receiver coordinate (periodic image)


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def radius_graph(position: Tensor, radius: float, *, batch: Tensor | None = None,
                 bounds: Tensor | None = None, periodic: Tensor | None = None,
                 self_loops: bool = True, max_edges: int | None = None) -> Tensor:
    """All ordered pairs of particles within ``radius``, as an edge index.

    A pair ``(j, i)`` is an edge iff both particles belong to the same graph and
    ``sum_d delta_d**2 <= radius**2`` in the dtype of ``position`` (float32 for half types), with
    ``delta = x_j - x_i`` taken as the minimum image along periodic dimensions. There is no cap on
    the number of neighbours; a graph that would not fit in memory raises instead of being cut.

    Args:
        position: ``(N, D)`` floating positions, ``D`` in {1, 2, 3}. Along non-periodic
            dimensions particles may lie outside ``bounds``; along periodic ones they are wrapped.
        radius: connectivity radius, finite and > 0. In periodic dims a pair is connected once, through
            its nearest image, also when the radius reaches half the box (LagrangeBench's convention).
        batch: ``(N,)`` integer graph id per particle (any order, any values), or ``None`` for a
            single graph.
        bounds: ``(D, 2)`` box ``[lo, hi]`` per dimension; required when any dim is periodic.
        periodic: ``(D,)`` bool, or ``None`` (no periodic dimension).
        self_loops: include the ``N`` edges ``(i, i)``.
        max_edges: largest number of edges allowed; default :func:`default_max_edges` (the
            returned ``int64`` edge index may use at most ~25% of the free memory of the device).

    Returns:
        ``(2, E)`` int64 on ``position.device``: row 0 senders, row 1 receivers, sorted by
        receiver then sender. Every edge ``(j, i)`` with ``j != i`` comes with ``(i, j)``.

    Raises:
        GnsInputError: malformed ``position``/``radius``/``batch``/``bounds``/``periodic``.
        GraphTooLargeError: the graph would have more than ``max_edges`` edges.
    """
    # no locals: _ordered_edge_index frees the pair lists as soon as it has read them
    return _ordered_edge_index(*_search(position, radius, batch, bounds, periodic, self_loops, max_edges),
                               self_loops=self_loops)


def count_neighbors(position: Tensor, radius: float, *, batch: Tensor | None = None,
                    bounds: Tensor | None = None, periodic: Tensor | None = None,
                    self_loops: bool = True, max_edges: int | None = None) -> Tensor:
    """In-degree of every particle in :func:`radius_graph` (same arguments), without building it.

    Cheaper than ``radius_graph(...)[1].bincount()``: it skips mirroring and sorting the edges.

    Returns:
        ``(N,)`` int64 on ``position.device``.
    """
    recv, send, perm = _search(position, radius, batch, bounds, periodic, self_loops, max_edges)
    n = perm.shape[0]
    degree = torch.bincount(recv, minlength=n) + torch.bincount(send, minlength=n) + int(self_loops)
    return torch.empty_like(degree).index_copy_(0, perm, degree)  # key order -> input order


def default_max_edges(device: torch.device | str) -> int:
    """Edge limit such that a ``(2, E)`` int64 edge index (16 bytes per edge) stays below ~25% of
    the memory free on ``device`` (``/proc/meminfo`` MemAvailable on CPU, ``torch.cuda.mem_get_info``
    on CUDA). The search itself peaks at ~1.25x (CPU) to ~2x (CUDA) the returned tensor."""
    return max(int(_free_memory_bytes(torch.device(device)) * 0.25) // 16, 1)


# --------------------------------------------------------------------------------------------
# the search
# --------------------------------------------------------------------------------------------
def _search(position: Tensor, radius: float, batch: Tensor | None, bounds: Tensor | None,
            periodic: Tensor | None, self_loops: bool, max_edges: int | None) -> tuple[Tensor, Tensor, Tensor]:
    """Every unordered pair within ``radius`` once.

    Returns:
        ``recv``, ``send``: ``(P,)`` int32 (int64 beyond 2^31 particles) indices in key order;
        ``perm``: ``(N,)`` int64, key order -> input index.
    """
    x, radius, graph_id, box, periodic_flags = _validate(position, radius, batch, bounds, periodic)
    n, device = x.shape[0], x.device
    if max_edges is None:
        # a graph of at most N^2 <= 4M edges (64 MB) needs no look at the free memory
        max_edges = n * n if n * n <= 1 << 22 else default_max_edges(device)
    self_edges = n if self_loops else 0
    if self_edges > max_edges:
        raise _too_large(radius, n, self_edges, max_edges, "the self loops alone")
    if n < 2:
        empty = torch.zeros(0, dtype=torch.int32, device=device)
        return empty, empty, torch.arange(n, device=device)

    x, grid = _make_grid(x, radius, graph_id, box, periodic_flags)
    key_sorted, perm = torch.sort(_cell_keys(x, graph_id, grid), stable=True)  # perm: key order -> input
    index_dtype = torch.int32 if n < 2**31 - 1 else torch.long
    xs = [x[:, d].index_select(0, perm) for d in range(x.shape[1])]         # D x (N,) in key order
    ranges = _candidate_ranges(key_sorted, grid, index_dtype, x.dtype)

    # The ranges' total length is the exact number of candidate pairs; the fraction of them within
    # the radius (for uniform density) turns it into an edge estimate, available before any test.
    candidates = int(ranges.length.sum())
    expected_pairs = round(candidates * _fill_fraction(radius, grid))
    estimate = self_edges + 2 * expected_pairs
    if estimate > _ESTIMATE_SLACK * max_edges:
        raise _too_large(radius, n, estimate, max_edges, "estimated from cell occupancy")
    check = lambda found: _check_found(found, radius, n, self_edges, max_edges)  # noqa: E731
    return (*_scan(ranges, xs, radius, grid, candidates, min(expected_pairs, max_edges // 2), check), perm)


def _check_found(pairs: int, radius: float, n: int, self_edges: int, max_edges: int) -> None:
    if self_edges + 2 * pairs > max_edges:
        raise _too_large(radius, n, self_edges + 2 * pairs, max_edges,
                         "counted so far; the search was stopped there")


def _validate(position: Tensor, radius: float, batch: Tensor | None, bounds: Tensor | None,
              periodic: Tensor | None) -> tuple[Tensor, float, Tensor | None, Tensor | None, list[bool]]:
    """Checked inputs: positions ``(N, D)`` float32/64, radius, compact graph ids, box, periodic."""
    if not isinstance(position, Tensor):
        raise GnsInputError("position must be a tensor", key="position", expected="Tensor (N, D)",
                            found=type(position).__name__)
    if position.ndim != 2 or position.shape[1] not in (1, 2, 3):
        raise GnsInputError("position must be (N, D) with D in {1, 2, 3}", key="position",
                            expected="(N, D), D in {1, 2, 3}", found=tuple(position.shape))
    if not position.is_floating_point():
        raise GnsInputError("position must be floating point", key="position", expected="float tensor",
                            found=position.dtype)
    x = position.detach()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()  # half types cannot resolve the cells of realistic boxes
    finite = torch.isfinite(x).all(dim=1)
    if not bool(finite.all()):
        first = int((~finite).nonzero()[0, 0])
        raise GnsInputError(f"position of particle {first} is not finite", key="position",
                            expected="finite values", found=x[first].tolist())
    try:
        radius = float(radius)
    except (TypeError, ValueError):
        raise GnsInputError("radius must be a number", key="radius", expected="float > 0",
                            found=repr(radius)) from None
    if not (math.isfinite(radius) and radius > 0):
        raise GnsInputError("radius must be finite and positive", key="radius", expected="> 0", found=radius)
    dim = x.shape[1]
    try:
        flags = as_periodic(periodic, dim, device="cpu").tolist()
    except (ValueError, TypeError, RuntimeError) as err:
        raise GnsInputError(str(err), key="periodic", expected=f"({dim},) bool", found=periodic) from None
    box = None
    if bounds is not None:
        box = _validate_bounds(bounds, dim)
    if any(flags):
        if box is None:
            raise GnsInputError("bounds are required when a dimension is periodic", key="bounds",
                                expected=f"({dim}, 2) tensor", found=None)
        # A radius of half the box or more is allowed with the minimum-image convention of
        # LagrangeBench / JAX-MD: each pair is connected once, through its nearest image (the
        # single-cell fallback of such a dimension computes exactly that).
    graph_id = _compact_batch(batch, x) if batch is not None else None
    return x, radius, graph_id, box, flags


def _validate_bounds(bounds: Tensor, dim: int) -> Tensor:
    """``(D, 2)`` float64 box on the host."""
    try:
        raw = torch.as_tensor(bounds).detach().cpu()
        box = as_bounds(raw, dtype=torch.float64)
    except (ValueError, TypeError, RuntimeError) as err:
        raise GnsInputError(str(err), key="bounds", expected=f"({dim}, 2) with lo < hi", found=bounds) from None
    if box.shape[0] != dim:
        raise GnsInputError("bounds must have one row per dimension", key="bounds",
                            expected=f"({dim}, 2)", found=tuple(box.shape))
    if not bool(torch.isfinite(box).all()):
        raise GnsInputError("bounds must be finite", key="bounds", expected="finite values", found=box.tolist())
    return box


def _compact_batch(batch: Tensor, x: Tensor) -> Tensor | None:
    """Graph ids as ``0 .. G-1`` int64 (``None`` for a single graph)."""
    if not isinstance(batch, Tensor) or batch.shape != (x.shape[0],):
        raise GnsInputError("batch must hold one graph id per particle", key="batch",
                            expected=f"({x.shape[0]},) integer tensor",
                            found=tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__)
    if batch.is_floating_point() or batch.is_complex() or batch.dtype == torch.bool:
        raise GnsInputError("batch must be an integer tensor", key="batch", expected="int64", found=batch.dtype)
    if batch.device != x.device:
        raise GnsInputError("batch must be on the device of position", key="batch", expected=str(x.device),
                            found=str(batch.device))
    if batch.numel() == 0:
        return None
    batch = batch.long()
    lo, hi = (int(v) for v in torch.aminmax(batch))
    if lo == hi:
        return None
    if hi - lo <= batch.numel():  # dense ids: no need to renumber (which costs a sort)
        return batch - lo
    return torch.unique(batch, return_inverse=True)[1]


def _make_grid(x: Tensor, radius: float, graph_id: Tensor | None, box: Tensor | None,
               periodic: list[bool]) -> tuple[Tensor, _Grid]:
    """Cell grid, and positions with periodic coordinates wrapped into ``[lo, hi)``."""
    dim = x.shape[1]
    mins, maxs = (t.tolist() for t in torch.aminmax(x, dim=0))
    lo, extent, length, columns = [], [], [], []
    for d in range(dim):
        col = x[:, d]
        if periodic[d]:
            box_lo, span = float(box[d, 0]), float(box[d, 1] - box[d, 0])
            inside = (col >= box_lo) & (col < box_lo + span)
            col = torch.where(inside, col, box_lo + torch.remainder(col - box_lo, span))
            lo.append(box_lo), extent.append(span), length.append(span)
        else:
            lo.append(mins[d]), extent.append(maxs[d] - mins[d]), length.append(0.0)
        columns.append(col)
    # Rounding in (x - lo) / size and in the distance test moves values by a few ulps of the
    # extent; cells cut for this slightly larger radius never miss a pair.
    eps = torch.finfo(x.dtype).eps
    h = radius * (1 + 4 * eps) + 4 * eps * max(extent)
    graphs = 1 if graph_id is None else int(graph_id.max()) + 1
    fast = max(range(dim), key=lambda d: _divide(extent[d], periodic[d], h, 1)[0])
    split = [_FAST_SPLIT if d == fast else _OTHER_SPLIT for d in range(dim)]
    scale = [1.0] * dim
    while True:
        cells = [_divide(extent[d], periodic[d], h * scale[d], split[d]) for d in range(dim)]
        if graphs * math.prod(c[0] for c in cells) < 2**62:
            break
        # int64 keys would overflow (clouds spanning ~10^6 radii per dimension): coarser cells
        # are still correct, just slower
        if max(split) > 1:
            split = [1] * dim
        else:
            widest = max(range(dim), key=lambda d: cells[d][0])
            scale[widest] *= 2
    n, size = [c[0] for c in cells], [c[1] for c in cells]
    min_image = [periodic[d] and n[d] == 1 for d in range(dim)]
    wrap = [periodic[d] and n[d] > 1 for d in range(dim)]
    # cells to scan on each side so that a pair within h is never missed (0: a single cell)
    reach = [0 if min_image[d] else max(1, math.ceil(h / size[d] - 1e-9)) for d in range(dim)]
    others = tuple(d for d in range(dim) if d != fast)
    rows, row_reach, region = _rows(others, fast, reach, size, n, min_image, length, h)
    x = torch.stack(columns, dim=1) if any(periodic) else x
    return x, _Grid(tuple(lo), tuple(size), tuple(n), tuple(wrap), tuple(min_image), tuple(length), fast, others,
                    rows, row_reach, region)


def _divide(extent: float, periodic: bool, h: float, split: int) -> tuple[int, float]:
    """``(cells, size)`` of one dimension cut into cells of at least ``h / split``.

    A periodic dimension gets whole cells, and at least ``2 m + 1`` of them for ``m`` cells per
    radius (a wrapped neighbour segment must not meet itself), reducing ``m`` if needed; below 3
    cells it is one cell (the minimum image then applies in the distance test)."""
    if not periodic:
        return int(extent // (h / split)) + 1, h / split
    for m in range(split, 0, -1):
        cells = int(extent // (h / m))
        if cells >= 2 * m + 1:
            return cells, extent / cells
    return 1, extent


def _rows(others: tuple[int, ...], fast: int, reach: list[int], size: list[float], n: list[int],
          min_image: list[bool], length: list[float], h: float
          ) -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...], float]:
    """Half-shell rows: offsets along ``others`` (own row first, then the lexicographically
    positive half), each with its reach along the fast dimension, shortened by the minimum
    distance of the row's cells; rows out of reach are dropped. Also the full shell's volume."""
    rows, row_reach, region = [], [], 0.0
    width = lambda d: length[d] if min_image[d] else size[d]  # noqa: E731
    for offset in itertools.product(*(range(-reach[d], reach[d] + 1) for d in others)):
        gap2 = sum((max(abs(o) - 1, 0) * size[d]) ** 2 for o, d in zip(offset, others))
        if gap2 > h * h:
            continue
        fast_reach = min(reach[fast], math.ceil(math.sqrt(h * h - gap2) / size[fast] - 1e-9)) if reach[fast] else 0
        segment = length[fast] if min_image[fast] else min(2 * fast_reach + 1, n[fast]) * size[fast]
        region += math.prod(width(d) for d in others) * segment
        if not any(offset) or next(o for o in offset if o) > 0:
            rows.append(offset), row_reach.append(fast_reach)
    order = sorted(range(len(rows)), key=lambda k: any(rows[k]))  # own row (all zeros) first
    return tuple(rows[k] for k in order), tuple(row_reach[k] for k in order), region


def _cell_keys(x: Tensor, graph_id: Tensor | None, grid: _Grid) -> Tensor:
    """``(N,)`` int64 cell key (graph id most significant, fast dimension least)."""
    dims = list(grid.others + (grid.fast,))
    lo = torch.tensor([grid.lo[d] for d in dims], dtype=x.dtype, device=x.device)
    size = torch.tensor([grid.size[d] for d in dims], dtype=x.dtype, device=x.device)
    top = torch.tensor([grid.n[d] - 1 for d in dims], dtype=torch.long, device=x.device)
    cells = torch.floor((x[:, dims] - lo) / size).long().clamp_(min=torch.zeros_like(top), max=top)  # (N, D)
    weight = [math.prod(grid.n[d] for d in dims[i + 1:]) for i in range(len(dims))]  # row-major strides
    key = (cells * torch.tensor(weight, dtype=torch.long, device=x.device)).sum(dim=1)
    if graph_id is not None:
        key += graph_id * math.prod(grid.n)
    return key


def _candidate_ranges(key_sorted: Tensor, grid: _Grid, index_dtype: torch.dtype, dtype: torch.dtype) -> _Ranges:
    """Half-shell candidate ranges of every particle (module docstring, step 3).

    All ``K`` rows are handled at once as ``(K, U)`` tables over the ``U`` occupied cells, so the
    number of torch ops does not grow with the dimension (it matters for small inputs)."""
    device, n_particles = key_sorted.device, key_sorted.shape[0]
    cell_key, count = torch.unique_consecutive(key_sorted, return_counts=True)        # (U,)
    n_cells = cell_key.shape[0]
    cell_start = torch.zeros(n_cells + 1, dtype=torch.long, device=device)
    torch.cumsum(count, 0, out=cell_start[1:])
    cell_of = torch.repeat_interleave(torch.arange(n_cells, dtype=index_dtype, device=device), count)  # (N,)

    n_fast = grid.n[grid.fast]
    coord, rest = {grid.fast: cell_key % n_fast}, cell_key // n_fast                 # decode the key
    for d in reversed(grid.others):
        coord[d], rest = rest % grid.n[d], rest // grid.n[d]
    c_fast = coord[grid.fast]

    key_count = (int(rest.max()) + 1) * math.prod(grid.n)  # keys in use (graphs * cells)
    if key_count <= _DENSE_KEYS_PER_PARTICLE * n_particles + 1024:
        # dense grid: a table over all keys turns every binary search into a gather
        dense = torch.zeros(key_count + 1, dtype=torch.long, device=device)
        torch.cumsum(torch.bincount(key_sorted, minlength=key_count), 0, out=dense[1:])
        # (keys of rows outside the grid are clamped here and masked by the caller)
        first_at = lambda key: dense[key.clamp(0, key_count)]           # first particle with key >= key  # noqa: E731
        end_after = lambda key: dense[key.clamp(-1, key_count - 1) + 1]  # first particle with key > key  # noqa: E731
    else:
        first_at = lambda key: cell_start[torch.searchsorted(cell_key, key)]  # noqa: E731
        end_after = lambda key: cell_start[torch.searchsorted(cell_key, key, right=True)]  # noqa: E731

    rows = torch.tensor(grid.rows, dtype=torch.long, device=device).view(len(grid.rows), -1)  # (K, D-1)
    reach = torch.tensor(grid.row_reach, dtype=torch.long, device=device)[:, None]          # (K, 1)
    base, valid, shift = rest.expand(rows.shape[0], n_cells), None, {}                 # (K, U)
    for j, d in enumerate(grid.others):
        c = coord[d] + rows[:, j:j + 1]                                                 # (K, U)
        if grid.wrap[d]:
            # neighbour index wrapped past the top: its image is x_j + L, i.e. the receiver is
            # moved to x_i - L (and the other way round at the bottom)
            shift[d] = torch.where(c >= grid.n[d], -grid.length[d], torch.where(c < 0, grid.length[d], 0.0)).to(dtype)
            c = torch.remainder(c, grid.n[d])
        else:
            inside = (c >= 0) & (c < grid.n[d])
            valid = inside if valid is None else valid & inside
        base = base * grid.n[d] + c
    base = base * n_fast                                        # key of the row's cell 0, (K, U)
    last = base + torch.clamp(c_fast + reach, max=n_fast - 1)
    end = end_after(last)
    start = torch.empty_like(end)
    start[0] = 0  # own row: starts at the receiver itself + 1, set per particle below
    start[1:] = first_at(base[1:] + torch.clamp(c_fast - reach[1:], min=0))
    if valid is not None:
        start, end = torch.where(valid, start, 0), torch.where(valid, end, 0)
    start_p = start.to(index_dtype).index_select(1, cell_of)                           # (K, N)
    particle = torch.arange(n_particles, dtype=index_dtype, device=device)
    torch.add(particle, 1, out=start_p[0])                                             # own row: i+1 ..
    length_p = end.to(index_dtype).index_select(1, cell_of).sub_(start_p)
    starts, lengths, recvs = [start_p.view(-1)], [length_p.view(-1)], [particle.expand_as(start_p).reshape(-1)]
    offsets = {d: [s.index_select(1, cell_of).view(-1)] for d, s in shift.items()}
    if grid.wrap[grid.fast]:
        offsets[grid.fast] = [torch.zeros(starts[0].shape[0], dtype=dtype, device=device)]
        for low in (True, False):
            # the part of a row segment that wraps around the fast dimension; the own row only
            # looks ahead, so it has no low part
            pick = (c_fast < reach) if low else (c_fast > n_fast - 1 - reach)                # (K, U)
            if valid is not None:
                pick &= valid
            if low:
                pick[0] = False
            row, cells = pick.nonzero(as_tuple=True)
            if cells.numel() == 0:
                continue
            b, c, m = base[row, cells], c_fast[cells], reach[row, 0]
            first, final = (b + n_fast - (m - c), b + n_fast - 1) if low else (b, b + c + m - n_fast)
            first, final = first_at(first), end_after(final)
            local = torch.repeat_interleave(torch.arange(cells.shape[0], device=device), count[cells])
            starts.append(first.index_select(0, local).to(index_dtype))
            lengths.append((final - first).index_select(0, local).to(index_dtype))
            recvs.append((cell_start[cells].index_select(0, local) + _ranks(count[cells])).to(index_dtype))
            for d, s in shift.items():
                offsets[d].append(s[row, cells].index_select(0, local))
            offsets[grid.fast].append(torch.full((local.shape[0],), grid.length[grid.fast] * (1 if low else -1),
                                                 dtype=dtype, device=device))
    return _Ranges(torch.cat(starts), torch.cat(lengths), torch.cat(recvs),
                   [torch.cat(offsets[d]) if d in offsets else None for d in range(len(grid.n))])


def _ranks(count: Tensor) -> Tensor:
    """``0 .. count[k]-1`` for every ``k``, concatenated."""
    first = torch.cumsum(count, 0) - count
    return torch.arange(int(count.sum()), device=count.device) - torch.repeat_interleave(first, count)


def _scan(ranges: _Ranges, xs: list[Tensor], radius: float, grid: _Grid, candidates: int, expected_pairs: int,
          check: Callable[[int], None]) -> tuple[Tensor, Tensor]:
    """Test every candidate; accepted ``(receiver, sender)`` in key order, ``(P,)`` each.

    ``candidates`` is ``ranges.length.sum()``, ``expected_pairs`` the estimate of ``P``.
    ``check(pairs)`` is called before every block's pairs are stored and may raise (the memory
    guard). ``ranges`` is consumed: its tables are released once sorted."""
    min_image = [(d, grid.length[d]) for d in range(len(xs)) if grid.min_image[d]]
    r2 = radius * radius
    if candidates <= max(_FLAT_LIMIT, 0):
        recv, send = _scan_flat(ranges, xs, r2, min_image, candidates)
        check(recv.shape[0])
        return recv, send
    device, index_dtype = xs[0].device, ranges.start.dtype
    longest = int(ranges.length.max())
    # longest ranges first (stable: ties stay in key order, so gathers stay local), so that lane k
    # is a prefix of the table; empty ranges go last and are dropped
    histogram = torch.bincount(ranges.length, minlength=longest + 1)
    active = (histogram.sum() - torch.cumsum(histogram, 0))[:longest].tolist()  # ranges longer than k
    length, order = torch.sort(longest - ranges.length, stable=True)
    order = order[:active[0]]
    length = longest - length[:active[0]]
    start = ranges.start.index_select(0, order)
    recv = ranges.recv.index_select(0, order)
    offset = [o if o is None else o.index_select(0, order) for o in ranges.offset]
    ranges.start = ranges.length = ranges.recv = order = None  # release the unsorted tables
    ranges.offset = []
    xr = []  # receiver coordinate per range, moved to the periodic image its neighbour cell sees
    for d, col in enumerate(xs):
        c = col.index_select(0, recv)
        if offset[d] is not None:
            c += offset[d]
        xr.append(c)
    del offset
    chunk = _CHUNK if device.type == "cpu" else _CHUNK_CUDA
    scratch = _Scratch(device)
    pairs = _PairBuffer(expected_pairs, index_dtype, device)
    k = 0
    while k < longest:
        rows, lanes = active[k], 1
        while k + lanes < longest and rows * (lanes + 1) <= chunk and (
                rows * (lanes + 1) <= _TAIL_BLOCK or (rows <= _TAIL_BLOCK and 2 * active[k + lanes] >= rows)):
            lanes += 1  # group short lanes: there the per-op overhead outweighs the wasted tests
        step = chunk if lanes == 1 else rows
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            pick, send = _block(start[r0:r1], length[r0:r1], [c[r0:r1] for c in xr], xs, k, lanes, r2, min_image,
                                scratch)
            check(pairs.found + send.shape[0])
            pairs.append(recv[r0:r1], pick, send)
        k += lanes
    return pairs.result()


class _PairBuffer:
    """Accepted pairs, written in place into buffers sized from the edge estimate (grown 1.5x when
    the estimate was low): no list of pieces and no final concatenation (a copy and 2x memory)."""

    def __init__(self, expected: int, dtype: torch.dtype, device: torch.device) -> None:
        capacity = max(int(expected * 1.05) + 1024, 1024)
        self.recv = torch.empty(capacity, dtype=dtype, device=device)
        self.send = torch.empty(capacity, dtype=dtype, device=device)
        self.found = 0

    def append(self, recv: Tensor, pick: Tensor, send: Tensor) -> None:
        """Add the pairs ``(recv[pick], send)``."""
        end = self.found + send.shape[0]
        if end > self.recv.shape[0]:
            capacity = max(end, int(self.recv.shape[0] * 1.5))
            self.recv = torch.cat([self.recv[:self.found], self.recv.new_empty(capacity - self.found)])
            self.send = torch.cat([self.send[:self.found], self.send.new_empty(capacity - self.found)])
        torch.index_select(recv, 0, pick, out=self.recv[self.found:end])
        self.send[self.found:end] = send
        self.found = end

    def result(self) -> tuple[Tensor, Tensor]:
        return self.recv[:self.found], self.send[:self.found]


class _Scratch:
    """Reusable block temporaries. On CPU a fresh multi-MB tensor per op is returned to the OS when
    freed and page-faulted in again by the next one, which costs as much as the op itself."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.store = device, {}

    def take(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        """A tensor of ``shape`` (uninitialised), backed by the buffer ``name``."""
        size = math.prod(shape)
        buffer = self.store.get(name)
        if buffer is None or buffer.numel() < size or buffer.dtype != dtype:
            buffer = self.store[name] = torch.empty(size, dtype=dtype, device=self.device)
        return buffer[:size].view(shape)

    def hits(self) -> Tensor:
        """An empty int64 ``(0, 1)`` tensor for ``nonzero(out=...)``, reusing its storage."""
        buffer = self.store.get("hits")
        if buffer is None:
            buffer = self.store["hits"] = torch.empty(0, 1, dtype=torch.long, device=self.device)
        return buffer.resize_(0, 1)  # resize_ keeps the storage; empty, so nonzero may resize it


def _block(start: Tensor, length: Tensor, xr: list[Tensor], xs: list[Tensor], k: int, lanes: int, r2: float,
           min_image: list[tuple[int, float]], scratch: _Scratch) -> tuple[Tensor, Tensor]:
    """Test candidates ``k .. k + lanes - 1`` of the ranges ``start``/``length`` ``(B,)``.

    Returns the accepted pairs as (row into the block, sender); the rows live in ``scratch``."""
    shape = (start.shape[0],) if lanes == 1 else (lanes, start.shape[0])  # lane-major: the long axis innermost
    sender = scratch.take("sender", shape, start.dtype)
    if lanes == 1:
        torch.add(start, k, out=sender)                                         # (B,)
    else:
        lane = torch.arange(k, k + lanes, device=start.device, dtype=start.dtype)[:, None]
        torch.add(start, lane, out=sender).clamp_(max=xs[0].shape[0] - 1)      # (lanes, B)
    dist2 = _squared_distance(xs, sender, xr, min_image, scratch)
    keep = torch.le(dist2, r2, out=scratch.take("keep", shape, torch.bool))
    if lanes > 1:
        keep &= torch.lt(lane, length, out=scratch.take("valid", shape, torch.bool))  # past the range's end
    hit = torch.nonzero(keep.view(-1), out=scratch.hits()).squeeze(1)
    rows = hit if lanes == 1 else torch.remainder(hit, start.shape[0])
    return rows, sender.view(-1).index_select(0, hit)


def _scan_flat(ranges: _Ranges, xs: list[Tensor], r2: float, min_image: list[tuple[int, float]],
               candidates: int) -> tuple[Tensor, Tensor]:
    """All candidates in one block, expanded exactly (small inputs: fewer ops than lanes)."""
    length, index_dtype = ranges.length, ranges.length.dtype
    seg = torch.repeat_interleave(torch.arange(length.shape[0], dtype=index_dtype, device=length.device), length,
                                  output_size=candidates)                               # range of each candidate
    first = torch.cumsum(length, 0, dtype=index_dtype).sub_(length)                     # its first candidate
    sender = (ranges.start - first).index_select(0, seg)
    sender += torch.arange(candidates, dtype=index_dtype, device=length.device)        # (C,)
    recv = ranges.recv.index_select(0, seg)
    xr = [col.index_select(0, recv) if o is None else col.index_select(0, recv) + o.index_select(0, seg)
          for col, o in zip(xs, ranges.offset)]
    hit = (_squared_distance(xs, sender, xr, min_image) <= r2).nonzero().squeeze(1)
    return recv.index_select(0, hit), sender.index_select(0, hit)


def _squared_distance(xs: list[Tensor], sender: Tensor, xr: list[Tensor], min_image: list[tuple[int, float]],
                      scratch: _Scratch | None = None) -> Tensor:
    """``sum_d (xs[d][sender] - xr[d])**2``, summed left to right; ``xr[d]`` broadcasts to ``sender``."""
    dist2, flat = None, sender.reshape(-1)
    for d, col in enumerate(xs):
        if scratch is None:
            delta = col.index_select(0, flat).view(sender.shape)
        else:
            name = "dist2" if dist2 is None else "delta"  # the first dimension's delta becomes dist2
            delta = scratch.take(name, sender.shape, col.dtype)
            torch.index_select(col, 0, flat, out=delta.view(-1))
        delta.sub_(xr[d])
        for dim, box in min_image:
            if dim == d:
                delta.sub_(torch.round(delta / box).mul_(box))
        dist2 = delta.mul_(delta) if dist2 is None else dist2.addcmul_(delta, delta)
    return dist2


# --------------------------------------------------------------------------------------------
# output, guard
# --------------------------------------------------------------------------------------------
def _ordered_edge_index(recv: Tensor, send: Tensor, perm: Tensor, self_loops: bool) -> Tensor:
    """Map key-order pairs to input indices, mirror them, add self loops and sort by (receiver,
    sender): ``(2, E)`` int64. On CPU it works inside the output tensor (no other large buffer)."""
    device, pairs, n = recv.device, recv.shape[0], perm.shape[0]
    total = 2 * pairs + (n if self_loops else 0)
    edge_index = torch.empty(2, total, dtype=torch.long, device=device)
    if total == 0:
        return edge_index
    # Row 0 holds the input indices of both ends while row 1 receives the keys
    # receiver << bits | sender: one integer sort of them orders by receiver, then sender.
    bits = max(1, (n - 1).bit_length())  # few key bits: fewer radix passes in torch.sort
    first, second, keys = edge_index[0, :pairs], edge_index[0, pairs:2 * pairs], edge_index[1]
    torch.index_select(perm, 0, send, out=first)
    torch.index_select(perm, 0, recv, out=second)
    del recv, send  # the caller keeps no reference: the pairs are freed before the sort
    torch.add(first, second, alpha=1 << bits, out=keys[:pairs])
    torch.add(second, first, alpha=1 << bits, out=keys[pairs:2 * pairs])
    if self_loops:
        step = (1 << bits) + 1
        torch.arange(0, n * step, step, out=keys[2 * pairs:])
    keys = _sort_keys(keys)
    torch.bitwise_and(keys, (1 << bits) - 1, out=edge_index[0])    # senders
    torch.bitwise_right_shift(keys, bits, out=edge_index[1])       # receivers (in place on CPU)
    return edge_index


def _sort_keys(keys: Tensor) -> Tensor:
    """Sorted ``keys``: in place with numpy on CPU (see ``USE_NUMPY_SORT_ON_CPU``), else torch.sort."""
    if keys.device.type == "cpu" and USE_NUMPY_SORT_ON_CPU:
        try:
            keys.numpy().sort()  # in place, on the tensor's own memory
            return keys
        except (RuntimeError, TypeError):  # torch built without numpy support
            pass
    return torch.sort(keys)[0]


def _fill_fraction(radius: float, grid: _Grid) -> float:
    """Fraction of the candidates that lie within the radius, for uniform density."""
    dim = len(grid.n)
    ball = math.pi ** (dim / 2) / math.gamma(dim / 2 + 1) * radius ** dim
    return min(1.0, ball / grid.region)


def _too_large(radius: float, n: int, edges: int, max_edges: int, how: str) -> GraphTooLargeError:
    gib = 16 / 2**30
    return GraphTooLargeError(
        f"the radius graph is too large: radius={radius:g} over {n:,} particles gives {edges:,} edges "
        f"({how}), ~{edges * gib:.2f} GiB as an int64 edge_index, above the limit max_edges={max_edges:,} "
        f"(~{max_edges * gib:.2f} GiB). Use a smaller radius, fewer particles per graph, or pass a "
        "larger max_edges", key="radius", expected=f"<= {max_edges:,} edges", found=f"{edges:,} edges")


def _free_memory_bytes(device: torch.device) -> int:
    """Free memory on ``device`` in bytes (CPU: MemAvailable; CUDA: mem_get_info)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil  # optional
        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30  # unknown platform: assume a modest 8 GiB
