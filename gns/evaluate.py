"""Roll a trained simulator of any domain over a held-out split and score it against its baselines.

Two protocols, for every domain:

* **from the first frame**: each trajectory rolled out from its first ``window`` frames to its
  end (or ``num_steps``); error at ``horizons`` and over the whole rollout.
* **from many start times** (``start_stride > 0``): rollouts of ``max(horizons)`` steps started
  every ``start_stride`` frames, all starts of a group of trajectories in one batch (those from frame 0
  are the first-frame rollouts' first steps, scored from them); error at each horizon averaged over
  starts. This scores the middle of trajectories too, not only how they begin (water2d opens in
  free fall, where gravity-only is exact; a flag opens at rest). Skipped when only the first frame
  fits.

The domain supplies an :class:`Evaluation` (its steppers: the model and the baselines; the error
of a field; the entities that are scored; what a saved record holds) through
:mod:`gns.domains`; everything else (grouping, batching, the rollouts, reductions, the rollout
file, the table) is here once.

Error conventions. ``metric = "mse"`` with ``reduction = "per_rollout"`` (particles, GNS): the
mean squared error over scored entities and components, per rollout, averaged over rollouts.
``metric = "rmse"`` with ``reduction = "pooled"`` (meshes, MeshGraphNets): squared errors pooled
over every rollout's scored nodes, then the square root. ``"full"`` is the mean over every step
of the rollout (of the MSE; the RMSE's is the root of the mean MSE).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from gns.atomic import write_json_atomic
from gns.data.windows import WindowSampler
from gns.metrics import per_system_sum, reduce_extra, reduce_rollouts
from gns.progress import no_bar
from gns.rollout import Monitor, Stepper, rollout, stepper_device, worst_words
from gns.rollout_io import RolloutRecord, system_arrays, write_rollouts
from gns.state import State

__all__ = ["Evaluation", "EvaluationDefaults", "evaluate_split", "format_table", "format_divergence",
           "format_projections", "best_baseline"]


class Evaluation(Protocol):
    """What a domain tells the evaluator about one trained simulator.

    Attributes:
        kind: the domain (``"particles"``, ``"mesh"``).
        domain: the dataset's own domain name, for files (``"water2d"``, ``"cloth"``).
        dt: seconds between frames.
        metric, reduction: see the module docstring.
        target_field: the field the model integrates (scored first).
        scored_fields: the fields scored, target first.
        window: frames the model reads (every rollout starts after them).
        steppers: ``"model"`` first, then the baselines.
        info: extra attributes for rollout files (e.g. the box bounds).
    """

    kind: str
    domain: str
    dt: float
    metric: str
    reduction: str
    target_field: str
    scored_fields: Sequence[str]
    window: int
    steppers: Mapping[str, Stepper]
    info: Mapping[str, Any]

    def windows(self, split: Any) -> WindowSampler:
        """Reads whole trajectories of ``split`` as states holding every field a stepper needs."""

    def squared_error(self, name: str, predicted: Tensor, truth: Tensor) -> Tensor:
        """``(N, S)`` squared error of field ``name``, summed over its ``F`` components."""

    def scored(self, state: State) -> Tensor:
        """``(N,)`` bool: the entities the error covers."""

    def extra_metrics(self, predicted: Mapping[str, Tensor], truth: Mapping[str, Tensor], initial: State,
                      scored: Tensor) -> dict[str, Tensor]:
        """Per-system ``(B,)`` scalars of a first-frame rollout (e.g. kinetic-energy error); may be empty.
        Reduced over rollouts by :func:`gns.metrics.reduce_extra` (keys ending in ``_max``: the largest)."""

    def drawing(self, state: State) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Per-entity attributes and ``(E, K)`` links of a one-system state, for its rollout record (its
        per-system attributes go with them as they are: :func:`gns.rollout_io.system_arrays`)."""

    def divergence_checks(self) -> dict:
        """The domain's :data:`gns.rollout.DivergenceCheck` s for the model's rollouts."""


class EvaluationDefaults:
    """What most domains' :class:`Evaluation` s share: the squared error of a field summed over its
    components (no minimum image), and every entity the simulator does not hold scored. A domain's
    evaluation inherits it and sets ``simulator``."""

    simulator: Any

    def squared_error(self, name: str, predicted: Tensor, truth: Tensor) -> Tensor:
        """``(N, S)`` squared error of field ``name``, summed over its components."""
        return ((predicted - truth) ** 2).sum(-1)

    def scored(self, state: State) -> Tensor:
        """``(N,)`` bool: the entities the simulator integrates."""
        return ~self.simulator.held(state)


@dataclass
class _Scores:
    """Per-rollout squared-error sums of one protocol: ``[(sums (S,), count)]`` per rollout name and field."""

    curves: dict[str, dict[str, list[tuple[Tensor, float]]]] = field(default_factory=dict)
    extras: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add(self, name: str, field_name: str, sums: Tensor, counts: Tensor) -> None:
        rows = self.curves.setdefault(name, {}).setdefault(field_name, [])
        rows.extend((sums[b].double().cpu(), float(counts[b])) for b in range(sums.shape[0]))

    def add_extra(self, name: str, values: Mapping[str, Tensor]) -> None:
        for key, v in values.items():
            self.extras.setdefault(name, {}).setdefault(key, []).extend(float(x) for x in v.cpu())


def evaluate_split(simulator: Any, split: Any, horizons: Sequence[int], *, max_trajectories: int | None = None,
                   batch_trajectories: int = 4, num_steps: int | None = None, save_path: str | Path | None = None,
                   progress: bool = True, start_stride: int = 0, on_divergence: str = "warn") -> dict[str, Any]:
    """Roll out held-out trajectories of any domain and compare the model with its baselines.

    Args:
        simulator: a trained simulator (its ``kind`` picks the domain in :mod:`gns.domains`).
        split: the held-out trajectories, opened for the simulator (``gns.domains.open_split_for``).
        horizons: steps at which the error is reported (longer ones are skipped).
        max_trajectories: score only the first trajectories of the split.
        batch_trajectories: trajectories of equal length rolled out together as one batch.
        num_steps: steps per first-frame rollout (default: to the end of each trajectory).
        save_path: write the model's first-frame rollouts with ground truth
            (:mod:`gns.rollout_io`) and the summary beside it as JSON.
        progress: show a progress bar.
        start_stride: frames between the starts of the multi-start rollouts (0: off).
        on_divergence: the model's rollouts are watched for divergence (the domain's checks); ``"warn"``
            records it and goes on, ``"stop"`` ends a group's rollouts at the first one (every rollout of
            the group, the baselines too, is then scored over the steps done).

    Returns:
        ``{"kind", "metric", "target_field", "fields", "rollouts", "horizons", "num_trajectories",
        "steps", <rollout name>: {<metric>: {h: .., "full": ..}, "<field>_<metric>": ..,
        "<metric>_per_step": [..], extras, "num_rollouts"}, "per_trajectory": [..],
        ["multistart": {<rollout name>: .., "num_rollouts", "start_stride"}], "divergence": {"first_frame":
        [events], "multistart": [events], "check_seconds", "rollout_seconds"}}``; ``<metric>`` is the target
        field's table, ``"<field>_<metric>"`` another scored field's; an event names the trajectory (and the
        start frame), the kind, the step and the entities (:class:`gns.rollout.Divergence`); and
        ``"projections"`` when a named projection changed the model's rollouts (its settings and what it did:
        the simulator's ``projections``, e.g. :attr:`gns.mesh.simulator.MeshSimulator.projections`).
    """
    from gns.domains import evaluation_for

    ev = evaluation_for(simulator)
    windows = ev.windows(split)
    device = stepper_device(simulator, torch.device("cpu"))
    count = len(windows.lengths) if max_trajectories is None else min(len(windows.lengths), max_trajectories)
    longest = max(horizons, default=0)
    first, multi = _Scores(), _Scores()
    per_trajectory, records = [], []
    steps_done, num_starts = None, 0
    keys = windows.keys()
    checks = ev.divergence_checks()
    if hasattr(simulator, "reset_projections"):
        simulator.reset_projections()          # count what a named projection does in this evaluation only
    divergence: dict[str, Any] = {"first_frame": [], "multistart": [], "check_seconds": 0.0, "rollout_seconds": 0.0}
    for group in tqdm(_groups(windows, count, batch_trajectories), desc="evaluate", disable=no_bar(progress)):
        frames = windows.num_frames(group[0])
        steps = frames - ev.window if num_steps is None else min(num_steps, frames - ev.window)
        full = windows.load([(i, 0) for i in group], ev.window + steps).to(device)
        starts = list(range(0, frames - ev.window - longest + 1, start_stride)) if start_stride > 0 and longest else []
        monitor = Monitor(checks, on_divergence)
        # the multi-start rollouts from frame 0 are the first-frame rollouts' first steps: scored from them, not
        # rolled again (when the first-frame rollouts got that far)
        prefix = (multi, longest) if len(starts) > 1 else None
        predictions, steps = _score(ev, full, steps, first, extras=True, monitor=monitor, clock=divergence,
                                    prefix=prefix)
        _record_events(monitor, [(keys[i], 0) for i in group], divergence["first_frame"], divergence)
        if prefix is not None and steps >= longest:
            _record_events(monitor, [(keys[i], 0) for i in group], divergence["multistart"], divergence,
                           before=longest)
            starts, num_starts = starts[1:], num_starts + len(group)
        steps_done = steps if steps_done is None else min(steps_done, steps)
        _per_trajectory_rows(ev, first, [keys[i] for i in group], steps, horizons, per_trajectory)
        if save_path is not None:
            records += _records(ev, full.window(0, ev.window + steps), predictions["model"], [keys[i] for i in group])
        if prefix is not None and starts:
            batch = windows.load([(i, t0) for t0 in starts for i in group], ev.window + longest).to(device)
            monitor = Monitor(checks, on_divergence)
            _score(ev, batch, longest, multi, extras=False, monitor=monitor, clock=divergence)
            _record_events(monitor, [(keys[i], t0) for t0 in starts for i in group], divergence["multistart"],
                           divergence)
            num_starts += batch.num_systems
    summary: dict[str, Any] = {"kind": ev.kind, "metric": ev.metric, "target_field": ev.target_field,
                               "fields": list(ev.scored_fields), "rollouts": list(ev.steppers),
                               "horizons": list(horizons), "num_trajectories": count, "steps": steps_done,
                               "info": {"input_frames": ev.window, **ev.info}}
    summary.update(_tables(ev, first, horizons))
    summary["per_trajectory"] = per_trajectory
    if num_starts:
        summary["multistart"] = {**_tables(ev, multi, horizons), "num_rollouts": num_starts,
                                 "start_stride": start_stride}
    summary["divergence"] = divergence
    projections = dict(getattr(simulator, "projections", {}))
    if projections:                            # a named option changed the model's answers: said in the summary
        summary["projections"] = projections
    if save_path is not None:
        save_path = Path(save_path)
        write_rollouts(save_path, records, simulator=ev.kind, domain=ev.domain, dt=ev.dt,
                       target_field=ev.target_field, metrics=_json_ready(summary),
                       info=summary["info"])
        write_json_atomic(save_path.with_suffix(".json"), _json_ready(summary))
    return summary


def _groups(windows: WindowSampler, count: int, size: int) -> list[list[int]]:
    """Batches of trajectories of equal length (so they roll out together)."""
    by_length: dict[int, list[int]] = {}
    for i in range(count):
        by_length.setdefault(windows.num_frames(i), []).append(i)
    return [idx[k:k + size] for idx in by_length.values() for k in range(0, len(idx), max(1, size))]


def _record_events(monitor: Monitor, systems: list[tuple[str, int]], into: list, divergence: dict,
                   before: int | None = None) -> None:
    """The monitor's events (those at steps up to ``before``, when given), with each system's trajectory key and
    start frame; without ``before``, its checks' cost goes to the clock."""
    for event in monitor.events:
        if before is not None and event.step > before:
            continue
        key, start = systems[event.system]
        # up to ``before`` the monitor saw only the first sighting for sure: its worst may lie beyond
        drop = {"system"} | ({"worst_value", "worst_step", "most"} if before is not None else set())
        into.append({"trajectory": key, "start": start, **{k: v for k, v in vars(event).items() if k not in drop}})
    if before is None:
        divergence["check_seconds"] += monitor.cost_seconds


def _score(ev: Evaluation, full: State, steps: int, scores: _Scores, extras: bool, monitor: Monitor,
           clock: dict, prefix: tuple[_Scores, int] | None = None) -> tuple[dict[str, dict[str, Tensor]], int]:
    """Roll every stepper from the first ``window`` frames of ``full`` and add their errors to ``scores``.

    The model rolls out first, watched by ``monitor``; when it stops the rollout, every stepper is
    scored over the steps done. With ``prefix = (other, k)`` and at least ``k`` steps done, every
    stepper's errors over its first ``k`` steps go to ``other`` as well (the multi-start protocol's
    rollouts from frame 0 are these rollouts' first steps). Returns the rollouts and the steps done.
    """
    import time

    initial = full.window(0, ev.window)
    scored = ev.scored(full)
    batch = full.batch
    counts = torch.zeros(full.num_systems, device=scored.device).index_add_(0, batch, scored.float())
    predictions = {}
    for name, stepper in ev.steppers.items():
        future = full.window(ev.window, ev.window + steps)
        t0 = time.perf_counter()
        predicted = rollout(stepper, initial, steps, future.fields, monitor=monitor if name == "model" else None)
        if name == "model":
            clock["rollout_seconds"] += time.perf_counter() - t0
            steps = next(iter(predicted.values())).shape[1]
            future = full.window(ev.window, ev.window + steps)
        predictions[name] = predicted
        for field_name in ev.scored_fields:
            if field_name not in predicted:
                continue
            sq = ev.squared_error(field_name, predicted[field_name], future.fields[field_name])   # (N, S)
            sums = per_system_sum(sq, batch, scored, full.num_systems)                          # (B, S)
            scores.add(name, field_name, sums, counts * future.fields[field_name].shape[-1])
            if prefix is not None and steps >= prefix[1]:
                prefix[0].add(name, field_name, sums[:, :prefix[1]], counts * future.fields[field_name].shape[-1])
        if extras:
            scores.add_extra(name, ev.extra_metrics(predicted, future.fields, initial, scored))
    return predictions, steps


def _key(ev: Evaluation, field_name: str) -> str:
    return ev.metric if field_name == ev.target_field else f"{field_name}_{ev.metric}"


def _tables(ev: Evaluation, scores: _Scores, horizons: Sequence[int]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, fields in scores.curves.items():
        entry: dict[str, Any] = {}
        for field_name, rows in fields.items():
            table, curve = reduce_rollouts(rows, horizons, ev.reduction, ev.metric)
            entry[_key(ev, field_name)] = table
            if field_name == ev.target_field:
                entry[f"{ev.metric}_per_step"] = curve
                entry["num_rollouts"] = len(rows)
        for key, values in scores.extras.get(name, {}).items():
            entry[key] = reduce_extra(key, values)
        out[name] = entry
    return out


def _per_trajectory_rows(ev: Evaluation, scores: _Scores, keys: list[str], steps: int, horizons: Sequence[int],
                         rows: list[dict]) -> None:
    """Per-trajectory target-field tables of the group just scored (the last ``len(keys)`` rollouts), and
    under ``"extras"`` each rollout's own whole-rollout figures (``{name: {key: value}}``: a cloth's largest
    strain, a flow's shedding errors), of which the summary's are the largest or the mean."""
    for b, key in enumerate(keys):
        row: dict[str, Any] = {"trajectory": key, "steps": steps}
        for name, fields in scores.curves.items():
            sums, count = fields[ev.target_field][len(fields[ev.target_field]) - len(keys) + b]
            table, _ = reduce_rollouts([(sums, count)], horizons, "per_rollout", ev.metric)
            row[name] = table
        extras = {name: {k: values[len(values) - len(keys) + b] for k, values in entries.items()}
                  for name, entries in scores.extras.items() if entries}
        if extras:
            row["extras"] = extras
        rows.append(row)


def _records(ev: Evaluation, full: State, predicted: Mapping[str, Tensor], keys: list[str]) -> list[RolloutRecord]:
    """One record per system: ``predicted`` (the initial frames, then the model) and ``ground_truth``."""
    records = []
    offsets = full.offsets.tolist()
    for b, (system, key) in enumerate(zip(full.split(), keys)):
        sl = slice(offsets[b], offsets[b + 1])
        truth = {name: system.fields[name].transpose(0, 1).cpu().numpy() for name in predicted}     # (T, N, F)
        pred = {name: np.concatenate([truth[name][:ev.window], values[sl].transpose(0, 1).cpu().numpy()])
                for name, values in predicted.items()}
        static, links = ev.drawing(system)
        records.append(RolloutRecord(key, {"predicted": pred, "ground_truth": truth}, static, links,
                                     system_arrays(system)))
    return records


def _json_ready(value: Any) -> Any:
    """``value`` with numpy/torch scalars as Python numbers (for JSON)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.generic, Tensor)):
        return value.item()
    return value


# ------------------------------------------------------------------------------ the table


def best_baseline(summary: Mapping[str, Any], table_key: str, column: str) -> tuple[str, float]:
    """The better baseline at one column of a table (lowest error) and its error."""
    names = [n for n in summary.get("rollouts", []) if n != "model" and table_key in summary.get(n, {})
             and column in summary[n][table_key]]
    name = min(names, key=lambda n: summary[n][table_key][column])
    return name, summary[name][table_key][column]


def _table_lines(summary: Mapping[str, Any], rollouts: Sequence[str], table_key: str) -> list[str]:
    names = [n for n in rollouts if n in summary and table_key in summary[n]]
    columns = list(summary["model"][table_key])
    lines = [f"{'horizon':>24}" + "".join(f"{c:>11}" for c in columns)]
    for name in names:
        lines.append(f"{name:>24}" + "".join(f"{summary[name][table_key][c]:>11.3e}" for c in columns))
    if len(names) > 1:
        ratios = []
        for c in columns:
            _, best = best_baseline({**summary, "rollouts": names}, table_key, c)
            model = summary["model"][table_key][c]
            ratios.append(best / model if model > 0 else float("inf"))
        lines.append(f"{'better baseline / model':>24}" + "".join(f"{r:>11.2f}" for r in ratios))
    return lines


def format_table(summary: Mapping[str, Any]) -> str:
    """Every table of an :func:`evaluate_split` summary as aligned text, with better-baseline / model ratios.

    Tables: the target field from the first frame, the other scored fields, then the multi-start
    ones; a line per extra scalar (e.g. the kinetic-energy error).
    """
    metric, target = summary["metric"], summary["target_field"]
    rollouts = summary["rollouts"]
    label = metric.upper()
    parts = [f"{label} of {target}, {summary['num_trajectories']} rollouts from the first frame:"]
    parts += _table_lines(summary, rollouts, metric)
    for field_name in summary["fields"]:
        if field_name != target:
            parts += [f"{label} of {field_name}:", *_table_lines(summary, rollouts, f"{field_name}_{metric}")]
    tables = {metric, *(f"{f}_{metric}" for f in summary["fields"])}
    skip = tables | {f"{metric}_per_step", "num_rollouts"}
    for key in summary["model"]:
        if key not in skip:
            values = ", ".join(f"{n} {summary[n][key]:.3e}" for n in rollouts if key in summary.get(n, {}))
            parts.append(f"{key}: {values}")
    multi = summary.get("multistart")
    if multi:
        parts.append(f"{label} of {target}, {multi['num_rollouts']} rollouts started every "
                     f"{multi['start_stride']} frames:")
        parts += _table_lines(multi, rollouts, metric)
        for field_name in summary["fields"]:
            if field_name != target:
                parts += [f"{label} of {field_name} (multi-start):",
                          *_table_lines(multi, rollouts, f"{field_name}_{metric}")]
    parts += format_divergence(summary.get("divergence"))
    parts += format_projections(summary.get("projections"))
    return "\n".join(parts)


def format_projections(projections: Mapping[str, Any] | None) -> list[str]:
    """Lines saying which named projections changed the model's rollouts, and how much (none: no line)."""
    lines = []
    for name, done in (projections or {}).items():
        if name == "strain_limit":
            lines.append(f"projection (a named option, not the model alone): strain limit {done['limit']:g} "
                         f"(edge length over rest length), {done['steps']:.0f} steps, {done['node_moves']:.0f} node "
                         f"moves, the largest {done['moved_max']:.3g} m; strain up to {done['strain_before_max']:.3g}"
                         f" before it, {done['strain_after_max']:.3g} after (sweeps up to "
                         f"{done['iterations_max']:.0f} of {done['iterations']:.0f})")
        else:
            lines.append(f"projection (a named option, not the model alone): {name} {done}")
    return lines


def format_divergence(divergence: Mapping[str, Any] | None, most: int = 8) -> list[str]:
    """Lines reporting the model's divergences (the first ``most`` of each protocol), or that there was none."""
    if not divergence:
        return []
    lines = []
    for protocol, label in (("first_frame", "from the first frame"), ("multistart", "from many starts")):
        events = divergence.get(protocol, [])
        if not events:
            continue
        lines.append(f"divergence of the model {label}: {len(events)} (trajectory, kind) first seen")
        for e in events[:most]:
            start = f" started at frame {e['start']}" if e["start"] else ""
            lines.append(f"  trajectory {e['trajectory']}{start}: {e['kind']} at step {e['step']}, {e['count']} "
                         f"entities, e.g. {e['entities'][:5]}; {e['detail']}{worst_words(e)}")
        if len(events) > most:
            lines.append(f"  ... {len(events) - most} more (see the summary's 'divergence')")
    if not lines:
        lines.append("divergence of the model: none seen")
    seconds = divergence.get("rollout_seconds", 0.0)
    if seconds:
        lines.append(f"divergence checks: {divergence['check_seconds']:.2f} s of the model's {seconds:.1f} s of "
                     f"rollouts")
    return lines
