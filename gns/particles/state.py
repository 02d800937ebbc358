"""The state of particle systems: a window of positions per particle (:class:`ParticleState`)."""

from __future__ import annotations

from torch import Tensor

from gns.state import State

__all__ = ["ParticleState", "ParticleBatch"]


class ParticleState(State):
    """Windows of positions for ``B`` particle systems, concatenated (a :class:`gns.state.State`).

    Args:
        position: ``(N, W, D)`` positions over a window of ``W`` steps (oldest first): field ``"position"``.
        particle_type: ``(N,)`` int64: attribute ``"particle_type"``.
        n_particles: ``(B,)`` int64 particles per system (systems are contiguous).
        context: ``(B, G)`` per-system context (material parameters), or ``None``: system attribute ``"context"``.
    """

    def __init__(self, position: Tensor, particle_type: Tensor, n_particles: Tensor,
                 context: Tensor | None = None) -> None:
        super().__init__(fields={"position": position}, static={"particle_type": particle_type}, n=n_particles,
                         system={} if context is None else {"context": context})

    @property
    def position(self) -> Tensor:
        """``(N, W, D)``."""
        return self.fields["position"]

    @property
    def particle_type(self) -> Tensor:
        """``(N,)`` int64."""
        return self.static["particle_type"]

    @property
    def n_particles(self) -> Tensor:
        """``(B,)`` int64."""
        return self.n

    @property
    def context(self) -> Tensor | None:
        """``(B, G)`` or None."""
        return self.system.get("context")

    def with_position(self, position: Tensor) -> "ParticleState":
        return self.with_field("position", position)


# The name of the 0.1 API.
ParticleBatch = ParticleState
