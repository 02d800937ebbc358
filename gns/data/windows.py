"""Windows of consecutive frames drawn from a split, whatever the domain.

:class:`WindowIndex` draws ``(trajectory, start)`` pairs; :class:`WindowSampler` adds reading:
a domain implements :meth:`WindowSampler.read` (one trajectory's frames as a one-system
:class:`gns.state.State`) and gets batches of windows (:meth:`WindowSampler.load`) for training
and whole trajectories for evaluation.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from gns.errors import GnsInputError
from gns.state import State


class WindowIndex:
    """All windows of ``window`` consecutive frames in trajectories of the given lengths.

    Every valid window is equally likely, so long trajectories are drawn more often than short
    ones, as when the whole split is flattened into windows.

    Args:
        num_frames: frames of each trajectory.
        path: the split's file, named in errors.
    """

    def __init__(self, num_frames: Sequence[int], path: str | os.PathLike | None = None) -> None:
        if len(num_frames) == 0:
            raise GnsInputError("split holds no trajectories", file=path)
        self.lengths = np.asarray(num_frames, dtype=np.int64)
        self.path = path

    def _windows_per_trajectory(self, window: int) -> np.ndarray:
        counts = np.maximum(self.lengths - window + 1, 0)
        if counts.sum() == 0:
            raise GnsInputError(f"no trajectory is long enough for a window of {window} steps",
                                file=self.path, expected=f">= {window} steps",
                                found=f"at most {int(self.lengths.max())}")
        return counts

    def sample_items(self, batch_size: int, window: int, generator: torch.Generator, early_frames: int = 0,
                     early_fraction: float = 0.0) -> list[tuple[int, int]]:
        """``batch_size`` random ``(trajectory, start)`` pairs.

        Every window is equally likely, unless ``early_fraction`` > 0: then each pair is, with that
        probability, drawn from the windows that start in the first ``early_frames`` frames of a
        trajectory chosen uniformly (the start-up from the initial state, e.g. a flag released from
        rest, which uniform sampling visits rarely although every rollout from a first frame goes
        through it). With ``early_fraction`` = 0 no extra random numbers are drawn.
        """
        if not 0.0 <= early_fraction <= 1.0 or early_frames < 0:
            raise GnsInputError("train.early_fraction must be in [0, 1] and train.early_frames >= 0",
                                key="train.early_fraction/early_frames", expected="[0, 1] / >= 0",
                                found=f"{early_fraction} / {early_frames}")
        counts = self._windows_per_trajectory(window)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        flat = torch.randint(int(offsets[-1]), (batch_size,), generator=generator).tolist()
        items = []
        for f in flat:
            traj = int(np.searchsorted(offsets, f, side="right") - 1)
            items.append((traj, int(f - offsets[traj])))
        if early_fraction > 0 and early_frames > 0:
            early = torch.rand(batch_size, generator=generator) < early_fraction
            eligible = np.flatnonzero(counts > 0)
            picks = torch.randint(len(eligible), (batch_size,), generator=generator).tolist()
            starts = torch.rand(batch_size, generator=generator).tolist()
            for k in np.flatnonzero(early.numpy()):
                traj = int(eligible[picks[k]])
                span = min(early_frames, int(counts[traj]))
                items[k] = (traj, min(int(starts[k] * span), span - 1))
        return items

    def fixed_items(self, count: int, window: int, seed: int = 1234) -> list[tuple[int, int]]:
        """A reproducible set of windows (for validation)."""
        return self.sample_items(count, window, torch.Generator().manual_seed(seed))

    def impacts(self) -> np.ndarray:
        """``(I, 2)`` int64 ``(trajectory, step)``: the steps (frame ``step`` to ``step + 1``) the domain marks as
        impacts, for :meth:`with_impacts`. A domain's sampler that can tell them apart implements this.

        Raises:
            GnsInputError: this data has no impacts to draw.
        """
        raise GnsInputError("this domain's training windows mark no impacts", file=self.path,
                            key="train.impact_fraction", expected=0.0, found="> 0")

    def with_impacts(self, items: list[tuple[int, int]], window: int, generator: torch.Generator,
                     fraction: float) -> list[tuple[int, int]]:
        """``items`` with each pair, with probability ``fraction``, replaced by a window whose scored step (from its
        last-but-one frame to its last) is one of :meth:`impacts`, drawn uniformly among those a window of
        ``window`` frames fits. Impacts are a few percent of the steps, and a loss that sees them that rarely
        learns them last (objects: collisions; particles: water hitting a wall). With ``fraction`` = 0 no
        random numbers are drawn."""
        if fraction <= 0:
            return items
        impacts = self.impacts()
        first = impacts[:, 1] - (window - 2)                                 # the window's first frame
        fits = (first >= 0) & (impacts[:, 1] + 1 < self.lengths[impacts[:, 0]])
        impacts, first = impacts[fits], first[fits]
        chosen = torch.rand(len(items), generator=generator) < fraction
        picks = torch.randint(max(len(impacts), 1), (len(items),), generator=generator).tolist()
        items = list(items)
        if len(impacts):
            for k in np.flatnonzero(chosen.numpy()):
                items[k] = (int(impacts[picks[k], 0]), int(first[picks[k]]))
        return items


class WindowSampler(WindowIndex):
    """A :class:`WindowIndex` over a split that also reads its windows as states.

    Subclasses implement :meth:`read` and set ``num_frames``-per-trajectory through the
    :class:`WindowIndex` constructor.
    """

    def read(self, index: int, start: int, stop: int) -> State:
        """Frames ``[start, stop)`` of trajectory ``index`` as a one-system state."""
        raise NotImplementedError

    def num_frames(self, index: int) -> int:
        """Frames of trajectory ``index``."""
        return int(self.lengths[index])

    def load(self, items: Sequence[tuple[int, int]], window: int) -> State:
        """Read the windows ``(trajectory, start)`` of ``window`` frames and batch them."""
        parts = [self.read(traj, start, start + window) for traj, start in items]
        return type(parts[0]).concat(parts)
