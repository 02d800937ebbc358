"""Feature normalizers, each with its inverse beside it.

* :class:`Normalizer` uses fixed dataset statistics. For GNS the velocity and acceleration
  stds are *inflated by the training noise*, ``sqrt(std^2 + noise_std^2)``
  (:func:`inflate_std`), as in Sanchez-Gonzalez et al. 2020: the noise is part of what the
  network sees, so the scale it normalizes by includes it.
* :class:`OnlineNormalizer` accumulates mean and std from the data it sees during training
  (MeshGraphNets' normalizer), up to ``max_accumulations`` batches, then freezes. In data-parallel
  training (:meth:`OnlineNormalizer.synchronize`) every batch adds the rows of every rank, so the
  statistics, and hence the normalization, are the same on every rank.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn


def inflate_std(std: Tensor | Sequence[float], noise_std: float) -> Tensor:
    """``sqrt(std^2 + noise_std^2)`` per feature."""
    std = torch.as_tensor(std, dtype=torch.float32)
    return torch.sqrt(std**2 + noise_std**2)


class Normalizer(nn.Module):
    """``(x - mean) / std`` with fixed statistics (stored as buffers, so they travel in checkpoints).

    Args:
        mean: ``(F,)`` per-feature mean.
        std: ``(F,)`` per-feature std (must be > 0).
    """

    def __init__(self, mean: Tensor | Sequence[float], std: Tensor | Sequence[float]) -> None:
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32)
        std = torch.as_tensor(std, dtype=torch.float32)
        if mean.shape != std.shape:
            raise ValueError(f"mean {tuple(mean.shape)} and std {tuple(std.shape)} differ in shape")
        if not bool(torch.isfinite(mean).all() & torch.isfinite(std).all()) or bool((std <= 0).any()):
            raise ValueError(f"statistics must be finite with std > 0, found mean={mean.tolist()} std={std.tolist()}")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def normalize(self, x: Tensor) -> Tensor:
        """``(*, F) -> (*, F)``."""
        return (x - self.mean) / self.std

    def denormalize(self, x: Tensor) -> Tensor:
        """Inverse of :meth:`normalize`."""
        return x * self.std + self.mean


class OnlineNormalizer(nn.Module):
    """Normalizer whose statistics are accumulated from training data.

    Each call of :meth:`accumulate` adds a batch; statistics stop changing after
    ``max_accumulations`` calls. ``std`` is floored at ``std_epsilon`` so that constant
    features do not blow up.

    Args:
        size: feature width ``F``.
        max_accumulations: number of batches after which the statistics freeze.
        std_epsilon: lower bound of the std.
    """

    def __init__(self, size: int, max_accumulations: int = 10**6, std_epsilon: float = 1e-8) -> None:
        super().__init__()
        self.max_accumulations = max_accumulations
        self.std_epsilon = std_epsilon
        # float64 sums: millions of accumulated rows would lose precision in float32.
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("num_accumulations", torch.zeros((), dtype=torch.int64))
        self.register_buffer("sum", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("sum_squared", torch.zeros(size, dtype=torch.float64))
        self.group: dist.ProcessGroup | None = None   # ranks whose rows every accumulation adds (None: this one)

    def synchronize(self, group: "dist.ProcessGroup | None") -> None:
        """Make every :meth:`accumulate` add the rows of all ranks of ``group`` (``None``: this process's only).

        Each accumulation then all-reduces the batch's sums and row count (one collective, float64),
        so the statistics stay equal on every rank; one accumulation counts as one batch towards
        ``max_accumulations`` however many ranks contributed. Every rank of ``group`` must call
        :meth:`accumulate` as often and in the same order (the training loop does: the ranks take the
        same number of model steps at every training step).
        """
        self.group = group

    @torch.no_grad()
    def accumulate(self, x: Tensor) -> None:
        """Add the rows of ``x`` ``(*, F)`` to the statistics (ignored once frozen)."""
        if int(self.num_accumulations) >= self.max_accumulations:
            return
        flat = x.detach().reshape(-1, x.shape[-1]).to(torch.float64)                 # (R, F)
        moments = torch.cat([flat.sum(0), (flat**2).sum(0), flat.new_full((1,), flat.shape[0])])  # (2F + 1,)
        if self.group is not None:
            dist.all_reduce(moments, group=self.group)
        size = flat.shape[-1]
        self.sum += moments[:size].to(self.sum)
        self.sum_squared += moments[size:2 * size].to(self.sum)
        self.count += moments[-1].to(self.count)
        self.num_accumulations += 1

    @property
    def mean(self) -> Tensor:
        return (self.sum / self.count.clamp(min=1)).to(torch.float32)

    @property
    def std(self) -> Tensor:
        mean = self.sum / self.count.clamp(min=1)
        var = (self.sum_squared / self.count.clamp(min=1) - mean**2).clamp(min=0)
        return torch.sqrt(var).clamp(min=self.std_epsilon).to(torch.float32)

    def normalize(self, x: Tensor, accumulate: bool = False) -> Tensor:
        """``(*, F) -> (*, F)``; with ``accumulate`` (training) the batch is added first."""
        if accumulate:
            self.accumulate(x)
        return (x - self.mean.to(x)) / self.std.to(x)

    def denormalize(self, x: Tensor) -> Tensor:
        """Inverse of :meth:`normalize`."""
        return x * self.std.to(x) + self.mean.to(x)
