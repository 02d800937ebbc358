"""What bf16 autocast does to training speed and accuracy: one preset trained in fp32 and in bf16, then scored.

For every seed, the preset (default: ``demo`` on ``datasets/water2d``) is trained ``--steps`` steps
by ``gns train`` once with ``train.precision=fp32`` and once with ``train.precision=bf16`` (the
two take turns, one torch thread each, the preset's wall-clock budget lifted so that both take
every step), then each checkpoint is scored by ``gns evaluate`` on the test split, with the
network's forward in every precision of ``--eval-precisions``: position MSE at the horizons
from the first frame and over the whole trajectory, and over rollouts started every
``--start-stride`` frames. Training steps/s come from each run's log (first to last row), and
the other processes' CPU load during each run is printed beside it.

    python benchmarks/precision_accuracy.py --json precision.json                 # demo, 1500 steps, seed 0
    python benchmarks/precision_accuracy.py --seeds 0 1 --eval-precisions fp32 bf16
    python benchmarks/precision_accuracy.py --quick --dataset TINY --set model.latent_size=16   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from distributed_scaling import steps_per_second  # noqa: E402
from throughput import BACKGROUND, finish_run, log, machine, table  # noqa: E402

from gns.nn import PRECISIONS, bf16_native  # noqa: E402


def gns_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "gns.cli", *args]


def run(cmd: list[str], threads: int) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run ``cmd``; its result, wall seconds and the other processes' CPU load (cores) meanwhile."""
    mark = BACKGROUND.start()
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"failed ({res.returncode}): {' '.join(cmd)}\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}")
    return res, wall, BACKGROUND.cores(mark)


def train(precision: str, seed: int, args: argparse.Namespace, out: Path) -> dict:
    settings = [f"train.steps={args.steps}", f"train.precision={precision}", f"train.seed={seed}",
                f"train.num_threads={args.threads}", "train.time_budget_s=0", f"train.log_every={args.log_every}",
                f"train.eval_every={args.steps}", *args.overrides]
    cmd = gns_command("train", "--preset", args.preset, "--dataset", str(args.dataset), "--out", str(out),
                      "--device", "cpu", "--no-resume", "--quiet", *[x for s in settings for x in ("--set", s)])
    _, wall, load = run(cmd, args.threads)
    return {"steps_per_s": steps_per_second(out / "log.csv"), "wall_s": wall, "background_cores": load}


def evaluate(run_dir: Path, precision: str, args: argparse.Namespace) -> dict:
    out = run_dir / f"eval_{precision}.h5"
    cmd = gns_command("evaluate", str(run_dir / "checkpoints" / "latest.pt"), "--device", "cpu",
                      "--precision", precision, "--horizons", *map(str, args.horizons),
                      "--start-stride", str(args.start_stride), "--out", str(out),
                      *(["--max-trajectories", str(args.max_trajectories)] if args.max_trajectories else []))
    _, wall, load = run(cmd, args.threads)
    summary = json.loads(out.with_suffix(".json").read_text())
    out.unlink()  # the predictions are not needed, the figures are in the JSON
    model = summary["model"]["mse"]
    multi = summary.get("multistart", {})
    baselines = [summary[b]["mse"] for b in summary["rollouts"] if b != "model"]
    h = str(max(args.horizons))
    return {"first_frame": model, "multistart": multi.get("model", {}).get("mse", {}),
            "better_baseline_h": min(b[h] for b in baselines),
            "multistart_better_baseline_h": min((multi[b]["mse"][h] for b in summary["rollouts"]
                                                 if b != "model" and b in multi), default=float("nan")),
            "wall_s": wall, "background_cores": load}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="demo", help="the shipped preset trained (default: demo)")
    p.add_argument("--dataset", type=Path, default=REPO / "datasets" / "water2d",
                   help="dataset directory (default: datasets/water2d)")
    p.add_argument("--steps", type=int, default=1500, help="training steps per run (default: 1500)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="train.seed of the runs (default: 0)")
    p.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS,
                   help="train.precision values compared (default: fp32 bf16)")
    p.add_argument("--eval-precisions", nargs="+", default=["fp32"], choices=PRECISIONS,
                   help="precisions of the network's forward in the evaluation (default: fp32)")
    p.add_argument("--horizons", type=int, nargs="+", default=[1, 10, 20], help="default: 1 10 20")
    p.add_argument("--start-stride", type=int, default=50, help="multi-start rollouts every N frames (default: 50)")
    p.add_argument("--max-trajectories", type=int, help="score only the first N test trajectories (default: all)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per run (default: 1)")
    p.add_argument("--log-every", type=int, help="steps between log rows (default: steps / 10)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a setting of the preset in every run (repeatable)")
    p.add_argument("--out", type=Path, help="keep the runs here (default: a temporary directory)")
    p.add_argument("--quick", action="store_true", help="smoke test: 10 steps, 1 test trajectory (not for docs)")
    p.add_argument("--json", help="write every number to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.max_trajectories = 10, 1
    args.log_every = args.log_every or max(1, args.steps // 10)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    m = machine()
    native = bf16_native("cpu")
    print(f"# bf16 autocast vs fp32: preset {args.preset} on {args.dataset.name}, {args.steps} steps per run, "
          f"{args.threads} thread(s), seeds {args.seeds}; {m.get('cpu', '?')} ({m['cpu_count']} cores, native bf16: "
          f"{'yes' if native else 'no'}), torch {m['torch']}, load average "
          f"{' '.join(f'{v:.2f}' for v in m.get('loadavg_start', ()))}{', QUICK (not for figures)' if args.quick else ''}\n")
    if "bf16" in args.precisions + args.eval_precisions and not native:
        print("this CPU has no native bf16: gns refuses train.precision=bf16 here (emulated, it is slower); "
              "only fp32 is run")
        args.precisions = [p for p in args.precisions if p != "bf16"]
        args.eval_precisions = [p for p in args.eval_precisions if p != "bf16"] or ["fp32"]
    with tempfile.TemporaryDirectory(prefix="gns_precision_") as tmp:
        root = args.out or Path(tmp)
        runs = []
        for seed in args.seeds:
            for precision in args.precisions:
                run_dir = root / f"{precision}_s{seed}"
                r = {"train_precision": precision, "seed": seed, **train(precision, seed, args, run_dir)}
                log(f"trained {precision} seed {seed}: {r['steps_per_s']:.1f} steps/s, {r['wall_s']:.0f} s, "
                    f"other processes {r['background_cores']:.2f} cores")
                r["eval"] = {e: evaluate(run_dir, e, args) for e in args.eval_precisions}
                runs.append(r)
    h = str(max(args.horizons))
    rows = []
    for r in runs:
        for e, ev in r["eval"].items():
            ff, ms = ev["first_frame"], ev["multistart"]
            rows.append([r["train_precision"], e, r["seed"], f"{r['steps_per_s']:.1f}", f"{r['background_cores']:.2f}",
                         *(f"{ff[str(k)]:.3e}" for k in args.horizons), f"{ff['full']:.3e}",
                         f"{ev['better_baseline_h'] / ff[h]:.2f}", f"{ms.get(h, float('nan')):.3e}",
                         f"{ms.get('full', float('nan')):.3e}", f"{ev['multistart_better_baseline_h'] / ms[h]:.2f}"
                         if h in ms else "-"])
    print(table(["train", "eval", "seed", "train steps/s", "others' load (cores)",
                 *(f"h{k}" for k in args.horizons), "full", f"baseline/model h{h}", f"multi-start h{h}",
                 "multi-start full", f"multi-start baseline/model h{h}"], rows))
    print("\nposition MSE from the first frame (h*, full: the whole trajectory) and over rollouts started every "
          f"{args.start_stride} frames; baseline/model: the better of constant velocity and constant acceleration "
          "over the model (above 1: the model wins)")
    by = {p: [r["steps_per_s"] for r in runs if r["train_precision"] == p] for p in args.precisions}
    if len(by) == 2 and all(by.values()):
        a, b = (sum(v) / len(v) for v in by.values())
        print(f"training steps/s {args.precisions[1]} / {args.precisions[0]}: {b / a:.2f}")
    results = {"machine": m, "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "bf16_native": native, "runs": runs}
    return finish_run(results, t_start, args.json)


if __name__ == "__main__":
    main()
