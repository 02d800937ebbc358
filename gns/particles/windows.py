"""Windows of consecutive steps drawn from a lazily read trajectory split."""

from __future__ import annotations

import numpy as np
import torch

from gns.data import TrajectorySplit
from gns.data.windows import WindowIndex
from gns.errors import GnsInputError
from gns.particles.batch import ParticleBatch


class WindowSampler(WindowIndex):
    """Draws ``(trajectory, start)`` windows uniformly over all valid windows of a particle split.

    Args:
        split: the trajectories (read lazily, one window at a time).
        context_size: width of the per-trajectory context the model expects (0: none).
    """

    def __init__(self, split: TrajectorySplit, context_size: int = 0) -> None:
        super().__init__([split.sequence_length(i) for i in range(len(split))], split.path)
        self.split = split
        self.context_size = context_size

    def load(self, items: list[tuple[int, int]], window: int) -> ParticleBatch:
        """Read the windows and concatenate them into one batch (positions ``(N, window, D)``)."""
        positions, types, counts, contexts = [], [], [], []
        for traj, start in items:
            pos = self.split.read_window(traj, start, start + window)             # (W, N, D)
            positions.append(torch.from_numpy(np.ascontiguousarray(pos.transpose(1, 0, 2))))
            ptype = torch.from_numpy(np.asarray(self.split.particle_type(traj), dtype=np.int64))
            types.append(ptype)
            counts.append(ptype.numel())
            if self.context_size:
                ctx = self.split.context(traj)
                if ctx is None or np.asarray(ctx).reshape(-1).shape[0] != self.context_size:
                    raise GnsInputError("trajectory context missing or of the wrong width",
                                        file=self.split.path, key=f"{self.split.keys()[traj]}/context",
                                        expected=self.context_size, found=None if ctx is None else np.shape(ctx))
                contexts.append(torch.as_tensor(np.asarray(ctx, dtype=np.float32).reshape(1, -1)))
        return ParticleBatch(torch.cat(positions), torch.cat(types), torch.tensor(counts),
                             torch.cat(contexts) if contexts else None)
