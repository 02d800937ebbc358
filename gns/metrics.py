"""Errors over named horizons, shared by every domain's evaluation and by counterfactual scores.

Horizons are 1-based: horizon ``h`` is the ``h``-th predicted step after the input window;
``"full"`` is the mean over every step of a rollout. Per-entity values are reduced per system
(:func:`per_system_sum`, :func:`per_system_mean`) and then over rollouts (:func:`reduce_rollouts`)
in one of two ways:

* ``"per_rollout"`` (GNS, particles): the mean over scored entities of each rollout, then the
  mean over rollouts (every rollout weighs the same, whatever its size);
* ``"pooled"`` (MeshGraphNets, meshes): sums over every rollout's scored entities, divided once.

``metric = "rmse"`` takes the square root last (of the mean squared error).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["ENERGY_WINDOW", "per_system_sum", "per_system_mean", "per_system_max", "per_system_extent", "window_factor", "at_horizons",
           "reduce_rollouts", "reduce_extra"]

# Kinetic energy is compared over windows of this many steps (the predicted mean against the true mean).
ENERGY_WINDOW = 50


def per_system_sum(values: Tensor, batch: Tensor, mask: Tensor, num_systems: int) -> Tensor:
    """``(B, S)`` sums over the masked entities of each system.

    Args:
        values: ``(N, S)`` per entity and step; batch: ``(N,)`` system ids; mask: ``(N,)`` bool.
    """
    sums = torch.zeros(num_systems, values.shape[1], dtype=values.dtype, device=values.device)
    return sums.index_add_(0, batch[mask], values[mask])


def per_system_mean(values: Tensor, batch: Tensor, mask: Tensor, num_systems: int) -> Tensor:
    """``(B, S)`` means over the masked entities of each system (0 for a system without any)."""
    counts = torch.zeros(num_systems, device=values.device).index_add_(0, batch, mask.to(values.dtype))
    return per_system_sum(values, batch, mask, num_systems) / counts.clamp(min=1.0)[:, None]


def per_system_max(values: Tensor, batch: Tensor, mask: Tensor, num_systems: int) -> Tensor:
    """``(B, ...)`` the largest of non-negative ``values`` ``(N, ...)`` over the masked entities of each
    system (0 for a system without any)."""
    index = batch[mask].reshape(-1, *([1] * (values.dim() - 1))).expand_as(values[mask])
    return values.new_zeros(num_systems, *values.shape[1:]).scatter_reduce(0, index, values[mask], "amax")


def per_system_extent(values: Tensor, batch: Tensor, mask: Tensor, num_systems: int) -> tuple[Tensor, Tensor]:
    """``(B, S, F)`` componentwise minimum and maximum over the masked entities of each system.

    Args:
        values: ``(N, S, F)``; batch: ``(N,)`` system ids; mask: ``(N,)`` bool (a system without masked
            entities gets ``+inf`` / ``-inf``).
    """
    n, s, f = values.shape
    index = batch[mask][:, None, None].expand(-1, s, f)
    lo = values.new_full((num_systems, s, f), float("inf")).scatter_reduce(0, index, values[mask], "amin")
    hi = values.new_full((num_systems, s, f), float("-inf")).scatter_reduce(0, index, values[mask], "amax")
    return lo, hi


def window_factor(predicted: Tensor, truth: Tensor, window: int) -> Tensor:
    """``(B,)`` the largest factor between the means of two positive series over consecutive windows.

    For each window of ``window`` steps (the last one may be shorter), ``max(p / t, t / p)`` of the
    window means; the largest over windows. ``inf`` where one mean is zero and the other is not.

    Args:
        predicted, truth: ``(B, S)``.
    """
    factors = []
    for start in range(0, predicted.shape[1], window):
        p = predicted[:, start:start + window].mean(1).double()
        t = truth[:, start:start + window].mean(1).double()
        ratio = torch.where((p == 0) & (t == 0), torch.ones_like(p), p / t)
        factors.append(torch.maximum(ratio, 1.0 / ratio))
    return torch.stack(factors, 1).amax(1) if factors else predicted.new_ones(predicted.shape[0]).double()


def reduce_extra(key: str, values: Sequence[float]) -> float:
    """One figure from an extra metric's per-rollout values: the largest for keys ending in ``_max``
    (worst cases, e.g. how far any particle escaped), else the mean."""
    return float(np.max(values)) if key.endswith("_max") else float(np.mean(values))


def at_horizons(per_step: Tensor, horizons: Sequence[int], metric: str = "mse") -> dict[str, float]:
    """``{h: value, "full": mean}`` of a per-step mean squared error ``(S,)`` (horizons beyond it skipped);
    the square roots for ``metric = "rmse"``."""
    table = {str(h): float(per_step[h - 1]) for h in horizons if 1 <= h <= per_step.shape[0]}
    table["full"] = float(per_step.mean()) if per_step.numel() else float("nan")
    return {k: float(np.sqrt(v)) for k, v in table.items()} if metric == "rmse" else table


def reduce_rollouts(rows: list[tuple[Tensor, float]], horizons: Sequence[int], reduction: str,
                    metric: str) -> tuple[dict[str, float], list[float]]:
    """The table ``{h: .., "full": ..}`` and the per-step curve of rollouts ``[(squared-error sums (S,), count)]``.

    Rollouts of different lengths: ``"pooled"`` keeps the steps they all have; ``"per_rollout"``
    averages each horizon over the rollouts that reach it, and the curve over the common steps.
    """
    shortest = min(len(s) for s, _ in rows)
    if reduction == "pooled":
        mse = sum(s[:shortest] for s, _ in rows) / max(sum(c for _, c in rows), 1.0)      # (S,)
        table = at_horizons(mse, horizons)
        curve = mse
    elif reduction == "per_rollout":
        per = [s / max(c, 1.0) for s, c in rows]                                           # per rollout (S_b,)
        table = {}
        for h in horizons:
            have = [p[h - 1] for p in per if h <= len(p)]
            if have:
                table[str(h)] = float(sum(have) / len(have))
        table["full"] = float(np.mean([float(p.mean()) for p in per]))
        curve = torch.stack([p[:shortest] for p in per]).mean(0)
    else:
        raise ValueError(f"unknown reduction {reduction!r} (pooled, per_rollout)")
    if metric == "rmse":
        table = {k: float(np.sqrt(v)) for k, v in table.items()}
        curve = curve.sqrt()
    return table, [float(v) for v in curve]
