"""Interventions: each operation's effect on a state against direct tensor code, and every bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from gns.errors import GnsInputError
from gns.interventions import (AddCopy, AddEntities, Kick, Move, MovePrescribed, Remove, Resize, Reweigh, Scenario,
                               Selection, SetContext, SetInput, SetType, SetVelocity, Space, apply_interventions,
                               parse_interventions)
from gns.mesh.state import MeshState
from gns.particles.state import ParticleState

DT = 0.01
BOUNDS = torch.tensor([[0.0, 1.0], [0.0, 1.0]])


def _particles() -> Scenario:
    """Six particles (type 5) and two kinematic ones (type 3) with a window of 3 frames and 4 future steps."""
    g = torch.Generator().manual_seed(0)
    x = 0.3 + 0.4 * torch.rand(8, 1, 2, generator=g)
    v = 0.01 * torch.randn(8, 1, 2, generator=g)
    window = x + v * torch.arange(3.0)[None, :, None]                                     # (8, 3, 2)
    types = torch.tensor([5, 5, 5, 5, 5, 5, 3, 3])
    state = ParticleState(window, types, torch.tensor([8]), torch.tensor([[0.5]]))
    controls = {"position": window[:, -1:] + v * torch.arange(1.0, 5.0)[None, :, None]}  # (8, 4, 2)
    return Scenario.factual(state, controls)


def _space(**changes) -> Space:
    options = dict(kind="particles", dt=DT, position_field="position", type_attribute="particle_type",
                   held=lambda s: s.static["particle_type"] == 3, bounds=BOUNDS, periodic=torch.tensor([False, False]),
                   trained_types={3, 5, 6}, held_types={3}, context_size=1,
                   ranges={"context": (np.array([0.2]), np.array([0.8]))}, max_speed=5.0)
    options.update(changes)
    return Space(**options)


def _velocity(window: torch.Tensor) -> torch.Tensor:
    return (window[:, 1:] - window[:, :-1]) / DT                                          # (N, W-1, D)


def test_identity_variant_is_the_factual():
    factual = _particles()
    out = apply_interventions(factual, [], _space())
    assert out is factual
    # unread future values of free entities (a rollout beyond the data) are not checked against the walls
    factual.controls["position"][:6] = 0.0 - 5.0
    assert apply_interventions(factual, [Kick(Selection(index=(0,)), [0.1, 0.0])], _space(), "a")


def test_move_shifts_the_window_and_held_paths():
    factual, space = _particles(), _space()
    out = Move(Selection(index=(0, 6)), [0.1, -0.05]).apply(factual, space, "t")
    shift = torch.tensor([0.1, -0.05])
    want = factual.state.position.clone()
    want[[0, 6]] += shift
    assert torch.allclose(out.state.position, want)
    path = factual.controls["position"].clone()
    path[6] += shift                                                      # the held particle's future moves too
    assert torch.allclose(out.controls["position"], path)
    assert out.touched.tolist() == [True, False, False, False, False, False, True, False]
    assert out.log[-1].op == "move" and out.log[-1].entities.tolist() == [0, 6]


def test_remove_keeps_pairing_and_controls():
    factual = _particles()
    out = Remove(Selection(type=(5,), box=((0.0, 0.5), (0.0, 1.0)))).apply(factual, _space(), "t")
    keep = ~((factual.state.particle_type == 5) & (factual.state.position[:, -1, 0] <= 0.5))
    assert torch.equal(out.state.position, factual.state.position[keep])
    assert torch.equal(out.controls["position"], factual.controls["position"][keep])
    assert torch.equal(out.origin, torch.nonzero(keep).flatten()) and out.state.n_particles.tolist() == [int(keep.sum())]


def test_add_copy_and_new_entities():
    factual, space = _particles(), _space()
    out = AddCopy(Selection(index=(1, 2)), [0.05, 0.0]).apply(factual, space, "t")
    assert out.state.num_entities == 10 and out.origin[-2:].tolist() == [-1, -1] and out.touched[-2:].all()
    assert torch.allclose(out.state.position[-2:], factual.state.position[[1, 2]] + torch.tensor([0.05, 0.0]))
    assert torch.equal(out.state.particle_type[-2:], factual.state.particle_type[[1, 2]])
    new = AddEntities([[0.5, 0.5], [0.6, 0.5]], [1.0, 0.0], 5).apply(factual, space, "t")
    assert new.state.num_entities == 10
    assert torch.allclose(new.state.position[-2:, -1], torch.tensor([[0.5, 0.5], [0.6, 0.5]]))
    assert torch.allclose(_velocity(new.state.position[-2:]), torch.tensor([1.0, 0.0]).expand(2, 2, 2))


def test_kick_and_set_velocity_rewrite_the_whole_window():
    factual, space = _particles(), _space()
    kicked = Kick(Selection(index=(0,)), [0.5, 0.0]).apply(factual, space, "t")
    before, after = _velocity(factual.state.position), _velocity(kicked.state.position)
    assert torch.allclose(after[0] - before[0], torch.tensor([0.5, 0.0]).expand(2, 2), atol=1e-5)
    assert torch.equal(after[1:], before[1:])                                          # the others are untouched
    assert torch.equal(kicked.state.position[:, -1], factual.state.position[:, -1])  # positions now stay
    stopped = SetVelocity(Selection(type=(5,)), [0.0, 0.0]).apply(factual, space, "t")
    assert torch.allclose(_velocity(stopped.state.position)[:6], torch.zeros(6, 2, 2), atol=1e-5)


def test_set_type_context_and_prescribed_paths():
    factual, space = _particles(), _space()
    typed = SetType(Selection(index=(0,)), 6).apply(factual, space, "t")
    assert typed.state.particle_type[0] == 6
    context = SetContext([0.7]).apply(factual, space, "t")
    assert torch.allclose(context.state.context, torch.tensor([[0.7]]))
    ramp = MovePrescribed(Selection(type=(3,)), offset=[0.0, 0.1], duration=2 * DT).apply(factual, space, "t")
    moved = ramp.controls["position"] - factual.controls["position"]
    assert torch.allclose(moved[6:, :, 1], torch.tensor([0.05, 0.1, 0.1, 0.1]).expand(2, 4), atol=1e-6)
    assert torch.equal(moved[:6], torch.zeros_like(moved[:6]))
    drift = MovePrescribed(Selection(type=(3,)), velocity=[1.0, 0.0]).apply(factual, space, "t")
    moved = drift.controls["position"] - factual.controls["position"]
    assert torch.allclose(moved[6, :, 0], DT * torch.arange(1.0, 5.0), atol=1e-6)


def _mesh() -> tuple[Scenario, Space]:
    """A 2 x 2-quad sheet (9 nodes): nodes 0, 3, 6 are handles; a wind input field; 5 future steps."""
    from gns.mesh.io import make_rectangle_mesh
    from gns.mesh.topology import edges_from_cells

    mesh_pos, cells = (torch.as_tensor(a) for a in make_rectangle_mesh(1.0, 1.0, 2, 2))
    mesh_pos = mesh_pos[:, :2].float()
    node_type = torch.zeros(9, dtype=torch.long)
    node_type[[0, 3, 6]] = 3
    world = torch.cat([mesh_pos, torch.zeros(9, 1)], dim=1)[:, None].repeat(1, 2, 1)
    wind = torch.tensor([5.0, 0.0, 0.0]).expand(9, 2, 3).clone()
    state = MeshState(mesh_pos, node_type, edges_from_cells(cells.long(), 9), {"world_pos": world, "wind": wind},
                      torch.tensor([9]), cells.long())
    controls = {"world_pos": world[:, -1:].repeat(1, 5, 1), "wind": wind[:, -1:].repeat(1, 5, 1)}
    space = Space(kind="mesh", dt=DT, position_field="world_pos", coordinates="mesh_pos", type_attribute="node_type",
                  held=lambda s: s.static["node_type"] == 3, input_fields=["wind"], trained_types={0, 3},
                  held_types={3}, ranges={"wind": (np.array([4.0, 0.0, 0.0]), np.array([6.0, 0.0, 0.0]))})
    return Scenario.factual(state, controls), space


def test_mesh_inputs_and_copies():
    factual, space = _mesh()
    scaled = SetInput("wind", scale=1.1).apply(factual, space, "t")
    assert torch.allclose(scaled.state.fields["wind"][:, -1], torch.tensor([5.5, 0.0, 0.0]).expand(9, 3))
    assert torch.allclose(scaled.controls["wind"], torch.tensor([5.5, 0.0, 0.0]).expand(9, 5, 3))
    assert torch.equal(scaled.state.fields["wind"][:, 0], factual.state.fields["wind"][:, 0])  # the past stays
    later = SetInput("wind", value=[4.0, 0.0, 0.0], from_frame=2).apply(factual, space, "t")
    assert later.controls["wind"][0, :, 0].tolist() == [5.0, 4.0, 4.0, 4.0, 4.0]
    gust = SetInput("wind", value=[[4.5, 0.0, 0.0], [5.5, 0.0, 0.0]], from_frame=1, select=Selection(index=(1, 2)))
    gusty = gust.apply(factual, space, "t")
    assert gusty.controls["wind"][1, :, 0].tolist() == [4.5, 5.5, 5.0, 5.0, 5.0]      # frames 1 and 2, then as before
    assert torch.equal(gusty.controls["wind"][0], factual.controls["wind"][0]) and gusty.touched.tolist()[:3] == [
        False, True, True]
    assert gusty.log[-1].params["to_frame"] == 3 and not gusty.log[-1].params["every"]
    copy = AddCopy(Selection(index=(1, 2, 4, 5)), [0.0, 0.0, 1.0]).apply(factual, space, "t")
    assert copy.state.num_entities == 13
    new_cells = copy.state.cells[copy.state.cells.min(dim=1).values >= 9]
    assert len(new_cells) == 2                                           # the two triangles among the copied nodes
    removed = Remove(Selection(index=(4,))).apply(factual, space, "t")
    cells = factual.state.cells
    assert removed.state.cells.shape[0] == int((cells != 4).all(dim=1).sum())  # the triangles without node 4


def _where(fn):
    with pytest.raises(GnsInputError) as info:
        fn()
    return str(info.value)


def test_bad_interventions_are_named_errors():
    factual, space = _particles(), _space()
    cases = {
        "matches no entity": lambda: Remove(Selection(type=(9,))).apply(factual, space, "v/0"),
        "index out of range": lambda: Remove(Selection(index=(20,))).apply(factual, space, "v/0"),
        "empty the system": lambda: Remove(Selection()).apply(factual, space, "v/0"),
        "outside the domain's walls": lambda: apply_interventions(factual, [Move(Selection(index=(0,)), [2.0, 0.0])],
                                                                  space, "a"),
        "prescribed (its entities": lambda: SetType(Selection(index=(0,)), 3).apply(factual, space, "v/0"),
        "never occurs in the training": lambda: SetType(Selection(index=(0,)), 7).apply(factual, space, "v/0"),
        "outside the range": lambda: SetContext([0.95]).apply(factual, space, "v/0"),
        "reads no such input field": lambda: SetInput("wind", value=[1.0, 0.0]).apply(factual, space, "v/0"),
        "beyond what the training data": lambda: Kick(Selection(index=(0,)), [40.0, 0.0]).apply(factual, space, "v/0"),
        "are prescribed (use move_prescribed": lambda: Kick(Selection(index=(6,)), [1.0, 0.0]).apply(factual, space,
                                                                                                    "v/0"),
        "some selected ones are free": lambda: MovePrescribed(Selection(index=(0,)), offset=[0.1, 0.0]).apply(
            factual, space, "v/0"),
        "one value per dimension": lambda: Move(Selection(index=(0,)), [0.1]).apply(factual, space, "v/0"),
        "a box is": lambda: Remove(Selection(box=((0.0, 1.0),))).apply(factual, space, "v/0"),
        "entities would be outside": lambda: apply_interventions(       # a held particle's new path leaves the box
            factual, [MovePrescribed(Selection(type=(3,)), velocity=[30.0, 0.0])], space, "a"),
        "finite vector": lambda: Move(Selection(index=(0,)), "up").apply(factual, space, "v/0"),
    }
    for message, call in cases.items():
        assert message in _where(call), message
    assert "variants/a/0 (move)" in _where(cases["outside the domain's walls"])
    mesh_case, mesh_space = _mesh()
    assert "wrong kind" in _where(lambda: apply_interventions(mesh_case, [SetInput("wind", scale="strong")],
                                                              mesh_space, "a"))
    allowed = SetContext([0.95]).apply(factual, space, "v/0", allow_extrapolation=True)
    assert allowed.warnings and "outside the range" in allowed.warnings[0]
    mesh, mesh_space = _mesh()
    assert "outside the range" in _where(lambda: SetInput("wind", value=[9.0, 0.0, 0.0]).apply(mesh, mesh_space, "v"))
    flow = Space(kind="mesh", dt=DT, position_field=None, coordinates="mesh_pos", type_attribute="node_type",
                 held=mesh_space.held)
    assert "do not move" in _where(lambda: Move(Selection(index=(1,)), [0.1, 0.0]).apply(mesh, flow, "v"))
    assert "have none" in _where(lambda: Kick(Selection(index=(0,)), spin=1.0).apply(factual, space, "v/0"))
    assert "not rigid bodies" in _where(lambda: Resize(Selection(index=(0,)), scale=2.0).apply(factual, space, "v"))
    assert "not rigid bodies" in _where(lambda: Reweigh(Selection(index=(0,)), mass=2.0).apply(factual, space, "v"))
    refused = _space(refused={"set_type": "types are fixed"})
    assert "'set_type' is not available for particles: types are fixed" in _where(
        lambda: apply_interventions(factual, [SetType(Selection(index=(0,)), 6)], refused, "a"))
    obstacle = _space(obstacles=lambda s: [(torch.tensor([0.5, 0.5]), 0.3)])
    assert "inside an obstacle" in _where(lambda: apply_interventions(
        factual, [Move(Selection(index=(1,)), (0.5 - factual.state.position[1, -1]).tolist())], obstacle, "a"))


def test_yaml_schema_and_its_errors(tmp_path):
    spec = yaml.safe_load("""
description: test
allow_extrapolation: true
variants:
  gone: [{op: remove, select: {type: 5, box: [[0, 0.5], [0, 1]]}}]
  up: [{op: move, select: {index: [0, 1]}, offset: [0, 0.1]}, {op: kick, select: {index: [2]}, delta: [1, 0]}]
  copy: [{op: add, copy: {center: [0.5, 0.5], radius: 0.2}, offset: [0.1, 0]}]
  bodies: [{op: resize, select: {index: [0]}, scale: [1.1, 1.0], keep: mass}, {op: reweigh, select: {}, scale: 2}]
  pushes: [{op: set_input, field: action, select: {index: [1]}, value: [[1, 0, 0]], from_frame: 2},
           {op: set_input, field: action, scale: 0.5}, {op: kick, select: {}, spin: 1.0}]
regions:
  left: {box: [[0, 0.5], [0, 1]]}
""")
    variants, options = parse_interventions(spec)
    assert list(variants) == ["gone", "up", "copy", "bodies", "pushes"]
    assert [type(i).__name__ for i in variants["up"]] == ["Move", "Kick"]
    assert [type(i).__name__ for i in variants["bodies"]] == ["Resize", "Reweigh"]
    push, calm, spin = variants["pushes"]
    assert push.select.index == (1,) and push.from_frame == 2 and calm.select is None and spin.spin == 1.0
    assert options["allow_extrapolation"] and set(options["regions"]) == {"left"}
    assert options["regions"]["left"].contains(torch.tensor([[0.2, 0.5], [0.7, 0.5]])).tolist() == [True, False]
    bad = {
        "unknown operation": {"variants": {"a": [{"op": "explode"}]}},
        "unknown key": {"variants": {"a": [{"op": "remove", "selct": {}}]}},
        "key 'variants/a/0 (remove)/select/colour'": {"variants": {"a": [{"op": "remove", "select": {"colour": 1}}]}},
        "key '/extra'": {"variants": {"a": [{"op": "remove"}]}, "extra": 1},
        "not 'factual'": {"variants": {"factual": [{"op": "remove"}]}},
        "non-empty list": {"variants": {"a": []}},
        "needs an offset": {"variants": {"a": [{"op": "add", "copy": {"type": 5}}]}},
        "with 'variants'": {"variant": {}},
        "select/box": {"variants": {"a": [{"op": "remove", "select": {"box": "left"}}]}},
    }
    for message, item in bad.items():
        assert message in _where(lambda: parse_interventions(item, tmp_path / "x.yaml")), message
