"""Rollout and training speed with glibc's default allocator settings vs ``gns.allocator.tune_allocator``.

Large per-edge tensors are made and freed every message-passing step. With glibc's defaults each one is a fresh
``mmap`` (or heap that was just given back to the system), so every page of it faults in anew, every step; the
command line raises the thresholds so freed memory is reused (``gns/allocator.py``). The settings are per process,
so every measurement is a fresh process, ``GNS_TUNE_ALLOCATOR=0`` (glibc's defaults) and ``1`` (tuned) taking turns
(A B A B, ``--repeats`` rounds, the median printed), with its minor page faults and peak resident memory.

Rollout: a trained model's ``--steps`` steps over ``--batch`` held-out trajectories rolled together, from the state
its own rollout reaches after ``--warmup-steps`` (made once, before the timed runs): by default the main job's model
at the point of its evaluation where the predicted water has packed, what the main job's rollouts spend their time
on. Each process first rolls ``--settle-steps`` untimed steps from that state: glibc adapts its thresholds to the
sizes freed (up to 32 MiB), so a fresh process's first steps would overstate what a long rollout loses. Training: ``--train-steps`` steps of a preset after as many untimed ones (``benchmarks/thread_contention.py``'s
timed training). Run it alone on the machine:

    gns demo     # makes runs/demo/checkpoints/latest.pt
    python benchmarks/allocator.py --json allocator.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from thread_contention import CHILD as TRAIN_CHILD

REPO = Path(__file__).resolve().parent.parent
MODES = {"glibc default": "0", "tuned": "1"}

PREPARE = r"""
import sys, torch
from gns.allocator import tune_allocator
tune_allocator()
torch.set_num_threads(int(sys.argv[1]))
from gns.domains import evaluation_for, load_simulator, open_split_for
from gns.rollout import rollout
checkpoint, dataset, batch, warmup, out = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
sim, _, _ = load_simulator(checkpoint, "cpu")
ev = evaluation_for(sim)
windows = ev.windows(open_split_for(sim, dataset, "test"))
count = min(batch, len(windows.lengths))
state = windows.load([(i, 0) for i in range(count)], ev.window)
if warmup:
    frames = rollout(sim, state, warmup)
    for t in range(max(0, warmup - ev.window), warmup):   # the window of the last frames it reached
        state = state.shift({k: v[:, t] for k, v in frames.items() if k in state.fields})
torch.save({"state": state}, out)
"""

ROLLOUT_CHILD = r"""
import json, resource, sys, time, torch
from gns.allocator import tune_allocator
applied = tune_allocator()
torch.set_num_threads(int(sys.argv[1]))
from gns.domains import load_simulator
from gns.rollout import rollout
sim, _, _ = load_simulator(sys.argv[2], "cpu")
state = torch.load(sys.argv[3], weights_only=False)["state"]
steps, settle = int(sys.argv[4]), int(sys.argv[5])
# untimed first: first-call costs, and glibc's own thresholds adapt to the sizes freed (up to 32 MiB) as a long
# rollout's would; the timed steps start from the same state
rollout(sim, state, max(1, settle))
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
t0 = time.perf_counter()
rollout(sim, state, steps)
seconds = time.perf_counter() - t0
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(json.dumps({"s_per_step": seconds / steps, "faults_per_step": faults / steps, "tuned": applied is not None,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child_env(variables: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ, **variables)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_child(code: str, argv: list[str], variables: dict[str, str]) -> dict:
    """Run ``code`` in a fresh interpreter with these environment ``variables``; its last line of output, as JSON."""
    done = subprocess.run([sys.executable, "-c", code, *argv], env=child_env(variables), capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"a timed run failed:\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def turns(measure, repeats: int, modes: dict[str, str] = MODES) -> dict[str, list[dict]]:
    """``{mode: [measure(flag) per round]}``, the modes taking turns within each of ``repeats`` rounds."""
    runs: dict[str, list[dict]] = {mode: [] for mode in modes}
    for _ in range(repeats):
        for mode, flag in modes.items():
            runs[mode].append(measure(flag))
    return runs


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def add_state_options(p: argparse.ArgumentParser, steps: int, settle: int) -> None:
    """The options naming the timed rollout: the model, its dataset, the batch, the state it starts from."""
    p.add_argument("--checkpoint", default="runs/demo/checkpoints/latest.pt",
                   help="the model rolled out (default: the main job's, runs/demo/checkpoints/latest.pt)")
    p.add_argument("--dataset", default="datasets/water2d", help="its dataset (default: datasets/water2d)")
    p.add_argument("--batch", type=int, default=4,
                   help="held-out trajectories rolled out together (default: 4, the main job's batch)")
    p.add_argument("--warmup-steps", type=int, default=250,
                   help="steps of the model's own rollout before the timed ones (default: 250; 0: the first frames)")
    p.add_argument("--steps", type=int, default=steps, help=f"timed rollout steps per measurement (default: {steps})")
    p.add_argument("--settle-steps", type=int, default=settle,
                   help=f"untimed rollout steps from the same state before them, in the same process "
                        f"(default: {settle})")


def check_inputs(args: argparse.Namespace) -> None:
    """Exit with the command that makes the dataset or the checkpoint when one is missing."""
    for path, how in ((Path(args.dataset, "metadata.json"), f"gns generate water2d --out {args.dataset}"),
                      (Path(args.checkpoint), "gns demo (or gns train) first")):
        if not path.exists():
            raise SystemExit(f"{path} is missing; make it with: {how}")


def prepare_state(args: argparse.Namespace, tmp: str) -> str:
    """Write the state the timed rollouts start from (``PREPARE``) into ``tmp``; its path."""
    state = str(Path(tmp) / "state.pt")
    run_child(PREPARE, [str(args.threads), args.checkpoint, args.dataset, str(args.batch), str(args.warmup_steps),
                        state], {"GNS_TUNE_ALLOCATOR": "1"})
    return state


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_state_options(p, steps=10, settle=20)
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--preset", default="demo", help="the preset whose training is timed (default: demo)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a setting of the timed training, e.g. --set model.latent_size=16 (repeatable)")
    p.add_argument("--train-steps", type=int, default=60,
                   help="timed training steps, after as many untimed ones (default: 60; 0: no training row)")
    p.add_argument("--repeats", type=int, default=2, help="A B rounds per row; the median is printed (default: 2)")
    p.add_argument("--json", help="write every measurement here")
    args = p.parse_args(argv)
    check_inputs(args)

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        state = prepare_state(args, tmp)
        rows["rollout"] = turns(lambda flag: run_child(ROLLOUT_CHILD, [str(args.threads), args.checkpoint, state,
                                                                       str(args.steps), str(args.settle_steps)],
                                                         {"GNS_TUNE_ALLOCATOR": flag}),
                                args.repeats)
        for mode in MODES:
            print(f"rollout, {mode}: {median(rows['rollout'][mode], 's_per_step'):.3f} s/step", file=sys.stderr,
                  flush=True)
        if args.train_steps:
            def train(flag: str) -> dict:
                with tempfile.TemporaryDirectory() as out:
                    return run_child(TRAIN_CHILD, [str(args.threads), out, str(args.train_steps), args.preset,
                                                   args.dataset, json.dumps(args.overrides)],
                                     {"GNS_TUNE_ALLOCATOR": flag})
            rows["training"] = turns(train, args.repeats)

    print(f"## glibc's allocator defaults vs tuned (gns.allocator), median of {args.repeats}, {args.threads} torch "
          f"threads, fresh processes taking turns; load average {os.getloadavg()[0]:.1f} after\n")
    print(f"Rollout: {args.checkpoint}, {args.batch} test trajectories of {args.dataset} together, {args.steps} steps "
          f"from the state of its own rollout after {args.warmup_steps}, timed after {args.settle_steps} untimed "
          f"ones from that state.\n")
    print("| | glibc default | tuned | tuned / default |")
    print("|---|---|---|---|")
    r = rows["rollout"]
    a, b = (median(r[m], "s_per_step") for m in MODES)
    print(f"| rollout s/step | {a:.3f} | {b:.3f} | {b / a:.2f} (speed {a / b:.2f}x) |")
    a, b = (median(r[m], "faults_per_step") for m in MODES)
    print(f"| rollout minor page faults / step | {a:,.0f} | {b:,.0f} | {b / max(a, 1):.3f} |")
    a, b = (median(r[m], "max_rss_mb") for m in MODES)
    print(f"| rollout peak resident MB | {a:.0f} | {b:.0f} | {b / a:.2f} |")
    if "training" in rows:
        t = rows["training"]
        a, b = (median(t[m], "steps_per_s") for m in MODES)
        print(f"| {args.preset} training steps/s | {a:.2f} | {b:.2f} | {b / a:.2f} |")
        a, b = (median(t[m], "max_rss_mb") for m in MODES)
        print(f"| training peak resident MB | {a:.0f} | {b:.0f} | {b / a:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
