"""Counterfactual accuracy of an object model against the pymunk solver, per intervention kind and horizon.

Over ``--starts`` held-out start states (test trajectories, one start frame each, spread over the
trajectory), every intervention kind acts on the object nearest another (the one most likely to
change what collides), the first candidate of its kind that both the model's and the solver's
checks accept (an overlapping, out-of-box or beyond-the-training-range candidate is replaced by the
next; a kind with none left is skipped on that state, and counted):

* ``remove`` it; ``move`` it 3 cm towards its nearest neighbour (or away, or sideways);
* ``resize`` it x1.15 (or x0.87), its mass following its area; ``reweigh`` it x2 (or x0.5);
* ``kick`` it towards its nearest neighbour at 0.3 m/s (or 0.15); ``set_velocity``: stop it (and its spin);
* ``actions``: push it towards its nearest neighbour at 1.5 m/s^2 (force = mass x acceleration; or 0.75)
  for 15 frames instead of its own actions.

The factual future and every variant roll out as one batch (:func:`gns.counterfactual.run_counterfactuals`)
and the solver re-simulates each from the same intervened state (:class:`gns.solvers.objects2d.ObjectReplay`).
Printed per kind, averaged over the start states: the MSE of the predicted *effect* (counterfactual
minus factual) against the solver's, of position (m^2) and angle (rad^2), for the model, constant
velocity and ``no_effect`` (nothing changes), with the size of the true effect (the solver's mean
distance to the factual, m); and, pooled over the states, the share of object pairs whose collision
outcome under the intervention agrees with the solver's (issue 11's target: at least 85%), and the
share on which whether the intervention changes it agrees.

The model: ``--checkpoint`` (a run directory or a ``.pt``), else the ``objects`` preset trained here for
``--train-steps`` (its ``time_budget_s`` too) on ``--dataset`` (generated with the default Objects2D
config when missing).

    python benchmarks/objects_counterfactual.py --checkpoint runs/objects2d --dataset datasets/objects2d
    python benchmarks/objects_counterfactual.py --train-steps 6000 --run runs/objects_cf   # train first
    python benchmarks/objects_counterfactual.py --quick      # smoke test: a tiny set, a model trained 5 steps
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from throughput import finish_run, log, machine, start_run, table  # noqa: E402

from gns.counterfactual import factual_scenario, run_counterfactuals  # noqa: E402
from gns.domains import evaluation_for, get_domain, load_simulator, open_split_for  # noqa: E402
from gns.errors import GnsInputError  # noqa: E402
from gns.interventions import (Intervention, Kick, Move, Remove, Resize, Reweigh, Scenario, Selection,  # noqa: E402
                               SetInput, SetVelocity, Space, apply_interventions)

KINDS = ("remove", "move", "resize", "reweigh", "kick", "set_velocity", "actions")
ROLLOUTS = ("model", "constant_velocity", "no_effect")
QUICK_TRAINING = ["model.latent_size=16", "model.message_passing_steps=1", "model.hidden_layers=1",
                  "train.batch_size=2", "train.log_every=5", "train.eval_every=5", "train.checkpoint_every=5",
                  "train.valid_windows=2", "train.valid_rollouts=1", "train.valid_rollout_steps=2", "device=cpu"]


# ============================================================================================ the model
def dataset_and_model(args: argparse.Namespace) -> tuple[Path, Any, dict]:
    """The dataset (generated when missing) and the trained model (loaded, or trained here)."""
    from gns.solvers.objects2d import Objects2DConfig, generate_objects2d

    dataset = Path(args.dataset)
    if not (dataset / "metadata.json").exists():
        config = Objects2DConfig.small(num_workers=1) if args.quick else Objects2DConfig()
        log(f"generating {dataset} ({config.num_train}/{config.num_valid}/{config.num_test} trajectories)")
        generate_objects2d(dataset, config, progress=False)
    if args.checkpoint:
        simulator, config, _ = load_simulator(_checkpoint(Path(args.checkpoint)), args.device)
        return dataset, simulator, {"checkpoint": str(args.checkpoint), "train_steps": None}
    from gns.config import load_config, preset_path
    from gns.train.loop import Trainer
    from gns.train.task import SimulatorTask

    overrides = [f"dataset={dataset}", f"out_dir={args.run}", f"device={args.device}"]
    overrides += QUICK_TRAINING if args.quick else []
    overrides += [f"train.steps={args.train_steps}"] if args.train_steps else []
    config = load_config(overrides=overrides, base=load_config(preset_path("objects")))
    t0 = time.perf_counter()
    trainer = Trainer(config, SimulatorTask(config, get_domain("objects")), config.out_dir)
    trainer.resume()
    log(f"training the objects preset for {config.train.steps} steps (time budget {config.train.time_budget_s} s) "
        f"-> {config.out_dir}")
    trainer.train(progress=False)
    seconds = time.perf_counter() - t0
    simulator, _, _ = load_simulator(Path(config.out_dir) / "checkpoints" / "latest.pt", args.device)
    return dataset, simulator, {"checkpoint": str(Path(config.out_dir) / "checkpoints" / "latest.pt"),
                                "train_steps": trainer.step, "train_seconds": seconds}


def _checkpoint(path: Path) -> Path:
    for name in ("best.pt", "latest.pt"):
        if path.is_dir() and (path / "checkpoints" / name).exists():
            return path / "checkpoints" / name
    return path


# ============================================================================================ variants
def candidates(factual: Scenario, kind: str) -> list[list[Intervention]]:
    """The interventions of ``kind`` to try on the object nearest another, best first."""
    position = factual.state.position[:, -1].double()                                       # (K, 2)
    distance = torch.cdist(position, position) + torch.diag(torch.full((len(position),), math.inf,
                                                                       dtype=position.dtype))
    target = int(distance.min(dim=1).values.argmin())
    toward = position[int(distance[target].argmin())] - position[target]
    toward = (toward / toward.norm()).float()
    side = torch.stack([-toward[1], toward[0]])
    one = Selection(index=(target,))
    mass = float(factual.state.static["mass"][target])
    push = lambda a: SetInput("action", value=[*(mass * a * toward).tolist(), 0.0], to_frame=15,  # noqa: E731
                              select=one)
    table_ = {
        "remove": [[Remove(one)]],
        "move": [[Move(one, (0.03 * d).tolist())] for d in (toward, -toward, side, -side)],
        "resize": [[Resize(one, scale=s)] for s in (1.15, 0.87)],
        "reweigh": [[Reweigh(one, scale=s)] for s in (2.0, 0.5)],
        "kick": [[Kick(one, (v * toward).tolist())] for v in (0.3, 0.15)],
        "set_velocity": [[SetVelocity(one, [0.0, 0.0], spin=0.0)]],
        "actions": [[push(a)] for a in (1.5, 0.75)],
    }
    return table_[kind]


def variants_for(factual: Scenario, space: Space, replay: Any, steps: int) -> tuple[dict, dict]:
    """One accepted variant per kind (``{kind: interventions}``) and why the others were skipped."""
    chosen, skipped = {}, {}
    for kind in KINDS:
        reasons = []
        for interventions in candidates(factual, kind):
            try:
                scenario = apply_interventions(factual, interventions, space, kind)
                replay.prepare({kind: scenario}, steps)                  # the solver's own checks (pymunk)
            except GnsInputError as error:
                reasons.append(str(error))
                continue
            chosen[kind] = interventions
            break
        else:
            skipped[kind] = reasons[-1]
    return chosen, skipped


def start_states(windows: Any, window: int, steps: int, count: int) -> list[tuple[int, int]]:
    """``count`` (trajectory, start frame) pairs: each test trajectory in turn, starts spread over it."""
    out, index = [], 0
    trajectories = len(windows.keys())
    while len(out) < count and index < 50 * trajectories:
        trajectory = index % trajectories
        room = windows.num_frames(trajectory) - steps - window
        if room >= 0:
            out.append((trajectory, window - 1 + (index * 37) % (room + 1)))
        index += 1
    return out


# ============================================================================================ scores
def one_state(simulator: Any, space: Space, windows: Any, dataset: Path, trajectory: int, start: int, steps: int,
              horizons: tuple[int, ...]) -> dict:
    """Every kind's scores on one start state."""
    from gns.solvers.objects2d import ObjectReplay

    factual = factual_scenario(windows, trajectory, start, steps, simulator.window, True)
    replay = ObjectReplay.from_dataset(dataset, "test", trajectory, start)
    chosen, skipped = variants_for(factual, space, replay, steps)
    result = run_counterfactuals(simulator, factual, chosen, steps, space, horizons=horizons, solver=replay)
    kinds = {}
    for kind in chosen:
        scores = result.scores[kind]
        distance = result.divergence[kind]["solver"]["distance"]
        kinds[kind] = {"effect": {r: scores["effect"][r] for r in ROLLOUTS},
                       "effect_angle": {r: scores["effect_angle"][r] for r in ROLLOUTS},
                       "true_effect_distance": {**{str(h): float(distance[h - 1]) for h in result.horizons},
                                                "full": float(distance.mean())},
                       "collisions": scores["collisions"],
                       "interventions": [dict(op=i.op, **{k: _plain(v) for k, v in vars(i).items()})
                                         for i in chosen[kind]]}
    return {"trajectory": trajectory, "start": start, "objects": factual.state.num_entities, "kinds": kinds,
            "skipped": skipped, "divergences": {k: v for k, v in result.divergences.items()}}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {k: v for k, v in dataclasses.asdict(value).items() if v is not None and v is not False}
    return value


def aggregate(states: list[dict], columns: list[str]) -> dict:
    """Per kind: effect errors averaged over the states, collision shares pooled over their pairs."""
    out = {}
    for kind in KINDS:
        rows = [s["kinds"][kind] for s in states if kind in s["kinds"]]
        if not rows:
            out[kind] = {"states": 0}
            continue
        entry: dict[str, Any] = {"states": len(rows)}
        for key in ("effect", "effect_angle"):
            entry[key] = {r: {c: float(np.mean([row[key][r][c] for row in rows])) for c in columns} for r in ROLLOUTS}
        entry["true_effect_distance"] = {c: float(np.mean([row["true_effect_distance"][c] for row in rows]))
                                         for c in columns}
        entry["collisions"] = pool_collisions([row["collisions"] for row in rows], columns)
        out[kind] = entry
    out["all"] = {"collisions": pool_collisions([s["kinds"][k]["collisions"] for s in states for k in s["kinds"]],
                                                columns)}
    return out


def pool_collisions(entries: list[dict], columns: list[str]) -> dict:
    """Shares over every pair of every entry (each entry's share weighted by its pairs), and the pairs changed."""
    pairs = sum(e["pairs"] for e in entries)
    pooled: dict[str, Any] = {"pairs": pairs, "changed": {c: sum(e["changed"][c] for e in entries) for c in columns}}
    for table_name in ("agreement", "change_agreement"):
        pooled[table_name] = {r: {c: sum(e[table_name][r][c] * e["pairs"] for e in entries) / max(pairs, 1)
                                  for c in columns} for r in ("model", "constant_velocity", "no_effect")}
    return pooled


# ============================================================================================ printing
def print_tables(aggregated: dict, columns: list[str]) -> None:
    for key, unit in (("effect", "position, m^2"), ("effect_angle", "angle, rad^2")):
        print(f"\n### effect MSE against the solver ({unit}), mean over start states")
        rows = []
        for kind in KINDS:
            entry = aggregated[kind]
            if not entry["states"]:
                rows.append([kind, 0, "skipped everywhere", *[""] * (len(columns) - 1)])
                continue
            for rollout in ROLLOUTS:
                rows.append([kind if rollout == "model" else "", entry["states"] if rollout == "model" else "",
                             rollout, *[f"{entry[key][rollout][c]:.3g}" for c in columns]])
            if key == "effect":
                rows.append(["", "", "true effect (solver's mean distance, m)",
                             *[f"{entry['true_effect_distance'][c]:.3g}" for c in columns]])
        print(table(["kind", "states", "rollout", *columns], rows))
    print("\n### collision outcome under intervention: share of object pairs agreeing with the solver (pooled)")
    rows = []
    for kind in (*KINDS, "all"):
        entry = aggregated[kind]
        if "collisions" not in entry:
            continue
        pooled = entry["collisions"]
        first = len(rows)
        for table_name, label in (("agreement", "outcome"), ("change_agreement", "changed or not")):
            for rollout in ("model", "no_effect"):
                shares = pooled[table_name][rollout]
                rows.append(["", "", f"{label}: {rollout}", *[f"{shares[c]:.3f}" for c in columns]])
        changed = pooled["changed"]
        rows.append(["", "", "pairs whose outcome the solver says changed", *[str(changed[c]) for c in columns]])
        rows[first][:2] = [kind, pooled["pairs"]]
    print(table(["kind", "pairs", "", *columns], rows))


# ============================================================================================ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=str(REPO / "datasets" / "objects2d"), help="generated when missing")
    p.add_argument("--checkpoint", help="a trained objects model (run directory or .pt); default: train one")
    p.add_argument("--run", default=str(REPO / "runs" / "objects_counterfactual"), help="where to train one")
    p.add_argument("--train-steps", type=int, help="training steps (default: the preset's)")
    p.add_argument("--starts", type=int, default=50, help="held-out start states (default: 50)")
    p.add_argument("--steps", type=int, default=50, help="steps rolled out from each (default: 50)")
    p.add_argument("--horizons", type=int, nargs="+", default=[1, 5, 10, 20, 50])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--quick", action="store_true", help="smoke test: tiny set, 5 training steps, 2 states, 8 steps")
    p.add_argument("--json", metavar="OUT", help="write every number to this JSON file")
    args = p.parse_args(argv)
    if args.quick:
        args.train_steps, args.starts, args.steps = args.train_steps or 5, min(args.starts, 2), min(args.steps, 8)
        args.horizons = [h for h in args.horizons if h <= args.steps] or [args.steps]
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    start_run(args)
    results: dict = {"machine": machine(), "args": vars(args)}
    dataset, simulator, model = dataset_and_model(args)
    results["model"] = model
    space = get_domain("objects").intervention_space(simulator, dataset)
    windows = evaluation_for(simulator).windows(open_split_for(simulator, dataset, "test"))
    horizons = tuple(h for h in args.horizons if h <= args.steps)
    columns = [*map(str, horizons), "full"]
    states = []
    for trajectory, start in start_states(windows, simulator.window, args.steps, args.starts):
        states.append(one_state(simulator, space, windows, dataset, trajectory, start, args.steps, horizons))
        log(f"state {len(states)}/{args.starts}: trajectory {trajectory}, frame {start}, "
            f"{len(states[-1]['kinds'])} kinds answered, skipped {sorted(states[-1]['skipped'])}")
    aggregated = aggregate(states, columns)
    results.update(states=states, aggregated=aggregated, horizons=list(horizons))
    trained = (f"trained {model['train_steps']} steps in {model['train_seconds']:.0f} s here"
               if model.get("train_seconds") is not None else "loaded")
    print(f"## objects counterfactuals: {len(states)} held-out start states of {dataset}, {args.steps} steps; model "
          f"{model['checkpoint']} ({trained})")
    print_tables(aggregated, columns)
    overall = aggregated["all"]["collisions"]
    last = columns[-2] if len(columns) > 1 else columns[-1]
    outcome, change = overall["agreement"], overall["change_agreement"]
    print(f"\ncollision outcome under intervention, every kind pooled, at h{last}: model "
          f"{outcome['model'][last]:.3f} of {overall['pairs']} pairs agree with the solver (target >= 0.85), "
          f"no_effect {outcome['no_effect'][last]:.3f}; whether it changes: model {change['model'][last]:.3f}, "
          f"no_effect {change['no_effect'][last]:.3f}")
    skipped = {kind: sum(kind in s["skipped"] for s in states) for kind in KINDS}
    print(f"kinds skipped (no candidate accepted) on how many states: {skipped}")
    return finish_run(results, t_start, args.json)


if __name__ == "__main__":
    main()
