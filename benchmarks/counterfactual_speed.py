"""Futures per second of counterfactual queries: K variants rolled out as one batch vs one at a time.

For a water state of about 1000 particles (the demo model) and the default flag (the cloth
preset's model), K = 1, 16, 128 variants plus the factual roll out 100 steps:

* **one batch**: the factual and the K variants as one batch through :func:`gns.rollout.rollout`;
  futures per second = (K + 1) / seconds;
* **chunked**: batches of at most ``--chunk`` entities (:func:`gns.rollout.rollout_many`; what
  ``gns counterfactual`` does on a CPU, default :data:`gns.rollout.CPU_CHUNK_ENTITIES`);
* **one at a time**: each future rolled out alone, the plain alternative; timed on up to
  ``--sequential-cap`` futures (each is independent, so the rate per future does not depend on
  K), reported as futures per second.

Variants: every fourth removes a tenth of the entities (water) or a column of the sheet (cloth),
so the batch holds systems of different sizes; the others kick a random subset (water) or scale
the wind (cloth). Peak memory: the resident memory above the pre-rollout level of one batched
rollout and of one single rollout, in a fresh process each (CPU: ``VmHWM`` reset by
``clear_refs``; CUDA: ``max_memory_allocated``), divided by the futures it held.

Weights: ``--water-checkpoint`` / ``--cloth-checkpoint`` when given (default: ``runs/demo`` and
``runs/cloth`` when they exist), else the preset's architecture with random weights (the time of
a step does not depend on the weights, except through the graph a rollout reaches). States:
``datasets/water2d`` / ``datasets/cloth`` when present, else synthetic ones.

    python benchmarks/counterfactual_speed.py                      # 2 CPU threads, about 10 minutes
    python benchmarks/counterfactual_speed.py --quick              # smoke test
    python benchmarks/counterfactual_speed.py --device cuda --json gpu.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from throughput import (add_retry_options, finish_run, log, machine, peak_memory, quietest, start_run,  # noqa: E402
                        table)

from gns.config import load_config, preset_path  # noqa: E402
from gns.interventions import Kick, Remove, Scenario, Selection, SetInput, apply_interventions  # noqa: E402
from gns.rollout import CPU_CHUNK_ENTITIES, rollout, rollout_many  # noqa: E402
from gns.state import State  # noqa: E402

DOMAINS = ("water", "cloth")


# =============================================================================================
# models and states
# =============================================================================================
def water_setup(args: argparse.Namespace, device: torch.device):
    """The demo model (trained if a checkpoint is there) and a factual water scenario of ~1000 particles."""
    from gns.data import load_metadata, open_split
    from gns.domains import get_domain, load_simulator
    from gns.particles.simulator import ParticleSimulator
    from gns.particles.state import ParticleState

    checkpoint = Path(args.water_checkpoint)
    dataset = Path(args.datasets) / "water2d"
    if checkpoint.exists():
        simulator, _, metadata = load_simulator(checkpoint, device)
        source = f"checkpoint {checkpoint}"
    else:
        config = load_config(preset_path("demo"))
        metadata = load_metadata(dataset) if (dataset / "metadata.json").exists() else _water_metadata()
        torch.manual_seed(0)
        simulator = ParticleSimulator(config.model, metadata, 3e-5).to(device).eval()
        source = "demo preset, random weights"
    window = simulator.window
    if (dataset / "test.h5").exists():
        with open_split(dataset, "test", load_metadata(dataset)) as split:
            sizes = [split.num_particles(i) for i in range(len(split))]
            index = min(range(len(sizes)), key=lambda i: abs(sizes[i] - args.particles))
            position = torch.from_numpy(split.read_window(index, 0, window)).transpose(0, 1).contiguous()
            types = torch.from_numpy(split.particle_type(index).astype("int64"))
        state_source = f"datasets/water2d test trajectory {index} ({len(types)} particles)"
    else:
        side = int(round(args.particles ** 0.5))
        grid = torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij"), -1).reshape(-1, 2)
        start = 0.2 + grid.float() * 0.01                                              # a block at rest
        position = start[:, None].repeat(1, window, 1)
        types = torch.full((len(start),), 5)
        state_source = f"synthetic block ({len(types)} particles)"
    state = ParticleState(position, types, torch.tensor([len(types)]))
    steps = args.steps
    controls = {"position": position[:, -1:].repeat(1, steps, 1)}                      # never read: nothing held
    space = get_domain("particles").intervention_space(simulator, dataset) if (dataset / "train.h5").exists() \
        else None
    return simulator, Scenario.factual(state, controls), space, source, state_source


def _water_metadata():
    from gns.data import DatasetMetadata

    return DatasetMetadata(dim=2, dt=0.0025, bounds=[[0.1, 0.9], [0.1, 0.9]], sequence_length=400,
                           default_connectivity_radius=0.025, vel_mean=[0.0, -0.001], vel_std=[0.0013, 0.0013],
                           acc_mean=[0.0, -6e-5], acc_std=[2e-4, 2e-4], periodic_boundary_conditions=[False, False],
                           kinematic_particle_types=[], gravity=[0.0, -6.13e-5])


def cloth_setup(args: argparse.Namespace, device: torch.device):
    """The cloth preset's model and a factual flag scenario (with a sphere when the dataset has one)."""
    from gns.data.mesh import load_mesh_metadata, open_mesh_split
    from gns.domains import get_domain, load_simulator
    from gns.mesh.simulator import MeshSimulator
    from gns.mesh.windows import MeshWindows

    checkpoint = Path(args.cloth_checkpoint)
    dataset = Path(args.datasets) / "cloth"
    if not (dataset / "metadata.json").exists():
        from gns.solvers.cloth import ClothConfig, generate_cloth

        log("no datasets/cloth: generating a 1-trajectory stand-in with the default flag")
        dataset = Path(args.scratch) / "cloth"
        generate_cloth(dataset, dataclasses.replace(ClothConfig(), num_train=1, num_valid=1, num_test=1,
                                                    num_steps=args.steps + 5, obstacle_fraction=1.0),
                       progress=False)
    if checkpoint.exists():
        simulator, _, _ = load_simulator(checkpoint, device)
        source = f"checkpoint {checkpoint}"
    else:
        config = load_config(preset_path("cloth"))
        torch.manual_seed(0)
        simulator = MeshSimulator(config.model, config.mesh, load_mesh_metadata(dataset)).to(device).eval()
        source = "cloth preset, random weights"
    split = open_mesh_split(dataset, "test", load_mesh_metadata(dataset))
    windows = MeshWindows.for_simulator(simulator, split)
    with_sphere = [i for i in range(len(split)) if (split.node_type(i) == 1).any()]
    index = with_sphere[0] if with_sphere else 0
    from gns.counterfactual import factual_scenario

    steps = min(args.steps, windows.num_frames(index) - simulator.window)
    scenario = factual_scenario(windows, index, simulator.window - 1, steps, simulator.window, True)
    space = get_domain("mesh").intervention_space(simulator, dataset)
    return simulator, scenario, space, source, f"{dataset.name} test trajectory {index} " \
                                                f"({scenario.state.num_entities} nodes)"


def variants(domain: str, factual: Scenario, k: int, space, seed: int = 0) -> list[Scenario]:
    """``k`` intervened scenarios: every fourth removes entities, the others kick or change the wind."""
    g = torch.Generator().manual_seed(seed)
    n = factual.state.num_entities
    out = []
    for i in range(k):
        if domain == "water":
            if i % 4 == 3:
                keep = torch.rand(n, generator=g) > 0.1
                ops = [Remove(Selection(mask=~keep))]
            else:
                subset = torch.rand(n, generator=g) < 0.3
                ops = [Kick(Selection(mask=subset), (0.5 * torch.randn(2, generator=g)).tolist())]
        else:
            if i % 4 == 3:
                u = factual.state.static["mesh_pos"][:, 0]
                far = (u == u[factual.state.static["node_type"] == 0].max()) & (factual.state.static["node_type"] == 0)
                ops = [Remove(Selection(mask=far))]
            else:
                ops = [SetInput("wind", scale=float(0.85 + 0.3 * torch.rand(1, generator=g)))]
        out.append(apply_interventions(factual, ops, space, f"v{i}", allow_extrapolation=True)
                   if space is not None else _plain_apply(factual, ops))
    return out


def _plain_apply(factual: Scenario, ops) -> Scenario:
    """Interventions without a dataset-derived space (synthetic water: no walls or ranges checked)."""
    from gns.interventions import Space

    space = Space(kind="particles", dt=0.0025, position_field="position", type_attribute="particle_type",
                  held=lambda s: torch.zeros(s.num_entities, dtype=torch.bool))
    return apply_interventions(factual, ops, space, "v")


def batch(scenarios: list[Scenario]) -> tuple[State, dict]:
    state = type(scenarios[0].state).concat([s.state for s in scenarios])
    controls = {k: torch.cat([s.controls[k] for s in scenarios]) for k in scenarios[0].controls}
    return state, controls


# =============================================================================================
# timing and memory
# =============================================================================================
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batched(simulator, scenarios: list[Scenario], steps: int, device: torch.device) -> float:
    state, controls = batch(scenarios)
    state, controls = state.to(device), {k: v.to(device) for k, v in controls.items()}
    _sync(device)
    t0 = time.perf_counter()
    rollout(simulator, state, steps, controls)
    _sync(device)
    return time.perf_counter() - t0


def time_chunked(simulator, scenarios: list[Scenario], steps: int, device: torch.device, chunk: int) -> float:
    states = [s.state.to(device) for s in scenarios]
    controls = [{k: v.to(device) for k, v in s.controls.items()} for s in scenarios]
    _sync(device)
    t0 = time.perf_counter()
    rollout_many(simulator, states, steps, controls, max_entities=chunk)
    _sync(device)
    return time.perf_counter() - t0


def time_sequential(simulator, scenarios: list[Scenario], steps: int, device: torch.device) -> float:
    """Seconds per future, rolling them out one after the other."""
    _sync(device)
    t0 = time.perf_counter()
    for s in scenarios:
        rollout(simulator, s.state.to(device), steps, {k: v.to(device) for k, v in s.controls.items()})
    _sync(device)
    return (time.perf_counter() - t0) / len(scenarios)


def memory_child(domain: str, k: int, mode: str, args: argparse.Namespace) -> dict:
    device = start_run(args)
    simulator, factual, space, _, _ = (water_setup if domain == "water" else cloth_setup)(args, device)
    steps = min(args.steps, next(iter(factual.controls.values())).shape[1])
    scenarios = [factual, *variants(domain, factual, k, space)]
    if mode == "sequential":
        scenarios = scenarios[:1]
    state, controls = batch(scenarios)
    state, controls = state.to(device), {key: v.to(device) for key, v in controls.items()}
    out = peak_memory(lambda: rollout(simulator, state, steps, controls), device)
    return {"domain": domain, "k": k, "mode": mode, "futures": len(scenarios), **out}


def measure_memory(domain: str, k: int, mode: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_memory-child", domain, str(k), mode,
           "--device", args.device, "--steps", str(args.steps), "--datasets", args.datasets,
           "--water-checkpoint", args.water_checkpoint, "--cloth-checkpoint", args.cloth_checkpoint,
           "--scratch", args.scratch, "--particles", str(args.particles), "--threads", str(args.threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if res.returncode != 0:
        return {"error": res.stderr.strip()[-500:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


# =============================================================================================
# main
# =============================================================================================
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=DOMAINS, help="what to time (default: both)")
    p.add_argument("--k", type=int, nargs="+", default=[1, 16, 128], help="variants per query (default: 1 16 128)")
    p.add_argument("--steps", type=int, default=100, help="rollout steps (default: 100)")
    p.add_argument("--particles", type=int, default=1000, help="water: the test trajectory closest to this size")
    p.add_argument("--chunk", type=int, default=CPU_CHUNK_ENTITIES,
                   help=f"entities per batch of the chunked rollouts (default: {CPU_CHUNK_ENTITIES})")
    p.add_argument("--sequential-cap", type=int, default=8,
                   help="one-at-a-time futures timed per K (the rate per future; default: 8)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--datasets", default=str(REPO / "datasets"), help="folder of water2d/ and cloth/")
    p.add_argument("--water-checkpoint", default=str(REPO / "runs" / "demo" / "checkpoints" / "latest.pt"),
                   help="the water model (default: runs/demo's, else the demo preset with random weights)")
    p.add_argument("--cloth-checkpoint", default=str(REPO / "runs" / "cloth" / "checkpoints" / "latest.pt"),
                   help="the cloth model (default: runs/cloth's, else the cloth preset with random weights)")
    p.add_argument("--scratch", default=str(REPO / "runs" / "bench_counterfactual"),
                   help="where a stand-in cloth dataset is generated when datasets/cloth is missing")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--json", metavar="OUT", help="write every number to this JSON file")
    p.add_argument("--quick", action="store_true", help="smoke test: K = 1 2, 4 steps, 2 sequential futures")
    add_retry_options(p, "cell")
    p.add_argument("--_memory-child", nargs=3, metavar=("DOMAIN", "K", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.k, args.steps, args.sequential_cap, args.no_memory = [1, 2], 4, 2, True
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args._memory_child:
        domain, k, mode = args._memory_child
        print(json.dumps(memory_child(domain, int(k), mode, args)))
        return {}
    t_start = time.perf_counter()
    device = start_run(args)
    results: dict = {"machine": machine(), "device": str(device), "steps": args.steps, "domains": {}}
    for domain in args.domains:
        simulator, factual, space, source, state_source = (water_setup if domain == "water"
                                                           else cloth_setup)(args, device)
        steps = min(args.steps, next(iter(factual.controls.values())).shape[1])
        log(f"{domain}: {source}; {state_source}; {steps} steps")
        rows, cells = [], []
        time_batched(simulator, [factual], min(steps, 3), device)                       # warm up
        for k in args.k:
            scenarios = [factual, *variants(domain, factual, k, space)]
            sizes = [s.state.num_entities for s in scenarios]
            (batched, load_b) = quietest(lambda: time_batched(simulator, scenarios, steps, device),
                                         args.max_background, args.retries)
            (chunked, load_c) = quietest(lambda: time_chunked(simulator, scenarios, steps, device, args.chunk),
                                         args.max_background, args.retries)
            (per_future, load_s) = quietest(lambda: time_sequential(simulator, scenarios[:args.sequential_cap], steps,
                                                                    device), args.max_background, args.retries)
            cell = {"k": k, "futures": k + 1, "entities": sum(sizes), "entities_per_future": [min(sizes), max(sizes)],
                    "batched_s": batched, "batched_futures_per_s": (k + 1) / batched,
                    "chunk_entities": args.chunk, "chunked_s": chunked, "chunked_futures_per_s": (k + 1) / chunked,
                    "sequential_s_per_future": per_future, "sequential_futures_per_s": 1.0 / per_future,
                    "speedup": per_future * (k + 1) / batched, "chunked_speedup": per_future * (k + 1) / chunked,
                    "background_cores": [load_b, load_c, load_s]}
            if not args.no_memory:
                for mode in ("batched", "sequential"):
                    mem = measure_memory(domain, k, mode, args)
                    cell[f"memory_{mode}"] = mem
            cells.append(cell)
            log(f"{domain} K={k}: one batch {cell['batched_futures_per_s']:.2f} futures/s, chunked "
                f"{cell['chunked_futures_per_s']:.2f}, one at a time {cell['sequential_futures_per_s']:.2f}")
            mem_b = cell.get("memory_batched", {})
            mem_s = cell.get("memory_sequential", {})
            per_b = (mem_b.get("peak_rss_delta_mib", float("nan")) / mem_b["futures"]) if "futures" in mem_b \
                else float("nan")
            rows.append([k, cell["entities"], f"{batched:.2f}", f"{cell['batched_futures_per_s']:.2f}",
                         f"{cell['chunked_futures_per_s']:.2f}", f"{cell['sequential_futures_per_s']:.2f}",
                         f"{cell['speedup']:.2f}x", f"{cell['chunked_speedup']:.2f}x",
                         f"{per_b:.1f}", f"{mem_s.get('peak_rss_delta_mib', float('nan')):.1f}",
                         f"{max(load_b, load_c, load_s):.2f}"])
        results["domains"][domain] = {"model": source, "state": state_source, "steps": steps, "cells": cells}
        print(f"\n## {domain}: {state_source}, {steps} steps, {source}, {device}, "
              f"{torch.get_num_threads()} threads")
        print(table(["K", "entities", "one batch s", "one batch futures/s", f"chunks of {args.chunk} futures/s",
                     "one at a time futures/s", "one batch vs one at a time", "chunked vs one at a time",
                     "peak MiB per future (one batch)", "peak MiB (one future alone)", "background cores"], rows))
    return finish_run(results, t_start, args.json)


if __name__ == "__main__":
    main()
