"""Windows of a particle split as :class:`~gns.particles.state.ParticleState` s."""

from __future__ import annotations

import numpy as np
import torch

from gns.data import TrajectorySplit
from gns.data.windows import WindowSampler
from gns.errors import GnsInputError
from gns.geometry import as_bounds, as_periodic, finite_differences
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
        self.impact_threshold: float | None = None     # :meth:`impacts`; set by the training task
        self._impacts: np.ndarray | None = None

    def impacts(self) -> np.ndarray:
        """``(I, 2)`` int64 ``(trajectory, step)`` of every step in which some particle that is not kinematic
        accelerates by more than ``impact_threshold`` training standard deviations in some dimension (the
        acceleration that takes frame ``step`` to ``step + 1``, ``x[step + 1] - 2 x[step] + x[step - 1]``, over
        the metadata's ``acc_std``; displacements across a periodic boundary unwrapped): water hitting a wall or
        itself. Read once, cached.

        Raises:
            GnsInputError: no threshold set, or metadata without ``acc_std``.
        """
        if self._impacts is None:
            meta = getattr(self.split, "metadata", None)
            if self.impact_threshold is None or meta is None or meta.acc_std is None:
                raise GnsInputError("particle impacts need train.impact_threshold and the metadata's acc_std",
                                    file=self.path, key="train.impact_threshold / acc_std",
                                    expected="a threshold and (D,) acc_std",
                                    found=(self.impact_threshold, None if meta is None else meta.acc_std))
            std = np.asarray(meta.acc_std, dtype=np.float64)
            bounds = as_bounds(meta.bounds, dtype=torch.float64)
            periodic = as_periodic(meta.periodic_boundary_conditions, len(std))
            kinematic = list(meta.kinematic_particle_types)
            rows = []
            for i in range(len(self.split)):
                x = self.split.read_window(i, 0, self.split.sequence_length(i)).astype(np.float64)   # (T, N, D)
                x = torch.from_numpy(x[:, ~np.isin(self.split.particle_type(i), kinematic)])
                acceleration = np.abs(finite_differences(x, bounds, periodic)[1].numpy()) / std  # (T-2, M, D)
                hit = acceleration.reshape(len(acceleration), -1).max(1, initial=0.0) > self.impact_threshold
                steps = np.flatnonzero(hit) + 1
                rows.append(np.stack([np.full_like(steps, i), steps], 1))
            self._impacts = np.concatenate(rows) if rows else np.zeros((0, 2), np.int64)
        return self._impacts

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

