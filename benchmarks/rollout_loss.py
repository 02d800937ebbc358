"""One-step vs rollout (pushforward / BPTT) training at equal compute on the default dataset.

Each loss trains the demo-preset model for the same wall-clock budget (``--budget-s``; equal
compute on the same machine, run one after the other in this process), then the latest
checkpoint is rolled out over the whole held-out test split and scored at every horizon.

    python benchmarks/rollout_loss.py --budget-s 240 --losses onestep pushforward
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from gns.config import load_config, preset_path
from gns.domains import load_simulator, open_split_for
from gns.evaluate import evaluate_split, format_table
from gns.train.loop import Trainer
from gns.particles.task import ParticleTask


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="datasets/water2d")
    p.add_argument("--out", default="runs/bench_rollout_loss")
    p.add_argument("--losses", nargs="+", default=["onestep", "pushforward"])
    p.add_argument("--budget-s", type=float, default=240.0, help="training wall-clock budget per loss")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="extra config overrides")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    results = {}
    for loss in args.losses:
        out = Path(args.out) / loss
        config = load_config(preset_path("demo"), [
            f"dataset={args.dataset}", f"out_dir={out}", f"train.loss={loss}", "train.steps=1000000",
            f"train.time_budget_s={args.budget_s}", "train.eval_every=1000000", *args.overrides])
        task = ParticleTask(config)
        trainer = Trainer(config, task, out)
        t0 = time.perf_counter()
        trainer.train(progress=False)
        train_s = time.perf_counter() - t0
        simulator, _, _ = load_simulator(out / "checkpoints" / "latest.pt", config.device)
        summary = evaluate_split(simulator, open_split_for(simulator, args.dataset, "test"), config.eval.horizons,
                                 progress=False, start_stride=config.eval.start_stride)
        ms = summary["multistart"]
        results[loss] = {"steps": trainer.step, "train_s": train_s, "mse": ms["model"]["mse"],
                         "mse_from_first_frame": summary["model"]["mse"],
                         "baselines": {b: ms[b]["mse"] for b in ("constant_velocity", "constant_acceleration")}}
        print(f"\n== {loss}: {trainer.step} steps in {train_s:.0f} s")
        print(format_table(summary))
    horizons = list(next(iter(results.values()))["mse"])
    print("\nposition MSE on the test split (rollouts started every "
          f"{config.eval.start_stride} frames) at equal training time ({args.budget_s:.0f} s each):")
    print(f"{'loss':>12} {'steps':>7} " + " ".join(f"{h:>10}" for h in horizons))
    for loss, r in results.items():
        print(f"{loss:>12} {r['steps']:>7} " + " ".join(f"{r['mse'][h]:10.3e}" for h in horizons))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
