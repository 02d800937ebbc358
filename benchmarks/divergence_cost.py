"""What the divergence checks cost: the same rollouts with and without the domain's Monitor.

Three rollouts, each timed with and without :class:`gns.rollout.Monitor` (the domain's checks:
non-finite values, entities outside the domain, runaway energy), alternating, ``--repeats``
times; the table gives the best time of each and their ratio:

* **water**: the 4 test trajectories of ``datasets/water2d`` from the first frame as one batch
  (what ``gns evaluate`` and the main job do), with ``runs/demo``'s model;
* **cloth**: the first test trajectory of ``datasets/cloth``, with ``runs/cloth``'s model;
* **test-sized**: a 16-wide particle model with random weights on the tests' bouncing-ball set
  (``tests/fixtures``' kind of rollout: a few particles, a few steps), 50 steps.

A row whose model or dataset is missing is skipped and says so.

    python benchmarks/divergence_cost.py            # on an otherwise idle machine
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from gns.domains import evaluation_for, load_simulator, open_split_for  # noqa: E402
from gns.rollout import Monitor, rollout  # noqa: E402


def _timed(simulator, initial, steps, controls, monitor) -> float:
    t0 = time.perf_counter()
    rollout(simulator, initial, steps, controls, monitor=monitor)
    return time.perf_counter() - t0


def measure(label: str, simulator, split, trajectories: list[int], steps: int | None, repeats: int) -> dict:
    ev = evaluation_for(simulator)
    windows = ev.windows(split)
    frames = windows.num_frames(trajectories[0])
    steps = frames - ev.window if steps is None else min(steps, frames - ev.window)
    full = windows.load([(i, 0) for i in trajectories], ev.window + steps)
    initial, controls = full.window(0, ev.window), full.window(ev.window, ev.window + steps).fields
    checks = ev.divergence_checks()
    _timed(simulator, initial, min(steps, 3), controls, None)                         # warm-up
    plain, watched = [], []
    for _ in range(repeats):
        plain.append(_timed(simulator, initial, steps, controls, None))
        watched.append(_timed(simulator, initial, steps, controls, Monitor(checks, "warn")))
    return {"label": label, "entities": full.num_entities, "steps": steps, "plain_s": min(plain),
            "watched_s": min(watched), "ratio": min(watched) / min(plain)}


def _test_sized() -> tuple:
    import tempfile

    sys.path.insert(0, str(REPO / "tests"))
    from conftest import make_bouncing_dataset  # the tests' own fixture builder

    from gns.config import load_config
    from gns.particles.simulator import ParticleSimulator

    root = Path(tempfile.mkdtemp()) / "bouncing"
    make_bouncing_dataset(root)
    config = load_config(overrides=[f"dataset={root}", "model.latent_size=16", "model.message_passing_steps=2",
                                    "device=cpu"])
    from gns.data import load_metadata

    metadata = load_metadata(root)
    torch.manual_seed(0)
    simulator = ParticleSimulator(config.model, metadata, noise_std=0.0).eval()
    return simulator, open_split_for(simulator, root, "test")


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, help="timed pairs per rollout (default: 5)")
    p.add_argument("--datasets", default=str(REPO / "datasets"), help="folder of water2d/ and cloth/")
    p.add_argument("--runs", default=str(REPO / "runs"), help="folder of the trained runs (demo/, cloth/)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for label, data, run, trajectories, steps in (("water, 4 test trajectories", "water2d", "demo", [0, 1, 2, 3], None),
                                                  ("cloth, 1 test trajectory", "cloth", "cloth", [0], None)):
        checkpoint = Path(args.runs) / run / "checkpoints" / "latest.pt"
        dataset = Path(args.datasets) / data
        if not checkpoint.exists() or not (dataset / "metadata.json").exists():
            print(f"{label}: skipped ({checkpoint} or {dataset} is missing)")
            continue
        simulator, _, _ = load_simulator(checkpoint, "cpu")
        split = open_split_for(simulator, dataset, "test")
        rows.append(measure(label, simulator, split, trajectories[:len(split)], steps, args.repeats))
    simulator, split = _test_sized()
    rows.append(measure("test-sized particles (random weights)", simulator, split, [0], 50, args.repeats))
    print(f"{torch.get_num_threads()} threads; best of {args.repeats}")
    print("| rollout | entities | steps | without checks s | with checks s | with / without |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['label']} | {r['entities']} | {r['steps']} | {r['plain_s']:.3f} | {r['watched_s']:.3f} | "
              f"{r['ratio']:.3f} |")
    return rows


if __name__ == "__main__":
    main()
