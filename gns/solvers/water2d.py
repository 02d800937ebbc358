"""Water2D: a 2D free-surface fluid in a box, simulated with MLS-MPM in Taichi.

This is the reference solver behind the default dataset, in the spirit of the WaterDrop data of
Sanchez-Gonzalez et al. (2020): one to three blocks of water with random sizes, positions and
velocities fall, splash and settle in a closed box.

Method (moving least squares material point method, Hu et al. 2018), per substep:

1. particle to grid (P2G): each particle scatters mass and affine momentum to the 3x3 grid nodes of
   its quadratic B-spline stencil. The affine term carries both the APIC velocity gradient ``C`` and
   the stress, which for a weakly compressible fluid is a pressure from the volume ratio ``J``
   (Tait equation of state ``p = K (J^-gamma - 1) / gamma``) plus an optional Newtonian viscosity;
2. grid update: momentum / mass, gravity, and the walls of the box (slip or sticky) at every node
   that lies on or beyond a wall;
3. grid to particle (G2P): new velocity and velocity gradient ``C`` gathered from the stencil,
   ``J *= 1 + dt tr(C)``, and positions advected.

Determinism. Taichi's CPU atomics in P2G are order-nondeterministic with several threads, so every
Taichi runtime here runs with ``cpu_max_num_threads=1``. Parallelism comes instead from simulating
several scenes in one kernel launch (a scene index on each particle and one grid per scene; scenes
never interact, so a scene's result does not depend on what it is batched with) and from a pool of
worker processes, each with its own Taichi runtime. Initial conditions come from
``np.random.default_rng([seed, split_id, trajectory_index])``, so a trajectory's content does not
depend on how many trajectories were generated, on the batch size or on the number of workers.

Taichi is an optional dependency (``pip install "gns[solvers]"``); it is imported only inside the
functions that need it, so importing this module never requires it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from gns.errors import GnsInputError
from gns.solvers.common import (SPLITS, GeneratorConfig, NotResimulable, Replayer, batch_tasks, check_at_least,
                                config_error, generator_config, generator_parser, init_taichi, package_version,
                                print_generation, run_batches, taichi_runtime, write_splits)

SOLVER_NAME = "gns.solvers.water2d (MLS-MPM, Taichi)"
SOLVER_VERSION = "1"
WATER_PARTICLE_TYPE = 5  # the DeepMind id for water


@dataclass(frozen=True)
class Water2DConfig(GeneratorConfig):
    """Every parameter of the Water2D generator (the one source of defaults).

    Units are SI-like: metres, seconds, kg per square metre (2D density). The MPM grid covers the
    unit square ``[0, 1]^2``; the walls of the box sit inside it at ``bounds``.
    """

    # --- dataset size and reproducibility
    seed: int = 0                      # root of every random stream: rng([seed, split_id, index])
    num_train: int = 32                # trajectories in train.h5
    num_valid: int = 4                 # trajectories in valid.h5
    num_test: int = 4                  # trajectories in test.h5
    num_steps: int = 400               # steps per trajectory (metadata sequence_length): 401 frames

    # --- time
    frame_dt: float = 0.0025           # seconds between saved frames (metadata dt), as in WaterDrop
    substeps: int = 20                 # MPM steps per frame; dt_mpm = frame_dt / substeps (CFL-limited)

    # --- space
    grid_resolution: int = 50          # MPM cells across the unit square; dx = 1 / grid_resolution
    particles_per_cell: int = 2        # particles per cell along each axis at rest; spacing = dx / this
    bounds: tuple[tuple[float, float], tuple[float, float]] = ((0.1, 0.9), (0.1, 0.9))  # walls [lo, hi] per axis
    connectivity_radius_factor: float = 2.5  # default_connectivity_radius = factor * particle spacing

    # --- random initial scenes
    min_blocks: int = 1                # blocks of water per scene, drawn uniformly in [min, max]
    max_blocks: int = 3
    block_size_range: tuple[float, float] = (0.12, 0.3)  # block width and height (m), drawn independently
    max_particles: int = 1500          # a scene with more particles is redrawn (caps graph size)
    initial_velocity_range: tuple[float, float] = (-1.0, 1.0)  # per block, per axis, uniform (m/s)
    position_jitter: float = 0.2       # lattice jitter, uniform in +-jitter * spacing per axis
    block_gap: float = 0.02            # minimum clearance between blocks and from the walls (m)

    # --- physics
    gravity: tuple[float, float] = (0.0, -9.81)  # m/s^2
    density: float = 1.0               # rest density; only the ratio bulk_modulus / density matters
    bulk_modulus: float = 1000.0       # K: sound speed sqrt(K / density) ~ 32 m/s, ~10x the bulk flow
    eos_gamma: float = 7.0             # Tait exponent: p = K (J^-gamma - 1) / gamma
    viscosity: float = 0.005           # dynamic viscosity; lets the fluid settle within num_steps
    tension: bool = False              # allow negative pressure (J > 1); off: spray separates freely
    wall: str = "sticky"               # "sticky" (grid velocity 0 at walls) or "slip" (normal part only)

    # --- execution (never changes the data)
    num_workers: int = 2               # worker processes, each with a single-threaded Taichi runtime
    scenes_per_batch: int = 4          # scenes simulated together in one kernel launch
    fp64: bool = True                  # Taichi default_fp; positions are stored as float32 either way

    def __post_init__(self) -> None:
        # Overrides from YAML/JSON arrive as lists: store tuples so the config stays immutable.
        for name in ("bounds", "block_size_range", "initial_velocity_range", "gravity"):
            value = getattr(self, name)
            nested = tuple(tuple(v) if isinstance(v, (list, tuple)) else v for v in value)
            object.__setattr__(self, name, nested)
        _validate_config(self)

    @classmethod
    def small(cls, **overrides) -> "Water2DConfig":
        """A seconds-long smoke-test dataset (4 / 1 / 1 trajectories of 100 steps)."""
        return cls(**{"num_train": 4, "num_valid": 1, "num_test": 1, "num_steps": 100, **overrides})

    @property
    def dx(self) -> float:
        """MPM grid cell size (m)."""
        return 1.0 / self.grid_resolution

    @property
    def particle_spacing(self) -> float:
        """Rest distance between neighbouring particles (m)."""
        return self.dx / self.particles_per_cell

    @property
    def connectivity_radius(self) -> float:
        """The graph radius recommended to models trained on this data (m)."""
        return self.connectivity_radius_factor * self.particle_spacing


def _validate_config(c: Water2DConfig) -> None:
    bad = functools.partial(config_error, c)
    check_at_least(c, ("num_train", "num_valid", "num_test"), 0)
    if c.num_steps < 2:
        raise bad("num_steps", ">= 2 (an acceleration needs three frames)", c.num_steps)
    check_at_least(c, ("substeps", "grid_resolution", "particles_per_cell", "num_workers", "scenes_per_batch"), 1)
    if not 1 <= c.min_blocks <= c.max_blocks:
        raise bad("min_blocks/max_blocks", "1 <= min_blocks <= max_blocks", (c.min_blocks, c.max_blocks))
    if c.wall not in ("slip", "sticky"):
        raise bad("wall", "'slip' or 'sticky'", c.wall)
    bounds = np.asarray(c.bounds, dtype=float)
    margin = 3.0 / c.grid_resolution  # the quadratic stencil needs two cells beyond a wall
    if bounds.shape != (2, 2) or not (bounds[:, 0] < bounds[:, 1]).all():
        raise bad("bounds", "((xlo, xhi), (ylo, yhi)) with lo < hi", c.bounds)
    if (bounds[:, 0] < margin).any() or (bounds[:, 1] > 1.0 - margin).any():
        raise bad("bounds", f"walls inside [{margin:.3g}, {1 - margin:.3g}] (three grid cells)", c.bounds)
    lo_size, hi_size = c.block_size_range
    if not 0 < lo_size <= hi_size:
        raise bad("block_size_range", "0 < min <= max", c.block_size_range)
    if hi_size + 2 * c.block_gap > (bounds[:, 1] - bounds[:, 0]).min():
        raise bad("block_size_range", "blocks (plus gaps) that fit in the box", c.block_size_range)
    if c.frame_dt <= 0 or c.bulk_modulus <= 0 or c.density <= 0:
        raise bad("frame_dt/bulk_modulus/density", "> 0", (c.frame_dt, c.bulk_modulus, c.density))
    sound_speed = math.sqrt(c.bulk_modulus / c.density)
    cfl = sound_speed * (c.frame_dt / c.substeps) / c.dx
    if cfl > 0.5:
        raise bad("substeps", f"enough substeps for a CFL number <= 0.5 (sound speed {sound_speed:.3g} m/s)",
                  f"CFL {cfl:.3g} with {c.substeps}")


# ---------------------------------------------------------------------------------------------------
# Random initial conditions (numpy only)
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """The state of one trajectory's particles (initial, or at any frame of a restart).

    Attributes:
        position: ``(N, 2)`` float64 positions (m).
        velocity: ``(N, 2)`` float64 velocities (m/s).
        blocks: ``(B, 4)`` ``[x0, y0, width, height]`` of each initial block, for the record.
        affine: ``(N, 2, 2)`` the APIC velocity gradients ``C``, or None (zero: a scene at rest inside).
        volume: ``(N,)`` the volume ratios ``J``, or None (one: uncompressed).
    """

    position: np.ndarray
    velocity: np.ndarray
    blocks: np.ndarray
    affine: np.ndarray | None = None
    volume: np.ndarray | None = None


def sample_scene(config: Water2DConfig, split_id: int, index: int) -> Scene:
    """The initial state of trajectory ``index`` of split ``split_id`` (0 train, 1 valid, 2 test).

    Depends only on ``(config, split_id, index)``: the random stream is
    ``np.random.default_rng([config.seed, split_id, index])``.
    """
    rng = np.random.default_rng([config.seed, split_id, index])
    for _ in range(1000):
        blocks = _place_blocks(config, rng)
        if blocks is None:
            continue
        position, velocity = _fill_blocks(config, blocks, rng)
        if len(position) <= config.max_particles:
            return Scene(position=position, velocity=velocity, blocks=blocks)
    raise GnsInputError("could not draw a scene within max_particles after 1000 tries; raise it or "
                        "shrink block_size_range", key="max_particles", found=config.max_particles)


def _place_blocks(config: Water2DConfig, rng: np.random.Generator) -> np.ndarray | None:
    """Non-overlapping blocks ``(B, 4)`` of ``[x0, y0, w, h]``, or None when they do not fit."""
    bounds = np.asarray(config.bounds, dtype=float)
    gap = config.block_gap
    num_blocks = int(rng.integers(config.min_blocks, config.max_blocks + 1))
    blocks: list[np.ndarray] = []
    for _ in range(num_blocks):
        size = rng.uniform(*config.block_size_range, size=2)
        for _attempt in range(100):
            corner = rng.uniform(bounds[:, 0] + gap, bounds[:, 1] - gap - size)
            candidate = np.concatenate([corner, size])
            if all(not _overlap(candidate, other, gap) for other in blocks):
                blocks.append(candidate)
                break
        else:
            return None
    return np.stack(blocks)


def _overlap(a: np.ndarray, b: np.ndarray, gap: float) -> bool:
    """Whether two ``[x0, y0, w, h]`` boxes come closer than ``gap`` on both axes."""
    return bool(all(a[d] < b[d] + b[d + 2] + gap and b[d] < a[d] + a[d + 2] + gap for d in range(2)))


def _fill_blocks(config: Water2DConfig, blocks: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Jittered lattice particles and one random velocity per block."""
    spacing = config.particle_spacing
    positions, velocities = [], []
    for x0, y0, width, height in blocks:
        nx, ny = max(1, round(width / spacing)), max(1, round(height / spacing))
        i, j = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
        lattice = np.stack([x0 + (i.ravel() + 0.5) * spacing, y0 + (j.ravel() + 0.5) * spacing], axis=1)
        jitter = rng.uniform(-config.position_jitter, config.position_jitter, size=lattice.shape) * spacing
        positions.append(lattice + jitter)
        block_velocity = rng.uniform(*config.initial_velocity_range, size=2)
        velocities.append(np.broadcast_to(block_velocity, lattice.shape))
    return np.concatenate(positions), np.concatenate(velocities).copy()


# ---------------------------------------------------------------------------------------------------
# The MPM solver (Taichi)
# ---------------------------------------------------------------------------------------------------


class _Solver:
    """Batched MLS-MPM for up to ``max_scenes`` scenes and ``max_particles`` particles in total.

    Owns the Taichi runtime of this process and its fields: ``ti.init`` runs with one CPU thread
    (deterministic atomics) and without fast-math (no compiler reassociation of float sums, so a
    scene's result cannot depend on the field sizes the kernel was compiled for).
    """

    def __init__(self, config: Water2DConfig, max_scenes: int, max_particles: int) -> None:
        ti = init_taichi("Water2D", fp64=config.fp64)
        self.runtime = taichi_runtime()
        fp = ti.f64 if config.fp64 else ti.f32
        self.max_scenes, self.max_particles = max_scenes, max_particles
        self.np_dtype = np.float64 if config.fp64 else np.float32
        n = config.grid_resolution
        self.x = ti.Vector.field(2, fp, shape=max_particles)     # position
        self.v = ti.Vector.field(2, fp, shape=max_particles)     # velocity
        self.C = ti.Matrix.field(2, 2, fp, shape=max_particles)  # APIC affine velocity (~ grad v)
        self.J = ti.field(fp, shape=max_particles)               # volume ratio det(F)
        self.scene = ti.field(ti.i32, shape=max_particles)       # which grid a particle talks to
        self.grid_momentum = ti.Vector.field(2, fp, shape=(max_scenes, n, n))  # then velocity
        self.grid_mass = ti.field(fp, shape=(max_scenes, n, n))
        self._advance = _build_advance_kernel(ti, config, self)

    def simulate(self, scenes: Sequence[Scene], num_steps: int) -> list[np.ndarray]:
        """Advance every scene ``num_steps`` frames, all together.

        Returns:
            one ``(num_steps + 1, N_i, 2)`` float64 array of positions per scene, initial frame first.
        """
        counts = [len(s.position) for s in scenes]
        total = sum(counts)
        if len(scenes) > self.max_scenes or total > self.max_particles:
            raise ValueError(f"batch of {len(scenes)} scenes / {total} particles exceeds the solver "
                             f"capacity {self.max_scenes} / {self.max_particles}")
        self._load(scenes, total)
        frames = np.empty((num_steps + 1, total, 2), dtype=np.float64)  # (T, sum N_i, 2)
        frames[0] = self.x.to_numpy()[:total]
        for t in range(1, num_steps + 1):
            self._advance(total, len(scenes))
            frames[t] = self.x.to_numpy()[:total]
        offsets = np.cumsum([0] + counts)
        return [frames[:, offsets[i]:offsets[i + 1]].copy() for i in range(len(scenes))]

    def states(self, scenes: Sequence[Scene]) -> list[Scene]:
        """The full state (position, velocity, ``C``, ``J``) of each scene after :meth:`simulate`."""
        offsets = np.cumsum([0] + [len(s.position) for s in scenes])
        x, v, c, j = (f.to_numpy().astype(np.float64) for f in (self.x, self.v, self.C, self.J))
        return [Scene(position=x[a:b].copy(), velocity=v[a:b].copy(), blocks=s.blocks, affine=c[a:b].copy(),
                      volume=j[a:b].copy()) for s, a, b in zip(scenes, offsets[:-1], offsets[1:])]

    def _load(self, scenes: Sequence[Scene], total: int) -> None:
        pad = self.max_particles - total  # unused slots: parked mid-box, never simulated
        position = np.concatenate([s.position for s in scenes] + [np.full((pad, 2), 0.5)])
        velocity = np.concatenate([s.velocity for s in scenes] + [np.zeros((pad, 2))])
        scene = np.concatenate([np.full(len(s.position), i) for i, s in enumerate(scenes)]
                               + [np.zeros(pad)]).astype(np.int32)
        affine = np.concatenate([np.zeros((len(s.position), 2, 2)) if s.affine is None else s.affine for s in scenes]
                                + [np.zeros((pad, 2, 2))])
        volume = np.concatenate([np.ones(len(s.position)) if s.volume is None else s.volume for s in scenes]
                                + [np.ones(pad)])
        self.x.from_numpy(position.astype(self.np_dtype))
        self.v.from_numpy(velocity.astype(self.np_dtype))
        self.C.from_numpy(affine.astype(self.np_dtype))
        self.J.from_numpy(volume.astype(self.np_dtype))
        self.scene.from_numpy(scene)


def _build_advance_kernel(ti, config: Water2DConfig, fields: _Solver):
    """A kernel that advances every particle by one frame (``config.substeps`` MPM steps).

    All constants are Python floats captured at compile time. The substep loop is serialized and
    the runtime has one thread, so a launch is deterministic; one launch per frame keeps Taichi's
    launch overhead (tens of microseconds) out of the inner loop.
    """
    x, v, C, J, scene = fields.x, fields.v, fields.C, fields.J, fields.scene
    grid_momentum, grid_mass = fields.grid_momentum, fields.grid_mass
    n = config.grid_resolution
    dx, inv_dx = config.dx, float(config.grid_resolution)
    dt = config.frame_dt / config.substeps
    substeps = config.substeps
    particle_volume = config.particle_spacing ** 2
    particle_mass = config.density * particle_volume
    stress_scale = -dt * particle_volume * 4.0 * inv_dx * inv_dx  # MLS-MPM: -dt V (4 / dx^2) tau
    bulk_modulus, gamma, viscosity = config.bulk_modulus, config.eos_gamma, config.viscosity
    gx, gy = config.gravity
    (xlo, xhi), (ylo, yhi) = config.bounds
    sticky = config.wall == "sticky"
    tension = config.tension
    # Guard for the stencil only (never reached in a healthy run): keeps indices inside the grid.
    safe_lo, safe_hi = 1.0 * dx, 1.0 - 2.0 * dx

    def advance(num_particles, num_scenes):
        ti.loop_config(serialize=True)
        for _ in range(substeps):
            for b, i, j in ti.ndrange(num_scenes, n, n):
                grid_momentum[b, i, j] = ti.Vector.zero(float, 2)
                grid_mass[b, i, j] = 0.0

            # P2G: mass, momentum and the stress + APIC affine term
            for p in range(num_particles):
                base = ti.cast(x[p] * inv_dx - 0.5, ti.i32)
                fx = x[p] * inv_dx - base  # in [0.5, 1.5): offset from the first stencil node
                w = [0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1.0) ** 2, 0.5 * (fx - 0.5) ** 2]  # B-spline
                pressure = bulk_modulus * (J[p] ** (-gamma) - 1.0) / gamma
                if ti.static(not tension):
                    pressure = ti.max(pressure, 0.0)
                # Kirchhoff stress tau = J sigma, sigma = -p I + mu (C + C^T)
                tau = J[p] * (-pressure * ti.Matrix.identity(float, 2) + viscosity * (C[p] + C[p].transpose()))
                affine = stress_scale * tau + particle_mass * C[p]
                b = scene[p]
                for i, j in ti.static(ti.ndrange(3, 3)):
                    offset = ti.Vector([i, j])
                    dpos = (offset - fx) * dx
                    weight = w[i][0] * w[j][1]
                    node = base + offset
                    grid_momentum[b, node[0], node[1]] += weight * (particle_mass * v[p] + affine @ dpos)
                    grid_mass[b, node[0], node[1]] += weight * particle_mass

            # Grid: velocity, gravity, walls at every node on or beyond a wall
            for b, i, j in ti.ndrange(num_scenes, n, n):
                if grid_mass[b, i, j] > 0:
                    vel = grid_momentum[b, i, j] / grid_mass[b, i, j]
                    vel += dt * ti.Vector([gx, gy])
                    px, py = i * dx, j * dx
                    if ti.static(sticky):
                        if px <= xlo or px >= xhi or py <= ylo or py >= yhi:
                            vel = ti.Vector.zero(float, 2)
                    else:
                        if (px <= xlo and vel[0] < 0) or (px >= xhi and vel[0] > 0):
                            vel[0] = 0.0
                        if (py <= ylo and vel[1] < 0) or (py >= yhi and vel[1] > 0):
                            vel[1] = 0.0
                    grid_momentum[b, i, j] = vel  # from here on the momentum field holds velocities

            # G2P: velocity, APIC matrix, volume ratio, advection
            for p in range(num_particles):
                base = ti.cast(x[p] * inv_dx - 0.5, ti.i32)
                fx = x[p] * inv_dx - base
                w = [0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1.0) ** 2, 0.5 * (fx - 0.5) ** 2]
                new_v = ti.Vector.zero(float, 2)
                new_C = ti.Matrix.zero(float, 2, 2)
                b = scene[p]
                for i, j in ti.static(ti.ndrange(3, 3)):
                    offset = ti.Vector([i, j])
                    dpos = (offset - fx) * dx
                    weight = w[i][0] * w[j][1]
                    node_v = grid_momentum[b, base[0] + i, base[1] + j]
                    new_v += weight * node_v
                    new_C += 4.0 * inv_dx * inv_dx * weight * node_v.outer_product(dpos)
                v[p] = new_v
                C[p] = new_C
                J[p] *= 1.0 + dt * new_C.trace()
                x[p] = ti.math.clamp(x[p] + dt * new_v, safe_lo, safe_hi)

    # Real (not string) annotations: this module uses ``from __future__ import annotations``.
    advance.__annotations__ = {"num_particles": ti.i32, "num_scenes": ti.i32}
    return ti.kernel(advance)


# The config fields compiled into the kernel; the others never force a (slow) re-initialization.
_KERNEL_FIELDS = ("frame_dt", "substeps", "grid_resolution", "particles_per_cell", "bounds", "gravity",
                  "density", "bulk_modulus", "eos_gamma", "viscosity", "tension", "wall", "fp64")
_SOLVER: _Solver | None = None  # this process's solver (one Taichi runtime, one set of fields)
_SOLVER_KEY: tuple | None = None


def _get_solver(config: Water2DConfig, max_scenes: int, max_particles: int) -> _Solver:
    """Reuse this process's solver when it fits, else re-initialize Taichi and build a new one."""
    global _SOLVER, _SOLVER_KEY
    key = tuple(getattr(config, name) for name in _KERNEL_FIELDS)
    if (_SOLVER is None or _SOLVER_KEY != key or _SOLVER.max_scenes < max_scenes
            or _SOLVER.max_particles < max_particles or _SOLVER.runtime != taichi_runtime()):
        _SOLVER, _SOLVER_KEY = _Solver(config, max_scenes, max_particles), key
    return _SOLVER


def simulate_scenes(config: Water2DConfig, scenes: Sequence[Scene], num_steps: int | None = None,
                    final_states: bool = False) -> list[np.ndarray] | tuple[list[np.ndarray], list[Scene]]:
    """Simulate scenes together in this process (one kernel launch per frame for all of them).

    Args:
        config: the solver's settings.
        scenes: initial states (the first frame of a trajectory, or any state to restart from).
        num_steps: frames to advance (default ``config.num_steps``).
        final_states: also return each scene's full state after the last frame (to restart from).

    Returns:
        one ``(T, N_i, 2)`` float64 position array per scene, unclipped (and the final states).
    """
    num_steps = config.num_steps if num_steps is None else num_steps
    capacity = max(config.scenes_per_batch, len(scenes))
    solver = _get_solver(config, capacity, max(capacity * config.max_particles,
                                               sum(len(s.position) for s in scenes)))
    frames = solver.simulate(scenes, num_steps)
    return (frames, solver.states(scenes)) if final_states else frames


def dataset_config(dataset_dir: str | os.PathLike) -> Water2DConfig:
    """The generator config stored in the metadata of a dataset this solver made.

    Raises:
        GnsInputError: the dataset was not made by this solver (its ``generator/solver`` says so).
    """
    from gns.data import load_metadata

    generator = load_metadata(dataset_dir).extra.get("generator") or {}
    if not str(generator.get("solver", "")).startswith("gns.solvers.water2d"):
        raise GnsInputError("no built-in solver can re-simulate this dataset",
                            file=Path(dataset_dir) / "metadata.json", key="generator/solver",
                            expected="gns.solvers.water2d", found=generator.get("solver"))
    fields = {f.name for f in dataclasses.fields(Water2DConfig)}
    return Water2DConfig(**{k: v for k, v in generator["config"].items() if k in fields})


def state_at(config: Water2DConfig, split_id: int, index: int, frame: int) -> Scene:
    """The full state of trajectory ``index`` of split ``split_id`` at ``frame``, re-simulated from its seed.

    Continuing from it gives exactly the frames that follow in the dataset (before their float32
    rounding and clipping): the state is complete (positions, velocities, ``C``, ``J``) and the
    solver deterministic.
    """
    scene = sample_scene(config, split_id, index)
    if frame == 0:
        return scene
    _, (state,) = simulate_scenes(config, [scene], frame, final_states=True)
    return state


def simulate_trajectory(config: Water2DConfig, split_id: int, index: int) -> np.ndarray:
    """Positions ``(T, N, 2)`` float64 (unclipped) of one trajectory, simulated alone."""
    return simulate_scenes(config, [sample_scene(config, split_id, index)])[0]


# ---------------------------------------------------------------------------------------------------
# Counterfactuals: the solver restarted from an intervened state
# ---------------------------------------------------------------------------------------------------


class Water2DReplay(Replayer):
    """Re-simulates counterfactual scenarios of one water2d trajectory (a :class:`gns.solvers.common.Replayer`).

    The trajectory's full MPM state at the start frame is re-simulated from its seed
    (:func:`state_at`); each scenario's interventions are replayed on a copy of it: ``move`` shifts
    particles, ``remove`` deletes them, ``add`` copies them (with their velocity, ``C`` and ``J``)
    or adds water at rest inside (``C = 0``, ``J = 1``), ``kick`` adds to their velocity,
    ``set_velocity`` sets it (and zeroes ``C``: a uniform velocity has no gradient). The other
    operations have no counterpart in this solver. All scenarios then advance together, one MPM
    scene each.

    Args:
        config: the generator's config (from the dataset's metadata).
        split_id, index: the trajectory.
        start: the frame of the intervention.
        check: ``(N, 2)`` the dataset's positions at ``start``; the re-simulated state must match them.
    """

    def __init__(self, config: Water2DConfig, split_id: int, index: int, start: int,
                 check: np.ndarray | None = None) -> None:
        self.config, self.start = config, start
        self._state = state_at(config, split_id, index, start)
        if check is not None:
            clipped, _ = clip_to_bounds(self._state.position[None], config.bounds)
            error = float(np.abs(clipped[0] - check).max()) if check.shape == clipped[0].shape else float("inf")
            if not error < 1e-4:
                raise GnsInputError("the water2d solver does not reproduce this trajectory at the start frame "
                                    "(another solver version or config made the dataset)", key="start",
                                    expected="positions within 1e-4 m of the dataset's", found=f"{error:.3g} m")

    def start_state(self, steps: int) -> Scene:
        return dataclasses.replace(self._state)

    def apply(self, state: Scene, record) -> Scene:
        idx, params = record.entities, record.params
        x, v = state.position.copy(), state.velocity.copy()
        c = np.zeros((len(x), 2, 2)) if state.affine is None else state.affine.copy()
        j = np.ones(len(x)) if state.volume is None else state.volume.copy()
        if record.op == "move":
            x[idx] += params["offset"]
        elif record.op == "remove":
            keep = np.ones(len(x), dtype=bool)
            keep[idx] = False
            x, v, c, j = x[keep], v[keep], c[keep], j[keep]
        elif record.op == "add" and "offset" in params:
            x = np.concatenate([x, x[idx] + params["offset"]])
            v, c, j = (np.concatenate([a, a[idx]]) for a in (v, c, j))
        elif record.op == "add":
            if params["type"] != WATER_PARTICLE_TYPE:
                raise NotResimulable(f"the water2d solver simulates water (type {WATER_PARTICLE_TYPE}) only")
            m = len(params["position"])
            x = np.concatenate([x, np.asarray(params["position"], dtype=np.float64)])
            v = np.concatenate([v, np.broadcast_to(params["velocity"], (m, 2))])
            c = np.concatenate([c, np.zeros((m, 2, 2))])
            j = np.concatenate([j, np.ones(m)])
        elif record.op == "kick":
            v[idx] += params["delta"]
        elif record.op == "set_velocity":
            v[idx] = params["velocity"]
            c[idx] = 0.0
        else:
            raise NotResimulable(f"the water2d solver has no counterpart of '{record.op}'")
        return Scene(position=x, velocity=v, blocks=state.blocks, affine=c, volume=j)

    def simulate(self, states, steps: int):
        import torch

        names = list(states)
        frames = simulate_scenes(self.config, [states[n] for n in names], steps)
        return {n: {"position": torch.from_numpy(f[1:].transpose(1, 0, 2).astype(np.float32))}
                for n, f in zip(names, frames)}


# ---------------------------------------------------------------------------------------------------
# Validation and physical checks
# ---------------------------------------------------------------------------------------------------


def clip_to_bounds(position: np.ndarray, bounds) -> tuple[np.ndarray, dict]:
    """Clip positions to the walls and say by how much MPM let particles out.

    Args:
        position: ``(T, N, 2)`` positions.
        bounds: ``(2, 2)`` walls.

    Returns:
        the clipped positions and ``{"num_clipped", "num_values", "max_excursion"}`` where
        ``num_clipped`` counts (frame, particle, axis) values outside the walls and
        ``max_excursion`` is the largest distance outside (m).

    Raises:
        FloatingPointError: if the positions hold NaN or infinity (the simulation blew up).
    """
    if not np.isfinite(position).all():
        raise FloatingPointError("Water2D simulation produced non-finite positions")
    lo, hi = np.asarray(bounds, dtype=position.dtype).T
    outside = np.maximum(lo - position, 0.0) + np.maximum(position - hi, 0.0)  # (T, N, 2)
    report = {"num_clipped": int((outside > 0).sum()), "num_values": int(outside.size),
              "max_excursion": float(outside.max(initial=0.0))}
    return np.clip(position, lo, hi), report


def kinetic_energy_per_frame(position: np.ndarray, dt: float) -> np.ndarray:
    """Mean kinetic energy per unit mass ``(T-1,)`` from finite differences of ``(T, N, 2)`` positions."""
    velocity = np.diff(position, axis=0) / dt
    return 0.5 * (velocity ** 2).sum(-1).mean(-1)


def free_fall_check(config: Water2DConfig = Water2DConfig()) -> dict:
    """Drop a resting block from near the top of the box; compare its centre of mass with g t^2 / 2.

    The comparison stops at 90% of the time the block's lowest particle needs to reach the floor,
    so nothing but gravity acts on the block (the fluid's pressure forces sum to zero).

    Returns:
        ``{"time", "num_steps", "simulated_drop", "analytic_drop", "relative_error"}`` at the last
        frame compared (drops in metres, time in seconds).
    """
    if config.gravity[1] >= 0:
        raise GnsInputError("the free-fall check needs gravity pointing down", key="gravity",
                            expected="gravity[1] < 0", found=config.gravity)
    bounds = np.asarray(config.bounds, dtype=float)
    size = min(0.15, config.block_size_range[1])
    top = bounds[1, 1] - 0.05  # clear of the ceiling's grid nodes
    blocks = np.array([[bounds[0].mean() - size / 2, top - size, size, size]])
    position, _ = _fill_blocks(config, blocks, np.random.default_rng([config.seed, 99]))
    scene = Scene(position=position, velocity=np.zeros_like(position), blocks=blocks)
    fall_height = position[:, 1].min() - bounds[1, 0]
    g = float(np.linalg.norm(config.gravity))
    contact_steps = math.sqrt(2.0 * fall_height / g) / config.frame_dt
    num_steps = max(2, min(config.num_steps, int(0.9 * contact_steps)))
    trajectory = simulate_scenes(dataclasses.replace(config, num_steps=num_steps), [scene])[0]
    t = num_steps * config.frame_dt
    simulated = trajectory[-1].mean(axis=0) - trajectory[0].mean(axis=0)  # (2,) centre of mass
    analytic = 0.5 * np.asarray(config.gravity) * t ** 2
    return {"time": t, "num_steps": num_steps, "simulated_drop": float(-simulated[1]),
            "analytic_drop": float(-analytic[1]),
            "relative_error": float(np.linalg.norm(simulated - analytic) / np.linalg.norm(analytic))}


# ---------------------------------------------------------------------------------------------------
# Dataset generation
# ---------------------------------------------------------------------------------------------------


def _simulate_task(task: tuple[Water2DConfig, int, tuple[int, ...]]) -> list[tuple[np.ndarray, dict]]:
    """Worker job: simulate trajectories ``indices`` of split ``split_id`` together.

    Returns:
        per trajectory, the clipped float32 positions ``(T, N, 2)`` and a validation record.
    """
    config, split_id, indices = task
    scenes = [sample_scene(config, split_id, i) for i in indices]
    results = []
    for index, trajectory in zip(indices, simulate_scenes(config, scenes)):
        results.append(_validate_trajectory(config, split_id, index, trajectory))
    return results


def _validate_trajectory(config: Water2DConfig, split_id: int, index: int,
                         trajectory: np.ndarray) -> tuple[np.ndarray, dict]:
    """NaN and bounds checks, clipping, and the physical summary of one ``(T, N, 2)`` trajectory."""
    clipped, report = clip_to_bounds(trajectory, config.bounds)
    if report["max_excursion"] > config.dx:
        raise RuntimeError(f"Water2D {SPLITS[split_id]} trajectory {index}: particles left the box by "
                           f"{report['max_excursion']:.3g} m (more than a grid cell); the simulation is "
                           "unstable, try more substeps")
    energy = kinetic_energy_per_frame(trajectory, config.frame_dt)  # (T-1,)
    step = np.linalg.norm(np.diff(trajectory, axis=0), axis=-1)  # (T-1, N) per-frame displacements
    report.update(
        num_particles=int(trajectory.shape[1]),
        final_to_peak_kinetic_energy=float(energy[-10:].mean() / max(energy.max(), 1e-30)),
        max_displacement=float(step.max()),
        p99_displacement=float(np.percentile(step, 99)),
        final_height_above_floor=float(trajectory[-1, :, 1].mean() - config.bounds[1][0]),
    )
    return clipped.astype(np.float32), report


def generate_water2d(out_dir: str | os.PathLike, config: Water2DConfig = Water2DConfig(),
                     progress: bool = True) -> Path:
    """Simulate the Water2D dataset and write it in the canonical layout.

    Writes ``metadata.json`` and ``train.h5``, ``valid.h5``, ``test.h5`` (a split with zero
    trajectories is not written) into ``out_dir``. Every particle has type 5 (water); there are
    no kinematic particles, the walls being at ``metadata.bounds``. Statistics come from the train
    split; ``metadata.gravity`` is the per-step position increment ``g * dt^2``; and
    ``metadata.extra["generator"]`` records the solver, the Taichi version, the full config, the
    seed, the measured time and the validation summary (clipping, energy decay, free fall).

    Args:
        out_dir: dataset directory (created if missing; files of the same names are replaced).
        config: every generation parameter; the same config gives bit-identical files.
        progress: show a tqdm bar over trajectories.

    Returns:
        ``out_dir`` as a Path.
    """
    from gns.data import save_metadata

    if config.num_train < 1:
        raise GnsInputError("the train split cannot be empty (statistics come from it)",
                            key="num_train", expected=">= 1", found=config.num_train)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    reports = _write_splits(out_dir, config, progress)
    simulation_seconds = time.perf_counter() - started
    validation = _summarize(config, reports, free_fall_check(config))
    metadata = _metadata_with_statistics(out_dir, config)
    generator = {
        "solver": SOLVER_NAME, "solver_version": SOLVER_VERSION, "taichi_version": package_version("taichi"),
        "seed": config.seed, "config": config.to_dict(),
        "generation_seconds": round(time.perf_counter() - started, 2),
        "simulation_seconds": round(simulation_seconds, 2),
        "validation": validation,
    }
    save_metadata(dataclasses.replace(metadata, extra={"generator": generator}), out_dir)
    return out_dir


def _write_splits(out_dir: Path, config: Water2DConfig, progress: bool) -> dict[str, list[dict]]:
    """Simulate and write ``<split>.h5`` for every split; return the per-trajectory reports."""
    from gns.data import Trajectory, write_split

    reports: dict[str, list[dict]] = {split: [] for split in SPLITS}

    def water_trajectory(split: str, result: tuple[np.ndarray, dict]) -> Trajectory:
        positions, report = result
        reports[split].append(report)
        types = np.full(positions.shape[1], WATER_PARTICLE_TYPE, dtype=np.int64)  # (N,)
        return Trajectory(position=positions, particle_type=types)

    # spawn: every worker starts clean and runs its own single-threaded Taichi runtime.
    results = run_batches(_simulate_task, batch_tasks(config, config.scenes_per_batch),
                          num_workers=config.num_workers, desc="water2d trajectories", progress=progress)
    write_splits(out_dir, config.split_sizes, results, water_trajectory, write_split)
    return reports


def _metadata_with_statistics(out_dir: Path, config: Water2DConfig):
    """The dataset's ``DatasetMetadata``, statistics streamed from the written train split."""
    from gns.data import DatasetMetadata, compute_statistics, open_split

    gravity = np.asarray(config.gravity, dtype=float) * config.frame_dt ** 2  # per-step increment
    metadata = DatasetMetadata(
        dim=2, dt=config.frame_dt, bounds=[list(b) for b in config.bounds],
        sequence_length=config.num_steps, default_connectivity_radius=config.connectivity_radius,
        periodic_boundary_conditions=[False, False], kinematic_particle_types=[],
        gravity=gravity.tolist(),
    )
    with open_split(out_dir, "train", metadata=metadata) as train:
        statistics = compute_statistics(train, metadata.bounds, metadata.periodic_boundary_conditions)
    return metadata.with_statistics(statistics)


def _summarize(config: Water2DConfig, reports: dict[str, list[dict]], free_fall: dict) -> dict:
    """Dataset-level validation record for ``metadata.extra["generator"]["validation"]``."""
    every = [r for split in SPLITS for r in reports[split]]
    counts = np.array([r["num_particles"] for r in every])
    clipped = sum(r["num_clipped"] for r in every)
    values = sum(r["num_values"] for r in every)
    energy = np.array([r["final_to_peak_kinetic_energy"] for r in every])
    return {
        "trajectories": {split: len(reports[split]) for split in SPLITS},
        "particles_per_trajectory": {"min": int(counts.min()), "mean": float(counts.mean()),
                                     "max": int(counts.max())},
        "finite": True,  # clip_to_bounds raised otherwise
        "particles_conserved": True,  # (T, N, 2) arrays: particles are never created or destroyed
        "clipped_values": clipped, "clipped_fraction": clipped / values,
        "max_excursion_outside_walls": max(r["max_excursion"] for r in every),
        "max_displacement_per_step": max(r["max_displacement"] for r in every),
        "max_displacement_over_radius": max(r["max_displacement"] for r in every) / config.connectivity_radius,
        "p99_displacement_per_step": float(np.mean([r["p99_displacement"] for r in every])),
        "final_to_peak_kinetic_energy": {"mean": float(energy.mean()), "max": float(energy.max())},
        "final_mean_height_above_floor": float(np.mean([r["final_height_above_floor"] for r in every])),
        "free_fall": free_fall,
    }


def describe_dataset(dataset_dir: str | os.PathLike, max_frames: int = 20) -> dict:
    """Numbers for the dataset card: splits, frames, particle counts and neighbour counts.

    Neighbours are counted with ``scipy.spatial.cKDTree`` (scipy needed) within the metadata's
    ``default_connectivity_radius``, self excluded, on ``max_frames`` evenly spaced frames of every
    trajectory, and averaged over those frames. The mean includes surface and wall particles; the
    90th percentile is a fair picture of a particle in the bulk of the fluid.
    """
    from scipy.spatial import cKDTree

    from gns.data import load_metadata, open_split
    from gns.data.hdf5 import available_splits

    metadata = load_metadata(dataset_dir)
    radius = metadata.default_connectivity_radius
    out: dict = {"radius": radius, "bounds": metadata.bounds, "dt": metadata.dt, "splits": {}}
    counts, per_frame = [], []  # per_frame rows: (mean, median, p90) neighbour counts
    for split in available_splits(dataset_dir):
        with open_split(dataset_dir, split, metadata=metadata) as trajectories:
            frames = []
            for i in range(len(trajectories)):
                position = trajectories.read_window(i, 0, trajectories.sequence_length(i))  # (T, N, 2)
                frames.append(position.shape[0])
                counts.append(position.shape[1])
                for t in np.linspace(0, position.shape[0] - 1, max_frames).astype(int):
                    hits = cKDTree(position[t]).query_ball_point(position[t], radius)
                    n = np.array([len(h) - 1 for h in hits])
                    per_frame.append((n.mean(), np.median(n), np.percentile(n, 90)))
        out["splits"][split] = {"trajectories": len(frames), "frames": sorted(set(frames))}
    out["particles"] = {"min": int(min(counts)), "mean": float(np.mean(counts)), "max": int(max(counts))}
    mean, median, p90 = np.mean(per_frame, axis=0)
    out["neighbours"] = {"mean": float(mean), "median": float(median), "p90": float(p90)}
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m gns.solvers.water2d --out DIR [--seed S] [--small] [--workers W]``."""
    args = generator_parser("Generate the Water2D dataset (MLS-MPM, Taichi).", Water2DConfig).parse_args(argv)
    out = generate_water2d(args.out, generator_config(Water2DConfig, args))
    from gns.data import load_metadata

    generator = load_metadata(out).extra["generator"]
    print_generation(out, generator, generator["validation"])


if __name__ == "__main__":
    main()
