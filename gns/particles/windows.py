"""Windows of consecutive steps drawn from a lazily read trajectory split."""

from __future__ import annotations

import numpy as np
import torch

from gns.data import TrajectorySplit
from gns.errors import GnsInputError
from gns.particles.batch import ParticleBatch


class WindowSampler:
    """Draws ``(trajectory, start)`` windows uniformly over all valid windows of a split.

    Args:
        split: the trajectories (read lazily, one window at a time).
        context_size: width of the per-trajectory context the model expects (0: none).
    """

    def __init__(self, split: TrajectorySplit, context_size: int = 0) -> None:
        if len(split) == 0:
            raise GnsInputError("split holds no trajectories", file=split.path)
        self.split = split
        self.context_size = context_size
        self.lengths = np.array([split.sequence_length(i) for i in range(len(split))])

    def _windows_per_trajectory(self, window: int) -> np.ndarray:
        counts = np.maximum(self.lengths - window + 1, 0)
        if counts.sum() == 0:
            raise GnsInputError(f"no trajectory is long enough for a window of {window} steps",
                                file=self.split.path, expected=f">= {window} steps",
                                found=f"at most {int(self.lengths.max())}")
        return counts

    def sample_items(self, batch_size: int, window: int, generator: torch.Generator) -> list[tuple[int, int]]:
        """``batch_size`` random ``(trajectory, start)`` pairs."""
        counts = self._windows_per_trajectory(window)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        flat = torch.randint(int(offsets[-1]), (batch_size,), generator=generator).tolist()
        items = []
        for f in flat:
            traj = int(np.searchsorted(offsets, f, side="right") - 1)
            items.append((traj, int(f - offsets[traj])))
        return items

    def fixed_items(self, count: int, window: int, seed: int = 1234) -> list[tuple[int, int]]:
        """A reproducible set of windows (for validation)."""
        return self.sample_items(count, window, torch.Generator().manual_seed(seed))

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
