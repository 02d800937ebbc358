"""Semi-implicit Euler on per-step quantities, beside its inverse.

Positions are sampled every ``dt``; as in GNS the time step is absorbed into velocity
(``v_t = x_t - x_{t-1}``) and acceleration (``a_t = v_{t+1} - v_t``), so

    v_{t+1} = v_t + a_t,        x_{t+1} = x_t + v_{t+1}

and the inverse recovers ``a_t`` from three consecutive positions. Periodic boxes use the
minimum image for every difference and wrap the new position back into the box.
"""

from __future__ import annotations

from torch import Tensor

from gns.geometry import minimum_image, wrap_positions


def integrate(position_seq: Tensor, acceleration: Tensor, bounds: Tensor, periodic: Tensor) -> Tensor:
    """Next position from the history and a per-step acceleration.

    Args:
        position_seq: ``(N, W, D)`` positions, last column most recent (``W >= 2``).
        acceleration: ``(N, D)`` per-step acceleration.
        bounds: ``(D, 2)``; periodic: ``(D,)`` bool.

    Returns:
        ``(N, D)`` next position (wrapped into the box in periodic dimensions).
    """
    last = position_seq[:, -1]
    velocity = minimum_image(last - position_seq[:, -2], bounds, periodic)
    return wrap_positions(last + velocity + acceleration, bounds, periodic)


def inverse_integrate(position_seq: Tensor, next_position: Tensor, bounds: Tensor, periodic: Tensor) -> Tensor:
    """The acceleration that :func:`integrate` needs to reach ``next_position``.

    Args:
        position_seq: ``(N, W, D)``; next_position: ``(N, D)``.

    Returns:
        ``(N, D)`` per-step acceleration.
    """
    last = position_seq[:, -1]
    velocity = minimum_image(last - position_seq[:, -2], bounds, periodic)
    next_velocity = minimum_image(next_position - last, bounds, periodic)
    return next_velocity - velocity
