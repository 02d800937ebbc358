"""The training task of the particle domain (:class:`gns.train.task.SimulatorTask` on particles)."""

from __future__ import annotations

import torch

from gns.config import Config
from gns.particles.domain import PARTICLES
from gns.train.task import SimulatorTask


class ParticleTask(SimulatorTask):
    """Windows, noise and losses for :class:`~gns.train.loop.Trainer` on a particle dataset."""

    def __init__(self, config: Config, device: torch.device | str | None = None) -> None:
        super().__init__(config, PARTICLES, device)
