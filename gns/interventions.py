"""Interventions: validated what-if edits of a state, for counterfactual queries on any domain.

A :class:`Scenario` is one system as a model sees it at the moment of the intervention (the
window of its state ending at the current frame) plus what is prescribed over the future (the
paths of held entities, exogenous input fields): ``controls``, field -> ``(N, S, F)``, aligned
with the entities. An :class:`Intervention` maps a scenario to a new one; a variant is a list of
them applied in order. Every intervention selects entities with a :class:`Selection` (by index,
type, region or mask) and checks what it is given, raising :class:`gns.errors.GnsInputError`
naming the variant, the intervention and the value before anything is rolled out.

Semantics (the same for a learned model and for a reference solver that replays the resolved
log, :class:`Resolved`): positions in the units of the data, velocities in units per second.

* ``move``: translate the selected entities (every frame of the window, and the future path of
  held ones) by ``offset``.
* ``remove``: delete them (links that lose an entity, e.g. mesh edges, go too).
* ``add``: copies of a selection shifted by ``offset`` (a mesh copy keeps its links), or new
  entities at ``position`` with ``velocity`` and ``type`` (particles).
* ``set_velocity`` / ``kick``: set, or add to, the velocity of free entities at the current
  frame (and their angular velocity, ``spin``, where entities have an angle: rigid objects); the
  window is rewritten as if the change had acted over all of it (every velocity of the history
  changes by the same amount, the current position stays), so a model reading velocity changes
  sees no spurious jolt.
* ``resize`` / ``reweigh``: scale or set the size of rigid bodies (their mass follows their area
  unless kept), or their mass (their moment of inertia follows) or moment of inertia
  (:class:`RigidBodies` says how, per domain).
* ``set_type``: change the entity type (only to a type the model was trained on, never to a
  prescribed one).
* ``set_context``: change the per-system parameters a model reads (within the training range).
* ``set_input``: set or scale an exogenous input field (a cloth's wind, an object's actions) from
  a frame on, or over a range of frames, for every entity or a selection; a sequence of values
  gives one value per frame.
* ``move_prescribed``: add a displacement to the future path of held entities (a cloth handle,
  an obstacle): a smooth ramp to ``offset`` over ``duration`` seconds, or a constant ``velocity``.

Domains describe themselves to this module with a :class:`Space` (see each domain's
``domain.py``): which field holds positions (and angles), which attribute holds types, the time
step, the walls, the types and parameter ranges the model was trained on, what makes a state
valid beyond that (objects: shapes that do not overlap), the operations it refuses.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from gns.errors import GnsInputError
from gns.state import State

__all__ = ["Space", "RigidBodies", "Scenario", "Resolved", "Selection", "Intervention", "Move", "Remove", "AddCopy",
           "AddEntities", "SetVelocity", "Kick", "Resize", "Reweigh", "SetType", "SetContext", "SetInput",
           "MovePrescribed", "apply_interventions", "parse_interventions", "OPERATIONS", "box_halves", "speed_limit"]


@dataclass(frozen=True)
class RigidBodies:
    """What ``resize`` and ``reweigh`` need of a domain whose entities are rigid bodies (objects).

    Attributes:
        size: the static attribute holding each body's extent ``(N, D)`` (m).
        mass: the static attribute holding masses ``(N,)`` (kg).
        moment: the static attribute holding moments of inertia about the centre of mass ``(N,)`` (kg m^2).
        area: ``area(state, mask, size)``: ``(M,)`` the areas of the ``M`` masked bodies at sizes ``(M, D)`` (m^2).
        gyration: ``gyration(state, mask, size)``: ``(M,)`` their moments of inertia per unit mass at
            sizes ``(M, D)``, uniform density (m^2).
    """

    size: str
    mass: str
    moment: str
    area: Callable[[State, Tensor, Tensor], Tensor]
    gyration: Callable[[State, Tensor, Tensor], Tensor]


@dataclass
class Space:
    """What interventions need to know about a domain and a trained model.

    Attributes:
        kind: the domain.
        dt: seconds between frames.
        position_field: the field holding entity positions (order 2: velocities are its finite
            differences), or None when entities do not move (an Eulerian flow mesh).
        coordinates: where regions are looked up when there is no position field (a static attribute).
        type_attribute: the static attribute holding entity types.
        held: ``(N,)`` bool of the entities with prescribed values.
        input_fields: exogenous fields the model reads.
        bounds: ``(D, 2)`` walls entities must stay inside (None: no walls); periodic: ``(D,)`` bool.
        trained_types: types the model was trained on (None: unknown, not checked).
        held_types: types whose entities follow prescribed values.
        context_size: width of the per-system context the model reads (0: none).
        ranges: name -> ``(lo, hi)`` arrays: the training range of an input field or of the context.
        max_speed: speed (units/s) beyond the training data's, or None.
        obstacles: maps a state to ``[(center (D,), radius)]`` regions free entities must not enter.
        angle_field: the field holding entity angles (rad, order 2: rigid objects), or None.
        max_angular_speed: angular speed (rad/s) beyond the training data's, or None.
        bodies: how entities are rigid bodies, for ``resize`` and ``reweigh`` (None: they are not).
        validate: ``validate(state, where)`` the domain's own checks of an intervened one-system state
            (objects: shapes overlapping each other or reaching through the walls, non-positive sizes
            or masses), raising :class:`GnsInputError` naming the entity and the value.
        refused: operation -> why this domain refuses it.
        entity: what an entity is called in messages (``"particle"``, ``"object"``).
    """

    kind: str
    dt: float
    position_field: str | None
    type_attribute: str
    held: Callable[[State], Tensor]
    coordinates: str | None = None
    input_fields: Sequence[str] = ()
    bounds: Tensor | None = None
    periodic: Tensor | None = None
    trained_types: set[int] | None = None
    held_types: set[int] = field(default_factory=set)
    context_size: int = 0
    ranges: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    max_speed: float | None = None
    obstacles: Callable[[State], list[tuple[Tensor, float]]] | None = None
    angle_field: str | None = None
    max_angular_speed: float | None = None
    bodies: RigidBodies | None = None
    validate: Callable[[State, str], None] | None = None
    refused: Mapping[str, str] = field(default_factory=dict)
    entity: str = "entity"


def speed_limit(mean: Sequence[float], std: Sequence[float], dt: float) -> float:
    """A speed (units/s) beyond the training data's: the largest component of ``|mean| + 6 std`` of the
    per-step velocity ``(D,)``, per second (:attr:`Space.max_speed`)."""
    return float(np.max(np.abs(np.asarray(mean, dtype=np.float64)) + 6 * np.asarray(std, dtype=np.float64))) / dt


def box_halves(bounds: Tensor) -> dict[str, "Selection"]:
    """The left and right halves of a box ``(D, 2)``: the default occupancy regions of domains in a box."""
    bounds = bounds.detach().cpu().tolist()
    mid = 0.5 * (bounds[0][0] + bounds[0][1])
    rest = [tuple(b) for b in bounds[1:]]
    return {"left half": Selection(box=((bounds[0][0], mid), *rest)),
            "right half": Selection(box=((mid, bounds[0][1]), *rest))}


@dataclass
class Resolved:
    """One applied intervention with its entities resolved, for a solver to replay.

    Attributes:
        op: the operation name.
        entities: ``(M,)`` indices into the scenario's entities *before* this intervention.
        params: the operation's parameters, resolved (e.g. ``displacement`` ``(S, D)`` of a path).
    """

    op: str
    entities: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scenario:
    """One system at the moment of an intervention, and what is prescribed over the future.

    Attributes:
        state: one system; its fields hold the window that ends at the current frame.
        controls: field -> ``(N, S, F)`` prescribed values over the ``S`` future steps (held
            entities' predicted fields; every entity's input fields).
        origin: ``(N,)`` int64: each entity's index in the factual state (-1: added).
        touched: ``(N,)`` bool: entities an intervention selected or added.
        log: the applied interventions, resolved (:class:`Resolved`).
        warnings: extrapolations that were allowed, in words.
    """

    state: State
    controls: dict[str, Tensor]
    origin: Tensor
    touched: Tensor
    log: list[Resolved] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def factual(cls, state: State, controls: Mapping[str, Tensor]) -> "Scenario":
        """The unchanged scenario of a one-system state."""
        if state.num_systems != 1:
            raise ValueError(f"a scenario is one system, found {state.num_systems}")
        n = state.num_entities
        device = state.device
        return cls(state, dict(controls), torch.arange(n, device=device), torch.zeros(n, dtype=torch.bool,
                                                                                     device=device))

    def keep(self, mask: Tensor) -> "Scenario":
        """The entities where ``mask`` is True (state, controls, origin and touched together)."""
        return dataclasses.replace(self, state=self.state.select(mask),
                                   controls={k: v[mask] for k, v in self.controls.items()}, origin=self.origin[mask],
                                   touched=self.touched[mask], log=list(self.log))

    def append(self, extra: State, controls: Mapping[str, Tensor]) -> "Scenario":
        """The scenario with the entities of the one-system state ``extra`` added (they count as touched)."""
        n = extra.num_entities
        return dataclasses.replace(
            self, state=self.state.extend(extra),
            controls={k: torch.cat([v, controls[k]]) for k, v in self.controls.items()},
            origin=torch.cat([self.origin, self.origin.new_full((n,), -1)]),
            touched=torch.cat([self.touched, self.touched.new_ones(n)]), log=list(self.log))


# ------------------------------------------------------------------------------ selections


@dataclass(frozen=True)
class Selection:
    """Which entities an intervention acts on: every given criterion must hold (``invert`` negates all).

    Attributes:
        index: entity indices in the system (as it is when the intervention applies).
        type: entity types.
        box: ``[[lo, hi], ...]`` per dimension: positions inside the box (current frame).
        center, radius: positions within ``radius`` of ``center`` (a disc in 2D, a ball in 3D).
        held: True: only entities with prescribed values; False: only free ones.
        mask: an ``(N,)`` bool tensor (Python only).
        invert: select the complement.
    """

    index: tuple[int, ...] | None = None
    type: tuple[int, ...] | None = None
    box: tuple[tuple[float, float], ...] | None = None
    center: tuple[float, ...] | None = None
    radius: float | None = None
    held: bool | None = None
    mask: Any = None
    invert: bool = False

    def resolve(self, scenario: Scenario, space: Space, where: str) -> Tensor:
        """``(N,)`` bool; raises when the selection is malformed or matches nothing."""
        state = scenario.state
        n = state.num_entities
        device = state.device
        chosen = torch.ones(n, dtype=torch.bool, device=device)
        if self.index is not None:
            index = torch.as_tensor(list(self.index), dtype=torch.long)
            if index.numel() and (int(index.min()) < -n or int(index.max()) >= n):
                bad = [int(i) for i in index if not -n <= int(i) < n]
                raise GnsInputError("entity index out of range", key=f"{where}/select/index",
                                    expected=f"indices in [0, {n})", found=bad[:10])
            by_index = torch.zeros(n, dtype=torch.bool, device=device)
            by_index[index.to(device)] = True
            chosen &= by_index
        if self.type is not None:
            types = state.static[space.type_attribute]
            chosen &= torch.isin(types, torch.as_tensor(list(self.type), dtype=types.dtype, device=device))
        if self.box is not None or self.center is not None:
            points = _coordinates(state, space, where)                                     # (N, D)
            dim = points.shape[1]
            if self.box is not None:
                box = torch.as_tensor(self.box, dtype=points.dtype, device=device)
                if box.shape != (dim, 2) or bool((box[:, 0] > box[:, 1]).any()):
                    raise GnsInputError("a box is [[lo, hi], ...] with one row per dimension and lo <= hi",
                                        key=f"{where}/select/box", expected=f"({dim}, 2)", found=self.box)
                chosen &= ((points >= box[:, 0]) & (points <= box[:, 1])).all(dim=1)
            if self.center is not None:
                center = torch.as_tensor(self.center, dtype=points.dtype, device=device)
                if center.shape != (dim,) or self.radius is None or not self.radius > 0:
                    raise GnsInputError("a disc or ball needs a center of the data's dimension and a radius > 0",
                                        key=f"{where}/select/center", expected=f"({dim},) and radius > 0",
                                        found=f"center {self.center}, radius {self.radius}")
                chosen &= (points - center).norm(dim=1) <= self.radius
        if self.held is not None:
            held = space.held(state)
            chosen &= held if self.held else ~held
        if self.mask is not None:
            mask = torch.as_tensor(self.mask, dtype=torch.bool, device=device)
            if mask.shape != (n,):
                raise GnsInputError("a selection mask needs one entry per entity", key=f"{where}/select/mask",
                                    expected=(n,), found=tuple(mask.shape))
            chosen &= mask
        if self.invert:
            chosen = ~chosen
        if not bool(chosen.any()):
            raise GnsInputError("the selection matches no entity", key=f"{where}/select",
                                expected="at least one entity", found=_describe(self))
        return chosen

    def contains(self, points: Tensor) -> Tensor:
        """``(..., N)`` bool: whether points ``(..., N, D)`` lie in this selection's box and disc/ball
        (the region criteria only: a region for occupancy counts)."""
        inside = torch.ones(points.shape[:-1], dtype=torch.bool, device=points.device)
        if self.box is not None:
            box = torch.as_tensor(self.box, dtype=points.dtype, device=points.device)
            inside &= ((points >= box[:, 0]) & (points <= box[:, 1])).all(dim=-1)
        if self.center is not None:
            center = torch.as_tensor(self.center, dtype=points.dtype, device=points.device)
            inside &= (points - center).norm(dim=-1) <= (self.radius or 0.0)
        return ~inside if self.invert else inside

    @classmethod
    def parse(cls, spec: Any, where: str) -> "Selection":
        """A selection from its YAML mapping: ``index``, ``type``, ``box``, ``center``/``radius``, ``held``, ``invert``."""
        if spec is None:
            return cls()
        if not isinstance(spec, Mapping):
            raise GnsInputError("a selection is a mapping", key=f"{where}/select", expected="e.g. {type: 5}",
                                found=spec)
        known = {"index", "type", "box", "center", "radius", "held", "invert"}
        _no_unknown(spec, known, f"{where}/select")
        ints = lambda v: tuple(int(x) for x in (v if isinstance(v, (list, tuple)) else [v]))  # noqa: E731
        floats = lambda v: tuple(float(x) for x in v)  # noqa: E731
        parsers = {"index": ints, "type": ints, "box": lambda v: tuple(floats(row) for row in v), "center": floats,
                   "radius": float, "held": bool, "invert": bool}
        values = {}
        for key, value in spec.items():
            try:
                values[key] = parsers[key](value)
            except (TypeError, ValueError):
                raise GnsInputError("a selection value of the wrong kind", key=f"{where}/select/{key}",
                                    expected={"index": "integers", "type": "integers", "box": "[[lo, hi], ...]",
                                              "center": "numbers", "radius": "a number"}.get(key, "true/false"),
                                    found=value) from None
        return cls(**values)


def _describe(selection: Selection) -> str:
    parts = {k: v for k, v in dataclasses.asdict(selection).items() if v is not None and v is not False and k != "mask"}
    return str(parts or "all entities")


def _coordinates(state: State, space: Space, where: str) -> Tensor:
    """``(N, D)`` where each entity is now: the position field's current frame, else ``space.coordinates``."""
    if space.position_field is not None:
        return state.fields[space.position_field][:, -1]
    if space.coordinates is not None:
        return state.static[space.coordinates]
    raise GnsInputError("this domain's entities have no positions to select a region by", key=f"{where}/select")


# ------------------------------------------------------------------------------ interventions


class Intervention:
    """Base class: an operation on a :class:`Scenario` (see the module docstring for each)."""

    op = ""

    def apply(self, scenario: Scenario, space: Space, where: str, allow_extrapolation: bool = False) -> Scenario:
        raise NotImplementedError


def _vector(value: Any, dim: int, where: str, name: str) -> Tensor:
    try:
        array = torch.as_tensor(value, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        array = torch.full((dim + 1,), float("nan"))                   # reported below, with the value given
    if array.shape != (dim,) or not bool(torch.isfinite(array).all()):
        raise GnsInputError(f"{name} must be a finite vector with one value per dimension", key=f"{where}/{name}",
                            expected=f"{dim} numbers", found=value)
    return array


def _positions(state: State, space: Space, where: str, op: str) -> Tensor:
    if space.position_field is None:
        raise GnsInputError(f"'{op}' needs entity positions, and this domain's entities do not move "
                            f"(an Eulerian mesh)", key=where, expected="a Lagrangian domain", found=space.kind)
    return state.fields[space.position_field]


def _free_selection(intervention: Any, scenario: Scenario, space: Space, where: str) -> tuple[Tensor, Tensor]:
    """The mask of an intervention's selection, which must hold free entities only, and the position window."""
    mask = intervention.select.resolve(scenario, space, where)
    _free_only(scenario, space, mask, where, intervention.op)
    return mask, _positions(scenario.state, space, where, intervention.op)


def _free_only(scenario: Scenario, space: Space, mask: Tensor, where: str, op: str) -> None:
    held = space.held(scenario.state) & mask
    if bool(held.any()):
        raise GnsInputError(f"'{op}' acts on free entities; {int(held.sum())} selected entities are prescribed "
                            "(use move_prescribed for them)", key=f"{where}/select",
                            expected="free entities only (e.g. select: {held: false})",
                            found=f"prescribed entities {torch.nonzero(held).flatten()[:10].tolist()}")


def _log(scenario: Scenario, op: str, mask: Tensor | None, **params: Any) -> Scenario:
    entities = (np.zeros(0, dtype=np.int64) if mask is None else torch.nonzero(mask).flatten().cpu().numpy())
    return dataclasses.replace(scenario, log=[*scenario.log, Resolved(op, entities, params)])


@dataclass
class Move(Intervention):
    """Translate the selected entities by ``offset`` (their whole window; held ones' future path too)."""

    select: Selection
    offset: Sequence[float]
    op = "move"

    def apply(self, scenario, space, where, allow_extrapolation=False):
        mask = self.select.resolve(scenario, space, where)
        positions = _positions(scenario.state, space, where, self.op)
        offset = _vector(self.offset, positions.shape[-1], where, "offset").to(positions)
        moved = positions.clone()
        moved[mask] += offset
        controls = dict(scenario.controls)
        held = space.held(scenario.state) & mask
        if space.position_field in controls and bool(held.any()):
            path = controls[space.position_field].clone()
            path[held] += offset
            controls[space.position_field] = path
        out = dataclasses.replace(scenario, state=scenario.state.with_field(space.position_field, moved),
                                  controls=controls, touched=scenario.touched | mask)
        return _log(out, self.op, mask, offset=offset.cpu().numpy())


@dataclass
class Remove(Intervention):
    """Delete the selected entities."""

    select: Selection
    op = "remove"

    def apply(self, scenario, space, where, allow_extrapolation=False):
        mask = self.select.resolve(scenario, space, where)
        if bool(mask.all()):
            raise GnsInputError("removing every entity would empty the system", key=f"{where}/select",
                                expected="at least one entity left", found=f"all {int(mask.numel())} selected")
        logged = _log(scenario, self.op, mask)
        return dataclasses.replace(logged.keep(~mask), log=logged.log)


@dataclass
class AddCopy(Intervention):
    """Add copies of the selected entities, shifted by ``offset`` (a mesh copy keeps the links among them)."""

    select: Selection
    offset: Sequence[float]
    op = "add"

    def apply(self, scenario, space, where, allow_extrapolation=False):
        mask = self.select.resolve(scenario, space, where)
        positions = _positions(scenario.state, space, where, self.op)
        offset = _vector(self.offset, positions.shape[-1], where, "offset").to(positions)
        copy = scenario.state.select(mask)
        copy = copy.with_field(space.position_field, copy.fields[space.position_field] + offset)
        controls = {k: v[mask].clone() for k, v in scenario.controls.items()}
        if space.position_field in controls:
            controls[space.position_field] += offset
        logged = _log(scenario, self.op, mask, offset=offset.cpu().numpy())
        return dataclasses.replace(logged.append(copy, controls), log=logged.log)


@dataclass
class AddEntities(Intervention):
    """Add new free entities at ``position`` ``(M, D)`` moving at ``velocity`` (``(D,)`` or ``(M, D)``, units/s)
    with entity type ``type`` (domains whose entities carry nothing else: particles)."""

    position: Any
    velocity: Any
    type: int
    op = "add"

    def apply(self, scenario, space, where, allow_extrapolation=False):
        state = scenario.state
        positions = _positions(state, space, where, self.op)
        extra_static = set(state.static) - {space.type_attribute}
        extra_fields = set(state.fields) - {space.position_field}
        if extra_static or extra_fields or state.links:
            raise GnsInputError("this domain adds entities only as copies (they carry more than a position and a "
                                "type)", key=where, expected="add: {copy: <selection>, offset: [...]}",
                                found=sorted(extra_static | extra_fields | set(state.links)))
        dim, frames = positions.shape[-1], positions.shape[1]
        x = torch.as_tensor(self.position, dtype=positions.dtype)
        if x.ndim != 2 or x.shape[1] != dim or x.shape[0] < 1 or not bool(torch.isfinite(x).all()):
            raise GnsInputError("new entities need positions of shape (M, D)", key=f"{where}/position",
                                expected=f"(M, {dim})", found=tuple(x.shape))
        v = torch.as_tensor(self.velocity, dtype=positions.dtype).expand_as(x)
        _check_type(space, int(self.type), where, allow_extrapolation, scenario)
        back = torch.arange(frames - 1, -1, -1, dtype=positions.dtype)                   # (W,) frames before now
        window = x[:, None, :] - back[None, :, None] * v[:, None, :] * space.dt           # (M, W, D)
        types = torch.full((x.shape[0],), int(self.type), dtype=state.static[space.type_attribute].dtype)
        extra = state.select(torch.zeros(state.num_entities, dtype=torch.bool, device=state.device))
        extra = extra._new({space.position_field: window.to(state.device)},
                           {space.type_attribute: types.to(state.device)}, extra.system, extra.links,
                           torch.tensor([x.shape[0]]))
        steps = next((c.shape[1] for c in scenario.controls.values()), 0)
        controls = {k: torch.zeros((x.shape[0], steps, c.shape[2]), dtype=c.dtype, device=c.device)
                    for k, c in scenario.controls.items()}
        out = _log(scenario, self.op, None, position=x.numpy(), velocity=v.numpy(), type=int(self.type))
        return dataclasses.replace(out.append(extra, controls), log=out.log)


def _angles(space: Space, where: str, op: str) -> str:
    """The angle field, for ``spin``; raises when this domain's entities do not rotate."""
    if space.angle_field is None:
        raise GnsInputError(f"'{op}' changes the spin of entities that have an angle, and this domain's "
                            f"{space.entity}s have none", key=f"{where}/spin", expected="no spin", found=space.kind)
    return space.angle_field


def _kick(scenario: Scenario, space: Space, where: str, mask: Tensor, delta: Tensor, allow_extrapolation: bool,
          field_name: str) -> Scenario:
    """The masked entities' rates of ``field_name`` (a position: velocities; an angle: angular velocities) changed
    by ``delta`` (per second; ``(F,)`` or one row per masked entity): their window rewritten so that every rate of
    it changes by the same amount, the current value kept."""
    values = scenario.state.fields[field_name]                                            # (N, W, F)
    back = torch.arange(values.shape[1] - 1, -1, -1, dtype=values.dtype, device=values.device)  # (W,)
    moved = values.clone()
    moved[mask] -= back[None, :, None] * delta.expand(int(mask.sum()), -1)[:, None, :] * space.dt
    out = dataclasses.replace(scenario, state=scenario.state.with_field(field_name, moved),
                              touched=scenario.touched | mask)
    _check_speed(out, space, mask, where, allow_extrapolation, field_name)
    return out


def _rates(intervention: Any, scenario: Scenario, space: Space, where: str, allow_extrapolation: bool, linear: Any,
           name: str, change: Callable[[Tensor, Tensor], Tensor]) -> Scenario:
    """``kick`` and ``set_velocity``: the velocity (``linear``, the key ``name``) and the angular velocity
    (``intervention.spin``) of the selected free entities changed, ``change(current, given)`` being the delta."""
    mask, _ = _free_selection(intervention, scenario, space, where)
    changes = [] if linear is None else [(space.position_field, linear, name)]
    if intervention.spin is not None:
        changes.append((_angles(space, where, intervention.op), [intervention.spin], "spin"))
    if not changes:
        raise GnsInputError(f"'{intervention.op}' needs {name}, spin (rad/s) or both", key=where,
                            expected=f"{name}: [...] and/or spin: x", found=None)
    out, params = scenario, {name: None, "spin": None}
    for field_name, given, key in changes:
        values = out.state.fields[field_name]                                             # (N, W, F)
        vector = _vector(given, values.shape[-1], where, key).to(values)
        current = (values[mask, -1] - values[mask, -2]) / space.dt                       # (M, F) per second
        out = _kick(out, space, where, mask, change(current, vector), allow_extrapolation, field_name)
        params[key] = float(vector[0]) if key == "spin" else vector.cpu().numpy()
    return _log(out, intervention.op, mask, **params)


@dataclass
class Kick(Intervention):
    """Add ``delta`` (units/s) to the velocity, and ``spin`` (rad/s) to the angular velocity, of the selected
    free entities (either or both)."""

    select: Selection
    delta: Sequence[float] | None = None
    spin: float | None = None
    op = "kick"

    def apply(self, scenario, space, where, allow_extrapolation=False):
        return _rates(self, scenario, space, where, allow_extrapolation, self.delta, "delta",
                      lambda current, given: given)


@dataclass
class SetVelocity(Intervention):
    """Set the velocity (units/s) and/or the angular velocity (``spin``, rad/s) of the selected free entities."""

    select: Selection
    velocity: Sequence[float] | None = None
    spin: float | None = None
    op = "set_velocity"

    def apply(self, scenario, space, where, allow_extrapolation=False):
        return _rates(self, scenario, space, where, allow_extrapolation, self.velocity, "velocity",
                      lambda current, given: given - current)


def _bodies(space: Space, where: str, op: str) -> RigidBodies:
    if space.bodies is None:
        raise GnsInputError(f"'{op}' changes rigid bodies, and this domain's {space.entity}s are not rigid bodies",
                            key=where, expected="a domain of rigid objects", found=space.kind)
    return space.bodies


def _positive(values: Tensor, mask: Tensor, space: Space, where: str, name: str) -> None:
    """Raise naming the first masked entity whose new ``name`` ``(M, ...)`` is not positive, and its value."""
    bad = ~(values > 0).reshape(values.shape[0], -1).all(dim=1)                         # (M,)
    if bool(bad.any()):
        first = int(torch.nonzero(bad)[0])
        entity = int(torch.nonzero(mask).flatten()[first])
        raise GnsInputError(f"{space.entity} {entity}: its {name} must be positive", key=f"{where}/{name}",
                            expected="> 0", found=values[first].cpu().numpy().round(6).tolist())


def _set_bodies(scenario: Scenario, space: Space, where: str, allow_extrapolation: bool, op: str, mask: Tensor,
                values: Mapping[str, Tensor]) -> Scenario:
    """The masked bodies' static attributes set to ``values`` (name -> ``(M, ...)``): each checked positive, then
    against the training range (:attr:`Space.ranges`), and logged resolved."""
    for name, value in values.items():
        _positive(value, mask, space, where, name)
    for name, value in values.items():
        scenario = _check_range(scenario, space, name, value.reshape(value.shape[0], -1).cpu().double().numpy(),
                                where, allow_extrapolation)
    static = dict(scenario.state.static)
    for name, value in values.items():
        static[name] = static[name].clone()
        static[name][mask] = value.to(static[name])
    out = dataclasses.replace(scenario, state=scenario.state.replace(static=static), touched=scenario.touched | mask)
    return _log(out, op, mask, **{name: value.cpu().numpy() for name, value in values.items()})


@dataclass
class Resize(Intervention):
    """Scale (``scale``: one factor, or one per dimension) or set (``size``) the size of the selected rigid bodies.

    ``keep: density`` (the default) scales their masses with their areas, ``keep: mass`` keeps the masses; the
    moments of inertia follow the new size and mass with the same distribution of mass
    (``moment * (m'/m) * g(size') / g(size)``, ``g`` the domain's moment per unit mass).
    """

    select: Selection
    scale: float | Sequence[float] | None = None
    size: Sequence[float] | None = None
    keep: str = "density"
    op = "resize"

    def apply(self, scenario, space, where, allow_extrapolation=False):
        bodies = _bodies(space, where, self.op)
        mask = self.select.resolve(scenario, space, where)
        state = scenario.state
        old = state.static[bodies.size][mask]                                            # (M, D)
        dim = old.shape[-1]
        if (self.scale is None) == (self.size is None):
            raise GnsInputError("resize needs exactly one of scale and size", key=where,
                                expected="scale: x (or [x, y]) or size: [w, h]", found=f"scale {self.scale}, "
                                                                                       f"size {self.size}")
        if self.keep not in ("density", "mass"):
            raise GnsInputError("resize keeps the density (mass follows the area) or the mass", key=f"{where}/keep",
                                expected="density | mass", found=self.keep)
        if self.size is not None:
            new = _vector(self.size, dim, where, "size").to(old).expand_as(old)
        else:
            scale = self.scale if isinstance(self.scale, (list, tuple)) else [self.scale] * dim
            new = old * _vector(scale, dim, where, "scale").to(old)
        mass, moment = state.static[bodies.mass][mask], state.static[bodies.moment][mask]   # (M,)
        new_mass = mass * bodies.area(state, mask, new) / bodies.area(state, mask, old) if self.keep == "density" \
            else mass
        new_moment = moment * (new_mass / mass) * bodies.gyration(state, mask, new) / bodies.gyration(state, mask, old)
        return _set_bodies(scenario, space, where, allow_extrapolation, self.op, mask,
                           {bodies.size: new, bodies.mass: new_mass, bodies.moment: new_moment})


@dataclass
class Reweigh(Intervention):
    """Set (``mass``, kg) or scale (``scale``) the mass of the selected rigid bodies, their moments of inertia
    scaled alike (the same distribution of mass), or set the moment of inertia (``moment``, kg m^2)."""

    select: Selection
    mass: float | None = None
    scale: float | None = None
    moment: float | None = None
    op = "reweigh"

    def apply(self, scenario, space, where, allow_extrapolation=False):
        bodies = _bodies(space, where, self.op)
        mask = self.select.resolve(scenario, space, where)
        if self.mass is not None and self.scale is not None or (self.mass, self.scale, self.moment) == (None,) * 3:
            raise GnsInputError("reweigh needs mass or scale (not both), and/or moment", key=where,
                                expected="mass: kg | scale: x, moment: kg m^2",
                                found=f"mass {self.mass}, scale {self.scale}, moment {self.moment}")
        static = scenario.state.static
        mass, moment = static[bodies.mass][mask], static[bodies.moment][mask]             # (M,)
        new_mass = mass
        if self.mass is not None:
            new_mass = _vector([self.mass], 1, where, "mass").to(mass).expand_as(mass)
        elif self.scale is not None:
            new_mass = mass * _vector([self.scale], 1, where, "scale").to(mass)
        new_moment = moment * new_mass / mass if self.moment is None \
            else _vector([self.moment], 1, where, "moment").to(moment).expand_as(moment)
        return _set_bodies(scenario, space, where, allow_extrapolation, self.op, mask,
                           {bodies.mass: new_mass, bodies.moment: new_moment})


@dataclass
class SetType(Intervention):
    """Give the selected free entities another type."""

    select: Selection
    type: int
    op = "set_type"

    def apply(self, scenario, space, where, allow_extrapolation=False):
        mask = self.select.resolve(scenario, space, where)
        _free_only(scenario, space, mask, where, self.op)
        _check_type(space, int(self.type), where, allow_extrapolation, scenario)
        types = scenario.state.static[space.type_attribute].clone()
        types[mask] = int(self.type)
        state = scenario.state.replace(static={**scenario.state.static, space.type_attribute: types})
        out = dataclasses.replace(scenario, state=state, touched=scenario.touched | mask)
        return _log(out, self.op, mask, type=int(self.type))


@dataclass
class SetContext(Intervention):
    """Set the per-system parameters (context) the model reads."""

    values: Sequence[float]
    op = "set_context"

    def apply(self, scenario, space, where, allow_extrapolation=False):
        if not space.context_size:
            raise GnsInputError("the model reads no per-system context, so changing it would change nothing the "
                                "model sees", key=f"{where}/values", expected="a model trained with a context",
                                found=list(self.values))
        values = _vector(self.values, space.context_size, where, "values")
        scenario = _check_range(scenario, space, "context", values.numpy(), where, allow_extrapolation)
        state = scenario.state.replace(system={**scenario.state.system,
                                               "context": values[None].to(scenario.state.device)})
        return _log(dataclasses.replace(scenario, state=state), self.op, None, values=values.numpy())


@dataclass
class SetInput(Intervention):
    """Set an input field to ``value``, or multiply it by ``scale``, over frames ``from_frame`` to ``to_frame - 1``
    (0: the current frame, 1: the first predicted one, ...; ``to_frame`` default: to the end), for the entities
    of ``select`` (default: every one; selected ones count as touched). ``value`` is one vector, or one per frame
    (``(L, F)``: frames ``from_frame`` to ``from_frame + L - 1``)."""

    field: str
    value: Any = None
    scale: float | None = None
    from_frame: int = 0
    to_frame: int | None = None
    select: Selection | None = None
    op = "set_input"

    def apply(self, scenario, space, where, allow_extrapolation=False):
        if self.field not in space.input_fields:
            raise GnsInputError("the model reads no such input field", key=f"{where}/field",
                                expected=list(space.input_fields) or "none (this model reads no input field)",
                                found=self.field)
        if (self.value is None) == (self.scale is None):
            raise GnsInputError("set_input needs exactly one of value and scale", key=where,
                                expected="value: [...] or scale: x", found=f"value {self.value}, scale {self.scale}")
        mask = (self.select or Selection()).resolve(scenario, space, where)
        window, future = scenario.state.fields[self.field], scenario.controls[self.field]
        frames = torch.cat([window[:, -1:], future], dim=1).clone()                   # (N, 1 + S, F)
        value = None if self.value is None else _values(self.value, frames.shape[-1], where).to(frames)  # (F,) | (L, F)
        first, stop = self._frames(frames.shape[1], len(value) if value is not None and value.ndim == 2 else None,
                                   where)
        chosen = frames[mask]                                                        # (M, 1 + S, F)
        if value is not None:
            value = value[:stop - first] if value.ndim == 2 else value
            chosen[:, first:stop] = value
            checked = value.reshape(-1, frames.shape[-1]).cpu().double().numpy()
        else:
            chosen[:, first:stop] *= float(self.scale)
            checked = chosen[:, first:stop].reshape(-1, frames.shape[-1]).cpu().double().numpy()
        frames[mask] = chosen
        scenario = _check_range(scenario, space, self.field, checked, where, allow_extrapolation)
        fields = {**scenario.state.fields, self.field: torch.cat([window[:, :-1], frames[:, :1]], dim=1)}
        out = dataclasses.replace(scenario, state=scenario.state.with_fields(fields),
                                  controls={**scenario.controls, self.field: frames[:, 1:]},
                                  touched=scenario.touched | mask if self.select is not None else scenario.touched)
        return _log(out, self.op, mask, field=self.field, from_frame=first,
                    to_frame=None if stop == frames.shape[1] else stop,
                    every=bool(mask.all()), value=None if value is None else value.cpu().numpy().astype(np.float64),
                    scale=self.scale)

    def _frames(self, count: int, length: int | None, where: str) -> tuple[int, int]:
        """``[first, stop)`` of the ``count`` frames (the current one, then the future) the change covers (frames
        beyond the rollout are never read: a range, or a sequence of ``length`` values, may reach past it)."""
        first = int(self.from_frame)
        if not 0 <= first < count:
            raise GnsInputError("from_frame must be within the rollout", key=f"{where}/from_frame",
                                expected=f"0..{count - 1}", found=self.from_frame)
        stop = int(self.to_frame) if self.to_frame is not None else count if length is None else first + length
        if stop <= first:
            raise GnsInputError("to_frame must come after from_frame", key=f"{where}/to_frame",
                                expected=f"> {first}", found=stop)
        if length is not None and stop - first != length:
            raise GnsInputError("a sequence of values needs one value per frame", key=f"{where}/value",
                                expected=f"{stop - first} rows (frames {first}..{stop - 1})", found=f"{length} rows")
        return first, min(stop, count)


def _values(value: Any, dim: int, where: str) -> Tensor:
    """One vector ``(F,)`` or a sequence of them ``(L, F)``, finite, ``F = dim``."""
    try:
        array = torch.as_tensor(value, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        array = torch.full((dim + 1,), float("nan"))                   # reported below, with the value given
    if array.ndim not in (1, 2) or array.shape[-1] != dim or not array.numel() \
            or not bool(torch.isfinite(array).all()):
        raise GnsInputError("value must be a finite vector with one value per component, or a list of them (one "
                            "per frame)", key=f"{where}/value", expected=f"{dim} numbers, or rows of {dim}",
                            found=value)
    return array


@dataclass
class MovePrescribed(Intervention):
    """Displace the future path of the selected held entities: a smooth (cosine) ramp to ``offset``
    over ``duration`` seconds, then held there; or a constant ``velocity`` (units/s) from now on."""

    select: Selection
    offset: Sequence[float] | None = None
    duration: float = 1.0
    velocity: Sequence[float] | None = None
    op = "move_prescribed"

    def apply(self, scenario, space, where, allow_extrapolation=False):
        mask = self.select.resolve(scenario, space, where)
        held = space.held(scenario.state)
        if not bool(held[mask].all()):
            raise GnsInputError("move_prescribed moves entities whose path is prescribed; some selected ones are "
                                "free (kick or move them instead)", key=f"{where}/select",
                                expected="prescribed entities only (e.g. select: {held: true})",
                                found=f"free entities {torch.nonzero(mask & ~held).flatten()[:10].tolist()}")
        _positions(scenario.state, space, where, self.op)
        path = scenario.controls[space.position_field]
        steps, dim = path.shape[1], path.shape[2]
        t = torch.arange(1, steps + 1, dtype=torch.float64) * space.dt                   # (S,) seconds from now
        if (self.offset is None) == (self.velocity is None):
            raise GnsInputError("move_prescribed needs exactly one of offset and velocity", key=where,
                                expected="offset: [...] (duration: s) or velocity: [...]",
                                found=f"offset {self.offset}, velocity {self.velocity}")
        if self.offset is not None:
            if not self.duration >= 0:
                raise GnsInputError("duration must be >= 0 seconds", key=f"{where}/duration", found=self.duration)
            offset = _vector(self.offset, dim, where, "offset").double()
            share = (torch.ones_like(t) if self.duration == 0
                     else 0.5 * (1 - torch.cos(math.pi * torch.clamp(t / self.duration, max=1.0))))
            displacement = share[:, None] * offset                                       # (S, D)
        else:
            displacement = t[:, None] * _vector(self.velocity, dim, where, "velocity").double()
        moved = path.clone()
        moved[mask] += displacement.to(path)
        out = dataclasses.replace(scenario, controls={**scenario.controls, space.position_field: moved},
                                  touched=scenario.touched | mask)
        return _log(out, self.op, mask, displacement=displacement.numpy(),
                    offset=None if self.offset is None else list(self.offset), duration=self.duration,
                    velocity=None if self.velocity is None else list(self.velocity))


# ------------------------------------------------------------------------------ checks


def _check_type(space: Space, value: int, where: str, allow_extrapolation: bool, scenario: Scenario) -> None:
    if value in space.held_types:
        raise GnsInputError(f"type {value} is prescribed (its entities follow a given path); a free entity cannot "
                            "become one", key=f"{where}/type", expected="a free type", found=value)
    if space.trained_types is not None and value not in space.trained_types:
        message = f"type {value} never occurs in the training data, so the model has not learned it"
        if not allow_extrapolation:
            raise GnsInputError(message + " (allow_extrapolation: true to run it anyway)", key=f"{where}/type",
                                expected=sorted(space.trained_types), found=value)
        scenario.warnings.append(f"{where}: {message}")


def _check_range(scenario: Scenario, space: Space, name: str, values: np.ndarray, where: str,
                 allow_extrapolation: bool) -> Scenario:
    if name not in space.ranges:
        return scenario
    lo, hi = space.ranges[name]
    values = np.atleast_2d(values)
    span = np.maximum(hi - lo, 1e-12)
    outside = (values < lo - 1e-3 * span) | (values > hi + 1e-3 * span)
    if outside.any():
        message = (f"{name} {values[outside.any(axis=1)][0].round(4).tolist()} is outside the range the model was "
                   f"trained on, {lo.round(4).tolist()} .. {hi.round(4).tolist()} per component")
        if not allow_extrapolation:
            raise GnsInputError(message + " (allow_extrapolation: true to run it anyway)", key=where,
                                expected=f"{lo.round(4).tolist()} .. {hi.round(4).tolist()}",
                                found=values[outside.any(axis=1)][0].round(4).tolist())
        scenario = dataclasses.replace(scenario, warnings=[*scenario.warnings, f"{where}: {message}"])
    return scenario


def _check_speed(scenario: Scenario, space: Space, mask: Tensor, where: str, allow_extrapolation: bool,
                 field_name: str) -> None:
    """The masked entities' rate of ``field_name`` (a position: speed; an angle: angular speed) within the training
    data's (:attr:`Space.max_speed`, :attr:`Space.max_angular_speed`)."""
    angular = field_name == space.angle_field
    limit, unit = (space.max_angular_speed, "rad/s") if angular else (space.max_speed, "units/s")
    if limit is None:
        return
    values = scenario.state.fields[field_name]
    speed = ((values[mask, -1] - values[mask, -2]) / space.dt).norm(dim=-1)
    fastest = float(speed.max())
    if fastest > limit:
        message = (f"{'an angular speed' if angular else 'a speed'} of {fastest:.3g} {unit} is beyond what the "
                   f"training data holds (about {limit:.3g})")
        if not allow_extrapolation:
            raise GnsInputError(message + " (allow_extrapolation: true to run it anyway)", key=where,
                                expected=f"<= {limit:.3g}", found=round(fastest, 4))
        scenario.warnings.append(f"{where}: {message}")


def check_scenario(scenario: Scenario, space: Space, where: str) -> None:
    """Entities inside the walls and outside obstacles, and the domain's own checks (:attr:`Space.validate`),
    after every intervention of a variant."""
    state = scenario.state
    if space.validate is not None:
        space.validate(state, where)
    if space.position_field is None:
        return
    positions = state.fields[space.position_field][:, -1]                                 # (N, D) now
    if space.bounds is not None:
        bounds = space.bounds.to(positions)
        walls = ~space.periodic.to(positions.device) if space.periodic is not None else torch.ones(
            positions.shape[1], dtype=torch.bool, device=positions.device)
        outside = (((positions < bounds[:, 0]) | (positions > bounds[:, 1])) & walls).any(dim=1)
        held = space.held(state)
        if space.position_field in scenario.controls and bool(held.any()):   # the prescribed paths too
            path = scenario.controls[space.position_field]
            outside |= held & (((path < bounds[:, 0]) | (path > bounds[:, 1])) & walls).any(dim=(1, 2))
        if bool(outside.any()):
            first = int(torch.nonzero(outside)[0])
            raise GnsInputError(f"{int(outside.sum())} entities would be outside the domain's walls "
                                f"(entity {first} at {positions[first].round(decimals=4).tolist()})", key=where,
                                expected=f"inside {bounds.tolist()}", found=positions[first].round(decimals=4).tolist())
    if space.obstacles is not None:
        free = ~space.held(state)
        for center, radius in space.obstacles(state):
            inside = free & scenario.touched & ((positions - center.to(positions)).norm(dim=1) < radius)
            if bool(inside.any()):
                first = int(torch.nonzero(inside)[0])
                raise GnsInputError(f"{int(inside.sum())} entities would be inside an obstacle (entity {first} at "
                                    f"{positions[first].round(decimals=4).tolist()})", key=where,
                                    expected=f"farther than {radius:.3g} from {center.round(decimals=4).tolist()}",
                                    found=positions[first].round(decimals=4).tolist())


def apply_interventions(factual: Scenario, interventions: Sequence[Intervention], space: Space, name: str = "variant",
                        allow_extrapolation: bool = False) -> Scenario:
    """Apply a variant's interventions in order to the factual scenario and check the result.

    Raises:
        GnsInputError: naming ``variants/<name>/<i>`` and the value, for any bad intervention.
    """
    scenario = factual
    for i, intervention in enumerate(interventions):
        where = f"variants/{name}/{i} ({intervention.op})"
        if intervention.op in space.refused:
            raise GnsInputError(f"'{intervention.op}' is not available for {space.kind}: "
                                f"{space.refused[intervention.op]}", key=where,
                                expected=sorted(set(OPERATIONS) - set(space.refused)), found=intervention.op)
        try:
            scenario = intervention.apply(scenario, space, where, allow_extrapolation)
        except GnsInputError:
            raise
        except (TypeError, ValueError) as err:  # e.g. a word where a number belongs
            raise GnsInputError(f"a value of the wrong kind ({err})", key=where,
                                found={k: v for k, v in vars(intervention).items() if k != "select"}) from None
        check_scenario(scenario, space, where)
    return scenario


# ------------------------------------------------------------------------------ YAML


OPERATIONS = {
    "move": (Move, {"select", "offset"}),
    "remove": (Remove, {"select"}),
    "add": (None, {"copy", "offset", "position", "velocity", "type"}),
    "set_velocity": (SetVelocity, {"select", "velocity", "spin"}),
    "kick": (Kick, {"select", "delta", "spin"}),
    "resize": (Resize, {"select", "scale", "size", "keep"}),
    "reweigh": (Reweigh, {"select", "mass", "scale", "moment"}),
    "set_type": (SetType, {"select", "type"}),
    "set_context": (SetContext, {"values"}),
    "set_input": (SetInput, {"field", "value", "scale", "from_frame", "to_frame", "select"}),
    "move_prescribed": (MovePrescribed, {"select", "offset", "duration", "velocity"}),
}
_TOP_LEVEL = {"variants", "allow_extrapolation", "regions", "description"}


def _no_unknown(spec: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(spec) - known)
    if unknown:
        raise GnsInputError("unknown key", key=f"{where}/{unknown[0]}", expected=sorted(known), found=unknown)


def _parse_one(spec: Any, where: str) -> Intervention:
    if not isinstance(spec, Mapping) or "op" not in spec:
        raise GnsInputError("an intervention is a mapping with an 'op'", key=where,
                            expected=f"op: one of {sorted(OPERATIONS)}", found=spec)
    op = spec["op"]
    if op not in OPERATIONS:
        raise GnsInputError("unknown operation", key=f"{where}/op", expected=sorted(OPERATIONS), found=op)
    cls, known = OPERATIONS[op]
    where = f"{where} ({op})"
    _no_unknown({k: v for k, v in spec.items() if k != "op"}, known, where)
    args = {k: v for k, v in spec.items() if k != "op"}
    if op == "add":
        if "copy" in args:
            if set(args) - {"copy", "offset"}:
                raise GnsInputError("add copies a selection (copy, offset) or adds new entities (position, velocity, "
                                    "type), not both", key=where, found=sorted(args))
            if "offset" not in args:
                raise GnsInputError("a copy needs an offset (copies on top of their originals overlap)", key=where,
                                    expected="offset: [dx, dy, ...]", found=sorted(args))
            return AddCopy(Selection.parse(args["copy"], where), args["offset"])
        missing = {"position", "type"} - set(args)
        if missing:
            raise GnsInputError("add needs copy (and offset), or position and type (and velocity)", key=where,
                                expected="copy | position + type", found=sorted(args))
        return AddEntities(args["position"], args.get("velocity", 0.0), int(args["type"]))
    if "select" in known and (op != "set_input" or "select" in args):  # set_input: every entity unless selected
        args["select"] = Selection.parse(args.get("select"), where)
    try:
        return cls(**args)
    except TypeError as err:
        raise GnsInputError(f"missing or wrong arguments ({err})", key=where, expected=sorted(known),
                            found=sorted(args)) from None


def parse_interventions(spec: Any, source: object = None) -> tuple[dict[str, list[Intervention]], dict[str, Any]]:
    """Variants and options from the YAML schema (``docs/counterfactuals.md``).

    Returns:
        ``({variant name: [interventions]}, {"allow_extrapolation": bool, "regions": {name: Selection}})``.

    Raises:
        GnsInputError: unknown keys or operations, malformed selections (naming ``variants/<name>/<i>``).
    """
    if not isinstance(spec, Mapping) or "variants" not in spec:
        raise GnsInputError("an interventions file is a mapping with 'variants'", file=source,
                            expected="variants: {name: [ {op: ...}, ... ]}", found=type(spec).__name__)
    _no_unknown(spec, _TOP_LEVEL, "")
    variants = spec["variants"]
    if not isinstance(variants, Mapping) or not variants:
        raise GnsInputError("variants must name at least one list of interventions", file=source, key="variants",
                            found=variants)
    out = {}
    for name, items in variants.items():
        if str(name) == "factual" or "/" in str(name) or not str(name):
            raise GnsInputError("a variant name must be non-empty, without '/', and not 'factual'", file=source,
                                key=f"variants/{name}", found=name)
        if not isinstance(items, (list, tuple)) or not items:
            raise GnsInputError("a variant is a non-empty list of interventions", file=source, key=f"variants/{name}",
                                found=items)
        try:
            out[str(name)] = [_parse_one(item, f"variants/{name}/{i}") for i, item in enumerate(items)]
        except GnsInputError as err:
            raise GnsInputError(str(err), file=source) from None
    regions = {}
    for region, selection in (spec.get("regions") or {}).items():
        regions[str(region)] = Selection.parse(selection, f"regions/{region}")
    return out, {"allow_extrapolation": bool(spec.get("allow_extrapolation", False)), "regions": regions}
