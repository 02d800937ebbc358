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
    python benchmarks/objects_contacts.py --impact-estimate 40     # what the objects.impact inputs explain alone
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

from torch import Tensor  # noqa: E402

from gns.domains import load_simulator, open_split_for  # noqa: E402
from gns.graph import EdgeSet  # noqa: E402
from gns.objects.windows import ObjectWindows  # noqa: E402


def contact_report(checkpoint: str, dataset: str, trajectories: int, every: int, split: str = "test"
                   ) -> dict[str, Any]:
    """The figures of the module docstring for one model."""
    simulator, config, metadata = load_simulator(checkpoint, "cpu", kind="objects")
    windows = ObjectWindows(open_split_for(simulator, dataset, split))
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
    return {"checkpoint": checkpoint, "impacts": counts["starts"],
            "impact_error_share": sums["start_err"] / max(sums["start_true"], 1e-12),
            "free_objects": counts["free"],
            "free_error_share": sums["free_err"] / max(sums["free_true"], 1e-12),
            "pair_edge_ablation": float((torch.stack(ablation).mean(0) / outputs.std(0)).mean()),
            "contact_scale": float(getattr(config.objects, "contact_scale", 0.0))}


def action_law(dataset: str, trajectories: int) -> dict[str, float]:
    """Which actions explain a free object's acceleration ``x_{t+1} - 2 x_t + x_{t-1}`` (first ``trajectories``
    training trajectories; free: no contact with an object or a wall in either step, no spring): the error
    share ``sum |a - a_hat| / sum |a|`` of ``a_hat`` = the current action's, the previous action's, and their
    mean's acceleration ``F dt^2 / m``, each plus the solver's damping of the last velocity."""
    from gns.domains import get_domain

    domain = get_domain("objects")
    metadata = domain.load_metadata(dataset)
    split = domain.open_split(dataset, "train", metadata)
    keep = 0.5 ** metadata.dt - 1
    errors: dict[str, float] = {"current": 0.0, "previous": 0.0, "mean": 0.0}
    total = 0.0
    for i in range(min(trajectories, len(split))):
        record, scene = split.read_window(i, 0, split.num_frames(i)), split.scene(i)
        x = np.asarray(record.position, np.float64)
        push = np.asarray(record.action, np.float64)[..., :2] / np.asarray(scene.mass)[None, :, None] * metadata.dt ** 2
        pair, wall = np.asarray(record.contacts).any(-1), np.asarray(record.wall_contacts).any(-1)
        sprung = np.zeros(x.shape[1], bool)
        sprung[np.asarray(scene.spring_pairs, dtype=np.int64).reshape(-1)] = True
        free = ~(pair[1:] | pair[:-1] | wall[1:] | wall[:-1] | sprung[None])          # (T-2, K)
        a = x[2:] - 2 * x[1:-1] + x[:-2]                                                # (T-2, K, 2)
        damping = keep * (x[1:-1] - x[:-2])
        guesses = {"current": push[1:], "previous": push[:-1], "mean": 0.5 * (push[1:] + push[:-1])}
        for name, guess in guesses.items():
            errors[name] += float(np.linalg.norm((a - guess - damping)[free], axis=-1).sum())
        total += float(np.linalg.norm(a[free], axis=-1).sum())
    return {name: value / total for name, value in errors.items()}


def impact_law(dataset: str, trajectories: int) -> dict[str, Any]:
    """How well a collision law computed from what the model is given explains the data's disc-disc impacts.

    For every impact between two discs that touch nothing else in that step or the one before (training
    split, first ``trajectories``): the change of the first disc's acceleration along the centre line,
    beyond the free motion (the mean of the two actions' accelerations and the damping), against
    ``-(1 + e_a e_b) m_b / (m_a + m_b) * closing * after``, with ``closing`` the centres' closing speed
    over the step (free motion) and ``after`` the share of the step left after the gap closes.
    """
    from gns.domains import get_domain
    from gns.objects.geometry import body_vertices, place, separation

    domain = get_domain("objects")
    metadata = domain.load_metadata(dataset)
    split = domain.open_split(dataset, "train", metadata)
    keep = 0.5 ** metadata.dt - 1                       # the solver's damping: half the velocity kept per second
    rows = []
    for i in range(min(trajectories, len(split))):
        record, scene = split.read_window(i, 0, split.num_frames(i)), split.scene(i)
        shape, mass = np.asarray(scene.shape), np.asarray(scene.mass)
        restitution = np.asarray(scene.restitution)
        x, angle = np.asarray(record.position, np.float64), np.asarray(record.angle, np.float64)
        pair, wall = np.asarray(record.contacts), np.asarray(record.wall_contacts).any(-1)
        force = np.asarray(record.action, np.float64)[..., :2]
        vertices, rounding = body_vertices(torch.as_tensor(shape), torch.as_tensor(np.asarray(scene.size)))
        for t in range(2, x.shape[0] - 1):
            for a, b in np.argwhere(np.triu(pair[t] & ~pair[t - 1])):
                alone = all(pair[t][k].sum() == 1 and not wall[t][k] and not pair[t - 1][k].any() for k in (a, b))
                if shape[a] != 0 or shape[b] != 0 or not alone:
                    continue
                free = 0.5 * (force[t] + force[t - 1]) / mass[:, None] * metadata.dt ** 2 + keep * (x[t] - x[t - 1])
                change = x[t + 1] - 2 * x[t] + x[t - 1] - free
                normal = (x[t][b] - x[t][a]) / np.linalg.norm(x[t][b] - x[t][a])
                closing = -np.dot((x[t][b] - x[t - 1][b] + free[b]) - (x[t][a] - x[t - 1][a] + free[a]), normal)
                placed = place(vertices[[a, b]], torch.as_tensor(x[t][[a, b]], dtype=torch.float32),
                               torch.as_tensor(angle[t][[a, b]], dtype=torch.float32))
                gap = float(separation(placed[:1], rounding[a:a + 1], placed[1:], rounding[b:b + 1])[0])
                after = np.clip(1 - max(gap, 0.0) / closing, 0, 1) if closing > 0 else 0.0
                law = -(1 + restitution[a] * restitution[b]) * mass[b] / (mass[a] + mass[b]) * closing * after
                rows.append((float(np.dot(change[a], normal)), law))
    if len(rows) < 2:
        return {"impacts": len(rows), "correlation": None, "residual_share": None, "best_scale": None,
                "residual_share_scaled": None}
    y, p = np.asarray(rows).T
    scale = float(np.dot(y, p) / np.dot(p, p))
    return {"impacts": len(rows), "correlation": float(np.corrcoef(y, p)[0, 1]),
            "residual_share": float(np.abs(y - p).sum() / np.abs(y).sum()),
            "best_scale": scale, "residual_share_scaled": float(np.abs(y - scale * p).sum() / np.abs(y).sum())}


def impact_mlp(checkpoint: str, dataset: str, trajectories: int, iterations: int = 3000) -> dict[str, Any]:
    """Can the model's own inputs be fitted at impacts? An MLP (2 x 128, Adam) from the features of one impacting
    pair (the edge sender -> receiver and both nodes, as the model's graph gives them) to the receiver's
    normalized target, on the impacts of the first ``trajectories`` training trajectories (objects touching
    one other object), 80% to fit and 20% held out; error shares of the linear acceleration."""
    simulator, _, _ = load_simulator(checkpoint, "cpu", kind="objects")
    windows = ObjectWindows(open_split_for(simulator, dataset, "train"))
    w = simulator.window
    xs, ys = [], []
    with torch.no_grad():
        for i in range(min(trajectories, len(windows.split))):
            frames = windows.split.num_frames(i)
            full = windows.read(i, 0, frames)
            pair = np.asarray(windows.split.read_window(i, 0, frames).contacts)
            for t in range(w - 1, frames - 1):
                new = pair[t] & ~pair[t - 1]
                if not new.any():
                    continue
                state = full.replace(fields={k: v[:, t + 1 - w:t + 1] for k, v in full.fields.items()})
                graph = simulator.build_graph(state)
                edges = graph.edge_sets["pairs"]
                target = simulator.target(state, {k: full.fields[k][:, t + 1] for k in simulator.predicted_fields})
                for a, b in np.argwhere(new):
                    if pair[t][a].sum() != 1:
                        continue
                    row = (edges.senders == int(b)) & (edges.receivers == int(a))
                    xs.append(torch.cat([edges.features[row][0], graph.nodes[a], graph.nodes[b]]))
                    ys.append(target[a])
    if len(xs) < 5:
        return {"impacts": len(xs), "fit_error_share": None, "held_out_error_share": None}
    torch.manual_seed(0)
    x, y = torch.stack(xs), torch.stack(ys)
    order = torch.randperm(len(x))
    fit, held = order[:int(0.8 * len(x))], order[int(0.8 * len(x)):]
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 128), torch.nn.ReLU(), torch.nn.Linear(128, 128),
                              torch.nn.ReLU(), torch.nn.Linear(128, y.shape[1]))
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(iterations):
        batch = fit[torch.randint(len(fit), (256,))]
        loss = ((net(x[batch]) - y[batch]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        def share(ix: Tensor) -> float:
            return float((net(x[ix])[:, :2] - y[ix, :2]).norm(dim=-1).sum() / y[ix, :2].norm(dim=-1).sum())
        return {"impacts": len(x), "fit_error_share": share(fit), "held_out_error_share": share(held)}


def impact_estimate(dataset: str, trajectories: int) -> dict[str, dict[str, float]]:
    """How much of the acceleration at impacts the ``objects.impact`` inputs explain, by themselves.

    On the first ``trajectories`` training trajectories, every object that starts touching another object
    (by the solver's record) in the step after the window and touches no wall in it or the step before
    (``pairs``), that starts touching a wall and no object (``walls``), that starts touching a static obstacle
    and nothing else (``obstacles``, in scenes that have them), and the free objects (no contact in either
    step, every fifth frame): the change of the acceleration beyond the free motion (the mean of the
    two actions' accelerations and the solver's damping) against the summed impact inputs
    (:meth:`gns.objects.ObjectSimulator.impact_estimate`), as the share ``sum |change - estimate| / sum
    |change|`` (predicting no change: 1), and, for the free objects, the share of their whole acceleration
    that the free motion leaves, without and with the estimate added.
    """
    from gns.config import ModelConfig, ObjectConfig
    from gns.domains import get_domain
    from gns.objects.simulator import ObjectSimulator

    domain = get_domain("objects")
    metadata = domain.load_metadata(dataset)
    split = domain.open_split(dataset, "train", metadata)
    simulator = ObjectSimulator(ModelConfig(latent_size=8, message_passing_steps=1), ObjectConfig(impact=True),
                                metadata, 0.0).eval()
    windows = ObjectWindows(split)
    keep = 0.5 ** metadata.dt - 1                       # the solver's damping: half the velocity kept per second
    sums = {name: [0.0, 0.0, 0, 0.0, 0.0] for name in ("pairs", "walls", "obstacles", "free")}
    for i in range(min(trajectories, len(split))):
        frames = split.num_frames(i)
        full, record = windows.read(i, 0, frames), split.read_window(i, 0, frames)
        pair, wall = np.asarray(record.contacts).any(-1), np.asarray(record.wall_contacts).any(-1)
        blocked = (np.asarray(record.obstacle_contacts).any(-1) if record.obstacle_contacts is not None
                   and np.size(record.obstacle_contacts) else np.zeros_like(pair))             # (T-1, K)
        for t in range(simulator.window - 1, frames - 1):
            near = {"pairs": pair, "walls": wall, "obstacles": blocked}
            groups = {name: contact[t] & ~contact[t - 1]
                      & ~np.any([other[t] | other[t - 1] for key, other in near.items() if key != name], axis=0)
                      for name, contact in near.items()}
            groups["free"] = ~np.any([c[t] | c[t - 1] for c in near.values()], axis=0) & (t % 5 == 0)
            if not any(g.any() for g in groups.values()):
                continue
            state = full.replace(fields={k: v[:, t + 1 - simulator.window:t + 1] for k, v in full.fields.items()})
            x = full.position[:, t - 1:t + 2].double()
            accel = x[:, 2] - 2 * x[:, 1] + x[:, 0]
            free = simulator.action_acceleration(state).mean(1)[:, :2].double() + keep * (x[:, 1] - x[:, 0])
            change = accel - free
            estimate = simulator.impact_estimate(state)[:, :2].double()
            for name, group in groups.items():
                chosen = torch.as_tensor(group)
                s_ = sums[name]
                s_[0] += float((change - estimate)[chosen].norm(dim=-1).sum())
                s_[1] += float(change[chosen].norm(dim=-1).sum())
                s_[2] += int(chosen.sum())
                s_[3] += float(accel[chosen].norm(dim=-1).sum())
    return {name: {"objects": s_[2], "unexplained_share": s_[0] / max(s_[1], 1e-30),
                   "free_motion_share_of_acceleration": s_[1] / max(s_[3], 1e-30),
                   "with_estimate_share_of_acceleration": s_[0] / max(s_[3], 1e-30)} for name, s_ in sums.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", nargs="+", default=["runs/objects2d"],
                        help="object checkpoints or run directories (default: runs/objects2d)")
    parser.add_argument("--dataset", default="datasets/objects2d", help="object dataset (its test split)")
    parser.add_argument("--split", default="test", help="split scored (default: test; train shows what the model fits)")
    parser.add_argument("--trajectories", type=int, default=20, help="trajectories of the split (default: 20)")
    parser.add_argument("--every", type=int, default=3, help="score every n-th frame (default: 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--impact-law", type=int, metavar="N", default=0,
                        help="also: how well a collision law from the model's inputs explains the disc-disc impacts "
                             "of the first N training trajectories, and how well an MLP fits the first checkpoint's "
                             "inputs at the impacts of N training trajectories (0: skip)")
    parser.add_argument("--action-law", type=int, metavar="N", default=0,
                        help="also: which actions explain the free objects' accelerations in the first N "
                             "training trajectories (0: skip)")
    parser.add_argument("--impact-estimate", type=int, metavar="N", default=0,
                        help="also: how much of the acceleration at the impacts of the first N training trajectories "
                             "the objects.impact inputs explain by themselves (0: skip)")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.action_law:
        law = action_law(args.dataset, args.action_law)
        print("free objects' acceleration unexplained by the action's plus damping: "
              + ", ".join(f"{name} {share:.3f}" for name, share in law.items()))
    if args.impact_law:
        law = impact_law(args.dataset, args.impact_law)
        if law["correlation"] is None:
            print(f"disc-disc impacts: {law['impacts']}, too few to fit a law")
        else:
            print(f"disc-disc impacts: {law['impacts']}; the law from the inputs: correlation {law['correlation']:.3f}, "
                  f"error share {law['residual_share']:.3f} (scaled by {law['best_scale']:.2f}: "
                  f"{law['residual_share_scaled']:.3f}); predicting no change: 1.000")
        mlp = impact_mlp(args.checkpoint[0], args.dataset, args.impact_law)
        if mlp["fit_error_share"] is None:
            print(f"impacts in the training split: {mlp['impacts']}, too few to fit an MLP")
        else:
            print(f"MLP on {args.checkpoint[0]}'s inputs at {mlp['impacts']} impacts: error share fitted "
                  f"{mlp['fit_error_share']:.3f}, held out {mlp['held_out_error_share']:.3f}")
    if args.impact_estimate:
        table = impact_estimate(args.dataset, args.impact_estimate)
        print("| objects (training split) | count | change beyond free motion left by the impact inputs "
              "| free motion leaves of the acceleration | with the impact inputs |")
        print("|---|---:|---:|---:|---:|")
        for name, r in table.items():
            print(f"| {name} | {r['objects']} | {r['unexplained_share']:.3f} | "
                  f"{r['free_motion_share_of_acceleration']:.3f} | {r['with_estimate_share_of_acceleration']:.3f} |")
    rows = [contact_report(c, args.dataset, args.trajectories, args.every, args.split) for c in args.checkpoint]
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
