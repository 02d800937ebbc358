"""Counterfactual queries: one factual and K intervened futures of a state, rolled out as one batch.

"What happens if this block of water is removed, this handle moved, this wind doubled?" A query
takes a :class:`gns.interventions.Scenario` (one system at the current frame, plus what is
prescribed over the future), applies each variant's interventions, rolls the factual and every
variant out batched through the one rollout driver (the systems may differ in size; one batch
on a GPU, chunks of a few thousand entities on a CPU, where that is faster), and keeps them
paired: each variant entity knows its factual counterpart (``origin``). It reports how
the futures diverge over time, for the model and, when a reference solver can replay the same
interventions (:mod:`gns.solvers`), for the solver too, and scores the model and the baselines
against the solver: the error of each counterfactual, and the error of the predicted *effect*
(counterfactual minus factual, on the entities both hold) against the true effect.

Divergence measures, per step, for each variant against the factual:

* ``distance``: mean distance between an entity and its factual counterpart;
* ``selected_displacement``: mean displacement of the entities an intervention touched, from
  where they were at the intervention (factual: the same entities unchanged);
* ``center_of_mass``: ``(S, D)`` mean position (unit masses), factual and variant;
* ``kinetic_energy``: mean ``0.5 |v|^2`` per entity (velocities from finite differences, units/s);
* ``occupancy``: the share of entities inside each region (a named box or disc/ball).

Scores against the solver, at the horizons: the error of each counterfactual and of each effect,
per scored field of the domain (objects: position, then angle), and, for a domain whose evaluation
says which entities collide (objects, ``collisions``), whether the collision outcome of each pair
under the intervention, and whether the intervention changed it, agree with the solver's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from gns.errors import GnsInputError
from gns.evaluate import format_projections
from gns.interventions import Intervention, Scenario, Selection, Space, apply_interventions
from gns.metrics import at_horizons
from gns.rollout import Monitor, default_chunk, rollout_many, stepper_device, worst_words
from gns.rollout_io import RolloutRecord, system_arrays, write_rollouts

__all__ = ["CounterfactualResult", "factual_scenario", "run_counterfactuals", "query", "counterfactual_query",
           "write_counterfactuals", "format_counterfactuals"]


@dataclass
class CounterfactualResult:
    """Paired futures of one state.

    Attributes:
        names: ``"factual"``, then the variants, in batch order.
        scenarios: name -> the intervened :class:`Scenario` (the factual one unchanged).
        predicted: name -> field -> ``(N, S, F)`` the model's rollout (on the scenarios' device, as the solver's
            are).
        baselines: baseline name -> name -> field -> ``(N, S, F)``.
        solver: name -> field -> ``(N, S, F)`` the reference solver's re-simulation (names it could replay).
        solver_notes: name -> why the solver could not replay it.
        divergence: name -> ``{"model": measures, "solver": measures}`` against the factual.
        scores: name -> ``{"counterfactual": {rollout: {h: error}}, "effect": {rollout: {h: error}}}``
            against the solver (only names the solver replayed); the same as ``"counterfactual_<field>"``
            and ``"effect_<field>"`` for every other scored field; for domains whose entities collide,
            ``"collisions"``: ``{"pairs", "changed": {h: n}, "agreement": {rollout: {h: share}},
            "change_agreement": {rollout: {h: share}}}`` (see :func:`_collision_scores`).
        metric: ``"mse"`` or ``"rmse"`` (the domain's).
        timing: seconds: ``interventions``, ``rollout`` (the model, every future), ``baselines``, ``solver``,
            ``divergence_checks``.
        divergences: name -> the model's divergences in that future (:class:`gns.rollout.Divergence` as dicts).
        steps: the steps rolled out (fewer than asked when ``on_divergence="stop"`` stopped the model).
        projections: the named projections that changed the model's futures, with what they did (the
            simulator's ``projections``; empty: the model alone).
    """

    names: list[str]
    scenarios: dict[str, Scenario]
    predicted: dict[str, dict[str, Tensor]]
    baselines: dict[str, dict[str, dict[str, Tensor]]]
    solver: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    solver_notes: dict[str, str] = field(default_factory=dict)
    divergence: dict[str, dict[str, Any]] = field(default_factory=dict)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    metric: str = "mse"
    horizons: list[int] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)
    divergences: dict[str, list[dict]] = field(default_factory=dict)
    steps: int = 0
    projections: dict[str, dict[str, float]] = field(default_factory=dict)


def factual_scenario(windows: Any, index: int, start: int, steps: int, window: int, needs_controls: bool) -> Scenario:
    """The scenario of trajectory ``index`` at frame ``start`` (the last frame of the model's window).

    Args:
        windows: the split's :class:`gns.data.windows.WindowSampler` (it reads every field the model needs).
        index, start: the trajectory and the frame of the intervention (``>= window - 1``).
        steps: the future steps to prescribe.
        window: frames the model reads.
        needs_controls: whether the rollout needs prescribed values (held entities or input fields):
            then the trajectory must hold ``steps`` frames after ``start``.

    Raises:
        GnsInputError: a start outside the trajectory, or too few frames after it.
    """
    frames = windows.num_frames(index)
    if not window - 1 <= start < frames:
        raise GnsInputError("the start frame must leave room for the model's window", key="start",
                            expected=f"{window - 1} <= start < {frames}", found=start)
    available = frames - 1 - start
    if needs_controls and available < steps:
        raise GnsInputError(f"the rollout needs prescribed values (held entities or input fields) for {steps} "
                            f"steps, and the trajectory has {available} frames after the start", key="steps",
                            expected=f"<= {available}", found=steps)
    read = min(steps, available)
    full = windows.read(index, start - window + 1, start + 1 + read)
    state = full.window(0, window)
    future = full.window(window, window + read)
    controls = {}
    for name, values in future.fields.items():
        if read < steps:  # nothing is held and nothing is input: the values are never read
            values = torch.cat([values, values.new_zeros((values.shape[0], steps - read, values.shape[2]))], dim=1)
        controls[name] = values
    return Scenario.factual(state, controls)


def run_counterfactuals(simulator: Any, factual: Scenario, variants: Mapping[str, Sequence[Intervention]],
                        steps: int, space: Space, *, horizons: Sequence[int] = (1, 5, 10, 20, 50, 100),
                        regions: Mapping[str, Selection] | None = None, solver: Any = None,
                        allow_extrapolation: bool = False, baselines: bool = True,
                        chunk_entities: int | None | str = "auto", on_divergence: str = "warn",
                        progress: bool = False) -> CounterfactualResult:
    """Apply each variant's interventions, roll the factual and every variant out batched, compare.

    Args:
        simulator: a trained simulator of any domain.
        factual: the unchanged scenario (:func:`factual_scenario`).
        variants: name -> interventions, applied in order.
        steps: steps to roll out.
        space: the domain's description for interventions (``gns.domains`` ``intervention_space``).
        horizons: steps at which errors against the solver are reported.
        regions: name -> a region (box or disc/ball :class:`Selection`) whose occupancy is reported.
        solver: a reference-solver replayer (``gns.domains`` ``resimulator``), or None; it prepares (and checks)
            every scenario before anything is rolled out.
        allow_extrapolation: run interventions outside the training data's range (recorded as warnings).
        baselines: also roll the domain's baselines out.
        chunk_entities: the most entities rolled out in one batch (None: every future in one batch;
            ``"auto"``: one batch on a GPU, chunks of :data:`gns.rollout.CPU_CHUNK_ENTITIES` on a CPU,
            where larger batches are slower per entity).
        on_divergence: the model's futures are watched for divergence; ``"warn"`` records it, ``"stop"``
            ends every future (the baselines' and the solver's too) at the first one.
        progress: show the rollout's progress bar.

    Raises:
        GnsInputError: any bad intervention, or a scenario the solver cannot start from, before anything is
            rolled out.
    """
    from gns.domains import evaluation_for

    timing = {}
    t0 = time.perf_counter()
    scenarios = {"factual": factual}
    for name, interventions in variants.items():
        scenarios[name] = apply_interventions(factual, interventions, space, name, allow_extrapolation)
    names = list(scenarios)
    timing["interventions"] = time.perf_counter() - t0
    if solver is not None:  # the solver's own checks of every scenario, before anything rolls out
        t0 = time.perf_counter()
        replays = solver.prepare(scenarios, steps)
        timing["solver"] = time.perf_counter() - t0
    states = [scenarios[n].state for n in names]
    controls = [scenarios[n].controls for n in names]
    chunk = default_chunk(stepper_device(simulator, factual.state.device)) if chunk_entities == "auto" \
        else chunk_entities

    evaluation = evaluation_for(simulator)
    monitor = Monitor(evaluation.divergence_checks(), on_divergence)

    def roll(stepper: Any, watch: Monitor | None = None) -> dict[str, dict[str, Tensor]]:
        """Every future, on the scenarios' device (the solver's futures and the states are compared there)."""
        outputs = rollout_many(stepper, states, steps, controls, max_entities=chunk, progress=progress, monitor=watch)
        device = factual.state.device
        return {name: {k: v.to(device) for k, v in output.items()} for name, output in zip(names, outputs)}

    if hasattr(simulator, "reset_projections"):
        simulator.reset_projections()
    t0 = time.perf_counter()
    predicted = roll(simulator, monitor)
    timing["rollout"] = time.perf_counter() - t0
    timing["divergence_checks"] = monitor.cost_seconds
    steps = monitor.stopped_at or steps
    others = {}
    t0 = time.perf_counter()
    if baselines:
        for name, stepper in evaluation.steppers.items():
            if name != "model":
                others[name] = roll(stepper)
    timing["baselines"] = time.perf_counter() - t0
    result = CounterfactualResult(names, scenarios, predicted, others, metric=evaluation.metric,
                                  horizons=[h for h in horizons if h <= steps], steps=steps,
                                  projections=dict(getattr(simulator, "projections", {})))
    for event in monitor.events:
        result.divergences.setdefault(names[event.system], []).append(
            {k: v for k, v in vars(event).items() if k != "system"})
    if solver is not None:
        t0 = time.perf_counter()
        states, result.solver_notes = replays
        result.solver = solver.simulate(states, steps) if states else {}
        timing["solver"] += time.perf_counter() - t0
    result.timing = timing
    _measure(result, space, evaluation, regions or {})
    return result


def query(simulator: Any, dataset: str | Path, interventions: Mapping[str, Any] | str | Path, *, split: str = "test",
          trajectory: int | str = 0, start: int | None = None, steps: int | None = None, solver: str = "auto",
          horizons: Sequence[int] = (1, 5, 10, 20, 50, 100), out: str | Path | None = None,
          chunk_entities: int | None | str = "auto", on_divergence: str = "warn",
          progress: bool = False) -> CounterfactualResult:
    """A counterfactual query from a dataset trajectory (what ``gns counterfactual`` runs).

    Args:
        simulator: a trained simulator (``gns.load_simulator``).
        dataset: the dataset the trajectory is read from.
        interventions: the YAML schema as a mapping, or a YAML file (``docs/counterfactuals.md``).
        split, trajectory: the trajectory (an index in the split, or its key).
        start: the frame of the intervention, the last frame the model reads (default: the first
            possible one, ``window - 1``).
        steps: steps to roll out (default: to the end of the trajectory).
        solver: ``"auto"`` (re-simulate when the dataset's solver can), ``"on"`` (it must), ``"off"``.
        horizons: steps at which errors against the solver are reported.
        out: write the paired futures here (:func:`write_counterfactuals`).
        chunk_entities: the most entities per rolled-out batch (see :func:`run_counterfactuals`).
        on_divergence: ``"warn"`` or ``"stop"`` (see :func:`run_counterfactuals`).
        progress: show the rollout's progress bar.

    Raises:
        GnsInputError: a bad file, trajectory, start, steps or intervention, before any rollout.
    """
    import yaml

    from gns.domains import evaluation_for, get_domain, open_split_for

    source = None
    if not isinstance(interventions, Mapping):
        source = Path(interventions)
        if not source.is_file():
            raise GnsInputError("interventions file not found", file=source)
        try:
            interventions = yaml.safe_load(source.read_text())
        except yaml.YAMLError as err:
            raise GnsInputError(f"not valid YAML ({err})", file=source) from None
    from gns.interventions import parse_interventions

    variants, options = parse_interventions(interventions, source)
    if solver not in ("auto", "on", "off"):
        raise GnsInputError("unknown solver setting", key="solver", expected="auto | on | off", found=solver)
    domain = get_domain(simulator.kind)
    evaluation = evaluation_for(simulator)
    windows = evaluation.windows(open_split_for(simulator, dataset, split))
    keys = windows.keys()
    index = keys.index(str(trajectory)) if str(trajectory) in keys else None
    if index is None:
        if not str(trajectory).lstrip("-").isdigit() or not -len(keys) <= int(trajectory) < len(keys):
            raise GnsInputError("no such trajectory in the split", key="trajectory", expected=keys[:10],
                                found=trajectory)
        index = int(trajectory) % len(keys)
    window = evaluation.window
    start = window - 1 if start is None else int(start)
    space = domain.intervention_space(simulator, dataset)
    needs = bool(space.input_fields) or bool(space.held(windows.read(index, 0, 1)).any())
    frames = windows.num_frames(index)
    steps = frames - 1 - start if steps is None else int(steps)
    if steps < 1:
        raise GnsInputError("nothing to roll out", key="steps", expected=">= 1", found=steps)
    factual = factual_scenario(windows, index, start, steps, window, needs)
    replayer, reason = None, "off"
    if solver != "off":
        try:
            replayer = domain.resimulator(simulator, dataset, split, index, start)
        except (GnsInputError, ImportError) as err:  # no solver made the data, or Taichi is not installed
            if solver == "on":
                raise
            reason = str(err)
    regions = options["regions"] or domain.default_regions(simulator)
    result = run_counterfactuals(simulator, factual, variants, steps, space, horizons=horizons, regions=regions,
                                 solver=replayer, allow_extrapolation=options["allow_extrapolation"],
                                 chunk_entities=chunk_entities, on_divergence=on_divergence, progress=progress)
    if replayer is None:
        result.solver_notes = {n: f"not re-simulated: {reason}" for n in result.names}
    if out is not None:
        write_counterfactuals(out, result, evaluation, {
            "dataset": str(dataset), "split": split, "trajectory": keys[index], "start": start, "steps": steps,
            "interventions": interventions, "regions": sorted(regions)})
    return result


counterfactual_query = query  # its name in the public API (``gns.counterfactual_query``)


# ------------------------------------------------------------------------------ measures


def _track(space: Space, evaluation: Any, scenario: Scenario, future: Mapping[str, Tensor]) -> Tensor:
    """``(N, 1 + S, F)``: the field the divergence is measured on, from the current frame on."""
    name = space.position_field or evaluation.target_field
    return torch.cat([scenario.state.fields[name][:, -1:], future[name]], dim=1)


def _measures(space: Space, evaluation: Any, factual: Scenario, variant: Scenario, f: Mapping[str, Tensor],
              v: Mapping[str, Tensor], regions: Mapping[str, Selection]) -> dict[str, Any]:
    xf, xv = _track(space, evaluation, factual, f), _track(space, evaluation, variant, v)    # (N, 1+S, F)
    common = variant.origin >= 0
    counterpart = xf[variant.origin[common]]
    out: dict[str, Any] = {}
    out["distance"] = (xv[common] - counterpart).norm(dim=-1).mean(0)[1:] if bool(common.any()) else None
    touched = variant.touched
    if bool(touched.any()):
        out["selected_displacement"] = (xv[touched] - xv[touched, :1]).norm(dim=-1).mean(0)[1:]
        same = touched & common
        if bool(same.any()):
            base = xf[variant.origin[same]]
            out["selected_displacement_factual"] = (base - base[:, :1]).norm(dim=-1).mean(0)[1:]
    if space.position_field is not None:
        out["center_of_mass"] = xv.mean(0)[1:]
        out["center_of_mass_factual"] = xf.mean(0)[1:]
        velocity = (xv[:, 1:] - xv[:, :-1]) / space.dt
        out["kinetic_energy"] = 0.5 * (velocity ** 2).sum(-1).mean(0)
        velocity_f = (xf[:, 1:] - xf[:, :-1]) / space.dt
        out["kinetic_energy_factual"] = 0.5 * (velocity_f ** 2).sum(-1).mean(0)
        occupancy = {}
        for region, selection in regions.items():
            occupancy[region] = {"variant": selection.contains(xv[:, 1:].transpose(0, 1)).float().mean(1),
                                 "factual": selection.contains(xf[:, 1:].transpose(0, 1)).float().mean(1)}
        if occupancy:
            out["occupancy"] = occupancy
    return out


def _errors(evaluation: Any, field_name: str, a: Tensor, b: Tensor, mask: Tensor, horizons: Sequence[int],
            metric: str) -> dict[str, float]:
    """Error of ``a`` against ``b`` ``(N, S, F)`` over masked entities at each horizon and over all steps."""
    sq = evaluation.squared_error(field_name, a[mask], b[mask]).double() / a.shape[-1]     # (M, S)
    per_step = sq.mean(0) if sq.shape[0] else torch.full((a.shape[1],), float("nan"), dtype=torch.float64)
    return at_horizons(per_step, horizons, metric)


def _measure(result: CounterfactualResult, space: Space, evaluation: Any, regions: Mapping[str, Selection]) -> None:
    factual = result.scenarios["factual"]
    for name in result.names:
        variant = result.scenarios[name]
        entry = {"model": _measures(space, evaluation, factual, variant, result.predicted["factual"],
                                    result.predicted[name], regions)}
        if name in result.solver and "factual" in result.solver:
            entry["solver"] = _measures(space, evaluation, factual, variant, result.solver["factual"],
                                        result.solver[name], regions)
        result.divergence[name] = entry
        if name not in result.solver or "factual" not in result.solver:
            continue
        rollouts = {"model": result.predicted, **result.baselines}
        scores = {}
        for field_name in evaluation.scored_fields:
            if field_name in result.solver[name]:
                suffix = "" if field_name == evaluation.target_field else f"_{field_name}"
                scores["counterfactual" + suffix], scores["effect" + suffix] = _field_scores(
                    result, space, evaluation, field_name, name, rollouts)
        if getattr(evaluation, "collisions", None) is not None and name != "factual":
            scores["collisions"] = _collision_scores(result, evaluation, name, rollouts)
        result.scores[name] = scores


def _field_scores(result: CounterfactualResult, space: Space, evaluation: Any, field_name: str, name: str,
                  rollouts: Mapping[str, Mapping[str, Mapping[str, Tensor]]]) -> tuple[dict, dict]:
    """The errors of every rollout's counterfactual (free entities) and effect (variant minus factual, on the
    entities both hold) of ``field_name`` against the solver's, with the ``no_effect`` baseline."""
    variant = result.scenarios[name]
    free = ~space.held(variant.state)
    common = (variant.origin >= 0) & free
    origin = variant.origin[common]
    true_cf = result.solver[name][field_name]
    true_effect = true_cf[common] - result.solver["factual"][field_name][origin]
    every = torch.ones(true_effect.shape[0], dtype=torch.bool, device=true_effect.device)
    cf_scores, effect_scores = {}, {}
    for rollout_name, outputs in rollouts.items():
        if field_name not in outputs[name]:
            continue
        cf_scores[rollout_name] = _errors(evaluation, field_name, outputs[name][field_name], true_cf, free,
                                          result.horizons, result.metric)
        effect = outputs[name][field_name][common] - outputs["factual"][field_name][origin]
        effect_scores[rollout_name] = _errors(evaluation, field_name, effect, true_effect, every, result.horizons,
                                              result.metric)
    effect_scores["no_effect"] = _errors(evaluation, field_name, torch.zeros_like(true_effect), true_effect, every,
                                         result.horizons, result.metric)
    return cf_scores, effect_scores


def _outcomes(evaluation: Any, factual: Scenario, variant: Scenario, factual_future: Mapping[str, Tensor],
              variant_future: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    """``(P, S)`` whether each pair of the variant's entities has collided by each step, in the variant's future,
    and in the factual future for the same two entities (never, for a pair with an added entity)."""
    device = variant.state.device
    pairs, after = evaluation.collisions(variant.state, {k: v.to(device) for k, v in variant_future.items()})
    factual_pairs, factual_after = evaluation.collisions(factual.state,
                                                         {k: v.to(device) for k, v in factual_future.items()})
    count = factual.state.num_entities
    lookup = torch.zeros((count, count, after.shape[1]), dtype=torch.bool, device=device)    # (K, K, S)
    lookup[factual_pairs[0], factual_pairs[1]] = factual_after
    lookup[factual_pairs[1], factual_pairs[0]] = factual_after
    first, second = variant.origin[pairs[0]], variant.origin[pairs[1]]                       # (P,) factual indices
    both = (first >= 0) & (second >= 0)
    before = torch.zeros_like(after)
    before[both] = lookup[first[both], second[both]]
    return after, before


def _shares(agree: Tensor, horizons: Sequence[int]) -> dict[str, float]:
    """``{h: share, "full": share}``: the share of the pairs of ``agree`` ``(P, S)`` true at step ``h`` (full: the
    last step)."""
    per_step = agree.double().mean(0) if agree.shape[0] else torch.full((agree.shape[1],), float("nan"))
    table = {str(h): float(per_step[h - 1]) for h in horizons if 1 <= h <= per_step.shape[0]}
    table["full"] = float(per_step[-1]) if per_step.numel() else float("nan")
    return table


def _collision_scores(result: CounterfactualResult, evaluation: Any, name: str,
                      rollouts: Mapping[str, Mapping[str, Mapping[str, Tensor]]]) -> dict[str, Any]:
    """Which entities collide under the intervention, every rollout against the solver, at the horizons:

    * ``agreement``: the share of the variant's pairs on which a rollout and the solver agree whether the pair
      has collided (the collision outcome under the intervention);
    * ``change_agreement``: the share on which they agree whether the intervention changed that outcome
      (each against its own factual future);
    * ``no_effect``: the factual outcome taken for the variant's (nothing changes);
    * ``pairs`` and ``changed``: how many pairs, and on how many the solver's outcome changed.
    """
    factual, variant = result.scenarios["factual"], result.scenarios[name]
    true_after, true_before = _outcomes(evaluation, factual, variant, result.solver["factual"], result.solver[name])
    true_change = true_after != true_before                                                   # (P, S)
    agreement, change_agreement = {}, {}
    for rollout_name, outputs in rollouts.items():
        if not set(evaluation.scored_fields) <= set(outputs[name]):
            continue
        after, before = _outcomes(evaluation, factual, variant, outputs["factual"], outputs[name])
        agreement[rollout_name] = _shares(after == true_after, result.horizons)
        change_agreement[rollout_name] = _shares((after != before) == true_change, result.horizons)
    agreement["no_effect"] = _shares(true_before == true_after, result.horizons)
    change_agreement["no_effect"] = _shares(~true_change, result.horizons)
    changed = true_change.sum(0)                                                             # (S,)
    return {"pairs": int(true_after.shape[0]),
            "changed": {**{str(h): int(changed[h - 1]) for h in result.horizons if h <= changed.numel()},
                        "full": int(changed[-1]) if changed.numel() else 0},
            "agreement": agreement, "change_agreement": change_agreement}


# ------------------------------------------------------------------------------ output


def _plain(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def summary(result: CounterfactualResult) -> dict[str, Any]:
    """The JSON-able summary of a query: entities, warnings, solver notes, divergence, scores, timing."""
    variants = {}
    for name in result.names:
        scenario = result.scenarios[name]
        variants[name] = {"entities": scenario.state.num_entities, "touched": int(scenario.touched.sum()),
                          "added": int((scenario.origin < 0).sum()),
                          "interventions": [{"op": r.op, "entities": int(len(r.entities))} for r in scenario.log],
                          "warnings": list(scenario.warnings),
                          "divergence": result.divergences.get(name, []),
                          "solver": ("re-simulated" if name in result.solver
                                     else result.solver_notes.get(name, "no solver"))}
    return _plain({"names": result.names, "metric": result.metric, "horizons": result.horizons, "steps": result.steps,
                   "variants": variants,
                   "divergence": result.divergence, "scores": result.scores, "timing": result.timing,
                   **({"projections": result.projections} if result.projections else {})})


def write_counterfactuals(path: str | Path, result: CounterfactualResult, evaluation: Any, query: Mapping[str, Any]
                          ) -> Path:
    """A rollout file (:mod:`gns.rollout_io`) with one record per future (``factual`` and each variant):
    sources ``predicted`` and, where the solver replayed it, ``solver``; the query and the summary in
    ``info["counterfactual"]``; the summary also as JSON beside it."""
    from gns.atomic import write_json_atomic

    records = []
    for name in result.names:
        scenario = result.scenarios[name]
        state = scenario.state
        sources = {}
        for source, outputs in (("predicted", result.predicted), ("solver", result.solver)):
            if name not in outputs:
                continue
            sources[source] = {}
            for field_name, values in outputs[name].items():
                head = state.fields.get(field_name)
                if head is None:
                    head = values[:, :1].expand(-1, state.num_frames, -1)  # an output field: no inputs to show
                frames = torch.cat([head.to(values), values], dim=1)                    # (N, W + S, F)
                sources[source][field_name] = frames.transpose(0, 1).cpu().numpy()
        static, links = evaluation.drawing(state)
        static["origin"] = scenario.origin.cpu().numpy()
        records.append(RolloutRecord(name, sources, static, links, system_arrays(state)))
    info = {"counterfactual": {**_plain(dict(query)), **summary(result)}, "input_frames": evaluation.window,
            **evaluation.info}
    path = Path(path)
    write_rollouts(path, records, simulator=evaluation.kind, domain=evaluation.domain, dt=evaluation.dt,
                   target_field=evaluation.target_field, info=info)
    write_json_atomic(path.with_suffix(".json"), info["counterfactual"])
    return path


def format_counterfactuals(result: CounterfactualResult) -> str:
    """Plain-text report: per variant, its size, divergence at the horizons, and errors against the solver."""
    lines = []
    horizons = result.horizons
    for name in result.names:
        scenario = result.scenarios[name]
        solver = "re-simulated" if name in result.solver else result.solver_notes.get(name, "no solver")
        lines.append(f"{name}: {scenario.state.num_entities} entities, {int(scenario.touched.sum())} touched "
                     f"(solver: {solver})")
        for warning in scenario.warnings:
            lines.append(f"  warning: {warning}")
        for event in result.divergences.get(name, []):
            lines.append(f"  the model diverged: {event['kind']} at step {event['step']}, {event['count']} entities, "
                         f"e.g. {event['entities'][:5]}; {event['detail']}{worst_words(event)}")
        if name == "factual":
            continue
        for source, measures in result.divergence[name].items():
            distance = measures.get("distance")
            if distance is not None and horizons:
                values = " ".join(f"h{h} {float(distance[h - 1]):.3g}" for h in horizons)
                lines.append(f"  {source}: mean distance to the factual: {values}")
        scores = result.scores.get(name, {})
        columns = [*map(str, horizons), "full"]
        for kind, tables in scores.items():
            if kind == "collisions":
                continue
            base, _, field_name = kind.partition("_")
            lines += _table(f"  {result.metric} of the {base}{f' ({field_name})' if field_name else ''} against the "
                            f"solver:", tables, columns, ".3e")
        collisions = scores.get("collisions")
        if collisions:
            lines.append(f"  collisions: {collisions['pairs']} pairs; the intervention changes whether "
                         f"{collisions['changed']['full']} of them collide, says the solver (by the end)")
            lines += _table("  share of pairs whose collision outcome agrees with the solver's:",
                            collisions["agreement"], columns, ".3f")
            lines += _table("  share of pairs on which whether the intervention changes it agrees with the solver:",
                            collisions["change_agreement"], columns, ".3f")
    return "\n".join(lines + format_projections(result.projections))


def _table(title: str, tables: Mapping[str, Mapping[str, float]], columns: Sequence[str], form: str) -> list[str]:
    """A title, a header of ``columns`` and one row per rollout of ``tables`` (rollout -> column -> value)."""
    lines = [title, f"{'':>24}" + "".join(f"{c:>11}" for c in columns)]
    for rollout_name, table in tables.items():
        lines.append(f"{rollout_name:>24}" + "".join(f"{table[c]:>11{form}}" for c in columns))
    return lines
