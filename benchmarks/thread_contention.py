"""Training speed of a preset on a shared CPU: torch threads x OpenMP wait policy, alone and beside other jobs.

torch's CPU wheels run their intra-op threads on OpenMP (libgomp), whose idle threads spin for a while before they
sleep. On an idle machine that shaves the latency between small operators; on a machine whose cores other jobs hold
(another training, a test suite), the spinning threads take the cores those jobs and their own siblings need.
``OMP_WAIT_POLICY=PASSIVE`` makes idle threads sleep at once. The policy is read when the OpenMP runtime loads, so
every measurement is a fresh process with its environment set.

For each background load (``--loads``: that many other processes, each training the same preset on one thread
with the default policy, started before and stopped after), for each thread count (``--threads``), the preset's
training steps are timed under the default policy and under ``PASSIVE``, taking turns (A B A B, ``--repeats``
rounds; the median steps/s is printed); the machine's load average beside each row. Run it on an otherwise idle
machine (the load it adds is the point):

    python benchmarks/thread_contention.py --json thread_contention.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
POLICIES = ("default", "PASSIVE")

CHILD = r"""
import csv, json, resource, sys, torch
from gns.allocator import tune_allocator
tune_allocator()   # unless GNS_TUNE_ALLOCATOR=0: this script's runs set it, as `gns train` leaves glibc's defaults
torch.set_num_threads(int(sys.argv[1]))
from gns.config import load_config, preset_path
from gns.particles.task import ParticleTask
from gns.train.loop import Trainer
steps = int(sys.argv[3])
# 2 x steps in all, a log row after each half: the first half warms up, the second is timed (from the log's clock,
# so the final validation after the last row is not)
config = load_config(preset_path(sys.argv[4]), [f"out_dir={sys.argv[2]}", f"dataset={sys.argv[5]}", "device=cpu",
                     *json.loads(sys.argv[6]), f"train.steps={2 * steps}", f"train.log_every={steps}",
                     "train.time_budget_s=0", "train.eval_every=1000000", "train.checkpoint_every=1000000",
                     "train.num_threads=0"])
trainer = Trainer(config, ParticleTask(config), config.out_dir)
trainer.train(progress=False)
rows = list(csv.DictReader(open(f"{sys.argv[2]}/log.csv")))
print(json.dumps({"steps_per_s": steps / (float(rows[-1]["elapsed_s"]) - float(rows[-2]["elapsed_s"])),
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

def child_env(policy: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env["GNS_TUNE_ALLOCATOR"] = "0"   # as `gns train` runs (benchmarks/allocator.py imports CHILD and sets it)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    return env


def measure(threads: int, policy: str, args: argparse.Namespace) -> float:
    """Steps/s of ``args.steps`` training steps after as many untimed ones, in a fresh process."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-c", CHILD, str(threads), out, str(args.steps), args.preset, args.dataset,
                   json.dumps(args.overrides)]
        done = subprocess.run(command, env=child_env(policy), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the timed training failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["steps_per_s"]


def start_load(count: int, args: argparse.Namespace, tmp: Path) -> list[subprocess.Popen]:
    """``count`` background trainings of the preset on one thread each (default policy), running until killed."""
    command = [sys.executable, "-c", CHILD, "1", "", "10000000", args.preset, args.dataset, json.dumps(args.overrides)]
    return [subprocess.Popen(command[:4] + [str(tmp / f"load{i}")] + command[5:], env=child_env("default"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(count)]


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="demo", help="the preset whose training is timed (default: demo)")
    p.add_argument("--dataset", default="datasets/water2d", help="its dataset (default: datasets/water2d)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a setting of the preset, e.g. --set model.latent_size=16 (repeatable)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads of the timed run")
    p.add_argument("--loads", type=int, nargs="+", default=[0, 1, 2],
                   help="other one-thread trainings running meanwhile (default: 0 1 2)")
    p.add_argument("--steps", type=int, default=60,
                   help="timed training steps per measurement, after as many untimed ones (default: 60)")
    p.add_argument("--repeats", type=int, default=2, help="A B rounds per row; the median is printed (default: 2)")
    p.add_argument("--settle", type=float, default=20.0, help="seconds the load runs before timing (default: 20)")
    p.add_argument("--json", help="write every measurement here")
    args = p.parse_args(argv)
    if not Path(args.dataset, "metadata.json").exists():
        raise SystemExit(f"{args.dataset} is missing; make it with: gns generate water2d --out {args.dataset}")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for load in args.loads:
            procs = start_load(load, args, Path(tmp))
            try:
                time.sleep(args.settle if load else 0)
                for threads in args.threads:
                    runs: dict[str, list[float]] = {policy: [] for policy in POLICIES}
                    before = loadavg()
                    for _ in range(args.repeats):
                        for policy in POLICIES:
                            runs[policy].append(measure(threads, policy, args))
                    rows.append({"load": load, "threads": threads, "runs": runs, "loadavg": [before, loadavg()],
                                 **{policy: statistics.median(v) for policy, v in runs.items()}})
                    r = rows[-1]
                    print(f"load {load}, {threads} threads: default {r['default']:.2f} steps/s, PASSIVE "
                          f"{r['PASSIVE']:.2f} steps/s", file=sys.stderr, flush=True)
            finally:
                for proc in procs:
                    proc.kill()
                    proc.wait()

    print(f"## {args.preset} training, steps/s (median of {args.repeats}, {args.steps} steps after as many; "
          f"{os.cpu_count()} cores)\n")
    print("| other 1-thread trainings | torch threads | default policy | OMP_WAIT_POLICY=PASSIVE | PASSIVE / default "
          "| load average (before, after) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['load']} | {r['threads']} | {r['default']:.2f} | {r['PASSIVE']:.2f} | "
              f"{r['PASSIVE'] / r['default']:.2f} | {r['loadavg'][0]:.1f}, {r['loadavg'][1]:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
