"""The training task of the object domain (:class:`gns.train.task.SimulatorTask` on rigid objects)."""

from __future__ import annotations

import torch

from gns.config import Config
from gns.objects.domain import OBJECTS
from gns.train.task import SimulatorTask

__all__ = ["ObjectTask"]


class ObjectTask(SimulatorTask):
    """Windows, noise and losses for :class:`~gns.train.loop.Trainer` on an object dataset."""

    def __init__(self, config: Config, device: torch.device | str | None = None) -> None:
        super().__init__(config, OBJECTS, device)
