"""Box geometry shared by neighbour search, features, integration and statistics.

Every function here takes plain tensors and works on any device. A box is given as
``bounds`` of shape ``(D, 2)`` (``[lo, hi]`` per dimension) and ``periodic``, a bool
tensor of shape ``(D,)``. Non-periodic dimensions are left untouched by the periodic
helpers, so callers never branch on the boundary kind.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from gns.errors import GnsInputError


def as_bounds(bounds: Sequence[Sequence[float]] | Tensor, device=None, dtype=torch.float32) -> Tensor:
    """Bounds as a ``(D, 2)`` tensor."""
    b = torch.as_tensor(bounds, dtype=dtype, device=device)
    if b.ndim != 2 or b.shape[1] != 2:
        raise ValueError(f"bounds must have shape (D, 2), found {tuple(b.shape)}")
    if bool((b[:, 1] <= b[:, 0]).any()):
        raise ValueError(f"bounds must satisfy lo < hi in every dimension, found {b.tolist()}")
    return b


def as_periodic(periodic: Sequence[bool] | Tensor | None, dim: int, device=None) -> Tensor:
    """Periodic flags as a ``(D,)`` bool tensor (all False when ``None``)."""
    if periodic is None:
        return torch.zeros(dim, dtype=torch.bool, device=device)
    p = torch.as_tensor(periodic, dtype=torch.bool, device=device).reshape(-1)
    if p.numel() != dim:
        raise ValueError(f"periodic must have {dim} entries, found {p.numel()}")
    return p


def minimum_image(delta: Tensor, bounds: Tensor, periodic: Tensor) -> Tensor:
    """Map displacements to their shortest periodic image.

    Args:
        delta: ``(..., D)`` displacements ``b - a``.
        bounds: ``(D, 2)`` box.
        periodic: ``(D,)`` bool.

    Returns:
        ``(..., D)``: in periodic dimensions each component lies in ``[-L/2, L/2)``;
        other dimensions are returned unchanged.
    """
    if not bool(periodic.any()):
        return delta
    size = (bounds[:, 1] - bounds[:, 0]).to(delta)
    wrapped = delta - size * torch.round(delta / size)
    return torch.where(periodic.to(delta.device), wrapped, delta)


def wrap_positions(position: Tensor, bounds: Tensor, periodic: Tensor) -> Tensor:
    """Wrap positions into the box along periodic dimensions (inverse of unwrapping).

    Args:
        position: ``(..., D)``.

    Returns:
        ``(..., D)`` with periodic components in ``[lo, hi)``.
    """
    if not bool(periodic.any()):
        return position
    lo = bounds[:, 0].to(position)
    size = (bounds[:, 1] - bounds[:, 0]).to(position)
    wrapped = lo + torch.remainder(position - lo, size)
    return torch.where(periodic.to(position.device), wrapped, position)


def unwrap_trajectory(position: Tensor, bounds: Tensor, periodic: Tensor) -> Tensor:
    """Undo periodic wrapping along time so that consecutive frames differ by the minimum image.

    Args:
        position: ``(T, N, D)`` wrapped positions.

    Returns:
        ``(T, N, D)`` continuous positions; ``wrap_positions`` of the result gives back the input.
    """
    if not bool(periodic.any()) or position.shape[0] < 2:
        return position
    steps = minimum_image(position[1:] - position[:-1], bounds, periodic)  # (T-1, N, D)
    return torch.cat([position[:1], position[:1] + torch.cumsum(steps, dim=0)], dim=0)


def finite_differences(position: Tensor, bounds: Tensor, periodic: Tensor) -> tuple[Tensor, Tensor]:
    """Per-step velocities and accelerations of a trajectory (time step absorbed, as in GNS).

    Args:
        position: ``(T, N, D)``.

    Returns:
        velocity ``(T-1, N, D)`` with ``v_t = x_t - x_{t-1}`` (minimum image), and
        acceleration ``(T-2, N, D)`` with ``a_t = v_{t+1} - v_t``.
    """
    velocity = minimum_image(position[1:] - position[:-1], bounds, periodic)
    return velocity, velocity[1:] - velocity[:-1]


def check_mirror_dims(dims: Sequence[int], dim: int, gravity: Sequence[float] | None, key: str) -> None:
    """Refuse reflection dimensions (``train.mirror_dims``, ``model.mirror_average``) that are not distinct
    dimensions of ``dim``-dimensional data, or that gravity has a component along (the physics is not mirror-
    symmetric there).

    Raises:
        GnsInputError: naming ``key``, the expected and the found dimensions.
    """
    if len(set(dims)) != len(dims) or any(not 0 <= int(d) < dim for d in dims):
        raise GnsInputError("mirror dimensions must be distinct dimensions of the data", key=key,
                            expected=f"distinct integers in [0, {dim})", found=list(dims))
    if gravity is not None and any(float(gravity[int(d)]) != 0.0 for d in dims):
        raise GnsInputError("gravity has a component along a mirrored dimension: the data is not symmetric there",
                            key=key, expected="dimensions with zero gravity",
                            found={int(d): float(gravity[int(d)]) for d in dims})
