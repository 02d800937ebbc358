"""Second-order integration of positions and angles on per-step quantities, beside its inverse.

As for particles (:mod:`gns.particles.integrate`) the time step is absorbed into the velocity
(``v_t = x_t - x_{t-1}``) and the acceleration (``a_t = v_{t+1} - v_t``), for each pose field
alike (the centre of mass and the angle of a rigid object)::

    v_{t+1} = v_t + a_t,        x_{t+1} = x_t + v_{t+1}

and the inverse recovers ``a_t`` from three consecutive frames. The box has no periodic
dimension and angles are unwrapped, so no difference needs a minimum image.
"""

from __future__ import annotations

from typing import Mapping

from torch import Tensor

__all__ = ["integrate", "inverse_integrate"]


def integrate(history: Mapping[str, Tensor], acceleration: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The next frame of every field of ``acceleration``.

    Args:
        history: field -> ``(N, W, F)`` frames, last most recent (``W >= 2``).
        acceleration: field -> ``(N, F)`` per-step acceleration.

    Returns:
        field -> ``(N, F)`` next frame.
    """
    out = {}
    for name, a in acceleration.items():
        seq = history[name]
        last = seq[:, -1]
        out[name] = last + (last - seq[:, -2]) + a
    return out


def inverse_integrate(history: Mapping[str, Tensor], next_frames: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The per-step acceleration :func:`integrate` needs to reach ``next_frames``.

    Args:
        history: field -> ``(N, W, F)``; next_frames: field -> ``(N, F)``.

    Returns:
        field -> ``(N, F)`` per-step acceleration.
    """
    out = {}
    for name, nxt in next_frames.items():
        seq = history[name]
        last = seq[:, -1]
        out[name] = (nxt - last) - (last - seq[:, -2])
    return out
