"""Data-parallel scaling of training: steps/s and samples/s with 1 and with K processes (gloo on CPUs, NCCL on GPUs), side by side.

Each configuration is one real ``gns train`` run of a preset (default: ``demo``) on a dataset (default:
``datasets/water2d``), in a fresh run directory: 1 rank is the plain command, K ranks are
``torchrun --standalone --nproc_per_node=K -m gns.cli train ... --backend gloo`` on this machine (with
``--device cuda``: ``--backend nccl``, one GPU per rank, which needs K GPUs). Every
rank draws its own ``train.batch_size`` windows, so K ranks train on K x ``batch_size`` samples per step.

* **steps/s**: from the run's ``log.csv``, the steps between the first and the last log row over the
  time between them (the first ``log_every`` steps are warm-up; validation runs after the last row
  and is not counted).
* **samples/s**: steps/s x ranks x ``batch_size`` (training windows per second, all ranks together).
* **background cores**: CPU time used by *other* processes while the run went, per second of it
  (``/proc/stat``, as ``throughput.py``): a machine shared with other jobs slows every
  configuration, the K-rank runs (which need K free cores) the most.

The configurations take turns within every repeat, and the median over ``--repeats`` is kept, so
load from other processes hits them alike. Validation and checkpoints are pushed past the end of
the run (the final ones still happen). With the demo preset and a few hundred steps only the
one-step part of its pushforward schedule is reached.

    python benchmarks/distributed_scaling.py                                   # demo preset, 1 vs 2 ranks
    python benchmarks/distributed_scaling.py --steps 600 --repeats 3 --json scaling.json
    python benchmarks/distributed_scaling.py --ranks 1 2 4 --threads 2       # on a larger machine
    python benchmarks/distributed_scaling.py --device cuda --ranks 1 2 4 8   # GPUs, NCCL
    python benchmarks/distributed_scaling.py --quick --dataset TINY --set model.latent_size=16   # smoke test
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
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

from throughput import BACKGROUND, finish_run, loadavg_text, log, machine, table  # noqa: E402

from gns.config import load_config, preset_path  # noqa: E402


def train_command(ranks: int, args: argparse.Namespace, out: Path) -> list[str]:
    """The ``gns train`` command line of one configuration (torchrun for more than one rank)."""
    launch = [sys.executable, "-m", "gns.cli"] if ranks == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}", "-m", "gns.cli"]
    settings = [f"train.steps={args.steps}", f"train.log_every={args.log_every}", f"train.num_threads={args.threads}",
                "train.eval_every=1000000000", "train.checkpoint_every=1000000000", "train.time_budget_s=0",
                "train.valid_windows=8", "train.valid_rollouts=1", "train.valid_rollout_steps=5", *args.overrides]
    return [*launch, "train", "--preset", args.preset, "--dataset", str(args.dataset), "--out", str(out),
            "--device", args.device, "--backend", "nccl" if args.device == "cuda" else "gloo", "--no-resume", "--quiet",
            *[item for s in settings for item in ("--set", s)]]


def steps_per_second(log_csv: Path) -> float:
    """Steps between the first and the last log row of a run, over the time between them."""
    with open(log_csv) as f:
        rows = [r for r in csv.DictReader(f)]
    if len(rows) < 2:
        raise SystemExit(f"{log_csv}: fewer than 2 log rows; raise --steps or lower --log-every")
    first, last = rows[0], rows[-1]
    return (int(last["step"]) - int(first["step"])) / (float(last["elapsed_s"]) - float(first["elapsed_s"]))


def run_once(ranks: int, args: argparse.Namespace, root: Path, repeat: int) -> dict:
    out = root / f"ranks{ranks}_repeat{repeat}"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    mark = BACKGROUND.start()
    t0 = time.perf_counter()
    res = subprocess.run(train_command(ranks, args, out), capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - t0
    background = BACKGROUND.cores(mark)
    if res.returncode != 0:
        raise SystemExit(f"{ranks} rank(s) failed ({res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}")
    return {"steps_per_s": steps_per_second(out / "log.csv"), "wall_s": wall, "background_cores": background}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="demo", help="the shipped preset trained (default: demo)")
    p.add_argument("--dataset", type=Path, default=REPO / "datasets" / "water2d",
                   help="dataset directory (default: datasets/water2d)")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="process counts compared (default: 1 2)")
    p.add_argument("--steps", type=int, default=400, help="training steps per run (default: 400)")
    p.add_argument("--log-every", type=int, help="steps between log rows (default: steps / 10)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per rank (default: 1)")
    p.add_argument("--repeats", type=int, default=2, help="runs of every configuration, taking turns (default: 2)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a setting of the preset in every run (repeatable)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cpu: gloo processes on this machine's cores; cuda: NCCL, one GPU per rank (default: cpu)")
    p.add_argument("--quick", action="store_true", help="smoke test: 6 steps, one repeat (figures not for docs)")
    p.add_argument("--json", help="write every number to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 6, 1
    args.log_every = args.log_every or max(1, args.steps // 10)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    batch = load_config(preset_path(args.preset), args.overrides).train.batch_size
    m = machine()
    print(f"# gns data-parallel scaling: preset {args.preset} (batch {batch} per rank), {args.steps} steps per run, "
          f"{args.threads} thread(s) per rank, {'NCCL on GPUs' if args.device == 'cuda' else 'gloo on CPU'}; {m.get('cpu', '?')} ({m['cpu_count']} cores), torch "
          f"{m['torch']}, load average {loadavg_text(m.get('loadavg_start'))}"
          f"{', QUICK (not for figures)' if args.quick else ''}\n")
    runs: dict[int, list[dict]] = {k: [] for k in args.ranks}
    with tempfile.TemporaryDirectory(prefix="gns_scaling_") as tmp:
        for repeat in range(args.repeats):
            for ranks in args.ranks:
                runs[ranks].append(run_once(ranks, args, Path(tmp), repeat))
                r = runs[ranks][-1]
                log(f"repeat {repeat + 1}/{args.repeats}, {ranks} rank(s): {r['steps_per_s']:.2f} steps/s, "
                    f"{r['wall_s']:.0f} s, other processes {r['background_cores']:.2f} cores")
    base = statistics.median(r["steps_per_s"] for r in runs[args.ranks[0]])
    rows, summary = [], {}
    for ranks, rs in runs.items():
        steps = statistics.median(r["steps_per_s"] for r in rs)
        samples = steps * ranks * batch
        summary[ranks] = {"steps_per_s": steps, "samples_per_s": samples, "global_batch": ranks * batch,
                          "background_cores": [r["background_cores"] for r in rs], "runs": rs}
        rows.append([ranks, ranks * batch, f"{steps:.2f}", f"{samples:.2f}", f"{steps / base:.2f}x",
                     f"{samples / (base * args.ranks[0] * batch):.2f}x",
                     " / ".join(f"{r['background_cores']:.2f}" for r in rs)])
    print(table(["ranks", "global batch", "steps/s", "samples/s", "steps/s vs first", "samples/s vs first",
                 "other processes (cores), per repeat"], rows))
    first, last = args.ranks[0], args.ranks[-1]
    print(f"\nsamples/s with {last} ranks / with {first}: "
          f"{summary[last]['samples_per_s'] / summary[first]['samples_per_s']:.2f}")
    results = {"machine": m, "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "batch_size": batch, "ranks": summary}
    return finish_run(results, t_start, args.json)



if __name__ == "__main__":
    main()
