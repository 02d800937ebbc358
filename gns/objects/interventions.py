"""What interventions may do to the scenes of a trained object model (:class:`gns.interventions.Space`).

Objects are rigid bodies: besides the shared operations (``move``, ``remove``, ``add`` copies,
``kick`` and ``set_velocity`` with their ``spin``, ``set_input`` on the ``action`` field for a
selection of objects over a range of frames) they can be resized and re-weighed
(:data:`BODIES`: the areas and moments of :mod:`gns.data.objects`, the one definition of the shapes).
Selections by ``type`` pick shape codes (``gns.data.objects.SHAPES``: 0 disc, 1 box, 2 triangle).

Every intervened scene is checked before anything rolls out (:func:`check_objects`), as the solver
checks a state it starts from (``gns.solvers.objects2d.check_state``): no shapes overlapping each
other or a static obstacle, or reaching through a wall, by more than the solver's ``overlap_tolerance``;
no non-positive size, mass or moment; discs as wide as high. Changes beyond the training split (actions, sizes,
masses and moments per component, speeds) are refused unless ``allow_extrapolation``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gns.data.objects import (box_excursion, check_scene, load_object_metadata, object_area, object_moment,
                              open_object_split, readable)
from gns.errors import GnsInputError
from gns.interventions import RigidBodies, Space, box_halves, speed_limit
from gns.objects.evaluate import object_pairs, obstacle_gaps
from gns.objects.geometry import body_vertices, place, separation
from gns.objects.windows import state_scene
from gns.state import State

__all__ = ["BODIES", "object_space", "check_objects", "training_ranges", "overlap_tolerance", "default_regions"]


def _numpy(state: State, mask: Tensor, size: Tensor) -> tuple[np.ndarray, np.ndarray]:
    return state.static["shape"][mask].cpu().numpy(), size.detach().cpu().double().numpy()


def _area(state: State, mask: Tensor, size: Tensor) -> Tensor:
    """``(M,)`` areas (m^2) of the masked objects at sizes ``(M, 2)``."""
    return torch.as_tensor(object_area(*_numpy(state, mask, size))).to(size)


def _gyration(state: State, mask: Tensor, size: Tensor) -> Tensor:
    """``(M,)`` moments of inertia per unit mass (m^2) of the masked objects at sizes ``(M, 2)``."""
    shape, sizes = _numpy(state, mask, size)
    return torch.as_tensor(object_moment(shape, sizes, np.ones(len(shape)))).to(size)


BODIES = RigidBodies(size="size", mass="mass", moment="moment", area=_area, gyration=_gyration)


def overlap_tolerance(dataset: str | Path) -> float:
    """How far (m) a state's shapes may overlap or cross a wall: the solver's ``overlap_tolerance`` of the
    dataset's generator config, else the solver's default."""
    from gns.solvers.objects2d import Objects2DConfig

    generator = load_object_metadata(dataset).generator or {}
    return float((generator.get("config") or {}).get("overlap_tolerance", Objects2DConfig.overlap_tolerance))


def check_objects(state: State, where: str, *, bounds: Tensor, tolerance: float) -> None:
    """Check that the solver could start from the current frame of a one-scene object state.

    Args:
        state: one scene (``position (K, W, 2)``, ``angle (K, W, 1)``, the attributes).
        where: the key errors name (``variants/<name>/<i> (<op>)``).
        bounds: ``(2, 2)`` the box; tolerance: the overlap (m) allowed, the solver's.

    Raises:
        GnsInputError: naming the object and the value: a non-positive size, mass or moment, a disc not as
            wide as high (``gns.data.objects.check_scene``); a shape reaching through a wall, or into a static
            obstacle, or two shapes overlapping, by more than ``tolerance``.
    """
    check_scene(state_scene(state, bounds), name=where)
    position, angle = state.fields["position"][:, -1], state.fields["angle"][:, -1, 0]        # (K, 2), (K,)
    shape, size = state.static["shape"], state.static["size"]
    outside = box_excursion(shape.cpu().numpy(), size.cpu().numpy(), position.cpu().numpy(), angle.cpu().numpy(),
                            bounds.cpu().numpy())                                              # (K,)
    if outside.max(initial=0.0) > tolerance:
        k = int(outside.argmax())
        raise GnsInputError(f"object {k} would reach {outside[k]:.4g} m outside the box {bounds.tolist()}",
                            key=where, expected=f"at most the solver's overlap_tolerance, {tolerance} m",
                            found=readable(position[k].cpu().numpy()))
    pairs = object_pairs(state)                                                                # (2, P)
    vertices, rounding = body_vertices(shape, size)
    world = place(vertices, position, angle)                                                   # (K, 4, 2)
    depth = -separation(world[pairs[0]], rounding[pairs[0]], world[pairs[1]], rounding[pairs[1]])  # (P,)
    if depth.numel() and float(depth.max()) > tolerance:
        first = int(depth.argmax())
        i, j = (int(v) for v in pairs[:, first])
        raise GnsInputError(f"object {i} and object {j} would overlap by {float(depth[first]):.4g} m", key=where,
                            expected=f"an overlap of at most the solver's overlap_tolerance, {tolerance} m",
                            found={f"object {i}": readable(position[i].cpu().numpy()),
                                   f"object {j}": readable(position[j].cpu().numpy())})
    gaps, objects = obstacle_gaps({"position": position[:, None], "angle": angle[:, None, None]}, state)  # (Q, 1)
    if objects.numel() and float(-gaps.min()) > tolerance:
        first = int(gaps[:, 0].argmin())
        k = int(objects[first])
        raise GnsInputError(f"object {k} would reach {float(-gaps[first, 0]):.4g} m into a static obstacle", key=where,
                            expected=f"an overlap of at most the solver's overlap_tolerance, {tolerance} m",
                            found=readable(position[k].cpu().numpy()))


def training_ranges(dataset: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per component, the least and largest ``action`` (every frame), ``size``, ``mass`` and ``moment`` of the
    train split: ``name -> (lo, hi)`` (:attr:`gns.interventions.Space.ranges`)."""
    values: dict[str, list[np.ndarray]] = {"action": [], "size": [], "mass": [], "moment": []}
    with open_object_split(dataset, "train", load_object_metadata(dataset)) as train:
        for i in range(len(train)):
            trajectory = train[i]
            values["action"].append(trajectory.action.reshape(-1, 3))
            for name in ("size", "mass", "moment"):
                values[name].append(np.asarray(getattr(trajectory.scene, name)).reshape(trajectory.num_objects, -1))
    out = {}
    for name, rows in values.items():
        stacked = np.concatenate(rows).astype(np.float64)                                      # (rows, F)
        out[name] = (stacked.min(0), stacked.max(0))
    return out


def object_space(simulator, dataset: str | Path) -> Space:
    """The :class:`gns.interventions.Space` of a trained object model and the dataset it answers queries on."""
    metadata = simulator.metadata
    stats, dt = metadata.statistics, float(metadata.dt)
    bounds = simulator.bounds.detach().cpu()
    validate = functools.partial(check_objects, bounds=bounds, tolerance=overlap_tolerance(dataset))
    return Space(kind="objects", entity="object", dt=dt, position_field="position", angle_field="angle",
                 type_attribute="shape", held=simulator.held, input_fields=list(simulator.input_fields),
                 ranges=training_ranges(dataset), max_speed=speed_limit(stats["vel_mean"], stats["vel_std"], dt),
                 max_angular_speed=speed_limit(stats["angular_vel_mean"], stats["angular_vel_std"], dt),
                 bodies=BODIES, validate=validate,
                 refused={"set_type": "an object's shape comes with its size, mass and moment: resize or reweigh "
                                      "it instead"})


def default_regions(simulator) -> dict:
    """Occupancy regions reported by default: the left and right halves of the box (objects' centres)."""
    return box_halves(simulator.bounds)
