"""The reference solver scored against itself: how far the long-rollout figures can go on water at all.

A learned simulator is scored on the water's escape (how far any particle strays beyond the box the true
particles span at the same step, in box widths) and the kinetic-energy factor (the largest factor between
predicted and true mean kinetic energy over 50-step windows): the targets of issue 10 are at most 0.02 and
at most 2. This benchmark asks the same of the solver that made the data, run a second time:

* **perturbed twins**: the solver's full state (positions, velocities, ``C``, ``J``) at the model's last
  input frame, every particle's position moved by Gaussian noise of std ``eps`` metres, advanced to the
  trajectory's end. ``eps`` from the dataset's own float32 rounding (~1e-8 m) to a tenth of a particle
  spacing; a learned model errs by more than the smallest of them at every step;
* **a discretization twin**: the same trajectory simulated from its first frame with twice the MPM
  substeps (half the solver's time step: the same physics, discretized otherwise).

Each twin is scored exactly as ``gns evaluate`` scores a model from the first frame (the same functions:
:func:`gns.particles.evaluate.escape_from_truth`, :func:`gns.particles.evaluate.kinetic_energy_per_system`,
:func:`gns.metrics.window_factor`), over the same frames, and its full-trajectory position MSE beside it.
If a twin that starts a hair's breadth from the truth already strays, the per-step escape target asks for
more than the physics allows any model, the solver included.

    python benchmarks/solver_twin.py --dataset datasets/water2d
    python benchmarks/solver_twin.py --dataset datasets/water2d --eps 1e-5 1e-4 --draws 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gns.data import open_split  # noqa: E402
from gns.errors import GnsInputError  # noqa: E402
from gns.metrics import ENERGY_WINDOW, window_factor  # noqa: E402
from gns.particles.evaluate import escape_from_truth, kinetic_energy_per_system  # noqa: E402
from gns.solvers.common import SPLITS  # noqa: E402
from gns.solvers.water2d import clip_to_bounds, dataset_config, sample_scene, simulate_scenes, state_at  # noqa: E402
from gns.state import State  # noqa: E402

DEFAULT_EPS = (1e-8, 1e-6, 1e-5, 1e-4, 1e-3)


def score_twin(twin: np.ndarray, truth: np.ndarray, start: int, bounds: np.ndarray) -> dict[str, float]:
    """A twin scored as ``gns evaluate`` scores a model rolled out from frame ``start``.

    Args:
        twin, truth: ``(T, N, 2)`` positions of the whole trajectory (frames before ``start`` ignored).
        start: the last input frame; frames ``start + 1 ..`` are scored.
        bounds: ``(2, 2)`` the box.

    Returns:
        ``escape`` (box widths); ``ke_factor``, the largest over :data:`gns.metrics.ENERGY_WINDOW`-step
        windows, the first and last frame of that window (``ke_worst_frames``), the true mean kinetic energy there
        (``ke_true_there``) and in the true's most energetic window (``ke_true_peak``); the full-trajectory
        position ``mse``.
    """
    predicted = torch.as_tensor(twin[start + 1:], dtype=torch.float32).transpose(0, 1)         # (N, S, 2)
    true = torch.as_tensor(truth[start + 1:], dtype=torch.float32).transpose(0, 1)
    last = {name: torch.as_tensor(x[start], dtype=torch.float32) for name, x in (("twin", twin), ("truth", truth))}
    n = predicted.shape[0]
    state = State(fields={"position": true[:, :1]}, n=torch.tensor([n]))
    mask = torch.ones(n, dtype=torch.bool)
    box, periodic = torch.as_tensor(bounds, dtype=torch.float32), torch.zeros(2, dtype=torch.bool)
    escape, _ = escape_from_truth(predicted, true, state, mask, box, periodic)
    args = (state, mask, box, periodic)
    ke_twin = kinetic_energy_per_system(last["twin"], predicted, *args)      # from its own (moved) start
    ke_true = kinetic_energy_per_system(last["truth"], true, *args)
    starts = range(0, ke_true.shape[1], ENERGY_WINDOW)
    factors = [float(window_factor(ke_twin[:, s:s + ENERGY_WINDOW], ke_true[:, s:s + ENERGY_WINDOW], ENERGY_WINDOW)[0])
               for s in starts]
    worst = int(np.argmax(factors))
    first = start + 1 + starts[worst]
    return {"escape": float(escape[0]), "ke_factor": factors[worst],
            "ke_worst_frames": (first, min(first + ENERGY_WINDOW, len(truth)) - 1),
            "ke_true_there": float(ke_true[0, starts[worst]:starts[worst] + ENERGY_WINDOW].mean()),
            "ke_true_peak": float(max(ke_true[0, s:s + ENERGY_WINDOW].mean() for s in starts)),
            "mse": float(((predicted - true) ** 2).sum(-1).mean())}


def twins(dataset: str | Path, eps: list[float], draws: int, start: int, split: str = "test",
          substeps_factor: int = 2, seed: int = 0) -> list[dict]:
    """Every twin of every trajectory of ``split``: one row each, ``{"twin", "trajectory", "escape",
    "ke_factor", "mse"}`` (see :func:`score_twin`). The perturbed twins of one trajectory advance together
    (one MPM scene each)."""
    config = dataset_config(dataset)
    bounds = np.asarray(config.bounds, dtype=np.float64)
    rng = np.random.default_rng(seed)
    rows = []
    with open_split(dataset, split) as trajectories:
        for index in range(len(trajectories)):
            truth = np.asarray(trajectories[index].position, dtype=np.float64)                  # (T, N, 2)
            steps = len(truth) - 1 - start
            if steps < 1:
                raise GnsInputError("the trajectory is too short for the start frame", key="start",
                                    expected=f"under {len(truth) - 1}", found=start)
            state = state_at(config, SPLITS.index(split), index, start)
            names, scenes = [], []
            for e in eps:
                for d in range(draws):
                    moved = state.position + rng.normal(0.0, e, state.position.shape)
                    scenes.append(dataclasses.replace(state, position=moved))
                    names.append(f"positions moved by {e:g} m" + (f" (draw {d})" if draws > 1 else ""))
            frames = []
            for k in range(0, len(scenes), config.scenes_per_batch):
                frames += simulate_scenes(config, scenes[k:k + config.scenes_per_batch], steps)
            runs = [(name, np.concatenate([truth[:start], f])) for name, f in zip(names, frames)]
            if substeps_factor > 1:
                finer = dataclasses.replace(config, substeps=config.substeps * substeps_factor)
                scene = sample_scene(finer, SPLITS.index(split), index)
                runs.append((f"{substeps_factor}x the substeps, from frame 0",
                             simulate_scenes(finer, [scene], len(truth) - 1)[0]))
            for name, positions in runs:
                clipped, _ = clip_to_bounds(positions, bounds)
                rows.append({"twin": name, "trajectory": index,
                             **score_twin(clipped.astype(np.float32), truth, start, bounds)})
    return rows


def table(rows: list[dict]) -> str:
    """One line per twin: escape, energy factor and full MSE per trajectory, then the worst (the largest
    escape and factor, the mean MSE), as ``gns evaluate`` reduces them; beside the worst factor, where it
    is and the true energy there against the truth's most energetic window."""
    names = list(dict.fromkeys(r["twin"] for r in rows))
    trajectories = sorted({r["trajectory"] for r in rows})
    head = ("| twin | " + " | ".join(f"trajectory {t}: escape / KE factor / full MSE" for t in trajectories)
            + " | escape (worst) | KE factor (worst) | full MSE (mean) |")
    lines = [head, "|" + "---|" * (len(trajectories) + 4)]
    for name in names:
        mine = [r for r in rows if r["twin"] == name]
        cells = [f"{r['escape']:.3f} / {r['ke_factor']:.2f} / {r['mse']:.2e}" for r in mine]
        worst = max(mine, key=lambda r: r["ke_factor"])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {max(r['escape'] for r in mine):.3f} | "
                     f"{worst['ke_factor']:.2f} (trajectory {worst['trajectory']}, frames {worst['ke_worst_frames'][0]}"
                     f"-{worst['ke_worst_frames'][1]}: true KE {worst['ke_true_there']:.1e}, its "
                     f"peak {worst['ke_true_peak']:.1e}) | {np.mean([r['mse'] for r in mine]):.2e} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="datasets/water2d",
                   help="a water dataset made by gns generate water2d (default: datasets/water2d)")
    p.add_argument("--split", default="test", choices=SPLITS, help="the split whose trajectories are twinned "
                   "(default: test)")
    p.add_argument("--eps", nargs="+", type=float, default=list(DEFAULT_EPS),
                   help="std of the Gaussian moves of the positions, metres (default: 1e-8 1e-6 1e-5 1e-4 1e-3; "
                        "the default set's particle spacing is 0.01)")
    p.add_argument("--draws", type=int, default=2, help="perturbed twins per eps and trajectory (default: 2)")
    p.add_argument("--start", type=int, default=5,
                   help="the frame the twins start from, the model's last input frame (default: 5, the main "
                        "job's: five input velocities)")
    p.add_argument("--substeps-factor", type=int, default=2,
                   help="the discretization twin's substeps over the dataset's; 1: none (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the perturbations (default: 0)")
    p.add_argument("--json", metavar="OUT", default=None, help="also write every row to this JSON file")
    args = p.parse_args(argv)
    if args.draws < 1 or args.start < 0 or args.substeps_factor < 1 or min(args.eps) < 0:
        p.error("--draws and --substeps-factor must be at least 1, --start and --eps not negative")
    began = time.perf_counter()
    try:
        rows = twins(args.dataset, args.eps, args.draws, args.start, args.split, args.substeps_factor, args.seed)
    except GnsInputError as error:
        sys.exit(f"solver_twin: {error}")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"dataset": str(args.dataset), "start": args.start, "rows": rows},
                                              indent=1))
    print(f"({time.perf_counter() - began:.0f} s; targets for a model: escape at most 0.02, KE factor at most 2)")


if __name__ == "__main__":
    main()
