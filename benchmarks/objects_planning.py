"""Planning on object scenes: success of the learned, solver and random planners, and futures per second.

1. **Success** (``gns plan``, :func:`gns.objects.plan.plan_on_split`): the goal tasks of the first
   ``--episodes`` held-out (test) trajectories of the dataset where a goal fits (default 50), each
   solved by the same closed-loop planner (:class:`gns.objects.plan.PlanConfig`, ``--set`` to
   change it) with the learned simulator as its model, with the reference solver as its model (the
   upper bound) and with random forces (the lower bound), every action executed in the solver. The
   issue's target: learned success at least 0.8 of the solver's.
2. **Futures per second**: K = 1, 2, 4, ..., 1024 candidate force sequences of ``horizon`` steps
   from the first task's start, rolled out as one batch through the learned simulator
   (:meth:`gns.objects.plan.LearnedModel.futures`, the planner's own call): futures/s = K / seconds,
   and object-steps/s; the solver as the model simulates candidates one by one, timed on up to
   ``--solver-cap`` of them (its rate per future does not depend on K).

Timings on a shared machine: each cell is re-run while other processes used more than
``--max-background`` cores (``/proc/stat``, as ``throughput.py``); the load that remained and the
load average are printed.

    python benchmarks/objects_planning.py --checkpoint runs/objects2d --dataset datasets/objects2d
    python benchmarks/objects_planning.py --episodes 10 --k 1 16 256 --json planning.json
    python benchmarks/objects_planning.py --quick --checkpoint RUN --dataset TINY   # smoke test
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from throughput import add_retry_options, finish_run, log, machine, quietest, start_run, table  # noqa: E402

from gns.data.objects import open_object_split  # noqa: E402
from gns.domains import load_simulator  # noqa: E402
from gns.objects.plan import (PLANNERS, Episode, LearnedModel, PlanConfig, SolverModel, format_planning,  # noqa: E402
                              plan_on_split, sample_tasks)
from gns.solvers.objects2d import config_from_metadata  # noqa: E402

# --quick: a plan of a few candidates and steps (seconds per episode with the solver as the model)
QUICK = ["steps=10", "horizon=5", "replan_every=5", "candidates=4", "iterations=2", "elites=2"]


def futures_per_second(simulator, dataset: str, config: PlanConfig, ks: list[int], solver_cap: int,
                       args: argparse.Namespace) -> list[dict]:
    """Time the learned model on K candidates as one batch, and the solver one by one, from the first task."""
    with open_object_split(dataset, "test") as split:
        solver = config_from_metadata(split.metadata)
        task = sample_tasks(split, 1, config, solver)[0]
    learned = Episode(task, LearnedModel(simulator), config, solver)
    generator = torch.Generator().manual_seed(0)
    objects = task.scene.num_objects
    learned.cost(torch.zeros(1, config.horizon, 2))                                               # warm up
    solver_episode = Episode(task, SolverModel(solver), config, solver)
    cells = []
    for k in ks:
        actions = torch.rand(k, config.horizon, 2, generator=generator) * 2 - 1

        def timed(episode: Episode, candidates: torch.Tensor) -> float:
            t0 = time.perf_counter()
            episode.cost(candidates)
            return time.perf_counter() - t0

        seconds, load = quietest(lambda: timed(learned, actions), args.max_background, args.retries)
        some = actions[:min(k, solver_cap)]
        solver_seconds, solver_load = quietest(lambda: timed(solver_episode, some), args.max_background, args.retries)
        cell = {"k": k, "objects": objects, "horizon": config.horizon, "learned_s": seconds,
                "learned_futures_per_s": k / seconds, "learned_object_steps_per_s": k * objects * config.horizon
                / seconds, "solver_futures_timed": len(some), "solver_futures_per_s": len(some) / solver_seconds,
                "background_cores": [load, solver_load]}
        cells.append(cell)
        log(f"K={k}: learned {cell['learned_futures_per_s']:.1f} futures/s, solver {cell['solver_futures_per_s']:.1f}")
    return cells


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(REPO / "runs" / "objects2d"),
                   help="object checkpoint, or a run directory (its checkpoints/latest.pt; default: runs/objects2d, "
                        "the objects preset's)")
    p.add_argument("--dataset", default=str(REPO / "datasets" / "objects2d"),
                   help="object dataset whose test split gives the start states (default: datasets/objects2d)")
    p.add_argument("--episodes", type=int, default=50, help="held-out start states (default: 50)")
    p.add_argument("--planners", nargs="+", default=list(PLANNERS), choices=PLANNERS,
                   help="planners to run (default: learned solver random)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a PlanConfig field (repeatable)")
    p.add_argument("--k", type=int, nargs="+", default=[4 ** i for i in range(6)],
                   help="batched candidates timed (default: 1 4 16 64 256 1024)")
    p.add_argument("--solver-cap", type=int, default=16, help="candidates the solver is timed on (default: 16)")
    p.add_argument("--no-success", action="store_true", help="skip the success rates (time only)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... for the learned model (default: cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--json", metavar="OUT", help="write every number to this JSON file")
    p.add_argument("--quick", action="store_true", help="smoke test: 1 episode, a tiny plan, K = 1 2")
    add_retry_options(p, "cell")
    args = p.parse_args(argv)
    if args.quick:
        args.episodes, args.k, args.solver_cap, args.retries = 1, [1, 2], 2, 0
        args.overrides = QUICK + args.overrides
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    device = start_run(args)
    simulator, _, _ = load_simulator(args.checkpoint, device, kind="objects")
    config = PlanConfig().with_overrides(args.overrides)
    results: dict = {"machine": machine(), "device": str(device), "checkpoint": args.checkpoint,
                     "dataset": args.dataset}
    if not args.no_success:
        log(f"planning on {args.episodes} held-out start states: {', '.join(args.planners)}")
        planning = plan_on_split(simulator, args.dataset, "test", args.episodes, config, args.planners,
                                 on_episode=lambda name, r: log(f"{name} {r['task']}: "
                                                                f"{'reached' if r['reached'] else 'missed'}"))
        results["planning"] = planning
        print(f"\n## planning success, {device}, {torch.get_num_threads()} threads\n")
        print(format_planning(planning))
        ratio = planning["learned_vs_solver"]
        if ratio is not None:
            print(f"target: learned / solver >= 0.80: {'met' if ratio >= 0.8 else 'not met'} ({ratio:.2f})")
    cells = futures_per_second(simulator, args.dataset, config, args.k, args.solver_cap, args)
    results["futures"] = cells
    print(f"\n## futures per second, {cells[0]['objects']} objects, {config.horizon} steps, {device}, "
          f"{torch.get_num_threads()} threads\n")
    print(table(["K", "learned s (one batch)", "learned futures/s", "learned object-steps/s",
                 "solver futures/s (one by one)", "background cores"],
                [[c["k"], f"{c['learned_s']:.3f}", f"{c['learned_futures_per_s']:.1f}",
                  f"{c['learned_object_steps_per_s']:.0f}", f"{c['solver_futures_per_s']:.1f}",
                  f"{max(c['background_cores']):.2f}"] for c in cells]))
    return finish_run(results, t_start, args.json)


if __name__ == "__main__":
    main()
