"""A batch of particle systems: several graphs concatenated along the particle axis."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass
class ParticleBatch:
    """Windows of positions for ``B`` particle systems, concatenated.

    Attributes:
        position: ``(N, W, D)`` positions over a window of ``W`` steps (oldest first).
        particle_type: ``(N,)`` int64.
        n_particles: ``(B,)`` int64 particles per system (systems are contiguous).
        context: ``(B, G)`` per-system context (material parameters), or ``None``.
    """

    position: Tensor
    particle_type: Tensor
    n_particles: Tensor
    context: Tensor | None = None

    @property
    def batch(self) -> Tensor:
        """``(N,)`` system id of every particle."""
        return torch.repeat_interleave(torch.arange(self.n_particles.numel(), device=self.position.device),
                                       self.n_particles.to(self.position.device))

    @property
    def num_systems(self) -> int:
        return int(self.n_particles.numel())

    def to(self, device: torch.device | str) -> "ParticleBatch":
        return ParticleBatch(self.position.to(device), self.particle_type.to(device), self.n_particles.to(device),
                             None if self.context is None else self.context.to(device))

    def with_position(self, position: Tensor) -> "ParticleBatch":
        return replace(self, position=position)

    @staticmethod
    def concat(parts: list["ParticleBatch"]) -> "ParticleBatch":
        ctx = [p.context for p in parts]
        return ParticleBatch(
            torch.cat([p.position for p in parts]), torch.cat([p.particle_type for p in parts]),
            torch.cat([p.n_particles for p in parts]),
            None if any(c is None for c in ctx) else torch.cat(ctx))
