"""Autoregressive rollouts of a learned particle simulator, and the simple baselines.

:func:`rollout` runs any number of systems at once (a :class:`ParticleBatch` of several
trajectories or several counterfactual variants of one), in inference mode, on whatever
device the simulator lives on.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from gns.geometry import minimum_image
from gns.particles.batch import ParticleBatch
from gns.particles.integrate import integrate

StepFn = Callable[[ParticleBatch], Tensor]


def autoregress(step: StepFn, initial: ParticleBatch, num_steps: int, kinematic: Tensor | None = None,
                prescribed: Tensor | None = None, progress: bool = False) -> Tensor:
    """Apply ``step`` ``num_steps`` times, shifting the position window each time.

    Args:
        step: maps a batch with positions ``(N, W, D)`` to next positions ``(N, D)``.
        initial: the starting window.
        kinematic: ``(N,)`` bool; these particles take positions from ``prescribed``.
        prescribed: ``(num_steps, N, D)`` positions for kinematic particles.

    Returns:
        ``(num_steps, N, D)`` predicted positions.
    """
    history = initial.position
    out = []
    for t in tqdm(range(num_steps), desc="rollout", disable=not progress, leave=False):
        nxt = step(initial.with_position(history))
        if kinematic is not None and prescribed is not None:
            nxt = torch.where(kinematic[:, None], prescribed[t], nxt)
        out.append(nxt)
        history = torch.cat([history[:, 1:], nxt[:, None]], dim=1)
    if not out:
        return history.new_zeros((0, *history.shape[::2]))
    return torch.stack(out)


def rollout(simulator, initial: ParticleBatch, num_steps: int, prescribed: Tensor | None = None,
            progress: bool = False) -> Tensor:
    """Roll a learned simulator forward.

    Args:
        simulator: a ``ParticleSimulator`` (its device is used).
        initial: positions ``(N, >= C+1, D)``; only the last ``C+1`` steps are used.
        num_steps: steps to predict.
        prescribed: ``(num_steps, N, D)`` ground truth for kinematic particles (None: none are kinematic,
            or they are left to the model).

    Returns:
        ``(num_steps, N, D)`` predicted positions.
    """
    device = next(simulator.parameters()).device
    window = initial.to(device).with_position(initial.position[:, -(simulator.history + 1):].to(device))
    kinematic = simulator.is_kinematic(window.particle_type)
    was_training = simulator.training
    simulator.eval()
    try:
        with torch.inference_mode():
            return autoregress(simulator.predict_next_position, window, num_steps, kinematic,
                               None if prescribed is None else prescribed.to(device), progress)
    finally:
        simulator.train(was_training)


def constant_acceleration_step(acceleration: Tensor, bounds: Tensor, periodic: Tensor) -> StepFn:
    """Baseline step: ``x_{t+1} = x_t + v_t + a`` with a fixed per-step acceleration ``(D,)``
    (zero: constant velocity; gravity: gravity only), kept inside non-periodic walls."""
    def step(batch: ParticleBatch) -> Tensor:
        nxt = integrate(batch.position, acceleration.to(batch.position).expand_as(batch.position[:, -1]),
                        bounds, periodic)
        lo, hi = bounds[:, 0].to(nxt), bounds[:, 1].to(nxt)
        clamped = torch.maximum(torch.minimum(nxt, hi), lo)
        return torch.where(periodic.to(nxt.device), nxt, clamped)
    return step


def baseline_rollout(initial: ParticleBatch, num_steps: int, acceleration: Tensor, bounds: Tensor,
                     periodic: Tensor, kinematic: Tensor | None = None, prescribed: Tensor | None = None) -> Tensor:
    """``(num_steps, N, D)`` rollout of :func:`constant_acceleration_step`."""
    return autoregress(constant_acceleration_step(acceleration, bounds, periodic), initial, num_steps,
                       kinematic, prescribed)


def position_error(predicted: Tensor, ground_truth: Tensor, bounds: Tensor, periodic: Tensor) -> Tensor:
    """``(T, N, D)`` error with the minimum image in periodic dims."""
    return minimum_image(predicted - ground_truth, bounds.to(predicted), periodic.to(predicted.device))
