"""Strain limiting: a named projection of a Lagrangian mesh's predicted positions (cloth), off by default.

A learned cloth model predicts each node's acceleration; nothing in it stops an edge from growing a
little longer every step, and over hundreds of steps a sheet can stretch to several times its rest size
where the reference membrane stretches a few percent. Cloth solvers meet the same problem and answer it
with *strain limiting* (Provot 1995, "Deformation constraints in a mass-spring model to describe rigid
cloth behavior"; the inequality distance constraints of position-based dynamics): after a step, edges
longer than ``limit`` times their rest length are shortened to it by moving their two nodes towards each
other, the movable ones only (a handle or an obstacle node stays where it is prescribed).

Here it runs after the model's step and changes the model's answer, so it is never a default: it exists
as the explicit option ``mesh.strain_limit`` (``gns evaluate --strain-limit``), and every evaluation made
with it says so (:attr:`gns.mesh.simulator.MeshSimulator.projections`, the summary's ``"projections"``
with how many node moves it made and the largest). Edges are only shortened, never lengthened: a
compressed edge is a fold, which cloth makes freely.

The projection is a Gauss-Seidel sweep over the edges, in groups of edges that share no node (a greedy
edge colouring of the mesh, about seven groups on a triangle sheet): within a group every edge is projected
exactly and at once, a few gather/scatter operations on any device, and the next group starts from the
positions the last one left, over-relaxed (each correction times ``relaxation``, 1.9 by default: successive
over-relaxation, as position-based dynamics solvers use it; an over-corrected edge is only a little shorter
than the limit, which the inequality allows; on one sheet of a model's rollout stretched to 1.6, an ad hoc
measurement, 579 sweeps converged without it and 37 with it). It sweeps until no edge is longer than the limit by more than ``tolerance`` of
its rest length, or ``iterations`` times. The position update is the whole of it: with positions
integrated from the last two frames (order 2), a node moved this step also leaves with the velocity of the
move, as in position-based dynamics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gns.config import MeshConfig
from gns.errors import GnsInputError

__all__ = ["StrainLimit", "limit_strain", "undirected_rest_edges", "edge_groups"]


@dataclass(frozen=True)
class StrainLimit:
    """Settings of the projection.

    Attributes:
        limit: the longest edge allowed, as a multiple of its rest length (> 1; e.g. 1.1: 10% stretch).
        iterations: the most sweeps over every edge per step (default: ``mesh.strain_limit_iterations``'s).
        tolerance: a sweep ends the projection once no edge exceeds ``limit`` by more than this share of its
            rest length.
        relaxation: each edge's correction is this multiple of the exact one (over-relaxation; in (0, 2)).
    """

    limit: float
    iterations: int = MeshConfig.strain_limit_iterations
    tolerance: float = 1e-3
    relaxation: float = 1.9

    def __post_init__(self) -> None:
        if not (self.limit > 1.0):
            raise GnsInputError("a strain limit is the longest edge over its rest length, above 1",
                                key="mesh.strain_limit", expected="> 1 (e.g. 1.1)", found=self.limit)
        if self.iterations < 1:
            raise GnsInputError("the strain limit needs at least one iteration", key="mesh.strain_limit_iterations",
                                expected=">= 1", found=self.iterations)
        if not 0.0 < self.relaxation < 2.0:
            raise GnsInputError("over-relaxation must lie strictly between 0 and 2", key="relaxation",
                                expected="(0, 2)", found=self.relaxation)


def undirected_rest_edges(mesh_edges: Tensor, mesh_pos: Tensor, movable: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The mesh edges once each (sender < receiver) that have a movable node and a positive rest length.

    Args:
        mesh_edges: ``(2, E)`` int64 mesh edges (both directions or one); mesh_pos: ``(N, Dm)`` rest
            coordinates; movable: ``(N,)`` bool, the nodes the projection may move.

    Returns:
        ``senders (K,)``, ``receivers (K,)``, ``rest (K,)`` rest lengths.
    """
    s, r = mesh_edges
    keep = (s < r) & (movable[s] | movable[r])
    s, r = s[keep], r[keep]
    rest = (mesh_pos[s] - mesh_pos[r]).norm(dim=-1)
    positive = rest > 0
    return s[positive], r[positive], rest[positive]


def edge_groups(senders: Tensor, receivers: Tensor, num_nodes: int) -> list[Tensor]:
    """A greedy edge colouring: groups of edge indices, no two edges of a group sharing a node.

    Args:
        senders, receivers: ``(K,)`` each edge once; num_nodes: ``N``.

    Returns:
        index tensors into the ``K`` edges (on their device), every edge in exactly one.
    """
    used = np.zeros(num_nodes, dtype=np.int64)             # bit c set: the node has an edge of colour c
    colour = np.empty(senders.numel(), dtype=np.int64)
    for k, (a, b) in enumerate(zip(senders.tolist(), receivers.tolist())):
        taken = int(used[a] | used[b])
        c = ((taken + 1) & ~taken).bit_length() - 1           # the lowest colour neither node has
        colour[k] = c
        used[a] |= 1 << c
        used[b] |= 1 << c
    order = torch.as_tensor(colour, device=senders.device)
    return [torch.nonzero(order == c).flatten() for c in range(int(colour.max()) + 1)] if colour.size else []


def limit_strain(position: Tensor, senders: Tensor, receivers: Tensor, rest: Tensor, movable: Tensor,
                 settings: StrainLimit, groups: list[Tensor] | None = None) -> tuple[Tensor, dict[str, float]]:
    """Shorten every edge longer than ``settings.limit`` times its rest length, moving movable nodes only.

    Args:
        position: ``(N, D)`` world positions after the model's step.
        senders, receivers, rest: ``(K,)`` each edge once and its rest length (:func:`undirected_rest_edges`).
        movable: ``(N,)`` bool: nodes that may move (an edge between two held nodes is never corrected).
        settings: the limit and the sweeps' settings.
        groups: :func:`edge_groups` of these edges (computed here when not given; a rollout keeps them).

    Returns:
        ``(N, D)`` projected positions (a new tensor; ``position`` is untouched) and what the projection did:
        ``{"strain_before": the largest strain found, "strain_after": the largest left, "iterations": sweeps
        made, "moved": nodes moved, "moved_max": the largest move (m)}``.
    """
    x = position.clone()
    if groups is None:
        groups = edge_groups(senders, receivers, x.shape[0])
    weight_s = movable[senders].to(x.dtype)                      # (K,) 1: the sender moves, 0: it is held
    weight_r = movable[receivers].to(x.dtype)
    share = 1.0 / (weight_s + weight_r).clamp(min=1.0)           # one movable node takes the whole correction
    longest = settings.limit * rest                              # (K,)

    def strain() -> Tensor:
        return (x[receivers] - x[senders]).norm(dim=-1) / rest   # (K,)

    worst = float(strain().max()) if rest.numel() else 0.0
    before, sweeps = worst, 0
    while rest.numel() and worst > settings.limit + settings.tolerance and sweeps < settings.iterations:
        for group in groups:
            s, r = senders[group], receivers[group]
            d = x[r] - x[s]                                      # (G, D)
            length = d.norm(dim=-1)
            excess = (length - longest[group]).clamp(min=0)      # only stretching is limited
            pull = d / length.clamp(min=1e-12)[:, None] * (excess * share[group] * settings.relaxation)[:, None]
            x.index_add_(0, s, pull * weight_s[group, None])     # no two edges of a group share a node
            x.index_add_(0, r, -pull * weight_r[group, None])
        sweeps += 1
        worst = float(strain().max())
    moved = (x - position).norm(dim=-1)
    return x, {"strain_before": before, "strain_after": worst, "iterations": float(sweeps),
               "moved": float((moved > 0).sum()), "moved_max": float(moved.max()) if x.shape[0] else 0.0}
