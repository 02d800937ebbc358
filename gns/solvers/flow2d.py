"""Flow2D: incompressible flow past a cylinder in a 2D channel, on an unstructured triangle mesh.

This is the reference solver behind the built-in mesh-flow dataset, in the setting of the
CylinderFlow data of MeshGraphNets (Pfaff et al. 2020): a channel ``[0, L] x [0, H]`` with a
parabolic inflow on the left, no-slip walls at the top and bottom, a cylinder of random radius and
position inside, and a free outflow on the right. Vortices shed behind the cylinder (a von Karman
street) for the Reynolds numbers drawn here.

Equations (density 1, kinematic viscosity ``nu``)::

    du/dt + (u . grad) u = -grad p + nu lap u,     div u = 0       in the fluid
    u = (4 U y (H - y) / H^2, 0)                                   on x = 0 (inflow)
    u = 0                                                          on y = 0, y = H and the cylinder
    nu du/dn - p n = 0                                             on x = L ("do nothing" outflow)

Discretisation (scikit-fem):

- mesh: Shewchuk's Triangle (the ``triangle`` package), quality flag (minimum angle), and a
  maximum-area field that refines towards the cylinder: the edge length grows linearly from
  ``cylinder_mesh_size`` on the cylinder to ``mesh_size`` far from it. The cylinder is a polygon
  with vertices on the circle;
- Taylor-Hood P2-P1 elements (velocity quadratic, pressure linear; inf-sup stable, so no
  stabilisation term), the Laplacian form of the viscous term (its natural boundary condition is
  the do-nothing outflow above, which a Poiseuille profile satisfies exactly);
- time: third-order backward differences (BDF3) for ``du/dt`` with the viscous, pressure and
  continuity terms implicit and the convection term extrapolated from the three previous steps
  (EXT3; together "SBDF3", as in spectral-element codes). Convection is written in Temam's
  skew-symmetric form ``(u . grad) u + (div u) u / 2``. The system matrix is then constant: it is
  LU-factorised once per trajectory (SuperLU, ``scipy.sparse.linalg.splu``) and each step is one
  evaluation of the convection vector (sparse quadrature operators built once) and one pair of
  triangular solves. The price is a CFL-type limit on the step: the solver step is
  ``frame_dt / substeps``, with ``substeps`` chosen per trajectory from the fastest flow of its
  Stokes start relative to the local cell size. (SBDF2 is available with ``time_order=2``; its
  explicit part relies on viscous damping: at Re 240 it flared up at 27 substeps per frame, where
  SBDF3 ran clean, and needed up to 40.)

Each trajectory starts from the Stokes flow for its boundary conditions, gets a brief rotation of
the cylinder (a "kick" that breaks the symmetry so that shedding starts early), and runs for
``spinup_time`` seconds before the first recorded frame. Outputs are sampled at the mesh vertices
(the vertex degrees of freedom of the P2 velocity and the P1 pressure).

Determinism. Everything random comes from ``np.random.default_rng([seed, split_id, index])``;
meshing, assembly and the sparse LU are deterministic, and each trajectory is computed alone, so
a trajectory's arrays do not depend on the number of trajectories or of worker processes.

scikit-fem and triangle are optional dependencies (``pip install "gns[solvers]"``), imported only
inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator, Sequence

import numpy as np

from gns.solvers.common import (SPLITS, GeneratorConfig, check_at_least, check_positive, config_error,
                                generator_config, generator_parser, package_version, print_generation,
                                run_jobs, write_splits)

SOLVER_NAME = "gns.solvers.flow2d (Taylor-Hood P2-P1, SBDF3, scikit-fem + Triangle)"
SOLVER_VERSION = "1"

# DeepMind meshgraphnets common.NodeType ids (the ones this dataset uses).
NORMAL, INFLOW, OUTFLOW, WALL_BOUNDARY = 0, 4, 5, 6
NODE_TYPES = {"NORMAL": NORMAL, "INFLOW": INFLOW, "OUTFLOW": OUTFLOW, "WALL_BOUNDARY": WALL_BOUNDARY}

# Schaefer & Turek (1996) "Benchmark computations of laminar flow around a cylinder", the DFG
# 2D-1 (steady, Re 20) and 2D-2 (periodic, Re 100) cases: reference values and their ranges.
DFG_2D1_REFERENCE = {"drag_coefficient": 5.5795, "lift_coefficient": 0.010619, "pressure_difference": 0.11752}
DFG_2D2_REFERENCE = {"strouhal": (0.2950, 0.3050), "max_drag_coefficient": (3.2200, 3.2400),
                     "max_lift_coefficient": (0.9900, 1.0100)}


@dataclass(frozen=True)
class Flow2DConfig(GeneratorConfig):
    """Every parameter of the Flow2D generator (the one source of defaults).

    Units: metres, seconds, density 1 (pressure is kinematic, m^2/s^2). Reynolds numbers use the
    cylinder diameter D and the mean inflow velocity ``2/3 * peak`` (the DFG convention).
    """

    # --- dataset size and reproducibility
    seed: int = 0                      # root of every random stream: rng([seed, split_id, index])
    num_train: int = 16                # trajectories in train.h5
    num_valid: int = 2                 # trajectories in valid.h5
    num_test: int = 2                  # trajectories in test.h5
    num_steps: int = 200               # recorded steps per trajectory (sequence_length): 201 frames

    # --- time
    frame_dt: float = 0.01             # seconds between recorded frames (metadata dt), as CylinderFlow
    spinup_time: float = 1.0           # simulated seconds before frame 0: the wake reaches the outflow
    kick_duration: float = 0.2         # the cylinder rotates during the first kick_duration seconds...
    kick_strength: float = 0.5         # ...with surface speed up to this times the mean inflow (0: off)
    cfl: float = 0.08                  # step <= cfl * min over cells (edge / Stokes speed); unstable ~0.1
    time_order: int = 3                # k of the BDFk / EXTk scheme (2 or 3)

    # --- geometry (randomised per trajectory)
    channel_length: float = 1.6        # L (m); the DFG benchmark channel is 2.2 long
    channel_height: float = 0.41       # H (m), as the DFG benchmark
    radius_range: tuple[float, float] = (0.04, 0.06)   # cylinder radius (m), uniform
    center_x_range: tuple[float, float] = (0.18, 0.3)  # cylinder centre x (m), uniform
    min_wall_gap: float = 0.1          # clearance between the cylinder and the top/bottom walls (m)

    # --- flow (randomised per trajectory)
    peak_velocity_range: tuple[float, float] = (1.0, 1.5)  # inflow centre-line velocity U (m/s), uniform
    viscosity: float = 6e-4            # kinematic viscosity nu (m^2/s): Re = (2U/3) D / nu in [89, 200]

    # --- mesh
    mesh_size: float = 0.035           # target edge length far from the cylinder (m)
    cylinder_mesh_size: float = 0.013  # edge length on the cylinder (m)
    mesh_grading: float = 0.15         # edge length growth per metre of distance from the cylinder
    min_angle: float = 30.0            # Triangle quality bound (degrees)

    # --- execution and checks (never change the trajectories)
    num_workers: int = 2               # worker processes, one BLAS thread each (0: in this process)
    max_retries: int = 2               # an unstable trajectory is rerun with 1.5x the substeps
    benchmarks: bool = True            # run the DFG 2D-1 / 2D-2 checks into the validation record

    def __post_init__(self) -> None:
        # Overrides from YAML/JSON arrive as lists: store tuples so the config stays immutable.
        for name in ("radius_range", "center_x_range", "peak_velocity_range"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        _validate_config(self)

    @classmethod
    def small(cls, **overrides: Any) -> "Flow2DConfig":
        """A seconds-long smoke-test dataset: 2/1/1 trajectories of 10 frames on ~170-node meshes."""
        small = {"num_train": 2, "num_valid": 1, "num_test": 1, "num_steps": 9, "spinup_time": 0.05,
                 "kick_duration": 0.02, "mesh_size": 0.1, "cylinder_mesh_size": 0.04, "mesh_grading": 0.5,
                 "num_workers": 1, "benchmarks": False}
        return cls(**{**small, **overrides})


def _validate_config(c: Flow2DConfig) -> None:
    bad = functools.partial(config_error, c)
    check_at_least(c, ("num_train", "num_valid", "num_test", "max_retries"), 0)
    check_at_least(c, ("num_steps",), 1)
    if c.time_order not in SBDF_COEFFICIENTS:
        raise bad("time_order", f"one of {sorted(SBDF_COEFFICIENTS)}", c.time_order)
    check_at_least(c, ("num_workers",), 0)
    check_positive(c, ("frame_dt", "cfl", "channel_length", "channel_height", "viscosity", "mesh_size",
                       "cylinder_mesh_size", "kick_duration"))
    if c.spinup_time < c.kick_duration or c.kick_strength < 0:
        raise bad("spinup_time/kick_duration", "spinup_time >= kick_duration and kick_strength >= 0",
                  (c.spinup_time, c.kick_duration, c.kick_strength))
    for key in ("radius_range", "center_x_range", "peak_velocity_range"):
        lo, hi = getattr(c, key)
        if not 0 < lo <= hi:
            raise bad(key, "0 < min <= max", getattr(c, key))
    r_max = c.radius_range[1]
    if 2 * (r_max + c.min_wall_gap) > c.channel_height:
        raise bad("radius_range/min_wall_gap", f"2 (radius + gap) <= channel_height {c.channel_height}",
                  (c.radius_range, c.min_wall_gap))
    x_lo, x_hi = c.center_x_range
    if x_lo - r_max < c.cylinder_mesh_size or x_hi + r_max > 0.5 * c.channel_length:
        raise bad("center_x_range", "cylinders clear of the inflow and in the first half of the channel",
                  c.center_x_range)
    if c.cylinder_mesh_size > c.mesh_size or c.cylinder_mesh_size > c.radius_range[0]:
        raise bad("cylinder_mesh_size", "<= mesh_size and <= the smallest radius", c.cylinder_mesh_size)
    if not 0 < c.min_angle <= 33:
        raise bad("min_angle", "in (0, 33] degrees (Triangle may not terminate above ~34)", c.min_angle)


# ---------------------------------------------------------------------------------------------------
# Random cases (numpy only)
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CylinderCase:
    """Geometry and inflow of one trajectory.

    Attributes:
        length: channel length L (m).
        height: channel height H (m).
        center: cylinder centre ``(x, y)`` (m).
        radius: cylinder radius (m); 0 for an empty channel (Poiseuille flow).
        peak_velocity: centre-line inflow velocity U (m/s).
        kick: signed peak surface speed of the start-up rotation of the cylinder (m/s), 0 for none.
    """

    length: float
    height: float
    center: tuple[float, float]
    radius: float
    peak_velocity: float
    kick: float = 0.0

    @property
    def diameter(self) -> float:
        return 2.0 * self.radius

    @property
    def mean_velocity(self) -> float:
        """Mean inflow velocity (2/3 of the parabola's peak)."""
        return 2.0 * self.peak_velocity / 3.0

    def reynolds(self, viscosity: float) -> float:
        """Reynolds number from the diameter and the mean inflow velocity."""
        return self.mean_velocity * self.diameter / viscosity

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def sample_case(config: Flow2DConfig, split_id: int, index: int) -> CylinderCase:
    """The case of trajectory ``index`` of split ``split_id`` (0 train, 1 valid, 2 test).

    Depends only on ``(config, split_id, index)``: the random stream is
    ``np.random.default_rng([config.seed, split_id, index])``.
    """
    rng = np.random.default_rng([config.seed, split_id, index])
    radius = float(rng.uniform(*config.radius_range))
    center_x = float(rng.uniform(*config.center_x_range))
    clearance = radius + config.min_wall_gap
    center_y = float(rng.uniform(clearance, config.channel_height - clearance))
    peak = float(rng.uniform(*config.peak_velocity_range))
    sign = 1.0 if rng.random() < 0.5 else -1.0
    kick = sign * config.kick_strength * 2.0 * peak / 3.0
    return CylinderCase(length=config.channel_length, height=config.channel_height,
                        center=(center_x, center_y), radius=radius, peak_velocity=peak, kick=kick)


def dfg_case(peak_velocity: float) -> CylinderCase:
    """The DFG benchmark geometry (Schaefer & Turek 1996): 2.2 x 0.41, cylinder r 0.05 at (0.2, 0.2)."""
    return CylinderCase(length=2.2, height=0.41, center=(0.2, 0.2), radius=0.05, peak_velocity=peak_velocity)


# ---------------------------------------------------------------------------------------------------
# Mesh (Triangle)
# ---------------------------------------------------------------------------------------------------


def _import_optional(name: str):
    """Import ``triangle`` or ``skfem`` (optional dependencies), naming the extra that has them."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(f'The Flow2D solver needs {name} (triangle and scikit-fem): '
                          'pip install "gns[solvers]"') from error


def mesh_channel(case: CylinderCase, mesh_size: float, cylinder_mesh_size: float,
                 grading: float = 0.15, min_angle: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate the channel minus the cylinder with Triangle.

    The target edge length is the size field ``h(d) = min(mesh_size, cylinder_mesh_size + grading
    * d)``, ``d`` the distance from the cylinder. The input is a planar straight-line graph: the
    rectangle with its sides split at spacing ``h`` (so the walls beside the cylinder are as fine
    as the flow there), and the cylinder as a polygon of about ``2 pi r / cylinder_mesh_size``
    vertices on the circle (a multiple of 4) with a hole point at its centre. A first quality mesh
    with a uniform area bound is refined (Triangle's ``r`` switch) with a per-triangle area bound
    from ``h`` at the triangle's centroid until no more vertices appear (at most 4 passes).
    Triangle never moves input vertices, so the corners and the cylinder vertices are exact.

    Args:
        case: geometry; ``case.radius == 0`` gives an empty channel.
        mesh_size: edge length far from the cylinder (m).
        cylinder_mesh_size: edge length on the cylinder (m).
        grading: growth of the edge length per metre of distance from the cylinder.
        min_angle: smallest angle Triangle may leave (degrees).

    Returns:
        ``points`` ``(N, 2)`` float64 and ``cells`` ``(C, 3)`` int64, counter-clockwise.
    """
    triangle = _import_optional("triangle")

    def size(points: np.ndarray) -> np.ndarray:  # (P, 2) -> (P,) target edge length
        if case.radius <= 0:
            return np.full(len(points), mesh_size)
        distance = np.hypot(*(points - np.asarray(case.center)).T) - case.radius
        return np.minimum(mesh_size, cylinder_mesh_size + grading * np.maximum(distance, 0.0))

    def area(h: np.ndarray | float) -> np.ndarray | float:  # equilateral triangle of edge h
        return math.sqrt(3.0) / 4.0 * np.square(h)

    vertices = _rectangle_outline(case.length, case.height, size)  # (B, 2), counter-clockwise
    segments = [[i, (i + 1) % len(vertices)] for i in range(len(vertices))]
    pslg: dict[str, Any] = {}
    if case.radius > 0:
        # a multiple of 4, so that the front and rear stagnation points are mesh vertices
        count = 4 * max(2, math.ceil(2 * math.pi * case.radius / cylinder_mesh_size / 4))
        angle = 2 * math.pi * np.arange(count) / count
        circle = np.stack([case.center[0] + case.radius * np.cos(angle),
                           case.center[1] + case.radius * np.sin(angle)], axis=1)  # (count, 2)
        first = len(vertices)
        vertices = np.concatenate([vertices, circle])
        segments += [[first + i, first + (i + 1) % count] for i in range(count)]
        pslg["holes"] = np.array([case.center])
    pslg.update(vertices=np.asarray(vertices, dtype=float), segments=np.asarray(segments))
    mesh = triangle.triangulate(pslg, f"pq{min_angle:g}a{area(mesh_size):.8g}Q")
    for _ in range(4 if case.radius > 0 else 0):
        before = len(mesh["vertices"])
        mesh["triangle_max_area"] = area(size(mesh["vertices"][mesh["triangles"]].mean(axis=1)))
        mesh = triangle.triangulate(mesh, f"rpq{min_angle:g}aQ")
        if len(mesh["vertices"]) == before:
            break
    points = np.asarray(mesh["vertices"], dtype=np.float64)
    cells = np.asarray(mesh["triangles"], dtype=np.int64)
    return points, _counter_clockwise(points, cells)


def _rectangle_outline(length: float, height: float, size) -> np.ndarray:
    """``(B, 2)`` vertices around ``[0, L] x [0, H]``, counter-clockwise, spaced by a size field.

    On each side, the number of edges up to arc length ``s`` follows ``n(s) = int_0^s du / h(u)``
    (``size`` maps ``(P, 2)`` points to ``h``); vertices sit where ``n`` crosses evenly spaced
    levels. Giving Triangle the sides already split keeps the boundary spacing smooth (left to
    itself it halves segments, so neighbouring boundary edges can differ by a factor of 2).
    """
    corners = np.array([[0.0, 0.0], [length, 0.0], [length, height], [0.0, height]])
    sides = []
    for start, end in zip(corners, np.roll(corners, -1, axis=0)):
        t = np.linspace(0.0, 1.0, 2001)
        density = 1.0 / size(start + t[:, None] * (end - start))  # edges per metre along the side
        edges = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(t))])
        edges *= np.linalg.norm(end - start)
        count = max(1, math.ceil(edges[-1] - 1e-9))
        levels = np.interp(np.arange(count) * edges[-1] / count, edges, t)  # excludes the end corner
        sides.append(start + levels[:, None] * (end - start))  # coordinates along a side stay exact
    return np.concatenate(sides)


def _counter_clockwise(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Reorder ``(C, 3)`` cells so that every triangle has positive signed area."""
    a, b, c = (points[cells[:, i]] for i in range(3))
    signed = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    cells = cells.copy()
    cells[signed < 0] = cells[signed < 0][:, [0, 2, 1]]
    return cells


def min_edge_length(points: np.ndarray, cells: np.ndarray) -> float:
    """Shortest edge of a ``(C, 3)`` triangle mesh over ``(N, 2)`` points."""
    edges = np.concatenate([cells[:, [0, 1]], cells[:, [1, 2]], cells[:, [2, 0]]])
    return float(np.linalg.norm(points[edges[:, 0]] - points[edges[:, 1]], axis=1).min())


# ---------------------------------------------------------------------------------------------------
# Finite elements (scikit-fem)
# ---------------------------------------------------------------------------------------------------


class FlowDiscretisation:
    """Taylor-Hood P2-P1 matrices, boundary dofs and quadrature operators on one mesh.

    The unknown vector is ``x = [u_x (n2), u_y (n2), p (n1)]`` with ``n2`` scalar P2 dofs and
    ``n1`` P1 dofs (= vertices). Each velocity component uses the same scalar P2 basis, so the
    blocks are the scalar mass ``M``, stiffness ``K`` and the two halves ``B_x``, ``B_y`` of the
    divergence (``B_x[i, j] = int q_i d(phi_j)/dx``).

    Boundary facets are told apart by position: ``x = 0`` inflow, ``x = L`` outflow, ``y = 0`` or
    ``y = H`` wall, the rest the cylinder. Node types follow, with a rule for the four corners (each
    on a wall and on the inflow or outflow): a vertex on any wall or cylinder facet is
    WALL_BOUNDARY, else a vertex on an inflow facet INFLOW, else on an outflow facet OUTFLOW, else
    NORMAL. The corners are therefore walls, consistent with the velocity there (zero: no-slip, and
    the inflow parabola vanishes at the walls).
    """

    def __init__(self, points: np.ndarray, cells: np.ndarray, case: CylinderCase) -> None:
        """Build the discretisation.

        Args:
            points: ``(N, 2)`` mesh vertices.
            cells: ``(C, 3)`` triangles (counter-clockwise).
            case: the geometry and inflow (for the boundary classification and the inflow profile).
        """
        skfem = _import_optional("skfem")
        self.case = case
        self.points, self.cells = points, cells
        self.mesh = skfem.MeshTri(np.ascontiguousarray(points.T), np.ascontiguousarray(cells.T))
        # intorder 4 integrates the P2 mass matrix exactly and the convection term (degree 5) closely.
        self.velocity_basis = skfem.Basis(self.mesh, skfem.ElementTriP2(), intorder=4)
        self.pressure_basis = self.velocity_basis.with_element(skfem.ElementTriP1())
        self.n2, self.n1 = self.velocity_basis.N, self.pressure_basis.N
        self.size = 2 * self.n2 + self.n1
        self.vertex_velocity_dofs = self.velocity_basis.nodal_dofs[0]  # (N,) P2 dofs at the vertices
        self.vertex_pressure_dofs = self.pressure_basis.nodal_dofs[0]  # (N,)
        self._assemble_matrices()
        self._build_quadrature_operators()
        self._classify_boundary()

    # ---------------------------------------------------------------- assembly
    def _assemble_matrices(self) -> None:
        from skfem import BilinearForm, asm
        from skfem.helpers import dot, grad

        @BilinearForm
        def mass(u, v, _):
            return u * v

        @BilinearForm
        def stiffness(u, v, _):
            return dot(grad(u), grad(v))

        @BilinearForm
        def divergence_x(u, q, _):
            return q * grad(u)[0]

        @BilinearForm
        def divergence_y(u, q, _):
            return q * grad(u)[1]

        v2, q1 = self.velocity_basis, self.pressure_basis
        self.M = asm(mass, v2).tocsr()                 # (n2, n2)
        self.K = asm(stiffness, v2).tocsr()            # (n2, n2)
        self.Bx = asm(divergence_x, v2, q1).tocsr()    # (n1, n2)
        self.By = asm(divergence_y, v2, q1).tocsr()    # (n1, n2)

    def _build_quadrature_operators(self) -> None:
        """Sparse maps from P2 dofs to values / x- and y-derivatives at all quadrature points.

        Evaluating the convection term is then a handful of sparse products per step, with no
        Python loop over elements and no re-assembly of a form.
        """
        import scipy.sparse as sp

        v2 = self.velocity_basis
        num_cells, num_points = v2.dx.shape
        local = v2.element_dofs.shape[0]  # 6 P2 basis functions per triangle
        rows = np.broadcast_to(np.arange(num_cells * num_points).reshape(1, num_cells, num_points),
                               (local, num_cells, num_points)).ravel()
        cols = np.broadcast_to(v2.element_dofs[:, :, None], (local, num_cells, num_points)).ravel()

        def operator(values: list[np.ndarray]) -> "sp.csr_matrix":  # values: local x (cells, points)
            data = np.stack(values).ravel()
            return sp.csr_matrix((data, (rows, cols)), shape=(num_cells * num_points, self.n2))

        fields = [v2.basis[i][0] for i in range(local)]
        self.value_op = operator([np.asarray(f) for f in fields])  # (Q, n2), Q = cells * points
        self.dx_op = operator([f.grad[0] for f in fields])       # (Q, n2)
        self.dy_op = operator([f.grad[1] for f in fields])       # (Q, n2)
        self.weights = v2.dx.ravel()                             # (Q,) quadrature weight * |det J|
        self.integrate_op = (sp.diags(self.weights) @ self.value_op).T.tocsr()  # (n2, Q): f(q) -> int f phi_i

    def _classify_boundary(self) -> None:
        mesh, v2 = self.mesh, self.velocity_basis
        facets = mesh.boundary_facets()
        middle = mesh.p[:, mesh.facets[:, facets]].mean(axis=1)  # (2, F)
        tol = 1e-9 * max(self.case.length, self.case.height)
        inflow = middle[0] < tol
        outflow = middle[0] > self.case.length - tol
        wall = (middle[1] < tol) | (middle[1] > self.case.height - tol)
        cylinder = ~(inflow | outflow | wall)
        self.facets = {"inflow": facets[inflow], "outflow": facets[outflow], "wall": facets[wall],
                       "cylinder": facets[cylinder]}
        self.dofs = {name: np.unique(v2.get_dofs(facets=f).all()) if len(f) else np.zeros(0, dtype=np.int64)
                     for name, f in self.facets.items()}
        # Velocity is prescribed on the inflow, the walls and the cylinder (x and y components).
        prescribed = [self.dofs["inflow"], self.dofs["wall"], self.dofs["cylinder"]]
        self.dirichlet = np.unique(np.concatenate(prescribed))
        self.node_type = self._node_types()

    def _node_types(self) -> np.ndarray:
        """``(N,)`` int32 DeepMind node types (see the class docstring for the corner rule)."""
        node_type = np.full(self.mesh.nvertices, NORMAL, dtype=np.int32)
        # Lowest priority first: later assignments win at vertices shared by two boundary parts.
        for name, value in (("outflow", OUTFLOW), ("inflow", INFLOW), ("wall", WALL_BOUNDARY),
                            ("cylinder", WALL_BOUNDARY)):
            node_type[np.unique(self.mesh.facets[:, self.facets[name]])] = value
        return node_type

    # ---------------------------------------------------------------- boundary values
    def boundary_velocity(self, kick_speed: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Prescribed velocity on the Dirichlet dofs.

        Args:
            kick_speed: signed surface speed of the cylinder's rotation (m/s, counter-clockwise > 0).

        Returns:
            ``(u_x, u_y)``, each ``(len(self.dirichlet),)``: the inflow parabola on inflow dofs,
            zero on walls, and the rotation on the cylinder.
        """
        case, x = self.case, self.velocity_basis.doflocs  # (2, n2)
        ux, uy = np.zeros(self.n2), np.zeros(self.n2)
        inflow = self.dofs["inflow"]
        y = x[1, inflow]
        ux[inflow] = 4.0 * case.peak_velocity * y * (case.height - y) / case.height ** 2
        cylinder = self.dofs["cylinder"]
        if kick_speed != 0.0 and len(cylinder):
            offset = x[:, cylinder] - np.asarray(case.center)[:, None]  # (2, n)
            ux[cylinder] = -kick_speed * offset[1] / case.radius
            uy[cylinder] = kick_speed * offset[0] / case.radius
        ux[self.dofs["wall"]] = 0.0  # the corners: no-slip wins over the inflow profile
        uy[self.dofs["wall"]] = 0.0
        return ux[self.dirichlet], uy[self.dirichlet]

    # ---------------------------------------------------------------- operators
    def system_matrix(self, time_coefficient: float, viscosity: float, convection=None):
        """The saddle-point matrix ``[[A, 0, -Bx^T], [0, A, -By^T], [-Bx, -By, 0]]``, CSC.

        Args:
            time_coefficient: ``a`` in ``A = a M + nu K (+ convection)``; 0 for a steady problem.
            viscosity: ``nu``.
            convection: optional ``(n2, n2)`` linearised convection matrix (Picard iterations).
        """
        import scipy.sparse as sp

        block = time_coefficient * self.M + viscosity * self.K
        if convection is not None:
            block = block + convection
        return sp.bmat([[block, None, -self.Bx.T], [None, block, -self.By.T], [-self.Bx, -self.By, None]],
                       format="csc")

    def convection(self, ux: np.ndarray, uy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The load vectors of ``(u . grad) u + (div u) u / 2`` against every P2 test function.

        Args:
            ux, uy: ``(n2,)`` velocity components.

        Returns:
            ``(c_x, c_y)``, each ``(n2,)``.
        """
        ax, ay = self.value_op @ ux, self.value_op @ uy                  # (Q,) velocity at quadrature points
        dxx, dxy = self.dx_op @ ux, self.dy_op @ ux                      # d u_x / dx, d u_x / dy
        dyx, dyy = self.dx_op @ uy, self.dy_op @ uy
        half_divergence = 0.5 * (dxx + dyy)
        return (self.integrate_op @ (ax * dxx + ay * dxy + half_divergence * ax),
                self.integrate_op @ (ax * dyx + ay * dyy + half_divergence * ay))

    def convection_matrix(self, wx: np.ndarray, wy: np.ndarray):
        """``(n2, n2)`` matrix of ``u -> (w . grad) u + (div w) u / 2`` for a frozen velocity ``w``."""
        import scipy.sparse as sp

        ax, ay = self.value_op @ wx, self.value_op @ wy
        half_divergence = 0.5 * (self.dx_op @ wx + self.dy_op @ wy)
        pointwise = (sp.diags(ax) @ self.dx_op + sp.diags(ay) @ self.dy_op
                     + sp.diags(half_divergence) @ self.value_op)
        return (self.integrate_op @ pointwise).tocsr()

    def divergence_measures(self, ux: np.ndarray, uy: np.ndarray) -> dict[str, float]:
        """How divergence-free a P2 velocity is.

        Returns:
            ``continuity_residual``: max over pressure dofs ``i`` of ``|sum_j B_ij u_j| / sum_j
            |B_ij u_j|``, the discrete continuity equation relative to the size of its terms
            (round-off for a solution of the scheme);
            ``divergence_l2``: ``||div u||_L2 / ||grad u||_L2`` of the P2 field (Taylor-Hood is
            only weakly divergence-free, so this is small, not zero).
        """
        weak = self.Bx @ ux + self.By @ uy
        scale = abs(self.Bx) @ np.abs(ux) + abs(self.By) @ np.abs(uy)
        divergence = self.dx_op @ ux + self.dy_op @ uy
        gradient_sq = sum(np.square(op @ u) for op in (self.dx_op, self.dy_op) for u in (ux, uy))
        return {"continuity_residual": float(np.max(np.abs(weak) / np.maximum(scale, 1e-300))),
                "divergence_l2": float(math.sqrt(self.weights @ np.square(divergence)
                                                 / max(self.weights @ gradient_sq, 1e-300)))}

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``x -> (u_x (n2,), u_y (n2,), p (n1,))`` views."""
        return x[:self.n2], x[self.n2:2 * self.n2], x[2 * self.n2:]


def vertex_divergence(points: np.ndarray, cells: np.ndarray, velocity: np.ndarray) -> float:
    """``||div v||_L2 / ||grad v||_L2`` of the piecewise-linear interpolant of vertex velocities.

    This is the field a mesh model sees; its divergence is larger than the P2 solution's.

    Args:
        points: ``(N, 2)``; cells: ``(C, 3)``; velocity: ``(N, 2)``.
    """
    a, b, c = (points[cells[:, i]] for i in range(3))
    jacobian = np.stack([b - a, c - a], axis=2)  # (C, 2, 2) columns: edge vectors
    area = 0.5 * np.abs(np.linalg.det(jacobian))
    values = velocity[cells]  # (C, 3, 2)
    differences = np.stack([values[:, 1] - values[:, 0], values[:, 2] - values[:, 0]], axis=1)  # (C, 2, 2)
    gradient = np.linalg.solve(np.transpose(jacobian, (0, 2, 1)), differences)  # (C, 2, 2): [d/dx_k, u_j]
    divergence = gradient[:, 0, 0] + gradient[:, 1, 1]
    return float(math.sqrt((area @ divergence ** 2) / max(area @ (gradient ** 2).sum((1, 2)), 1e-300)))


# ---------------------------------------------------------------------------------------------------
# Solvers: steady (Picard) and unsteady (SBDFk)
# ---------------------------------------------------------------------------------------------------


def _solve_with_dirichlet(matrix, rhs: np.ndarray, dirichlet: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Solve ``matrix x = rhs`` with ``x[dirichlet] = values`` (rows of those dofs dropped)."""
    from scipy.sparse.linalg import spsolve

    free = np.setdiff1d(np.arange(matrix.shape[0]), dirichlet)
    x = np.empty(matrix.shape[0])
    x[dirichlet] = values
    x[free] = spsolve(matrix[free][:, free].tocsc(), rhs[free] - matrix[free][:, dirichlet] @ values)
    return x


def _velocity_dirichlet(disc: FlowDiscretisation, kick_speed: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``x`` of the prescribed velocity dofs (x then y component) and their values."""
    bx, by = disc.boundary_velocity(kick_speed)
    return np.concatenate([disc.dirichlet, disc.n2 + disc.dirichlet]), np.concatenate([bx, by])


def solve_steady(disc: FlowDiscretisation, viscosity: float, *, convection: bool = True,
                 max_iterations: int = 50, tolerance: float = 1e-10) -> tuple[np.ndarray, dict]:
    """Steady Stokes or Navier-Stokes flow by Picard (Oseen) iteration.

    Args:
        disc: the discretisation (its case gives the inflow).
        viscosity: ``nu``.
        convection: False solves the Stokes problem (one linear solve).
        max_iterations: Picard iterations at most.
        tolerance: stop when the velocity update's max norm falls below ``tolerance * peak velocity``.

    Returns:
        the solution vector ``x`` ``(size,)`` and ``{"iterations", "update"}``.
    """
    dirichlet, values = _velocity_dirichlet(disc)
    rhs = np.zeros(disc.size)
    x = _solve_with_dirichlet(disc.system_matrix(0.0, viscosity), rhs, dirichlet, values)
    if not convection:
        return x, {"iterations": 1, "update": 0.0}
    update = math.inf
    for iteration in range(1, max_iterations + 1):
        ux, uy, _ = disc.split(x)
        matrix = disc.system_matrix(0.0, viscosity, disc.convection_matrix(ux, uy))
        new = _solve_with_dirichlet(matrix, rhs, dirichlet, values)
        update = float(np.abs(new[:2 * disc.n2] - x[:2 * disc.n2]).max())
        x = new
        if update < tolerance * disc.case.peak_velocity:
            break
    return x, {"iterations": iteration, "update": update}


def cylinder_force(disc: FlowDiscretisation, x: np.ndarray, viscosity: float) -> tuple[float, float]:
    """Force of the fluid on the cylinder (per unit depth, density 1) in a steady flow.

    The weak momentum equation tested with a P2 function that is ``e_x`` (or ``e_y``) on the
    cylinder dofs and zero elsewhere does not vanish: integrating by parts leaves the boundary
    traction, so the force is minus the residual summed over the cylinder dofs (the "volume
    integral" method, more accurate than integrating the traction over the polygon). The time
    loop computes the same functional with its time-derivative terms (``_Stepper.force``).

    Args:
        disc: the discretisation.
        x: ``(size,)`` steady solution.
        viscosity: ``nu``.

    Returns:
        ``(F_x, F_y)``: drag and lift.
    """
    ux, uy, p = disc.split(x)
    convection = np.concatenate(disc.convection(ux, uy))
    viscous = viscosity * np.concatenate([disc.K @ ux, disc.K @ uy])
    pressure = -np.concatenate([disc.Bx.T @ p, disc.By.T @ p])
    residual = viscous + pressure + convection  # (2 n2,)
    cylinder = disc.dofs["cylinder"]
    return -float(residual[cylinder].sum()), -float(residual[disc.n2 + cylinder].sum())


@dataclass
class FlowResult:
    """One simulated trajectory.

    Attributes:
        mesh_pos: ``(N, 2)`` float64 vertices.
        cells: ``(C, 3)`` int64 triangles.
        node_type: ``(N,)`` int32.
        velocity: ``(T, N, 2)`` float64 vertex velocities, frame 0 after the spin-up.
        pressure: ``(T, N, 1)`` float64 vertex pressures.
        drag, lift: ``(S,)`` forces on the cylinder at every solver step of the recorded period
            (``S = num_steps * substeps``; zero without a cylinder).
        report: timings, step size and validation numbers.
    """

    mesh_pos: np.ndarray
    cells: np.ndarray
    node_type: np.ndarray
    velocity: np.ndarray
    pressure: np.ndarray
    drag: np.ndarray
    lift: np.ndarray
    report: dict


class SimulationUnstable(RuntimeError):
    """The explicit convection blew up (non-finite or runaway velocities)."""

    def __init__(self, message: str, substeps: int) -> None:
        super().__init__(message)
        self.substeps = substeps  # the substeps per frame that were too few


def factorise(matrix) -> Any:
    """Sparse LU of a saddle-point matrix (``scipy.sparse.linalg.splu``), with a cheap ordering.

    SuperLU's default column ordering (COLAMD) with partial pivoting fills the factors of these
    matrices about twice as much as a minimum-degree ordering of ``A + A^T`` applied symmetrically
    (``SymmetricMode``) with a small diagonal pivot threshold: ~1.2 M instead of ~2.4 M non-zeros
    at 13 k unknowns, and triangular solves 3-5x faster. The threshold still lets SuperLU pivot off
    a diagonal that is too small (the zero pressure block). A solve of a fixed right-hand side
    checks the factors; if they are poor, the default ordering is used instead.

    Args:
        matrix: ``(n, n)`` CSC matrix.

    Returns:
        a ``SuperLU`` object (``.solve(b)``).
    """
    import scipy.sparse.linalg as spla

    factor = spla.splu(matrix, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.01,
                       options={"SymmetricMode": True})
    probe = np.cos(np.arange(matrix.shape[0]))  # deterministic, no zero entries to speak of
    solution = factor.solve(probe)
    residual = np.abs(matrix @ solution - probe).max() if np.isfinite(solution).all() else np.inf
    if residual > 1e-8 * np.abs(probe).max():
        factor = spla.splu(matrix)  # pragma: no cover - a safety net; not seen on these meshes
    return factor


def convective_rate(disc: FlowDiscretisation, x: np.ndarray) -> float:
    """``max over cells of (largest speed on the cell) / (shortest edge of the cell)`` (1/s).

    Evaluated on the Stokes start, whose fastest regions (the gaps beside the cylinder) are where
    the Navier-Stokes flow is fastest too; the explicit convection needs ``rate * dt`` small.
    """
    ux, uy, _ = disc.split(x)
    speed = np.hypot(ux, uy)[disc.velocity_basis.element_dofs].max(axis=0)  # (C,) over the 6 P2 dofs
    corners = disc.points[disc.cells]  # (C, 3, 2)
    edges = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2).min(axis=1)  # (C,)
    return float((speed / edges).max())


def choose_substeps(config: Flow2DConfig, rate: float) -> int:
    """Solver steps per frame so that ``rate * dt <= cfl`` (``rate`` from ``convective_rate``)."""
    return max(1, math.ceil(config.frame_dt * rate / config.cfl - 1e-9))


@dataclass
class _Prepared:
    """Everything a time loop needs that is built once per trajectory."""

    disc: FlowDiscretisation
    stepper: "_Stepper"
    substeps: int
    lu_nonzeros: int
    timings: dict[str, float]


def _prepare(config: Flow2DConfig, case: CylinderCase, substeps: int | None) -> _Prepared:
    """Mesh, assemble, solve the Stokes start, choose the step, factorise the step matrix once."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    points, cells = mesh_channel(case, config.mesh_size, config.cylinder_mesh_size, config.mesh_grading,
                                 config.min_angle)
    timings["mesh"] = time.perf_counter() - clock
    disc = FlowDiscretisation(points, cells, case)
    timings["assemble"] = time.perf_counter() - clock - timings["mesh"]
    clock = time.perf_counter()
    x, _ = solve_steady(disc, config.viscosity, convection=False)  # Stokes flow: a consistent start
    substeps = substeps or choose_substeps(config, convective_rate(disc, x))
    dt = config.frame_dt / substeps
    dirichlet, _ = _velocity_dirichlet(disc)
    free = np.setdiff1d(np.arange(disc.size), dirichlet)
    matrix = disc.system_matrix(SBDF_COEFFICIENTS[config.time_order]["leading"] / dt, config.viscosity)
    factor = factorise(matrix[free][:, free].tocsc())
    timings["factorise"] = time.perf_counter() - clock
    stepper = _Stepper(disc, config, case, factor, matrix[free][:, dirichlet].tocsr(), free, dirichlet, dt, x)
    return _Prepared(disc, stepper, substeps, int(factor.L.nnz + factor.U.nnz), timings)


def simulate_case(config: Flow2DConfig, case: CylinderCase, *, substeps: int | None = None,
                  num_steps: int | None = None, spinup_time: float | None = None) -> FlowResult:
    """Mesh, discretise and time-step one case; record vertex fields every ``frame_dt``.

    Args:
        config: the generator config (mesh sizes, viscosity, times, CFL number).
        case: the geometry and inflow.
        substeps: solver steps per frame; None chooses them with ``choose_substeps``.
        num_steps: recorded steps (frames - 1); None takes ``config.num_steps``.
        spinup_time: simulated seconds before frame 0; None takes ``config.spinup_time``.

    Returns:
        the trajectory.

    Raises:
        SimulationUnstable: if the velocity became non-finite or ran away (see ``_Stepper.step``).
    """
    prepared = _prepare(config, case, substeps)
    disc, stepper, substeps = prepared.disc, prepared.stepper, prepared.substeps
    num_steps = config.num_steps if num_steps is None else num_steps
    spinup_frames = round((config.spinup_time if spinup_time is None else spinup_time) / config.frame_dt)
    clock = time.perf_counter()
    frames, drag, lift, divergence = [], [], [], []
    try:
        for _ in range(spinup_frames * substeps):
            stepper.step()
        for frame in range(num_steps + 1):
            for _ in range(substeps if frame > 0 else 0):
                stepper.step()
                drag_now, lift_now = stepper.force()
                drag.append(drag_now)
                lift.append(lift_now)
            frames.append(stepper.vertex_fields())
            divergence.append(disc.divergence_measures(*disc.split(stepper.x)[:2]))
    except FloatingPointError as error:
        raise SimulationUnstable(str(error), substeps) from error
    prepared.timings["time_steps"] = time.perf_counter() - clock
    velocity = np.stack([u for u, _ in frames])   # (T, N, 2)
    pressure = np.stack([p for _, p in frames])   # (T, N, 1)
    report = {
        "nodes": int(len(disc.points)), "cells": int(len(disc.cells)), "velocity_dofs": int(2 * disc.n2),
        "pressure_dofs": int(disc.n1), "min_edge": min_edge_length(disc.points, disc.cells),
        "substeps": substeps, "solver_dt": config.frame_dt / substeps, "solver_steps": stepper.steps,
        "lu_nonzeros": prepared.lu_nonzeros,
        "continuity_residual": max(d["continuity_residual"] for d in divergence),
        "divergence_l2": max(d["divergence_l2"] for d in divergence),
        "vertex_divergence_l2": vertex_divergence(disc.points, disc.cells, velocity[-1]),
        "seconds": {k: round(v, 3) for k, v in prepared.timings.items()},
        "ms_per_step": 1e3 * prepared.timings["time_steps"] / max(stepper.steps, 1),
    }
    return FlowResult(mesh_pos=disc.points, cells=disc.cells, node_type=disc.node_type, velocity=velocity,
                      pressure=pressure, drag=np.asarray(drag), lift=np.asarray(lift), report=report)


# Backward-difference / extrapolation coefficients by order k: the step solves
# (leading / dt) M u^{n+1} + nu K u^{n+1} - B^T p^{n+1} = M sum_j history_j u^{n-j} / dt
#                                                      - sum_j extrapolation_j N(u^{n-j}).
SBDF_COEFFICIENTS = {
    2: {"leading": 1.5, "history": (2.0, -0.5), "extrapolation": (2.0, -1.0)},
    3: {"leading": 11.0 / 6.0, "history": (3.0, -1.5, 1.0 / 3.0), "extrapolation": (3.0, -3.0, 1.0)},
}


class _Stepper:
    """The SBDFk time loop state: k velocity levels, k convection vectors, the clock.

    At the start every history level holds the initial state, so the first step is a backward
    Euler step (of length ``dt / leading``) with explicit convection, and the next few steps mix
    orders; this only affects the spin-up.
    """

    def __init__(self, disc: FlowDiscretisation, config: Flow2DConfig, case: CylinderCase, factor,
                 coupling, free: np.ndarray, dirichlet: np.ndarray, dt: float, x: np.ndarray) -> None:
        self.disc, self.config, self.case = disc, config, case
        self.factor, self.coupling, self.free, self.dirichlet, self.dt = factor, coupling, free, dirichlet, dt
        self.coefficients = SBDF_COEFFICIENTS[config.time_order]
        self.x = x
        self.velocities = [x[:2 * disc.n2].copy() for _ in range(config.time_order)]  # u^n, u^{n-1}, ...
        self.convections: list[np.ndarray] = []  # N(u^n), N(u^{n-1}), ...; filled at the first step
        self.rhs = np.zeros(disc.size)
        self.steps = 0
        # The fastest physical flow (the jets beside the cylinder) stays below ~2 x the peak inflow;
        # the explicit convection's instability shows first as a local flare well above that.
        self.limit = 3.0 * case.peak_velocity + abs(case.kick)
        # The force is a linear functional of the step (see cylinder_force): sum the rows of the
        # cylinder dofs once, so that it costs a few dot products per step.
        cylinder = disc.dofs["cylinder"]
        leading = self.coefficients["leading"] / dt
        self.force_rows = []
        for component, divergence in ((0, disc.Bx), (1, disc.By)):
            row = np.zeros(disc.size)
            offset = component * disc.n2
            block = config.viscosity * disc.K + leading * disc.M
            row[offset:offset + disc.n2] = block[cylinder].sum(axis=0).A1
            row[2 * disc.n2:] = -np.asarray(divergence[:, cylinder].sum(axis=1)).ravel()
            self.force_rows.append((row, offset + cylinder))

    def kick_speed(self, t: float) -> float:
        """Surface speed of the cylinder's start-up rotation at time ``t`` (a half sine, then 0)."""
        if t >= self.config.kick_duration or self.case.kick == 0.0:
            return 0.0
        return self.case.kick * math.sin(math.pi * t / self.config.kick_duration)

    def step(self) -> None:
        """Advance by ``dt``: one convection evaluation and one pair of triangular solves."""
        disc, dt, n2 = self.disc, self.dt, self.disc.n2
        u = self.velocities[0]
        convection = np.concatenate(disc.convection(u[:n2], u[n2:]))  # (2 n2,)
        self.convections = [convection] + (self.convections or [convection] * len(self.velocities))[:-1]
        explicit = sum(c * v for c, v in zip(self.coefficients["extrapolation"], self.convections))
        history = sum(c * v for c, v in zip(self.coefficients["history"], self.velocities)) / dt  # (2 n2,)
        rhs = self.rhs
        rhs[:2 * n2] = (disc.M @ history.reshape(2, n2).T).T.ravel() - explicit
        self.steps += 1
        _, values = _velocity_dirichlet(disc, self.kick_speed(self.steps * dt))
        x = np.empty(disc.size)
        x[self.dirichlet] = values
        x[self.free] = self.factor.solve(rhs[self.free] - self.coupling @ values)
        self.x = x
        self.velocities = [x[:2 * n2]] + self.velocities[:-1]
        if not (np.isfinite(x).all() and np.abs(x[:2 * n2]).max() < self.limit):
            raise FloatingPointError(f"velocity blew up at step {self.steps} (dt {dt:.3g} s)")

    def force(self) -> tuple[float, float]:
        """``(drag, lift)`` on the cylinder after the last step (minus the momentum residual there).

        The residual of the step's momentum equation on a cylinder dof is
        ``(1.5/dt M + nu K) u - B^T p - rhs``; summed over the cylinder dofs of one component.
        """
        return tuple(-float(row @ self.x - self.rhs[dofs].sum()) for row, dofs in self.force_rows)

    def vertex_fields(self) -> tuple[np.ndarray, np.ndarray]:
        """``(velocity (N, 2), pressure (N, 1))`` at the mesh vertices."""
        ux, uy, p = self.disc.split(self.x)
        vertices = self.disc.vertex_velocity_dofs
        return (np.stack([ux[vertices], uy[vertices]], axis=1),
                p[self.disc.vertex_pressure_dofs][:, None])


# ---------------------------------------------------------------------------------------------------
# Analysis and benchmarks
# ---------------------------------------------------------------------------------------------------


def shedding_analysis(drag: np.ndarray, lift: np.ndarray, case: CylinderCase, dt: float) -> dict:
    """Force coefficients and the Strouhal number of a force history.

    Coefficients are ``2 F / (U_mean^2 D)`` (density 1). The shedding frequency is the number of
    upward zero crossings of the mean-free lift (linearly interpolated between samples) over the
    time they span; the Strouhal number is ``f D / U_mean``. A lift amplitude below 0.01 (in
    lift-coefficient units) counts as no shedding (steady wake): the Strouhal number is then None.

    Args:
        drag, lift: ``(S,)`` forces sampled every ``dt`` seconds.
        case: the geometry and inflow (for ``D`` and ``U_mean``).
        dt: sampling interval (s).

    Returns:
        ``{"strouhal", "drag_coefficient_mean", "drag_coefficient_max", "lift_coefficient_max",
        "lift_coefficient_amplitude", "amplitude_growth"}``; ``amplitude_growth`` is the lift
        amplitude of the second half over the first (1 for a developed periodic wake).
    """
    scale = 2.0 / (case.mean_velocity ** 2 * case.diameter)
    drag_c, lift_c = scale * np.asarray(drag), scale * np.asarray(lift)
    half = len(lift_c) // 2
    amplitude = 0.5 * float(np.ptp(lift_c))
    first, second = (0.5 * float(np.ptp(part)) for part in (lift_c[:half], lift_c[half:]))
    out = {"strouhal": None, "drag_coefficient_mean": float(drag_c.mean()),
           "drag_coefficient_max": float(drag_c.max()), "lift_coefficient_max": float(lift_c.max()),
           "lift_coefficient_amplitude": amplitude, "amplitude_growth": second / max(first, 1e-12)}
    centred = lift_c - lift_c.mean()
    up = np.flatnonzero((centred[:-1] < 0) & (centred[1:] >= 0))
    if amplitude >= 0.01 and len(up) >= 2:  # at least one whole period
        crossing = (up + centred[up] / (centred[up] - centred[up + 1])) * dt  # interpolated times
        frequency = (len(crossing) - 1) / (crossing[-1] - crossing[0])
        out["strouhal"] = float(frequency * case.diameter / case.mean_velocity)
    return out


def dfg_steady_benchmark(config: Flow2DConfig = Flow2DConfig()) -> dict:
    """DFG 2D-1: steady flow at Re 20 on a mesh made with ``config``'s mesh sizes.

    Inflow peak 0.3 m/s, viscosity 1e-3, the benchmark channel (2.2 x 0.41, cylinder r 0.05 at
    (0.2, 0.2)); solved by Picard iteration. Reference (Schaefer & Turek 1996): drag coefficient
    5.5795, lift coefficient 0.010619, pressure difference between the front and the rear of the
    cylinder 0.11752.

    Returns:
        the computed values, the references, relative errors, mesh size, iterations and seconds.
    """
    started = time.perf_counter()
    case = dfg_case(0.3)
    viscosity = 1e-3
    points, cells = mesh_channel(case, config.mesh_size, config.cylinder_mesh_size, config.mesh_grading,
                                 config.min_angle)
    disc = FlowDiscretisation(points, cells, case)
    x, info = solve_steady(disc, viscosity, tolerance=1e-9)
    force = cylinder_force(disc, x, viscosity)
    scale = 2.0 / (case.mean_velocity ** 2 * case.diameter)
    # front and rear stagnation points are mesh vertices (cylinder polygons have 4k vertices)
    probes = disc.pressure_basis.probes(np.array([[0.15, 0.25], [0.2, 0.2]]))
    front, rear = probes @ disc.split(x)[2]
    values = {"drag_coefficient": scale * force[0], "lift_coefficient": scale * force[1],
              "pressure_difference": float(front - rear)}
    return {
        **values, "reference": DFG_2D1_REFERENCE,
        "relative_error": {k: abs(v / DFG_2D1_REFERENCE[k] - 1.0) for k, v in values.items()},
        "reynolds": case.reynolds(viscosity), "nodes": int(len(points)),
        "picard_iterations": info["iterations"],
        "seconds": round(time.perf_counter() - started, 2),
    }


def dfg_unsteady_benchmark(config: Flow2DConfig = Flow2DConfig(), spinup_time: float = 0.5,
                           duration: float = 1.0) -> dict:
    """DFG 2D-2: periodic vortex shedding at Re 100 with the generator's mesh sizes, CFL and kick.

    Inflow peak 1.5 m/s, viscosity 1e-3, the benchmark channel. The flow is spun up for
    ``spinup_time`` seconds (with the generator's start-up kick), then forces are recorded at every
    solver step for ``duration`` seconds (about 3 periods). Reference ranges (Schaefer & Turek
    1996): Strouhal number 0.295-0.305, maximum drag coefficient 3.22-3.24, maximum lift
    coefficient 0.99-1.01.

    Returns:
        Strouhal number, maximum drag and lift coefficients, the reference ranges, mesh size,
        substeps and seconds.
    """
    started = time.perf_counter()
    config = dataclasses.replace(config, viscosity=1e-3)
    case = dataclasses.replace(dfg_case(1.5), kick=config.kick_strength * 1.0)  # U_mean = 1
    result = simulate_case(config, case, num_steps=max(1, round(duration / config.frame_dt)),
                           spinup_time=spinup_time)
    analysis = shedding_analysis(result.drag, result.lift, case, result.report["solver_dt"])
    return {
        "strouhal": analysis["strouhal"], "max_drag_coefficient": analysis["drag_coefficient_max"],
        "max_lift_coefficient": analysis["lift_coefficient_max"], "reference": DFG_2D2_REFERENCE,
        "reynolds": case.reynolds(config.viscosity), "nodes": result.report["nodes"],
        "substeps": result.report["substeps"], "spinup_time": spinup_time, "duration": duration,
        "seconds": round(time.perf_counter() - started, 2),
    }


def poiseuille_check(config: Flow2DConfig = Flow2DConfig(), peak_velocity: float = 1.0,
                     length: float = 1.0) -> dict:
    """Steady Navier-Stokes in an empty channel against the analytic Poiseuille flow.

    ``u = 4 U y (H - y) / H^2``, ``v = 0``, ``dp/dx = -8 nu U / H^2``, zero pressure at the outflow
    (the do-nothing condition). P2 velocity and P1 pressure contain this solution, so the errors
    are round-off.

    Returns:
        ``{"velocity_error", "pressure_error", "nodes"}``: max errors at the mesh vertices,
        relative to ``U`` and to the pressure drop.
    """
    case = CylinderCase(length=length, height=config.channel_height, center=(0.0, 0.0), radius=0.0,
                        peak_velocity=peak_velocity)
    points, cells = mesh_channel(case, config.mesh_size, config.cylinder_mesh_size, config.mesh_grading,
                                 config.min_angle)
    disc = FlowDiscretisation(points, cells, case)
    x, _ = solve_steady(disc, config.viscosity)
    ux, uy, p = disc.split(x)
    vertices, (px, py) = disc.vertex_velocity_dofs, points.T
    height = case.height
    exact_u = 4.0 * peak_velocity * py * (height - py) / height ** 2
    drop = 8.0 * config.viscosity * peak_velocity / height ** 2 * length
    exact_p = drop * (1.0 - px / length)
    return {"velocity_error": float(max(np.abs(ux[vertices] - exact_u).max(), np.abs(uy[vertices]).max())
                                    / peak_velocity),
            "pressure_error": float(np.abs(p[disc.vertex_pressure_dofs] - exact_p).max() / drop),
            "nodes": int(len(points))}


# ---------------------------------------------------------------------------------------------------
# Dataset generation
# ---------------------------------------------------------------------------------------------------


def simulate_trajectory(config: Flow2DConfig, split_id: int, index: int) -> FlowResult:
    """Trajectory ``index`` of split ``split_id``, rerun with 1.5x the substeps if it blows up.

    The rerun is deterministic too (it depends only on the case), so the result never depends on
    which process computed it.
    """
    case = sample_case(config, split_id, index)
    substeps = None
    cpu_started = time.process_time()  # CPU time: meaningful also when other jobs share the cores
    for attempt in range(config.max_retries + 1):
        try:
            result = simulate_case(config, case, substeps=substeps)
        except SimulationUnstable as error:
            if attempt == config.max_retries:
                raise RuntimeError(f"Flow2D {SPLITS[split_id]} trajectory {index} is unstable even with "
                                   f"{error.substeps} substeps per frame; lower cfl") from error
            substeps = math.ceil(1.5 * error.substeps)
            continue
        result.report.update(split=SPLITS[split_id], index=index, case=case.to_dict(),
                             reynolds=case.reynolds(config.viscosity), retries=attempt,
                             cpu_seconds=time.process_time() - cpu_started)
        result.report.update(shedding_analysis(result.drag, result.lift, case, result.report["solver_dt"]))
        result.report.update(_boundary_errors(result, case))
        return result
    raise AssertionError("unreachable")  # pragma: no cover


def _boundary_errors(result: FlowResult, case: CylinderCase) -> dict:
    """Largest deviation of the recorded vertex velocities from the prescribed wall and inflow values."""
    wall = result.node_type == WALL_BOUNDARY
    inflow = result.node_type == INFLOW
    y = result.mesh_pos[inflow, 1]
    profile = 4.0 * case.peak_velocity * y * (case.height - y) / case.height ** 2
    inflow_error = np.abs(result.velocity[:, inflow, 0] - profile).max(initial=0.0)
    inflow_error = max(inflow_error, np.abs(result.velocity[:, inflow, 1]).max(initial=0.0))
    return {"wall_velocity_max": float(np.abs(result.velocity[:, wall]).max(initial=0.0)),
            "inflow_velocity_error": float(inflow_error)}


def _task(job: tuple) -> tuple[str, Any, Any]:
    """Worker job: ``("trajectory", config, split_id, index)`` or ``("benchmark", config, name)``."""
    kind, config, *rest = job
    if kind == "benchmark":
        run = {"dfg_2d1": dfg_steady_benchmark, "dfg_2d2": dfg_unsteady_benchmark}[rest[0]]
        return kind, rest[0], run(config)
    split_id, index = rest
    result = simulate_trajectory(config, split_id, index)
    # float32 before pickling back to the parent: that is what is stored, and half the bytes.
    result.velocity = result.velocity.astype(np.float32)
    result.pressure = result.pressure.astype(np.float32)
    return kind, split_id, result


def _jobs(config: Flow2DConfig) -> list[tuple]:
    """Benchmarks first (the longest jobs start early), then trajectories in write order."""
    jobs: list[tuple] = [("benchmark", config, name) for name in ("dfg_2d2", "dfg_2d1") if config.benchmarks]
    for split_id, split in enumerate(SPLITS):
        jobs += [("trajectory", config, split_id, index) for index in range(config.split_sizes[split])]
    return jobs


def _run_jobs(config: Flow2DConfig, progress: bool) -> Generator[tuple[str, Any, Any], None, None]:
    """Yield job results in job order, from spawned single-threaded workers (or this process).

    SuperLU's dense kernels call BLAS on small blocks, where threads only add overhead: 2.7x slower
    per step with OpenBLAS's default threads on two cores; hence one BLAS thread per worker.
    """
    return run_jobs(_task, _jobs(config), num_workers=config.num_workers,
                    in_process=config.num_workers == 0,  # debugging: BLAS threads as this process has them
                    desc="flow2d jobs", unit="job", progress=progress, single_threaded=True)


def flow2d_metadata(config: Flow2DConfig, generator: dict | None = None):
    """The dataset's ``MeshMetadata`` (``kind: mesh``, ``domain: flow``)."""
    from gns.data.mesh import MeshFieldSpec, MeshMetadata, MeshTarget

    return MeshMetadata(
        domain="flow", dt=config.frame_dt, mesh_dim=2, cell_type="triangle", node_types=dict(NODE_TYPES),
        fields={"velocity": MeshFieldSpec(dim=2, dynamic=True),
                "pressure": MeshFieldSpec(dim=1, dynamic=True)},
        target=MeshTarget(field="velocity", order=1), outputs=["pressure"],
        sequence_length=config.num_steps, generator=generator)


def generate_flow2d(out_dir: str | os.PathLike, config: Flow2DConfig = Flow2DConfig(), *,
                    progress: bool = True) -> Path:
    """Simulate the Flow2D dataset and write it in the canonical mesh layout (docs/mesh_format.md).

    Writes ``metadata.json`` and ``train.h5``, ``valid.h5``, ``test.h5`` (a split with zero
    trajectories is not written) into ``out_dir``. Each trajectory holds ``mesh_pos`` ``(N, 2)``,
    ``cells`` ``(C, 3)``, ``node_type`` ``(N,)``, ``velocity`` ``(T, N, 2)`` and ``pressure``
    ``(T, N, 1)`` with ``T = num_steps + 1``. ``metadata.generator`` records the solver, the
    library versions, the full config, the seed, the measured times and the validation summary
    (``validation``: finiteness, boundary values, divergence, shedding, DFG benchmarks, and one
    record per trajectory).

    Args:
        out_dir: dataset directory (created if missing; files of the same names are replaced).
        config: every generation parameter; the same config gives bit-identical arrays.
        progress: show a tqdm bar over jobs.

    Returns:
        ``out_dir`` as a Path.
    """
    from gns.data.mesh import save_mesh_metadata

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    reports, benchmarks = _write_splits(out_dir, config, progress)
    generator = {
        "solver": SOLVER_NAME, "solver_version": SOLVER_VERSION, "versions": _versions(),
        "seed": config.seed, "config": config.to_dict(),
        "generation_seconds": round(time.perf_counter() - started, 2),
        "validation": _summarize(config, reports, benchmarks),
    }
    save_mesh_metadata(flow2d_metadata(config, generator), out_dir)
    return out_dir


def _write_splits(out_dir: Path, config: Flow2DConfig, progress: bool) -> tuple[dict[str, list[dict]], dict]:
    """Simulate and write ``<split>.h5`` for every split; return the reports and benchmarks."""
    from gns.data.mesh import MeshTrajectory, write_mesh_split

    reports: dict[str, list[dict]] = {split: [] for split in SPLITS}
    benchmarks: dict[str, dict] = {}
    metadata = flow2d_metadata(config)

    def mesh_trajectory(split: str, result: FlowResult) -> MeshTrajectory:
        reports[split].append(result.report)
        return MeshTrajectory(mesh_pos=result.mesh_pos.astype(np.float32), cells=result.cells,
                              node_type=result.node_type,
                              fields={"velocity": result.velocity, "pressure": result.pressure})

    with contextlib.closing(_run_jobs(config, progress)) as results:  # stops the worker pool
        for _ in range(2 if config.benchmarks else 0):
            _, name, values = next(results)
            benchmarks[name] = values
        write_splits(out_dir, config.split_sizes, ((split_id, result) for _, split_id, result in results),
                     mesh_trajectory, lambda path, trajectories: write_mesh_split(path, trajectories, metadata))
    return reports, benchmarks


def _versions() -> dict[str, str]:
    return {package: package_version(package) for package in ("scikit-fem", "triangle", "scipy", "numpy")}


def _summarize(config: Flow2DConfig, reports: dict[str, list[dict]], benchmarks: dict) -> dict:
    """Dataset-level validation record for ``metadata.generator.validation``."""
    every = [r for split in SPLITS for r in reports[split]]
    if not every:
        return {"trajectories": {split: 0 for split in SPLITS}, "benchmarks": benchmarks}

    def spread(key: str) -> dict:
        values = np.array([r[key] for r in every], dtype=float)
        return {"min": float(values.min()), "mean": float(values.mean()), "max": float(values.max())}

    strouhal = [r["strouhal"] for r in every if r["strouhal"] is not None]
    return {
        "trajectories": {split: len(reports[split]) for split in SPLITS},
        "nodes": spread("nodes"), "cells": spread("cells"), "reynolds": spread("reynolds"),
        "substeps": spread("substeps"), "retries": int(sum(r["retries"] for r in every)),
        "finite": True,  # a non-finite velocity raises SimulationUnstable, and the writer checks again
        "wall_velocity_max": max(r["wall_velocity_max"] for r in every),
        "inflow_velocity_error": max(r["inflow_velocity_error"] for r in every),
        "continuity_residual_max": max(r["continuity_residual"] for r in every),
        "divergence_l2": spread("divergence_l2"), "vertex_divergence_l2": spread("vertex_divergence_l2"),
        "shedding_fraction": len(strouhal) / len(every),
        "strouhal": ({"min": min(strouhal), "mean": float(np.mean(strouhal)), "max": max(strouhal)}
                     if strouhal else None),
        "lift_amplitude_growth": spread("amplitude_growth"),
        "ms_per_solver_step": spread("ms_per_step"),
        "trajectory_cpu_seconds": {**spread("cpu_seconds"),
                                   "total": round(sum(r["cpu_seconds"] for r in every), 1)},
        "benchmarks": benchmarks,
        "per_trajectory": [_trajectory_record(r) for r in every],
    }


def _trajectory_record(report: dict) -> dict:
    """The per-trajectory numbers kept in the metadata (the case, sizes, shedding)."""
    keys = ("split", "index", "reynolds", "nodes", "substeps", "strouhal", "drag_coefficient_mean",
            "lift_coefficient_amplitude", "amplitude_growth", "divergence_l2")
    record = {k: report[k] for k in keys}
    record.update(radius=report["case"]["radius"], center=report["case"]["center"],
                  peak_velocity=report["case"]["peak_velocity"])
    return json.loads(json.dumps(record))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m gns.solvers.flow2d --out DIR [--seed S] [--small] [--workers W] [--no-benchmarks]``."""
    parser = generator_parser("Generate the Flow2D dataset (cylinder flow, scikit-fem).", Flow2DConfig,
                              workers_help="worker processes")
    parser.add_argument("--no-benchmarks", action="store_true", help="skip the DFG benchmark checks")
    args = parser.parse_args(argv)
    config = generator_config(Flow2DConfig, args, **({"benchmarks": False} if args.no_benchmarks else {}))
    out = generate_flow2d(args.out, config)
    from gns.data.mesh import load_mesh_metadata

    generator = load_mesh_metadata(out).generator
    validation = {k: v for k, v in generator["validation"].items() if k != "per_trajectory"}
    print_generation(out, generator, validation)


if __name__ == "__main__":
    main()
