"""Rollout metrics: position MSE over named horizons and kinetic-energy error.

Horizons are 1-based: horizon ``h`` is the ``h``-th predicted step after the input window.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from gns.geometry import minimum_image


def mse_per_step(predicted: Tensor, ground_truth: Tensor, bounds: Tensor, periodic: Tensor,
                 mask: Tensor | None = None) -> Tensor:
    """``(T,)`` mean squared position error per step over masked particles and all dimensions.

    Args:
        predicted, ground_truth: ``(T, N, D)``; mask: ``(N,)`` bool (default: all particles).
    """
    err = minimum_image(predicted - ground_truth, bounds.to(predicted), periodic.to(predicted.device)) ** 2
    if mask is not None:
        err = err[:, mask]
    return err.mean(dim=(1, 2))


def kinetic_energy(position: Tensor, bounds: Tensor, periodic: Tensor, mask: Tensor | None = None) -> Tensor:
    """``(T-1,)`` mean kinetic energy per particle, ``0.5 |v|^2`` with unit mass and per-step velocity.

    Args:
        position: ``(T, N, D)``.
    """
    v = minimum_image(position[1:] - position[:-1], bounds.to(position), periodic.to(position.device))
    if mask is not None:
        v = v[:, mask]
    return 0.5 * (v**2).sum(-1).mean(-1)


def at_horizons(per_step: Tensor, horizons: Sequence[int]) -> dict[str, float]:
    """Pick values at 1-based ``horizons`` (those within the rollout) and the mean over all steps as ``"full"``."""
    out = {str(h): float(per_step[h - 1]) for h in horizons if 1 <= h <= per_step.shape[0]}
    out["full"] = float(per_step.mean()) if per_step.numel() else float("nan")
    return out


def rollout_metrics(predicted: Tensor, ground_truth: Tensor, last_input: Tensor, bounds: Tensor, periodic: Tensor,
                    horizons: Sequence[int], mask: Tensor | None = None) -> dict[str, object]:
    """Position MSE at horizons and kinetic-energy error of one rollout.

    Args:
        predicted, ground_truth: ``(T, N, D)`` the predicted steps and the truth at the same steps.
        last_input: ``(N, D)`` the last input position (so the first step's velocity is defined).
        mask: ``(N,)`` particles to score (default: all).

    Returns:
        ``{"mse": {h: ..., "full": ...}, "mse_per_step": [...], "ke_error": mean |KE_pred - KE_true|,
        "ke_true_mean": mean KE_true}``.
    """
    per_step = mse_per_step(predicted, ground_truth, bounds, periodic, mask)
    ke_pred = kinetic_energy(torch.cat([last_input[None], predicted]), bounds, periodic, mask)
    ke_true = kinetic_energy(torch.cat([last_input[None], ground_truth]), bounds, periodic, mask)
    return {"mse": at_horizons(per_step, horizons), "mse_per_step": per_step.tolist(),
            "ke_error": float((ke_pred - ke_true).abs().mean()), "ke_true_mean": float(ke_true.mean())}


def average_metrics(items: list[dict[str, object]]) -> dict[str, object]:
    """Mean over rollouts of :func:`rollout_metrics` results (per-step curves truncated to the shortest)."""
    keys = items[0]["mse"].keys()
    shortest = min(len(m["mse_per_step"]) for m in items)
    return {
        "mse": {k: sum(m["mse"][k] for m in items if k in m["mse"]) / sum(1 for m in items if k in m["mse"])
                for k in keys},
        "mse_per_step": torch.tensor([m["mse_per_step"][:shortest] for m in items]).mean(0).tolist(),
        "ke_error": sum(m["ke_error"] for m in items) / len(items),
        "ke_true_mean": sum(m["ke_true_mean"] for m in items) / len(items),
        "num_rollouts": len(items),
    }
