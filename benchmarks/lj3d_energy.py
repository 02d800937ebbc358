"""How long a learned rollout stays bounded in energy on LagrangeBench's 3D Lennard-Jones set (periodic).

Trains a particle model on the one training trajectory of ``tests/fixtures/lagrangebench_lj3d``
(3 particles in a periodic box [0, 5]^3, JAX-MD; see ``tests/fixtures/README.md``), then rolls
it out from the first frame of the test trajectory through the shared driver with the particle
domain's divergence checks (non-finite positions, runaway energy; a periodic box has no walls to
leave). Printed: the first divergence the monitor reports, the predicted against the true mean
kinetic energy over every 50-step window, and the first window where they differ by more than 2x
(the issue's energy criterion), beside the position MSE at the usual horizons.

    python benchmarks/lj3d_energy.py --steps 3000           # ~5 minutes on 2 cores
    python benchmarks/lj3d_energy.py --steps 200 --quick     # smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from gns.config import load_config  # noqa: E402
from gns.domains import evaluation_for, load_simulator, open_split_for  # noqa: E402
from gns.metrics import at_horizons  # noqa: E402
from gns.metrics import ENERGY_WINDOW  # noqa: E402
from gns.particles.evaluate import kinetic_energy_per_system  # noqa: E402
from gns.particles.task import ParticleTask  # noqa: E402
from gns.rollout import Monitor, rollout  # noqa: E402
from gns.train.loop import Trainer  # noqa: E402

DATASET = REPO / "tests" / "fixtures" / "lagrangebench_lj3d"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3000, help="training steps (default: 3000)")
    p.add_argument("--noise", type=float, default=None,
                   help="random-walk noise std (default: GNS's ratio to the velocity std)")
    p.add_argument("--latent", type=int, default=64, help="latent size (default: 64)")
    p.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--quick", action="store_true", help="smoke test: a smaller model")
    args = p.parse_args(argv)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp()) / "lj3d"
    overrides = [f"dataset={DATASET}", f"out_dir={out}", "device=cpu", f"train.steps={args.steps}",
                 f"model.latent_size={16 if args.quick else args.latent}",
                 f"model.message_passing_steps={2 if args.quick else 5}", "train.lr_init=1e-3", "train.lr_final=1e-5",
                 f"train.lr_decay_steps={args.steps}", "train.batch_size=2", "train.eval_every=1000000",
                 "train.valid_windows=8", "train.valid_rollout_steps=20", "train.log_every=100",
                 "train.loss=pushforward", f"train.pushforward_steps=[0,{args.steps // 5},{args.steps // 2}]",
                 "train.pushforward_unrolls=[0,1,3]", "train.pushforward_probs=[8,1,1]"]
    if args.noise is not None:
        overrides.append(f"train.noise_std={args.noise}")
    config = load_config(overrides=overrides)
    t0 = time.perf_counter()
    trainer = Trainer(config, ParticleTask(config), out)
    trainer.resume()
    trainer.train(progress=False)
    train_s = time.perf_counter() - t0
    simulator, _, _ = load_simulator(out / "checkpoints" / "latest.pt", "cpu")
    ev = evaluation_for(simulator)
    windows = ev.windows(open_split_for(simulator, DATASET, "test"))
    frames = windows.num_frames(0)
    steps = frames - ev.window
    full = windows.load([(0, 0)], frames)
    initial, future = full.window(0, ev.window), full.window(ev.window, frames)
    monitor = Monitor(ev.divergence_checks(), "warn")
    predicted = rollout(simulator, initial, steps, future.fields, monitor=monitor)["position"]
    truth = future.fields["position"]
    scored = ev.scored(full)
    last = initial.fields["position"][:, -1]
    args_ke = (initial, scored, simulator.bounds, simulator.periodic)
    ke_pred = kinetic_energy_per_system(last, predicted, *args_ke)[0]                   # (S,)
    ke_true = kinetic_energy_per_system(last, truth, *args_ke)[0]
    window_rows, first_bad = [], None
    for start in range(0, steps, ENERGY_WINDOW):
        p_mean = float(ke_pred[start:start + ENERGY_WINDOW].mean())
        t_mean = float(ke_true[start:start + ENERGY_WINDOW].mean())
        factor = max(p_mean / t_mean, t_mean / p_mean) if p_mean > 0 and t_mean > 0 else float("inf")
        window_rows.append((start + 1, min(start + ENERGY_WINDOW, steps), p_mean, t_mean, factor))
        if factor > 2 and first_bad is None:
            first_bad = start + 1
    sq = ev.squared_error("position", predicted, truth)[scored].mean(0)                 # (S,)
    mse = at_horizons(sq, (1, 10, 20, 50, 100, 200, 400))
    print(f"LJ3D: trained {trainer.step} steps in {train_s:.0f} s; test trajectory {steps} steps from the first frame")
    print("position MSE: " + ", ".join(f"{k if k == 'full' else 'h' + k} {v:.3g}" for k, v in mse.items()))
    print("divergence: " + ("; ".join(str(e) for e in monitor.events) if monitor.events else "none seen"))
    print(f"| steps | predicted mean KE | true mean KE | factor |\n|---|---:|---:|---:|")
    for a, b, pm, tm, f in window_rows:
        print(f"| {a}-{b} | {pm:.3g} | {tm:.3g} | {f:.2f} |")
    print("energy within 2x of the truth in every 50-step window" if first_bad is None
          else f"energy first off by more than 2x in the window starting at step {first_bad}")
    result = {"train_steps": trainer.step, "train_s": train_s, "rollout_steps": steps, "mse": mse,
              "divergence": monitor.report(), "energy_windows": window_rows, "first_window_off_2x": first_bad}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
