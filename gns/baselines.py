"""Baseline steppers shared by every domain: persistence and constant velocity.

Both are :class:`gns.rollout.Stepper` s, so they roll out through the same driver as the learned
simulators and are scored by the same evaluator (:mod:`gns.evaluate`). They know no physics
beyond "nothing changes" and "everything keeps its last per-step velocity"; a domain with a better
physical baseline (particles: gravity only) writes its own beside them.
"""

from __future__ import annotations

from typing import Callable, Sequence

from torch import Tensor

from gns.state import State

__all__ = ["Persistence", "ConstantVelocity"]


class Persistence:
    """Every field keeps its last value (MeshGraphNets' baseline).

    Args:
        fields: the fields it predicts (and reads, one frame of each).
        held: the simulator's held-entity mask (those entities follow their prescribed values).
    """

    window = 1
    input_fields = ()

    def __init__(self, fields: Sequence[str], held: Callable[[State], Tensor]) -> None:
        self.state_fields = self.predicted_fields = tuple(fields)
        self._held = held

    def held(self, state: State) -> Tensor:
        return self._held(state)

    def predict_next(self, state: State) -> dict[str, Tensor]:
        """Field -> ``(N, F)``: the last frame of each field."""
        return {name: state.fields[name][:, -1] for name in self.predicted_fields}


class ConstantVelocity:
    """Second-order fields (positions, angles) move on with their last per-step change:
    ``x_{t+1} = 2 x_t - x_{t-1}``.

    Args:
        fields: the field, or fields, it predicts (and reads, two frames of each).
        held: the simulator's held-entity mask (those entities follow their prescribed values).
    """

    window = 2
    input_fields = ()

    def __init__(self, fields: str | Sequence[str], held: Callable[[State], Tensor]) -> None:
        self.state_fields = self.predicted_fields = (fields,) if isinstance(fields, str) else tuple(fields)
        self._held = held

    def held(self, state: State) -> Tensor:
        return self._held(state)

    def predict_next(self, state: State) -> dict[str, Tensor]:
        """Field -> ``(N, F)``: the last frame moved on by the last per-step change."""
        out = {}
        for name in self.predicted_fields:
            seq = state.fields[name]
            out[name] = 2 * seq[:, -1] - seq[:, -2]
        return out
