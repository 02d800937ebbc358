"""Does an object model see contacts? One-step accelerations where objects start to touch, and what the pair edges add.

On the first ``--trajectories`` held-out test trajectories, at every ``--every``-th frame, the model predicts
the next frame's acceleration from the true window before it (no rollout). Printed:

* **impacts**: the objects that, by the solver's own contact record (``contacts`` of the data), touch
  another object during the step after the window and did not during the step before it; the error of
  the predicted linear acceleration as a share of the true one, ``sum |a_pred - a_true| / sum |a_true|``
  over them (constant velocity, zero acceleration, scores 1.0 by construction), and the same for free
  objects (no contact with an object or a wall in either step, no spring);
* **pair-edge ablation**: the mean absolute change of the network's (normalized) outputs when every
  pair edge is removed from the graph, over the outputs' standard deviation: near 0, the model predicts
  each object from its own history and action alone.

    python benchmarks/objects_contacts.py --checkpoint runs/objects2d --dataset datasets/objects2d
    python benchmarks/objects_contacts.py --checkpoint A B          # several models side by side
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from gns.domains import load_simulator, open_split_for  # noqa: E402
from gns.graph import EdgeSet  # noqa: E402
from gns.objects.windows import ObjectWindows  # noqa: E402


def contact_report(checkpoint: str, dataset: str, trajectories: int, every: int) -> dict[str, Any]:
    """The figures of the module docstring for one model."""
    simulator, config, metadata = load_simulator(checkpoint, "cpu", kind="objects")
    windows = ObjectWindows(open_split_for(simulator, dataset, "test"))
    w = simulator.window
    sums = {"start_err": 0.0, "start_true": 0.0, "free_err": 0.0, "free_true": 0.0}
    counts = {"starts": 0, "free": 0}
    ablation, spread = [], []
    with torch.no_grad():
        for index in range(min(trajectories, len(windows.split))):
            frames = windows.split.num_frames(index)
            full = windows.read(index, 0, frames)
            record = windows.split.read_window(index, 0, frames)
            pair = torch.as_tensor(np.asarray(record.contacts)).any(-1)                      # (T-1, K)
            wall = torch.as_tensor(np.asarray(record.wall_contacts)).any(-1)                 # (T-1, K)
            sprung = torch.zeros(full.num_entities, dtype=torch.bool)
            sprung[full.springs.flatten()] = True
            for t in range(w - 1, frames - 1, every):
                state = full.replace(fields={k: v[:, t + 1 - w:t + 1] for k, v in full.fields.items()})
                nxt = {k: full.fields[k][:, t + 1] for k in simulator.predicted_fields}
                graph = simulator.build_graph(state)
                out = simulator.network(graph)                                               # (K, 3) normalized
                empty = EdgeSet(graph.edge_sets["pairs"].features[:0], graph.edge_sets["pairs"].senders[:0],
                                graph.edge_sets["pairs"].receivers[:0])
                alone = simulator.network(type(graph)(graph.nodes, {**graph.edge_sets, "pairs": empty},
                                                      graph.n_node))
                ablation.append((alone - out).abs().mean(0))
                spread.append(out)
                denorm = simulator.acceleration_normalizer.denormalize
                predicted = denorm(out)[:, :2]
                true = denorm(simulator.target(state, nxt))[:, :2]
                involved = pair[t] & ~pair[t - 1]
                free = ~(pair[t] | pair[t - 1] | wall[t] | wall[t - 1] | sprung)
                err = (predicted - true).norm(dim=-1)
                size = true.norm(dim=-1)
                sums["start_err"] += float(err[involved].sum())
                sums["start_true"] += float(size[involved].sum())
                sums["free_err"] += float(err[free].sum())
                sums["free_true"] += float(size[free].sum())
                counts["starts"] += int(involved.sum())
                counts["free"] += int(free.sum())
    outputs = torch.cat(spread)
    return {"checkpoint": checkpoint, "step": None, "impacts": counts["starts"],
            "impact_error_share": sums["start_err"] / max(sums["start_true"], 1e-12),
            "free_objects": counts["free"],
            "free_error_share": sums["free_err"] / max(sums["free_true"], 1e-12),
            "pair_edge_ablation": float((torch.stack(ablation).mean(0) / outputs.std(0)).mean()),
            "contact_scale": float(getattr(config.objects, "contact_scale", 0.0))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", nargs="+", default=["runs/objects2d"],
                        help="object checkpoints or run directories (default: runs/objects2d)")
    parser.add_argument("--dataset", default="datasets/objects2d", help="object dataset (its test split)")
    parser.add_argument("--trajectories", type=int, default=20, help="test trajectories (default: 20)")
    parser.add_argument("--every", type=int, default=3, help="score every n-th frame (default: 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [contact_report(c, args.dataset, args.trajectories, args.every) for c in args.checkpoint]
    print("| model | contact_scale | objects at impacts | error / true accel. at impacts | same, free objects "
          "| pair-edge ablation / output std |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['checkpoint']} | {r['contact_scale']:g} | {r['impacts']} | "
              f"{r['impact_error_share']:.3f} | {r['free_error_share']:.3f} | {r['pair_edge_ablation']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
