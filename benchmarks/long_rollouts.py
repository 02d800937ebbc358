"""Levers for long rollouts: train variants of a preset, score each over whole held-out trajectories.

Each lever is a set of config overrides on top of a preset (default: the main job's, ``demo``).
Every (lever, seed) trains the same number of optimizer steps (the preset's, or ``--steps``; the
preset's wall-clock budget is lifted so that slower variants are not cut short), then its latest
checkpoint rolls out the held-out test split and is scored as a user of long rollouts would:

* **multi-start**: rollouts of 100 steps started every 50 frames; the better baseline's MSE over the
  model's at horizons 20, 50 and 100 (above 1: the model wins);
* **from the first frame, whole trajectory**: the full-trajectory position MSE against constant
  velocity's and gravity-only's; ``escape``: how far any predicted particle strays beyond the box
  spanned by the true particles at the same step, as a share of the box width (target: at most
  0.02); ``KE x``: the largest factor between predicted and true mean kinetic energy over 50-step
  windows (target: at most 2); the first divergence the rollout monitor reported.

Runs go to ``--out/<lever>-s<seed>/`` (a finished one is reused: rerun to add levers or seeds);
``--jobs`` runs that many at once, each with ``--threads`` torch threads. The table is printed
from every finished run under ``--out`` (``--table`` prints it without training anything).

    python benchmarks/long_rollouts.py --levers preset noise_3e-4 --seeds 0 1 --jobs 2 --threads 1
    python benchmarks/long_rollouts.py --table
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# name -> (what changes, overrides of the preset). The preset is the reference row.
LEVERS: dict[str, tuple[str, list[str]]] = {
    "preset": ("the base: the main job's preset until the near_walls_3e-5_unroll10 row replaced it", []),
    "noise_1e-4": ("random-walk noise 1e-4", ["train.noise_std=1e-4"]),
    "noise_3e-4": ("random-walk noise 3e-4", ["train.noise_std=3e-4"]),
    "noise_paper": ("noise at the GNS paper's ratio to the velocity std (7.1e-4)", ["train.noise_std=7.1e-4"]),
    "velocities_3e-4": ("GNS velocity inputs, noise 3e-4",
                        ["model.velocity_encoding=velocities", "train.noise_std=3e-4"]),
    "unroll5_3e-4": ("noise 3e-4, pushforward up to 5 steps, reached by step 3000",
                     ["train.noise_std=3e-4", "train.pushforward_steps=[0,600,1500,3000]",
                      "train.pushforward_unrolls=[0,1,3,5]", "train.pushforward_probs=[8,2,2,2]"]),
    "unroll10_3e-4": ("noise 3e-4, pushforward up to 10 steps, reached by step 3000",
                      ["train.noise_std=3e-4", "train.pushforward_steps=[0,600,1500,3000]",
                       "train.pushforward_unrolls=[0,2,5,10]", "train.pushforward_probs=[8,2,2,2]"]),
    "edgevel_3e-4": ("relative velocities on the edges, noise 3e-4", ["model.edge_velocity=true",
                                                                      "train.noise_std=3e-4"]),
    "edgevel_1e-4": ("relative velocities on the edges, noise 1e-4", ["model.edge_velocity=true",
                                                                      "train.noise_std=1e-4"]),
    "edgevel_vel_3e-4": ("relative velocities on the edges, GNS velocity inputs, noise 3e-4",
                         ["model.edge_velocity=true", "model.velocity_encoding=velocities", "train.noise_std=3e-4"]),
    "near_walls_3e-4": ("velocity changes + last velocity only near walls, relative velocities on edges, "
                        "noise 3e-4", ["model.velocity_encoding=near_walls", "model.edge_velocity=true",
                                       "train.noise_std=3e-4"]),
    "near_walls_1e-4": ("velocity changes + last velocity only near walls, relative velocities on edges, "
                        "noise 1e-4", ["model.velocity_encoding=near_walls", "model.edge_velocity=true",
                                       "train.noise_std=1e-4"]),
    "onestep_3e-4": ("noise 3e-4, one-step loss (no pushforward)", ["train.noise_std=3e-4", "train.loss=onestep"]),
    "latent64_3e-4": ("latent 64, noise 3e-4", ["model.latent_size=64", "train.noise_std=3e-4"]),
    "mp6_3e-4": ("6 message-passing steps, noise 3e-4", ["model.message_passing_steps=6", "train.noise_std=3e-4"]),
    "batch2_3e-4": ("batch 2, noise 3e-4", ["train.batch_size=2", "train.noise_std=3e-4"]),
    "steps2x_3e-4": ("twice the steps, noise 3e-4",
                     ["train.steps=12000", "train.lr_decay_steps=12000", "train.noise_std=3e-4",
                      "train.pushforward_steps=[0,2400,6400,9600]"]),
}

NEAR_WALLS = ["model.velocity_encoding=near_walls", "model.edge_velocity=true"]
LEVERS.update({
    "near_walls_1e-4_latent64": ("near walls (as above), noise 1e-4, latent 64",
                                 NEAR_WALLS + ["train.noise_std=1e-4", "model.latent_size=64"]),
    "near_walls_1e-4_unroll5": ("near walls, noise 1e-4, pushforward up to 5 steps, reached by step 3000",
                                NEAR_WALLS + ["train.noise_std=1e-4", "train.pushforward_steps=[0,600,1500,3000]",
                                              "train.pushforward_unrolls=[0,1,3,5]",
                                              "train.pushforward_probs=[8,2,2,2]"]),
    "near_walls_1e-4_steps2x": ("near walls, noise 1e-4, twice the steps",
                                NEAR_WALLS + ["train.noise_std=1e-4", "train.steps=12000",
                                              "train.lr_decay_steps=12000",
                                              "train.pushforward_steps=[0,2400,6400,9600]"]),
    "near_walls_3e-4_steps2x": ("near walls, noise 3e-4, twice the steps",
                                NEAR_WALLS + ["train.noise_std=3e-4", "train.steps=12000",
                                              "train.lr_decay_steps=12000",
                                              "train.pushforward_steps=[0,2400,6400,9600]"]),
    "near_walls_3e-5": ("near walls, noise 3e-5 (the preset's)", NEAR_WALLS),
    "near_walls_3e-4_lr3e-4": ("near walls, noise 3e-4, learning rate 3e-4 -> 1e-5 (instead of 1e-3)",
                               NEAR_WALLS + ["train.noise_std=3e-4", "train.lr_init=3e-4"]),
    "near_walls_3e-4_batch2": ("near walls, noise 3e-4, batch 2", NEAR_WALLS + ["train.noise_std=3e-4",
                                                                                 "train.batch_size=2"]),
    "near_walls_paper": ("near walls, noise at the GNS paper's ratio (7.1e-4)", NEAR_WALLS + ["train.noise_std=7.1e-4"]),
    "near_walls_3e-4_unroll5": ("near walls, noise 3e-4, pushforward up to 5 steps, reached by step 3000",
                                NEAR_WALLS + ["train.noise_std=3e-4", "train.pushforward_steps=[0,600,1500,3000]",
                                              "train.pushforward_unrolls=[0,1,3,5]",
                                              "train.pushforward_probs=[8,2,2,2]"]),
})

# How much of the last input velocity's noise the target removes (train.noise_correction; GNS: all of it).
LEVERS.update({
    f"correct{share}_{noise}": (f"noise {noise}, target removes {share} of the last velocity's noise",
                                [f"train.noise_std={noise}", f"train.noise_correction={share}"])
    for share in ("0", "0.2") for noise in ("3e-4", "7.1e-4")})
LEVERS.update({
    f"near_walls_{noise}_correct{share}": (f"near walls, noise {noise}, target removes {share} of the last "
                                           "velocity's noise",
                                           NEAR_WALLS + [f"train.noise_std={noise}", f"train.noise_correction={share}"])
    for share in ("0", "0.2") for noise in ("3e-4", "7.1e-4")})

# The preset's low noise (the model keeps its free fall right) with longer pushforward unrolls instead.
UNROLL10 = ["train.pushforward_steps=[0,600,1500,3000]", "train.pushforward_unrolls=[0,2,5,10]",
            "train.pushforward_probs=[8,2,2,2]"]
LEVERS.update({
    "unroll10_3e-5": ("noise 3e-5 (the preset's), pushforward up to 10 steps, reached by step 3000", UNROLL10),
    "near_walls_3e-5_unroll10": ("near walls, noise 3e-5, pushforward up to 10 steps, reached by step 3000",
                                 NEAR_WALLS + UNROLL10),
    "antisym_unroll10_3e-5": ("antisymmetric decoder (pair terms f_ij = -f_ji: momentum-conserving), noise 3e-5, "
                              "pushforward up to 10 steps", ["model.decoder=antisymmetric"] + UNROLL10),
    "antisym_near_walls_unroll10_3e-5": ("antisymmetric decoder, near walls, noise 3e-5, pushforward up to 10 steps",
                                         ["model.decoder=antisymmetric"] + NEAR_WALLS + UNROLL10),
    # one velocity (no acceleration history to persist): the next acceleration is a function of the state alone
    "h1_near_walls_unroll10_3e-5": ("history 1, near walls, noise 3e-5, pushforward up to 10 steps",
                                    ["model.history=1"] + NEAR_WALLS + UNROLL10),
    "h1_antisym_near_walls_unroll10_3e-5": ("history 1, antisymmetric decoder, near walls, noise 3e-5, "
                                            "pushforward up to 10 steps",
                                            ["model.history=1", "model.decoder=antisymmetric"] + NEAR_WALLS + UNROLL10),
})

# A constant offset per particle over the whole input window (velocities clean), a share of which the target
# removes (train.offset_noise_std, train.offset_restore): the model learns to move a drifted configuration back.
LEVERS.update({
    f"near_walls_3e-5_unroll10_offset{std}_r{restore}": (
        f"near walls, noise 3e-5, pushforward up to 10 steps, a constant offset of std {std} m per particle "
        f"over the window, {restore} of it removed by the target",
        NEAR_WALLS + UNROLL10 + [f"train.offset_noise_std={std}", f"train.offset_restore={restore}"])
    for std in ("3e-4", "1e-3", "3e-3") for restore in ("0.1", "0.3")})

# Unrolls up to 20 steps (the next step past 10), reached by step 4500 of 6000.
UNROLL20 = ["train.pushforward_steps=[0,600,1500,3000,4500]", "train.pushforward_unrolls=[0,2,5,10,20]",
            "train.pushforward_probs=[8,2,2,2,2]"]
LEVERS.update({
    "near_walls_3e-5_unroll20": ("near walls, noise 3e-5, pushforward up to 20 steps, reached by step 4500",
                                 NEAR_WALLS + UNROLL20),
})

# The particle's place in the box (unclipped): the inside of a block in flight and of a resting pool differ only there.
LEVERS.update({
    "near_walls_3e-5_unroll10_boxpos": ("near walls, noise 3e-5, pushforward up to 10 steps, each particle's place in "
                                        "the box as an input (model.box_position)",
                                        NEAR_WALLS + UNROLL10 + ["model.box_position=true"]),
})

# More data, on the main job's configuration: the training (and validation) split comes from another
# dataset; the test split stays the default set's (the generator draws trajectory i of a split from
# rng([seed, split, i]) alone, so these sets share the default set's test trajectories, and their first
# 32 training trajectories are the default set's). Each names the command that makes its dataset.
DATA_LEVERS: dict[str, tuple[str, str, str]] = {
    "near_walls_3e-5_unroll10_train256": (
        "near walls, noise 3e-5, pushforward up to 10 steps, 256 training trajectories (8x)",
        "datasets/water2d_train256", "gns generate water2d --out datasets/water2d_train256 --param num_train=256"),
    "near_walls_3e-5_unroll10_steps1000": (
        "near walls, noise 3e-5, pushforward up to 10 steps, training trajectories of 1000 steps (2.5x)",
        "datasets/water2d_steps1000", "gns generate water2d --out datasets/water2d_steps1000 --param num_steps=1000"),
}
LEVERS.update({name: (what, NEAR_WALLS + UNROLL10 + [f"dataset={data}"])
               for name, (what, data, _) in DATA_LEVERS.items()})

# Pair terms f_ij = -f_ji, one shared acceleration, and a node term only within one radius of a wall
# (model.decoder: gated_antisymmetric): away from walls a block's mean acceleration cannot depend on its inputs.
LEVERS.update({
    "gated_near_walls_unroll10_3e-5": ("gated antisymmetric decoder (pair terms, one shared acceleration, a node "
                                       "term only near walls), near walls, noise 3e-5, pushforward up to 10 steps",
                                       NEAR_WALLS + UNROLL10 + ["model.decoder=gated_antisymmetric"]),
})

# Full backprop through short unrolls (train.loss: bptt): the loss averages every step of the unroll and its
# gradient reaches the earlier steps, so the model is taught not to make the drift that pushforward teaches it to undo.
LEVERS.update({
    f"near_walls_3e-5_bptt{k}": (f"near walls, noise 3e-5, backprop through unrolls of {k} steps (train.loss=bptt)",
                                 NEAR_WALLS + ["train.loss=bptt", f"train.bptt_steps={k}"])
    for k in (4, 8)})

# A wider connectivity radius (3.5 particle spacings instead of 2.5): one MPM substep couples particles up to 3 grid
# cells (0.06 m) apart and the sticky walls act on particles within 1.5 cells (0.03 m), beyond the default 0.025 m.
LEVERS.update({
    "near_walls_3e-5_unroll10_r0.035": ("near walls, noise 3e-5, pushforward up to 10 steps, connectivity radius "
                                        "0.035 m (the dataset's: 0.025)",
                                        NEAR_WALLS + UNROLL10 + ["model.radius=0.035"]),
})

HORIZONS = (1, 10, 20, 50, 100)
BASE = Path(__file__).parent / "configs" / "levers_base.yaml"


def free_fall(simulator, dataset: str) -> dict:
    """The model's acceleration of water in free flight against the truth's (gravity).

    Test trajectory 0 starts with blocks in the air; the particles above ``y = 0.5`` fall freely
    for the first frames. Returns the mean predicted and true per-step accelerations of those
    particles, ``(D,)`` each, from the window of the first frames (no noise).
    """
    import numpy as np
    import torch

    from gns.domains import open_split_for
    from gns.particles.state import ParticleState

    split = open_split_for(simulator, dataset, "test")
    w = simulator.window
    trajectory = split[0]
    position = torch.as_tensor(np.asarray(trajectory.position[:w + 1])).transpose(0, 1).float()   # (N, w+1, D)
    state = ParticleState(position[:, :w], torch.as_tensor(np.asarray(trajectory.particle_type)).long(),
                          torch.tensor([position.shape[0]]))
    with torch.no_grad():
        predicted = simulator.acceleration_normalizer.denormalize(simulator(state))            # (N, D)
    true = position[:, -1] - 2 * position[:, -2] + position[:, -3]                              # (N, D)
    airborne = position[:, -2, 1] > 0.5
    return {"predicted": predicted[airborne].mean(0).tolist(), "true": true[airborne].mean(0).tolist()}


def run_one(lever: str, seed: int, args: argparse.Namespace) -> dict:
    """Train one (lever, seed) and score it; the result is written to ``<out>/<lever>-s<seed>/result.json``."""
    import torch

    from gns.config import load_config, preset_path
    from gns.domains import load_simulator, open_split_for
    from gns.evaluate import best_baseline, evaluate_split
    from gns.particles.task import ParticleTask
    from gns.train.loop import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) / f"{lever}-s{seed}"
    if lever in DATA_LEVERS and not Path(DATA_LEVERS[lever][1], "metadata.json").exists():  # as training reads it
        raise SystemExit(f"lever {lever}: its training set {DATA_LEVERS[lever][1]} is missing; make it with: "
                         f"{DATA_LEVERS[lever][2]}")
    overrides = [f"dataset={args.dataset}", f"out_dir={out}", f"train.seed={seed}", "train.time_budget_s=0",
                 "device=cpu", *LEVERS[lever][1]]
    if args.steps:
        overrides += [f"train.steps={args.steps}"]
    config = load_config(args.preset if args.preset.endswith((".yaml", ".yml")) else preset_path(args.preset),
                         overrides)
    task = ParticleTask(config)
    trainer = Trainer(config, task, config.out_dir)
    trainer.resume()
    t0 = time.perf_counter()
    trainer.train(progress=False)
    train_s = time.perf_counter() - t0
    if trainer.interrupted:
        raise SystemExit(f"{lever} seed {seed}: interrupted at step {trainer.step}; rerun to resume (not scored)")
    simulator, _, _ = load_simulator(out / "checkpoints" / "latest.pt", "cpu")
    t0 = time.perf_counter()
    summary = evaluate_split(simulator, open_split_for(simulator, args.dataset, "test"), HORIZONS, progress=False,
                             start_stride=50, save_path=out / "rollouts_test.h5")
    eval_s = time.perf_counter() - t0
    multi = summary.get("multistart", {})
    ratios = {}
    for h in ("20", "50", "100"):
        if h not in multi.get("model", {}).get("mse", {}):              # trajectories too short for it
            ratios[h] = {"ratio": float("nan"), "baseline": None}
            continue
        name, best = best_baseline({**multi, "rollouts": summary["rollouts"]}, "mse", h)
        ratios[h] = {"ratio": best / multi["model"]["mse"][h], "baseline": name}
    events = summary["divergence"]["first_frame"]
    result = {
        "lever": lever, "seed": seed, "what": LEVERS[lever][0], "overrides": LEVERS[lever][1],
        "steps": trainer.step, "train_s": train_s, "eval_s": eval_s, "threads": torch.get_num_threads(),
        "multistart_ratio": ratios,
        "full_mse": {n: summary[n]["mse"]["full"] for n in summary["rollouts"]},
        "escape_max": summary["model"]["escape_max"],
        "ke_window_factor_max": summary["model"]["ke_window_factor_max"],
        "first_divergence": min((e["step"] for e in events), default=None),
        "free_fall": free_fall(simulator, args.dataset),
        "divergence_kinds": sorted({e["kind"] for e in events}),
    }
    (out / "result.json").write_text(json.dumps(result, indent=1))
    return result


def free_fall_cell(fall: dict | None) -> str:
    """Predicted free-flight acceleration in units of the true gravity ``g``, e.g. ``0.01, 1.02``."""
    if not fall:
        return "-"
    g = abs(fall["true"][1])
    return f"{fall['predicted'][0] / g:.2f}, {-fall['predicted'][1] / g:.2f}"


def add_free_fall(out: Path, dataset: str) -> None:
    """Add the free-fall check to finished runs scored before it existed."""
    from gns.domains import load_simulator

    for path in sorted(out.glob("*/result.json")):
        result = json.loads(path.read_text())
        if "free_fall" not in result:
            simulator, _, _ = load_simulator(path.parent / "checkpoints" / "latest.pt", "cpu")
            result["free_fall"] = free_fall(simulator, dataset)
            path.write_text(json.dumps(result, indent=1))


def table(out: Path) -> str:
    rows = []
    for path in sorted(out.glob("*/result.json")):
        r = json.loads(path.read_text())
        full = r["full_mse"]
        rows.append("| " + " | ".join([
            r["lever"], str(r["seed"]), r["what"],
            *(f"{r['multistart_ratio'][h]['ratio']:.2f}" for h in ("20", "50", "100")),
            f"{full['model']:.3g}", f"{full['constant_velocity'] / full['model']:.2g}",
            f"{full['constant_acceleration'] / full['model']:.2g}",
            f"{r['escape_max']:.3g}", f"{r['ke_window_factor_max']:.3g}",
            str(r["first_divergence"]) if r["first_divergence"] is not None else "none",
            free_fall_cell(r.get("free_fall")),
            f"{r['train_s']:.0f} ({r['threads']})"]) + " |")
    head = ("| lever | seed | what | h20 | h50 | h100 | full MSE | CV / model (full) | gravity / model (full) "
            "| escape | KE x | first divergence | free fall: x, y / g | train s (threads) |\n" + "|---" * 14 + "|")
    return head + "\n" + "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levers", nargs="+", default=["preset"], choices=sorted(LEVERS),
                   help="levers to train and score (default: the preset alone)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds (default: 0)")
    p.add_argument("--preset", default=str(BASE),
                   help="the preset the levers change: a shipped preset's name or a YAML file (default: "
                        "benchmarks/configs/levers_base.yaml, the main job's preset when the levers were measured)")
    p.add_argument("--dataset", default="datasets/water2d", help="the water dataset (default: datasets/water2d)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the preset's)")
    p.add_argument("--out", default="runs/levers", help="folder of the runs (default: runs/levers)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (default: 1)")
    p.add_argument("--threads", type=int, default=0, help="torch threads per run (default: torch's)")
    p.add_argument("--table", action="store_true", help="print the table of the finished runs; train nothing")
    p.add_argument("--add-free-fall", action="store_true",
                   help="add the free-fall check to finished runs scored before it existed, then print the table")
    p.add_argument("--free-fall-of", nargs="+", metavar="CHECKPOINT", default=None,
                   help="print the free-fall check of these checkpoints (x, y acceleration in units of g); train nothing")
    p.add_argument("--one", nargs=2, metavar=("LEVER", "SEED"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.one:
        run_one(args.one[0], int(args.one[1]), args)
        return
    if args.free_fall_of:
        from gns.domains import load_simulator

        for checkpoint in args.free_fall_of:
            simulator, _, _ = load_simulator(checkpoint, "cpu")
            print(f"{checkpoint}: free fall x, y / g = {free_fall_cell(free_fall(simulator, args.dataset))}")
        return
    if args.add_free_fall:
        add_free_fall(out, args.dataset)
    elif not args.table:
        todo = [(lever, seed) for lever in args.levers for seed in args.seeds
                if not (out / f"{lever}-s{seed}" / "result.json").exists()]
        running: list[subprocess.Popen] = []
        base = [sys.executable, __file__, "--preset", args.preset, "--dataset", args.dataset, "--out", args.out,
                "--threads", str(args.threads)] + (["--steps", str(args.steps)] if args.steps else [])
        while todo or running:
            while todo and len(running) < max(1, args.jobs):
                lever, seed = todo.pop(0)
                log = open(out / f"{lever}-s{seed}.log", "w") if out.mkdir(parents=True, exist_ok=True) is None else None
                print(f"start {lever} seed {seed}", flush=True)
                running.append(subprocess.Popen(base + ["--one", lever, str(seed)], stdout=log,
                                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}))
            time.sleep(2)
            for proc in [r for r in running if r.poll() is not None]:
                running.remove(proc)
                if proc.returncode:
                    print(f"a run failed ({' '.join(proc.args[-2:])}): see its log under {out}", flush=True)
    print(table(out))


if __name__ == "__main__":
    main()
