"""The canonical object dataset format (``docs/objects.md``): metadata, validation, lazy HDF5.

Scenes of rigid 2D objects (discs and convex polygons) in a walled box. Layout, beside the particle
format of ``gns.data.hdf5`` and the mesh format of ``gns.data.mesh``::

    <dataset>/metadata.json                      "kind": "objects" (``ObjectMetadata``)
    <dataset>/{train,valid,test}.h5
        /00000/position           float32 (T, K, 2)     centre of mass (m)
        /00000/angle              float32 (T, K)        rotation (rad, counter-clockwise, unwrapped)
        /00000/velocity           float32 (T, K, 2)     linear velocity (m/s)
        /00000/angular_velocity   float32 (T, K)        (rad/s)
        /00000/action             float32 (T-1, K, 3)   force x, y (N) and torque (N m) held over step t
        /00000/shape              int32   (K,)          SHAPES code
        /00000/size               float32 (K, 2)        width, height in the body frame (m)
        /00000/mass, moment, friction, restitution     float32 (K,)
        /00000/colour             float32 (K, 3)        RGB in [0, 1]
        /00000/agent              int32   ()            the controllable object
        /00000/spring_*           (S, ...)              optional: springs between object pairs
        /00000/obstacle_*         (O, ...)              optional: static obstacles
        /00000/contacts, wall_contacts, obstacle_contacts   bool (T-1, K, ...)  optional
        /00001/...

Everything about one trajectory that does not change over time is an :class:`ObjectScene`; one
frame of what does is an :class:`ObjectState`; a trajectory is a scene, its states, the actions
between them and (optionally) the contacts they made (:class:`ObjectTrajectory`). The box
(``bounds``) is the dataset's, kept in ``metadata.json`` and copied into every scene on reading.

``ObjectSplit`` reads lazily, like the other formats: it keeps the file open, checks every
trajectory's layout (shapes and dtypes of every array, without reading them) and the values of its
static arrays on first access, and checks the finiteness of per-frame data only on what a read
touches, so a window read costs one window.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import h5py
import numpy as np

from gns.atomic import write_json_atomic
from gns.data.hdf5 import TIME_CHUNK, LazyH5Split, existing_split_path, replacing_h5
from gns.data.mesh import check_finite
from gns.data.metadata import METADATA_FILE, _as_float, _as_int, _listing
from gns.errors import GnsInputError

OBJECTS_KIND = "objects"
# Shape codes. ``size`` is the shape's extent in its body frame, (width, height), centred on the
# centre of mass: a disc's diameter twice; a box; an isosceles triangle with its base (width) along
# the body's x axis and its apex at +y (vertices (-w/2, -h/3), (w/2, -h/3), (0, 2h/3)).
SHAPES: dict[str, int] = {"disc": 0, "box": 1, "triangle": 2}
DISC, BOX, TRIANGLE = SHAPES["disc"], SHAPES["box"], SHAPES["triangle"]
WALLS = ("left", "right", "bottom", "top")  # the column order of ``wall_contacts``
ACTION_COMPONENTS = ("force_x", "force_y", "torque")  # N, N, N m; world frame, at the centre of mass
STATE_ARRAYS = ("position", "angle", "velocity", "angular_velocity")
ATTRIBUTE_ARRAYS = ("shape", "size", "mass", "moment", "friction", "restitution", "colour")
SPRING_ARRAYS = ("spring_pairs", "spring_rest_length", "spring_stiffness", "spring_damping")
OBSTACLE_ARRAYS = ("obstacle_shape", "obstacle_position", "obstacle_angle", "obstacle_size")
CONTACT_ARRAYS = ("contacts", "wall_contacts", "obstacle_contacts")

# Every array of a trajectory: its axes (symbols resolved per trajectory, or fixed widths) and its
# dtype kind ("f" float, "i" integer, "b" boolean). T frames, K objects, S springs, O obstacles.
LAYOUT: dict[str, tuple[tuple[str | int, ...], str]] = {
    "position": (("T", "K", 2), "f"),
    "angle": (("T", "K"), "f"),
    "velocity": (("T", "K", 2), "f"),
    "angular_velocity": (("T", "K"), "f"),
    "action": (("T-1", "K", 3), "f"),
    "shape": (("K",), "i"),
    "size": (("K", 2), "f"),
    "mass": (("K",), "f"),
    "moment": (("K",), "f"),
    "friction": (("K",), "f"),
    "restitution": (("K",), "f"),
    "colour": (("K", 3), "f"),
    "agent": ((), "i"),
    "spring_pairs": (("S", 2), "i"),
    "spring_rest_length": (("S",), "f"),
    "spring_stiffness": (("S",), "f"),
    "spring_damping": (("S",), "f"),
    "obstacle_shape": (("O",), "i"),
    "obstacle_position": (("O", 2), "f"),
    "obstacle_angle": (("O",), "f"),
    "obstacle_size": (("O", 2), "f"),
    "contacts": (("T-1", "K", "K"), "b"),
    "wall_contacts": (("T-1", "K", len(WALLS)), "b"),
    "obstacle_contacts": (("T-1", "K", "O"), "b"),
}
REQUIRED_ARRAYS = (*STATE_ARRAYS, "action", *ATTRIBUTE_ARRAYS, "agent")
_PER_FRAME = (*STATE_ARRAYS, "action", *CONTACT_ARRAYS)  # chunked along time, read by window
_STATISTICS_KEYS = ("vel_mean", "vel_std", "acc_mean", "acc_std", "angular_vel_mean", "angular_vel_std",
                    "angular_acc_mean", "angular_acc_std", "action_mean", "action_std")
_STATISTICS_WIDTHS = {"vel": 2, "acc": 2, "angular_vel": 1, "angular_acc": 1, "action": len(ACTION_COMPONENTS)}


# ============================================================================ geometry
def local_vertices(shape: int, size: Sequence[float]) -> np.ndarray:
    """``(V, 2)`` float64 vertices of a polygon in its body frame, counter-clockwise.

    Args:
        shape: ``BOX`` or ``TRIANGLE`` (a disc has no vertices).
        size: its ``(width, height)``.
    """
    w, h = float(size[0]), float(size[1])
    if shape == BOX:
        return np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    if shape == TRIANGLE:  # centroid at the origin: (-h/3 - h/3 + 2h/3) / 3 = 0
        return np.array([[-w / 2, -h / 3], [w / 2, -h / 3], [0.0, 2 * h / 3]])
    raise ValueError(f"shape {shape} has no vertices (a disc) or is unknown")


def world_vertices(shape: int, size: Sequence[float], position: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Vertices of a polygon placed at ``position`` ``(..., 2)`` rotated by ``angle`` ``(...)``.

    Returns:
        ``(..., V, 2)`` float64 world coordinates.
    """
    local = local_vertices(shape, size)                                     # (V, 2)
    angle = np.asarray(angle, dtype=np.float64)[..., None]                  # (..., 1)
    c, s = np.cos(angle), np.sin(angle)
    x = c * local[:, 0] - s * local[:, 1]                                   # (..., V)
    y = s * local[:, 0] + c * local[:, 1]
    return np.stack([x, y], -1) + np.asarray(position, dtype=np.float64)[..., None, :]


def object_area(shape: np.ndarray, size: np.ndarray) -> np.ndarray:
    """``(K,)`` areas (m^2) of shapes ``(K,)`` with sizes ``(K, 2)``."""
    shape, size = np.asarray(shape), np.asarray(size, dtype=np.float64)
    w, h = size[:, 0], size[:, 1]
    return np.select([shape == DISC, shape == BOX, shape == TRIANGLE], [np.pi * w * w / 4, w * h, w * h / 2], np.nan)


def object_moment(shape: np.ndarray, size: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """``(K,)`` moments of inertia (kg m^2) about the centre of mass, uniform density.

    Disc ``m r^2 / 2``; box ``m (w^2 + h^2) / 12``; the isosceles triangle ``m (w^2 / 24 + h^2 / 18)``
    (``m (a^2 + b^2 + c^2) / 36`` of its sides). Use it to keep ``moment`` consistent after
    resizing or re-weighing an object.
    """
    shape, size = np.asarray(shape), np.asarray(size, dtype=np.float64)
    mass = np.asarray(mass, dtype=np.float64)
    w, h = size[:, 0], size[:, 1]
    per_mass = np.select([shape == DISC, shape == BOX, shape == TRIANGLE],
                         [w * w / 8, (w * w + h * h) / 12, w * w / 24 + h * h / 18], np.nan)
    return mass * per_mass


def bounding_radius(shape: np.ndarray, size: np.ndarray) -> np.ndarray:
    """``(K,)`` radius of the smallest circle about the centre of mass holding each shape (m)."""
    shape, size = np.asarray(shape), np.asarray(size, dtype=np.float64)
    w, h = size[:, 0], size[:, 1]
    return np.select([shape == DISC, shape == BOX, shape == TRIANGLE],
                     [w / 2, np.hypot(w / 2, h / 2), np.maximum(np.hypot(w / 2, h / 3), 2 * h / 3)], np.nan)


def inner_radius(shape: np.ndarray, size: np.ndarray) -> np.ndarray:
    """``(K,)`` radius of the largest circle about the centre of mass inside each shape (m).

    For the triangle: a third of its smallest altitude (the centroid's distance to each side is a
    third of the altitude onto that side).
    """
    shape, size = np.asarray(shape), np.asarray(size, dtype=np.float64)
    w, h = size[:, 0], size[:, 1]
    leg_altitude = w * h / np.hypot(w / 2, h)
    return np.select([shape == DISC, shape == BOX, shape == TRIANGLE],
                     [w / 2, np.minimum(w, h) / 2, np.minimum(h, leg_altitude) / 3], np.nan)


def box_excursion(shape: np.ndarray, size: np.ndarray, position: np.ndarray, angle: np.ndarray,
                  bounds: np.ndarray) -> np.ndarray:
    """How far each object reaches outside the box (m; 0 inside).

    Args:
        shape, size: ``(K,)``, ``(K, 2)``.
        position, angle: ``(..., K, 2)``, ``(..., K)`` (any leading frame axes).
        bounds: ``(2, 2)`` ``[[xlo, xhi], [ylo, yhi]]``.

    Returns:
        ``(..., K)`` float64.
    """
    bounds = np.asarray(bounds, dtype=np.float64)
    position = np.asarray(position, dtype=np.float64)
    out = np.zeros(position.shape[:-1])
    for k, code in enumerate(np.asarray(shape)):
        if code == DISC:
            r = float(size[k][0]) / 2
            lo, hi = position[..., k, :] - r, position[..., k, :] + r                 # (..., 2)
        else:
            vertices = world_vertices(int(code), size[k], position[..., k, :], np.asarray(angle)[..., k])
            lo, hi = vertices.min(-2), vertices.max(-2)                                # (..., 2)
        outside = np.maximum(bounds[:, 0] - lo, 0.0) + np.maximum(hi - bounds[:, 1], 0.0)
        out[..., k] = outside.max(-1)
    return out


# ============================================================================ in memory
@dataclass(frozen=True, eq=False)
class ObjectScene:
    """Everything about one scene that does not change over time (K objects, S springs, O obstacles).

    Attributes:
        bounds: ``(2, 2)`` float32 walls ``[[xlo, xhi], [ylo, yhi]]`` (m); the inside of the box.
        shape: ``(K,)`` int64 ``SHAPES`` codes.
        size: ``(K, 2)`` float32 width and height in the body frame (m); discs: diameter twice.
        mass: ``(K,)`` float32 (kg).
        moment: ``(K,)`` float32 moment of inertia about the centre of mass (kg m^2).
        friction: ``(K,)`` float32 Coulomb coefficient (the engine multiplies the two of a contact).
        restitution: ``(K,)`` float32 elasticity (the engine multiplies the two of a contact).
        colour: ``(K, 3)`` float32 RGB in [0, 1], for rendering.
        agent: index of the controllable object.
        spring_pairs: ``(S, 2)`` int64 the two objects each damped spring joins (centre to centre).
        spring_rest_length: ``(S,)`` float32 (m).
        spring_stiffness: ``(S,)`` float32 (N/m).
        spring_damping: ``(S,)`` float32 (N s/m).
        obstacle_shape: ``(O,)`` int64 ``SHAPES`` codes of static obstacles.
        obstacle_position: ``(O, 2)`` float32 (m).
        obstacle_angle: ``(O,)`` float32 (rad).
        obstacle_size: ``(O, 2)`` float32 (m).
    """

    bounds: np.ndarray
    shape: np.ndarray
    size: np.ndarray
    mass: np.ndarray
    moment: np.ndarray
    friction: np.ndarray
    restitution: np.ndarray
    colour: np.ndarray
    agent: int = 0
    spring_pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    spring_rest_length: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    spring_stiffness: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    spring_damping: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    obstacle_shape: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    obstacle_position: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    obstacle_angle: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    obstacle_size: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))

    @property
    def num_objects(self) -> int:
        """K."""
        return int(len(self.shape))

    @property
    def num_springs(self) -> int:
        """S."""
        return int(len(self.spring_pairs))

    @property
    def num_obstacles(self) -> int:
        """O."""
        return int(len(self.obstacle_shape))

    def select(self, keep: Sequence[int]) -> "ObjectScene":
        """The scene with only objects ``keep`` (in that order): removing objects.

        Springs with an end removed are dropped, the others re-indexed.

        Raises:
            GnsInputError: the agent is not kept, or an index is out of range or repeated.
        """
        keep = _check_selection(keep, self.num_objects)
        if self.agent not in keep:
            raise GnsInputError("the agent cannot be removed", key="agent", expected=f"in {list(keep)}",
                                found=self.agent)
        new_index = {old: new for new, old in enumerate(keep)}
        springs = [s for s, (a, b) in enumerate(self.spring_pairs) if a in new_index and b in new_index]
        pairs = np.array([[new_index[a], new_index[b]] for a, b in self.spring_pairs[springs]],
                         dtype=np.int64).reshape(-1, 2)
        return dataclasses.replace(
            self, **{name: getattr(self, name)[keep] for name in ATTRIBUTE_ARRAYS}, agent=new_index[self.agent],
            spring_pairs=pairs, **{name: getattr(self, name)[springs] for name in SPRING_ARRAYS[1:]})


@dataclass(frozen=True, eq=False)
class ObjectState:
    """One frame of a scene's K objects: what changes over time.

    Attributes:
        position: ``(K, 2)`` centres of mass (m).
        angle: ``(K,)`` rotations (rad, counter-clockwise).
        velocity: ``(K, 2)`` (m/s).
        angular_velocity: ``(K,)`` (rad/s).
    """

    position: np.ndarray
    angle: np.ndarray
    velocity: np.ndarray
    angular_velocity: np.ndarray

    @property
    def num_objects(self) -> int:
        """K."""
        return int(len(self.position))

    def select(self, keep: Sequence[int]) -> "ObjectState":
        """The state of objects ``keep`` only (see :meth:`ObjectScene.select`)."""
        keep = _check_selection(keep, self.num_objects)
        return ObjectState(*(getattr(self, name)[keep] for name in STATE_ARRAYS))


def _check_selection(keep: Sequence[int], count: int) -> list[int]:
    keep = [int(k) for k in keep]
    if len(set(keep)) != len(keep) or any(not 0 <= k < count for k in keep) or not keep:
        raise GnsInputError("objects to keep must be distinct indices of existing objects", key="keep",
                            expected=f"distinct values in [0, {count})", found=keep)
    return keep


@dataclass(eq=False)
class ObjectTrajectory:
    """One object trajectory (or a time window of one), in memory.

    ``action[t]`` acts during the step from frame ``t`` to ``t + 1`` and the contact arrays say
    which pairs touched during that step, so a window of W frames holds W - 1 of each.

    Attributes:
        scene: the static part (attributes, agent, springs, obstacles, box).
        position: ``(T, K, 2)`` float32 centres of mass (m).
        angle: ``(T, K)`` float32 rotations (rad, counter-clockwise, unwrapped: continuous in time).
        velocity: ``(T, K, 2)`` float32 (m/s).
        angular_velocity: ``(T, K)`` float32 (rad/s).
        action: ``(T-1, K, 3)`` float32 force x, y (N, world frame) and torque (N m) applied at each
            object's centre of mass, constant over the step.
        contacts: ``(T-1, K, K)`` bool, symmetric: objects i and j touched during step t; or None.
        wall_contacts: ``(T-1, K, 4)`` bool: object k touched wall ``WALLS[w]``; or None.
        obstacle_contacts: ``(T-1, K, O)`` bool: object k touched obstacle o; or None.
        key: the trajectory's name in its source file (e.g. ``"00003"``), or None.
    """

    scene: ObjectScene
    position: np.ndarray
    angle: np.ndarray
    velocity: np.ndarray
    angular_velocity: np.ndarray
    action: np.ndarray
    contacts: np.ndarray | None = None
    wall_contacts: np.ndarray | None = None
    obstacle_contacts: np.ndarray | None = None
    key: str | None = None

    @property
    def num_frames(self) -> int:
        """T."""
        return int(self.position.shape[0])

    @property
    def num_objects(self) -> int:
        """K."""
        return int(self.position.shape[1])

    @property
    def has_contacts(self) -> bool:
        """Whether the contact arrays are present."""
        return self.contacts is not None

    def state(self, t: int) -> ObjectState:
        """Frame ``t`` as an :class:`ObjectState` (copies)."""
        return ObjectState(*(getattr(self, name)[t].copy() for name in STATE_ARRAYS))

    def arrays(self) -> dict[str, np.ndarray]:
        """Every stored array by its HDF5 name (optional ones only when present)."""
        out = {name: getattr(self, name) for name in (*STATE_ARRAYS, "action")}
        out.update({name: getattr(self.scene, name) for name in ATTRIBUTE_ARRAYS})
        out["agent"] = np.asarray(self.scene.agent)
        for group in (SPRING_ARRAYS, OBSTACLE_ARRAYS):  # none of a group when it is empty
            if any(np.size(getattr(self.scene, name)) for name in group):
                out.update({name: getattr(self.scene, name) for name in group})
        if self.contacts is not None:
            out["contacts"], out["wall_contacts"] = self.contacts, self.wall_contacts
            if self.scene.num_obstacles:
                out["obstacle_contacts"] = self.obstacle_contacts
        return out


# ============================================================================ metadata
@dataclass(frozen=True)
class ObjectMetadata:
    """Everything about an object dataset that is not a trajectory (``metadata.json``).

    Statistics are per step, like the particle metadata (``gns.data.stats``): ``vel`` and ``acc``
    are finite differences of positions (m/step, m/step^2), ``angular_vel`` and ``angular_acc``
    of angles (rad/step, rad/step^2); ``action`` is the stored actions (N, N, N m). Unknown keys
    are kept in ``extra`` and written back.
    """

    bounds: list[list[float]]  # (2, 2) the box: walls at [[xlo, xhi], [ylo, yhi]] (m)
    dt: float  # seconds between two stored frames
    sequence_length: int | None = None  # steps per trajectory (frames - 1), as for particle datasets
    num_objects: list[int] = field(default_factory=lambda: [1, 1])  # [min, max] objects per scene
    shape_kinds: dict[str, int] = field(default_factory=lambda: dict(SHAPES))  # shape name -> code
    contacts: bool = False  # every trajectory carries contacts / wall_contacts (/ obstacle_contacts)
    statistics: dict[str, list[float]] | None = None  # the _STATISTICS_KEYS, each a list of floats
    generator: dict[str, Any] | None = None  # provenance (solver, version, config, seed, ...), free form
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys, preserved verbatim

    def __post_init__(self) -> None:
        _check_metadata(self, source=None)

    @property
    def dim(self) -> int:
        return 2

    def to_dict(self) -> dict[str, Any]:
        """The JSON object for ``metadata.json`` (unset optional keys are left out)."""
        out: dict[str, Any] = {
            "kind": OBJECTS_KIND, "dim": 2, "bounds": [list(b) for b in self.bounds], "dt": self.dt,
            "num_objects": list(self.num_objects), "shape_kinds": dict(self.shape_kinds),
            "attributes": list(ATTRIBUTE_ARRAYS), "state": list(STATE_ARRAYS),
            "action_components": list(ACTION_COMPONENTS), "walls": list(WALLS), "contacts": self.contacts,
        }
        if self.sequence_length is not None:
            out["sequence_length"] = self.sequence_length
        if self.statistics is not None:
            out.update(self.statistics)
        if self.generator is not None:
            out["generator"] = self.generator
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: object = None) -> "ObjectMetadata":
        """Parse and validate an object ``metadata.json`` object.

        Raises:
            GnsInputError: not an object dataset, a missing key, or a value of the wrong type or
                range; the message names ``source`` and the key.
        """
        if not isinstance(d, Mapping):
            raise GnsInputError("metadata must be a JSON object", file=source, expected="object",
                                found=type(d).__name__)
        if d.get("kind") != OBJECTS_KIND:
            raise GnsInputError("not an object dataset", file=source, key="kind", expected=f'"{OBJECTS_KIND}"',
                                found=repr(d.get("kind")))
        for key in ("dim", "bounds", "dt", "num_objects", "shape_kinds"):
            if key not in d:
                raise GnsInputError("missing required metadata key", file=source, key=key)
        if d["dim"] != 2:
            raise GnsInputError("object datasets are 2-D", file=source, key="dim", expected=2, found=d["dim"])
        statistics = {k: _float_list(d[k], k, source) for k in _STATISTICS_KEYS if k in d}
        if statistics and len(statistics) != len(_STATISTICS_KEYS):
            missing = [k for k in _STATISTICS_KEYS if k not in statistics]
            raise GnsInputError("statistics are incomplete", file=source, key=missing[0],
                                expected=list(_STATISTICS_KEYS), found=sorted(statistics))
        if not isinstance(d["shape_kinds"], Mapping):
            raise GnsInputError("must be a JSON object", file=source, key="shape_kinds",
                                expected='{"disc": 0, ...}', found=repr(d["shape_kinds"]))
        values = dict(
            bounds=[_float_list(b, "bounds", source) for b in _list(d["bounds"], "bounds", source)],
            dt=_as_float(d["dt"], "dt", source),
            sequence_length=None if d.get("sequence_length") is None
            else _as_int(d["sequence_length"], "sequence_length", source),
            num_objects=[_as_int(v, "num_objects", source) for v in _list(d["num_objects"], "num_objects", source)],
            shape_kinds={str(k): _as_int(v, f"shape_kinds/{k}", source) for k, v in d["shape_kinds"].items()},
            contacts=d.get("contacts", False), statistics=statistics or None, generator=d.get("generator"),
        )
        _check_metadata(values, source)
        own = {"kind", "dim", "attributes", "state", "action_components", "walls", *values, *_STATISTICS_KEYS}
        return cls(**values, extra={k: v for k, v in d.items() if k not in own})


def _list(value: Any, key: str, source: object) -> list:
    if not isinstance(value, (list, tuple)):
        raise GnsInputError("must be a list", file=source, key=key, expected="list", found=repr(value))
    return list(value)


def _float_list(value: Any, key: str, source: object) -> list[float]:
    return [_as_float(v, key, source) for v in _list(value, key, source)]


def _check_metadata(meta: ObjectMetadata | Mapping[str, Any], source: object) -> None:
    """Ranges of already-typed metadata values (a dataclass or the dict that will make one)."""
    v = dataclasses.asdict(meta) if isinstance(meta, ObjectMetadata) else meta
    bounds = np.asarray(v["bounds"], dtype=np.float64)
    if bounds.shape != (2, 2) or not np.isfinite(bounds).all() or not (bounds[:, 0] < bounds[:, 1]).all():
        raise GnsInputError("must be two finite [lo, hi] pairs with lo < hi", file=source, key="bounds",
                            expected="[[xlo, xhi], [ylo, yhi]]", found=v["bounds"])
    if not (math.isfinite(v["dt"]) and v["dt"] > 0):
        raise GnsInputError("must be a finite positive number", file=source, key="dt", expected="> 0", found=v["dt"])
    if v["sequence_length"] is not None and v["sequence_length"] < 1:
        raise GnsInputError("must be a positive number of steps", file=source, key="sequence_length",
                            expected=">= 1", found=v["sequence_length"])
    count = v["num_objects"]
    if len(count) != 2 or not 1 <= count[0] <= count[1]:
        raise GnsInputError("must be [min, max] objects per scene", file=source, key="num_objects",
                            expected="1 <= min <= max", found=count)
    codes = list(v["shape_kinds"].values())
    if not codes or len(set(codes)) != len(codes):
        raise GnsInputError("needs distinct codes, at least one", file=source, key="shape_kinds",
                            expected='e.g. {"disc": 0, "box": 1}', found=v["shape_kinds"])
    unknown = {n: c for n, c in v["shape_kinds"].items() if SHAPES.get(n) != c}
    if unknown:
        raise GnsInputError("unknown shape kind or code", file=source, key="shape_kinds",
                            expected=f"a subset of {SHAPES}", found=unknown)
    for key, values in (v["statistics"] or {}).items():
        width = _STATISTICS_WIDTHS[key.rsplit("_", 1)[0]]
        if len(values) != width or not all(math.isfinite(x) for x in values):
            raise GnsInputError(f"needs {width} finite values", file=source, key=key, expected=f"{width} values",
                                found=values)
    if not isinstance(v["contacts"], bool):
        raise GnsInputError("must be true or false", file=source, key="contacts", expected="true or false",
                            found=repr(v["contacts"]))
    if v["generator"] is not None and not isinstance(v["generator"], Mapping):
        raise GnsInputError("must be a JSON object", file=source, key="generator", expected="object",
                            found=repr(v["generator"]))


def load_object_metadata(dataset_dir: str | os.PathLike) -> ObjectMetadata:
    """Read and validate ``<dataset_dir>/metadata.json`` of an object dataset.

    Raises:
        GnsInputError: the file is missing, not JSON, not ``"kind": "objects"``, or a key is
            missing or invalid; the message names the file and the key.
    """
    path = Path(dataset_dir) / METADATA_FILE
    if not path.is_file():
        raise GnsInputError("dataset has no metadata file", file=path,
                            expected=f"{METADATA_FILE} beside the split files", found=_listing(Path(dataset_dir)))
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise GnsInputError(f"not valid JSON: {exc}", file=path) from None
    return ObjectMetadata.from_dict(raw, source=path)


def save_object_metadata(meta: ObjectMetadata, dataset_dir: str | os.PathLike) -> Path:
    """Write ``<dataset_dir>/metadata.json`` atomically (temporary file, then ``os.replace``)."""
    return write_json_atomic(Path(dataset_dir) / METADATA_FILE, meta.to_dict())


def is_object_dataset(dataset_dir: str | os.PathLike) -> bool:
    """True when ``<dataset_dir>/metadata.json`` is a JSON object with ``"kind": "objects"``."""
    path = Path(dataset_dir) / METADATA_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return False
    return isinstance(raw, dict) and raw.get("kind") == OBJECTS_KIND


# ============================================================================ validation
def check_layout(shapes: Mapping[str, tuple[tuple[int, ...], np.dtype]], *, file: object, name: str,
                 contacts: bool = False) -> dict[str, int]:
    """Check that a trajectory has every array it needs, each of the right shape and dtype kind.

    Works from shapes and dtypes alone (an HDF5 group is checked without reading it).

    Args:
        shapes: array name -> (shape, dtype) of what the trajectory holds.
        file, name: where it is, for the errors (keys read ``<name>/<array>``).
        contacts: the contact arrays are required (the metadata says every trajectory has them).

    Returns:
        The sizes ``{"T", "K", "S", "O"}``.

    Raises:
        GnsInputError: a missing or unknown array, or a wrong shape or dtype; the message names
            the file, the key, the expected shape (symbols and numbers) and the one found.
    """
    unknown = sorted(set(shapes) - set(LAYOUT))
    if unknown:
        raise GnsInputError("unknown array in an object trajectory", file=file, key=f"{name}/{unknown[0]}",
                            expected=f"names from {list(LAYOUT)}", found=unknown)
    required = list(REQUIRED_ARRAYS)
    for group in (SPRING_ARRAYS, OBSTACLE_ARRAYS):  # all of a group, or none of it
        if any(n in shapes for n in group):
            required += group
    if contacts or any(n in shapes for n in CONTACT_ARRAYS):
        required += ["contacts", "wall_contacts"] + (["obstacle_contacts"] if "obstacle_shape" in shapes else [])
    for array in required:
        if array not in shapes:
            raise GnsInputError("trajectory lacks an array", file=file, key=f"{name}/{array}",
                                expected=f"dataset '{array}'", found=sorted(shapes))
    position = tuple(shapes["position"][0])
    if len(position) != 3 or position[0] < 1 or position[1] < 1:
        raise GnsInputError("position must be (T, K, 2) with T, K >= 1", file=file, key=f"{name}/position",
                            expected="(T, K, 2)", found=position)

    def leading(array: str) -> int:  # S or O: the first axis of the group's first array, 0 without it
        shape = tuple(shapes[array][0]) if array in shapes else (0,)
        return shape[0] if shape else -1  # a scalar: never a valid size, reported below

    sizes = {"T": position[0], "T-1": position[0] - 1, "K": position[1], "S": leading("spring_pairs"),
             "O": leading("obstacle_shape")}
    for array, (shape, dtype) in shapes.items():
        axes, kind = LAYOUT[array]
        want = tuple(sizes[a] if isinstance(a, str) else a for a in axes)
        if tuple(shape) != want:
            symbols = "(" + ", ".join(str(a) for a in axes) + (",)" if len(axes) == 1 else ")")
            raise GnsInputError(f"{array} has the wrong shape", file=file, key=f"{name}/{array}",
                                expected=f"{symbols} = {want}", found=tuple(shape))
        found_kind = np.dtype(dtype).kind
        ok = found_kind == "f" if kind == "f" else found_kind in "iu" if kind == "i" else found_kind in "biu"
        if not ok:
            expected = {"f": "floating point", "i": "integer", "b": "boolean"}[kind]
            raise GnsInputError(f"{array} has the wrong dtype", file=file, key=f"{name}/{array}",
                                expected=expected, found=np.dtype(dtype).name)
    return {k: sizes[k] for k in ("T", "K", "S", "O")}


def check_scene(scene: ObjectScene, *, file: object = None, name: str = "scene",
                shape_kinds: Mapping[str, int] | None = None) -> None:
    """Check the values of a scene's arrays (their shapes are checked by :func:`check_layout`).

    Raises:
        GnsInputError: naming the array, the object (or spring, obstacle) index and its value: an
            unknown shape code, a non-positive size, mass or moment, a disc whose width and height
            differ, a negative friction or restitution, a colour outside [0, 1], the agent or a
            spring end outside the objects, a spring joining an object to itself, non-finite values.
    """
    _check_scene_layout(scene, file=file, name=name)
    codes = set((shape_kinds or SHAPES).values())
    bounds = np.asarray(scene.bounds, dtype=np.float64)
    if bounds.shape != (2, 2) or not np.isfinite(bounds).all() or not (bounds[:, 0] < bounds[:, 1]).all():
        raise GnsInputError("bounds must be [[xlo, xhi], [ylo, yhi]] with lo < hi", file=file,
                            key=f"{name}/bounds", expected="(2, 2), lo < hi", found=scene.bounds)
    count = scene.num_objects
    for array in ATTRIBUTE_ARRAYS[1:] + SPRING_ARRAYS[1:] + OBSTACLE_ARRAYS[1:]:
        check_finite(np.asarray(getattr(scene, array), dtype=np.float64), file=file, key=f"{name}/{array}",
                     axes=("obstacle" if array.startswith("obstacle") else
                           "spring" if array.startswith("spring") else "object", "component"))
    def positive(v: np.ndarray) -> np.ndarray:
        return v > 0

    def non_negative(v: np.ndarray) -> np.ndarray:
        return v >= 0

    def known(v: np.ndarray) -> np.ndarray:
        return np.isin(v, sorted(codes))

    rules = (  # (array, what its rows are, which values are good, message, expected)
        ("shape", "object", known, "unknown shape code", f"one of {sorted(codes)}"),
        ("obstacle_shape", "obstacle", known, "unknown shape code", f"one of {sorted(codes)}"),
        ("size", "object", positive, "sizes must be positive", "> 0"),
        ("obstacle_size", "obstacle", positive, "sizes must be positive", "> 0"),
        ("mass", "object", positive, "mass must be positive", "> 0"),
        ("moment", "object", positive, "moment must be positive", "> 0"),
        ("friction", "object", non_negative, "friction must be non-negative", ">= 0"),
        ("restitution", "object", non_negative, "restitution must be non-negative", ">= 0"),
        ("colour", "object", lambda v: (v >= 0) & (v <= 1), "colour outside [0, 1]", "RGB in [0, 1]"),
        ("spring_rest_length", "spring", non_negative, "rest length must be non-negative", ">= 0"),
        ("spring_stiffness", "spring", non_negative, "stiffness must be non-negative", ">= 0"),
        ("spring_damping", "spring", non_negative, "damping must be non-negative", ">= 0"),
    )
    for array, item, good, message, expected in rules:
        values = np.asarray(getattr(scene, array))
        _first_bad(good(values), values, file, name, array, item, message, expected)
    for array, shapes, item in (("size", scene.shape, "object"), ("obstacle_size", scene.obstacle_shape, "obstacle")):
        sizes = np.asarray(getattr(scene, array))
        _first_bad((np.asarray(shapes) != DISC) | (sizes[:, 0] == sizes[:, 1]), sizes, file, name, array, item,
                   "a disc's size is its diameter twice", "width == height")
    if not 0 <= int(scene.agent) < count:
        raise GnsInputError("the agent must be one of the objects", file=file, key=f"{name}/agent",
                            expected=f"in [0, {count})", found=int(scene.agent))
    pairs = np.asarray(scene.spring_pairs).reshape(-1, 2)
    _first_bad((pairs >= 0) & (pairs < count), pairs, file, name, "spring_pairs", "spring",
               "a spring end is not an object", f"in [0, {count})")
    _first_bad(pairs[:, 0] != pairs[:, 1], pairs, file, name, "spring_pairs", "spring",
               "a spring joins two different objects", "two distinct objects")


def _check_scene_layout(scene: ObjectScene, *, file: object, name: str) -> None:
    """:func:`check_layout` of a scene alone (K from ``shape``; one frame stands in for the states)."""
    count = len(np.atleast_1d(scene.shape))
    shapes = {n: (np.shape(getattr(scene, n)), np.asarray(getattr(scene, n)).dtype)
              for n in (*ATTRIBUTE_ARRAYS, *SPRING_ARRAYS, *OBSTACLE_ARRAYS)}
    shapes["agent"] = (np.shape(scene.agent), np.asarray(scene.agent).dtype)
    frame = {"position": (1, count, 2), "angle": (1, count), "velocity": (1, count, 2),
             "angular_velocity": (1, count), "action": (0, count, 3)}
    shapes.update({n: (shape, np.dtype(np.float32)) for n, shape in frame.items()})
    check_layout(shapes, file=file, name=name)


def _first_bad(good: np.ndarray, values: np.ndarray, file: object, name: str, array: str, what: str,
               message: str, expected: str) -> None:
    """Raise for the first item (row) whose ``good`` is False, naming its index and values."""
    good = np.asarray(good)
    if good.size == 0:
        return
    rows = good.reshape(len(good), -1).all(1) if good.ndim else np.array([bool(good)])
    if rows.all():
        return
    index = int(np.flatnonzero(~rows)[0])
    found = readable(np.asarray(values)[index])
    raise GnsInputError(f"{what} {index}: {message}", file=file, key=f"{name}/{array}", expected=expected,
                        found=found)


def readable(values: Any) -> Any:
    """Numbers for an error message: floats to 6 significant digits (float32 prints as 1.0199999809)."""
    values = np.asarray(values)
    if values.dtype.kind != "f":
        return values.tolist()
    rounded = [float(f"{v:.6g}") for v in values.astype(np.float64).ravel()]
    return rounded[0] if values.ndim == 0 else np.reshape(rounded, values.shape).tolist()


def canonical_scene(scene: ObjectScene) -> ObjectScene:
    """The scene with the stored dtypes: float32 values and int64 codes and indices.

    Rounding to float32 here, before a simulation, is what makes a stored scene reproduce exactly
    what was simulated.
    """
    def cast(name: str, value: Any) -> Any:
        if name == "agent":
            return int(value)
        kind = "i" if name in ("shape", "obstacle_shape", "spring_pairs") else "f"
        array = np.asarray(value, dtype=np.int64 if kind == "i" else np.float32)
        return array.reshape(-1, 2) if name in ("spring_pairs",) else array

    return ObjectScene(**{f.name: cast(f.name, getattr(scene, f.name)) for f in dataclasses.fields(ObjectScene)})


def canonical_state(state: ObjectState) -> ObjectState:
    """The state as float32 arrays (the stored dtype)."""
    return ObjectState(*(np.asarray(getattr(state, name), dtype=np.float32) for name in STATE_ARRAYS))


def validate_object_trajectory(traj: ObjectTrajectory, metadata: ObjectMetadata | None = None, *,
                               file: object = None, name: str | None = None) -> ObjectTrajectory:
    """Check an in-memory trajectory and return it with canonical dtypes.

    Args:
        traj: the trajectory to check.
        metadata: also checks the box, the shape codes and the object count against it, and that
            contacts are present when it declares them.
        file, name: where the trajectory comes from or goes to, for error messages.

    Raises:
        GnsInputError: a wrong shape or dtype, a value out of range, or a non-finite value.
    """
    name = name or traj.key or "trajectory"
    shapes = {k: (np.shape(v), np.asarray(v).dtype) for k, v in traj.arrays().items()}
    check_layout(shapes, file=file, name=name, contacts=bool(metadata and metadata.contacts))
    scene = canonical_scene(traj.scene)
    check_scene(scene, file=file, name=name, shape_kinds=metadata.shape_kinds if metadata else None)
    if metadata is not None:
        _check_against_metadata(scene, metadata, file=file, name=name)
    per_frame = (np.asarray(getattr(traj, n), dtype=np.float32) for n in (*STATE_ARRAYS, "action"))
    out = ObjectTrajectory(scene, *per_frame, key=traj.key)
    for array in (*STATE_ARRAYS, "action"):
        check_finite(getattr(out, array), file=file, key=f"{name}/{array}", axes=("time index", "object"))
    if traj.contacts is not None:
        out.contacts = np.asarray(traj.contacts, dtype=bool)
        out.wall_contacts = np.asarray(traj.wall_contacts, dtype=bool)
        num_steps = out.num_frames - 1
        out.obstacle_contacts = (np.asarray(traj.obstacle_contacts, dtype=bool) if scene.num_obstacles
                                 else np.zeros((num_steps, out.num_objects, 0), dtype=bool))
    return out


def _check_against_metadata(scene: ObjectScene, metadata: ObjectMetadata, *, file: object, name: str) -> None:
    if not np.array_equal(scene.bounds, np.asarray(metadata.bounds, dtype=np.float32)):
        raise GnsInputError("the scene's box differs from the dataset's", file=file, key=f"{name}/bounds",
                            expected=metadata.bounds, found=scene.bounds.tolist())
    low, high = metadata.num_objects
    if not low <= scene.num_objects <= high:
        raise GnsInputError("object count outside the metadata's num_objects", file=file, key=f"{name}/position",
                            expected=f"[{low}, {high}] objects", found=scene.num_objects)


# ============================================================================ reading
class ObjectSplit(LazyH5Split[ObjectTrajectory]):
    """Lazy, random-access view of one object split file (``train.h5`` etc.).

    The file stays open between reads; the object pickles as its path and metadata and reopens
    the file on first use in each process (DataLoader workers). Trajectory ``i`` is checked when
    first touched: the layout of every array, and the values of its scene (which is then cached).
    Per-frame arrays are read, and checked for NaN/inf, one window at a time.
    """

    metadata: ObjectMetadata

    def __init__(self, path: str | os.PathLike, metadata: ObjectMetadata) -> None:
        super().__init__(path, metadata)

    def _reset_cache(self) -> None:
        self._scenes: dict[int, tuple[ObjectScene, dict[str, int]]] = {}

    def _entry(self, i: int) -> tuple[int, h5py.Group, ObjectScene, dict[str, int]]:
        i = self._index(i)
        key = self._keys[i]
        group = self._h5()[key]
        if i not in self._scenes:
            self._scenes[i] = self._check_group(group, key)
        return (i, group, *self._scenes[i])

    def _check_group(self, group: h5py.Group, key: str) -> tuple[ObjectScene, dict[str, int]]:
        not_arrays = [n for n, item in group.items() if not isinstance(item, h5py.Dataset)]
        if not_arrays:
            raise GnsInputError("an object trajectory holds datasets only", file=self.path,
                                key=f"{key}/{not_arrays[0]}", expected="a dataset", found="a group")
        shapes = {n: (item.shape, item.dtype) for n, item in group.items()}
        sizes = check_layout(shapes, file=self.path, name=key, contacts=self.metadata.contacts)
        static = {n: group[n][()] for n in shapes if n not in _PER_FRAME}  # small: read whole, once
        scene = canonical_scene(ObjectScene(bounds=np.asarray(self.metadata.bounds),
                                            **{n: v for n, v in static.items()}))
        check_scene(scene, file=self.path, name=key, shape_kinds=self.metadata.shape_kinds)
        _check_against_metadata(scene, self.metadata, file=self.path, name=key)
        return scene, sizes

    # ------------------------------------------------------------------ reads
    def num_frames(self, i: int) -> int:
        """T of trajectory ``i`` (no per-frame data are read)."""
        return self._entry(i)[3]["T"]

    def num_objects(self, i: int) -> int:
        """K of trajectory ``i``."""
        return self._entry(i)[3]["K"]

    def scene(self, i: int) -> ObjectScene:
        """The static part of trajectory ``i`` (checked and cached on first access)."""
        return self._entry(i)[2]

    def read_window(self, i: int, start: int, stop: int) -> ObjectTrajectory:
        """Frames ``start:stop`` with the ``stop - start - 1`` actions (and contacts) between them.

        Only those slices are read from disk.

        Raises:
            IndexError: the window lies outside the trajectory.
            GnsInputError: a NaN or inf inside the window.
        """
        i, group, scene, sizes = self._entry(i)
        key = self._keys[i]
        self._check_window(start, stop, sizes["T"], key)
        values = {}
        for array in (*STATE_ARRAYS, "action"):
            last = stop if array in STATE_ARRAYS else stop - 1
            values[array] = group[array][start:last].astype(np.float32, copy=False)
            check_finite(values[array], file=self.path, key=f"{key}/{array}", axes=("time index", "object"),
                         time_offset=start)
        traj = ObjectTrajectory(scene, **values, key=key)
        if "contacts" in group:
            traj.contacts = group["contacts"][start:stop - 1].astype(bool)
            traj.wall_contacts = group["wall_contacts"][start:stop - 1].astype(bool)
            traj.obstacle_contacts = (group["obstacle_contacts"][start:stop - 1].astype(bool) if sizes["O"]
                                      else np.zeros((stop - 1 - start, sizes["K"], 0), dtype=bool))
        return traj

    def __getitem__(self, i: int) -> ObjectTrajectory:
        """Load trajectory ``i`` completely."""
        return self.read_window(i, 0, self.num_frames(i))


def open_object_split(dataset_dir: str | os.PathLike, split: str,
                      metadata: ObjectMetadata | None = None) -> ObjectSplit:
    """Open ``<dataset_dir>/<split>.h5`` of an object dataset for lazy reading.

    Args:
        dataset_dir: the dataset directory.
        split: ``"train"``, ``"valid"``, ``"test"`` (or any other split file's stem).
        metadata: loaded from ``metadata.json`` when None (the box and shape codes live there).

    Raises:
        GnsInputError: the split file or the metadata is missing or invalid.
    """
    directory = Path(dataset_dir)
    path = existing_split_path(directory, split, name_expected=False)
    return ObjectSplit(path, metadata if metadata is not None else load_object_metadata(directory))


# ============================================================================ writing
def write_object_split(path: str | os.PathLike, trajectories: Iterable[ObjectTrajectory],
                       metadata: ObjectMetadata | None = None) -> Path:
    """Write object trajectories to one split file, atomically.

    Each trajectory is validated (against ``metadata`` when given) and written in turn into a
    temporary file that replaces ``path`` only once all are good, so a failed write never leaves a
    half-written split. Groups are named ``00000, 00001, ...``; per-frame arrays are chunked along
    time; codes and indices are stored as int32.

    Returns:
        The path written.

    Raises:
        GnsInputError: a bad trajectory (see :func:`validate_object_trajectory`).
    """
    path = Path(path)
    with replacing_h5(path) as out:
        for index, traj in enumerate(trajectories):
            name = f"{index:05d}"
            traj = validate_object_trajectory(traj, metadata, file=path, name=traj.key or name)
            group = out.create_group(name)
            for array, values in traj.arrays().items():
                kind = LAYOUT[array][1]
                values = np.asarray(values, dtype=np.int32 if kind == "i" else bool if kind == "b" else np.float32)
                chunks = None
                if array in _PER_FRAME and values.size:
                    chunks = (min(values.shape[0], TIME_CHUNK), *values.shape[1:])
                group.create_dataset(array, data=values, chunks=chunks)
    return path


# ============================================================================ statistics
def compute_object_statistics(split: ObjectSplit | Iterable[ObjectTrajectory]) -> dict[str, list[float]]:
    """Per-step velocity and acceleration statistics of positions and angles, and of the actions.

    Velocities and accelerations are finite differences per step, as ``gns.data.stats`` computes
    them for particles (streamed the same way, one trajectory at a time).

    Returns:
        ``vel_mean``, ``vel_std``, ``acc_mean``, ``acc_std`` (2 values each), their ``angular_*``
        counterparts (1 value each) and ``action_mean``, ``action_std`` (3 values each).
    """
    from gns.data.stats import StatisticsAccumulator, _RunningMoments

    box = [[0.0, 1.0], [0.0, 1.0]]  # unused: no dimension is periodic
    linear, angular = StatisticsAccumulator(box, [False, False]), StatisticsAccumulator(box[:1], [False])
    actions = _RunningMoments(len(ACTION_COMPONENTS))
    trajectories = (split[i] for i in range(len(split))) if isinstance(split, ObjectSplit) else split
    for traj in trajectories:
        linear.start_trajectory()
        angular.start_trajectory()
        linear.add_positions(traj.position)
        angular.add_positions(traj.angle[..., None])                          # (T, K, 1)
        actions.add(traj.action)
    out = linear.result()
    out.update({f"angular_{k}": v for k, v in angular.result().items()})
    out.update(action_mean=actions.mean.tolist(), action_std=actions.std().tolist())
    return out


__all__ = [
    "ACTION_COMPONENTS", "ATTRIBUTE_ARRAYS", "BOX", "CONTACT_ARRAYS", "DISC", "LAYOUT", "OBJECTS_KIND",
    "OBSTACLE_ARRAYS", "SHAPES", "SPRING_ARRAYS", "STATE_ARRAYS", "TRIANGLE", "WALLS", "ObjectMetadata",
    "ObjectScene", "ObjectSplit", "ObjectState", "ObjectTrajectory", "bounding_radius", "box_excursion",
    "canonical_scene", "canonical_state", "check_layout", "check_scene", "compute_object_statistics",
    "inner_radius", "is_object_dataset", "load_object_metadata", "local_vertices", "object_area", "object_moment",
    "open_object_split", "readable", "save_object_metadata", "validate_object_trajectory", "world_vertices",
    "write_object_split",
]
