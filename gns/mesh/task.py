"""The training task of the mesh domain (:class:`gns.train.task.SimulatorTask` on meshes)."""

from __future__ import annotations

import torch

from gns.config import Config
from gns.mesh.domain import MESH
from gns.train.task import SimulatorTask


class MeshTask(SimulatorTask):
    """Windows, noise and losses for :class:`~gns.train.loop.Trainer` on a mesh dataset."""

    def __init__(self, config: Config, device: torch.device | str | None = None) -> None:
        super().__init__(config, MESH, device)
