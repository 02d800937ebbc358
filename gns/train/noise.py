"""Training noise: a random walk on the velocity history (Sanchez-Gonzalez et al. 2020).

Each of the ``C`` input velocities gets independent Gaussian increments of std
``noise_std / sqrt(C)``, accumulated along time, so the *last* velocity's noise has std
``noise_std``. Positions get the running sum of the velocity noise (the oldest position is
left clean), so the noisy velocities are exactly the finite differences of the noisy
positions. Kinematic particles get no noise: their positions are prescribed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gns.config import WATERDROP_MEAN_VEL_STD, WATERDROP_NOISE_STD


def default_noise_std(vel_std: list[float]) -> float:
    """6.7e-4 on WaterDrop, scaled by this dataset's mean velocity std relative to WaterDrop's."""
    mean_std = sum(vel_std) / len(vel_std)
    return WATERDROP_NOISE_STD * mean_std / WATERDROP_MEAN_VEL_STD


def random_walk_noise(position_seq: Tensor, noise_std: float, kinematic: Tensor | None = None,
                      generator: torch.Generator | None = None) -> Tensor:
    """Position noise for a history of ``C + 1`` positions.

    Args:
        position_seq: ``(N, C+1, D)`` positions (only the shape, device and dtype are used).
        noise_std: std of the noise on the last velocity.
        kinematic: ``(N,)`` bool, particles to leave noise-free.
        generator: source of randomness (on the same device as ``position_seq``).

    Returns:
        ``(N, C+1, D)`` noise to add to ``position_seq``; column 0 is zero.
    """
    n, w, d = position_seq.shape
    c = w - 1
    increments = torch.randn((n, c, d), generator=generator, device=position_seq.device,
                             dtype=position_seq.dtype) * (noise_std / c**0.5)
    velocity_noise = torch.cumsum(increments, dim=1)                                  # (N, C, D)
    position_noise = torch.cat([torch.zeros_like(velocity_noise[:, :1]),
                                torch.cumsum(velocity_noise, dim=1)], dim=1)          # (N, C+1, D)
    if kinematic is not None:
        position_noise = position_noise * (~kinematic).to(position_noise.dtype)[:, None, None]
    return position_noise
