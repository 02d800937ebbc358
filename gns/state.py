"""The state protocol every domain implements: a batch of systems of entities with a time window.

A :class:`State` holds ``B`` independent systems (trajectories, or counterfactual variants of
one), their entities (particles, mesh nodes, objects, slots) concatenated along the first axis,
the entities of system ``b`` contiguous. Its tensors come in four parts, each a dict from name
to tensor:

* ``fields``: ``(N, W, F)`` dynamic per-entity values over a window of ``W`` frames, oldest
  first (particle positions; cloth world positions and wind; flow velocity and pressure);
* ``static``: ``(N, ...)`` per-entity attributes that do not change in time (particle type,
  mesh-space coordinates, node type, an object's mass);
* ``system``: ``(B, ...)`` per-system attributes (a material context);
* ``links``: ``(K, E)`` int64 tuples of entity indices inside one system, indexing the batch's
  entities (mesh edges ``(2, E)``, triangles ``(3, C)``, springs between objects), and
  ``link_values``: ``(E, F)`` per-link values of some of them (a spring's rest length, stiffness
  and damping), which follow their links through every operation;

plus ``n``, ``(B,)`` int64 entities per system. Every batching operation is written here once,
for every domain: :meth:`State.select` (keep entities; links that lose an entity are
dropped), :meth:`State.concat` and :meth:`State.repeat` (systems of different sizes in one
batch), :meth:`State.extend` (entities added to a system), :meth:`State.take_systems` and
:meth:`State.split`, :meth:`State.window` and :meth:`State.shift` (the history window) and
:func:`hold` (entities with prescribed values).
Domains subclass :class:`State` with a constructor and named accessors
(:class:`gns.particles.state.ParticleState`, :class:`gns.mesh.state.MeshState`); the generic
operations return the same subclass.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence, TypeVar

import torch
from torch import Tensor

__all__ = ["State", "hold"]

_S = TypeVar("_S", bound="State")


class State:
    """``B`` systems of entities with a window of dynamic fields (see the module docstring).

    Args:
        fields: name -> ``(N, W, F)``; every field has the same ``W``.
        static: name -> ``(N, ...)``.
        system: name -> ``(B, ...)``.
        links: name -> ``(K, E)`` int64 entity indices (each tuple inside one system).
        n: ``(B,)`` int64 entities per system.
        link_values: link name -> ``(E, F)`` values of each of its links.

    Raises:
        ValueError: values of a link that is not there, or of another number of links.
    """

    def __init__(self, *, fields: Mapping[str, Tensor], n: Tensor, static: Mapping[str, Tensor] | None = None,
                 system: Mapping[str, Tensor] | None = None, links: Mapping[str, Tensor] | None = None,
                 link_values: Mapping[str, Tensor] | None = None) -> None:
        self.fields = dict(fields)
        self.static = dict(static or {})
        self.system = dict(system or {})
        self.links = dict(links or {})
        self.link_values = dict(link_values or {})
        for name, values in self.link_values.items():
            if name not in self.links or values.shape[0] != self.links[name].shape[1]:
                raise ValueError(f"link values '{name}' of shape {tuple(values.shape)} do not match the links "
                                 f"{tuple(self.links[name].shape) if name in self.links else 'none'}")
        self.n = torch.as_tensor(n, dtype=torch.long)
        self._batch: Tensor | None = None          # :attr:`batch`, computed once (states of one rollout share it)

    # --- construction of the same subclass --------------------------------------------------
    def _new(self: _S, fields: Mapping[str, Tensor], static: Mapping[str, Tensor], system: Mapping[str, Tensor],
             links: Mapping[str, Tensor], n: Tensor, link_values: Mapping[str, Tensor] | None = None) -> _S:
        """A state of this state's class from parts (subclass constructors are bypassed); without
        ``link_values``, this state's are kept when ``links`` are this state's own, else there are none."""
        if link_values is None:
            link_values = self.link_values if links is self.links else {}
        out = object.__new__(type(self))
        State.__init__(out, fields=fields, static=static, system=system, links=links, n=n, link_values=link_values)
        if n is self.n:
            out._batch = self._batch
        return out

    def replace(self: _S, *, fields: Mapping[str, Tensor] | None = None, static: Mapping[str, Tensor] | None = None,
                system: Mapping[str, Tensor] | None = None, links: Mapping[str, Tensor] | None = None,
                link_values: Mapping[str, Tensor] | None = None) -> _S:
        """The same state with some parts replaced whole (new ``links`` come without values unless given)."""
        return self._new(self.fields if fields is None else fields, self.static if static is None else static,
                         self.system if system is None else system, self.links if links is None else links, self.n,
                         link_values)

    def with_fields(self: _S, fields: Mapping[str, Tensor]) -> _S:
        """The same entities with these dynamic fields (all of them: the others are dropped)."""
        return self.replace(fields=fields)

    def with_field(self: _S, name: str, values: Tensor) -> _S:
        """The same state with one dynamic field set (added or replaced)."""
        return self.replace(fields={**self.fields, name: values})

    # --- sizes -------------------------------------------------------------------------------
    @property
    def num_systems(self) -> int:
        return int(self.n.numel())

    @property
    def num_entities(self) -> int:
        return int(self.n.sum())

    @property
    def num_frames(self) -> int:
        """``W``, the frames of the window (0 without fields)."""
        return next((int(v.shape[1]) for v in self.fields.values()), 0)

    @property
    def device(self) -> torch.device:
        for part in (self.fields, self.static):
            for value in part.values():
                return value.device
        return self.n.device

    @property
    def offsets(self) -> Tensor:
        """``(B + 1,)`` index of the first entity of each system, then ``N``."""
        return torch.cat([self.n.new_zeros(1), torch.cumsum(self.n, 0)])

    @property
    def batch(self) -> Tensor:
        """``(N,)`` system index of every entity."""
        device = self.device
        if self._batch is None or self._batch.device != device:
            self._batch = torch.repeat_interleave(torch.arange(self.num_systems, device=device), self.n.to(device))
        return self._batch

    def to(self: _S, device: torch.device | str) -> _S:
        move = lambda part: {k: v.to(device) for k, v in part.items()}  # noqa: E731
        return self._new(move(self.fields), move(self.static), move(self.system), move(self.links), self.n.to(device),
                         move(self.link_values))

    # --- time window -------------------------------------------------------------------------
    def window(self: _S, start: int | None, stop: int | None) -> _S:
        """The same entities with frames ``[start, stop)`` of every field."""
        return self.with_fields({k: v[:, start:stop] for k, v in self.fields.items()})

    def shift(self: _S, frames: Mapping[str, Tensor]) -> _S:
        """Drop the oldest frame of every field and append its new frame ``(N, F)``.

        Raises:
            ValueError: ``frames`` does not name exactly the state's fields.
        """
        if set(frames) != set(self.fields):
            raise ValueError(f"shift needs a new frame of every field: the state has {sorted(self.fields)}, "
                             f"the new frames {sorted(frames)}")
        return self.with_fields({k: torch.cat([v[:, 1:], frames[k][:, None].to(v.dtype)], dim=1)
                                 for k, v in self.fields.items()})

    # --- entities and systems ----------------------------------------------------------------
    def select(self: _S, mask: Tensor) -> _S:
        """Keep the entities where ``mask`` ``(N,)`` is True; links that lose an entity are dropped.

        Systems keep their place, possibly with no entity left.
        """
        keep = torch.as_tensor(mask, device=self.device).bool()
        if keep.shape != (self.num_entities,):
            raise ValueError(f"entity mask of shape {tuple(keep.shape)}, expected ({self.num_entities},)")
        new_index = torch.cumsum(keep.long(), 0) - 1                                   # (N,)
        links, values = {}, {}
        for name, index in self.links.items():
            valid = keep[index].all(dim=0) if index.numel() else torch.zeros(index.shape[1], dtype=torch.bool,
                                                                             device=index.device)
            links[name] = new_index[index[:, valid]]
            if name in self.link_values:
                values[name] = self.link_values[name][valid.to(self.link_values[name].device)]
        n = torch.zeros_like(self.n).index_add_(0, self.batch.to(self.n.device), keep.long().to(self.n.device))
        return self._new({k: v[keep] for k, v in self.fields.items()}, {k: v[keep] for k, v in self.static.items()},
                         self.system, links, n, values)

    def take_systems(self: _S, systems: Sequence[int] | Tensor) -> _S:
        """The systems at ``systems`` (in that order; repeats allowed) as a new batch."""
        systems = [int(s) for s in (systems.tolist() if isinstance(systems, Tensor) else systems)]
        offsets = self.offsets.tolist()
        device = self.device
        pieces = [torch.arange(offsets[s], offsets[s + 1], device=device) for s in systems]
        index = torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.long, device=device)
        n = self.n[torch.as_tensor(systems, dtype=torch.long, device=self.n.device)]
        links, values = {}, {}
        new_offsets = torch.cat([n.new_zeros(1), torch.cumsum(n, 0)]).tolist()
        for name, link in self.links.items():
            owner = self.batch[link[0]] if link.numel() else link.new_zeros(link.shape[1])
            parts = [link[:, owner == s] - offsets[s] + new_offsets[j] for j, s in enumerate(systems)]
            links[name] = torch.cat(parts, dim=1) if parts else link[:, :0]
            if name in self.link_values:
                value = self.link_values[name]
                pieces = [value[(owner == s).to(value.device)] for s in systems]
                values[name] = torch.cat(pieces) if pieces else value[:0]
        system_index = torch.as_tensor(systems, dtype=torch.long, device=device)
        return self._new({k: v[index] for k, v in self.fields.items()}, {k: v[index] for k, v in self.static.items()},
                         {k: v[system_index.to(v.device)] for k, v in self.system.items()}, links, n, values)

    def split(self: _S) -> list[_S]:
        """One single-system state per system."""
        return [self.take_systems([b]) for b in range(self.num_systems)]

    @classmethod
    def concat(cls: type[_S], states: Iterable[_S]) -> _S:
        """The systems of several states, in order, as one batch (any sizes; same parts and ``W``).

        Raises:
            ValueError: the states hold different fields, attributes or links, or windows of different lengths.
        """
        states = list(states)
        if not states:
            raise ValueError("concat needs at least one state")
        first = states[0]
        for other in states[1:]:
            for part in ("fields", "static", "system", "links", "link_values"):
                if set(getattr(other, part)) != set(getattr(first, part)):
                    raise ValueError(f"cannot concatenate states with different {part}: "
                                     f"{sorted(getattr(first, part))} and {sorted(getattr(other, part))}")
            if other.num_frames != first.num_frames:
                raise ValueError(f"cannot concatenate windows of {first.num_frames} and {other.num_frames} frames")

        def join(part: str) -> dict[str, Tensor]:
            return {k: torch.cat([getattr(s, part)[k] for s in states]) for k in getattr(first, part)}

        links, offset = {k: [] for k in first.links}, 0
        for s in states:
            for k, v in s.links.items():
                links[k].append(v + offset)
            offset += s.num_entities
        return first._new(join("fields"), join("static"), join("system"),
                          {k: torch.cat(v, dim=1) for k, v in links.items()}, torch.cat([s.n for s in states]),
                          join("link_values"))

    def extend(self: _S, other: _S) -> _S:
        """This one-system state with the entities of ``other`` (one system, same parts) appended to it.

        The system attributes are this state's; ``other``'s links are offset to their new indices.
        """
        if self.num_systems != 1 or other.num_systems != 1:
            raise ValueError(f"extend joins one-system states, found {self.num_systems} and {other.num_systems}")
        both = type(self).concat([self, other])
        return both._new(both.fields, both.static, self.system, both.links, self.n + other.n)

    def repeat(self: _S, k: int) -> _S:
        """``k`` copies of the batch, one after the other (systems ``0..B-1, 0..B-1, ...``)."""
        if k < 1:
            raise ValueError(f"repeat needs k >= 1, found {k}")
        return type(self).concat([self] * k)

    def __repr__(self) -> str:
        parts = [f"{name}={tuple(v.shape)}" for name, v in {**self.fields, **self.static}.items()]
        return f"{type(self).__name__}(systems={self.num_systems}, entities={self.num_entities}, {', '.join(parts)})"


def hold(frames: Mapping[str, Tensor], values: Mapping[str, Tensor], mask: Tensor) -> dict[str, Tensor]:
    """Entities where ``mask`` ``(N,)`` is True take ``values[name]`` ``(N, F)`` in each frame of ``frames``.

    Fields of ``frames`` without an entry in ``values`` are left as they are.
    """
    return {name: torch.where(mask[:, None], values[name].to(v), v) if name in values else v
            for name, v in frames.items()}
