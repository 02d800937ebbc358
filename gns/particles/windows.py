"""Windows of a particle split as :class:`~gns.particles.state.ParticleState` s."""

from __future__ import annotations

import numpy as np
import torch

from gns.data import TrajectorySplit
from gns.data.windows import WindowSampler
from gns.errors import GnsInputError
from gns.particles.state import ParticleState


class ParticleWindows(WindowSampler):
    """Windows of a particle split, drawn uniformly over all valid windows (read lazily).

    Args:
        split: the trajectories.
        context_size: width of the per-trajectory context the model expects (0: none).
    """

    def __init__(self, split: TrajectorySplit, context_size: int = 0) -> None:
        super().__init__([split.sequence_length(i) for i in range(len(split))], split.path)
        self.split = split
        self.context_size = context_size

    def keys(self) -> list[str]:
        return self.split.keys()

    def read(self, index: int, start: int, stop: int) -> ParticleState:
        """Positions ``(N, stop - start, D)`` of trajectory ``index``, its types and context."""
        pos = self.split.read_window(index, start, stop)                                  # (W, N, D)
        position = torch.from_numpy(np.ascontiguousarray(pos.transpose(1, 0, 2)))
        ptype = torch.from_numpy(np.asarray(self.split.particle_type(index), dtype=np.int64))
        context = None
        if self.context_size:
            ctx = self.split.context(index)
            if ctx is None or np.asarray(ctx).reshape(-1).shape[0] != self.context_size:
                raise GnsInputError("trajectory context missing or of the wrong width", file=self.split.path,
                                    key=f"{self.split.keys()[index]}/context", expected=self.context_size,
                                    found=None if ctx is None else np.shape(ctx))
            context = torch.as_tensor(np.asarray(ctx, dtype=np.float32).reshape(1, -1))
        return ParticleState(position, ptype, torch.tensor([ptype.numel()]), context)

