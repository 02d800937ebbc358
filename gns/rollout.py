"""The one rollout driver: any domain's learned simulator or baseline, over any batch of systems.

A *stepper* maps a state (a :class:`gns.state.State` holding the last ``window`` frames of the
fields it reads) to the next frame of the fields it predicts. :func:`rollout` applies it
``num_steps`` times: it holds the entities the stepper does not simulate (kinematic particles,
mesh handles and obstacles, flow boundaries) to prescribed values, feeds exogenous input fields
(a cloth's wind) from outside at every step, shifts the window, and runs in eval and inference
mode on the stepper's device. Learned simulators of every domain and the baselines
(constant velocity, gravity only, persistence) are all steppers, so they roll out through the same
loop; the training losses (:mod:`gns.train.losses`) take the same step with gradients.

Conventions: ``controls`` maps field names to ``(N, S, F)`` values over the ``S >= num_steps``
steps of the rollout (usually the ground truth after the initial window): a predicted field's
values are used on held entities only, an input field's on every entity. Rollouts are returned
the same way, field -> ``(N, num_steps, F)``, entity first like the state.

Divergence is reported, never silent: a :class:`Monitor` (the domain's checks: non-finite values,
entities that leave the domain, runaway kinetic energy) looks at every step and records the first
step, the system and the entities of each kind of divergence, and then its worst (the largest value, its
step and the most entities at once: a particle first seen just past a wall may sink far deeper later);
``on_divergence="stop"`` ends the
rollout at that step (the frames so far are returned). No check changes a value. A projection
that does (a cloth's strain limiting, :mod:`gns.mesh.constraints`) is a named option of its
stepper, never a default: a stepper with a ``project(state, frames) -> frames`` method has it applied
to every step's frames after the held entities took their prescribed values, and reports what it did
through its ``projections`` (which :func:`gns.evaluate.evaluate_split` writes into its summary).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from gns.errors import GnsInputError
from gns.progress import no_bar
from gns.state import State, hold

__all__ = ["Stepper", "rollout", "rollout_many", "stepper_device", "trim_to_stepper", "default_chunk", "Monitor",
           "Divergence", "DivergenceCheck", "non_finite", "box_checks", "runaway_limit", "ON_DIVERGENCE",
           "OUTSIDE_MARGIN", "RUNAWAY_STD"]

# An entity is "outside" once it is this share of the box's width beyond a wall.
OUTSIDE_MARGIN = 0.02
# A system's energy "runs away" once its mean per-step velocity, per dimension, is this many training
# standard deviations from the training mean (the data's own motions stay near 1).
RUNAWAY_STD = 4.0


class Stepper(Protocol):
    """What :func:`rollout` needs of a simulator or a baseline.

    Attributes:
        window: frames of each state field a step reads (the last ones of the state).
        state_fields: the fields a step reads over the window (what the rollout keeps and shifts).
        input_fields: those of ``state_fields`` given from outside at every step (never predicted).
        predicted_fields: the fields :meth:`predict_next` returns.
    """

    window: int
    state_fields: Sequence[str]
    input_fields: Sequence[str]
    predicted_fields: Sequence[str]

    def held(self, state: State) -> Tensor:
        """``(N,)`` bool: entities whose predicted fields take prescribed values."""

    def predict_next(self, state: State) -> dict[str, Tensor]:
        """Field -> ``(N, F)`` next frame of every predicted field (held entities not yet overwritten)."""


ON_DIVERGENCE = ("warn", "stop")


@dataclass
class Divergence:
    """The first sign of one kind of divergence in one system of a rollout.

    Attributes:
        kind: the check that fired (``"non-finite"``, ``"outside"``, ``"energy"``).
        step: the 1-based predicted step where it was first seen.
        system: the system's index in the batch.
        entities: up to ten of the offending entities (indices inside their system).
        count: how many entities of the system were offending at that step.
        detail: the values, in words.
        worst_value: the largest offending value over the whole rollout (the check's own value: for
            ``"outside"`` the distance beyond a wall, for ``"energy"`` an entity's ``0.5 |v|^2``), and
            worst_step: the step where it was reached; most: the most entities of the system offending at once.
    """

    kind: str
    step: int
    system: int
    entities: list[int]
    count: int
    detail: str
    worst_value: float = float("nan")
    worst_step: int = 0
    most: int = 0

    def __str__(self) -> str:
        more = f" (+{self.count - len(self.entities)} more)" if self.count > len(self.entities) else ""
        return (f"{self.kind} at step {self.step}, system {self.system}: {self.count} entities, e.g. "
                f"{self.entities}{more}; {self.detail}{worst_words(vars(self))}")


def worst_words(event: Mapping[str, Any]) -> str:
    """``"; at its worst V at step S, up to M entities at once"`` for a divergence event (a :class:`Divergence`'s
    fields) that grew after it was first seen; empty when it did not, or the event carries no worst."""
    step, value, most = event.get("worst_step"), event.get("worst_value"), event.get("most", 0)
    if not step or (step == event["step"] and most <= event["count"]):
        return ""
    return f"; at its worst {value:.4g} at step {step}, up to {most} entities at once"


# A check maps the state before a step and the new frames to offending entities (N,) and the
# per-entity values behind them (N,) for the report, or None when the check does not apply.
DivergenceCheck = Callable[[State, Mapping[str, Tensor]], "tuple[Tensor, Tensor] | None"]


def non_finite(state: State, frames: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Entities with a NaN or infinite value in any new frame (the check every domain has)."""
    bad = torch.zeros(state.num_entities, dtype=torch.bool, device=state.device)
    for values in frames.values():
        bad |= ~torch.isfinite(values).all(dim=-1)
    return bad, bad.float()


def runaway_limit(mean: Tensor, std: Tensor) -> float:
    """The kinetic energy per entity, ``0.5 |v|^2``, of a velocity :data:`RUNAWAY_STD` training standard
    deviations from the training mean in every component (``mean``, ``std``: ``(D,)``)."""
    return 0.5 * float(((mean.abs() + RUNAWAY_STD * std) ** 2).sum())


def box_checks(bounds: Tensor, periodic: Tensor, velocity_mean: Tensor, velocity_std: Tensor,
               field_name: str = "position") -> dict[str, DivergenceCheck]:
    """The checks of a domain whose entities move in a walled box (particles, object centres): non-finite
    values; entities more than :data:`OUTSIDE_MARGIN` of the box's widest width beyond a wall
    (non-periodic dimensions); systems whose mean ``0.5 |v|^2`` per entity (``v``: the per-step change
    of ``field_name``, minimum image in periodic dimensions) exceeds :func:`runaway_limit`.

    Args:
        bounds: ``(D, 2)`` walls; periodic: ``(D,)`` bool; velocity_mean, velocity_std: ``(D,)`` the
            training statistics of the per-step velocity.
    """
    from gns.geometry import minimum_image

    margin = OUTSIDE_MARGIN * float((bounds[:, 1] - bounds[:, 0]).max())
    limit = runaway_limit(velocity_mean, velocity_std)
    any_periodic = bool(periodic.any())
    on: dict[torch.device, tuple[Tensor, Tensor, Tensor]] = {}    # the box on each device, made once

    def box(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if x.device not in on:
            walls = (~periodic).to(x.device)
            on[x.device] = (bounds[:, 0].to(x), bounds[:, 1].to(x), walls)
        return on[x.device]

    def outside(state: State, frames: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        x = frames[field_name]
        lo, hi, walls = box(x)
        beyond = torch.maximum(lo - x, x - hi).clamp(min=0) * walls                             # (N, D)
        distance = beyond.amax(dim=1)
        return distance > margin, distance

    def energy(state: State, frames: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        x = frames[field_name]
        v = x - state.fields[field_name][:, -1]
        if any_periodic:
            v = minimum_image(v, bounds.to(x), periodic.to(x.device))
        each = 0.5 * (v ** 2).sum(-1)                                                   # (N,)
        batch = state.batch
        system = each.new_zeros(state.num_systems).index_add_(0, batch, each) / state.n.to(each).clamp(min=1)
        return (system > limit)[batch], each

    return {"non-finite": non_finite, "outside": outside, "energy": energy}


@dataclass
class Monitor:
    """Watches a rollout for divergence (see the module docstring).

    Args:
        checks: kind -> :data:`DivergenceCheck` (the domain's: ``gns.domains`` ``divergence_checks``).
        on_divergence: ``"warn"`` (record and go on) or ``"stop"`` (end the rollout at the first one).
        cost_seconds: time spent checking (to show that it costs little).
    """

    checks: Mapping[str, DivergenceCheck]
    on_divergence: str = "warn"
    events: list[Divergence] = field(default_factory=list)
    stopped_at: int | None = None
    cost_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.on_divergence not in ON_DIVERGENCE:
            raise GnsInputError("unknown divergence policy", key="on_divergence", expected=ON_DIVERGENCE,
                                found=self.on_divergence)

    def observe(self, step: int, state: State, frames: Mapping[str, Tensor]) -> bool:
        """Record the divergences first seen at ``step`` (1-based); whether the rollout should stop."""
        import time

        t0 = time.perf_counter()
        seen = {(e.kind, e.system): e for e in self.events}
        new = False
        batch, offsets = None, None
        for kind, check in self.checks.items():
            found = check(state, frames)
            if found is None:
                continue
            bad, values = found
            if not bool(bad.any()):
                continue
            if batch is None:
                batch, offsets = state.batch, state.offsets.tolist()
            # per system, the largest offending value and how many offend (one pass, whatever the number of systems)
            offending = torch.where(bad, values.to(torch.float32).nan_to_num(nan=float("inf")),
                                    values.new_full((), float("-inf"), dtype=torch.float32))
            largest = offending.new_full((state.num_systems,), float("-inf")).scatter_reduce(
                0, batch, offending, reduce="amax")
            counts = torch.bincount(batch[bad], minlength=state.num_systems).tolist()
            largest = largest.tolist()                     # one transfer per check, not one per system
            for system in (i for i, c in enumerate(counts) if c):
                value, count = largest[system], counts[system]
                event = seen.get((kind, system))
                if event is not None:
                    if value > event.worst_value:
                        event.worst_value, event.worst_step = value, step
                    event.most = max(event.most, count)
                    continue
                members = torch.nonzero(bad & (batch == system)).flatten()
                worst = members[values[members].argsort(descending=True)][:10]
                self.events.append(Divergence(kind, step, system, (worst - offsets[system]).tolist(),
                                              int(members.numel()),
                                              f"largest value {float(values[worst[0]]):.4g}", value, step, count))
                new = True
        self.cost_seconds += time.perf_counter() - t0
        if new and self.on_divergence == "stop":
            self.stopped_at = step
            return True
        return False

    def report(self) -> list[dict]:
        """The events as JSON-able dicts, in order."""
        return [dict(vars(e)) for e in self.events]


def stepper_device(stepper: object, default: torch.device) -> torch.device:
    """The device of a stepper's parameters or buffers; ``default`` for one without tensors."""
    if isinstance(stepper, nn.Module):
        for tensor in (*stepper.parameters(), *stepper.buffers()):
            return tensor.device
    return default


def trim_to_stepper(stepper: Stepper, state: State) -> State:
    """The last ``stepper.window`` frames of the fields the stepper reads.

    Raises:
        GnsInputError: a field is missing or holds fewer frames than the window.
    """
    fields = {}
    for name in stepper.state_fields:
        values = state.fields.get(name)
        if values is None or values.shape[1] < stepper.window:
            raise GnsInputError("the initial state lacks a field or frames the stepper reads", key=name,
                                expected=f"(N, >={stepper.window}, F) for fields {list(stepper.state_fields)}",
                                found=None if values is None else tuple(values.shape))
        fields[name] = values[:, -stepper.window:]
    return state.with_fields(fields)


def _check_controls(stepper: Stepper, state: State, controls: Mapping[str, Tensor], num_steps: int) -> None:
    for name in stepper.input_fields:
        if name not in controls:
            raise GnsInputError("the rollout needs the input fields the model reads over the whole rollout",
                                key="controls", expected=f"fields {list(stepper.input_fields)}", found=sorted(controls))
    for name, values in controls.items():
        if values.ndim != 3 or values.shape[0] != state.num_entities or values.shape[1] < num_steps:
            raise GnsInputError("prescribed values must cover every entity and step of the rollout",
                                key=f"controls/{name}", expected=f"({state.num_entities}, >={num_steps}, F)",
                                found=tuple(values.shape))


def rollout(stepper: Stepper, initial: State, num_steps: int, controls: Mapping[str, Tensor] | None = None, *,
            progress: bool = False, monitor: Monitor | None = None) -> dict[str, Tensor]:
    """Roll ``stepper`` ``num_steps`` steps forward from ``initial``.

    Args:
        stepper: a learned simulator of any domain, or a baseline (see :class:`Stepper`).
        initial: systems whose ``state_fields`` hold at least ``stepper.window`` frames.
        num_steps: steps to predict.
        controls: field -> ``(N, >= num_steps, F)`` prescribed values (see the module docstring);
            held entities keep the stepper's own prediction for a predicted field left out.
        progress: show a progress bar.
        monitor: checks every step for divergence (and may stop the rollout there).

    Returns:
        field -> ``(N, S, F)`` predicted frames of every predicted field, on the stepper's device;
        ``S = num_steps``, or fewer when a monitor stopped the rollout.
    """
    device = stepper_device(stepper, initial.device)
    state = trim_to_stepper(stepper, initial.to(device))
    controls = {k: v.to(device) for k, v in (controls or {}).items()}
    _check_controls(stepper, state, controls, num_steps)
    held = stepper.held(state)
    held_controls = {k: v for k, v in controls.items() if k in stepper.predicted_fields} if bool(held.any()) else {}
    project = getattr(stepper, "project", None)      # a named projection the stepper was given, if any
    learned = [stepper] if isinstance(stepper, nn.Module) else []
    was_training = [m.training for m in learned]
    for module in learned:
        module.eval()
    frames: dict[str, list[Tensor]] = {name: [] for name in stepper.predicted_fields}
    try:
        with torch.inference_mode():
            for t in tqdm(range(num_steps), desc="rollout", disable=no_bar(progress), leave=False):
                nxt = stepper.predict_next(state)
                nxt = hold(nxt, {k: v[:, t] for k, v in held_controls.items()}, held)
                if project is not None:
                    nxt = project(state, nxt)
                for name in frames:
                    frames[name].append(nxt[name])
                if monitor is not None and monitor.observe(t + 1, state, nxt):
                    break
                state = state.shift({name: controls[name][:, t] if name in stepper.input_fields else nxt[name]
                                     for name in stepper.state_fields})
    finally:
        for module, mode in zip(learned, was_training):
            module.train(mode)
    width = {name: initial.fields[name].shape[-1] if name in initial.fields else 0 for name in frames}
    return {name: torch.stack(v, dim=1) if v else torch.zeros((state.num_entities, 0, width[name]), device=device)
            for name, v in frames.items()}


# Entities per rolled-out batch on a CPU (measured, docs/counterfactual_results.md): past a few
# thousand entities the element-wise work of message passing leaves the caches and every entity
# costs more, so many small systems go in chunks of about this size; a GPU takes them in one batch.
CPU_CHUNK_ENTITIES = 4096


def default_chunk(device: torch.device) -> int | None:
    """Entities per batch for :func:`rollout_many` on ``device``: None (one batch) on a GPU."""
    return None if torch.device(device).type == "cuda" else CPU_CHUNK_ENTITIES


def rollout_many(stepper: Stepper, states: list[State], num_steps: int, controls: list[Mapping[str, Tensor]], *,
                 max_entities: int | None = None, progress: bool = False,
                 monitor: Monitor | None = None) -> list[dict[str, Tensor]]:
    """Roll several states out (systems of any sizes), batched: consecutive states go together while
    their entities fit in ``max_entities`` (None: all in one batch).

    Args:
        monitor: watches every batch; its events name the state (``system`` = index in ``states``).
            With ``on_divergence="stop"`` every rollout is cut to the shortest one.

    Returns:
        one rollout per state, as :func:`rollout` returns them.
    """
    groups, current, size = [], [], 0
    for i, state in enumerate(states):
        if current and max_entities is not None and size + state.num_entities > max_entities:
            groups.append(current)
            current, size = [], 0
        current.append(i)
        size += state.num_entities
    if current:
        groups.append(current)
    out: list[dict[str, Tensor]] = []
    for group in groups:
        batch = type(states[group[0]]).concat([states[i] for i in group])
        joined = {k: torch.cat([controls[i][k] for i in group]) for k in controls[group[0]]}
        watch = None if monitor is None else Monitor(monitor.checks, monitor.on_divergence)
        result = rollout(stepper, batch, num_steps, joined, progress=progress, monitor=watch)
        if watch is not None:
            for event in watch.events:
                event.system = group[event.system]
                monitor.events.append(event)
            monitor.cost_seconds += watch.cost_seconds
            if watch.stopped_at is not None:
                monitor.stopped_at = min(watch.stopped_at, monitor.stopped_at or watch.stopped_at)
        offsets = batch.offsets.tolist()
        out += [{k: v[offsets[j]:offsets[j + 1]] for k, v in result.items()} for j in range(len(group))]
    if monitor is not None and monitor.stopped_at is not None:
        out = [{k: v[:, :monitor.stopped_at] for k, v in result.items()} for result in out]
    return out
