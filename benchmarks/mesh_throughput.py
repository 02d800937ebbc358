"""Training and rollout throughput (node-steps/s) and peak memory of the mesh simulator (MeshGraphNets).

What it measures, for :class:`gns.mesh.MeshSimulator` with the default model
(:class:`gns.config.ModelConfig`: latent 128, 10 message-passing steps, 2 hidden layers) and, where
``gns/configs/cloth.yaml`` / ``flow.yaml`` exist, the model of that shipped preset (read with
:func:`gns.config.load_config`), on synthetic states that need no dataset:

* **train**: one training step as ``gns/train/loop.py`` takes it: ``unrolled_loss(...,
  unroll=0)`` (training noise, graph building with world edges, network, loss) + backward +
  gradient clipping (``TrainConfig.grad_clip``) + Adam, one mesh per batch (and two meshes at the
  default size, ``TrainConfig.batch_size``).
* **rollout**: ``simulator.predict_next`` under ``torch.inference_mode`` in eval mode, graph
  building (world-edge search included) inside the timed call.
* steps/s and node-steps/s (nodes of the batch x steps / s) of both.
* **peak memory** of each configuration and mode in a fresh subprocess: CPU, the peak RSS above
  the RSS just before the first step (``VmHWM`` reset through ``/proc/self/clear_refs``, see
  ``throughput.memory_child``); CUDA, ``torch.cuda.max_memory_allocated`` above the allocation before.
  The training step includes the creation of Adam's state.
* a **breakdown** of one training step: graph building (world-edge search; edge and node features;
  the online normalizers' accumulate + normalize) vs network forward vs noise/target/loss vs
  backward vs optimizer, with synchronized timers (the world-edge search is timed by wrapping the
  name ``gns.mesh.simulator`` calls, the normalizers by wrapping their ``normalize``), and, where a
  dataset is present, the time :class:`gns.train.meshes.MeshWindowSampler` takes to read one window.

Synthetic states (sizes from ``datasets/cloth`` / ``datasets/flow2d`` when they exist):

* **cloth** (Lagrangian, target ``world_pos`` of order 2, world edges): the flag sheet of
  :func:`gns.mesh.make_rectangle_mesh` (``width x height`` = 1.2 x 0.6 m, ``nodes_u x nodes_v`` =
  25 x 13 as the dataset's generator config says) lifted to 3-D and rippled (``z`` = a 2 cm sine),
  HANDLE nodes on the pole column ``u = 0``, NORMAL elsewhere, plus the dataset's sphere obstacle as
  OBSTACLE nodes (an icosphere of ``obstacle_subdivisions`` = 1: 42 nodes) held half a world-edge
  radius above the sheet, so that world edges join the two as in contact: 367 nodes. Frames
  ``t - 1`` and ``t + 1`` add random per-node velocities and accelerations of the RMS size of the
  dataset's per-step displacements (NORMAL nodes only). World edges are on (radius: the dataset's
  ``world_edge_radius``, 0.1 m, two mesh edges) in one variant and off
  (``MeshConfig(world_edges=False)``) in the other, side by side; they are counted on the state
  without training noise (~2 per node on this nearly flat sheet, more where real cloth folds).
* **flow** (Eulerian, target ``velocity`` of order 1 plus ``pressure`` as output): a structured
  triangle mesh of the 1.6 x 0.41 m channel with about the dataset's mean node count (1,800
  without the dataset: an 86 x 21 grid, 1,806 nodes), INFLOW on the left edge, OUTFLOW on the
  right, WALL_BOUNDARY on the top and bottom (walls win at the corners); a parabolic inflow profile
  with per-node noise, a linear pressure drop with noise.
* **scale** ``s`` (``--scales 1 10``): about ``s`` times the nodes in the *same physical size*.
  Cloth: ``nodes_u`` and ``nodes_v`` times ``sqrt(s)`` (25 x 13 -> 79 x 41: 3,281 nodes), so the
  mesh edges shrink by ~``sqrt(s)``; the world-edge radius and the obstacle's clearance are scaled
  with the edge length so the world edges per node stay comparable (printed); the obstacle keeps its
  resolution (its subdivision level is a setting of its own in the generator). Flow: the grid is
  refined to ``s`` times the nodes (265 x 68: 18,020). Batch-2 rows roll the two meshes out together,
  as ``gns evaluate`` batches trajectories.

The field values do not change the cost of a step, except through the world edges (which depend
on the world positions); they are taken from the dataset only so the states look like its states.

Timing as in ``throughput.py`` (whose helpers are imported from it): the configurations of one
domain and scale take turns within every repeat (train and rollout of each), the median over
repeats is reported, a repeat during which other processes used more than ``--max-background``
cores (``/proc/stat``) is retried, and the other processes' load is printed with every figure.

Examples::

    python benchmarks/mesh_throughput.py                            # cloth and flow, 1x and 10x, CPU
    python benchmarks/mesh_throughput.py --device cuda --json gpu.json
    python benchmarks/mesh_throughput.py --domains cloth --scales 1  # one table
    OMP_NUM_THREADS=1 python benchmarks/mesh_throughput.py --quick   # smoke test, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from throughput import (BACKGROUND, rollout_step, _Timer, add_retry_options, finish_run, interleaved, log,  # noqa: E402
                        args_record, loadavg_text, machine, peak_memory, quietest, start_run, table,
                        table_parser)

import gns.mesh.simulator as simulator_module  # noqa: E402
from gns.config import PRESETS_DIR, MeshConfig, ModelConfig, TrainConfig, load_config  # noqa: E402
from gns.data.mesh import MeshFieldSpec, MeshMetadata, MeshTarget, load_mesh_metadata, open_mesh_split  # noqa: E402
from gns.mesh.io import make_rectangle_mesh  # noqa: E402
from gns.mesh.simulator import MeshSimulator, noise_settings  # noqa: E402
from gns.mesh.state import MeshState  # noqa: E402
from gns.mesh.windows import MeshWindows  # noqa: E402
from gns.mesh.topology import edges_from_cells  # noqa: E402
from gns.mesh.types import NodeType  # noqa: E402
from gns.train.losses import masked_mse  # noqa: E402
from gns.train.losses import unrolled_loss  # noqa: E402

DOMAINS = ("cloth", "flow")
DATASET_DIRS = {"cloth": ("cloth",), "flow": ("flow2d", "flow")}   # under --datasets, first found wins
GRAD_CLIP = TrainConfig().grad_clip
LR = TrainConfig().lr_init
QUICK_NODES = 0.1            # --quick: meshes of about a tenth of the default nodes
RIPPLE = 0.02                # cloth: amplitude (m) of the sine lifting the sheet out of its plane


# =============================================================================================
# the default sizes: from the datasets when they are there
# =============================================================================================
@dataclass(frozen=True)
class ClothBase:
    """The default flag, as ``datasets/cloth`` (its generator config and first trajectory) has it."""
    metadata: MeshMetadata
    width: float = 1.2
    height: float = 0.6
    nodes_u: int = 25                    # grid nodes from the pole to the free edge
    nodes_v: int = 13                    # grid nodes along the pole (HANDLE nodes)
    obstacle_subdivisions: int = 1       # icosphere level: 1 -> 42 nodes
    obstacle_radius: float = 0.16        # mean of the generator's obstacle_radius_range
    world_edge_radius: float = 0.1
    velocity_rms: float = 0.011          # RMS per-step displacement of the NORMAL nodes (m; datasets/cloth: 0.011)
    acceleration_rms: float = 0.003      # RMS per-step change of that displacement (m; datasets/cloth: 0.003)
    source: str = "built-in defaults (no datasets/cloth)"

    @property
    def spacing(self) -> float:
        return min(self.width / (self.nodes_u - 1), self.height / (self.nodes_v - 1))


@dataclass(frozen=True)
class FlowBase:
    """The default channel, as ``datasets/flow2d`` (its generator config and train split) has it."""
    metadata: MeshMetadata
    length: float = 1.6
    height: float = 0.41
    nodes: int = 1800                    # mean nodes per trajectory
    velocity_rms: float = 0.91           # RMS of the target field over nodes (m/s): a 1.25 m/s peak profile
    change_rms: float = 0.01             # RMS of its per-step change
    pressure_mean: float = 0.0
    pressure_std: float = 0.1
    source: str = "built-in defaults (no datasets/flow2d)"


def synthetic_cloth_metadata(radius: float) -> MeshMetadata:
    return MeshMetadata(domain="cloth", dt=0.02, mesh_dim=2, cell_type="triangle",
                        node_types={"NORMAL": 0, "OBSTACLE": 1, "HANDLE": 3},
                        fields={"world_pos": MeshFieldSpec(3)}, target=MeshTarget("world_pos", 2),
                        sequence_length=300, world_edge_radius=radius)


def synthetic_flow_metadata() -> MeshMetadata:
    return MeshMetadata(domain="flow", dt=0.01, mesh_dim=2, cell_type="triangle",
                        node_types={"NORMAL": 0, "INFLOW": 4, "OUTFLOW": 5, "WALL_BOUNDARY": 6},
                        fields={"velocity": MeshFieldSpec(2), "pressure": MeshFieldSpec(1)},
                        target=MeshTarget("velocity", 1), outputs=["pressure"], sequence_length=200)


def find_dataset(datasets: Path, domain: str, order: int) -> Path | None:
    """The first ``<datasets>/<name>`` of the domain with a mesh ``metadata.json`` of that order and a train split."""
    for name in DATASET_DIRS[domain]:
        root = datasets / name
        if (root / "metadata.json").exists() and (root / "train.h5").exists():
            try:
                if load_mesh_metadata(root).target.order == order:
                    return root
            except Exception:  # noqa: BLE001 - not a mesh dataset: ignore it
                continue
    return None


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def cloth_base(datasets: Path) -> ClothBase:
    root = find_dataset(datasets, "cloth", 2)
    if root is None:
        return ClothBase(synthetic_cloth_metadata(0.1))
    md = load_mesh_metadata(root)
    gen = dict((md.generator or {}).get("config", {}))
    defaults = ClothBase(md)
    radius_range = gen.get("obstacle_radius_range")
    values = {"width": float(gen.get("width", defaults.width)), "height": float(gen.get("height", defaults.height)),
              "nodes_u": int(gen.get("nodes_u", defaults.nodes_u)), "nodes_v": int(gen.get("nodes_v", defaults.nodes_v)),
              "obstacle_subdivisions": int(gen.get("obstacle_subdivisions", defaults.obstacle_subdivisions)),
              "obstacle_radius": float(np.mean(radius_range)) if radius_range else defaults.obstacle_radius,
              "world_edge_radius": float(md.world_edge_radius or defaults.world_edge_radius)}
    split = open_mesh_split(root, "train", md)
    try:
        traj = split.read_window(0, 0, split.num_frames(0), fields=[md.target.field])
        pos = np.asarray(traj.fields[md.target.field], dtype=np.float64)               # (T, N, 3)
        normal = np.asarray(traj.node_type).reshape(-1) == int(NodeType.NORMAL)
        step = np.diff(pos[:, normal], axis=0)                                            # (T-1, Nn, 3)
        values["velocity_rms"] = _rms(step)
        values["acceleration_rms"] = _rms(np.diff(step, axis=0))
        nodes = [split.num_nodes(i) for i in range(len(split))]
    finally:
        split.close()
    source = (f"{root.relative_to(REPO) if root.is_relative_to(REPO) else root}: generator config, world_edge_radius, "
              f"per-step displacements of trajectory 0 (train trajectories have {min(nodes)}-{max(nodes)} nodes)")
    return ClothBase(md, source=source, **values)


def flow_base(datasets: Path) -> FlowBase:
    root = find_dataset(datasets, "flow", 1)
    if root is None:
        return FlowBase(synthetic_flow_metadata())
    md = load_mesh_metadata(root)
    gen = dict((md.generator or {}).get("config", {}))
    defaults = FlowBase(md)
    split = open_mesh_split(root, "train", md)
    try:
        nodes = [split.num_nodes(i) for i in range(len(split))]
        target = md.target.field
        outputs = [f for f in md.outputs if f != target]
        traj = split.read_window(0, 0, split.num_frames(0), fields=[target, *outputs])
        velocity = np.asarray(traj.fields[target], dtype=np.float64)                     # (T, N, F)
        values = {"velocity_rms": _rms(velocity), "change_rms": _rms(np.diff(velocity, axis=0))}
        if outputs:
            pressure = np.asarray(traj.fields[outputs[0]], dtype=np.float64)
            values.update(pressure_mean=float(pressure.mean()), pressure_std=float(pressure.std()))
    finally:
        split.close()
    source = (f"{root.relative_to(REPO) if root.is_relative_to(REPO) else root}: mean nodes of the train split "
              f"({min(nodes)}-{max(nodes)}), field statistics of trajectory 0")
    return FlowBase(md, length=float(gen.get("channel_length", defaults.length)),
                    height=float(gen.get("channel_height", defaults.height)), nodes=round(float(np.mean(nodes))),
                    source=source, **values)


def domain_base(domain: str, datasets: Path) -> ClothBase | FlowBase:
    return cloth_base(datasets) if domain == "cloth" else flow_base(datasets)


# =============================================================================================
# configurations and synthetic states
# =============================================================================================
@dataclass(frozen=True)
class Case:
    """One measured configuration (JSON-able: the memory subprocess rebuilds it from this)."""
    domain: str                 # cloth | flow
    scale: float                # about this many times the default nodes, same physical size
    batch: int                  # meshes per step
    world_edges: bool           # MeshConfig.world_edges (cloth only)
    model: dict = field(default_factory=lambda: dataclasses.asdict(ModelConfig()))
    mesh: dict = field(default_factory=dict)   # other MeshConfig overrides (a preset's)
    model_label: str = "default"

    @property
    def label(self) -> str:
        parts = [f"{self.scale:g}x", f"{self.model_label} model"]
        if self.domain == "cloth":
            parts.append("world edges" if self.world_edges else "no world edges")
        parts.append(f"batch {self.batch}")
        return ", ".join(parts)


def preset_models(domain: str) -> tuple[str, dict, dict] | None:
    """``(label, model, mesh)`` of the shipped preset ``gns/configs/<domain>.yaml``, if there is one."""
    path = PRESETS_DIR / f"{domain}.yaml"
    if not path.exists():
        return None
    config = load_config(path)
    model = dataclasses.asdict(config.model)
    mesh = {k: v for k, v in dataclasses.asdict(config.mesh).items() if v != getattr(MeshConfig(), k)}
    label = (f"{path.name} (latent {config.model.latent_size}, {config.model.message_passing_steps} MP, "
             f"{config.model.hidden_layers} hidden)")
    return label, model, mesh


def cases_for(domain: str, scales: list[float]) -> list[Case]:
    """Per scale: the default model (cloth: with and without world edges), batch 2 at scale 1, the preset's model."""
    preset = preset_models(domain)
    cases = []
    for scale in scales:
        worlds = (True, False) if domain == "cloth" else (True,)
        cases += [Case(domain, scale, 1, w) for w in worlds]
        if scale == 1:
            cases.append(Case(domain, scale, 2, True))
        if preset is not None:
            label, model, mesh = preset
            if model != dataclasses.asdict(ModelConfig()) or mesh:
                cases.append(Case(domain, scale, 1, bool(mesh.get("world_edges", True)), model, mesh, label))
    return cases


def _node_factor(scale: float, quick: bool) -> float:
    return scale * (QUICK_NODES if quick else 1.0)


def icosphere(subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    from gns.solvers.cloth import icosphere as make  # numpy only; Taichi is imported lazily there
    return make(subdivisions)


@dataclass
class Built:
    """A configuration made concrete: the simulator, its inputs and what they hold."""
    simulator: MeshSimulator
    train_state: MeshState       # window + 1 frames of every predicted field
    rollout_state: MeshState     # the first ``window`` frames
    info: dict


def cloth_state(base: ClothBase, factor: float, batch: int, seed: int, radius0: float,
                history: int = 1) -> tuple[MeshState, dict]:
    """``batch`` rippled flags with their obstacle; ``world_pos`` frames ``t-history, ..., t, t+1``.

    ``radius0`` is the world-edge radius at the default size; it is scaled with the mesh edge length."""
    nu = max(3, round(base.nodes_u * math.sqrt(factor)))
    nv = max(3, round(base.nodes_v * math.sqrt(factor)))
    vertices, cells = make_rectangle_mesh(base.width, base.height, nu - 1, nv - 1)
    spacing = min(base.width / (nu - 1), base.height / (nv - 1))
    ratio = spacing / base.spacing                     # edge length relative to the default's
    radius = radius0 * ratio
    subdivisions = base.obstacle_subdivisions if factor >= 0.5 else 0   # --quick: a 12-node obstacle
    sphere, sphere_cells = icosphere(subdivisions)
    sheet_n = vertices.shape[0]
    u, v = vertices[:, 0].astype(np.float64), vertices[:, 1].astype(np.float64)
    z = RIPPLE * np.sin(2 * np.pi * u / (base.width / 3)) * np.cos(np.pi * v / base.height)
    sheet = np.stack([u, v, z], axis=1)                                                  # (Ns, 3)
    obstacle = _place_obstacle(sheet, base.obstacle_radius * sphere, clearance=0.5 * radius,
                               over=(base.width / 2, base.height / 2))                   # (No, 3)
    world = np.concatenate([sheet, obstacle])                                            # (N, 3) frame t
    mesh_pos = np.concatenate([vertices, base.obstacle_radius * sphere[:, :2]]).astype(np.float32)
    all_cells = np.concatenate([cells, sphere_cells.astype(np.int64) + sheet_n])
    node_type = np.full(world.shape[0], int(NodeType.NORMAL), dtype=np.int64)
    node_type[:sheet_n][u == 0.0] = int(NodeType.HANDLE)                                # the pole column
    node_type[sheet_n:] = int(NodeType.OBSTACLE)
    moving = node_type == int(NodeType.NORMAL)
    n = world.shape[0]
    edges = edges_from_cells(torch.from_numpy(all_cells), n)
    copies = []
    for b in range(batch):
        rng = np.random.default_rng(seed + b)
        vel = rng.normal(0.0, base.velocity_rms / math.sqrt(3), (n, 3)) * moving[:, None]
        acc = rng.normal(0.0, base.acceleration_rms / math.sqrt(3), (n, 3)) * moving[:, None]
        past = [world - j * vel for j in range(history, 0, -1)]
        copies.append(np.stack([*past, world, world + vel + acc], axis=1))               # (N, history + 2, 3)
    fields = {base.metadata.target.field: copies}
    for name in base.metadata.inputs:  # exogenous inputs (the cloth set's wind): a steady 5 m/s along +x
        wind = np.zeros((n, history + 2, base.metadata.fields[name].dim))
        wind[..., 0] = 5.0
        fields[name] = [wind] * batch
    state = _batched(mesh_pos, node_type, edges, fields)
    info = {"grid": f"{nu} x {nv}", "sheet_nodes": sheet_n, "obstacle_nodes": int(sphere.shape[0]),
            "mesh_edge_length": spacing, "world_edge_radius": radius, "edge_length_ratio": ratio}
    return state, info


def _place_obstacle(sheet: np.ndarray, sphere: np.ndarray, clearance: float, over: tuple[float, float]) -> np.ndarray:
    """The sphere's vertices ``sphere`` ``(No, 3)`` (centred at 0) moved over the point ``over`` of the sheet,
    as low as leaves ``clearance`` between its nearest vertex and the nearest sheet node (so that
    world edges join them, as in contact)."""
    center = np.array([over[0], over[1], sheet[:, 2].max() + np.abs(sphere[:, 2]).max() + clearance])
    for _ in range(20):           # lower it until the nearest pair is ``clearance`` apart
        gap = np.linalg.norm((center + sphere)[:, None] - sheet[None], axis=-1).min()
        if abs(gap - clearance) < 1e-3 * clearance:
            break
        center[2] -= gap - clearance
    return center + sphere


def flow_state(base: FlowBase, factor: float, batch: int, seed: int, history: int = 1) -> tuple[MeshState, dict]:
    """``batch`` channels; target field frames ``t-history+1, ..., t, t+1`` and the output fields at the same
    frames (the past frames repeat frame ``t``)."""
    target = base.metadata.target.field
    outputs = [f for f in base.metadata.outputs if f != target]
    dims = {name: base.metadata.fields[name].dim for name in [target, *outputs]}
    nodes = max(12, base.nodes * factor)
    aspect = base.length / base.height
    rows = max(2, round(math.sqrt(nodes / aspect)))                       # nodes across the channel
    cols = max(2, round(nodes / rows))
    vertices, cells = make_rectangle_mesh(base.length, base.height, cols - 1, rows - 1)
    i = np.tile(np.arange(cols), rows)                                    # column of node j * cols + i
    j = np.repeat(np.arange(rows), cols)
    node_type = np.full(vertices.shape[0], int(NodeType.NORMAL), dtype=np.int64)
    node_type[i == 0] = int(NodeType.INFLOW)
    node_type[i == cols - 1] = int(NodeType.OUTFLOW)
    node_type[(j == 0) | (j == rows - 1)] = int(NodeType.WALL_BOUNDARY)   # walls win at the corners
    x, y = vertices[:, 0].astype(np.float64), vertices[:, 1].astype(np.float64)
    profile = 4 * y * (base.height - y) / base.height ** 2                # 0 on the walls, 1 on the centre line
    peak = base.velocity_rms / math.sqrt(8 / 15)                          # RMS of a parabola = peak sqrt(8/15)
    free = (node_type != int(NodeType.WALL_BOUNDARY)) & (node_type != int(NodeType.INFLOW))
    n = vertices.shape[0]
    edges = edges_from_cells(torch.from_numpy(cells), n)
    fields: dict[str, list[np.ndarray]] = {name: [] for name in dims}
    for b in range(batch):
        rng = np.random.default_rng(seed + b)
        now = np.zeros((n, dims[target]))
        now[:, 0] = peak * profile
        now += rng.normal(0.0, 0.05 * peak, now.shape) * free[:, None]
        nxt = now + rng.normal(0.0, base.change_rms, now.shape) * free[:, None]
        fields[target].append(np.stack([now] * history + [nxt], axis=1))                 # (N, history + 1, F)
        for name in outputs:
            drop = base.pressure_mean + base.pressure_std * math.sqrt(3) * (1 - 2 * x / base.length)
            frames = [drop[:, None] + rng.normal(0.0, 0.1 * base.pressure_std, (n, dims[name]))
                      for _ in range(history + 1)]
            fields[name].append(np.stack(frames, axis=1))
    state = _batched(vertices, node_type, edges, fields)
    info = {"grid": f"{cols} x {rows}", "mesh_edge_length": min(base.length / (cols - 1), base.height / (rows - 1))}
    return state, info


def _batched(mesh_pos: np.ndarray, node_type: np.ndarray, edges: Tensor,
             fields: dict[str, list[np.ndarray]]) -> MeshState:
    """One :class:`MeshState` of ``len(copies)`` copies of a mesh, each with its own field values."""
    batch = len(next(iter(fields.values())))
    n = mesh_pos.shape[0]
    return MeshState(torch.from_numpy(np.tile(mesh_pos, (batch, 1))).float(),
                     torch.from_numpy(np.tile(node_type, batch)),
                     torch.cat([edges + b * n for b in range(batch)], dim=1),
                     {name: torch.from_numpy(np.concatenate(copies)).float() for name, copies in fields.items()},
                     torch.full((batch,), n, dtype=torch.long))


def build(case: Case, base: ClothBase | FlowBase, device: torch.device, quick: bool, seed: int = 0) -> Built:
    """The simulator (weights from ``seed``) and synthetic states of one configuration."""
    factor = _node_factor(case.scale, quick)
    if case.domain == "cloth":
        state, info = cloth_state(base, factor, case.batch, seed,
                                  float(case.mesh.get("world_edge_radius") or base.world_edge_radius),
                                  int(case.mesh.get("history", 1)))
        mesh = MeshConfig(**{**case.mesh, "world_edges": case.world_edges,
                             "world_edge_radius": info["world_edge_radius"]})
        metadata = dataclasses.replace(base.metadata, world_edge_radius=info["world_edge_radius"])
    else:
        state, info = flow_state(base, factor, case.batch, seed, int(case.mesh.get("history", 1)))
        mesh, metadata = MeshConfig(**case.mesh), base.metadata
    torch.manual_seed(seed)
    sim = MeshSimulator(ModelConfig(**case.model), mesh, metadata).to(device)
    state = state.to(device)
    rollout_state = state.window(0, sim.window)
    with torch.no_grad():
        graph = sim.eval().build_graph(rollout_state)
    nodes = int(state.n_node.sum())
    world = 0
    if "world" in graph.edge_sets:
        world_set = graph.edge_sets["world"]
        obstacle = state.node_type == int(NodeType.OBSTACLE)
        world = int(world_set.senders.numel())
        info["obstacle_sheet_world_edges"] = int((obstacle[world_set.senders] != obstacle[world_set.receivers]).sum())
    info.update(nodes=nodes, mesh_edges=int(state.mesh_edges.shape[1]), world_edges=world,
                world_edges_per_node=world / nodes, mesh_edges_per_node=state.mesh_edges.shape[1] / nodes,
                parameters=sum(p.numel() for p in sim.parameters()))
    return Built(sim, state, rollout_state, info)


# =============================================================================================
# the timed steps
# =============================================================================================
class MeshTrainer:
    """One training step as ``gns.train.loop.Trainer`` takes it with ``MeshTask`` (one-step loss, clip, Adam)."""

    def __init__(self, sim: MeshSimulator, state: MeshState, device: torch.device) -> None:
        self.sim, self.state = sim, state
        self.noise_std, self.gamma = noise_settings(sim.metadata, None, None)
        self.opt = torch.optim.Adam(sim.parameters(), lr=LR)
        self.gen = torch.Generator(device=device).manual_seed(0)

    def step(self) -> float:
        self.sim.train()
        loss = unrolled_loss(self.sim, self.state, 0, self.noise_std, self.gamma, self.gen)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.sim.parameters(), GRAD_CLIP)
        self.opt.step()
        return float(loss.detach())  # waits for the device, like the loop's logging


# =============================================================================================
# breakdown of one training step
# =============================================================================================
BREAKDOWN_ORDER = ("world-edge search", "features", "normalizers", "graph building", "network forward",
                   "noise, target, loss", "backward", "optimizer", "step")   # step: the sum of the phases


@contextlib.contextmanager
def _timed_phases(sim: MeshSimulator, timer: _Timer):
    """Time the world-edge search and the normalizers inside ``build_graph`` (patched, then restored)."""
    original = simulator_module.world_edges

    def world_edges(*args, **kwargs):
        with timer("world-edge search"):
            return original(*args, **kwargs)

    def timed(normalizer):
        def normalize(x: Tensor, accumulate: bool = False) -> Tensor:
            with timer("normalizers"):
                return type(normalizer).normalize(normalizer, x, accumulate)
        return normalize

    normalizers = [sim.node_normalizer, *sim.edge_normalizers.values()]
    simulator_module.world_edges = world_edges
    for normalizer in normalizers:
        normalizer.normalize = timed(normalizer)   # instance attribute: found before the class's method
    try:
        yield
    finally:
        simulator_module.world_edges = original
        for normalizer in normalizers:
            del normalizer.normalize


def breakdown(sim: MeshSimulator, state: MeshState, device: torch.device, steps: int) -> dict[str, float]:
    """Seconds per phase of one training step (mean over ``steps``), the phases of ``unrolled_loss(...,
    unroll=0)`` written out; the simulator is warm (the timed steps ran before)."""
    timer = _Timer(device)
    noise_std, gamma = noise_settings(sim.metadata, None, None)
    opt = torch.optim.Adam(sim.parameters(), lr=LR)
    gen = torch.Generator(device=device).manual_seed(1)
    k, target = sim.window, sim.target_field
    sim.train()
    with _timed_phases(sim, timer):
        for _ in range(steps):
            with timer("step"):
                with timer("noise, target, loss"):
                    simulated, noisy = sim.is_simulated(state.node_type), sim.is_noisy(state.node_type)
                    current = state.fields[target][:, k - 1]
                    noise = torch.randn(current.shape, generator=gen, device=current.device) * noise_std
                    noise = noise * noisy[:, None].to(noise.dtype)
                    history = state.fields[target][:, :k].clone()
                    history[:, -1] += noise
                    step_state = state.with_fields({target: history, **{name: state.fields[name][:, :k]
                                                                        for name in sim.input_fields}})
                with timer("graph building"):
                    graph = sim.build_graph(step_state)
                with timer("network forward"):
                    predicted = sim.network(graph)
                with timer("noise, target, loss"):
                    nxt = {name: state.fields[name][:, k] for name in sim.predicted_fields}
                    nxt[target] = nxt[target] + (1.0 - gamma) * noise
                    loss = masked_mse(predicted, sim.target(step_state, nxt, simulated), simulated)
                with timer("backward"):
                    loss.backward()
                with timer("optimizer"):                     # clip + Adam + zero_grad
                    torch.nn.utils.clip_grad_norm_(sim.parameters(), GRAD_CLIP)
                    opt.step()
                    opt.zero_grad(set_to_none=True)
    out = {name: timer.totals.get(name, 0.0) / steps for name in BREAKDOWN_ORDER if name != "features"}
    out["features"] = out["graph building"] - out["world-edge search"] - out["normalizers"]
    return {name: out[name] for name in BREAKDOWN_ORDER}


def data_load_seconds(sim: MeshSimulator, datasets: Path, domain: str, batch: int, calls: int = 5) -> dict | None:
    """Mean seconds for :class:`~gns.train.meshes.MeshWindowSampler` to read one training window of
    ``batch`` meshes from the dataset (after one untimed read that opens the file), or None without it."""
    root = find_dataset(datasets, domain, sim.order)
    if root is None:
        return None
    split = open_mesh_split(root, "train", load_mesh_metadata(root))
    try:
        sampler = MeshWindows.for_simulator(sim, split)
        gen = torch.Generator().manual_seed(0)
        window = sim.window + 1
        for i in range(len(split)):
            sampler.static(i)   # mesh edges are computed once per trajectory and cached
        sampler.load(sampler.sample_items(batch, window, gen), window)
        t0 = time.perf_counter()
        for _ in range(calls):
            sampler.load(sampler.sample_items(batch, window, gen), window)
        return {"seconds": (time.perf_counter() - t0) / calls, "dataset": root.name}
    finally:
        split.close()


# =============================================================================================
# peak memory, one fresh subprocess per configuration and mode
# =============================================================================================
def memory_child(case: Case, mode: str, datasets: Path, quick: bool, device: torch.device) -> dict:
    """In a fresh process: peak memory of the first ``mode`` step of ``case`` above the memory just before it
    (see ``throughput.memory_child`` for why ``VmHWM`` is reset rather than ``ru_maxrss`` read)."""
    built = build(case, domain_base(case.domain, datasets), device, quick)
    if mode == "train":
        work = MeshTrainer(built.simulator, built.train_state, device).step
    else:
        work = rollout_step(built.simulator, built.rollout_state)
    return {"mode": mode, **peak_memory(work, device)}


def measure_memory(case: Case, args: argparse.Namespace) -> dict[str, dict]:
    out = {}
    for mode in ("train", "rollout"):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_memory-child", json.dumps(dataclasses.asdict(case)),
               mode, "--device", args.device, "--datasets", str(args.datasets)]
        cmd += ["--quick"] if args.quick else []
        cmd += ["--threads", str(args.threads)] if args.threads else []
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            out[mode] = {"mode": mode, "error": res.stderr.strip()[-500:]}
        else:
            out[mode] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


# =============================================================================================
# one domain
# =============================================================================================
def run_domain(domain: str, args: argparse.Namespace, device: torch.device) -> dict:
    base = domain_base(domain, args.datasets)
    cases = cases_for(domain, args.scales)
    result: dict = {"base": {k: v for k, v in dataclasses.asdict(base).items() if k != "metadata"},
                    "metadata": base.metadata.to_dict() if base.metadata.generator is None else
                    {k: v for k, v in base.metadata.to_dict().items() if k != "generator"},
                    "cases": []}
    preset = preset_models(domain)
    path = PRESETS_DIR / f"{domain}.yaml"
    if preset is None:
        result["preset"] = f"no {path.relative_to(REPO) if path.is_relative_to(REPO) else path}: default model only"
    elif not any(c.model_label == preset[0] for c in cases):
        result["preset"] = f"{path.name} uses the default model and mesh settings"
    else:
        result["preset"] = f"{path.name}: rows '{preset[0]}' (mesh settings {preset[2] or 'default'})"
    print(f"## {domain}\nsizes from {base.source}; preset: {result['preset']}")
    # --quick: the first configuration of the first domain only (each cell costs a fresh process)
    memory_left = (domain == args.domains[0]) if args.quick else len(cases)
    for scale in args.scales:
        group = [c for c in cases if c.scale == scale]
        built = {c.label: build(c, base, device, args.quick) for c in group}
        trainers = {label: MeshTrainer(b.simulator, b.train_state, device) for label, b in built.items()}
        fns = {}
        for label in built:
            fns[f"train/{label}"] = trainers[label].step
            fns[f"rollout/{label}"] = rollout_step(built[label].simulator, built[label].rollout_state)
        repeats = args.repeats or (2 if scale >= 5 else 3)
        log(f"{domain} {scale:g}x: timing {len(fns)} functions, {repeats} interleaved repeats")
        timing = interleaved(fns, device, repeats, args.target_seconds, args.max_background, args.retries,
                             args.retry_budget)
        for case in group:
            b = built[case.label]
            nodes = b.info["nodes"]
            train, roll = timing[f"train/{case.label}"], timing[f"rollout/{case.label}"]
            row = {"label": case.label, "case": dataclasses.asdict(case), **b.info, "repeats": repeats,
                   "timing": {"train": train, "rollout": roll},
                   "train_steps_per_s": 1 / train["median_s"], "train_node_steps_per_s": nodes / train["median_s"],
                   "rollout_steps_per_s": 1 / roll["median_s"], "rollout_node_steps_per_s": nodes / roll["median_s"]}
            loads = train["background_cores"] + roll["background_cores"]
            row["background_cores"] = {"median": statistics.median(loads), "max": max(loads)}
            if not args.no_breakdown:
                log(f"{domain}: breakdown of {case.label}")
                bd, load = quietest(lambda: breakdown(b.simulator, b.train_state, device, args.breakdown_steps),
                                    args.max_background, args.retries)
                row["breakdown_s"], row["breakdown_background_cores"] = bd, load
                if case.batch == 1 and scale == 1 and case.model_label == "default" and case.world_edges:
                    row["data_load"] = data_load_seconds(b.simulator, args.datasets, domain, case.batch)
            if not args.no_memory and memory_left > 0:
                log(f"{domain}: peak memory of {case.label} (fresh processes)")
                row["memory"] = measure_memory(case, args)
                memory_left -= 1
            result["cases"].append(row)
        del built, trainers, fns
    print_domain(domain, result, device)
    return result


def _memory_cell(row: dict, device: torch.device) -> str:
    if "memory" not in row:
        return "-"
    key = "cuda_peak_delta_mib" if device.type == "cuda" else "peak_rss_delta_mib"
    cell = [f"{row['memory'][m][key]:.0f}" if key in row["memory"][m] else "error" for m in ("train", "rollout")]
    return " / ".join(cell)


def print_domain(domain: str, result: dict, device: torch.device) -> None:
    rows = []
    for r in result["cases"]:
        world = (f"{r['world_edges']:,} ({r['world_edges_per_node']:.1f}/node)" if r["world_edges"]
                 else "0" if "world_edge_radius" in r else "-")
        rows.append([r["label"], f"{r['nodes']:,}", f"{r['mesh_edges']:,}", world,
                     f"{r['train_steps_per_s']:.3g}", f"{r['train_node_steps_per_s']:,.0f}",
                     f"{r['rollout_steps_per_s']:.3g}", f"{r['rollout_node_steps_per_s']:,.0f}",
                     _memory_cell(r, device),
                     f"{r['background_cores']['median']:.2f} ({r['background_cores']['max']:.2f})"])
    label = "CUDA max_memory_allocated" if device.type == "cuda" else "peak RSS"
    print(f"\nmedian of interleaved repeats after a warm-up call; nodes and edges per step (the whole batch); "
          f"peak memory above the pre-step baseline ({label}, a fresh process per cell); background: other "
          f"processes' CPU load in cores, median (max) over the kept samples")
    print(table(["config", "nodes", "mesh edges", "world edges", "train steps/s", "train node-steps/s",
                 "rollout steps/s", "rollout node-steps/s", "peak memory train / rollout (MiB)",
                 "background load (cores)"], rows))
    cloth = domain == "cloth"
    geometry = []
    for r in result["cases"]:
        row = [r["label"], r["grid"], f"{r['mesh_edge_length'] * 1e3:.1f}", f"{r['mesh_edges_per_node']:.2f}"]
        if cloth:
            row += [f"{r['world_edge_radius'] * 1e3:.1f}", f"{r['world_edges_per_node']:.2f}",
                    f"{r.get('obstacle_sheet_world_edges', 0):,}" if r["world_edges"] else "-"]
        geometry.append(row + [f"{r['parameters']:,}"])
    headers = ["config", "grid (nodes)", "mesh edge (mm)", "mesh edges/node"]
    if cloth:
        headers += ["world radius (mm)", "world edges/node", "obstacle-sheet world edges"]
        print("\ncloth meshes: the world-edge radius scales with the mesh edge length (same sheet size); the "
              "obstacle hangs half a radius above the sheet")
    else:
        print("\nflow meshes (same channel size)")
    print(table(headers + ["parameters"], geometry))
    with_bd = [r for r in result["cases"] if "breakdown_s" in r]
    if with_bd:
        brows = []
        for r in with_bd:
            bd = r["breakdown_s"]
            total = bd["step"]
            brows.append([r["label"]] + [f"{bd[k] * 1e3:.1f}" for k in BREAKDOWN_ORDER]
                         + [f"{1e3 * r['timing']['train']['median_s']:.1f}", f"{100 * bd['graph building'] / total:.0f}%",
                            f"{r['breakdown_background_cores']:.2f}"])
        print("\nbreakdown of one training step, ms (mean of the steps, synchronized timers): 'graph building' = "
              "world-edge search + edge/node features + the online normalizers (accumulate + normalize); "
              "'optimizer' = clip + Adam + zero_grad; 'step' = the sum of the phases, beside the timed train step")
        print(table(["config", *BREAKDOWN_ORDER, "timed train step", "graph share", "background"], brows))
        for r in with_bd:
            if r.get("data_load"):
                print(f"reading one window with MeshWindowSampler from datasets/{r['data_load']['dataset']} "
                      f"(batch {r['case']['batch']}): {r['data_load']['seconds'] * 1e3:.1f} ms (not in the step above)")
    print()


# =============================================================================================
# command line
# =============================================================================================
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = table_parser(__doc__)
    p.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=DOMAINS, help="default: cloth flow")
    p.add_argument("--scales", type=float, nargs="+", default=None,
                   help="node-count multipliers of the default meshes, same physical size (default: 1 10)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats, after one warm-up call; the median is reported (default: 3, 2 at scales >= 5)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: meshes of a tenth of the default nodes, scale 1, 1 repeat, short timings, "
                        "peak memory of the first configuration only")
    p.add_argument("--datasets", type=Path, default=REPO / "datasets",
                   help="where to look for cloth/ and flow2d/ to take the default sizes from (default: datasets/)")
    add_retry_options(p, "domain and scale")
    p.add_argument("--breakdown-steps", type=int, default=3, help="steps averaged in the breakdown (default: 3)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--no-breakdown", action="store_true", help="skip the training-step breakdown")
    p.add_argument("--_memory-child", nargs=2, metavar=("CASE_JSON", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.scales is None:
        args.scales = [1.0] if args.quick else [1.0, 10.0]
    if args.quick:
        args.repeats, args.target_seconds, args.breakdown_steps = 1, 0.02, 1
        args.retries, args.retry_budget = min(args.retries, 1), min(args.retry_budget, 2.0)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = start_run(args)
    if args._memory_child:
        case_json, mode = args._memory_child
        print(json.dumps(memory_child(Case(**json.loads(case_json)), mode, args.datasets, args.quick, device)))
        return {}

    t_start = time.perf_counter()
    results: dict = {"machine": machine(device), "args": args_record(args), "domains": {}}
    m = results["machine"]
    mc = ModelConfig()
    print(f"# gns mesh throughput: default model latent {mc.latent_size}, {mc.message_passing_steps} message passing "
          f"steps, {mc.hidden_layers} hidden layers; device {device}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, {m.get('cpu', '?')} ({m['cpu_count']} cores), load average "
          f"{loadavg_text(m.get('loadavg_start'))}{', QUICK (tiny meshes, 1 repeat: not for figures)' if args.quick else ''}\n")
    for domain in args.domains:
        results["domains"][domain] = run_domain(domain, args, device)
    kept = [x for d in results["domains"].values() for r in d["cases"]
            for t in r["timing"].values() for x in t["background_cores"]]
    if BACKGROUND.available and kept:
        print(f"other processes' CPU load during the kept samples: median {statistics.median(kept):.2f}, max "
              f"{max(kept):.2f} cores (retry threshold {args.max_background})")
    return finish_run(results, t_start, args.json)


if __name__ == "__main__":
    main()
