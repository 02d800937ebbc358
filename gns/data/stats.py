"""Normalization statistics of per-step velocities and accelerations.

Definitions (DeepMind ``learning_to_simulate`` / LagrangeBench): with positions ``x_t``,
``v_t = x_t - x_{t-1}`` (minimum image along periodic dimensions, so a particle crossing the
box edge moves by its true small step, not by ``L``) and ``a_t = v_{t+1} - v_t``. Means and
standard deviations are per dimension over *all* particles, steps and trajectories, kinematic
(boundary) particles included: that is how the published metadata was made, and it keeps the
statistics a property of the data alone rather than of a choice of particle types. Standard
deviations are population ones (``ddof=0``).

The accumulation is streaming (one block of frames at a time, merged with Chan et al.'s
parallel update in float64), so memory stays bounded by one block however long the dataset.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch

from gns.data.hdf5 import Trajectory, TrajectorySplit
from gns.geometry import as_bounds, as_periodic, finite_differences

# Frames read at once from a split file: bounds memory for long trajectories.
_BLOCK_FRAMES = 512


class _RunningMoments:
    """Per-dimension count, mean and sum of squared deviations (M2), mergeable."""

    def __init__(self, dim: int) -> None:
        self.count = 0
        self.mean = np.zeros(dim, dtype=np.float64)
        self.m2 = np.zeros(dim, dtype=np.float64)

    def add(self, samples: np.ndarray) -> None:
        """Merge a batch of samples of shape ``(..., D)``."""
        samples = samples.reshape(-1, samples.shape[-1])
        n = samples.shape[0]
        if n == 0:
            return
        batch_mean = samples.mean(axis=0)
        batch_m2 = ((samples - batch_mean) ** 2).sum(axis=0)
        total = self.count + n
        delta = batch_mean - self.mean
        # Chan et al.: exact merge of two partial (mean, M2) without catastrophic cancellation.
        self.m2 += batch_m2 + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.count = total

    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / self.count) if self.count else np.full_like(self.mean, np.nan)


class StatisticsAccumulator:
    """Streaming velocity/acceleration statistics: feed position blocks, read the result.

    Call ``start_trajectory`` before each trajectory, then ``add_positions`` with consecutive
    blocks of its frames (any block sizes); blocks are stitched so every velocity and
    acceleration is counted exactly once.
    """

    def __init__(self, bounds: Sequence[Sequence[float]], periodic: Sequence[bool] | None) -> None:
        self.bounds = as_bounds(bounds, dtype=torch.float64)
        dim = self.bounds.shape[0]
        self.periodic = as_periodic(periodic, dim)
        self.velocity = _RunningMoments(dim)
        self.acceleration = _RunningMoments(dim)
        self._tail: np.ndarray | None = None  # last two frames seen of the current trajectory

    def start_trajectory(self) -> None:
        """Forget the previous trajectory's last frames."""
        self._tail = None

    def add_positions(self, position: np.ndarray) -> None:
        """Add the next consecutive frames ``(T_block, N, D)`` of the current trajectory."""
        position = np.asarray(position, dtype=np.float64)
        if self._tail is not None:
            position = np.concatenate([self._tail, position], axis=0)  # (2 + T_block, N, D)
        # The carried two frames already contributed their one velocity: skip it below.
        skip = 1 if self._tail is not None and len(self._tail) == 2 else 0
        self._tail = position[-2:]
        if position.shape[0] < 2:
            return
        velocity, acceleration = finite_differences(torch.from_numpy(position), self.bounds,
                                                    self.periodic)
        self.velocity.add(velocity[skip:].numpy())
        self.acceleration.add(acceleration.numpy())

    def result(self) -> dict[str, list[float]]:
        """``vel_mean``, ``vel_std``, ``acc_mean``, ``acc_std`` as lists of D floats."""
        if self.acceleration.count == 0:
            raise ValueError("statistics need at least one trajectory with 3 or more frames")
        return {
            "vel_mean": self.velocity.mean.tolist(),
            "vel_std": self.velocity.std().tolist(),
            "acc_mean": self.acceleration.mean.tolist(),
            "acc_std": self.acceleration.std().tolist(),
        }


def compute_statistics(trajectories: Iterable[Trajectory] | TrajectorySplit,
                       bounds: Sequence[Sequence[float]],
                       periodic: Sequence[bool] | None) -> dict[str, list[float]]:
    """Velocity and acceleration mean/std per dimension, streaming one trajectory at a time.

    Args:
        trajectories: a ``TrajectorySplit`` (read in blocks of frames, never whole) or any
            iterable of ``Trajectory``.
        bounds: ``(D, 2)`` box, used for the minimum image along periodic dimensions.
        periodic: ``(D,)`` periodic flags (None: no periodic dimension).

    Returns:
        ``{"vel_mean", "vel_std", "acc_mean", "acc_std"}``, each a list of D floats.
    """
    acc = StatisticsAccumulator(bounds, periodic)
    if isinstance(trajectories, TrajectorySplit):
        for i in range(len(trajectories)):
            acc.start_trajectory()
            num_frames = trajectories.sequence_length(i)
            for start in range(0, num_frames, _BLOCK_FRAMES):
                acc.add_positions(trajectories.read_window(i, start,
                                                           min(start + _BLOCK_FRAMES, num_frames)))
    else:
        for traj in trajectories:
            acc.start_trajectory()
            acc.add_positions(traj.position)
    return acc.result()
