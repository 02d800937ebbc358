"""Interventions on object scenes: each operation against direct tensor code (and the shapes' own formulas),
the scene checks (overlaps, walls, non-positive sizes and masses), the ranges of the training set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from gns.counterfactual import factual_scenario
from gns.data.objects import DISC, object_moment
from gns.domains import get_domain
from gns.errors import GnsInputError
from gns.interventions import (AddCopy, Kick, Move, Remove, Resize, Reweigh, Selection, SetInput, SetType, SetVelocity,
                               apply_interventions, parse_interventions)

STEPS = 10
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "interventions" / "objects2d.yaml"


@pytest.fixture(scope="module")
def simulator(make_simulator):
    return make_simulator()


@pytest.fixture(scope="module")
def space(simulator, objects_dataset):
    return get_domain("objects").intervention_space(simulator, objects_dataset)


@pytest.fixture
def factual(simulator, test_windows):
    """Test scene 0 at the first frame the model can start from, with 10 steps of its actions."""
    return factual_scenario(test_windows, 0, simulator.window - 1, STEPS, simulator.window, True)


def _rate(window: torch.Tensor, dt: float) -> torch.Tensor:
    return (window[:, 1:] - window[:, :-1]) / dt                                            # (K, W-1, F)


def _where(call) -> str:
    with pytest.raises(GnsInputError) as info:
        call()
    return str(info.value)


def test_move_remove_and_copy(factual, space, spring_windows, simulator):
    moved = apply_interventions(factual, [Move(Selection(index=(1,)), [0.01, -0.01])], space, "a")
    want = factual.state.position.clone()
    want[1] += torch.tensor([0.01, -0.01])
    assert torch.allclose(moved.state.position, want) and moved.touched.tolist()[:2] == [False, True]
    assert torch.equal(moved.state.angle, factual.state.angle)
    springs = factual_scenario(spring_windows, 0, simulator.window - 1, STEPS, simulator.window, True)
    assert springs.state.springs.shape[1] > 0
    end = int(springs.state.springs[0, 0])
    gone = Remove(Selection(index=(end,))).apply(springs, space, "a")
    kept = (springs.state.springs != end).all(dim=0)
    assert gone.state.springs.shape[1] == int(kept.sum()) and gone.state.num_entities == springs.state.num_entities - 1
    assert end not in gone.origin.tolist() and torch.equal(gone.controls["action"],
                                                           springs.controls["action"][gone.origin])
    copy = AddCopy(Selection(index=(0,)), [0.0, 0.3]).apply(factual, space, "a")
    assert copy.origin[-1] == -1 and torch.equal(copy.state.static["mass"][-1], factual.state.static["mass"][0])
    assert torch.equal(copy.controls["action"][-1], factual.controls["action"][0])   # the copy is pushed alike


def test_kick_and_set_velocity_change_the_linear_and_angular_rates(factual, space):
    dt = space.dt
    kicked = apply_interventions(factual, [Kick(Selection(index=(0,)), [0.2, 0.0], spin=1.5)], space, "a")
    for name, delta in (("position", [0.2, 0.0]), ("angle", [1.5])):
        change = _rate(kicked.state.fields[name], dt) - _rate(factual.state.fields[name], dt)
        assert torch.allclose(change[0], torch.tensor(delta).expand_as(change[0]), atol=1e-3), name
        assert torch.equal(change[1:], torch.zeros_like(change[1:]))
        assert torch.equal(kicked.state.fields[name][:, -1], factual.state.fields[name][:, -1])  # poses stay
    assert kicked.log[-1].params["spin"] == pytest.approx(1.5)
    spinning = apply_interventions(factual, [Kick(Selection(index=(2,)), spin=-1.0)], space, "a")
    assert torch.equal(spinning.state.position, factual.state.position)                  # spin only
    stopped = apply_interventions(factual, [SetVelocity(Selection(), [0.0, 0.0], spin=0.0)], space, "a")
    for name in ("position", "angle"):                                                    # the last velocity is 0
        assert float(_rate(stopped.state.fields[name], dt)[:, -1].abs().max()) < 1e-3


def test_resize_and_reweigh_keep_mass_and_moment_consistent(factual, space):
    static = factual.state.static
    box = int(torch.nonzero(static["shape"] != DISC)[0])
    grown = apply_interventions(factual, [Resize(Selection(index=(box,)), scale=1.1)], space, "a")
    size = static["size"][box] * 1.1
    mass = static["mass"][box] * 1.21                                                      # the density stays
    new = grown.state.static
    assert torch.allclose(new["size"][box], size) and torch.allclose(new["mass"][box], mass, rtol=1e-5)
    moment = object_moment(new["shape"][box:box + 1].numpy(), size[None].numpy(), mass[None].numpy())
    assert new["moment"][box].item() == pytest.approx(float(moment[0]), rel=1e-4)
    others = torch.arange(factual.state.num_entities) != box
    for name in ("size", "mass", "moment"):
        assert torch.equal(new[name][others], static[name][others])
    same_mass = apply_interventions(factual, [Resize(Selection(index=(box,)), size=size.tolist(), keep="mass")],
                                    space, "a")
    assert torch.allclose(same_mass.state.static["size"][box], size)
    assert same_mass.state.static["mass"][box] == static["mass"][box]
    assert same_mass.log[-1].op == "resize" and same_mass.log[-1].params["mass"].shape == (1,)
    heavy = apply_interventions(factual, [Reweigh(Selection(index=(box,)), scale=2.0)], space, "a")
    assert torch.allclose(heavy.state.static["mass"][box], 2 * static["mass"][box])
    assert torch.allclose(heavy.state.static["moment"][box], 2 * static["moment"][box])
    turned = apply_interventions(factual, [Reweigh(Selection(index=(box,)), moment=float(static["moment"][box]) * 1.5)],
                                 space, "a")
    assert torch.equal(turned.state.static["mass"], static["mass"])
    assert torch.allclose(turned.state.static["moment"][box], 1.5 * static["moment"][box])


def test_actions_of_a_selection_over_a_range_of_frames(factual, space):
    push = SetInput("action", value=[0.5, 0.0, 0.0], from_frame=2, to_frame=5, select=Selection(index=(1,)))
    out = apply_interventions(factual, [push], space, "a")
    frames = torch.cat([factual.state.action[:, -1:], factual.controls["action"]], dim=1)    # (K, 1 + S, 3)
    got = torch.cat([out.state.action[:, -1:], out.controls["action"]], dim=1)
    want = frames.clone()
    want[1, 2:5] = torch.tensor([0.5, 0.0, 0.0])
    assert torch.equal(got, want) and out.touched.tolist()[:2] == [False, True]
    assert out.log[-1].params["to_frame"] == 5 and not out.log[-1].params["every"]
    sequence = [[0.1, 0.0, 0.0], [0.2, 0.0, 0.0], [0.3, 0.0, 0.0]]
    out = apply_interventions(factual, [SetInput("action", value=sequence, select=Selection(index=(0,)))], space, "a")
    assert out.state.action[0, -1, 0] == pytest.approx(0.1)
    assert out.controls["action"][0, :2, 0].tolist() == pytest.approx([0.2, 0.3])
    assert torch.equal(out.controls["action"][0, 2:], factual.controls["action"][0, 2:])
    calm = apply_interventions(factual, [SetInput("action", scale=0.0)], space, "a")
    assert not bool(calm.controls["action"].any()) and not bool(calm.state.action[:, -1].any())
    assert torch.equal(calm.state.action[:, :-1], factual.state.action[:, :-1])              # the past stays


def test_bad_object_interventions_are_named_errors(factual, space):
    position = factual.state.position[:, -1]
    disc = int(torch.nonzero(factual.state.static["shape"] == DISC)[0])
    cases = {
        "object 0 and object 1 would overlap": [Move(Selection(index=(1,)), (position[0] - position[1]).tolist())],
        "outside the box": [Move(Selection(index=(0,)), [2.0, 0.0])],
        "object 2: its mass must be positive": [Reweigh(Selection(index=(2,)), mass=0.0)],
        "object 1: its size must be positive": [Resize(Selection(index=(1,)), size=[-0.1, 0.1])],
        f"object {disc}: a disc's size is its diameter twice": [Resize(Selection(index=(disc,)), scale=[1.0, 0.95])],
        "not available for objects": [SetType(Selection(index=(0,)), 1)],
        "one value per component": [SetInput("action", value=[1.0, 2.0])],
        "one value per frame": [SetInput("action", value=[[1.0, 0, 0], [2.0, 0, 0]], to_frame=3)],
        "action [1000.0, 0.0, 0.0] is outside the range": [SetInput("action", value=[1000.0, 0.0, 0.0])],
        "size [0.5, 0.5] is outside the range": [Resize(Selection(index=(disc,)), size=[0.5, 0.5])],
        "a speed of": [Kick(Selection(index=(0,)), [50.0, 0.0])],
        "an angular speed of": [Kick(Selection(index=(0,)), spin=500.0)],
        "needs delta, spin (rad/s) or both": [Kick(Selection(index=(0,)))],
        "exactly one of scale and size": [Resize(Selection(index=(0,)))],
    }
    for message, variant in cases.items():
        text = _where(lambda: apply_interventions(factual, variant, space, "bad"))
        assert message in text and "variants/bad/0" in text, (message, text)
    allowed = apply_interventions(factual, cases["action [1000.0, 0.0, 0.0] is outside the range"], space, "a",
                                  allow_extrapolation=True)
    assert "outside the range" in allowed.warnings[0]


def test_the_shipped_example_parses_and_applies(factual, space):
    variants, options = parse_interventions(yaml.safe_load(EXAMPLE.read_text()), EXAMPLE)
    ops = {name: [i.op for i in items] for name, items in variants.items()}
    assert {op for items in ops.values() for op in items} == {"remove", "move", "resize", "reweigh", "kick",
                                                              "set_velocity", "set_input"}
    for name, interventions in variants.items():
        apply_interventions(factual, interventions, space, name, options["allow_extrapolation"])
    assert set(options["regions"]) == {"left half", "right half"}
    assert np.isclose(space.ranges["action"][0], space.ranges["action"][1]).sum() == 0
