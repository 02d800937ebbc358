"""Scoring object rollouts: energy, the box, collision-event agreement, and the shared evaluator's tables."""

from __future__ import annotations

import math

import pytest
import torch

from gns.domains import get_domain
from gns.evaluate import evaluate_split, format_table
from gns.objects.evaluate import contact_agreement, kinetic_energy, obstacle_gaps, outside_box
from gns.objects.state import ObjectState

BOX = torch.tensor([[0.0, 1.0], [0.0, 1.0]])


def _two_discs(x_second: torch.Tensor) -> tuple[ObjectState, dict[str, torch.Tensor]]:
    """Two discs of diameter 0.1 on the line y = 0.5: the first at x = 0.3, the second at ``x_second (S,)``."""
    steps = x_second.shape[0]
    position = torch.zeros(2, steps, 2)
    position[0, :, 0], position[1, :, 0], position[:, :, 1] = 0.3, x_second, 0.5
    attributes = {"shape": torch.zeros(2, dtype=torch.long), "size": torch.full((2, 2), 0.1),
                  "mass": torch.tensor([1.0, 2.0]), "moment": torch.tensor([0.5, 0.25]), "friction": torch.ones(2),
                  "restitution": torch.ones(2), "colour": torch.ones(2, 3)}
    state = ObjectState(position[:, :1], torch.zeros(2, 1, 1), torch.zeros(2, 1, 3), attributes, torch.tensor([2]))
    return state, {"position": position, "angle": torch.zeros(2, steps, 1)}


def test_kinetic_energy_counts_linear_and_rotational_motion():
    state, frames = _two_discs(torch.tensor([0.6, 0.62, 0.64]))
    frames["angle"][0] = torch.tensor([[0.1], [0.2], [0.3]])                         # 0.1 rad per step
    last = {"position": torch.tensor([[0.3, 0.5], [0.58, 0.5]]), "angle": torch.tensor([[0.0], [0.0]])}
    energy = kinetic_energy(last, frames, state, dt=0.1)                            # (1, 3)
    expected = 0.5 * 2.0 * (0.02 / 0.1) ** 2 + 0.5 * 0.5 * (0.1 / 0.1) ** 2
    torch.testing.assert_close(energy, torch.full((1, 3), expected))


def test_contact_agreement_up_to_each_step():
    _, truth = _two_discs(torch.tensor([0.6, 0.5, 0.4, 0.45]))                     # touches (0.1 apart) at step 3
    state, never = _two_discs(torch.tensor([0.6, 0.6, 0.6, 0.6]))
    torch.testing.assert_close(contact_agreement(truth, truth, state), torch.ones(1, 4))
    torch.testing.assert_close(contact_agreement(never, truth, state), torch.tensor([[1.0, 1.0, 0.0, 0.0]]))


def _with_obstacle(state: ObjectState) -> ObjectState:
    """The scene with a box obstacle 0.2 wide at (0.3, 0.7) (0.05 above the first disc's top) and padding."""
    obstacles = {"obstacle_shape": torch.tensor([[1, -1]]), "obstacle_size": torch.tensor([[[0.2, 0.2], [0, 0]]]),
                 "obstacle_position": torch.tensor([[[0.3, 0.7], [0, 0]]]), "obstacle_angle": torch.zeros(1, 2)}
    return state.replace(system=obstacles)


def test_obstacle_gaps_and_contacts_count_the_obstacles():
    state, frames = _two_discs(torch.tensor([0.6, 0.6, 0.6]))
    state = _with_obstacle(state)
    truth = {k: v.clone() for k, v in frames.items()}
    truth["position"][0, 1:, 1] = 0.55                                               # the first disc rises to touch it
    gaps, objects = obstacle_gaps(truth, state)
    assert objects.tolist() == [0, 1]                                                # the padding row is no obstacle
    torch.testing.assert_close(gaps[0], torch.tensor([0.05, 0.0, 0.0]), atol=1e-6, rtol=0)
    # the object pair never touches (agrees); the obstacle pair of disc 0 disagrees from step 2
    torch.testing.assert_close(contact_agreement(frames, truth, state), torch.tensor([[1.0, 2 / 3, 2 / 3]]))


def test_outside_box_measures_the_shape_through_the_wall():
    state, frames = _two_discs(torch.tensor([0.5, 0.98]))
    assert float(outside_box(frames, state, BOX)[0]) == pytest.approx(0.03, abs=1e-6)   # 0.98 + 0.05 - 1
    state, frames = _two_discs(torch.tensor([0.5, 0.6]))
    assert float(outside_box(frames, state, BOX)[0]) == 0.0


def test_the_shared_evaluator_scores_objects_against_constant_velocity(make_simulator, objects_dataset, tmp_path):
    simulator = make_simulator()
    domain = get_domain("objects")
    with domain.open_split_for(simulator, objects_dataset, "test") as split:
        summary = evaluate_split(simulator, split, (1, 5, 10, 20), progress=False, start_stride=10,
                                 save_path=tmp_path / "roll.h5")
    assert summary["kind"] == "objects" and summary["fields"] == ["position", "angle"]
    assert summary["rollouts"] == ["model", "constant_velocity", "persistence"]
    assert set(summary["model"]["mse"]) == {"1", "5", "10", "20", "full"}
    assert set(summary["model"]["angle_mse"]) == set(summary["model"]["mse"])
    for name in summary["rollouts"]:
        keys = {k for k in summary[name] if k.startswith("contact_agreement_")}
        assert keys == {f"contact_agreement_{h}" for h in ("1", "5", "10", "20", "full")}
        assert all(0.0 <= summary[name][k] <= 1.0 for k in keys)
        assert math.isfinite(summary[name]["ke_error"]) and summary[name]["outside_max"] >= 0
    # persistence ignores the motion: worse than constant velocity one step ahead
    assert summary["persistence"]["mse"]["1"] > summary["constant_velocity"]["mse"]["1"]
    assert summary["multistart"]["num_rollouts"] == 4                                  # starts 0, 10 of 2 scenes
    table = format_table(summary)
    assert "MSE of angle" in table and "contact_agreement_20" in table


def test_an_obstacle_model_reports_overlaps_with_obstacles(make_simulator, obstacles_dataset):
    simulator = make_simulator("objects.obstacles=true", dataset=obstacles_dataset)
    with get_domain("objects").open_split_for(simulator, obstacles_dataset, "test") as split:
        summary = evaluate_split(simulator, split, (1, 5), progress=False)
    for name in summary["rollouts"]:
        assert summary[name]["obstacle_overlap_max"] >= summary[name]["obstacle_overlap_mean"] >= 0
        assert 0 <= summary[name]["obstacle_overlap_share"] <= 1
    assert summary["persistence"]["obstacle_overlap_max"] < 0.02          # the solver's frames barely overlap
