"""Roll a trained mesh simulator over a held-out split and score it against the baselines.

Metric (MeshGraphNets): RMSE of the target field (cloth: position, flow: velocity) over the
simulated nodes at each horizon, ``sqrt(mean over nodes and components of error^2)``, averaged
as mean squared error over trajectories before the square root; ``full`` is the RMSE over every
step of the rollout. Output fields (flow: pressure) get the same table. Baselines: persistence
(every field keeps its last input value) and, for Lagrangian meshes, constant velocity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from gns.data.mesh import MeshSplit
from gns.mesh.rollout import constant_velocity_rollout, mesh_rollout, persistence_rollout
from gns.mesh.simulator import MeshSimulator, MeshState
from gns.train.meshes import MeshWindowSampler, make_sampler, predicted_fields

PERSISTENCE = "persistence"
CONSTANT_VELOCITY = "constant_velocity"


def _squared_error_per_step(predicted: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(S,)`` sum over masked nodes and components of the squared error, per step."""
    err = (predicted - truth) ** 2                                                     # (N, S, F)
    return (err * mask[:, None, None].to(err.dtype)).sum(dim=(0, 2))


def _rmse_table(sq_sum: torch.Tensor, count: float, horizons: Sequence[int]) -> dict[str, float]:
    """RMSE at each horizon (1-based step) and over all steps, from per-step squared-error sums."""
    mse = sq_sum / max(count, 1.0)
    table = {str(h): float(mse[h - 1].sqrt()) for h in horizons if h <= mse.numel()}
    table["full"] = float(mse.mean().sqrt())
    return table


def _trajectory_state(sampler: MeshWindowSampler, index: int, start: int, frames: int) -> MeshState:
    return sampler.load([(index, start)], frames)


def _baseline_rollouts(simulator: MeshSimulator, initial: MeshState, steps: int, future: dict[str, torch.Tensor],
                       simulated: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """The model's rollout and the baselines', each field -> ``(N, steps, F)``."""
    truth = {name: future[name] for name in predicted_fields(simulator)}
    rollouts = {"model": mesh_rollout(simulator, initial, steps, future),
                PERSISTENCE: persistence_rollout(initial, steps, truth, simulated)}
    if simulator.lagrangian:
        target = simulator.target_field
        rollouts[CONSTANT_VELOCITY] = {target: constant_velocity_rollout(initial, target, steps, truth[target],
                                                                         simulated)}
    return rollouts


def _accumulate(sums: dict[str, torch.Tensor], counts: dict[str, float], rollouts: dict[str, dict[str, torch.Tensor]],
                truth: dict[str, torch.Tensor], simulated: torch.Tensor) -> None:
    """Add per-step squared-error sums of every rollout and field (trajectories of unequal length: common steps)."""
    nodes = float(simulated.sum())
    for name, predicted in rollouts.items():
        for field, values in predicted.items():
            sq = _squared_error_per_step(values, truth[field], simulated)
            key = f"{name}/{field}"
            if key in sums:
                n = min(sums[key].numel(), sq.numel())
                sums[key] = sums[key][:n] + sq[:n]
            else:
                sums[key] = sq
            counts[key] = counts.get(key, 0.0) + nodes * values.shape[-1]


def _tables(sums: dict[str, torch.Tensor], counts: dict[str, float], horizons: Sequence[int],
            target: str) -> dict[str, dict[str, dict[str, float]]]:
    """``{rollout name: {"rmse" | "<field>_rmse": {horizon: RMSE, "full": RMSE}}}``."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for key, value in sums.items():
        name, field = key.split("/")
        out.setdefault(name, {})["rmse" if field == target else f"{field}_rmse"] = _rmse_table(value, counts[key],
                                                                                              horizons)
    return out


def evaluate_mesh_split(simulator: MeshSimulator, split: MeshSplit, horizons: Sequence[int],
                        max_trajectories: int | None = None, num_steps: int | None = None,
                        save_path: str | Path | None = None, progress: bool = True,
                        start_stride: int = 0) -> dict[str, object]:
    """Roll out held-out trajectories and compare with the baselines.

    * **from the first frame** (MeshGraphNets' protocol): one rollout per trajectory, to its end
      (or ``num_steps``); RMSE at ``horizons`` and over the whole rollout.
    * **from many start times** (``start_stride > 0``): rollouts of ``max(horizons)`` steps started
      every ``start_stride`` frames (one batch per trajectory), RMSE at each horizon over all starts;
      this scores the middle of trajectories too, not only how they begin. Skipped when only the
      first frame fits.

    Args:
        horizons: steps at which RMSE is reported (those longer than the rollout are skipped).
        max_trajectories: score only the first trajectories of the split.
        num_steps: steps per rollout (default: to the end of each trajectory).
        save_path: write predictions with ground truth (:func:`gns.mesh.rollout_io.write_mesh_rollouts`).
        start_stride: frames between the starts of the multi-start rollouts (0: off).

    Returns:
        ``{"model"|"persistence"[|"constant_velocity"]: {"rmse": {h: .., "full": ..}, "<output>_rmse": ...},
        "num_trajectories": .., "steps": .., ["multistart": {name: {"rmse": {h: ..}}, "num_rollouts": ..,
        "start_stride": ..}]}``.
    """
    device = next(simulator.parameters()).device
    sampler = make_sampler(simulator, split)
    count = len(split) if max_trajectories is None else min(len(split), max_trajectories)
    k = simulator.window
    target = simulator.target_field
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, float] = {}
    multi_sums: dict[str, torch.Tensor] = {}
    multi_counts: dict[str, float] = {}
    longest = max(horizons, default=0)
    starts = {index: list(range(0, split.num_frames(index) - k - longest + 1, start_stride))
              if start_stride > 0 and longest > 0 else [] for index in range(count)}
    if max(map(len, starts.values()), default=0) <= 1:
        starts = {index: [] for index in starts}  # only the first frame fits: nothing beyond the table above
    num_starts = 0
    saved = []
    steps_done = None
    for index in tqdm(range(count), desc="evaluate", disable=not progress):
        frames = split.num_frames(index)
        steps = frames - k if num_steps is None else min(num_steps, frames - k)
        state = _trajectory_state(sampler, index, 0, k + steps).to(device)
        future = {name: v[:, k:] for name, v in state.fields.items()}                 # (N, S, F)
        initial = state.window(0, k)
        simulated = simulator.is_simulated(state.node_type)
        rollouts = _baseline_rollouts(simulator, initial, steps, future, simulated)
        _accumulate(sums, counts, rollouts, future, simulated)
        steps_done = steps if steps_done is None else min(steps_done, steps)
        if save_path is not None:
            saved.append(_as_rollout(split, index, state, rollouts["model"], k))
        if starts[index]:
            batch = sampler.load([(index, t0) for t0 in starts[index]], k + longest).to(device)  # all starts at once
            batch_future = {name: v[:, k:] for name, v in batch.fields.items()}
            batch_simulated = simulator.is_simulated(batch.node_type)
            _accumulate(multi_sums, multi_counts,
                        _baseline_rollouts(simulator, batch.window(0, k), longest, batch_future, batch_simulated),
                        batch_future, batch_simulated)
            num_starts += len(starts[index])
    summary: dict[str, object] = {"num_trajectories": count, "steps": steps_done, "target_field": target}
    summary.update(_tables(sums, counts, horizons, target))
    if num_starts:
        multi = _tables(multi_sums, multi_counts, horizons, target)
        for tables in multi.values():
            for table in tables.values():
                table.pop("full")  # the mean over max(horizons) steps, not a whole trajectory
        summary["multistart"] = {**multi, "num_rollouts": num_starts, "start_stride": start_stride}
    if save_path is not None:
        from gns.mesh.rollout_io import write_mesh_rollouts

        write_mesh_rollouts(save_path, saved, domain=simulator.metadata.domain, dt=float(simulator.metadata.dt),
                            target_field=target)
    return summary


def _as_rollout(split: MeshSplit, index: int, state: MeshState, predicted: dict[str, torch.Tensor], k: int):
    """A :class:`gns.mesh.rollout_io.MeshRollout` with the input frames prepended to the prediction."""
    from gns.mesh.rollout_io import MeshRollout

    static = split.read_window(index, 0, 1, fields=[])
    truth = {name: v.cpu().numpy().transpose(1, 0, 2) for name, v in state.fields.items()
             if name in predicted}                                                              # (T, N, F)
    pred = {}
    for name, values in predicted.items():
        head = truth[name][:k]
        pred[name] = np.concatenate([head, values.cpu().numpy().transpose(1, 0, 2)], axis=0)
    return MeshRollout(key=static.key, mesh_pos=np.asarray(static.mesh_pos, np.float32),
                       cells=np.asarray(static.cells, np.int32), node_type=np.asarray(static.node_type, np.int32),
                       predicted=pred, ground_truth=truth)


def format_mesh_table(summary: dict[str, object], field_key: str = "rmse") -> str:
    """The RMSE tables of :func:`evaluate_mesh_split` as aligned text, with persistence / model ratios."""
    names = [n for n in ("model", PERSISTENCE, CONSTANT_VELOCITY) if n in summary and field_key in summary[n]]
    if not names:
        return ""
    columns = list(summary["model"][field_key])
    lines = [f"{'horizon':>24}" + "".join(f"{c:>11}" for c in columns)]
    for name in names:
        lines.append(f"{name:>24}" + "".join(f"{summary[name][field_key][c]:>11.3e}" for c in columns))
    best = [min(summary[n][field_key][c] for n in names if n != "model") for c in columns]
    model = [summary["model"][field_key][c] for c in columns]
    lines.append(f"{'better baseline / model':>24}" + "".join(
        f"{(b / m if m > 0 else float('inf')):>11.2f}" for b, m in zip(best, model)))
    return "\n".join(lines)


def print_mesh_summary(summary: dict[str, object]) -> str:
    """Every RMSE table of a summary (target field, then output fields; then the multi-start ones) as text."""
    parts = [f"RMSE of {summary['target_field']} over the simulated nodes, {summary['num_trajectories']} "
             f"trajectories from their first frames:", format_mesh_table(summary, "rmse")]
    for key in summary["model"]:
        if key != "rmse":
            parts += [f"RMSE of {key[:-len('_rmse')]}:", format_mesh_table(summary, key)]
    multi = summary.get("multistart")
    if multi:
        parts += [f"RMSE of {summary['target_field']}, {multi['num_rollouts']} rollouts started every "
                  f"{multi['start_stride']} frames:", format_mesh_table(multi, "rmse")]
        for key in multi["model"]:
            if key != "rmse":
                parts += [f"RMSE of {key[:-len('_rmse')]} (multi-start):", format_mesh_table(multi, key)]
    return "\n".join(parts)
