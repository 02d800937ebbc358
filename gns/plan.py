"""Model-predictive control over any model: action sequences searched by random shooting or the
cross-entropy method, re-planned in a closed loop while the true system executes them.

The search knows no physics. A domain gives it two functions:

* ``cost(actions) -> (K,)``: what ``K`` candidate sequences ``(K, H, A)`` would cost from the true
  system's *current* state, through whatever model the domain plans with (a learned simulator
  rolling all candidates out as one batch, or the reference solver);
* ``execute(actions) -> bool``: run ``(S, A)`` actions in the true system, say whether the goal
  was reached.

Actions are *normalized*: every component lies in ``[-1, 1]`` (the domain scales them to forces).
A sequence of ``H`` steps is ``ceil(H / hold)`` *knots*, each held for ``hold`` steps (the random
actions of the object datasets are held the same way): fewer dimensions to search, smoother pushes.

Methods (:data:`METHODS`):

* ``"shooting"``: random shooting, ``candidates`` knot sequences drawn uniformly, the cheapest kept;
* ``"cem"``: the cross-entropy method (Rubinstein 1999; PETS, Chua et al. 2018): ``iterations``
  rounds of ``candidates`` sequences drawn from a Gaussian (clipped to the box), refit to the
  ``elites`` cheapest; it starts from the previous plan shifted by the steps executed since (warm
  start) and returns the cheapest sequence it saw;
* ``"random"``: one uniformly random sequence, no model and no cost: the lower bound.

:func:`closed_loop` plans, executes the first ``replan_every`` steps of the plan, and plans again
from the state the true system reached, until the goal is reached or the steps run out.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch
from torch import Tensor

from gns.errors import GnsInputError

__all__ = ["METHODS", "SearchSettings", "SearchResult", "LoopResult", "check_search", "expand_knots", "search",
           "closed_loop"]

METHODS = ("cem", "shooting", "random")


class SearchSettings(Protocol):
    """The settings :func:`search` and :func:`closed_loop` read (a domain's frozen config holds them,
    with their defaults and a comment on each: e.g. :class:`gns.objects.plan.PlanConfig`)."""

    method: str
    horizon: int
    action_hold: int
    candidates: int
    iterations: int
    elites: int
    initial_std: float
    replan_every: int


@dataclass
class SearchResult:
    """The outcome of one :func:`search`.

    Attributes:
        actions: ``(H, A)`` the chosen normalized sequence.
        knots: ``(M, A)`` its knots (``M = ceil(H / hold)``), for the next warm start.
        cost: its cost (NaN for ``"random"``, which evaluates none).
        iterations: per iteration, ``{"best", "elite_mean", "mean"}`` costs of that iteration's candidates.
        evaluated: candidate sequences rolled out through the model.
    """

    actions: Tensor
    knots: Tensor
    cost: float
    iterations: list[dict[str, float]] = field(default_factory=list)
    evaluated: int = 0


@dataclass
class LoopResult:
    """The outcome of one :func:`closed_loop` episode.

    Attributes:
        reached: whether ``execute`` reported the goal reached.
        steps: steps executed (up to and including the one that reached the goal).
        actions: ``(steps, A)`` the normalized actions executed.
        plans: searches run (one per re-plan).
        evaluated: candidate sequences rolled out in all.
        plan_seconds: time spent searching (the model's rollouts and the costs).
        execute_seconds: time spent in the true system.
    """

    reached: bool
    steps: int
    actions: Tensor
    plans: int
    evaluated: int
    plan_seconds: float
    execute_seconds: float


def check_search(settings: SearchSettings) -> None:
    """Check the search settings.

    Raises:
        GnsInputError: naming the setting, what it must be and what it is.
    """
    def bad(key: str, expected: str) -> GnsInputError:
        return GnsInputError("bad planner setting", key=key, expected=expected, found=getattr(settings, key))

    if settings.method not in METHODS:
        raise bad("method", " or ".join(METHODS))
    for key in ("horizon", "action_hold", "candidates", "iterations", "elites", "replan_every"):
        if not isinstance(getattr(settings, key), int) or getattr(settings, key) < 1:
            raise bad(key, "an integer >= 1")
    if settings.elites > settings.candidates:
        raise bad("elites", f"at most candidates = {settings.candidates}")
    if not settings.initial_std > 0:
        raise bad("initial_std", "> 0")
    if settings.replan_every > settings.horizon:
        raise bad("replan_every", f"at most horizon = {settings.horizon} (steps of the plan executed)")
    if settings.replan_every % settings.action_hold:
        raise bad("replan_every", f"a multiple of action_hold = {settings.action_hold} (so that a shifted plan "
                                  "keeps its knots)")


def num_knots(horizon: int, hold: int) -> int:
    """Knots of a sequence of ``horizon`` steps whose actions are held ``hold`` steps."""
    return math.ceil(horizon / hold)


def expand_knots(knots: Tensor, hold: int, horizon: int) -> Tensor:
    """Sequences of actions from their knots.

    Args:
        knots: ``(..., M, A)``; hold: steps each knot is held; horizon: steps ``H <= M * hold``.

    Returns:
        ``(..., H, A)``: step ``t`` takes knot ``t // hold``.
    """
    return knots.repeat_interleave(hold, dim=-2)[..., :horizon, :]


def _uniform(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    return torch.rand(shape, generator=generator) * 2 - 1


def search(cost: Callable[[Tensor], Tensor], dims: int, settings: SearchSettings, generator: torch.Generator,
           warm_start: Tensor | None = None) -> SearchResult:
    """Search normalized action sequences for the cheapest (see the module docstring for the methods).

    Args:
        cost: ``(K, H, A)`` candidates -> ``(K,)`` costs (NaN counts as infinitely costly).
        dims: ``A``, action components per step.
        settings: method, horizon, hold, candidates, iterations, elites, initial std.
        generator: the random stream (CPU); the search is deterministic given it and ``cost``.
        warm_start: ``(M, A)`` knots the CEM's first Gaussian is centred on (zeros when None);
            shooting and random ignore it.

    Returns:
        the chosen sequence, its knots and cost, and the costs of every iteration.
    """
    hold, horizon = settings.action_hold, settings.horizon
    shape = (num_knots(horizon, hold), dims)
    if settings.method == "random":
        knots = _uniform(shape, generator)
        return SearchResult(expand_knots(knots, hold, horizon), knots, float("nan"))
    mean = torch.zeros(shape) if warm_start is None else warm_start.detach().cpu().clone()
    std = torch.full(shape, float(settings.initial_std))
    best_knots, best_cost, rounds = None, math.inf, []
    iterations = 1 if settings.method == "shooting" else settings.iterations
    for _ in range(iterations):
        if settings.method == "shooting":
            knots = _uniform((settings.candidates, *shape), generator)                          # (K, M, A)
        else:
            noise = torch.randn((settings.candidates, *shape), generator=generator)
            knots = (mean + std * noise).clamp(-1.0, 1.0)                                        # (K, M, A)
        costs = torch.nan_to_num(cost(expand_knots(knots, hold, horizon)).detach().cpu().double(), nan=math.inf)
        order = torch.argsort(costs)
        elites = knots[order[:settings.elites]]                                                  # (E, M, A)
        rounds.append({"best": float(costs[order[0]]), "elite_mean": float(costs[order[:settings.elites]].mean()),
                       "mean": float(costs.mean())})
        if float(costs[order[0]]) < best_cost or best_knots is None:
            best_knots, best_cost = knots[order[0]].clone(), float(costs[order[0]])
        mean, std = elites.mean(0), elites.std(0, unbiased=False)
    return SearchResult(expand_knots(best_knots, hold, horizon), best_knots, best_cost, rounds,
                        iterations * settings.candidates)


def _shifted(knots: Tensor, executed_steps: int, hold: int) -> Tensor:
    """The knots of a plan after ``executed_steps`` of it ran (a multiple of ``hold``), zeros appended."""
    gone = executed_steps // hold
    return torch.cat([knots[gone:], torch.zeros_like(knots[:gone])])


def closed_loop(cost: Callable[[Tensor], Tensor], execute: Callable[[Tensor], bool], dims: int, steps: int,
                settings: SearchSettings, generator: torch.Generator) -> LoopResult:
    """Model-predictive control: plan, execute ``replan_every`` steps in the true system, plan again.

    Args:
        cost: ``(K, H, A)`` normalized candidates -> ``(K,)``, from the true system's current state.
        execute: ``(S, A)`` normalized actions run in the true system; True once the goal is reached.
        dims: ``A``; steps: the most steps the episode may take.
        settings: the search settings (:func:`check_search`).
        generator: the random stream of the searches.

    Returns:
        whether and when the goal was reached, the actions executed, and where the time went.

    Raises:
        GnsInputError: bad settings, or ``steps < 1``.
    """
    check_search(settings)
    if steps < 1:
        raise GnsInputError("an episode needs at least one step", key="steps", expected=">= 1", found=steps)
    executed, plans, evaluated, plan_s, execute_s = [], 0, 0, 0.0, 0.0
    warm, done, reached = None, 0, False
    while done < steps and not reached:
        t0 = time.perf_counter()
        result = search(cost, dims, settings, generator, warm)
        t1 = time.perf_counter()
        now = result.actions[:min(settings.replan_every, steps - done)]                            # (S, A)
        reached = bool(execute(now))
        execute_s += time.perf_counter() - t1
        plan_s += t1 - t0
        plans, evaluated, done = plans + 1, evaluated + result.evaluated, done + len(now)
        executed.append(now)
        warm = _shifted(result.knots, settings.replan_every, settings.action_hold)
    return LoopResult(reached, done, torch.cat(executed), plans, evaluated, plan_s, execute_s)
