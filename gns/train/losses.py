"""Particle training losses: noise-injected one-step, pushforward and full backprop-through-time.

All three are :func:`unrolled_loss` with a different unroll length and gradient policy:

* one-step: ``unroll=0``; the GNS loss.
* pushforward (Brandstetter et al. 2022, as used by LagrangeBench): the model first rolls
  ``unroll`` steps forward *without gradient* from the noisy history; the loss is the
  one-step loss on the state it reached, so it learns to correct its own drift.
* bptt: the same unroll *with* gradient through every step; the loss averages every step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gns.particles.batch import ParticleBatch
from gns.particles.integrate import integrate
from gns.particles.simulator import ParticleSimulator
from gns.train.noise import random_walk_noise


def masked_mse(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over the rows where ``mask`` is True (0 when none is).

    Args:
        prediction, target: ``(N, D)``; mask: ``(N,)`` bool.
    """
    weight = mask.to(prediction.dtype)[:, None]
    count = weight.sum() * prediction.shape[-1]
    return ((prediction - target) ** 2 * weight).sum() / count.clamp(min=1.0)


def unrolled_loss(simulator: ParticleSimulator, batch: ParticleBatch, unroll: int, noise_std: float,
                  generator: torch.Generator | None = None, backprop_through_unroll: bool = False) -> Tensor:
    """Loss on normalized accelerations after ``unroll`` model steps.

    Args:
        batch: positions ``(N, C + 2 + unroll, D)``: ``C+1`` inputs, then ``unroll + 1`` targets.
        unroll: model steps taken before the (last) loss step.
        noise_std: random-walk noise std on the last input velocity.
        backprop_through_unroll: keep gradients through the unroll and average the loss over
            every step (``bptt``); otherwise only the last step is differentiated (pushforward).

    Returns:
        scalar loss.
    """
    c1 = simulator.history + 1
    ground_truth = batch.position                                                      # (N, W, D)
    if ground_truth.shape[1] != c1 + unroll + 1:
        raise ValueError(f"window of {ground_truth.shape[1]} steps, expected {c1 + unroll + 1}")
    kinematic = simulator.is_kinematic(batch.particle_type)
    noise = random_walk_noise(ground_truth[:, :c1], noise_std, kinematic, generator)   # (N, C+1, D)
    history = ground_truth[:, :c1] + noise
    losses = []
    for k in range(unroll + 1):
        with_grad = backprop_through_unroll or k == unroll
        with torch.set_grad_enabled(with_grad and torch.is_grad_enabled()):
            predicted = simulator(batch.with_position(history))                        # (N, D) normalized
        if with_grad:
            next_position = ground_truth[:, c1 + k]
            if k == 0:
                # The target keeps the noise of the last input position: the model learns to
                # correct the noisy *velocity*, not to undo a position offset it cannot see.
                next_position = next_position + noise[:, -1]
            target = simulator.target_normalized_acceleration(history, next_position)
            losses.append(masked_mse(predicted, target, ~kinematic))
        if k < unroll:
            acceleration = simulator.acceleration_normalizer.denormalize(predicted)
            step = integrate(history, acceleration, simulator.bounds, simulator.periodic)
            step = torch.where(kinematic[:, None], ground_truth[:, c1 + k], step)
            if not backprop_through_unroll:
                step = step.detach()
            history = torch.cat([history[:, 1:], step[:, None]], dim=1)
    return torch.stack(losses).mean()


class PushforwardSchedule:
    """Which unroll lengths may be drawn at a given training step, and how likely each is.

    From step ``steps[i]`` on, unroll ``unrolls[i]`` is allowed with relative weight ``probs[i]``.
    """

    def __init__(self, steps: tuple[int, ...], unrolls: tuple[int, ...], probs: tuple[float, ...]) -> None:
        if not (len(steps) == len(unrolls) == len(probs)):
            raise ValueError("pushforward_steps, pushforward_unrolls and pushforward_probs must have equal lengths")
        self.steps, self.unrolls, self.probs = steps, unrolls, probs

    def sample(self, step: int, generator: torch.Generator) -> int:
        allowed = [i for i, s in enumerate(self.steps) if step >= s]
        if not allowed:
            return 0
        weights = torch.tensor([self.probs[i] for i in allowed], dtype=torch.float64)
        choice = int(torch.multinomial(weights, 1, generator=generator))
        return self.unrolls[allowed[choice]]

    @property
    def max_unroll(self) -> int:
        return max(self.unrolls)


def unroll_for(train_config, schedule: PushforwardSchedule, step: int, generator: torch.Generator) -> tuple[int, bool]:
    """Unroll length and whether to backprop through it at ``step``, for ``train_config.loss``."""
    if train_config.loss == "pushforward":
        return schedule.sample(step, generator), False
    if train_config.loss == "bptt":
        return train_config.bptt_steps - 1, True
    return 0, False
