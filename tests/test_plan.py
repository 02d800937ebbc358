"""The search and the closed loop of gns.plan, on costs known in closed form."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gns.errors import GnsInputError
from gns.plan import closed_loop, expand_knots, search


@dataclasses.dataclass(frozen=True)
class Settings:
    method: str = "cem"
    horizon: int = 6
    action_hold: int = 2
    candidates: int = 32
    iterations: int = 4
    elites: int = 4
    initial_std: float = 0.5
    replan_every: int = 2


TARGET = torch.tensor([[0.6, -0.3], [0.6, -0.3], [-0.5, 0.2], [-0.5, 0.2], [0.1, 0.9], [0.1, 0.9]])  # (H, A)


def quadratic(actions: torch.Tensor) -> torch.Tensor:
    """``(K,)`` squared distance of ``(K, H, A)`` sequences to :data:`TARGET`."""
    return (actions - TARGET).pow(2).sum((1, 2))


def test_knots_are_held_and_cut_to_the_horizon():
    knots = torch.arange(6.0).reshape(1, 3, 2)
    seq = expand_knots(knots, 2, 5)
    assert seq.shape == (1, 5, 2)
    assert torch.equal(seq[0, :, 0], torch.tensor([0.0, 0.0, 2.0, 2.0, 4.0]))


def test_cem_lowers_the_cost_over_iterations():
    result = search(quadratic, 2, Settings(), torch.Generator().manual_seed(0))
    elite = [r["elite_mean"] for r in result.iterations]
    assert len(elite) == 4 and elite[-1] < 0.25 * elite[0], elite
    assert all(b <= a + 1e-9 for a, b in zip(elite, elite[1:])), elite
    assert result.cost == pytest.approx(float(quadratic(result.actions[None])[0]))
    assert result.cost <= min(r["best"] for r in result.iterations)
    assert result.evaluated == 4 * 32 and result.actions.abs().max() <= 1


def test_shooting_and_random_are_deterministic_given_the_generator():
    for method in ("shooting", "random"):
        settings = Settings(method=method)
        a = search(quadratic, 2, settings, torch.Generator().manual_seed(3))
        b = search(quadratic, 2, settings, torch.Generator().manual_seed(3))
        assert torch.equal(a.actions, b.actions)
    assert search(quadratic, 2, Settings(method="random"), torch.Generator()).evaluated == 0


def test_closed_loop_replans_from_the_executed_state():
    """A point pushed by its actions: reach x >= 1 from 0 with steps of 0.1 x action."""
    position = {"x": 0.0}

    def cost(actions):
        return -(position["x"] + 0.1 * actions[..., 0].sum(1))

    def execute(actions):
        position["x"] += 0.1 * float(actions[:, 0].sum())
        return position["x"] >= 1.0

    loop = closed_loop(cost, execute, 1, 40, Settings(), torch.Generator().manual_seed(0))
    assert loop.reached and loop.steps < 40 and loop.plans == loop.steps // 2
    assert loop.actions.shape == (loop.steps, 1)


@pytest.mark.parametrize("change, key", [({"method": "newton"}, "method"), ({"elites": 64}, "elites"),
                                          ({"replan_every": 3}, "replan_every"), ({"horizon": 0}, "horizon")])
def test_bad_search_settings_are_named(change, key):
    with pytest.raises(GnsInputError, match=key):
        closed_loop(quadratic, lambda a: True, 2, 4, Settings(**change), torch.Generator())
