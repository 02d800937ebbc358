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
from gns.metrics import at_horizons, average_metrics, mse_per_step, rollout_metrics
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


def _predict(simulator, initial: ParticleBatch, steps: int, truth: torch.Tensor,
             gravity: torch.Tensor) -> dict[str, torch.Tensor]:
    """``(steps, N, D)`` rollouts of the model and both baselines from the same window."""
    kinematic = simulator.is_kinematic(initial.particle_type)
    bounds, periodic = simulator.bounds, simulator.periodic
    return {
        "model": rollout(simulator, initial, steps, prescribed=truth),
        "constant_velocity": baseline_rollout(initial, steps, torch.zeros_like(gravity), bounds, periodic,
                                              kinematic, truth),
        "constant_acceleration": baseline_rollout(initial, steps, gravity, bounds, periodic, kinematic, truth),
    }


def _repeat(batch: ParticleBatch, positions: list[torch.Tensor]) -> ParticleBatch:
    """The systems of ``batch`` once per entry of ``positions`` (each ``(N, W, D)``), as one batch."""
    k = len(positions)
    return ParticleBatch(torch.cat(positions), batch.particle_type.repeat(k), batch.n_particles.repeat(k),
                         None if batch.context is None else batch.context.repeat(k, 1))


def evaluate_split(simulator, split: TrajectorySplit, metadata: DatasetMetadata, horizons: Sequence[int],
                   max_trajectories: int | None = None, batch_trajectories: int = 4, num_steps: int | None = None,
                   save_path: str | Path | None = None, progress: bool = True,
                   start_stride: int = 0) -> dict[str, object]:
    """Roll out held-out trajectories and compare the model with the baselines.

    Two protocols:

    * **from the first frame**: each trajectory rolled out from its first ``C+1`` frames to the end
      (or ``num_steps``); MSE at ``horizons`` and over the whole rollout, kinetic-energy error.
    * **from many start times** (``start_stride > 0``): rollouts of ``max(horizons)`` steps started every
      ``start_stride`` frames, all in one batch; MSE at each horizon averaged over starts. This scores
      the model where particles interact, not only in the opening frames (on water2d the opening
      frames are free fall, where the gravity-only baseline is exact).

    Args:
        save_path: write the from-first-frame predictions with ground truth to this HDF5 file
            (``{traj}/predicted``, ``{traj}/ground_truth`` ``(T, N, D)``, ``{traj}/particle_type``,
            ``{traj}/initial``) and the metrics beside it as JSON.

    Returns:
        ``{"model"|"constant_velocity"|"constant_acceleration": averaged metrics, "per_trajectory": [...],
        "multistart": {name: {"mse": {h: ...}}, "num_rollouts": ..., "start_stride": ...}}``.
    """
    device = next(simulator.parameters()).device
    c1 = simulator.history + 1
    indices = list(range(len(split)))[: max_trajectories or None]
    results: dict[str, list] = {m: [] for m in MODELS}
    multistart: dict[str, list] = {m: [] for m in MODELS}
    per_trajectory = []
    saved = {}
    gravity = gravity_of(metadata).to(device)
    bounds, periodic = simulator.bounds, simulator.periodic
    longest = max(horizons, default=0)
    for group in tqdm(_groups(split, indices, batch_trajectories), desc="evaluate", disable=not progress):
        trajs = [split[i] for i in group]
        frames = trajs[0].position.shape[0]
        steps = frames - c1 if num_steps is None else min(num_steps, frames - c1)
        full = torch.cat([torch.from_numpy(t.position).transpose(0, 1) for t in trajs]).to(device)  # (N, T, D)
        ptype = torch.cat([torch.from_numpy(np.asarray(t.particle_type, dtype=np.int64)) for t in trajs]).to(device)
        counts = torch.tensor([t.position.shape[1] for t in trajs], device=device)
        context = None
        if simulator.context_size:
            context = torch.stack([torch.as_tensor(t.context, dtype=torch.float32) for t in trajs]).to(device)
        initial = ParticleBatch(full[:, :c1], ptype, counts, context)
        truth = full[:, c1:c1 + steps].transpose(0, 1)                              # (T, N, D)
        kinematic = simulator.is_kinematic(ptype)
        predictions = _predict(simulator, initial, steps, truth, gravity)
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
        if start_stride > 0 and longest > 0:
            t0s = list(range(0, frames - c1 - longest + 1, start_stride))
            if t0s:
                batch = _repeat(initial, [full[:, t0:t0 + c1] for t0 in t0s])
                truth_ms = torch.cat([full[:, t0 + c1:t0 + c1 + longest] for t0 in t0s]).transpose(0, 1)
                preds = _predict(simulator, batch, longest, truth_ms, gravity)
                n = full.shape[0]
                for k in range(len(t0s)):
                    for b in range(len(group)):
                        sl = slice(k * n + starts[b], k * n + starts[b + 1])
                        mask = ~kinematic[starts[b]:starts[b + 1]]
                        for name, pred in preds.items():
                            per_step = mse_per_step(pred[:, sl], truth_ms[:, sl], bounds, periodic, mask)
                            multistart[name].append(at_horizons(per_step, horizons))
    summary = {name: average_metrics(items) for name, items in results.items()}
    summary["per_trajectory"] = per_trajectory
    summary["horizons"] = list(horizons)
    if any(multistart.values()):
        summary["multistart"] = {name: {"mse": {k: float(np.mean([m[k] for m in items])) for k in items[0]}}
                                 for name, items in multistart.items()}
        summary["multistart"]["num_rollouts"] = len(multistart["model"])
        summary["multistart"]["start_stride"] = start_stride
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


def _mse_rows(mse: dict[str, dict[str, float]], keys: list[str]) -> list[str]:
    lines = [f"{'horizon':>24} " + " ".join(f"{k:>10}" for k in keys)]
    for name in MODELS:
        lines.append(f"{name:>24} " + " ".join(f"{mse[name][k]:10.3e}" for k in keys))
    best = {k: min(mse[b][k] for b in MODELS[1:]) for k in keys}
    lines.append(f"{'better baseline / model':>24} " + " ".join(
        f"{best[k] / mse['model'][k]:10.2f}" if mse["model"][k] > 0 else f"{'inf':>10}" for k in keys))
    return lines


def format_table(summary: dict[str, object]) -> str:
    """Plain-text tables of position MSE per horizon for the model and the baselines."""
    keys = list(summary["model"]["mse"].keys())
    lines = ["position MSE, rollouts from the first frame:"]
    lines += _mse_rows({m: summary[m]["mse"] for m in MODELS}, keys)
    lines.append(f"kinetic-energy error: model {summary['model']['ke_error']:.3e}, constant velocity "
                 f"{summary['constant_velocity']['ke_error']:.3e}, gravity only "
                 f"{summary['constant_acceleration']['ke_error']:.3e} (mean KE {summary['model']['ke_true_mean']:.3e})")
    if "multistart" in summary:
        ms = summary["multistart"]
        lines.append(f"position MSE, {ms['num_rollouts']} rollouts started every {ms['start_stride']} frames:")
        lines += _mse_rows({m: ms[m]["mse"] for m in MODELS}, list(ms["model"]["mse"].keys()))
    return "\n".join(lines)
