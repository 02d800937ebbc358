"""Roll a trained particle simulator over a held-out split and score it against baselines."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from gns.data import DatasetMetadata, TrajectorySplit
from gns.metrics import average_metrics, rollout_metrics
from gns.particles.batch import ParticleBatch
from gns.rollout import baseline_rollout, rollout

MODELS = ("model", "constant_velocity", "constant_acceleration")


def gravity_of(metadata: DatasetMetadata) -> torch.Tensor:
    """Per-step acceleration of the gravity-only baseline: ``metadata.gravity`` if given, else ``acc_mean``."""
    g = metadata.gravity if metadata.gravity is not None else metadata.acc_mean
    return torch.as_tensor(g, dtype=torch.float32)


def _groups(split: TrajectorySplit, indices: Sequence[int], size: int) -> list[list[int]]:
    """Batches of trajectories of equal length (so they roll out together)."""
    by_length: dict[int, list[int]] = {}
    for i in indices:
        by_length.setdefault(split.sequence_length(i), []).append(i)
    return [idx[k:k + size] for idx in by_length.values() for k in range(0, len(idx), size)]


def evaluate_split(simulator, split: TrajectorySplit, metadata: DatasetMetadata, horizons: Sequence[int],
                   max_trajectories: int | None = None, batch_trajectories: int = 4, num_steps: int | None = None,
                   save_path: str | Path | None = None, progress: bool = True) -> dict[str, object]:
    """Roll out every trajectory of ``split`` from its first ``C+1`` steps and compare with the truth.

    Args:
        num_steps: steps to roll out (default: to the end of each trajectory).
        save_path: write predictions with ground truth to this HDF5 file (``{traj}/predicted``,
            ``{traj}/ground_truth`` ``(T, N, D)``, ``{traj}/particle_type``) and the metrics beside it.

    Returns:
        ``{"model"|"constant_velocity"|"constant_acceleration": averaged metrics, "per_trajectory": [...]}``.
    """
    device = next(simulator.parameters()).device
    c1 = simulator.history + 1
    indices = list(range(len(split)))[: max_trajectories or None]
    results: dict[str, list] = {m: [] for m in MODELS}
    per_trajectory = []
    saved = {}
    gravity = gravity_of(metadata).to(device)
    bounds, periodic = simulator.bounds, simulator.periodic
    for group in tqdm(_groups(split, indices, batch_trajectories), desc="evaluate", disable=not progress):
        trajs = [split[i] for i in group]
        steps = trajs[0].position.shape[0] - c1 if num_steps is None else min(num_steps,
                                                                               trajs[0].position.shape[0] - c1)
        full = torch.cat([torch.from_numpy(t.position).transpose(0, 1) for t in trajs]).to(device)  # (N, T, D)
        ptype = torch.cat([torch.from_numpy(np.asarray(t.particle_type, dtype=np.int64)) for t in trajs]).to(device)
        counts = torch.tensor([t.position.shape[1] for t in trajs], device=device)
        context = None
        if simulator.context_size:
            context = torch.stack([torch.as_tensor(t.context, dtype=torch.float32) for t in trajs]).to(device)
        initial = ParticleBatch(full[:, :c1], ptype, counts, context)
        truth = full[:, c1:c1 + steps].transpose(0, 1)                              # (T, N, D)
        kinematic = simulator.is_kinematic(ptype)
        predictions = {
            "model": rollout(simulator, initial, steps, prescribed=truth),
            "constant_velocity": baseline_rollout(initial, steps, torch.zeros_like(gravity), bounds, periodic,
                                                  kinematic, truth),
            "constant_acceleration": baseline_rollout(initial, steps, gravity, bounds, periodic, kinematic, truth),
        }
        starts = [0] + counts.cumsum(0).tolist()
        for b, traj_index in enumerate(group):
            sl = slice(starts[b], starts[b + 1])
            mask = ~kinematic[sl]
            row = {"trajectory": split.keys()[traj_index], "steps": steps}
            for name, pred in predictions.items():
                m = rollout_metrics(pred[:, sl], truth[:, sl], full[sl, c1 - 1], bounds, periodic, horizons, mask)
                results[name].append(m)
                row[name] = m["mse"]
            per_trajectory.append(row)
            if save_path is not None:
                saved[split.keys()[traj_index]] = (predictions["model"][:, sl].cpu().numpy(),
                                                   truth[:, sl].cpu().numpy(), ptype[sl].cpu().numpy(),
                                                   full[sl, :c1].transpose(0, 1).cpu().numpy())
    summary = {name: average_metrics(items) for name, items in results.items()}
    summary["per_trajectory"] = per_trajectory
    summary["horizons"] = list(horizons)
    if save_path is not None:
        write_rollouts(save_path, saved, summary)
    return summary


def write_rollouts(path: str | Path, rollouts: dict[str, tuple], summary: dict) -> Path:
    """Atomically write ``{key: (predicted, ground_truth, particle_type, initial)}`` to HDF5 (or .npz)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".npz":
        arrays = {}
        for key, (pred, truth, ptype, initial) in rollouts.items():
            arrays.update({f"{key}/predicted": pred, f"{key}/ground_truth": truth, f"{key}/particle_type": ptype,
                           f"{key}/initial": initial})
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    else:
        with h5py.File(tmp, "w") as f:
            for key, (pred, truth, ptype, initial) in rollouts.items():
                g = f.create_group(key)
                g["predicted"], g["ground_truth"], g["particle_type"], g["initial"] = pred, truth, ptype, initial
            f.attrs["metrics"] = json.dumps(summary)
    os.replace(tmp, path)
    path.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    return path


def read_rollouts(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Inverse of :func:`write_rollouts`: ``{key: {"predicted", "ground_truth", "particle_type", "initial"}}``."""
    path = Path(path)
    out: dict[str, dict[str, np.ndarray]] = {}
    if path.suffix == ".npz":
        with np.load(path) as f:
            for name in f.files:
                key, field = name.rsplit("/", 1)
                out.setdefault(key, {})[field] = f[name]
        return out
    with h5py.File(path, "r") as f:
        for key in f:
            out[key] = {field: f[key][field][()] for field in f[key]}
    return out


def format_table(summary: dict[str, object]) -> str:
    """Plain-text table of position MSE per horizon for the model and the baselines."""
    keys = list(summary["model"]["mse"].keys())
    header = f"{'horizon':>22} " + " ".join(f"{k:>10}" for k in keys)
    lines = [header]
    for name in MODELS:
        mse = summary[name]["mse"]
        lines.append(f"{name:>22} " + " ".join(f"{mse[k]:10.3e}" for k in keys))
    best = {k: min(summary[b]["mse"][k] for b in MODELS[1:]) for k in keys}
    lines.append(f"{'better baseline / model':>22} " + " ".join(
        f"{best[k] / summary['model']['mse'][k]:10.2f}" if summary["model"]["mse"][k] > 0 else f"{'inf':>10}"
        for k in keys))
    lines.append(f"kinetic-energy error: model {summary['model']['ke_error']:.3e}, constant velocity "
                 f"{summary['constant_velocity']['ke_error']:.3e}, gravity only "
                 f"{summary['constant_acceleration']['ke_error']:.3e} (mean KE {summary['model']['ke_true_mean']:.3e})")
    return "\n".join(lines)
