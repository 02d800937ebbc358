"""Our training step against geoelements/gns's own, on the same water data, in one run.

geoelements/gns (https://github.com/geoelements/gns, the PyTorch GNS most users start from) is
not vendored: the script takes the path of a checkout of it (pinned at ``PINNED_COMMIT``; any
other commit is run and named in the output) and imports that checkout's own
``gns/learned_simulator.py``, ``gns/graph_network.py`` and ``gns/noise_utils.py``, under another
package name so that they do not clash with this ``gns``::

    git clone https://github.com/geoelements/gns /tmp/geoelements_gns
    git -C /tmp/geoelements_gns checkout 3b8fb5cc143690f061a721b63bde3e49eb8f8520
    python benchmarks/geoelements.py /tmp/geoelements_gns --json geoelements.json

Their training step is the body of the loop of their ``gns/train.py`` (``train()``): random-walk
noise from their ``noise_utils``, zeroed on kinematic particles, ``predict_accelerations``, their
``acceleration_loss`` (read from their ``train.py`` without importing it: it needs absl),
``zero_grad``, ``backward``, Adam, their learning-rate update; the simulator is built with the
arguments of their ``_get_simulator`` (latent 128, 10 message-passing steps, 2-layer MLPs,
type embedding 16). Their neighbour search is ``torch_geometric.nn.radius_graph``, which needs a
native extension (``pyg-lib`` in torch_geometric >= 2.7, ``torch-cluster`` before): where it is
missing (no wheel for this torch) it is replaced by ``gns.neighbors.radius_graph`` with their
arguments (self loops, at most ``max_num_neighbors`` per particle, checked), and the output says
so. Ours is one step of ``gns.train.loop.Trainer``'s kind (one-step loss, backward, gradient
clipping, Adam) of the default model (:class:`gns.config.ModelConfig`: the same 10 x 128 GNS),
plus any of ``--ours-variants`` (``bf16``: ``train.precision=bf16``; ``compile``:
``train.compile=true``).

Data: windows of ``datasets/water2d``'s train split, batch 2 (two windows, 6 positions + the
target each, from one trajectory); ``--particles`` counts the particles of a step, both windows
together. ``~1k``: the trajectory whose particle count is nearest 500. ``~10k``: water2d has no
frame of 5000 particles, so a trajectory is tiled ``k x k`` times side by side (the box grows
with it; said so in the output). Both models get the same
windows, statistics and noise level; with ``--check`` their networks are given the same weights
and their normalized accelerations compared on the same noise-free window.

Timings are interleaved medians (``benchmarks/throughput.py``'s method); peak memory is measured
in a fresh process per side and size.
"""

from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import importlib
import json
import subprocess
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from throughput import (Trainer, add_retry_options, finish_run, interleaved, log, machine, peak_memory,  # noqa: E402
                        start_run, table)

from gns.config import ModelConfig  # noqa: E402
from gns.data import DatasetMetadata, load_metadata, open_split  # noqa: E402
from gns.neighbors import radius_graph  # noqa: E402
from gns.nn import set_execution  # noqa: E402
from gns.particles.simulator import ParticleSimulator  # noqa: E402
from gns.particles.state import ParticleState  # noqa: E402
from gns.train.noise import default_noise_std  # noqa: E402

PINNED_COMMIT = "3b8fb5cc143690f061a721b63bde3e49eb8f8520"   # geoelements/gns main, "fix message passing (#94)"
THEIR_PACKAGE = "geoelements_gns"                            # the name their gns/ is imported under
KINEMATIC_PARTICLE_ID = 3                                    # their train.py
INPUT_SEQUENCE_LENGTH = 6                                    # their train.py: 6 positions, 5 velocities
OURS_VARIANTS = ("plain", "bf16", "compile")


# =============================================================================================
# their code, from the checkout
# =============================================================================================
@dataclass
class Theirs:
    learned_simulator: types.ModuleType
    noise_utils: types.ModuleType
    acceleration_loss: Callable[[Tensor, Tensor, Tensor], Tensor]
    commit: str
    neighbour_search: str          # what finds their edges


def checkout_commit(root: Path) -> str:
    res = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    return res.stdout.strip() if res.returncode == 0 else "unknown (not a git checkout)"


def load_theirs(root: Path) -> Theirs:
    """Import ``root/gns/{graph_network,learned_simulator,noise_utils}.py`` as package ``geoelements_gns``.

    Their modules import each other as ``from gns import ...``: while they load, ``sys.modules["gns"]``
    is their package (each module is imported before the ones that need it), then ours again."""
    package_dir = root / "gns"
    for name in ("learned_simulator.py", "graph_network.py", "noise_utils.py", "train.py"):
        if not (package_dir / name).exists():
            raise SystemExit(f"{root}: no gns/{name}; expected a checkout of geoelements/gns")
    package = types.ModuleType(THEIR_PACKAGE)
    package.__path__ = [str(package_dir)]
    sys.modules[THEIR_PACKAGE] = package
    ours = sys.modules.get("gns")
    sys.modules["gns"] = package
    try:
        modules = {name: importlib.import_module(f"{THEIR_PACKAGE}.{name}")
                   for name in ("graph_network", "learned_simulator", "noise_utils")}
    finally:
        sys.modules["gns"] = ours
    return Theirs(modules["learned_simulator"], modules["noise_utils"], their_function(package_dir / "train.py",
                                                                                      "acceleration_loss"),
                  checkout_commit(root), use_their_neighbour_search(modules["learned_simulator"]))


def their_function(path: Path, name: str) -> Callable:
    """The function ``name`` of ``path``, compiled from its source alone (the module is not imported)."""
    tree = ast.parse(path.read_text())
    node = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    if node is None:
        raise SystemExit(f"{path}: no function {name}")
    namespace = {"torch": torch}
    exec(compile(ast.Module([node], type_ignores=[]), str(path), "exec"), namespace)
    return namespace[name]


def use_their_neighbour_search(learned_simulator: types.ModuleType) -> str:
    """Keep ``torch_geometric.nn.radius_graph`` where it runs; else replace it (returns what is used)."""
    try:
        probe = torch.tensor([[0.0, 0.0], [0.01, 0.0]])
        learned_simulator.radius_graph(probe, r=0.05, batch=torch.zeros(2, dtype=torch.long), loop=True,
                                       max_num_neighbors=128)
        return "theirs: torch_geometric.nn.radius_graph"
    except (ImportError, RuntimeError, AttributeError) as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:100]

    def replacement(x: Tensor, r: float, batch: Tensor | None = None, loop: bool = False,
                    max_num_neighbors: int = 32, **_) -> Tensor:
        """``torch_geometric.nn.radius_graph``'s contract: ``(2, E)`` [source; target], flow source_to_target."""
        edge_index = radius_graph(x.detach(), r, batch=batch, self_loops=loop)
        most = int(torch.bincount(edge_index[1], minlength=len(x)).max()) if edge_index.numel() else 0
        if most > max_num_neighbors:
            raise RuntimeError(f"{most} neighbours > max_num_neighbors={max_num_neighbors}: torch_cluster "
                               "would drop some, this replacement would not")
        return edge_index

    learned_simulator.radius_graph = replacement
    return (f"REPLACED by gns.neighbors.radius_graph (same edges; theirs does not run here: {reason}; "
            "torch-cluster / pyg-lib have no wheel for this torch)")


def their_simulator(theirs: Theirs, metadata: DatasetMetadata, noise_std: float, device: torch.device) -> nn.Module:
    """``LearnedSimulator`` with the arguments of their ``train._get_simulator`` (2-D, no material property)."""
    def stats(mean, std):
        return {"mean": torch.FloatTensor(mean).to(device),
                "std": torch.sqrt(torch.FloatTensor(std) ** 2 + noise_std ** 2).to(device)}

    return theirs.learned_simulator.LearnedSimulator(
        particle_dimensions=metadata.dim, nnode_in=37 if metadata.dim == 3 else 30, nedge_in=metadata.dim + 1,
        latent_dim=128, nmessage_passing_steps=10, nmlp_layers=2, mlp_hidden_dim=128,
        connectivity_radius=metadata.default_connectivity_radius, boundaries=np.array(metadata.bounds),
        normalization_stats={"acceleration": stats(metadata.acc_mean, metadata.acc_std),
                             "velocity": stats(metadata.vel_mean, metadata.vel_std)},
        nparticle_types=9, particle_type_embedding_size=16, boundary_clamp_limit=1.0, device=device).to(device)


class TheirStep:
    """The body of their ``train.py`` training loop, for one fixed batch."""

    def __init__(self, theirs: Theirs, sim: nn.Module, batch: ParticleState, noise_std: float, lr: float = 1e-4):
        self.theirs, self.sim, self.noise_std, self.lr = theirs, sim, noise_std, lr
        self.position = batch.position[:, :INPUT_SEQUENCE_LENGTH].contiguous()          # (N, 6, D)
        self.labels = batch.position[:, INPUT_SEQUENCE_LENGTH].contiguous()             # (N, D)
        self.particle_type = batch.particle_type
        self.n_per_example = batch.n_particles
        self.optimizer = torch.optim.Adam(sim.parameters(), lr=lr)
        self.step_count = 0

    def step(self) -> float:
        self.sim.train()
        noise = self.theirs.noise_utils.get_random_walk_noise_for_position_sequence(
            self.position, noise_std_last_step=self.noise_std).to(self.position.device)
        non_kinematic_mask = (self.particle_type != KINEMATIC_PARTICLE_ID).clone().detach()
        noise *= non_kinematic_mask.view(-1, 1, 1)
        pred_acc, target_acc = self.sim.predict_accelerations(
            next_positions=self.labels, position_sequence_noise=noise, position_sequence=self.position,
            nparticles_per_example=self.n_per_example, particle_types=self.particle_type)
        loss = self.theirs.acceleration_loss(pred_acc, target_acc, non_kinematic_mask)
        train_loss = loss.item()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        lr_new = self.lr * (0.1 ** (self.step_count / 5e6))
        for param in self.optimizer.param_groups:
            param["lr"] = lr_new
        self.step_count += 1
        return train_loss


# =============================================================================================
# the same weights in both, for the equality check
# =============================================================================================
def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def _layer_norm(module: nn.Module) -> nn.LayerNorm | None:
    return next((m for m in module.modules() if isinstance(m, nn.LayerNorm)), None)


@torch.no_grad()
def copy_our_weights(ours: ParticleSimulator, theirs: nn.Module) -> None:
    """Give their network our weights (their first edge layer reads ``[x_receiver, x_sender, e]``,
    ours ``[e, h_sender, h_receiver]``; their node layer ``[aggregate, x]``, ours ``[h, aggregate]``)."""
    net, epd = ours.network, theirs._encode_process_decode
    theirs._particle_type_embedding.weight.copy_(ours.type_embedding.weight)
    pairs = [(net.node_encoder, epd._encoder.node_fn), (net.edge_encoders["neighbors"], epd._encoder.edge_fn),
             (net.decoder, epd._decoder.node_fn)]
    for block, their_block in zip(net.processor, epd._processor.gnn_stacks):
        pairs += [(block.edge_blocks["neighbors"].mlp, their_block.edge_fn), (block.node_mlp, their_block.node_fn)]
    for src, dst in pairs:
        for a, b in zip(_linears(src), _linears(dst), strict=True):
            b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)
        if _layer_norm(src) is not None:
            _layer_norm(dst).load_state_dict(_layer_norm(src).state_dict())
    L = net.processor[0].edge_blocks["neighbors"].latent_size
    for block, their_block in zip(net.processor, epd._processor.gnn_stacks):
        w = block.edge_blocks["neighbors"].mlp[0].weight                    # (H, 3L): [e, h_s, h_r]
        _linears(their_block.edge_fn)[0].weight.copy_(torch.cat([w[:, 2 * L:], w[:, L:2 * L], w[:, :L]], dim=1))
        w = block.node_mlp[0].weight                                        # (H, 2L): [h, aggregate]
        _linears(their_block.node_fn)[0].weight.copy_(torch.cat([w[:, L:], w[:, :L]], dim=1))


def same_outputs(ours: ParticleSimulator, theirs_module: nn.Module, batch: ParticleState) -> float:
    """max |their normalized acceleration - ours| / max |ours| on the noise-free window, same weights."""
    theirs_copy = copy.deepcopy(theirs_module)
    copy_our_weights(ours, theirs_copy)
    window = batch.position[:, :INPUT_SEQUENCE_LENGTH]
    with torch.no_grad():
        mine = ours.eval()(batch.with_position(window))
        nodes, edge_index, edges = theirs_copy._encoder_preprocessor(window, batch.n_particles, batch.particle_type)
        yours = theirs_copy._encode_process_decode(nodes, edge_index, edges)
    return float((yours - mine).abs().max() / mine.abs().max())


# =============================================================================================
# data: water2d windows, tiled for the larger size
# =============================================================================================
@dataclass
class Case:
    target: int           # particles per step (both graphs) asked for
    trajectory: int
    tiles: int            # k: the trajectory tiled k x k
    particles: int        # per graph
    metadata: DatasetMetadata
    batch: ParticleState  # 2 windows of 7 frames


def choose(counts: list[int], target: float) -> tuple[int, int]:
    """(trajectory, k) with ``counts[trajectory] * k^2`` nearest ``target`` (the smallest k on ties)."""
    best = min(((abs(c * k * k - target), k, i) for k in range(1, 9) for i, c in enumerate(counts)))
    return best[2], best[1]


def make_case(dataset: Path, target: int, starts: tuple[int, int], device: torch.device) -> Case:
    metadata = load_metadata(dataset)
    split = open_split(dataset, "train", metadata)
    counts = [split.num_particles(i) for i in range(len(split))]
    index, k = choose(counts, target / 2)                                              # 2 graphs a step
    frames = INPUT_SEQUENCE_LENGTH + 1
    positions = torch.cat([torch.as_tensor(split.read_window(index, s, s + frames), dtype=torch.float32)
                           for s in starts])                                            # (2 * 7, n, D)
    types = torch.as_tensor(np.asarray(split.particle_type(index)), dtype=torch.long)  # (n,)
    lo, hi = np.asarray(metadata.bounds, dtype=np.float64).T                             # (D,)
    width = torch.as_tensor(hi - lo, dtype=torch.float32)
    tiles = [torch.tensor([a, b], dtype=torch.float32) for a in range(k) for b in range(k)]
    positions = torch.cat([positions + t * width for t in tiles], dim=1)               # (T, k^2 n, D)
    types = types.repeat(k * k)
    if k > 1:
        metadata = dataclasses.replace(metadata, bounds=[[float(lo[d]), float(lo[d] + k * (hi[d] - lo[d]))]
                                                         for d in range(len(lo))])
    windows = [positions[w * frames:(w + 1) * frames].transpose(0, 1) for w in range(2)]   # (n', 7, D) each
    batch = ParticleState(torch.cat(windows).contiguous(), types.repeat(2),
                          torch.tensor([len(types), len(types)])).to(device)
    return Case(target, index, k, len(types), metadata, batch)


# =============================================================================================
# one size: both sides side by side
# =============================================================================================
def build_sides(case: Case, theirs: Theirs, variants: list[str], device: torch.device, seed: int = 0):
    noise_std = default_noise_std(case.metadata.vel_std)
    torch.manual_seed(seed)
    ours = ParticleSimulator(ModelConfig(), case.metadata, noise_std).to(device)
    sims = {}
    for v in variants:
        sim = copy.deepcopy(ours)
        set_execution(sim, precision="bf16" if v == "bf16" else "fp32", compile=v == "compile", key="--ours-variants")
        sims[f"ours ({v})" if v != "plain" else "ours"] = sim
    torch.manual_seed(seed)
    their = their_simulator(theirs, case.metadata, noise_std, device)
    steps = {name: Trainer(sim, case.batch, device).step for name, sim in sims.items()}
    steps["geoelements/gns"] = TheirStep(theirs, their, case.batch, noise_std).step
    return steps, ours, their


def memory_child(side: str, args: argparse.Namespace, device: torch.device) -> dict:
    theirs = load_theirs(Path(args.checkout))
    case = make_case(Path(args.dataset), args._memory_child_target, tuple(args.starts), device)
    variants = [side.split("(")[1].rstrip(")")] if "(" in side else ["plain"]
    steps, _, _ = build_sides(case, theirs, variants, device)
    return {"side": side, "target": case.target, **peak_memory(steps[side], device)}


def measure_memory(side: str, target: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), args.checkout, "--_memory-child", side, str(target),
           "--dataset", str(args.dataset), "--device", args.device, "--threads", str(args.threads),
           "--starts", *map(str, args.starts)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        return {"error": res.stderr.strip()[-800:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_size(target: int, theirs: Theirs, args: argparse.Namespace, device: torch.device) -> dict:
    case = make_case(Path(args.dataset), target, tuple(args.starts), device)
    steps, ours, their = build_sides(case, theirs, args.ours_variants, device)
    edges = int(ours.build_graph(case.batch.with_position(case.batch.position[:, :6])).edge_sets["neighbors"]
                .senders.numel())
    diff = same_outputs(ours, their, case.batch) if args.check else None
    first = {}
    for name, fn in steps.items():          # first calls apart (the compiled variant compiles in its first)
        t0 = time.perf_counter()
        fn()
        first[name] = time.perf_counter() - t0
    log(f"timing ~{target} particles a step ({case.particles} x 2, {edges} edges): {', '.join(steps)}")
    repeats = args.repeats or (3 if case.particles < 5000 else 2)
    timing = interleaved(steps, device, repeats, args.target_seconds, args.max_background, args.retries,
                         args.retry_budget)
    memory = {} if args.no_memory else {name: measure_memory(name, target, args) for name in steps}
    return {"target": target, "trajectory": case.trajectory, "tiles": case.tiles, "particles_per_graph": case.particles,
            "batch": 2, "edges": edges, "max_rel_diff_same_weights": diff, "first_call_s": first, "timing": timing,
            "memory": memory, "repeats": repeats}


def print_size(res: dict, device: torch.device) -> None:
    t = res["timing"]
    theirs = t["geoelements/gns"]["median_s"]
    key = "cuda_peak_delta_mib" if device.type == "cuda" else "peak_rss_delta_mib"
    rows = []
    for name, v in t.items():
        mem = res["memory"].get(name, {})
        rows.append([name, f"{1 / v['median_s']:.3g}", f"{v['median_s'] * 1e3:.0f} ({v['min_s'] * 1e3:.0f}-"
                     f"{v['max_s'] * 1e3:.0f})", f"{theirs / v['median_s']:.2f}x",
                     f"{mem[key]:.0f}" if key in mem else ("error" if "error" in mem else "-"),
                     f"{max(v['background_cores']):.2f}"])
    tiled = (f", trajectory {res['trajectory']} tiled {res['tiles']} x {res['tiles']} side by side (a frame of "
             f"~{res['particles_per_graph'] // res['tiles'] ** 2} particles; box {res['tiles']}x wider and higher)"
             if res["tiles"] > 1 else f", trajectory {res['trajectory']}")
    print(f"\n## ~{res['target']} particles a step: {res['particles_per_graph']} per graph x batch 2 = "
          f"{2 * res['particles_per_graph']} particles, {res['edges']} edges{tiled}\n")
    print(table(["step", "steps/s", "ms/step (min-max)", "speed vs geoelements/gns", "peak MiB (RSS above start)",
                 "others' load (cores, max)"], rows))
    if res["max_rel_diff_same_weights"] is not None:
        print(f"\nsame weights, same noise-free window: max |theirs - ours| / max |ours| = "
              f"{res['max_rel_diff_same_weights']:.1e} (normalized accelerations)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkout", help=f"path of a geoelements/gns checkout (pinned: {PINNED_COMMIT})")
    p.add_argument("--dataset", type=Path, default=REPO / "datasets" / "water2d",
                   help="water dataset in this project's format (default: datasets/water2d)")
    p.add_argument("--particles", type=int, nargs="+", default=[1000, 10000],
                   help="particles per training step, both graphs of the batch together (default: 1000 10000)")
    p.add_argument("--starts", type=int, nargs=2, default=[100, 250], help="frames the 2 windows start at")
    p.add_argument("--ours-variants", nargs="+", default=["plain", "bf16"], choices=OURS_VARIANTS,
                   help="our steps timed beside theirs (default: plain bf16)")
    p.add_argument("--repeats", type=int, help="interleaved timed repeats (default: 3, and 2 from 5,000 particles a graph)")
    p.add_argument("--target-seconds", type=float, default=1.0, help="each repeat lasts about this long (default: 1)")
    add_retry_options(p, "size")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip the same-weights comparison of the two networks")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    p.add_argument("--quick", action="store_true", help="smoke test: the first size only, 1 repeat, no memory")
    p.add_argument("--json", help="write every number to this file")
    p.add_argument("--_memory-child", nargs=2, metavar=("SIDE", "TARGET"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.particles, args.repeats, args.target_seconds, args.no_memory = args.particles[:1], 1, 0.05, True
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = start_run(args)
    if args._memory_child:
        args._memory_child_target = int(args._memory_child[1])
        print(json.dumps(memory_child(args._memory_child[0], args, device)))
        return {}
    t_start = time.perf_counter()
    theirs = load_theirs(Path(args.checkout))
    m = machine()
    pinned = "the pinned commit" if theirs.commit == PINNED_COMMIT else f"NOT the pinned {PINNED_COMMIT[:7]}"
    print(f"# gns vs geoelements/gns, one training step each, batch 2, the GNS model 10 x 128; device {device}, "
          f"{torch.get_num_threads()} thread(s), {m.get('cpu', '?')} ({m['cpu_count']} cores), torch {m['torch']}, "
          f"load average {' '.join(f'{v:.2f}' for v in m.get('loadavg_start', ()))}"
          f"{', QUICK (not for figures)' if args.quick else ''}")
    print(f"geoelements/gns: {args.checkout} at {theirs.commit} ({pinned})")
    print(f"their neighbour search: {theirs.neighbour_search}")
    results = {"machine": m, "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                                      if not k.startswith("_")},
               "geoelements_commit": theirs.commit, "neighbour_search": theirs.neighbour_search, "sizes": {}}
    for target in args.particles:
        res = run_size(target, theirs, args, device)
        results["sizes"][str(target)] = res
        print_size(res, device)
    print("\nspeed vs geoelements/gns = their median seconds per step / this step's (above 1: faster than theirs)")
    return finish_run(results, t_start, args.json)


if __name__ == "__main__":
    main()
