"""Training and rollout throughput of the default GNS model, side by side with plain alternatives.

What it measures, for the default model (:class:`gns.config.ModelConfig`: latent 128, 10
message-passing steps, 2 hidden layers) on synthetic 2-D water-like states of ``N`` particles:

* **train**: one training step = ``unrolled_loss(..., unroll=0)`` (noise, graph, network, loss)
  + backward + gradient clipping + Adam step, one graph of ``N`` particles per batch, as the
  training loop does it (``gns/train/loop.py``).
* **rollout**: ``simulator.predict_next_position`` under ``torch.inference_mode``, graph building
  included, reported as particle-steps per second.
* **network**: forward (and forward + backward) of the network alone on one prebuilt graph, which
  isolates the processor from the graph building.
* **peak memory** of each configuration in a fresh subprocess (CPU: peak RSS above the RSS before
  the step, see :func:`memory_child`; CUDA: ``torch.cuda.max_memory_allocated``).
* a **breakdown** of one training step (data loading, noise, radius graph, features, network
  forward, loss, backward, optimizer) and the top operators of a ``torch.profiler`` trace.

Variants, all with the same weights, fed the same states:

* ``ours``: :class:`gns.nn.GraphNetBlock` (the edge MLP's first layer is split so the sender and
  receiver projections are computed per node and gathered).
* ``concat``: the same blocks with :meth:`gns.nn.EdgeBlock.forward_concat` (gather, concatenate
  ``(E, 3L)``, MLP).
* ``pyg``: a geoelements/gns-style processor written here with
  ``torch_geometric.nn.MessagePassing`` (edge MLP on ``cat([x_i, x_j, edge_attr])``, ``aggr="add"``,
  node MLP on ``cat([x, aggr])``, residuals on nodes and edges; same MLP/LayerNorm structure).

Timings of the variants are interleaved within each repeat and the median over repeats is
reported, so load from other processes hits every variant alike. ``--baseline-ref GIT_REF``
additionally runs the ``ours`` measurement on a ``git worktree`` of that ref, in a subprocess.

Examples::

    python benchmarks/throughput.py                          # 1k and 10k particles, CPU
    python benchmarks/throughput.py --device cuda --json gpu.json
    python benchmarks/throughput.py --quick                  # smoke test, a few seconds
    python benchmarks/throughput.py --baseline-ref v0.1.0    # also time the released version
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path and os.environ.get("GNS_BENCH_NO_REPO_PATH") != "1":
    sys.path.insert(0, str(REPO))

from gns.config import ModelConfig  # noqa: E402
from gns.data import DatasetMetadata  # noqa: E402
from gns.particles.simulator import ParticleSimulator  # noqa: E402
from gns.train.losses import unrolled_loss  # noqa: E402

try:  # this script also times older releases (--baseline-ref), whose names differ
    from gns.particles.state import ParticleState as ParticleBatch  # noqa: E402
    from gns.particles.windows import ParticleWindows as WindowSampler  # noqa: E402
except ImportError:  # gns 0.1
    from gns.particles.batch import ParticleBatch  # noqa: E402
    from gns.particles.windows import WindowSampler  # noqa: E402

VARIANTS = ("ours", "concat", "pyg")
DATASET = REPO / "datasets" / "water2d"
# datasets/water2d/metadata.json statistics, used when the dataset is not there.
WATER2D_STATS = {
    "vel_mean": [7.290426971487112e-06, -0.000717895098361767],
    "vel_std": [0.0012807884891194417, 0.00160187626851158],
    "acc_mean": [-3.815320417631303e-08, -8.156308651223822e-08],
    "acc_std": [9.373955894065917e-05, 0.00010322567366187937],
    "gravity": [0.0, -6.13125e-05],
}
RADIUS = 0.025          # water2d default_connectivity_radius
BOX_LO = 0.1            # water2d bounds start at 0.1
WATER_TYPE = 5          # DeepMind's water particle type
GRAD_CLIP = 1.0         # TrainConfig.grad_clip
LR = 1e-4               # TrainConfig.lr_init


# =============================================================================================
# synthetic data
# =============================================================================================
def box_side(n: int, degree: float) -> float:
    """Side of the square box in which ``n`` uniform particles have ``degree`` neighbours each
    (away from the walls): ``n / side^2 * pi R^2 = degree``."""
    return math.sqrt(n * math.pi * RADIUS ** 2 / degree)


def synthetic_metadata(n: int, degree: float) -> DatasetMetadata:
    """water2d-like metadata (its radius and statistics) with the box scaled to ``n`` particles."""
    stats = dict(WATER2D_STATS)
    path = DATASET / "metadata.json"
    if path.exists():
        saved = json.loads(path.read_text())
        stats.update({k: saved[k] for k in stats if k in saved})
    side = box_side(n, degree)
    return DatasetMetadata(dim=2, dt=0.0025, bounds=[[BOX_LO, BOX_LO + side]] * 2, sequence_length=400,
                           default_connectivity_radius=RADIUS, periodic_boundary_conditions=[False, False],
                           kinematic_particle_types=[], num_particle_types=9, **stats)


def synthetic_batch(n: int, metadata: DatasetMetadata, frames: int, seed: int = 0) -> ParticleBatch:
    """One system of ``n`` particles: uniform last-but-one positions, velocities and accelerations
    drawn from the metadata statistics, ``frames`` frames (oldest first), positions ``(N, frames, 2)``."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = metadata.bounds[0]
    vel_mean, vel_std = torch.tensor(metadata.vel_mean), torch.tensor(metadata.vel_std)
    acc_mean, acc_std = torch.tensor(metadata.acc_mean), torch.tensor(metadata.acc_std)
    anchor = lo + (hi - lo) * torch.rand((n, 2), generator=g, dtype=torch.float64)       # frame frames-2
    velocity = vel_mean + vel_std * torch.randn((n, 2), generator=g)                     # per step
    frames_out = [anchor]
    v = velocity.double()
    for _ in range(frames - 2):  # backwards in time
        frames_out.insert(0, frames_out[0] - v)
        v = v - (acc_mean + acc_std * torch.randn((n, 2), generator=g)).double()
    v = velocity.double() + (acc_mean + acc_std * torch.randn((n, 2), generator=g)).double()
    frames_out.append(anchor + v)
    position = torch.stack(frames_out, dim=1).float()                                    # (N, frames, 2)
    return ParticleBatch(position, torch.full((n,), WATER_TYPE, dtype=torch.long), torch.tensor([n]))


# =============================================================================================
# the plain alternative: a geoelements/gns-style processor on torch_geometric.nn.MessagePassing
# =============================================================================================
def _pyg_block_class():
    from torch_geometric.nn import MessagePassing

    class PygInteractionNetwork(MessagePassing):
        """geoelements/gns ``InteractionNetwork``: edge MLP on ``cat([x_i, x_j, e])``, sum, node MLP on
        ``cat([x, aggr])``, residual on nodes *and* edges (the edge residual uses the updated edge
        latents, as in GNS; geoelements' own ``update`` returns the input edge features)."""

        def __init__(self, latent: int, hidden: int, hidden_layers: int) -> None:
            super().__init__(aggr="add")
            from gns.nn.mlp import build_mlp
            self.edge_fn = build_mlp(3 * latent, hidden, latent, hidden_layers)
            self.node_fn = build_mlp(2 * latent, hidden, latent, hidden_layers)
            self._edge_update: Tensor | None = None

        def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> tuple[Tensor, Tensor]:
            aggr = self.propagate(edge_index, x=x, edge_attr=edge_attr)          # (N, L)
            edge_update, self._edge_update = self._edge_update, None
            return x + self.node_fn(torch.cat([x, aggr], dim=-1)), edge_attr + edge_update

        def message(self, x_i: Tensor, x_j: Tensor, edge_attr: Tensor) -> Tensor:
            out = self.edge_fn(torch.cat([x_i, x_j, edge_attr], dim=-1))       # (E, L)
            self._edge_update = out
            return out

    return PygInteractionNetwork


class PygProcessorStep(nn.Module):
    """Adapter giving the PyG block the call signature of :class:`gns.nn.GraphNetBlock`, so it can
    replace the processor of an :class:`~gns.nn.EncodeProcessDecode` (encoder, decoder, features,
    normalization and integration stay identical)."""

    def __init__(self, latent: int, hidden: int, hidden_layers: int, edge_set: str = "neighbors") -> None:
        super().__init__()
        self.edge_set = edge_set
        self.block = _pyg_block_class()(latent, hidden, hidden_layers)

    def forward(self, nodes: Tensor, edges: dict[str, Tensor], connectivity: dict[str, tuple[Tensor, Tensor]]):
        senders, receivers = connectivity[self.edge_set]
        edge_index = torch.stack([senders, receivers])  # (2, E): PyG's source (j) -> target (i)
        nodes, new_edges = self.block(nodes, edge_index, edges[self.edge_set])
        return nodes, {self.edge_set: new_edges}

    @torch.no_grad()
    def copy_from(self, ours) -> None:
        """Take the weights of a :class:`gns.nn.GraphNetBlock` (same function, permuted first layer)."""
        src_edge = ours.edge_blocks[self.edge_set].mlp
        self.block.edge_fn.load_state_dict(src_edge.state_dict())
        w = src_edge[0].weight                       # columns: [e, h_sender, h_receiver]
        L = w.shape[1] // 3
        self.block.edge_fn[0].weight.copy_(torch.cat([w[:, 2 * L:], w[:, L:2 * L], w[:, :L]], dim=1))
        self.block.node_fn.load_state_dict(ours.node_mlp.state_dict())


# =============================================================================================
# experimental variants: candidate changes to gns/nn, patched onto instances here only
# =============================================================================================
def _edge_forward_index_select(self, edges: Tensor, nodes: Tensor, senders: Tensor, receivers: Tensor) -> Tensor:
    """:meth:`gns.nn.EdgeBlock.forward` with ``index_select`` gathers instead of advanced indexing
    (whose backward is a serial ``index_put_(accumulate=True)`` on CPU)."""
    first = self.mlp[0]
    L, H = self.latent_size, first.out_features
    w_edge, w_nodes = first.weight[:, :L], first.weight[:, L:]                      # (H, L), (H, 2L)
    node_proj = nodes @ torch.cat([w_nodes[:, :L], w_nodes[:, L:]], dim=0).T      # (N, 2H)
    x = (torch.addmm(first.bias, edges, w_edge.T) + node_proj[:, :H].index_select(0, senders)
         + node_proj[:, H:].index_select(0, receivers))
    for layer in self.mlp[1:]:
        x = layer(x)
    return x


def _block_forward_segment(self, nodes: Tensor, edges: dict[str, Tensor], connectivity: dict):
    """:meth:`gns.nn.GraphNetBlock.forward` summing with ``torch_scatter.segment_csr`` over receivers
    sorted ascending (as radius_graph returns them; checked)."""
    import torch_scatter
    n = nodes.shape[0]
    updates, aggregates = {}, []
    for name in self.edge_set_names:
        senders, receivers = connectivity[name]
        upd = self.edge_blocks[name](edges[name], nodes, senders, receivers)          # (E, L)
        updates[name] = upd
        crow = torch.zeros(n + 1, dtype=torch.long, device=nodes.device)
        torch.cumsum(torch.bincount(receivers, minlength=n), 0, out=crow[1:])          # (N + 1,)
        aggregates.append(torch_scatter.segment_csr(upd, crow, reduce="sum"))          # (N, L)
    node_update = self.node_mlp(torch.cat([nodes, *aggregates], dim=-1))
    return nodes + node_update, {name: edges[name] + updates[name] for name in self.edge_set_names}


def _has_torch_scatter() -> bool:
    try:
        import torch_scatter  # noqa: F401
    except Exception:
        return False
    return True


EXPERIMENTAL = ("exp-isel", "exp-isel-segcsr")


def make_simulators(metadata: DatasetMetadata, variants: list[str], device: torch.device, seed: int = 0):
    """One simulator per variant, all with the weights of ``ours``."""
    config = ModelConfig()
    torch.manual_seed(seed)
    from gns.train.noise import default_noise_std

    base = ParticleSimulator(config, metadata, default_noise_std(metadata.vel_std)).to(device)
    sims = {}
    for name in variants:
        sim = copy.deepcopy(base)
        if name == "concat":
            for block in sim.network.processor:
                for eb in block.edge_blocks.values():
                    eb.forward = eb.forward_concat  # instance attribute: nn.Module.__call__ uses it
        elif name == "pyg":
            hidden = config.latent_size
            steps = []
            for block in sim.network.processor:
                step = PygProcessorStep(config.latent_size, hidden, config.hidden_layers)
                step.copy_from(block)
                steps.append(step)
            sim.network.processor = nn.ModuleList(steps).to(device)
        elif name in EXPERIMENTAL:
            for block in sim.network.processor:
                for eb in block.edge_blocks.values():
                    eb.forward = types.MethodType(_edge_forward_index_select, eb)
                if name == "exp-isel-segcsr":
                    block.forward = types.MethodType(_block_forward_segment, block)
        elif name != "ours":
            raise ValueError(f"unknown variant {name!r} (known: {VARIANTS})")
        sims[name] = sim
    return sims


def check_equivalence(sims: dict, batch: ParticleBatch, history: int) -> dict[str, float]:
    """Max |output - ours| of every variant on the same window (they share weights)."""
    window = batch.with_position(batch.position[:, :history + 1])
    with torch.inference_mode():
        outs = {name: sim.eval()(window) for name, sim in sims.items()}
    ref = outs.get("ours")
    return {} if ref is None else {name: float((o - ref).abs().max()) for name, o in outs.items() if name != "ours"}


# =============================================================================================
# timing
# =============================================================================================
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Trainer:
    """One training step as ``gns.train.loop.Trainer`` takes it (one-step loss, clip, Adam)."""

    def __init__(self, sim, batch: ParticleBatch, device: torch.device) -> None:
        from gns.train.noise import default_noise_std
        self.sim, self.batch, self.device = sim, batch, device
        self.noise_std = default_noise_std(WATER2D_STATS["vel_std"])
        self.opt = torch.optim.Adam(sim.parameters(), lr=LR)
        self.gen = torch.Generator(device=device).manual_seed(0)

    def step(self) -> float:
        self.sim.train()
        loss = unrolled_loss(self.sim, self.batch, 0, self.noise_std, generator=self.gen)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.sim.parameters(), GRAD_CLIP)
        self.opt.step()
        return float(loss.detach())  # waits for the device, like the loop's logging


def rollout_step(sim, window) -> Callable[[], None]:
    """One rollout step of any domain's simulator (``predict_next``, graph building included), eval mode,
    no autograd."""
    def run() -> None:
        sim.eval()
        with torch.inference_mode():
            sim.predict_next(window)
    return run


def network_step(sim, graph, backward: bool) -> Callable[[], None]:
    def run() -> None:
        sim.train()
        if backward:
            out = sim.network(graph)
            out.square().mean().backward()
            sim.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                sim.network(graph)
    return run


class BackgroundLoad:
    """CPU used by *other* processes while a sample ran, in cores (Linux ``/proc/stat``; else 0).

    On a small machine another process taking one core slows a 2-thread torch step 5-15x (the
    OpenMP threads wait on each other at every parallel region), so samples taken under such load
    are retried (:func:`interleaved`) and the load is reported with every number."""

    def __init__(self) -> None:
        self.available = os.path.exists("/proc/stat")
        self._tick = os.sysconf("SC_CLK_TCK") if self.available else 100

    def _busy_s(self) -> float:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (sum(v[:8]) - v[3] - v[4]) / self._tick           # all but idle and iowait

    @staticmethod
    def _own_s() -> float:
        r, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime

    def start(self) -> tuple[float, float, float]:
        return (self._busy_s() if self.available else 0.0), self._own_s(), time.perf_counter()

    def cores(self, mark: tuple[float, float, float]) -> float:
        if not self.available:
            return 0.0
        busy, own, t0 = mark
        wall = max(time.perf_counter() - t0, 1e-9)
        return max(0.0, (self._busy_s() - busy) - (self._own_s() - own)) / wall


BACKGROUND = BackgroundLoad()


def quietest(fn: Callable[[], object], max_background: float, retries: int) -> tuple[object, float]:
    """``fn()``, re-run up to ``retries`` times while other processes used more than
    ``max_background`` cores meanwhile; the result of the quietest run and that run's load."""
    best = None
    for _ in range(1 + max(0, retries)):
        mark = BACKGROUND.start()
        out = fn()
        load = BACKGROUND.cores(mark)
        if best is None or load < best[1]:
            best = (out, load)
        if load <= max_background or max_background <= 0:
            break
    return best


def use_heap_malloc() -> bool:
    """Keep freed tensor memory in glibc's heap instead of returning it to the kernel.

    By default glibc serves every allocation above ``M_MMAP_THRESHOLD`` (at most 32 MiB) with a
    fresh ``mmap`` and unmaps it on free, so each large activation of every step is page-faulted
    (and zeroed by the kernel) again. ``mallopt(M_MMAP_MAX, 0)`` + ``mallopt(M_TRIM_THRESHOLD, -1)``
    (the same as ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<huge>`` in the environment) serve
    them from the heap and never trim it. Returns False where there is no glibc."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, -1))
    except (OSError, AttributeError):
        return False


def time_once(fn: Callable[[], object], device: torch.device, inner: int) -> tuple[float, float]:
    """Mean seconds per call over ``inner`` calls, and the other processes' load (cores) meanwhile."""
    sync(device)
    mark = BACKGROUND.start()
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / inner, BACKGROUND.cores(mark)


def interleaved(fns: dict[str, Callable[[], object]], device: torch.device, repeats: int,
                target_s: float, max_background: float = 0.25, retries: int = 2,
                retry_budget_s: float = 60.0) -> dict[str, dict]:
    """Median (and spread) seconds per call of each function; the functions take turns.

    A sample during which other processes used more than ``max_background`` cores is retried up to
    ``retries`` times (while the retries have cost less than ``retry_budget_s`` in all); the
    quietest attempt is kept, and its load is reported."""
    inner = {}
    for name, fn in fns.items():       # warm-up (allocator, Adam state), which also sets the calls per repeat
        t, _ = time_once(fn, device, 1)
        inner[name] = max(1, min(50, int(target_s / max(t, 1e-6))))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    loads: dict[str, list[float]] = {name: [] for name in fns}
    retried = {name: 0 for name in fns}
    retry_spent = 0.0
    for r in range(repeats):
        order = list(fns) if r % 2 == 0 else list(fns)[::-1]   # alternate who goes first
        for name in order:
            best = time_once(fns[name], device, inner[name])
            for _ in range(retries if max_background > 0 else 0):
                if best[1] <= max_background or retry_spent > retry_budget_s:
                    break
                retried[name] += 1
                again = time_once(fns[name], device, inner[name])
                retry_spent += again[0] * inner[name]
                best = min(best, again, key=lambda a: a[1])
            samples[name].append(best[0])
            loads[name].append(best[1])
    return {name: {"median_s": statistics.median(s), "min_s": min(s), "max_s": max(s), "samples_s": s,
                   "background_cores": loads[name], "retried": retried[name], "inner": inner[name]}
            for name, s in samples.items()}


# =============================================================================================
# breakdown of one training step
# =============================================================================================
class _Timer:
    def __init__(self, device: torch.device) -> None:
        self.device, self.totals = device, {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        sync(self.device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            sync(self.device)
            self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - t0


def _window_source(n: int, frames: int, tmp: Path):
    """``(label, sampler)`` pairs: windows read with ``open_split`` + ``WindowSampler`` from
    datasets/water2d (if present) and from a synthetic HDF5 split of ``n`` particles."""
    from gns.data import Trajectory, load_metadata, open_split, write_split
    sources = []
    if (DATASET / "train.h5").exists():
        md = load_metadata(DATASET)
        split = open_split(DATASET, "train", md)
        mean_n = float(np.mean([len(split.particle_type(i)) for i in range(len(split))]))
        sources.append((f"water2d train split (mean N={mean_n:.0f})", WindowSampler(split, md.context_size)))
    md = synthetic_metadata(n, 18.0)
    big = synthetic_batch(n, md, 64, seed=1)                        # 64 frames
    write_split(tmp / "train.h5", [Trajectory(big.position.transpose(0, 1).contiguous().numpy(),
                                              big.particle_type.numpy())])
    (tmp / "metadata.json").write_text(json.dumps(md.to_dict()))
    sources.append((f"synthetic split (N={n})", WindowSampler(open_split(tmp, "train", md), 0)))
    return sources


def breakdown(sim, batch: ParticleBatch, device: torch.device, steps: int, tmp: Path) -> dict:
    """Seconds per phase of one training step, mean over ``steps`` steps of an already warm simulator.

    ``radius_graph`` is timed by wrapping the name the simulator module calls."""
    import gns.particles.simulator as sim_module
    from gns.train.losses import masked_mse
    from gns.train.noise import default_noise_std, random_walk_noise

    timer = _Timer(device)
    original = sim_module.radius_graph

    def timed_radius_graph(*args, **kwargs):
        with timer("radius graph"):
            return original(*args, **kwargs)

    noise_std = default_noise_std(WATER2D_STATS["vel_std"])
    opt = torch.optim.Adam(sim.parameters(), lr=LR)
    gen = torch.Generator(device=device).manual_seed(0)
    c1 = sim.history + 1
    frames = c1 + 1
    loaders = _window_source(int(batch.n_particles.sum()), frames, tmp)
    load_gen = torch.Generator().manual_seed(0)
    for _, sampler in loaders:  # open the files and fill the chunk caches once, untimed
        sampler.load(sampler.sample_items(1, frames, load_gen), frames)
    sim.train()
    sim_module.radius_graph = timed_radius_graph
    try:
        for _ in range(steps):
            with timer("step (sum of phases)"):
                for label, sampler in loaders:
                    with timer(f"data: {label}"):
                        items = sampler.sample_items(1, frames, load_gen)
                        sampler.load(items, frames).to(device)
                with timer("noise + target"):
                    kinematic = sim.is_kinematic(batch.particle_type)
                    noise = random_walk_noise(batch.position[:, :c1], noise_std, kinematic, gen)
                    history = batch.position[:, :c1] + noise
                    target = sim.target_normalized_acceleration(history, batch.position[:, c1] + noise[:, -1])
                with timer("graph (radius graph + features)"):
                    graph = sim.build_graph(batch.with_position(history))
                with timer("network forward + loss"):
                    loss = masked_mse(sim.network(graph), target, ~kinematic)
                with timer("backward"):
                    loss.backward()
                with timer("optimizer (clip + Adam + zero_grad)"):
                    torch.nn.utils.clip_grad_norm_(sim.parameters(), GRAD_CLIP)
                    opt.step()
                    opt.zero_grad(set_to_none=True)
    finally:
        sim_module.radius_graph = original
    out = {k: v / steps for k, v in timer.totals.items()}
    out["graph: features (graph minus radius graph)"] = (out["graph (radius graph + features)"]
                                                         - out["radius graph"])
    return out


def profile_ops(trainer: "Trainer", device: torch.device, top: int = 12) -> list[dict]:
    """Self time per operator over two training steps of an already warm ``trainer``, largest first."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        trainer.step()
        trainer.step()
    rows = []
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, attr, 0) > 0]
    total = sum(getattr(e, attr) for e in events)
    for e in sorted(events, key=lambda e: getattr(e, attr), reverse=True):
        rows.append({"op": e.key, "calls": e.count // 2, "self_ms_per_step": getattr(e, attr) / 2e3,
                     "share": getattr(e, attr) / total})
    return rows[:top] + [{"op": "_categories", "categories": _categorize(rows)}]


def _categorize(rows: list[dict]) -> dict[str, float]:
    cats = {"matmul (addmm/mm/linear)": ("addmm", "aten::mm", "bmm", "matmul", "linear"),
            "gather/scatter (index_select/index/index_add/scatter/index_put)":
                ("index_select", "aten::index", "index_add", "scatter", "index_put", "gather", "embedding"),
            "layer norm": ("layer_norm",),
            "sort / search (radius graph)": ("sort", "searchsorted", "nonzero", "bincount", "cumsum"),
            "optimizer (Adam foreach)": ("_foreach", "adam"),
            "copies / cat": ("copy_", "aten::cat", "clone", "contiguous")}
    out = {k: 0.0 for k in cats}
    out["other (elementwise, relu, ...)"] = 0.0
    for r in rows:
        name = r["op"].lower()
        for cat, keys in cats.items():
            if any(k in name for k in keys):
                out[cat] += r["share"]
                break
        else:
            out["other (elementwise, relu, ...)"] += r["share"]
    return out


# =============================================================================================
# peak memory, one fresh subprocess per configuration
# =============================================================================================
def _status_bytes(key: str) -> int | None:
    """``VmRSS`` / ``VmHWM`` of this process from ``/proc/self/status`` (None where there is none)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _ru_maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def memory_child(variant: str, mode: str, n: int, degree: float, device: torch.device) -> dict:
    """Run in a fresh process: peak memory of the first ``mode`` step of ``variant`` (training: Adam
    state included), above the resident memory just before it.

    CPU: the peak RSS. ``getrusage(RUSAGE_SELF).ru_maxrss`` cannot be used as is: on Linux a
    process inherits, across fork + exec, the peak RSS of its parent (the kernel records the old
    address space's high-water mark at exec), so a child of a large parent starts with a large
    ``ru_maxrss``. Where ``/proc/self/clear_refs`` is writable the high-water mark ``VmHWM`` is reset
    to the current RSS just before the step and read after it; elsewhere ``ru_maxrss`` is used and
    the result flagged. CUDA: ``torch.cuda.max_memory_allocated`` above the allocation before."""
    md = synthetic_metadata(n, degree)
    sim = make_simulators(md, [variant], device)[variant]
    batch = synthetic_batch(n, md, sim.history + 2).to(device)
    if mode == "train":
        trainer = Trainer(sim, batch, device)
        work = trainer.step
    else:
        work = rollout_step(sim, batch.with_position(batch.position[:, 1:]))
    return {"variant": variant, "mode": mode, "n": n, **peak_memory(work, device)}


def peak_memory(work: Callable[[], object], device: torch.device) -> dict:
    """Peak memory of one call of ``work`` above the memory just before it (see ``memory_child``):
    ``rss_before_mib``, ``peak_rss_delta_mib``, ``method`` and, on CUDA, ``cuda_peak_delta_mib``."""
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before_cuda = torch.cuda.memory_allocated(device)
    before = _status_bytes("VmRSS")
    exact = before is not None and _reset_peak_rss()
    if not exact:
        before = _ru_maxrss_bytes()
    work()
    sync(device)
    peak = _status_bytes("VmHWM") if exact else _ru_maxrss_bytes()
    out = {"rss_before_mib": before / 2**20, "peak_rss_delta_mib": (peak - before) / 2**20,
           "method": "VmHWM reset by clear_refs" if exact else "ru_maxrss (includes any earlier peak)"}
    if device.type == "cuda":
        out["cuda_peak_delta_mib"] = (torch.cuda.max_memory_allocated(device) - before_cuda) / 2**20
    return out


def measure_memory(variants: list[str], n: int, degree: float, device: torch.device, malloc: str) -> list[dict]:
    rows = []
    for mode in ("train", "rollout"):
        for variant in variants:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--_memory-child", variant, mode, str(n),
                   "--device", str(device), "--degree", str(degree), "--malloc", malloc]
            res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
            if res.returncode != 0:
                rows.append({"variant": variant, "mode": mode, "n": n, "error": res.stderr.strip()[-500:]})
                continue
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return rows


# =============================================================================================
# allocator A/B, fresh processes taking turns
# =============================================================================================
def allocator_child(mode: str, n: int, args: argparse.Namespace, device: torch.device) -> dict:
    """In a fresh process (``--malloc`` already applied): median seconds of ``ours`` train and rollout."""
    md = synthetic_metadata(n, args.degree)
    sim = make_simulators(md, ["ours"], device)["ours"]
    batch = synthetic_batch(n, md, sim.history + 2).to(device)
    fns = {"train": Trainer(sim, batch, device).step,
           "rollout": rollout_step(sim, batch.with_position(batch.position[:, 1:]))}
    timing = interleaved(fns, device, args.repeats or (2 if n >= 5000 else 3), args.target_seconds,
                         args.max_background, args.retries, args.retry_budget)
    return {"malloc": mode, "n": n, **{k: v["median_s"] for k, v in timing.items()},
            "background_cores": max(x for v in timing.values() for x in v["background_cores"])}


def allocator_ab(n: int, args: argparse.Namespace, rounds: int = 2) -> dict:
    runs: dict[str, list[dict]] = {"default": [], "heap": []}
    for _ in range(rounds):
        for mode in ("default", "heap"):
            cmd = [sys.executable, str(Path(__file__).resolve()), "--_alloc-child", mode, str(n), "--malloc", mode,
                   "--device", args.device, "--degree", str(args.degree),
                   *(["--repeats", str(args.repeats)] if args.repeats else []), "--target-seconds", str(args.target_seconds), "--max-background", str(args.max_background),
                   "--retries", str(args.retries), "--retry-budget", str(args.retry_budget / 4)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                return {"error": res.stderr.strip()[-1000:]}
            runs[mode].append(json.loads(res.stdout.strip().splitlines()[-1]))
    return {mode: {"train_s": statistics.median(r["train"] for r in rs),
                   "rollout_s": statistics.median(r["rollout"] for r in rs),
                   "background_cores": max(r["background_cores"] for r in rs), "runs": rs}
            for mode, rs in runs.items()}


# =============================================================================================
# the last release, in a git worktree
# =============================================================================================
def run_baseline_ref(ref: str, args: argparse.Namespace) -> dict:
    """Time ``ours`` with the gns package of ``ref`` (checked out in a temporary ``git worktree``),
    by running this script in a subprocess with that checkout first on ``sys.path``."""
    tmp = Path(tempfile.mkdtemp(prefix="gns-baseline-"))
    tree = tmp / "tree"
    out_json = tmp / "baseline.json"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), ref], check=True,
                   capture_output=True, text=True)
    try:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--variants", "ours", "--no-memory", "--no-breakdown",
               "--no-profile", *(["--repeats", str(args.repeats)] if args.repeats else []), "--device", args.device, "--degree", str(args.degree),
               "--json", str(out_json), "--particles", *map(str, args.particles), "--_expect-gns-root", str(tree),
               "--malloc", args.malloc, "--threads", str(args.threads), "--target-seconds", str(args.target_seconds)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]),
                   GNS_BENCH_NO_REPO_PATH="1")
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(tree))
        if res.returncode != 0:
            return {"ref": ref, "error": (res.stdout + res.stderr).strip()[-2000:]}
        return {"ref": ref, **json.loads(out_json.read_text())}
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], capture_output=True)
        subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], capture_output=True)


# =============================================================================================
# reporting
# =============================================================================================
def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) + " |"
    sep = "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def machine(device: torch.device | None = None) -> dict:
    """Python, torch, threads, cores, platform, load average, CPU model, and the GPU's name on CUDA."""
    info = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "platform": platform.platform()}
    if device is not None and device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        info["loadavg_start"] = os.getloadavg()
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return info


def add_retry_options(p: argparse.ArgumentParser, budget_per: str) -> None:
    """``--max-background``, ``--retries`` and ``--retry-budget`` (seconds per ``budget_per``): when to
    retry a sample taken under load from other processes (see :func:`interleaved`)."""
    p.add_argument("--max-background", type=float, default=0.25,
                   help="retry a sample if other processes used more than this many cores meanwhile "
                        "(Linux /proc/stat; 0: never retry; default: 0.25)")
    p.add_argument("--retries", type=int, default=2, help="retries per noisy sample (default: 2)")
    p.add_argument("--retry-budget", type=float, default=60.0,
                   help=f"seconds that retries may cost per {budget_per} in all (default: 60)")


def loadavg_text(values) -> str:
    """A load average triple as printed in the scripts' headers (``?`` where it is unknown)."""
    return "?" if not values else " ".join(f"{v:.2f}" for v in values)


def args_record(args: argparse.Namespace) -> dict:
    """The command-line arguments for a JSON record: private ones left out, paths as strings."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if not k.startswith("_")}


def table_parser(doc: str) -> argparse.ArgumentParser:
    """The parser of a throughput script whose docstring is ``doc``, with ``--device``, ``--target-seconds``,
    ``--threads`` and ``--json``: the options every such script shares."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Tables are printed as Markdown; --json writes every number.")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--target-seconds", type=float, default=0.3,
                   help="each repeat runs enough calls to last about this long (default: 0.3)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--json", metavar="OUT", help="write every number to this JSON file")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Tables are printed as Markdown; --json writes every number.")
    p.add_argument("--particles", type=int, nargs="+", default=[1000, 10000], help="system sizes N (default: 1000 10000)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats per variant, after one warm-up call; the median is reported "
                        "(default: 3, and 2 for N >= 5000 where one training step takes seconds on a CPU)")
    p.add_argument("--target-seconds", type=float, default=0.3,
                   help="each repeat runs enough calls to last about this long (default: 0.3)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS + EXPERIMENTAL,
                   help=f"implementations compared (default: {' '.join(VARIANTS)})")
    p.add_argument("--experimental", action="store_true",
                   help="also time candidate changes to gns/nn patched in by this script: " + ", ".join(EXPERIMENTAL)
                        + " (index_select gathers; + torch_scatter.segment_csr sum, if importable)")
    p.add_argument("--degree", type=float, default=18.0,
                   help="neighbours per particle (self excluded) away from the walls; sets the box side (default: 18)")
    add_retry_options(p, "system size")
    p.add_argument("--malloc", choices=("default", "heap"), default="default",
                   help="'heap': keep freed memory in glibc's heap (mallopt M_MMAP_MAX=0, M_TRIM_THRESHOLD=-1) "
                        "instead of mmap/munmap per large tensor (default: default)")
    p.add_argument("--allocator-ab", action="store_true",
                   help="also time 'ours' with the default and the 'heap' glibc malloc settings, in fresh "
                        "processes taking turns (A B A B)")
    p.add_argument("--profile-all", action="store_true",
                   help="profile every size (default: only the first one)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--json", metavar="OUT", help="write every number to this JSON file")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: N=500, 2 repeats, short timings, no memory subprocesses")
    p.add_argument("--baseline-ref", metavar="GIT_REF",
                   help="also time 'ours' from a git worktree of this ref (e.g. the last release tag)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--no-breakdown", action="store_true", help="skip the training-step breakdown")
    p.add_argument("--no-profile", action="store_true", help="skip the torch.profiler operator table")
    p.add_argument("--breakdown-steps", type=int, default=2, help="steps averaged in the breakdown (default: 2)")
    p.add_argument("--network", action="store_true",
                   help="also time the network alone (forward; forward + backward) on one prebuilt graph")
    p.add_argument("--_memory-child", nargs=3, metavar=("VARIANT", "MODE", "N"), help=argparse.SUPPRESS)
    p.add_argument("--_expect-gns-root", help=argparse.SUPPRESS)
    p.add_argument("--_alloc-child", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.experimental:
        args.variants += [v for v in EXPERIMENTAL if v not in args.variants
                          and (v != "exp-isel-segcsr" or _has_torch_scatter())]
    if args.quick:
        if "--particles" not in (argv if argv is not None else sys.argv):
            args.particles = [500]
        args.repeats, args.target_seconds, args.no_memory, args.breakdown_steps = 2, 0.05, True, 1
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def start_run(args: argparse.Namespace) -> torch.device:
    """Start of a benchmark run: stdout line-buffered, torch's CPU threads (``args.threads``, 0: torch's
    default) and the device (``args.device``), checked to be usable."""
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(line_buffering=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch.cuda.is_available() is False on this machine")
    return device


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = start_run(args)
    if args.malloc == "heap" and not use_heap_malloc():
        raise SystemExit("--malloc heap: mallopt is not available (not glibc?)")
    if args._alloc_child:
        print(json.dumps(allocator_child(args._alloc_child[0], int(args._alloc_child[1]), args, device)))
        return {}

    if args._memory_child:
        variant, mode, n = args._memory_child
        print(json.dumps(memory_child(variant, mode, int(n), args.degree, device)))
        return {}
    if args._expect_gns_root:
        import gns
        if not Path(gns.__file__).resolve().is_relative_to(Path(args._expect_gns_root).resolve()):
            raise SystemExit(f"baseline run imported gns from {gns.__file__}, not from {args._expect_gns_root}")

    t_start = time.perf_counter()
    results: dict = {"machine": machine(device), "args": args_record(args), "sizes": {}}
    print(f"# gns throughput: default model {ModelConfig()}, device {device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, malloc {args.malloc}\n")

    for n in args.particles:
        md = synthetic_metadata(n, args.degree)
        sims = make_simulators(md, args.variants, device)
        history = ModelConfig().history
        batch = synthetic_batch(n, md, history + 2).to(device)           # C+1 inputs + 1 target
        window = batch.with_position(batch.position[:, 1:])             # rollout input: last C+1 frames
        graph = sims[args.variants[0]].build_graph(window)
        graph.nodes = graph.nodes.detach()
        edges = int(graph.edge_sets["neighbors"].senders.numel())
        size = {"n": n, "edges": edges, "edges_per_particle": edges / n, "box_side": md.bounds[0][1] - md.bounds[0][0],
                "max_abs_diff_vs_ours": check_equivalence(sims, batch, history)}
        print(f"## N = {n}: box side {size['box_side']:.3f}, radius {RADIUS}, {edges} edges "
              f"({edges / n:.1f} per particle incl. self loop)")
        if size["max_abs_diff_vs_ours"]:
            print("same weights, same input -> max |output - ours|: "
                  + ", ".join(f"{k} {v:.1e}" for k, v in size["max_abs_diff_vs_ours"].items()))

        trainers = {v: Trainer(s, batch, device) for v, s in sims.items()}
        fns = {}
        for v in args.variants:
            fns[f"train/{v}"] = trainers[v].step
        for v in args.variants:
            fns[f"rollout/{v}"] = rollout_step(sims[v], window)
        if args.network:
            for v in args.variants:
                fns[f"net-fwd/{v}"] = network_step(sims[v], graph, backward=False)
                fns[f"net-fwd-bwd/{v}"] = network_step(sims[v], graph, backward=True)
        log(f"timing N={n}: {', '.join(fns)}")
        repeats = args.repeats or (2 if n >= 5000 else 3)
        size["repeats"] = repeats
        timing = interleaved(fns, device, repeats, args.target_seconds, args.max_background, args.retries,
                             args.retry_budget)
        size["timing"] = timing
        rows = []
        for v in args.variants:
            ms = lambda key: timing[f"{key}/{v}"]["median_s"] * 1e3
            spread = lambda key: f"{timing[f'{key}/{v}']['min_s'] * 1e3:.0f}-{timing[f'{key}/{v}']['max_s'] * 1e3:.0f}"
            ratio = lambda key: (f"{timing[f'{key}/ours']['median_s'] / timing[f'{key}/{v}']['median_s']:.2f}"
                                 if "ours" in args.variants else "-")
            row = [v, f"{1e3 / ms('train'):.3g}", f"{ms('train'):.0f} ({spread('train')})", ratio("train"),
                   f"{n * 1e3 / ms('rollout'):.3g}", f"{ms('rollout'):.0f} ({spread('rollout')})", ratio("rollout")]
            if args.network:
                row += [f"{ms('net-fwd'):.0f}", f"{ms('net-fwd-bwd'):.0f}", ratio("net-fwd-bwd")]
            rows.append(row)
        headers = ["variant", "train steps/s", "train ms/step (min-max)", "time ours/variant",
                   "rollout particle-steps/s", "rollout ms/step (min-max)", "time ours/variant"]
        if args.network:
            headers += ["network fwd ms", "network fwd+bwd ms", "time ours/variant"]
        print(f"\nmedian of {repeats} interleaved repeats after a warm-up call; 'time ours/variant' < 1 means ours is faster")
        print(table(headers, rows))
        kept = [x for t in timing.values() for x in t["background_cores"]]
        if BACKGROUND.available:
            print(f"other processes' CPU load during the kept samples: median {statistics.median(kept):.2f}, "
                  f"max {max(kept):.2f} cores; {sum(t['retried'] for t in timing.values())} samples retried "
                  f"(threshold {args.max_background} cores)")

        if not args.no_memory:
            log(f"peak memory N={n}: one fresh process per (variant, train|rollout)")
            mem = measure_memory(args.variants, n, args.degree, device, args.malloc)
            size["memory"] = mem
            key = "cuda_peak_delta_mib" if device.type == "cuda" else "peak_rss_delta_mib"
            label = "CUDA max_memory_allocated" if device.type == "cuda" else "peak RSS"
            mrows = []
            for v in args.variants:
                get = lambda mode: next((m for m in mem if m["variant"] == v and m["mode"] == mode), {})
                mrows.append([v] + [f"{get(mode)[key]:.0f}" if key in get(mode) else "error"
                                    for mode in ("train", "rollout")])
            print(f"\npeak memory above the pre-step baseline, MiB ({label}, fresh process per cell)")
            print(table(["variant", "train step", "rollout step"], mrows))

        if not args.no_breakdown and "ours" in sims:
            log(f"breakdown N={n}")
            with tempfile.TemporaryDirectory() as tmp:
                bd, bd_load = quietest(lambda: breakdown(sims["ours"], batch, device, args.breakdown_steps, Path(tmp)),
                                       args.max_background, args.retries)
            size["breakdown"] = bd
            size["breakdown_background_cores"] = bd_load
            total = bd["step (sum of phases)"]
            order = [k for k in bd if k.startswith("data:")] + [
                "noise + target", "graph (radius graph + features)", "radius graph",
                "graph: features (graph minus radius graph)", "network forward + loss", "backward",
                "optimizer (clip + Adam + zero_grad)", "step (sum of phases)"]
            brows = [[("  " if k in ("radius graph", "graph: features (graph minus radius graph)") else "") + k,
                      f"{bd[k] * 1e3:.2f}", f"{100 * bd[k] / total:.1f}%"] for k in order if k in bd]
            print(f"\nbreakdown of one 'ours' training step (mean of {args.breakdown_steps} steps, synchronized timers; "
                  f"other processes used {bd_load:.2f} cores meanwhile)")
            print(table(["phase", "ms", "share"], brows))

        if not args.no_profile and "ours" in sims and (args.profile_all or n == args.particles[0]):
            log(f"torch.profiler N={n}")
            prof, prof_load = quietest(lambda: profile_ops(trainers["ours"], device), args.max_background,
                                       args.retries)
            size["profile"] = prof
            size["profile_background_cores"] = prof_load
            cats = prof[-1]["categories"]
            print(f"\ntorch.profiler, 'ours' training step: top operators by self time (other processes used "
                  f"{prof_load:.2f} cores meanwhile)")
            print(table(["operator", "calls/step", "self ms/step", "share"],
                        [[r["op"], r["calls"], f"{r['self_ms_per_step']:.1f}", f"{100 * r['share']:.1f}%"]
                         for r in prof[:-1]]))
            print(table(["category (all operators)", "share"],
                        [[k, f"{100 * v:.1f}%"] for k, v in sorted(cats.items(), key=lambda kv: -kv[1])]))
        if args.allocator_ab:
            log(f"allocator A/B N={n}: fresh processes, default and heap malloc taking turns")
            ab = allocator_ab(n, args)
            size["allocator_ab"] = ab
            if "error" in ab:
                print(f"\nallocator A/B failed: {ab['error']}")
            else:
                d, h = ab["default"], ab["heap"]
                print(f"\n'ours' with glibc's default malloc vs --malloc heap (fresh processes, A B A B; median; "
                      f"other processes' load at most {max(d['background_cores'], h['background_cores']):.2f} cores)")
                print(table(["malloc", "train ms/step", "rollout ms/step", "train speed-up", "rollout speed-up"],
                            [["default", f"{d['train_s'] * 1e3:.0f}", f"{d['rollout_s'] * 1e3:.0f}", "1.00", "1.00"],
                             ["heap", f"{h['train_s'] * 1e3:.0f}", f"{h['rollout_s'] * 1e3:.0f}",
                              f"{d['train_s'] / h['train_s']:.2f}", f"{d['rollout_s'] / h['rollout_s']:.2f}"]]))
        results["sizes"][str(n)] = size
        print()
        del sims, trainers, fns

    if args.baseline_ref:
        base = run_baseline_ref(args.baseline_ref, args)
        results["baseline_ref"] = base
        if "error" in base:
            print(f"baseline {args.baseline_ref}: failed:\n{base['error']}")
        else:
            rows = []
            for n in args.particles:
                ours = results["sizes"][str(n)]["timing"]
                theirs = base["sizes"][str(n)]["timing"]
                for key in ("train", "rollout"):
                    a, b = ours[f"{key}/ours"]["median_s"], theirs[f"{key}/ours"]["median_s"]
                    rows.append([n, key, f"{b * 1e3:.1f}", f"{a * 1e3:.1f}", f"{b / a:.2f}"])
            print(f"## this tree vs {args.baseline_ref} (separate processes, run one after the other)")
            print(table(["N", "what", f"{args.baseline_ref} ms", "this tree ms", "speed-up"], rows))
    return finish_run(results, t_start, args.json)


def finish_run(results: dict, t_start: float, json_path: str | None,
               loadavg: Callable[[object], str] = loadavg_text) -> dict:
    """End of a benchmark run: record the final load average and the wall time in ``results``, print
    them (``loadavg`` formats a load average, None when unknown), and write ``results`` to
    ``json_path`` when one is given."""
    with contextlib.suppress(OSError):
        results["machine"]["loadavg_end"] = os.getloadavg()
    results["wall_seconds"] = time.perf_counter() - t_start
    print(f"total {results['wall_seconds']:.0f} s; load average at start/end "
          f"{loadavg(results['machine'].get('loadavg_start'))} / {loadavg(results['machine'].get('loadavg_end'))}")
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
