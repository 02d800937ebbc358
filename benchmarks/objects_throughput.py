"""Training and rollout throughput (object-steps/s) and peak memory of the object simulator.

What it measures, for :class:`gns.objects.ObjectSimulator` with the model of the shipped objects preset
(``gns/configs/objects.yaml``, read with :func:`gns.config.load_config`: latent 128, 3 message-passing
steps, 2 hidden layers, every ordered pair of objects in a scene an edge, ``contact_scale`` 0.02),
changed by ``--set SECTION.KEY=VALUE`` (e.g. ``--set objects.impact=true``), on scenes of ``N``
objects (``--objects``, default 8 and 64), ``B`` scenes a batch (``--batch``, default the preset's
``train.batch_size``, 8):

* **train**: one training step as ``gns/train/loop.py`` takes it with the object task
  (``gns/train/task.py``): ``unrolled_loss(..., unroll=0)`` with the training noise of
  ``OBJECTS.noise_settings`` (``objects.noise_share`` of the velocity std) and
  ``train.noise_correction`` (noise, graph building, network, loss), backward, gradient clipping
  (``train.grad_clip``), Adam (``train.lr_init``) and the learning-rate schedule's step, on one batch
  of ``B`` scenes (``window + 1`` frames each). The network runs as ``train.precision`` /
  ``train.checkpoint_processor`` say (``gns.nn.execution.set_execution``, as the loop calls it).
* **rollout**: ``simulator.predict_next(state)`` under ``torch.inference_mode`` in eval mode on the
  same ``B`` scenes (``window`` frames), graph building (all-pairs edges, features) inside the timed
  call; the network as ``eval.precision`` says.
* steps/s and object-steps/s (objects of the batch x steps / s) of both.
* a **batched-rollout sweep**: the rollout step on 1, 16 and 256 scenes of 8 objects in one batch
  (``--sweep``, ``--sweep-objects``), as ``gns evaluate`` and the planner roll many futures out at once.
* **peak memory** of each configuration and mode (and of each sweep cell's rollout) in a fresh
  subprocess: CPU, the peak RSS above the RSS just before the first step (``VmHWM`` reset through
  ``/proc/self/clear_refs``, see ``throughput.memory_child``); CUDA, ``torch.cuda.max_memory_allocated``
  above the allocation before. The training step includes the creation of Adam's state.

The scenes are the reference solver's (``gns/solvers/objects2d.py``): ``sample_scene`` draws each
scene (shapes, sizes, masses, frictions, restitutions, initial velocities and random actions from the
dataset's generator config, ``datasets/objects2d/metadata.json``, or the solver's defaults without
it), ``N`` objects placed without overlap, ``placement_gap`` (1 cm) apart and from the walls, and
``simulate`` (pymunk) runs it for ``window`` steps, so the ``window + 1`` frames hold real collisions
and pushes; the last frame's action is the one drawn for the step after it. Scene ``b`` of a batch is
the solver's trajectory ``b`` of split 0 (the 8-object batch and the sweep share their first scenes).
Up to the dataset's ``max_objects`` (8) the box is the dataset's (1 x 1 m); **64 objects do not fit
in it** (the objects are 8-16 cm wide), so for ``N`` above ``max_objects`` the box is enlarged by
``sqrt(N / max_objects)`` on each side (64 objects: 2.83 x 2.83 m) and the objects keep the dataset's
sizes: the same objects per square metre as the dataset's fullest (8-object) scenes. The simulator's
metadata gets that box (the walls are node inputs), everything else (statistics, time step, shape
codes) is the dataset's. Where pymunk is not installed, the frames after the first are the free
motion under the drawn actions (no contacts; flagged in the output). Object counts change the edges
quadratically: a scene of ``N`` objects has ``N (N - 1)`` pair edges (64 objects: 4,032).

Without ``datasets/objects2d`` the metadata is synthetic: the solver's default box, time step and
shapes with the rounded velocity, acceleration and action statistics of the default dataset (the
normalizers only scale the inputs: the cost of a step does not depend on them). The attribute
normalizer sees the batch once before timing, as a trained model's has seen its data.

Timing as in ``throughput.py`` (whose helpers are imported from it): the configurations take turns
within every repeat (train and rollout of each; the sweep cells among themselves), the median over
repeats is reported, a repeat during which other processes used more than ``--max-background``
cores (``/proc/stat``) is retried, and the other processes' load is printed with every figure.

Examples::

    python benchmarks/objects_throughput.py                          # 8 and 64 objects, batch 8, CPU
    python benchmarks/objects_throughput.py --device cuda --json gpu.json
    python benchmarks/objects_throughput.py --set objects.impact=true --objects 64
    OMP_NUM_THREADS=1 python benchmarks/objects_throughput.py --quick --threads 1   # smoke test, seconds
"""

from __future__ import annotations

import argparse
import copy
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from throughput import (BACKGROUND, rollout_step, add_retry_options, finish_run, interleaved, log, machine,  # noqa: E402
                        peak_memory, start_run, table, table_parser, args_record, loadavg_text)

from gns.config import Config, load_config, preset_path  # noqa: E402
from gns.data.objects import SHAPES, ObjectMetadata, is_object_dataset, load_object_metadata  # noqa: E402
from gns.nn.execution import set_execution  # noqa: E402
from gns.objects.domain import OBJECTS  # noqa: E402
from gns.objects.simulator import ObjectSimulator  # noqa: E402
from gns.objects.state import ObjectState  # noqa: E402
from gns.objects.windows import frames_to_state, scene_static  # noqa: E402
from gns.solvers.objects2d import Objects2DConfig, config_from_metadata, sample_scene, simulate  # noqa: E402
from gns.train.loop import learning_rate  # noqa: E402
from gns.train.losses import unrolled_loss  # noqa: E402

# the default datasets/objects2d's per-step statistics, rounded (used only without the dataset)
SYNTHETIC_STATISTICS = {"vel_mean": [0.0, 0.0], "vel_std": [0.0099, 0.0099], "acc_mean": [0.0, 0.0],
                        "acc_std": [0.0027, 0.0027], "angular_vel_mean": [0.0], "angular_vel_std": [0.103],
                        "angular_acc_mean": [0.0], "angular_acc_std": [0.038], "action_mean": [0.0, 0.0, 0.0],
                        "action_std": [0.88, 0.88, 0.011]}
QUICK = {"objects": [4, 8], "batch": 2, "sweep": [1, 4]}


# =============================================================================================
# the dataset's metadata and generator config, or synthetic ones
# =============================================================================================
@dataclass(frozen=True)
class Base:
    """Where the scenes come from: the metadata the simulator is built for and the solver's config."""
    metadata: ObjectMetadata
    solver: Objects2DConfig
    source: str


def base_for(dataset: Path) -> Base:
    if is_object_dataset(dataset):
        metadata = load_object_metadata(dataset)
        name = dataset.resolve().relative_to(REPO) if dataset.resolve().is_relative_to(REPO) else dataset
        try:
            solver, how = config_from_metadata(metadata), "its generator config"
        except Exception:  # noqa: BLE001 - not made by our solver: its defaults, in the dataset's box
            solver = dataclasses.replace(Objects2DConfig(), bounds=tuple(map(tuple, metadata.bounds)),
                                         frame_dt=metadata.dt)
            how = "the solver's defaults in its box (not made by gns.solvers.objects2d)"
        if metadata.statistics is None:
            metadata = dataclasses.replace(metadata, statistics=SYNTHETIC_STATISTICS)
            how += ", synthetic statistics (it has none)"
        return Base(metadata, solver, f"{name}: metadata, {how}")
    solver = Objects2DConfig()
    metadata = ObjectMetadata(bounds=[list(b) for b in solver.bounds], dt=solver.frame_dt,
                              sequence_length=solver.num_steps, num_objects=[solver.min_objects, solver.max_objects],
                              shape_kinds=dict(SHAPES), contacts=True, statistics=SYNTHETIC_STATISTICS)
    return Base(metadata, solver, f"synthetic metadata (no object dataset at {dataset}): the solver's defaults")


def box_scale(base: Base, objects: int) -> float:
    """Side of the box relative to the dataset's: 1 up to its max_objects, then ``sqrt(N / max_objects)``
    (the same objects per area as its fullest scenes)."""
    return max(1.0, math.sqrt(objects / base.solver.max_objects))


def scaled_bounds(bounds, scale: float) -> tuple[tuple[float, float], tuple[float, float]]:
    return tuple((float(lo), float(lo + (hi - lo) * scale)) for lo, hi in bounds)


# =============================================================================================
# configurations, scenes and the simulator
# =============================================================================================
@dataclass(frozen=True)
class Case:
    """One measured configuration (JSON-able: the memory subprocess rebuilds it from this)."""
    objects: int                      # objects per scene
    batch: int                        # scenes per step
    overrides: list = field(default_factory=list)   # --set
    sweep: bool = False               # a cell of the batched-rollout sweep (rollout only)

    @property
    def label(self) -> str:
        return f"{self.objects} objects x {self.batch} scene{'s' if self.batch != 1 else ''}"


def preset_config(overrides: list[str]) -> Config:
    return load_config(preset_path("objects"), overrides=overrides)


def scene_frames(solver: Objects2DConfig, index: int, frames: int) -> tuple[object, np.ndarray, np.ndarray,
                                                                              np.ndarray, bool]:
    """Scene ``index`` of the solver and its first ``frames`` frames: ``(scene, position (F, K, 2), angle
    (F, K), action (F, K, 3), simulated)``; ``simulated`` False where pymunk is missing (free motion)."""
    scene, state, actions = sample_scene(solver, 0, index)                  # actions (frames, K, 3)
    try:
        traj = simulate(scene, state, actions[:frames - 1], solver)
        return scene, traj.position, traj.angle, actions[:frames], True
    except ImportError:
        pass
    dt = solver.frame_dt                                                     # free motion under the actions
    inertia = np.stack([scene.mass, scene.mass, scene.moment], -1)          # (K, 3)
    pose = np.concatenate([state.position, state.angle[:, None]], -1).astype(np.float64)
    speed = np.concatenate([state.velocity, state.angular_velocity[:, None]], -1).astype(np.float64)
    poses = [pose]
    for t in range(frames - 1):
        speed = speed + actions[t] / inertia * dt
        poses.append(poses[-1] + speed * dt)
    poses = np.stack(poses).astype(np.float32)                              # (F, K, 3)
    return scene, poses[..., :2], poses[..., 2], actions[:frames], False


def make_states(solver: Objects2DConfig, objects: int, batch: int, frames: int) -> tuple[ObjectState, dict]:
    """``batch`` scenes of ``objects`` objects, ``frames`` frames each, as one :class:`ObjectState`."""
    config = dataclasses.replace(solver, min_objects=objects, max_objects=objects, num_steps=frames,
                                 min_obstacles=0, max_obstacles=0)
    states, speeds, simulated = [], [], True
    for b in range(batch):
        scene, position, angle, action, sim = scene_frames(config, b, frames)
        simulated &= sim
        states.append(frames_to_state(position, angle, action, scene_static(scene)))
        speeds.append(np.diff(position, axis=0).reshape(-1, 2))
    speeds = np.concatenate(speeds)
    info = {"velocity_rms": float(np.sqrt(np.mean(np.square(speeds, dtype=np.float64)))),  # per axis, m/step
            "frames": "pymunk" if simulated else "free motion (pymunk missing)"}
    return ObjectState.concat(states), info


@dataclass
class Built:
    """A configuration made concrete: the simulators, their inputs and what they hold."""
    config: Config
    simulator: ObjectSimulator          # for training (train.precision)
    rollout_simulator: ObjectSimulator  # the same weights, for rollouts (eval.precision)
    train_state: ObjectState            # window + 1 frames
    rollout_state: ObjectState          # the first window frames
    noise: tuple[float, float]
    info: dict


def build(case: Case, base: Base, device: torch.device, seed: int = 0) -> Built:
    """The simulator of the preset (weights from ``seed``) in the case's box, and its states."""
    config = preset_config(case.overrides)
    scale = box_scale(base, case.objects)
    bounds = scaled_bounds(base.solver.bounds, scale)
    solver = dataclasses.replace(base.solver, bounds=bounds)
    metadata = dataclasses.replace(base.metadata, bounds=[list(b) for b in bounds],
                                   num_objects=[case.objects, case.objects])
    noise = OBJECTS.noise_settings(config, metadata)
    torch.manual_seed(seed)
    sim = OBJECTS.build_simulator(config, metadata, noise[0]).to(device)
    state, info = make_states(solver, case.objects, case.batch, sim.window + 1)
    state = state.to(device)
    rollout_state = state.window(0, sim.window)
    sim.train()
    with torch.no_grad():          # the attribute normalizer sees the batch once (as a trained model's has)
        sim.build_graph(rollout_state)
    rollout_sim = copy.deepcopy(sim)
    set_execution(sim, precision=config.train.precision, checkpoint_processor=config.train.checkpoint_processor,
                  compile=config.train.compile, key="train.precision")
    set_execution(rollout_sim, precision=config.eval.precision, key="eval.precision")
    with torch.no_grad():
        graph = rollout_sim.eval().build_graph(rollout_state)
    objects = int(state.n.sum())
    side = [hi - lo for lo, hi in bounds]
    info.update(objects=objects, objects_per_scene=case.objects, scenes=case.batch,
                pair_edges=int(graph.edge_sets["pairs"].senders.numel()),
                spring_edges=int(graph.edge_sets["springs"].senders.numel()), box_m=side,
                objects_per_m2=case.objects / (side[0] * side[1]), box_scale=scale,
                parameters=sum(p.numel() for p in sim.parameters()), noise_std=noise[0])
    return Built(config, sim, rollout_sim, state, rollout_state, noise, info)


# =============================================================================================
# the timed steps
# =============================================================================================
class ObjectTrainer:
    """One training step as ``gns.train.loop.Trainer._step`` takes it with the object task (one-step loss, clip,
    Adam, the schedule's step)."""

    def __init__(self, built: Built, device: torch.device) -> None:
        self.sim, self.state, self.train = built.simulator, built.train_state, built.config.train
        self.noise_std, self.gamma = built.noise
        self.opt = torch.optim.Adam(self.sim.parameters(), lr=self.train.lr_init)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: learning_rate(s, self.train) / self.train.lr_init)
        self.gen = torch.Generator(device=device).manual_seed(0)

    def step(self) -> float:
        self.sim.train()
        loss = unrolled_loss(self.sim, self.state, 0, self.noise_std, self.gamma, self.gen, False,
                             self.train.noise_correction)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.sim.parameters(), self.train.grad_clip)
        self.opt.step()
        self.scheduler.step()
        return float(loss.detach())  # waits for the device, like the loop's logging


# =============================================================================================
# peak memory, one fresh subprocess per configuration and mode
# =============================================================================================
def memory_child(case: Case, mode: str, dataset: Path, device: torch.device) -> dict:
    """In a fresh process: peak memory of the first ``mode`` step of ``case`` above the memory just before it
    (see ``throughput.memory_child`` for why ``VmHWM`` is reset rather than ``ru_maxrss`` read)."""
    built = build(case, base_for(dataset), device)
    work = ObjectTrainer(built, device).step if mode == "train" else rollout_step(built.rollout_simulator,
                                                                                  built.rollout_state)
    return {"mode": mode, **peak_memory(work, device)}


def measure_memory(case: Case, modes: tuple[str, ...], args: argparse.Namespace) -> dict[str, dict]:
    out = {}
    for mode in modes:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_memory-child", json.dumps(dataclasses.asdict(case)),
               mode, "--device", args.device, "--dataset", str(args.dataset)]
        cmd += ["--threads", str(args.threads)] if args.threads else []
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            out[mode] = {"mode": mode, "error": res.stderr.strip()[-500:]}
        else:
            out[mode] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


# =============================================================================================
# the runs
# =============================================================================================
def _row(case: Case, built: Built, timing: dict[str, dict], modes: tuple[str, ...], repeats: int) -> dict:
    objects = built.info["objects"]
    row = {"label": case.label, "case": dataclasses.asdict(case), **built.info, "repeats": repeats,
           "timing": {m: timing[f"{m}/{case.label}"] for m in modes}}
    for mode in modes:
        seconds = row["timing"][mode]["median_s"]
        row[f"{mode}_steps_per_s"] = 1 / seconds
        row[f"{mode}_object_steps_per_s"] = objects / seconds
    loads = [x for m in modes for x in row["timing"][m]["background_cores"]]
    row["background_cores"] = {"median": statistics.median(loads), "max": max(loads)}
    return row


def run_group(cases: list[Case], modes: tuple[str, ...], base: Base, args: argparse.Namespace,
              device: torch.device, what: str) -> list[dict]:
    """Build the cases, time their ``modes`` interleaved, and measure their peak memory in fresh processes."""
    built = {}
    for case in cases:
        log(f"{what}: building {case.label}")
        built[case.label] = build(case, base, device)
    fns = {}
    for case in cases:
        b = built[case.label]
        if "train" in modes:
            fns[f"train/{case.label}"] = ObjectTrainer(b, device).step
        fns[f"rollout/{case.label}"] = rollout_step(b.rollout_simulator, b.rollout_state)
    log(f"{what}: timing {len(fns)} functions, {args.repeats} interleaved repeats")
    timing = interleaved(fns, device, args.repeats, args.target_seconds, args.max_background, args.retries,
                         args.retry_budget)
    rows = []
    for case in cases:
        row = _row(case, built[case.label], timing, modes, args.repeats)
        if not args.no_memory:
            log(f"{what}: peak memory of {case.label} (fresh processes)")
            row["memory"] = measure_memory(case, modes, args)
        rows.append(row)
    return rows


def _memory_cell(row: dict, modes: tuple[str, ...], device: torch.device) -> str:
    if "memory" not in row:
        return "-"
    key = "cuda_peak_delta_mib" if device.type == "cuda" else "peak_rss_delta_mib"
    return " / ".join(f"{row['memory'][m][key]:.0f}" if key in row["memory"][m] else "error" for m in modes)


def _load(row: dict) -> str:
    return f"{row['background_cores']['median']:.2f} ({row['background_cores']['max']:.2f})"


def print_results(results: dict, device: torch.device) -> None:
    label = "CUDA max_memory_allocated" if device.type == "cuda" else "peak RSS"
    scenes = f"{results['batch']} scene{'s' if results['batch'] != 1 else ''}"
    print(f"\n## training and rollout, {scenes} a batch\n\nmedian of interleaved repeats after a "
          f"warm-up call; objects and pair edges per step (the whole batch); object-steps/s = objects x steps/s; "
          f"peak memory above the pre-step baseline ({label}, a fresh process per cell); background: other "
          f"processes' CPU load in cores, median (max) over the kept samples\n")
    rows = [[r["label"], f"{r['objects']:,}", f"{r['pair_edges']:,}", f"{r['train_steps_per_s']:.3g}",
             f"{r['train_object_steps_per_s']:,.0f}", f"{r['rollout_steps_per_s']:.3g}",
             f"{r['rollout_object_steps_per_s']:,.0f}", _memory_cell(r, ("train", "rollout"), device), _load(r)]
            for r in results["cases"]]
    print(table(["config", "objects", "pair edges", "train steps/s", "train object-steps/s", "rollout steps/s",
                 "rollout object-steps/s", "peak memory train / rollout (MiB)", "background load (cores)"], rows))
    if results["sweep"]:
        print(f"\n## batched rollout: scenes of {results['sweep'][0]['objects_per_scene']} objects rolled out as "
              f"one batch\n")
        rows = [[r["scenes"], f"{r['objects']:,}", f"{r['pair_edges']:,}", f"{r['rollout_steps_per_s']:.3g}",
                 f"{r['scenes'] * r['rollout_steps_per_s']:,.0f}", f"{r['rollout_object_steps_per_s']:,.0f}",
                 _memory_cell(r, ("rollout",), device), _load(r)] for r in results["sweep"]]
        print(table(["scenes", "objects", "pair edges", "rollout steps/s", "scene-steps/s", "rollout object-steps/s",
                     "peak memory rollout (MiB)", "background load (cores)"], rows))
    print("\n## scenes (the solver's: sample_scene, then simulate for the window)\n")
    rows = [[r["label"], f"{r['box_m'][0]:.2f} x {r['box_m'][1]:.2f}", f"{r['objects_per_m2']:.1f}",
             f"{r['pair_edges'] // r['scenes']:,}", f"{r['velocity_rms'] * 1e3:.1f}", r["frames"]]
            for r in results["cases"] + results["sweep"]]
    print(table(["config", "box (m)", "objects/m^2", "pair edges/scene", "velocity RMS (mm/step)", "frames"], rows))
    stats = results["metadata"].get("vel_std")
    if stats:
        print(f"velocity RMS: per axis over the frames' per-step displacements, beside the metadata's velocity std "
              f"{np.mean(stats) * 1e3:.1f} mm/step")
    print()


# =============================================================================================
# command line
# =============================================================================================
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = table_parser(__doc__)
    p.add_argument("--objects", type=int, nargs="+", default=None,
                   help="objects per scene, one configuration each (default: 8 64; above the dataset's 8 the box "
                        "grows to keep the objects per area)")
    p.add_argument("--batch", type=int, default=None,
                   help="scenes per training and rollout step (default: the preset's train.batch_size, 8)")
    p.add_argument("--sweep", type=int, nargs="*", default=None,
                   help="scenes rolled out as one batch in the batched-rollout sweep (default: 1 16 256; "
                        "--sweep with no value: no sweep)")
    p.add_argument("--sweep-objects", type=int, default=8, help="objects per scene of the sweep (default: 8)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a setting of the objects preset, e.g. objects.impact=true (repeatable)")
    p.add_argument("--dataset", type=Path, default=REPO / "datasets" / "objects2d",
                   help="object dataset whose metadata and generator config make the scenes; synthetic ones "
                        "without it (default: datasets/objects2d)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed repeats, after one warm-up call; the median is reported (default: 3)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 4 and 8 objects, batch 2, a sweep of 1 and 4 scenes, 1 repeat, short timings, "
                        "no memory subprocesses (seconds; not for figures)")
    add_retry_options(p, "group of interleaved configurations")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--_memory-child", nargs=2, metavar=("CASE_JSON", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.objects = args.objects or QUICK["objects"]
        args.batch = args.batch or QUICK["batch"]
        args.sweep = QUICK["sweep"] if args.sweep is None else args.sweep
        args.repeats, args.target_seconds, args.no_memory = 1, 0.02, True
        args.retries, args.retry_budget = min(args.retries, 1), min(args.retry_budget, 2.0)
    args.objects = args.objects or [8, 64]
    args.sweep = [1, 16, 256] if args.sweep is None else args.sweep
    if any(n < 1 for n in [*args.objects, *args.sweep, args.sweep_objects, args.batch or 1]):
        p.error("--objects, --batch, --sweep and --sweep-objects must be positive")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = start_run(args)
    if args._memory_child:
        case_json, mode = args._memory_child
        print(json.dumps(memory_child(Case(**json.loads(case_json)), mode, args.dataset, device)))
        return {}

    t_start = time.perf_counter()
    config = preset_config(args.overrides)
    batch = args.batch or config.train.batch_size
    base = base_for(args.dataset)
    results: dict = {"machine": machine(device), "args": args_record(args),
                     "batch": batch, "source": base.source, "metadata": base.metadata.to_dict(),
                     "model": dataclasses.asdict(config.model), "objects_config": dataclasses.asdict(config.objects),
                     "cases": [], "sweep": []}
    results["metadata"].pop("generator", None)
    m, mc, oc = results["machine"], config.model, config.objects
    overrides = f", overrides {' '.join(args.overrides)}" if args.overrides else ""
    print(f"# gns object throughput: objects preset (latent {mc.latent_size}, {mc.message_passing_steps} message "
          f"passing steps, {mc.hidden_layers} hidden layers, edges {oc.edges}, contact_scale {oc.contact_scale}"
          f"{overrides}); device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{m.get('cpu', '?')} ({m['cpu_count']} cores), load average {loadavg_text(m.get('loadavg_start'))}"
          f"{', QUICK (tiny, 1 repeat: not for figures)' if args.quick else ''}\nscenes from {base.source}")
    cases = [Case(n, batch, list(args.overrides)) for n in args.objects]
    results["cases"] = run_group(cases, ("train", "rollout"), base, args, device, "train and rollout")
    if args.sweep:
        sweep = [Case(args.sweep_objects, k, list(args.overrides), sweep=True) for k in args.sweep]
        results["sweep"] = run_group(sweep, ("rollout",), base, args, device, "batched rollout")
    print_results(results, device)
    kept = [x for r in results["cases"] + results["sweep"] for t in r["timing"].values()
            for x in t["background_cores"]]
    if BACKGROUND.available and kept:
        print(f"other processes' CPU load during the kept samples: median {statistics.median(kept):.2f}, max "
              f"{max(kept):.2f} cores (retry threshold {args.max_background})")
    return finish_run(results, t_start, args.json)


if __name__ == "__main__":
    main()
