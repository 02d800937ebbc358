"""The state of rigid-object scenes: a window of poses and actions per object (:class:`ObjectState`).

Conventions (``docs/objects.md``): positions are centres of mass (m), angles counter-clockwise
(rad, unwrapped), both sampled every frame. The action applied during the step from frame ``t`` to
``t + 1`` (force x, y in N, torque in N m, world frame) sits *at frame* ``t``, so the last frame of
a window carries the action that drives the next step; rollouts take it from their controls, as
the mesh simulator takes its prescribed inputs. A window that ends at a trajectory's last frame has
no next action: its last action is zero (no step is ever predicted from it).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from gns.errors import GnsInputError
from gns.state import State

__all__ = ["ObjectState", "ATTRIBUTES", "SPRING_VALUES", "OBSTACLES", "no_obstacles", "pad_obstacles",
           "check_object_state"]

# Static per-object attributes and their per-object shapes (after the object axis); ``shape`` is int64.
ATTRIBUTES: dict[str, tuple[int, ...]] = {"shape": (), "size": (2,), "mass": (), "moment": (), "friction": (),
                                          "restitution": (), "colour": (3,)}
# Dynamic fields and their widths.
FIELD_WIDTHS: dict[str, int] = {"position": 2, "angle": 1, "action": 3}
# The values of each spring (link "springs"), in this order: rest length (m), stiffness (N/m), damping (N s/m).
SPRING_VALUES = ("spring_rest_length", "spring_stiffness", "spring_damping")
# Static obstacles of each scene (per-system attributes, ``(B, M, ...)`` after the scene and obstacle axes),
# named as in the object format; ``M`` is the most obstacles of any scene of the batch, and the rows of a
# scene with fewer are padding, with shape code -1 (and zeros elsewhere).
OBSTACLES: dict[str, tuple[int, ...]] = {"obstacle_shape": (), "obstacle_size": (2,), "obstacle_position": (2,),
                                         "obstacle_angle": ()}


def no_obstacles(scenes: int, device: torch.device | str | None = None) -> dict[str, Tensor]:
    """:data:`OBSTACLES` of ``scenes`` scenes without obstacles (``M = 0``)."""
    return {name: torch.zeros(scenes, 0, *tail, dtype=torch.long if name == "obstacle_shape" else torch.float32,
                              device=device) for name, tail in OBSTACLES.items()}


def pad_obstacles(obstacles: Mapping[str, Tensor], width: int) -> dict[str, Tensor]:
    """:data:`OBSTACLES` ``(B, M, ...)`` padded to ``(B, width, ...)`` (shape code -1, zeros elsewhere)."""
    out = {}
    for name, values in obstacles.items():
        pad = values.new_full((values.shape[0], width - values.shape[1], *values.shape[2:]),
                              -1 if name == "obstacle_shape" else 0)
        out[name] = torch.cat([values, pad], dim=1)
    return out


class ObjectState(State):
    """Windows of poses and actions of ``B`` scenes of rigid objects (a :class:`gns.state.State`).

    Args:
        position: ``(K, W, 2)`` centres of mass over a window of ``W`` frames (oldest first): field ``"position"``.
        angle: ``(K, W, 1)`` angles (rad): field ``"angle"``.
        action: ``(K, W, 3)`` force x, y and torque applied from each frame to the next: field ``"action"``.
        attributes: the static per-object :data:`ATTRIBUTES`: ``shape (K,)`` int64 codes of
            ``gns.data.objects.SHAPES``, ``size (K, 2)``, ``mass (K,)``, ``moment (K,)``,
            ``friction (K,)``, ``restitution (K,)``, ``colour (K, 3)``.
        n_objects: ``(B,)`` int64 objects per scene (the objects of scene ``b`` are contiguous).
        springs: ``(2, S)`` int64 the two objects each damped spring joins (indices into the batch's
            objects), or None for none: link ``"springs"``, always present (``S = 0`` without springs, so
            that scenes with and without springs batch together).
        spring_values: ``(S, 3)`` the :data:`SPRING_VALUES` of each spring (its link values).
        obstacles: the static obstacles of each scene, :data:`OBSTACLES` (system attributes): ``obstacle_shape
            (B, M)`` int64 (-1: padding), ``obstacle_size (B, M, 2)``, ``obstacle_position (B, M, 2)``,
            ``obstacle_angle (B, M)``; None for none (``M = 0``, so that every scene batches with every other).

    Raises:
        GnsInputError: a field, attribute or spring array of the wrong shape (:func:`check_object_state`).
    """

    def __init__(self, position: Tensor, angle: Tensor, action: Tensor, attributes: Mapping[str, Tensor],
                 n_objects: Tensor, springs: Tensor | None = None, spring_values: Tensor | None = None,
                 obstacles: Mapping[str, Tensor] | None = None) -> None:
        if springs is None:
            springs = torch.zeros(2, 0, dtype=torch.long, device=position.device)
            spring_values = position.new_zeros(0, len(SPRING_VALUES))
        if spring_values is None or tuple(spring_values.shape) != (springs.shape[-1], len(SPRING_VALUES)):
            raise GnsInputError("springs need their rest length, stiffness and damping", key="spring_values",
                                expected=(springs.shape[-1], len(SPRING_VALUES)),
                                found=None if spring_values is None else tuple(spring_values.shape))
        if obstacles is None:
            obstacles = no_obstacles(len(n_objects), position.device)
        super().__init__(fields={"position": position, "angle": angle, "action": action}, static=attributes,
                         system=obstacles, n=n_objects, links={"springs": springs},
                         link_values={"springs": spring_values})
        check_object_state(self, frames=1)

    @classmethod
    def concat(cls, states):
        """As :meth:`gns.state.State.concat`, with the obstacles of every state padded to the most of any."""
        states = list(states)
        width = max((s.system["obstacle_shape"].shape[1] for s in states if "obstacle_shape" in s.system), default=0)
        padded = [s.replace(system={**s.system, **pad_obstacles({k: s.system[k] for k in OBSTACLES}, width)})
                  if "obstacle_shape" in s.system and s.system["obstacle_shape"].shape[1] != width else s
                  for s in states]
        return super().concat(padded)

    @property
    def position(self) -> Tensor:
        """``(K, W, 2)``."""
        return self.fields["position"]

    @property
    def angle(self) -> Tensor:
        """``(K, W, 1)``."""
        return self.fields["angle"]

    @property
    def action(self) -> Tensor:
        """``(K, W, 3)``."""
        return self.fields["action"]

    @property
    def shape(self) -> Tensor:
        """``(K,)`` int64 shape codes."""
        return self.static["shape"]

    @property
    def size(self) -> Tensor:
        """``(K, 2)`` width and height in the body frame (m)."""
        return self.static["size"]

    @property
    def mass(self) -> Tensor:
        """``(K,)`` (kg)."""
        return self.static["mass"]

    @property
    def moment(self) -> Tensor:
        """``(K,)`` moment of inertia about the centre of mass (kg m^2)."""
        return self.static["moment"]

    @property
    def friction(self) -> Tensor:
        """``(K,)``."""
        return self.static["friction"]

    @property
    def restitution(self) -> Tensor:
        """``(K,)``."""
        return self.static["restitution"]

    @property
    def colour(self) -> Tensor:
        """``(K, 3)`` RGB in [0, 1]."""
        return self.static["colour"]

    @property
    def obstacles(self) -> dict[str, Tensor]:
        """The scenes' :data:`OBSTACLES`: ``name -> (B, M, ...)`` (padding rows have shape code -1)."""
        return {name: self.system[name] for name in OBSTACLES}

    @property
    def num_obstacles(self) -> Tensor:
        """``(B,)`` int64 obstacles per scene (rows that are not padding)."""
        return (self.system["obstacle_shape"] >= 0).sum(dim=1)

    @property
    def n_objects(self) -> Tensor:
        """``(B,)`` int64."""
        return self.n

    @property
    def springs(self) -> Tensor:
        """``(2, S)`` int64 object indices."""
        return self.links["springs"]

    @property
    def spring_values(self) -> Tensor:
        """``(S, 3)``: rest length, stiffness, damping."""
        return self.link_values["springs"]


def check_object_state(state: State, frames: int, fields: tuple[str, ...] = tuple(FIELD_WIDTHS)) -> None:
    """Check the shapes of an object state's fields and attributes.

    Args:
        state: the state (any :class:`gns.state.State` holding the object fields).
        frames: the fewest frames each field must hold.
        fields: the fields to check (a baseline reads fewer).

    Raises:
        GnsInputError: naming the field or attribute, the shape expected and the one found.
    """
    count = state.num_entities
    for name in fields:
        values = state.fields.get(name)
        width = FIELD_WIDTHS[name]
        if values is None or values.ndim != 3 or values.shape[0] != count or values.shape[1] < frames \
                or values.shape[2] != width:
            raise GnsInputError("an object field has the wrong shape", key=name,
                                expected=f"({count}, >={frames}, {width})",
                                found=None if values is None else tuple(values.shape))
    for name, tail in ATTRIBUTES.items():
        values = state.static.get(name)
        if values is None or tuple(values.shape) != (count, *tail):
            raise GnsInputError("an object attribute has the wrong shape", key=name, expected=(count, *tail),
                                found=None if values is None else tuple(values.shape))
    if state.static["shape"].dtype != torch.long:
        raise GnsInputError("shape codes must be int64", key="shape", expected="torch.int64",
                            found=state.static["shape"].dtype)
    if any(name in state.system for name in OBSTACLES):  # an ObjectState always has them (M = 0: none)
        scenes = state.num_systems
        shapes = state.system.get("obstacle_shape")
        width = int(shapes.shape[1]) if shapes is not None and shapes.ndim == 2 else -1
        for name, tail in OBSTACLES.items():
            values = state.system.get(name)
            if values is None or tuple(values.shape) != (scenes, width, *tail):
                raise GnsInputError("an object state's obstacles have the wrong shape", key=name,
                                    expected=(scenes, width if width >= 0 else "M", *tail),
                                    found=None if values is None else tuple(values.shape))
        if state.system["obstacle_shape"].dtype != torch.long:
            raise GnsInputError("obstacle shape codes must be int64", key="obstacle_shape", expected="torch.int64",
                                found=state.system["obstacle_shape"].dtype)
    springs, values = state.links.get("springs"), state.link_values.get("springs")
    if springs is None or springs.ndim != 2 or springs.shape[0] != 2 or values is None \
            or tuple(values.shape) != (springs.shape[1], len(SPRING_VALUES)):
        raise GnsInputError("an object state needs its springs (none: (2, 0)) and their values", key="springs",
                            expected=f"(2, S) links with (S, {len(SPRING_VALUES)}) values",
                            found=None if springs is None else (tuple(springs.shape),
                                                                None if values is None else tuple(values.shape)))
