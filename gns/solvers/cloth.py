"""Cloth: a flag on a pole in wind, simulated as a StVK membrane with hinge bending in Taichi.

This is the reference solver behind the cloth mesh dataset, in the spirit of the FlagSimple data
of Pfaff et al. (2020, "Learning Mesh-Based Simulation with Graph Networks"): a rectangular sheet
is held along one edge by HANDLE nodes (the pole), blown by a gusty wind and pulled down by
gravity; in part of the set the pole moves along a prescribed path, and in part of the set a
sphere OBSTACLE (fixed or moving) stands in the flag's way.

Model (per trajectory, SI units, z up):

- mesh: a structured ``nx x ny`` grid of the rest rectangle, each cell cut into two triangles
  with alternating diagonals (no preferred shear direction). ``mesh_pos`` = rest coordinates
  ``(u, v)``: ``u`` runs from the pole to the free edge, ``v`` along the pole;
- membrane: Saint Venant-Kirchhoff per triangle, energy ``A0 (mu |E|^2 + lambda/2 tr(E)^2)`` of the
  Green strain ``E = (F^T F - I) / 2`` with ``F = Ds Dm^-1`` (3x2), plus stiffness-proportional
  (Rayleigh) damping: the same stress law applied to the strain rate, times ``membrane_damping``
  seconds. Strain-rate damping vanishes for rigid motion, so it never slows a falling sheet;
- bending: a quadratic hinge energy on every interior edge (two triangles ``i0 i1 i2`` and
  ``i0 i1 i3``): ``k_b * 3 |e|^2 / (A + A') * |sum_i K_i x_i|^2 / 2`` where the weights ``K`` are
  the unique affine dependency of the four rest points (``sum K_i = 0``, ``sum K_i X_i = 0``)
  scaled so that ``sum K_i z_i`` is the fold angle for small out-of-plane heights ``z``. The
  energy is exactly zero for any flat state and the force is linear in positions, which makes it
  cheap and stable for a flat-at-rest sheet (the near-isometric regime of cloth);
- air: per face, a quasi-steady pressure along the face normal,
  ``0.5 rho_air C_n A (w_n |w_n|) n``, and a small skin friction along the face,
  ``0.5 rho_air C_t A |w_t| w_t``, where ``w = wind - v_face`` is the relative wind. A face
  inclined to the wind therefore feels a force normal to itself: drag and lift in one term. The
  wind is uniform in space up to a "frozen turbulence" wave carried with the mean wind (speed
  modulation ``1 + a sin(2 pi (d.x - U t) / lambda + phi)``), and varies in time by a gust
  (speed ``1 + a sin(2 pi f t + phi)``) and a slow swing of its direction about the vertical;
- handles: every node of the pole edge follows a prescribed rigid motion of the pole (a tilt about
  a horizontal axis through its middle plus a translation, both smooth sinusoids starting at rest
  displacement zero, or no motion at all). The path is sampled per frame in numpy (positions and
  velocities) and interpolated inside a frame by cubic Hermite, which reproduces the sampled
  frame values exactly, so the recorded handle positions *are* the prescribed path;
- obstacle: an analytic sphere (its centre follows a prescribed path like the handles). After
  every substep a cloth node closer than ``radius + collision_margin`` to the centre is moved
  onto that shell, its inward normal relative velocity is removed and its tangential relative
  velocity is reduced by Coulomb friction. The dataset represents the sphere as OBSTACLE nodes: a
  low-resolution icosphere whose vertices lie on the sphere (so the polyhedron is inside it);
- time: symplectic Euler with ``substeps`` steps per saved frame (explicit; ``ClothConfig``
  rejects substeps above the membrane's CFL limit).

Not modelled: cloth self-collision, collision of edges/faces with the sphere (only nodes are
projected), two-way coupling with the air (no wake, the wind field is prescribed).

Determinism. As in ``gns.solvers.water2d``: every Taichi runtime runs with
``cpu_max_num_threads=1`` and without fast-math; parallelism comes from simulating several scenes
per kernel launch (they never interact) and from a pool of worker processes. The parameters of
trajectory ``i`` of split ``s`` come only from ``np.random.default_rng([seed, s, i, stream])``
(one stream each for the pose, the wind, the handles and the obstacle, so that e.g. changing
``obstacle_fraction`` does not change the wind).

Taichi is an optional dependency (``pip install "gns[solvers]"``); it is imported only inside the
functions that need it, so importing this module never requires it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from gns.errors import GnsInputError
from gns.solvers.common import (SPLITS, GeneratorConfig, NotResimulable, Replayer, batch_tasks, check_at_least,
                                check_positive, config_error, generator_config, generator_parser, init_taichi,
                                package_version, print_generation, run_batches, taichi_runtime, write_splits)

SOLVER_NAME = "gns.solvers.cloth (StVK membrane + hinge bending, symplectic Euler, Taichi)"
SOLVER_VERSION = "4"  # 2: steady wind from a fixed heading by default; 3: the wind at every node is stored;
# 4: bending damping 1e-3 -> 0.1 s (frame-rate-aliased hinge vibration damped) and 64 train trajectories
NORMAL, OBSTACLE, HANDLE = 0, 1, 3  # DeepMind common.NodeType ids
NODE_TYPES = {"NORMAL": NORMAL, "OBSTACLE": OBSTACLE, "HANDLE": HANDLE}
# Sub-streams of rng([seed, split_id, index, stream]): each part of a scene draws from its own.
_POSE_STREAM, _WIND_STREAM, _HANDLE_STREAM, _OBSTACLE_STREAM = 0, 1, 2, 3


@dataclass(frozen=True)
class ClothConfig(GeneratorConfig):
    """Every parameter of the cloth generator (the one source of defaults).

    Units are SI: metres, seconds, kilograms; membrane moduli in N/m (3D modulus times thickness),
    bending stiffness in N m. The world is z-up; the pole's bottom end starts at the origin.
    """

    # --- dataset size and reproducibility
    seed: int = 0                      # root of every random stream: rng([seed, split_id, index, stream])
    num_train: int = 64                # trajectories in train.h5 (16 before version 4; the first 16 are the same)
    num_valid: int = 2                 # trajectories in valid.h5
    num_test: int = 8                  # trajectories in test.h5 (8: a steadier held-out figure than 2)
    num_steps: int = 300               # steps per trajectory (metadata sequence_length): 301 frames

    # --- time
    frame_dt: float = 0.02             # seconds between saved frames (metadata dt), as FlagSimple
    substeps: int = 125                # explicit steps per frame; checked against the membrane CFL limit

    # --- the sheet (rest state: a flat rectangle)
    width: float = 1.2                 # extent from the pole to the free edge (m)
    height: float = 0.6                # extent along the pole (m)
    nodes_u: int = 25                  # grid nodes from the pole to the free edge
    nodes_v: int = 13                  # grid nodes along the pole (all of them are HANDLE nodes)
    areal_density: float = 0.4         # kg/m^2: heavy canvas, and a stand-in for the air's added mass
    stretch_modulus: float = 3000.0    # Young's modulus x thickness (N/m); sets the CFL limit
    poisson_ratio: float = 0.3         # in-plane Poisson ratio of the membrane
    membrane_damping: float = 2e-4     # Rayleigh stiffness-proportional damping time (s)
    bending_stiffness: float = 5e-4    # k_b (N m): bending length (k_b / (rho g))^(1/3) ~ 5 cm
    bending_damping: float = 0.1       # damping time of the hinge energy (s); 1e-3 before version 4 left
    #                                    hinge vibrations that alias at the frame rate (datasets/cloth.md)

    # --- air and gravity
    gravity: tuple[float, float, float] = (0.0, 0.0, -9.81)  # m/s^2
    air_density: float = 1.2           # kg/m^3; 0 switches the air off (vacuum)
    normal_drag: float = 1.0           # C_n: pressure coefficient along the face normal
    tangential_drag: float = 0.02      # C_t: skin friction coefficient along the face

    # --- random scenes: initial pose
    initial_yaw_range: float = 1.2     # flag starts at downwind +- this angle (rad) about the pole
    curl_range: tuple[float, float] = (0.0, 0.05)  # initial out-of-plane bow sin(pi u / W) amplitude (m)

    # --- random scenes: wind. The default is a steady wind from a fixed heading (FlagSimple's
    # setting). The wind at every node and frame is stored as the input field ``wind`` (solver
    # version 3), so a model can also learn the harder data these ranges make when widened
    # (random heading, gusts, swing, turbulence).
    wind_speed_range: tuple[float, float] = (4.0, 6.0)      # mean speed (m/s), uniform
    wind_heading_range: tuple[float, float] = (0.0, 0.0)    # direction about z (rad); (0, 2 pi): any
    wind_elevation_range: tuple[float, float] = (0.0, 0.0)  # angle above the horizontal (rad)
    gust_amplitude_range: tuple[float, float] = (0.0, 0.0)  # relative speed modulation in time, e.g. (0, 0.3)
    gust_frequency_range: tuple[float, float] = (0.2, 1.0)  # Hz
    swing_amplitude_range: tuple[float, float] = (0.0, 0.0)  # direction swing about z (rad), e.g. (0, 0.3)
    swing_frequency_range: tuple[float, float] = (0.05, 0.3)  # Hz
    turbulence_amplitude_range: tuple[float, float] = (0.0, 0.0)  # relative modulation in space, e.g. (0, 0.3)
    turbulence_wavelength_range: tuple[float, float] = (1.0, 3.0)  # m, carried with the mean wind

    # --- random scenes: handle (pole) motion
    handle_motion_fraction: float = 0.5  # share of trajectories whose pole moves
    handle_amplitude: float = 0.15     # max translation amplitude per axis (m)
    handle_tilt_amplitude: float = 0.25  # max tilt amplitude about a horizontal axis (rad)
    handle_frequency_range: tuple[float, float] = (0.15, 0.6)  # Hz, per axis and for the tilt

    # --- random scenes: sphere obstacle
    obstacle_fraction: float = 0.5     # share of trajectories with a sphere
    moving_obstacle_fraction: float = 0.5  # share of those whose sphere moves
    obstacle_radius_range: tuple[float, float] = (0.12, 0.2)  # m
    obstacle_amplitude: float = 0.2    # max translation amplitude per axis of a moving sphere (m)
    obstacle_frequency_range: tuple[float, float] = (0.1, 0.4)  # Hz
    obstacle_subdivisions: int = 1     # icosphere level of the OBSTACLE mesh: 1 -> 42 nodes, 80 faces
    collision_margin: float = 0.01     # cloth nodes are kept this far outside the sphere (m)
    friction: float = 0.3              # Coulomb friction coefficient cloth/sphere
    world_edge_radius_factor: float = 2.0  # metadata world_edge_radius = factor * grid spacing: covers
                                           # a touching cloth node's nearest sphere node (<= 0.074 m)

    # --- execution (never changes the data)
    num_workers: int = 2               # worker processes, each with a single-threaded Taichi runtime
    scenes_per_batch: int = 4          # scenes simulated together in one kernel launch

    def __post_init__(self) -> None:
        # Overrides from YAML/JSON arrive as lists: store tuples so the config stays immutable.
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, list):
                object.__setattr__(self, field.name, tuple(value))
        _validate_config(self)

    @classmethod
    def small(cls, **overrides) -> "ClothConfig":
        """A seconds-long smoke-test dataset: 2 / 1 / 1 trajectories of 40 steps on a 9 x 5 sheet."""
        return cls(**{"num_train": 2, "num_valid": 1, "num_test": 1, "num_steps": 40,
                      "nodes_u": 9, "nodes_v": 5, "substeps": 40, **overrides})

    @property
    def spacing(self) -> float:
        """The shorter grid spacing (m): the rest length of the shortest mesh edge."""
        return min(self.width / (self.nodes_u - 1), self.height / (self.nodes_v - 1))

    @property
    def lame(self) -> tuple[float, float]:
        """Plane-stress Lame parameters ``(lambda, mu)`` of the membrane (N/m)."""
        young, nu = self.stretch_modulus, self.poisson_ratio
        return young * nu / (1.0 - nu * nu), young / (2.0 * (1.0 + nu))

    @property
    def wave_speed(self) -> float:
        """Speed of the fastest in-plane (dilatational) wave (m/s)."""
        lam, mu = self.lame
        return math.sqrt((lam + 2.0 * mu) / self.areal_density)

    @property
    def substep_dt(self) -> float:
        """Time step of the explicit integrator (s)."""
        return self.frame_dt / self.substeps

    @property
    def steady_wind(self) -> bool:
        """Whether every scene's wind is constant in time and space (no gusts, swing or turbulence)."""
        return max(self.gust_amplitude_range[1], self.swing_amplitude_range[1],
                   self.turbulence_amplitude_range[1]) == 0.0

    @property
    def world_edge_radius(self) -> float:
        """The world-edge radius recommended to models trained on this data (m)."""
        return round(self.world_edge_radius_factor * self.spacing, 12)  # 0.1, not 0.09999999999999999


# CFL number (wave speed x substep / spacing) above which the explicit membrane is refused.
_MAX_CFL = 0.35
# Damping number (membrane_damping x (wave speed / spacing)^2 x substep) above which the explicit,
# stiffness-proportional membrane damping is refused: 0.26 ran stably, 0.53 blew up.
_MAX_DAMPING_NUMBER = 0.3


def _validate_config(c: ClothConfig) -> None:
    bad = functools.partial(config_error, c)
    check_at_least(c, ("num_train", "num_valid", "num_test"), 0)
    if c.num_steps < 2:
        raise bad("num_steps", ">= 2 (an acceleration needs three frames)", c.num_steps)
    check_at_least(c, ("substeps", "num_workers", "scenes_per_batch"), 1)
    check_at_least(c, ("nodes_u", "nodes_v"), 2)
    check_positive(c, ("frame_dt", "width", "height", "areal_density", "stretch_modulus"))
    check_at_least(c, ("membrane_damping", "bending_stiffness", "bending_damping", "air_density", "normal_drag",
                       "tangential_drag", "collision_margin", "friction", "handle_amplitude",
                       "handle_tilt_amplitude", "obstacle_amplitude", "initial_yaw_range"), 0)
    if not 0.0 <= c.poisson_ratio < 0.5:
        raise bad("poisson_ratio", "in [0, 0.5)", c.poisson_ratio)
    for key in ("handle_motion_fraction", "obstacle_fraction", "moving_obstacle_fraction"):
        if not 0.0 <= getattr(c, key) <= 1.0:
            raise bad(key, "a fraction in [0, 1]", getattr(c, key))
    for field in dataclasses.fields(c):
        if field.name.endswith("_range") and field.name != "initial_yaw_range":
            lo, hi = getattr(c, field.name)
            if not lo <= hi:
                raise bad(field.name, "(min, max) with min <= max", getattr(c, field.name))
    if c.obstacle_radius_range[0] <= 0:
        raise bad("obstacle_radius_range", "radii > 0", c.obstacle_radius_range)
    if not 0 <= c.obstacle_subdivisions <= 4:
        raise bad("obstacle_subdivisions", "0..4", c.obstacle_subdivisions)
    if len(c.gravity) != 3:
        raise bad("gravity", "three components (x, y, z)", c.gravity)
    cfl = c.wave_speed * c.substep_dt / c.spacing
    if cfl > _MAX_CFL:
        needed = math.ceil(c.wave_speed * c.frame_dt / (c.spacing * _MAX_CFL))
        raise bad("substeps", f"a CFL number <= {_MAX_CFL} (wave speed {c.wave_speed:.3g} m/s, spacing "
                  f"{c.spacing:.3g} m): at least {needed} substeps", f"CFL {cfl:.3g} with {c.substeps}")
    rate = c.membrane_damping * (c.wave_speed / c.spacing) ** 2
    if rate * c.substep_dt > _MAX_DAMPING_NUMBER:
        needed = math.ceil(rate * c.frame_dt / _MAX_DAMPING_NUMBER)
        raise bad("substeps", f"a damping number (membrane_damping x (wave speed / spacing)^2 x substep) <= "
                  f"{_MAX_DAMPING_NUMBER} for membrane_damping {c.membrane_damping:.3g} s: at least {needed} "
                  "substeps", f"{rate * c.substep_dt:.3g} with {c.substeps}")


# ---------------------------------------------------------------------------------------------------
# Meshes (numpy only)
# ---------------------------------------------------------------------------------------------------


def icosphere(subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    """A unit sphere: an icosahedron whose faces are split in four ``subdivisions`` times.

    Returns:
        ``vertices`` ``(V, 3)`` float64 on the unit sphere (V = 10 * 4^s + 2) and ``faces``
        ``(20 * 4^s, 3)`` int32, oriented outwards.
    """
    t = (1.0 + math.sqrt(5.0)) / 2.0
    vertices = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t),
                (0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
             (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8),
             (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    points = [np.asarray(p, dtype=float) / np.linalg.norm(p) for p in vertices]
    for _ in range(subdivisions):
        midpoint: dict[tuple[int, int], int] = {}

        def middle(p: int, q: int) -> int:
            key = (min(p, q), max(p, q))
            if key not in midpoint:
                m = points[p] + points[q]
                points.append(m / np.linalg.norm(m))
                midpoint[key] = len(points) - 1
            return midpoint[key]

        refined = []
        for a, b, c in faces:
            ab, bc, ca = middle(a, b), middle(b, c), middle(c, a)
            refined += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = refined
    return np.stack(points), np.asarray(faces, dtype=np.int32)


def mesh_edges(cells: np.ndarray) -> np.ndarray:
    """Unique undirected edges ``(E, 2)`` (sorted pairs, int64) of triangles ``(C, 3)``."""
    pairs = np.concatenate([cells[:, [0, 1]], cells[:, [1, 2]], cells[:, [2, 0]]]).astype(np.int64)
    return np.unique(np.sort(pairs, axis=1), axis=0)


def rest_areas(mesh_pos: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Areas ``(C,)`` of triangles ``cells`` ``(C, 3)`` over 2D rest coordinates ``mesh_pos`` ``(N, 2)``."""
    a = mesh_pos[cells[:, 1]] - mesh_pos[cells[:, 0]]
    b = mesh_pos[cells[:, 2]] - mesh_pos[cells[:, 0]]
    return 0.5 * np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])


def _hinges(mesh_pos: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interior edges with their two opposite nodes, the bending weights and stiffness factors.

    For the hinge ``(i0, i1 | i2, i3)`` the weights ``K`` solve ``sum K = 0`` and ``sum K X = 0``
    over the rest points ``X`` (the one affine dependency of four points in a plane), with
    ``K2 = 1 / d2`` and ``K3 = 1 / d3`` (``d`` = distance of the opposite node from the edge line),
    so that ``sum K z`` is the fold angle of small out-of-plane heights ``z``.

    Returns:
        ``nodes`` ``(H, 4)`` int32 ``[i0, i1, i2, i3]``, ``weights`` ``(H, 4)`` float64 and
        ``factor`` ``(H,)`` float64 ``= 3 |e|^2 / (A + A')`` (multiply by k_b for the stiffness).
    """
    sides = []  # (edge lo, edge hi, opposite node, cell) per triangle side
    for k, (a, b, c) in enumerate(cells):
        for p, q, o in ((a, b, c), (b, c, a), (c, a, b)):
            sides.append((min(p, q), max(p, q), o, k))
    sides.sort()
    nodes, weights, factor = [], [], []
    area = rest_areas(mesh_pos, cells)  # (C,)
    for first, second in zip(sides, sides[1:]):
        if first[:2] != second[:2]:
            continue
        i0, i1, i2, i3 = first[0], first[1], first[2], second[2]
        x0, x1, x2, x3 = (mesh_pos[n] for n in (i0, i1, i2, i3))
        edge = x1 - x0
        length = float(np.linalg.norm(edge))
        along, normal = edge / length, np.array([-edge[1], edge[0]]) / length
        d2, d3 = abs(float((x2 - x0) @ normal)), abs(float((x3 - x0) @ normal))
        k2, k3 = 1.0 / d2, 1.0 / d3
        # the along-edge and constant equations fix K0 and K1 (the normal one holds by symmetry)
        p2, p3 = float((x2 - x0) @ along), float((x3 - x0) @ along)
        k1 = -(k2 * p2 + k3 * p3) / length
        k0 = -(k1 + k2 + k3)
        nodes.append((i0, i1, i2, i3))
        weights.append((k0, k1, k2, k3))
        factor.append(3.0 * length ** 2 / (area[first[3]] + area[second[3]]))
    return (np.asarray(nodes, dtype=np.int32).reshape(-1, 4), np.asarray(weights, dtype=float).reshape(-1, 4),
            np.asarray(factor, dtype=float))


def cloth_mesh(config: ClothConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The flag's mesh, from ``gns.mesh.make_rectangle_mesh`` (checkerboard diagonals).

    Node ``j * nodes_u + i`` sits at rest coordinates ``(u, v) = (i du, j dv)``; the pole edge
    ``u = 0`` is nodes ``0, nodes_u, 2 nodes_u, ...``. The rest geometry is the float32 grid that
    the dataset stores as ``mesh_pos``, so the stored rest state is exactly the simulated one.

    Returns:
        ``mesh_pos`` ``(N, 2)`` float64, ``cells`` ``(C, 3)`` int32 (counter-clockwise in ``(u, v)``)
        and the handle (pole) node ids ``(nodes_v,)`` int64.
    """
    from gns.mesh.io import make_rectangle_mesh

    vertices, cells = make_rectangle_mesh(config.width, config.height, config.nodes_u - 1, config.nodes_v - 1,
                                          diagonal="alternate")
    handles = np.arange(config.nodes_v, dtype=np.int64) * config.nodes_u  # the u = 0 column
    return vertices.astype(np.float64), cells.astype(np.int32), handles


# ---------------------------------------------------------------------------------------------------
# Random scenes (numpy only)
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClothScene:
    """The parameters of one trajectory (all JSON-able floats and tuples).

    A prescribed motion ``amplitude * (sin(2 pi f t + phase) - sin(phase))`` starts at zero
    displacement. Angles in radians, frequencies in Hz.

    Attributes:
        yaw: initial direction of the flag from the pole, about z.
        curl: amplitude of the initial out-of-plane bow ``curl * sin(pi u / width)`` (m).
        pinned: whether the pole nodes are HANDLE nodes (False: a free sheet, for checks).
        wind: mean wind velocity (m/s), ``(3,)``.
        gust: ``(amplitude, frequency, phase)`` of the wind speed modulation in time.
        swing: ``(amplitude, frequency, phase)`` of the wind direction about z.
        turbulence: ``(amplitude, wavelength, phase)`` of the frozen turbulence wave.
        handle_translation: ``(3, 3)`` rows ``(amplitude, frequency, phase)`` per axis x, y, z.
        handle_tilt: ``(amplitude, frequency, phase, axis_angle)``: tilt of the pole about the
            horizontal axis ``(cos a, sin a, 0)`` through its rest middle.
        obstacle_radius: sphere radius (m), 0 without obstacle.
        obstacle_center: sphere centre at t = 0, ``(3,)``.
        obstacle_translation: ``(3, 3)`` rows ``(amplitude, frequency, phase)`` per axis.
    """

    yaw: float = 0.0
    curl: float = 0.0
    pinned: bool = True
    wind: tuple[float, float, float] = (0.0, 0.0, 0.0)
    gust: tuple[float, float, float] = (0.0, 0.0, 0.0)
    swing: tuple[float, float, float] = (0.0, 0.0, 0.0)
    turbulence: tuple[float, float, float] = (0.0, 1.0, 0.0)
    handle_translation: tuple[tuple[float, float, float], ...] = ((0.0, 0.0, 0.0),) * 3
    handle_tilt: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    obstacle_radius: float = 0.0
    obstacle_center: tuple[float, float, float] = (0.0, 0.0, 0.0)
    obstacle_translation: tuple[tuple[float, float, float], ...] = ((0.0, 0.0, 0.0),) * 3

    @property
    def has_obstacle(self) -> bool:
        return self.obstacle_radius > 0

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _floats(values) -> tuple:
    """Nested tuples of Python floats (JSON-able, hashable)."""
    return tuple(_floats(v) if np.ndim(v) else float(v) for v in values)


def sample_scene(config: ClothConfig, split_id: int, index: int) -> ClothScene:
    """The parameters of trajectory ``index`` of split ``split_id`` (0 train, 1 valid, 2 test).

    Depends only on ``(config, split_id, index)``: each part draws from
    ``np.random.default_rng([config.seed, split_id, index, stream])``.
    """
    def stream(k: int) -> np.random.Generator:
        return np.random.default_rng([config.seed, split_id, index, k])

    c = config
    rng = stream(_WIND_STREAM)
    speed = rng.uniform(*c.wind_speed_range)
    heading = rng.uniform(*c.wind_heading_range)
    elevation = rng.uniform(*c.wind_elevation_range)
    wind = speed * np.array([math.cos(elevation) * math.cos(heading),
                             math.cos(elevation) * math.sin(heading), math.sin(elevation)])
    gust = (rng.uniform(*c.gust_amplitude_range), rng.uniform(*c.gust_frequency_range), rng.uniform(0, 2 * math.pi))
    swing = (rng.uniform(*c.swing_amplitude_range), rng.uniform(*c.swing_frequency_range),
             rng.uniform(0, 2 * math.pi))
    turbulence = (rng.uniform(*c.turbulence_amplitude_range), rng.uniform(*c.turbulence_wavelength_range),
                  rng.uniform(0, 2 * math.pi))

    rng = stream(_POSE_STREAM)
    yaw = heading + rng.uniform(-c.initial_yaw_range, c.initial_yaw_range)
    curl = rng.uniform(*c.curl_range) * rng.choice([-1.0, 1.0])

    rng = stream(_HANDLE_STREAM)
    moving = rng.uniform() < c.handle_motion_fraction
    translation = np.stack([rng.uniform(0, c.handle_amplitude, 3), rng.uniform(*c.handle_frequency_range, size=3),
                            rng.uniform(0, 2 * math.pi, 3)], axis=1)  # (3 axes, 3)
    tilt = np.array([rng.uniform(0, c.handle_tilt_amplitude), rng.uniform(*c.handle_frequency_range),
                     rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)])
    if not moving:
        translation[:, 0], tilt[0] = 0.0, 0.0

    scene = ClothScene(yaw=float(yaw), curl=float(curl), pinned=True, wind=_floats(wind), gust=_floats(gust),
                       swing=_floats(swing), turbulence=_floats(turbulence),
                       handle_translation=_floats(translation), handle_tilt=_floats(tilt))
    return _place_obstacle(config, scene, heading, stream(_OBSTACLE_STREAM))


def _place_obstacle(config: ClothConfig, scene: ClothScene, heading: float,
                    rng: np.random.Generator) -> ClothScene:
    """Put a sphere downwind of the pole (in ``obstacle_fraction`` of the scenes).

    The sphere is redrawn until it clears the initial sheet and, over the whole trajectory, the
    moving pole (the handles cannot be pushed out of it).
    """
    c = config
    if not rng.uniform() < c.obstacle_fraction:
        return scene
    moving = rng.uniform() < c.moving_obstacle_fraction
    downwind = np.array([math.cos(heading), math.sin(heading), 0.0])
    across = np.array([-downwind[1], downwind[0], 0.0])
    mesh_pos, _, handles = cloth_mesh(c)
    initial = initial_positions(c, scene, mesh_pos)  # (N, 3)
    times = np.arange(c.num_steps + 1) * c.frame_dt
    handle_path, _ = prescribed_handles(c, scene, mesh_pos[handles], times)  # (T, H, 3)
    for _ in range(1000):
        radius = rng.uniform(*c.obstacle_radius_range)
        center = (rng.uniform(0.3, 0.8) * c.width * downwind + rng.uniform(-1.5, 1.5) * radius * across
                  + np.array([0.0, 0.0, rng.uniform(0.1, 0.9) * c.height]))
        translation = np.stack([rng.uniform(0, c.obstacle_amplitude, 3),
                                rng.uniform(*c.obstacle_frequency_range, size=3),
                                rng.uniform(0, 2 * math.pi, 3)], axis=1)
        if not moving:
            translation[:, 0] = 0.0
        candidate = dataclasses.replace(scene, obstacle_radius=float(radius), obstacle_center=_floats(center),
                                        obstacle_translation=_floats(translation))
        path, _ = prescribed_obstacle(candidate, times)  # (T, 3)
        clear_sheet = np.linalg.norm(initial - path[0], axis=1).min() > radius + 2 * c.collision_margin + 0.02
        clear_pole = np.linalg.norm(handle_path - path[:, None], axis=2).min() > radius + c.collision_margin + 0.05
        if clear_sheet and clear_pole:
            return candidate
    raise GnsInputError("could not place an obstacle clear of the sheet and the pole in 1000 tries; "
                        "shrink obstacle_radius_range", key="obstacle_radius_range", found=c.obstacle_radius_range)


def initial_positions(config: ClothConfig, scene: ClothScene, mesh_pos: np.ndarray) -> np.ndarray:
    """World positions ``(N, 3)`` at t = 0 of rest coordinates ``mesh_pos`` ``(N, 2)``.

    The sheet hangs from a vertical pole at the origin, extends along ``yaw`` and is bowed out of
    its plane by ``curl * sin(pi u / width)`` (zero at the pole: handles start on their path).
    """
    direction = np.array([math.cos(scene.yaw), math.sin(scene.yaw), 0.0])
    normal = np.array([-direction[1], direction[0], 0.0])
    u, v = mesh_pos[:, 0:1], mesh_pos[:, 1:2]
    bow = scene.curl * np.sin(math.pi * u / config.width)
    return u * direction + v * np.array([0.0, 0.0, 1.0]) + bow * normal


def _sinusoids(table: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Displacements and velocities ``(T, 3)`` of ``table`` rows ``(amplitude, frequency, phase)``."""
    amplitude, omega, phase = table[:, 0], 2 * math.pi * table[:, 1], table[:, 2]
    angle = omega * times[:, None] + phase  # (T, 3)
    return amplitude * (np.sin(angle) - np.sin(phase)), amplitude * omega * np.cos(angle)


def prescribed_handles(config: ClothConfig, scene: ClothScene, rest: np.ndarray,
                       times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The prescribed path of the pole nodes.

    Args:
        config: the generator config (pole height).
        scene: the trajectory's parameters.
        rest: ``(H, 2)`` rest coordinates of the handle nodes (``u = 0``).
        times: ``(T,)`` seconds.

    Returns:
        positions and velocities, both ``(T, H, 3)`` float64.
    """
    base = initial_positions(config, scene, rest)  # (H, 3): on the pole
    pivot = np.array([0.0, 0.0, 0.5 * config.height])
    shift, shift_velocity = _sinusoids(np.asarray(scene.handle_translation), times)  # (T, 3)
    amplitude, frequency, phase, axis_angle = scene.handle_tilt
    omega = 2 * math.pi * frequency
    angle = amplitude * (np.sin(omega * times + phase) - math.sin(phase))  # (T,)
    rate = amplitude * omega * np.cos(omega * times + phase)  # (T,)
    axis = np.array([math.cos(axis_angle), math.sin(axis_angle), 0.0])
    arm = base - pivot  # (H, 3)
    # Rodrigues: R a = a cos + (k x a) sin + k (k.a)(1 - cos)
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    cross = np.cross(axis, arm)[None]  # (1, H, 3)
    along = (arm @ axis)[None, :, None] * axis  # (1, H, 3)
    rotated = arm[None] * cos + cross * sin + along * (1.0 - cos)  # (T, H, 3)
    positions = pivot + rotated + shift[:, None, :]
    velocities = rate[:, None, None] * np.cross(axis, rotated) + shift_velocity[:, None, :]
    return positions, velocities


def prescribed_obstacle(scene: ClothScene, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sphere centre positions and velocities, both ``(T, 3)`` float64, at ``times`` ``(T,)``."""
    shift, velocity = _sinusoids(np.asarray(scene.obstacle_translation), times)
    return np.asarray(scene.obstacle_center) + shift, velocity


# ---------------------------------------------------------------------------------------------------
# The solver (Taichi)
# ---------------------------------------------------------------------------------------------------


@dataclass
class _Assembled:
    """One scene turned into solver arrays (cloth nodes only; the sphere is analytic)."""

    position: np.ndarray         # (N, 3) initial positions
    mass: np.ndarray             # (N,) lumped node masses
    cells: np.ndarray            # (C, 3) int32
    dm_inverse: np.ndarray       # (C, 2, 2) inverse rest edge matrices
    rest_area: np.ndarray        # (C,)
    hinge_nodes: np.ndarray      # (B, 4) int32
    hinge_weights: np.ndarray    # (B, 4)
    hinge_stiffness: np.ndarray  # (B,) k_b * 3 |e|^2 / (A + A')
    handles: np.ndarray          # (H,) node ids
    handle_position: np.ndarray  # (T, H, 3)
    handle_velocity: np.ndarray  # (T, H, 3)
    center: np.ndarray           # (T, 3) sphere centre
    center_velocity: np.ndarray  # (T, 3)
    radius: float                # sphere radius, 0 without obstacle
    wind: np.ndarray             # (12,) packed wind parameters, see _pack_wind


def _pack_wind(scene: ClothScene) -> np.ndarray:
    """``[wx, wy, wz, gust(3), swing(3), turbulence(3)]`` as the kernel reads it."""
    return np.array([*scene.wind, *scene.gust, *scene.swing, *scene.turbulence], dtype=np.float64)


def wind_velocity(scene: ClothScene, points: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``(T, N, 3)`` wind velocity (m/s) of ``scene`` at ``points`` ``(T, N, 3)`` and ``times`` ``(T,)``.

    The same law the kernel applies at face centroids (``update_wind`` and ``wind_at``), in numpy
    and float64: the mean wind swung about z and scaled by the gust, times the frozen-turbulence
    wave carried along the swung heading at the mean speed.
    """
    p = _pack_wind(scene)
    mean, t = p[:3], np.asarray(times, dtype=np.float64)[:, None]                       # (T, 1)
    swing = p[6] * (np.sin(2 * math.pi * p[7] * t + p[8]) - math.sin(p[8]))            # (T, 1)
    c, s = np.cos(swing), np.sin(swing)
    turned = np.concatenate([c * mean[0] - s * mean[1], s * mean[0] + c * mean[1],
                             np.full_like(c, mean[2])], axis=1)                        # (T, 3)
    now = turned * (1.0 + p[3] * np.sin(2 * math.pi * p[4] * t + p[5]))                 # (T, 3)
    speed = float(np.linalg.norm(mean))
    if speed == 0.0 or p[9] == 0.0:
        return np.broadcast_to(now[:, None, :], points.shape).copy()
    travelled = np.einsum("tnk,tk->tn", points, turned / speed) - speed * t            # (T, N)
    return now[:, None, :] * (1.0 + p[9] * np.sin(2 * math.pi * travelled / p[10] + p[11]))[..., None]


def _assemble(config: ClothConfig, scene: ClothScene, num_steps: int) -> _Assembled:
    """Rest geometry, masses, hinges and the prescribed paths over ``num_steps + 1`` frames."""
    mesh_pos, cells, handles = cloth_mesh(config)
    edges_a = mesh_pos[cells[:, 1]] - mesh_pos[cells[:, 0]]
    edges_b = mesh_pos[cells[:, 2]] - mesh_pos[cells[:, 0]]
    dm = np.stack([edges_a, edges_b], axis=2)  # (C, 2, 2), columns are rest edges
    rest_area = rest_areas(mesh_pos, cells)
    mass = node_masses(config)
    hinge_nodes, hinge_weights, factor = _hinges(mesh_pos, cells)
    times = np.arange(num_steps + 1) * config.frame_dt
    if not scene.pinned:
        handles = handles[:0]
    handle_position, handle_velocity = prescribed_handles(config, scene, mesh_pos[handles], times)
    center, center_velocity = prescribed_obstacle(scene, times)
    return _Assembled(position=initial_positions(config, scene, mesh_pos), mass=mass, cells=cells,
                      dm_inverse=np.linalg.inv(dm), rest_area=rest_area, hinge_nodes=hinge_nodes,
                      hinge_weights=hinge_weights, hinge_stiffness=config.bending_stiffness * factor,
                      handles=handles, handle_position=handle_position, handle_velocity=handle_velocity,
                      center=center, center_velocity=center_velocity, radius=scene.obstacle_radius,
                      wind=_pack_wind(scene))


@dataclass(frozen=True)
class _Capacity:
    scenes: int
    nodes: int
    cells: int
    hinges: int
    handles: int
    frames: int

    def holds(self, other: "_Capacity") -> bool:
        return all(getattr(self, f.name) >= getattr(other, f.name) for f in dataclasses.fields(self))


class _Solver:
    """Batched cloth solver for up to ``capacity`` scenes / nodes / cells / hinges / handles / frames.

    Owns the Taichi runtime of this process: ``ti.init`` with one CPU thread (force accumulation
    order fixed) and without fast-math (no reassociation, so a scene's result does not depend on
    the field sizes or on the scenes batched with it).
    """

    def __init__(self, config: ClothConfig, capacity: _Capacity) -> None:
        ti = init_taichi("cloth")
        self.runtime = taichi_runtime()
        self.capacity = capacity
        s, n, c, b, h, t = (capacity.scenes, capacity.nodes, capacity.cells, capacity.hinges,
                            capacity.handles, capacity.frames)
        f64, vec3 = ti.f64, ti.types.vector(3, ti.f64)
        self.x = ti.Vector.field(3, f64, shape=n)
        self.v = ti.Vector.field(3, f64, shape=n)
        self.force = ti.Vector.field(3, f64, shape=n)
        self.mass = ti.field(f64, shape=n)
        self.free = ti.field(ti.i32, shape=n)        # 0 for handle nodes (and padding)
        self.node_scene = ti.field(ti.i32, shape=n)
        self.cells = ti.Vector.field(3, ti.i32, shape=c)
        self.dm_inverse = ti.Matrix.field(2, 2, f64, shape=c)
        self.rest_area = ti.field(f64, shape=c)
        self.cell_scene = ti.field(ti.i32, shape=c)
        self.hinge_nodes = ti.Vector.field(4, ti.i32, shape=b)
        self.hinge_weights = ti.Vector.field(4, f64, shape=b)
        self.hinge_stiffness = ti.field(f64, shape=b)
        self.handle_node = ti.field(ti.i32, shape=h)
        self.handle_position = ti.field(vec3, shape=(t, h))
        self.handle_velocity = ti.field(vec3, shape=(t, h))
        self.center = ti.field(vec3, shape=(t, s))
        self.center_velocity = ti.field(vec3, shape=(t, s))
        self.radius = ti.field(f64, shape=s)         # 0: no obstacle in this scene
        self.wind = ti.Vector.field(12, f64, shape=s)
        self.wind_now = ti.Vector.field(3, f64, shape=s)      # uniform wind at the current substep
        self.wind_heading = ti.Vector.field(3, f64, shape=s)  # its unit direction (0 without wind)
        self._advance = _build_advance_kernel(ti, config, self)

    def simulate(self, scenes: Sequence[_Assembled], num_steps: int, start_frame: int = 0,
                 states: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> list[np.ndarray]:
        """Advance every scene ``num_steps`` frames, all together.

        Args:
            scenes: the assembled scenes (their prescribed paths cover ``start_frame + num_steps`` frames).
            num_steps: frames to advance.
            start_frame: the frame the scenes are at (their paths and the wind continue from it).
            states: ``(position, velocity)`` ``(N_i, 3)`` of each scene's cloth nodes at ``start_frame``
                (default: the scenes' initial positions, at rest).

        Returns:
            one ``(num_steps + 1, N_i, 3)`` float64 array of cloth node positions per scene.
        """
        sizes = self._load(scenes)
        nodes = [len(s.position) for s in scenes]
        total = sum(nodes)
        if states is not None:
            pad = self.capacity.nodes - total
            self.x.from_numpy(np.concatenate([s[0] for s in states] + [np.zeros((pad, 3))]))
            self.v.from_numpy(np.concatenate([s[1] for s in states] + [np.zeros((pad, 3))]))
        frames = np.empty((num_steps + 1, total, 3), dtype=np.float64)  # (T, sum N_i, 3)
        frames[0] = self.x.to_numpy()[:total]
        for t in range(num_steps):
            self._advance(start_frame + t, len(scenes), *sizes)
            frames[t + 1] = self.x.to_numpy()[:total]
        offsets = np.cumsum([0] + nodes)
        return [frames[:, offsets[i]:offsets[i + 1]].copy() for i in range(len(scenes))]

    def velocities(self, scenes: Sequence[_Assembled]) -> list[np.ndarray]:
        """``(N_i, 3)`` cloth node velocities of each scene after :meth:`simulate`."""
        offsets = np.cumsum([0] + [len(s.position) for s in scenes])
        v = self.v.to_numpy()
        return [v[a:b].copy() for a, b in zip(offsets[:-1], offsets[1:])]

    def _load(self, scenes: Sequence[_Assembled]) -> tuple[int, int, int, int]:
        """Copy the scenes into the fields (padding zeroed); return the live node/cell/hinge/handle counts."""
        cap = self.capacity
        node_offsets = np.cumsum([0] + [len(s.position) for s in scenes])
        n, c = int(node_offsets[-1]), sum(len(s.cells) for s in scenes)
        b, h = sum(len(s.hinge_nodes) for s in scenes), sum(len(s.handles) for s in scenes)
        frames = len(scenes[0].center)

        def padded(parts: list[np.ndarray], size: int, dtype, fill=0) -> np.ndarray:
            joined = np.concatenate(parts) if parts else np.zeros((0,))
            out = np.full((size,) + joined.shape[1:], fill, dtype=dtype)
            out[:len(joined)] = joined
            return out

        def per_time(parts: list[np.ndarray], size: int) -> np.ndarray:  # (T, ..., 3) joined on axis 1
            out = np.zeros((cap.frames, size, 3))
            if parts:
                joined = np.concatenate(parts, axis=1)
                out[:frames, :joined.shape[1]] = joined
            return out

        self.x.from_numpy(padded([s.position for s in scenes], cap.nodes, np.float64))
        self.v.from_numpy(np.zeros((cap.nodes, 3)))
        self.mass.from_numpy(padded([s.mass for s in scenes], cap.nodes, np.float64, fill=1.0))
        free = np.zeros(cap.nodes, dtype=np.int32)
        free[:n] = 1
        for s, offset in zip(scenes, node_offsets):
            free[offset + s.handles] = 0
        self.free.from_numpy(free)
        self.node_scene.from_numpy(padded([np.full(len(s.position), i) for i, s in enumerate(scenes)],
                                          cap.nodes, np.int32))
        self.cells.from_numpy(padded([s.cells + o for s, o in zip(scenes, node_offsets)], cap.cells, np.int32))
        self.dm_inverse.from_numpy(padded([s.dm_inverse for s in scenes], cap.cells, np.float64))
        self.rest_area.from_numpy(padded([s.rest_area for s in scenes], cap.cells, np.float64))
        self.cell_scene.from_numpy(padded([np.full(len(s.cells), i) for i, s in enumerate(scenes)],
                                          cap.cells, np.int32))
        self.hinge_nodes.from_numpy(padded([s.hinge_nodes + o for s, o in zip(scenes, node_offsets)],
                                           cap.hinges, np.int32))
        self.hinge_weights.from_numpy(padded([s.hinge_weights for s in scenes], cap.hinges, np.float64))
        self.hinge_stiffness.from_numpy(padded([s.hinge_stiffness for s in scenes], cap.hinges, np.float64))
        self.handle_node.from_numpy(padded([s.handles + o for s, o in zip(scenes, node_offsets)],
                                           cap.handles, np.int32))
        self.handle_position.from_numpy(per_time([s.handle_position for s in scenes], cap.handles))
        self.handle_velocity.from_numpy(per_time([s.handle_velocity for s in scenes], cap.handles))
        self.center.from_numpy(per_time([s.center[:, None] for s in scenes], cap.scenes))
        self.center_velocity.from_numpy(per_time([s.center_velocity[:, None] for s in scenes], cap.scenes))
        self.radius.from_numpy(padded([np.array([s.radius]) for s in scenes], cap.scenes, np.float64))
        self.wind.from_numpy(padded([s.wind[None] for s in scenes], cap.scenes, np.float64))
        return n, c, b, h


def _build_advance_kernel(ti, config: ClothConfig, fields: _Solver):
    """A kernel that advances every scene by one frame (``config.substeps`` explicit steps).

    Constants are Python floats captured at compile time; per-scene quantities live in fields.
    The substep loop is serialized and the runtime has one thread, so the force accumulation
    order is fixed and a launch is deterministic.
    """
    x, v, force, mass, free = fields.x, fields.v, fields.force, fields.mass, fields.free
    node_scene, cells, dm_inverse, rest_area = fields.node_scene, fields.cells, fields.dm_inverse, fields.rest_area
    cell_scene = fields.cell_scene
    hinge_nodes, hinge_weights, hinge_stiffness = fields.hinge_nodes, fields.hinge_weights, fields.hinge_stiffness
    handle_node, handle_position, handle_velocity = fields.handle_node, fields.handle_position, fields.handle_velocity
    center, center_velocity, radius, wind = fields.center, fields.center_velocity, fields.radius, fields.wind
    wind_now, wind_heading = fields.wind_now, fields.wind_heading
    substeps, frame_dt, dt = config.substeps, config.frame_dt, config.substep_dt
    lam, mu = config.lame
    membrane_damping, bending_damping = config.membrane_damping, config.bending_damping
    gx, gy, gz = (float(g) for g in config.gravity)
    normal_coefficient = 0.5 * config.air_density * config.normal_drag
    tangential_coefficient = 0.5 * config.air_density * config.tangential_drag
    air = config.air_density > 0
    margin, friction = config.collision_margin, config.friction
    two_pi = 2.0 * math.pi

    @ti.func
    def hermite(p0, v0, p1, v1, s):
        """Cubic Hermite position and velocity at fraction ``s`` of a frame; exact at s = 0 and 1."""
        s2, s3 = s * s, s * s * s
        position = ((2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * frame_dt * v0
                    + (-2 * s3 + 3 * s2) * p1 + (s3 - s2) * frame_dt * v1)
        velocity = ((6 * s2 - 6 * s) * p0 / frame_dt + (3 * s2 - 4 * s + 1) * v0
                    + (-6 * s2 + 6 * s) * p1 / frame_dt + (3 * s2 - 2 * s) * v1)
        return position, velocity

    @ti.func
    def update_wind(scene, t):
        """The uniform part of ``scene``'s wind at time ``t`` into ``wind_now``: direction-swung mean
        wind times the gust factor, and the mean wind's unit vector (for the turbulence wave)."""
        p = wind[scene]
        mean = ti.Vector([p[0], p[1], p[2]])
        swing = p[6] * (ti.sin(two_pi * p[7] * t + p[8]) - ti.sin(p[8]))
        c, s = ti.cos(swing), ti.sin(swing)
        turned = ti.Vector([c * mean[0] - s * mean[1], s * mean[0] + c * mean[1], mean[2]])
        gust = 1.0 + p[3] * ti.sin(two_pi * p[4] * t + p[5])
        wind_now[scene] = turned * gust
        speed = mean.norm()
        heading = ti.Vector.zero(ti.f64, 3)
        if speed > 0:
            heading = turned / speed
        wind_heading[scene] = heading

    @ti.func
    def wind_at(scene, point, t):
        """Wind velocity of ``scene`` at ``point`` and time ``t`` (after ``update_wind``): the
        frozen-turbulence wave travels with the mean wind speed along its (swung) direction."""
        p = wind[scene]
        travelled = wind_heading[scene].dot(point) - ti.Vector([p[0], p[1], p[2]]).norm() * t
        return wind_now[scene] * (1.0 + p[9] * ti.sin(two_pi * travelled / p[10] + p[11]))

    def advance(frame, num_scenes, num_nodes, num_cells, num_hinges, num_handles):
        ti.loop_config(serialize=True)
        for k in range(substeps):
            s = (k + 1) / substeps  # fraction of the frame at the end of this substep
            t = (frame + s) * frame_dt
            for scene in range(num_scenes):
                update_wind(scene, t)
            for i in range(num_nodes):
                force[i] = mass[i] * ti.Vector([gx, gy, gz])

            # membrane (StVK + strain-rate damping) and air, per triangle
            for e in range(num_cells):
                a, b, c = cells[e][0], cells[e][1], cells[e][2]
                ds = ti.Matrix.cols([x[b] - x[a], x[c] - x[a]])  # (3, 2)
                dv = ti.Matrix.cols([v[b] - v[a], v[c] - v[a]])
                F = ds @ dm_inverse[e]
                F_rate = dv @ dm_inverse[e]
                strain = 0.5 * (F.transpose() @ F - ti.Matrix.identity(ti.f64, 2))
                strain_rate = 0.5 * (F.transpose() @ F_rate + F_rate.transpose() @ F)
                total = strain + membrane_damping * strain_rate
                stress = lam * total.trace() * ti.Matrix.identity(ti.f64, 2) + 2.0 * mu * total  # PK2
                h = -rest_area[e] * (F @ stress) @ dm_inverse[e].transpose()  # (3, 2): forces on b, c
                fb = ti.Vector([h[0, 0], h[1, 0], h[2, 0]])
                fc = ti.Vector([h[0, 1], h[1, 1], h[2, 1]])
                force[b] += fb
                force[c] += fc
                force[a] += -fb - fc
                if ti.static(air):
                    cross = (x[b] - x[a]).cross(x[c] - x[a])
                    twice_area = cross.norm()
                    if twice_area > 0:
                        normal = cross / twice_area
                        centroid = (x[a] + x[b] + x[c]) / 3.0
                        relative = wind_at(cell_scene[e], centroid, t) - (v[a] + v[b] + v[c]) / 3.0
                        w_n = relative.dot(normal)
                        w_t = relative - w_n * normal
                        area = 0.5 * twice_area
                        aero = area * (normal_coefficient * w_n * ti.abs(w_n) * normal
                                       + tangential_coefficient * w_t.norm() * w_t)
                        force[a] += aero / 3.0
                        force[b] += aero / 3.0
                        force[c] += aero / 3.0

            # bending hinges: f_i = -k K_i (sum_j K_j x_j + damping * sum_j K_j v_j)
            for e in range(num_hinges):
                bend = ti.Vector.zero(ti.f64, 3)
                for j in ti.static(range(4)):
                    node = hinge_nodes[e][j]
                    bend += hinge_weights[e][j] * (x[node] + bending_damping * v[node])
                for j in ti.static(range(4)):
                    force[hinge_nodes[e][j]] += -hinge_stiffness[e] * hinge_weights[e][j] * bend

            # symplectic Euler, then the sphere
            for i in range(num_nodes):
                if free[i] == 1:
                    v[i] += dt * force[i] / mass[i]
                    x[i] += dt * v[i]
                    scene = node_scene[i]
                    if radius[scene] > 0:
                        c, c_rate = hermite(center[frame, scene], center_velocity[frame, scene],
                                            center[frame + 1, scene], center_velocity[frame + 1, scene], s)
                        offset = x[i] - c
                        distance = offset.norm()
                        shell = radius[scene] + margin
                        if distance < shell:
                            normal = offset / distance
                            x[i] = c + shell * normal
                            relative = v[i] - c_rate
                            w_n = relative.dot(normal)
                            if w_n < 0:
                                tangent = relative - w_n * normal
                                speed = tangent.norm()
                                keep = 0.0
                                if speed > 0:
                                    keep = ti.max(0.0, 1.0 - friction * (-w_n) / speed)
                                v[i] = c_rate + keep * tangent

            # handles on their prescribed path
            for j in range(num_handles):
                p, q = hermite(handle_position[frame, j], handle_velocity[frame, j],
                               handle_position[frame + 1, j], handle_velocity[frame + 1, j], s)
                x[handle_node[j]] = p
                v[handle_node[j]] = q

    # Real (not string) annotations: this module uses ``from __future__ import annotations``.
    advance.__annotations__ = {name: ti.i32 for name in
                               ("frame", "num_scenes", "num_nodes", "num_cells", "num_hinges", "num_handles")}
    return ti.kernel(advance)


_HANGING_SECONDS = 4.0  # duration of the hanging-sheet check (s); solvers are sized for it up front
# The config fields compiled into the kernel; the others never force a (slow) re-initialization.
_KERNEL_FIELDS = ("frame_dt", "substeps", "stretch_modulus", "poisson_ratio", "membrane_damping",
                  "bending_damping", "gravity", "air_density", "normal_drag", "tangential_drag",
                  "collision_margin", "friction")
_SOLVER: _Solver | None = None  # this process's solver (one Taichi runtime, one set of fields)
_SOLVER_KEY: tuple | None = None


def _get_solver(config: ClothConfig, capacity: _Capacity) -> _Solver:
    """Reuse this process's solver when it fits, else re-initialize Taichi and build a new one."""
    global _SOLVER, _SOLVER_KEY
    key = tuple(getattr(config, name) for name in _KERNEL_FIELDS)
    if (_SOLVER is None or _SOLVER_KEY != key or not _SOLVER.capacity.holds(capacity)
            or _SOLVER.runtime != taichi_runtime()):
        _SOLVER, _SOLVER_KEY = _Solver(config, capacity), key
    return _SOLVER


def _check_steps(config: ClothConfig, duration: float) -> int:
    """Frames simulated by a check of ``duration`` seconds."""
    return max(10, round(duration / config.frame_dt))


def simulate_scenes(config: ClothConfig, scenes: Sequence[ClothScene],
                    num_steps: int | None = None) -> list[np.ndarray]:
    """Simulate scenes together in this process (one kernel launch per frame for all of them).

    Args:
        config: the generator config.
        scenes: the trajectories' parameters.
        num_steps: frames to simulate after the first; ``config.num_steps`` by default.

    Returns:
        one ``(T, N_cloth, 3)`` float64 array of cloth node positions per scene (no obstacle nodes).
    """
    num_steps = config.num_steps if num_steps is None else num_steps
    assembled = [_assemble(config, scene, num_steps) for scene in scenes]
    return _run(config, assembled, num_steps)[0]


def _run(config: ClothConfig, assembled: Sequence[_Assembled], num_steps: int, start_frame: int = 0,
         states: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Simulate assembled scenes from ``start_frame`` (and ``states``): positions ``(T, N_i, 3)``, final velocities."""
    batch = max(config.scenes_per_batch, len(assembled))
    one = assembled[0]
    # Capacity for a full batch of the config's own mesh and for the checks' frames, so that one
    # compiled kernel serves every batch and check (new field sizes mean a new Taichi runtime).
    capacity = _Capacity(scenes=batch, nodes=batch * len(one.position), cells=batch * len(one.cells),
                         hinges=batch * len(one.hinge_nodes), handles=max(1, batch * len(cloth_mesh(config)[2])),
                         frames=max(start_frame + num_steps, config.num_steps,
                                    _check_steps(config, _HANGING_SECONDS)) + 1)
    solver = _get_solver(config, capacity)
    frames = solver.simulate(assembled, num_steps, start_frame, states)
    return frames, solver.velocities(assembled)


def obstacle_mesh(config: ClothConfig, scene: ClothScene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The OBSTACLE nodes of a scene with a sphere.

    Returns:
        ``vertices`` ``(V, 3)`` on the sphere of radius ``obstacle_radius`` centred at the origin,
        ``mesh_pos`` ``(V, 2)`` (their x, y: an orthographic projection of the rest sphere, so a
        mesh-space edge is never longer than the true one) and ``faces`` ``(F, 3)`` int32.
    """
    unit, faces = icosphere(config.obstacle_subdivisions)
    vertices = scene.obstacle_radius * unit
    return vertices, vertices[:, :2].copy(), faces


# ---------------------------------------------------------------------------------------------------
# Counterfactuals: the solver restarted from an intervened state
# ---------------------------------------------------------------------------------------------------


@dataclass
class _ReplayState:
    """One scenario's solver state: its assembled paths, the cloth at the start frame, the sphere's path shift."""

    assembled: _Assembled     # paths over frames 0 .. start + steps
    position: np.ndarray      # (N_cloth, 3) at the start frame
    velocity: np.ndarray      # (N_cloth, 3)
    center_shift: np.ndarray  # (T, 3) added to the sphere's centre path (its OBSTACLE nodes move with it)


class ClothReplay(Replayer):
    """Re-simulates counterfactual scenarios of one cloth trajectory (a :class:`gns.solvers.common.Replayer`).

    The cloth's state (positions and velocities) at the start frame is re-simulated from the
    trajectory's stored scene. Each scenario's interventions are replayed with the solver's own
    parts: ``kick`` / ``set_velocity`` change cloth velocities, ``move`` shifts cloth nodes, the
    pole (its HANDLE nodes' path) or the whole sphere, ``move_prescribed`` adds the same
    displacement to the handles' or the sphere's prescribed path (velocities by finite
    differences, for the in-frame interpolation), ``set_input`` on ``wind`` from the current frame
    sets a steady wind (``value``) or scales the mean wind (``scale``). The mesh is fixed:
    ``remove``, ``add`` and ``set_type`` have no counterpart.

    Args:
        config, scene: the generator's config and the trajectory's stored scene.
        start: the frame of the intervention.
        check: ``(N, 3)`` the dataset's positions at ``start``; the re-simulated state must match them.
    """

    def __init__(self, config: ClothConfig, scene: ClothScene, start: int, check: np.ndarray | None = None) -> None:
        self.config, self.scene, self.start = config, scene, start
        mesh_pos, _, handles = cloth_mesh(config)
        self.num_cloth = len(mesh_pos)
        self.handles = handles if scene.pinned else handles[:0]
        self.vertices = obstacle_mesh(config, scene)[0] if scene.has_obstacle else np.zeros((0, 3))
        assembled = _assemble(config, scene, start)
        frames, velocities = _run(config, [assembled], start)
        self._position, self._velocity = frames[0][-1], velocities[0]
        if check is not None:
            rebuilt = np.concatenate([self._position, self.vertices + prescribed_obstacle(scene, np.array(
                [start * config.frame_dt]))[0][0]]) if scene.has_obstacle else self._position
            error = float(np.abs(rebuilt - check).max()) if rebuilt.shape == check.shape else float("inf")
            if not error < 1e-4:
                raise GnsInputError("the cloth solver does not reproduce this trajectory at the start frame "
                                    "(another solver version or config made the dataset)", key="start",
                                    expected="positions within 1e-4 m of the dataset's", found=f"{error:.3g} m")

    @classmethod
    def from_generator(cls, generator: dict, split_id: int, index: int, start: int,
                       check: np.ndarray | None = None) -> "ClothReplay":
        """From a dataset's ``generator`` record (its config and stored scenes; the same solver version)."""
        if str(generator.get("solver_version")) != SOLVER_VERSION:
            raise GnsInputError("the dataset was made by another version of the cloth solver",
                                key="generator/solver_version", expected=SOLVER_VERSION,
                                found=generator.get("solver_version"))
        fields = {f.name for f in dataclasses.fields(ClothConfig)}
        config = ClothConfig(**{k: v for k, v in generator["config"].items() if k in fields})
        stored = generator["trajectories"][SPLITS[split_id]][index]["scene"]
        scene = ClothScene(**{k: (_floats(v) if isinstance(v, list) else v) for k, v in stored.items()})
        return cls(config, scene, start, check=check)

    def start_state(self, steps: int) -> _ReplayState:
        assembled = _assemble(self.config, self.scene, self.start + steps)
        return _ReplayState(assembled, self._position.copy(), self._velocity.copy(), np.zeros_like(assembled.center))

    def apply(self, state: _ReplayState, record) -> _ReplayState:
        idx, params, op = np.asarray(record.entities), record.params, record.op
        cloth = idx[idx < self.num_cloth]
        sphere = idx[idx >= self.num_cloth]
        handle = np.isin(cloth, self.handles)
        a = state.assembled
        if len(sphere) and len(sphere) != len(self.vertices):
            raise NotResimulable("the cloth solver moves the sphere as a whole: select all of its OBSTACLE nodes")
        if op in ("kick", "set_velocity") and handle.any():
            raise NotResimulable("handle nodes follow their path; they cannot be kicked")
        if op in ("kick", "set_velocity"):
            state.velocity[cloth] = (state.velocity[cloth] + params["delta"] if op == "kick" else params["velocity"])
        elif op == "move":
            offset = np.asarray(params["offset"], dtype=np.float64)
            state.position[cloth] += offset
            slot = np.searchsorted(self.handles, cloth[handle])
            a.handle_position[self.start:, slot] += offset
            if len(sphere):
                a.center[self.start:] += offset
                state.center_shift[self.start:] += offset
        elif op == "move_prescribed":
            path = np.concatenate([np.zeros((1, 3)), np.asarray(params["displacement"], dtype=np.float64)])  # (S+1, 3)
            steps = len(path) - 1
            rate = np.gradient(path, self.config.frame_dt, axis=0)
            frames = slice(self.start, self.start + steps + 1)
            slot = np.searchsorted(self.handles, cloth[handle])
            a.handle_position[frames, slot] += path[:, None]
            a.handle_velocity[frames, slot] += rate[:, None]
            if len(sphere):
                a.center[frames] += path
                a.center_velocity[frames] += rate
                state.center_shift[frames] += path
        elif op == "set_input" and params["field"] == "wind":
            if params["from_frame"] != 0 or params.get("to_frame") is not None or not params.get("every", True) \
                    or np.ndim(params["value"]) == 2:
                raise NotResimulable("the cloth solver sets or scales one wind for the whole cloth from the current "
                                     "frame on (from_frame: 0, no to_frame, no select, one value)")
            wind = a.wind.copy()
            if params["value"] is not None:
                wind[0:3] = params["value"]
                wind[[3, 6, 9]] = 0.0  # a steady wind: no gust, swing or turbulence
            else:
                wind[0:3] *= float(params["scale"])
            a.wind = wind
        else:
            raise NotResimulable(f"the cloth solver's mesh and materials are fixed: '{op}' has no counterpart")
        return state

    def simulate(self, states, steps: int):
        import torch

        names = list(states)
        prepared = [states[n] for n in names]
        frames, _ = _run(self.config, [s.assembled for s in prepared], steps, self.start,
                         [(s.position, s.velocity) for s in prepared])
        out = {}
        for name, state, cloth in zip(names, prepared, frames):
            world = cloth[1:]                                                               # (S, N_cloth, 3)
            if len(self.vertices):
                times = np.arange(self.start + 1, self.start + steps + 1) * self.config.frame_dt
                center = prescribed_obstacle(self.scene, times)[0] + state.center_shift[self.start + 1:
                                                                                        self.start + steps + 1]
                world = np.concatenate([world, center[:, None] + self.vertices[None]], axis=1)
            out[name] = {"world_pos": torch.from_numpy(world.transpose(1, 0, 2).astype(np.float32))}
        return out


@dataclass(eq=False)
class ClothTrajectory:
    """One simulated trajectory in the canonical mesh layout (cloth nodes first, then obstacle).

    Attributes:
        world_pos: ``(T, N, 3)`` float64 world positions.
        mesh_pos: ``(N, 2)`` rest coordinates (obstacle nodes: see ``obstacle_mesh``).
        cells: ``(C, 3)`` int32 triangles, obstacle faces offset by the number of cloth nodes.
        node_type: ``(N,)`` int32, NORMAL / HANDLE / OBSTACLE.
        scene: the parameters it was made from.
        handle_path: ``(T, H, 3)`` the prescribed handle positions.
        obstacle_center: ``(T, 3)`` the prescribed sphere centre (zeros without obstacle).
        wind: ``(T, N, 3)`` the wind velocity at every node and frame (:func:`wind_velocity`).
    """

    world_pos: np.ndarray
    mesh_pos: np.ndarray
    cells: np.ndarray
    node_type: np.ndarray
    scene: ClothScene
    handle_path: np.ndarray
    obstacle_center: np.ndarray
    wind: np.ndarray

    @property
    def num_cloth_nodes(self) -> int:
        return int((self.node_type != OBSTACLE).sum())


def build_trajectory(config: ClothConfig, scene: ClothScene, cloth: np.ndarray) -> ClothTrajectory:
    """Add node types and the obstacle mesh to simulated cloth positions ``(T, N_cloth, 3)``."""
    mesh_pos, cells, handles = cloth_mesh(config)
    num_frames = len(cloth)
    times = np.arange(num_frames) * config.frame_dt
    node_type = np.full(len(mesh_pos), NORMAL, dtype=np.int32)
    if scene.pinned:
        node_type[handles] = HANDLE
    else:
        handles = handles[:0]
    handle_path, _ = prescribed_handles(config, scene, mesh_pos[handles], times)
    center, _ = prescribed_obstacle(scene, times)
    world_pos = cloth
    if scene.has_obstacle:
        vertices, sphere_mesh_pos, faces = obstacle_mesh(config, scene)
        sphere = center[:, None, :] + vertices[None]  # (T, V, 3)
        world_pos = np.concatenate([cloth, sphere], axis=1)
        mesh_pos = np.concatenate([mesh_pos, sphere_mesh_pos])
        cells = np.concatenate([cells, faces + len(node_type)]).astype(np.int32)
        node_type = np.concatenate([node_type, np.full(len(vertices), OBSTACLE, dtype=np.int32)])
    return ClothTrajectory(world_pos=world_pos, mesh_pos=mesh_pos, cells=cells, node_type=node_type, scene=scene,
                           handle_path=handle_path, obstacle_center=center,
                           wind=wind_velocity(scene, world_pos, times))


def simulate_trajectory(config: ClothConfig, split_id: int, index: int) -> ClothTrajectory:
    """Trajectory ``index`` of split ``split_id``, simulated alone."""
    scene = sample_scene(config, split_id, index)
    return build_trajectory(config, scene, simulate_scenes(config, [scene])[0])


# ---------------------------------------------------------------------------------------------------
# Validation and physical checks
# ---------------------------------------------------------------------------------------------------


def edge_strain(world_pos: np.ndarray, mesh_pos: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Engineering strain ``|x_i - x_j| / |X_i - X_j| - 1`` of every mesh edge, ``(T, E)``.

    Args:
        world_pos: ``(T, N, 3)`` positions of the nodes ``cells`` refers to.
        mesh_pos: ``(N, 2)`` rest coordinates.
        cells: ``(C, 3)`` triangles.
    """
    edges = mesh_edges(cells)
    rest = np.linalg.norm(mesh_pos[edges[:, 0]] - mesh_pos[edges[:, 1]], axis=-1)  # (E,)
    length = np.linalg.norm(world_pos[:, edges[:, 0]] - world_pos[:, edges[:, 1]], axis=-1)  # (T, E)
    return length / rest - 1.0


def kinetic_energy_per_frame(world_pos: np.ndarray, mass: np.ndarray, dt: float) -> np.ndarray:
    """Kinetic energy (J) ``(T-1,)`` from finite differences of ``(T, N, 3)`` positions, masses ``(N,)``."""
    velocity = np.diff(world_pos, axis=0) / dt
    return 0.5 * ((velocity ** 2).sum(-1) * mass).sum(-1)


def node_masses(config: ClothConfig) -> np.ndarray:
    """Lumped masses ``(N_cloth,)`` (kg) of the cloth nodes."""
    mesh_pos, cells, _ = cloth_mesh(config)
    area = rest_areas(mesh_pos, cells)
    mass = np.zeros(len(mesh_pos))
    np.add.at(mass, cells.ravel(), np.repeat(config.areal_density * area / 3.0, 3))
    return mass


def validate_trajectory(config: ClothConfig, trajectory: ClothTrajectory) -> dict:
    """Physical summary of one trajectory; raises if it is not finite.

    Returns:
        ``num_nodes``, ``num_cloth_nodes``, ``max_edge_strain`` / ``min_edge_strain`` /
        ``p99_edge_strain`` (cloth edges, all frames), ``max_handle_error`` (m, recorded vs
        prescribed), ``max_penetration`` (m, depth of a cloth node inside the sphere),
        ``contact_frames`` (frames with a node within the collision shell + 1 mm), ``max_contact_to_vertex``
        (m, distance of a touching node to its nearest obstacle node; compare with the world-edge radius),
        ``max_displacement`` / ``p99_displacement`` (m per frame), ``final_to_peak_kinetic_energy``.
    """
    world_pos = trajectory.world_pos
    if not np.isfinite(world_pos).all():
        raise FloatingPointError("cloth simulation produced non-finite positions")
    cloth_count = trajectory.num_cloth_nodes
    cloth = world_pos[:, :cloth_count]  # (T, Nc, 3)
    mesh_pos, cells, handles = cloth_mesh(config)
    strain = edge_strain(cloth, mesh_pos, cells)  # (T, E)
    handle_error = 0.0
    if trajectory.scene.pinned:
        handle_error = float(np.abs(cloth[:, handles] - trajectory.handle_path).max())
    report = {
        "num_nodes": int(world_pos.shape[1]), "num_cloth_nodes": cloth_count,
        "has_obstacle": trajectory.scene.has_obstacle,
        "moving_handles": bool(np.abs(trajectory.handle_path - trajectory.handle_path[:1]).max(initial=0) > 0),
        "max_edge_strain": float(strain.max()), "min_edge_strain": float(strain.min()),
        "p99_edge_strain": float(np.percentile(strain, 99)),
        "max_handle_error": handle_error, "max_penetration": 0.0, "contact_frames": 0,
        "max_contact_to_vertex": 0.0,
    }
    step = np.linalg.norm(np.diff(cloth, axis=0), axis=-1)  # (T-1, Nc) per-frame displacements
    report.update(max_displacement=float(step.max()), p99_displacement=float(np.percentile(step, 99)))
    energy = kinetic_energy_per_frame(cloth, node_masses(config), config.frame_dt)
    report["final_to_peak_kinetic_energy"] = float(energy[-10:].mean() / max(energy.max(), 1e-30))
    if trajectory.scene.has_obstacle:
        report.update(_contact_report(config, trajectory, cloth))
    return report


def _contact_report(config: ClothConfig, trajectory: ClothTrajectory, cloth: np.ndarray) -> dict:
    radius = trajectory.scene.obstacle_radius
    distance = np.linalg.norm(cloth - trajectory.obstacle_center[:, None], axis=-1)  # (T, Nc)
    touching = distance < radius + config.collision_margin + 1e-3
    report = {"max_penetration": float(np.maximum(radius - distance, 0.0).max()),
              "contact_frames": int(touching.any(axis=1).sum()), "max_contact_to_vertex": 0.0}
    if touching.any():
        sphere = trajectory.world_pos[:, trajectory.num_cloth_nodes:]  # (T, V, 3)
        frames, nodes = np.nonzero(touching)
        gaps = np.linalg.norm(cloth[frames, nodes][:, None] - sphere[frames], axis=-1).min(axis=1)
        report["max_contact_to_vertex"] = float(gaps.max())
    return report


def free_fall_check(config: ClothConfig = ClothConfig(), duration: float = 0.5) -> dict:
    """Drop an unpinned flat sheet from rest in a vacuum; compare its centroid with g t^2 / 2.

    Air is switched off (a sheet falling face-first in air reaches its terminal speed of about
    1.8 m/s within a fraction of a second); membrane and bending forces are internal and sum to
    zero, so the centroid must fall exactly as a point mass does.

    Returns:
        ``{"time", "num_steps", "simulated_drop", "analytic_drop", "relative_error", "max_edge_strain"}``
        (drops in metres, time in seconds).
    """
    g = np.asarray(config.gravity, dtype=float)
    if not np.linalg.norm(g) > 0:
        raise GnsInputError("the free-fall check needs gravity", key="gravity", found=config.gravity)
    vacuum = dataclasses.replace(config, air_density=0.0)
    num_steps = max(2, round(duration / config.frame_dt))
    scene = ClothScene(pinned=False)  # the usual vertical start, but nothing holds it
    cloth = simulate_scenes(vacuum, [scene], num_steps)[0]
    mass = node_masses(config)
    centroid = (cloth * mass[None, :, None]).sum(1) / mass.sum()  # (T, 3)
    t = num_steps * config.frame_dt
    simulated = centroid[-1] - centroid[0]
    analytic = 0.5 * g * t ** 2
    strain = edge_strain(cloth, *cloth_mesh(config)[:2])
    return {"time": t, "num_steps": num_steps, "simulated_drop": float(-simulated[2]),
            "analytic_drop": float(-analytic[2]),
            "relative_error": float(np.linalg.norm(simulated - analytic) / np.linalg.norm(analytic)),
            "max_edge_strain": float(np.abs(strain).max())}


def hanging_check(config: ClothConfig = ClothConfig(), duration: float = _HANGING_SECONDS,
                  curl: float = 0.03) -> dict:
    """A sheet pinned on a fixed pole, in still air, released from its slightly bowed start
    (``curl`` breaks the symmetry that would keep a perfectly flat sheet in its plane): it swings
    down, folds and settles, its kinetic energy taken by the air and the damping.

    Returns:
        ``{"time", "peak_kinetic_energy", "final_kinetic_energy", "final_to_peak_kinetic_energy",
        "max_edge_strain", "final_max_edge_strain", "final_drop"}`` where ``final_drop`` is how far
        the free corner has fallen (m) and strains are engineering edge strains.
    """
    num_steps = _check_steps(config, duration)
    cloth = simulate_scenes(config, [ClothScene(curl=curl)], num_steps)[0]
    energy = kinetic_energy_per_frame(cloth, node_masses(config), config.frame_dt)
    strain = edge_strain(cloth, *cloth_mesh(config)[:2])  # (T, E)
    corner = config.nodes_u - 1  # free corner at the bottom
    final = energy[-max(1, len(energy) // 20):].mean()
    return {"time": num_steps * config.frame_dt, "peak_kinetic_energy": float(energy.max()),
            "final_kinetic_energy": float(final), "final_to_peak_kinetic_energy": float(final / energy.max()),
            "max_edge_strain": float(strain.max()), "final_max_edge_strain": float(strain[-1].max()),
            "final_drop": float(cloth[0, corner, 2] - cloth[-1, corner, 2])}


# ---------------------------------------------------------------------------------------------------
# Dataset generation
# ---------------------------------------------------------------------------------------------------


def _simulate_task(task: tuple[ClothConfig, int, tuple[int, ...]]) -> list[tuple[ClothTrajectory, dict]]:
    """Worker job: simulate trajectories ``indices`` of split ``split_id`` together."""
    config, split_id, indices = task
    scenes = [sample_scene(config, split_id, i) for i in indices]
    results = []
    for scene, cloth in zip(scenes, simulate_scenes(config, scenes)):
        trajectory = build_trajectory(config, scene, cloth)
        results.append((trajectory, validate_trajectory(config, trajectory)))
    return results


def _write_splits(out_dir: Path, config: ClothConfig, progress: bool) -> dict[str, list[dict]]:
    """Simulate and write ``<split>.h5`` for every split; return the per-trajectory reports."""
    from gns.data.mesh import MeshTrajectory, write_mesh_split

    metadata = _metadata(config, generator=None)  # the writer checks fields and node types against it
    reports: dict[str, list[dict]] = {split: [] for split in SPLITS}

    def mesh_trajectory(split: str, result: tuple[ClothTrajectory, dict]) -> MeshTrajectory:
        trajectory, report = result
        reports[split].append({**report, "scene": trajectory.scene.to_dict()})
        wind = trajectory.wind.astype(np.float32)                              # (T, N, 3)
        dynamic = {"world_pos": trajectory.world_pos.astype(np.float32)}
        static = {}
        if config.steady_wind:
            static["wind"] = wind[0]                                           # (N, 3): the same every frame
        else:
            dynamic["wind"] = wind
        return MeshTrajectory(mesh_pos=trajectory.mesh_pos.astype(np.float32), cells=trajectory.cells,
                              node_type=trajectory.node_type, fields=dynamic, static_fields=static)

    # spawn: every worker starts clean and runs its own single-threaded Taichi runtime.
    results = run_batches(_simulate_task, batch_tasks(config, config.scenes_per_batch),
                          num_workers=config.num_workers, desc="cloth trajectories", progress=progress)
    write_splits(out_dir, config.split_sizes, results, mesh_trajectory,
                 lambda path, trajectories: write_mesh_split(path, trajectories, metadata))
    return reports


def _summarize(config: ClothConfig, reports: dict[str, list[dict]], free_fall: dict, hanging: dict) -> dict:
    """Dataset-level validation record for ``metadata["generator"]["validation"]``."""
    every = [r for split in SPLITS for r in reports[split]]
    counts = np.array([r["num_nodes"] for r in every])
    with_obstacle = [r for r in every if r["has_obstacle"]]
    energy = np.array([r["final_to_peak_kinetic_energy"] for r in every])
    return {
        "trajectories": {split: len(reports[split]) for split in SPLITS},
        "nodes_per_trajectory": {"min": int(counts.min()), "max": int(counts.max()),
                                 "cloth": int(every[0]["num_cloth_nodes"])},
        "with_obstacle": len(with_obstacle), "with_moving_handles": sum(r["moving_handles"] for r in every),
        "finite": True,  # validate_trajectory raised otherwise
        "max_edge_strain": max(r["max_edge_strain"] for r in every),
        "min_edge_strain": min(r["min_edge_strain"] for r in every),
        "p99_edge_strain_mean": float(np.mean([r["p99_edge_strain"] for r in every])),
        "max_handle_error": max(r["max_handle_error"] for r in every),
        "max_obstacle_penetration": max((r["max_penetration"] for r in every), default=0.0),
        "obstacle_contact_frames": sum(r["contact_frames"] for r in every),
        "max_contact_to_obstacle_node": max((r["max_contact_to_vertex"] for r in every), default=0.0),
        "world_edge_radius": config.world_edge_radius,
        "max_displacement_per_step": max(r["max_displacement"] for r in every),
        "p99_displacement_per_step_mean": float(np.mean([r["p99_displacement"] for r in every])),
        "final_to_peak_kinetic_energy": {"mean": float(energy.mean()), "max": float(energy.max())},
        "free_fall": free_fall,
        "hanging_still_air": hanging,
    }


def _metadata(config: ClothConfig, generator: dict | None):
    """The dataset's ``MeshMetadata`` (docs/mesh_format.md)."""
    from gns.data.mesh import MeshFieldSpec, MeshMetadata, MeshTarget

    node_types = dict(NODE_TYPES) if config.obstacle_fraction > 0 else {"NORMAL": NORMAL, "HANDLE": HANDLE}
    return MeshMetadata(
        domain="cloth", dt=config.frame_dt, mesh_dim=2, cell_type="triangle", node_types=node_types,
        fields={"world_pos": MeshFieldSpec(dim=3, dynamic=True),
                "wind": MeshFieldSpec(dim=3, dynamic=not config.steady_wind)},  # static when steady
        target=MeshTarget("world_pos", 2), outputs=[], inputs=["wind"], sequence_length=config.num_steps,
        world_edge_radius=config.world_edge_radius, generator=generator,
    )


def generate_cloth(out_dir: str | os.PathLike, config: ClothConfig = ClothConfig(), *,
                   progress: bool = True) -> Path:
    """Simulate the cloth dataset and write it in the canonical mesh layout (docs/mesh_format.md).

    Writes ``metadata.json`` and ``train.h5``, ``valid.h5``, ``test.h5`` (a split with zero
    trajectories is not written) into ``out_dir``. Each trajectory holds ``world_pos``
    ``(T, N, 3)`` float32, ``mesh_pos`` ``(N, 2)``, ``cells`` ``(C, 3)`` and ``node_type`` ``(N,)``
    (NORMAL 0 cloth, HANDLE 3 pole, OBSTACLE 1 sphere; cloth nodes first). ``metadata["generator"]``
    records the solver, the Taichi version, the full config, the seed, the measured time, every
    trajectory's scene parameters and the validation summary.

    Args:
        out_dir: dataset directory (created if missing; files of the same names are replaced).
        config: every generation parameter; the same config gives bit-identical files.
        progress: show a tqdm bar over trajectories.

    Returns:
        ``out_dir`` as a Path.
    """
    from gns.data.mesh import save_mesh_metadata

    if sum(config.split_sizes.values()) < 1:
        raise GnsInputError("nothing to generate: every split is empty", key="num_train/num_valid/num_test",
                            expected="at least one trajectory", found=config.split_sizes)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    reports = _write_splits(out_dir, config, progress)
    simulation_seconds = time.perf_counter() - started
    checks_started = time.perf_counter()
    validation = _summarize(config, reports, free_fall_check(config), hanging_check(config))
    scenes = {split: [r.pop("scene") for r in reports[split]] for split in SPLITS}
    generator = {
        "solver": SOLVER_NAME, "solver_version": SOLVER_VERSION, "taichi_version": package_version("taichi"),
        "seed": config.seed, "config": config.to_dict(), "gravity": list(config.gravity),
        "generation_seconds": round(time.perf_counter() - started, 2),
        "simulation_seconds": round(simulation_seconds, 2),
        "check_seconds": round(time.perf_counter() - checks_started, 2),
        "validation": validation,
        "trajectories": {split: [{**r, "scene": s} for r, s in zip(reports[split], scenes[split])]
                         for split in SPLITS},
    }
    save_mesh_metadata(_metadata(config, generator), out_dir)
    return out_dir


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m gns.solvers.cloth --out DIR [--seed S] [--small] [--workers W]``."""
    args = generator_parser("Generate the cloth (flag) mesh dataset (Taichi).", ClothConfig).parse_args(argv)
    out = generate_cloth(args.out, generator_config(ClothConfig, args))
    from gns.data.mesh import load_mesh_metadata

    generator = load_mesh_metadata(out).generator
    print_generation(out, generator, generator["validation"])


if __name__ == "__main__":
    main()
