"""The state protocol on each domain (select, concat, repeat, take, shift, hold) against direct tensor code."""

from __future__ import annotations

import pytest
import torch

from gns.mesh.state import MeshState
from gns.particles.state import ParticleState
from gns.state import State, hold


def _particles(sizes=(3, 5, 2), frames=4, context=True, seed=0) -> ParticleState:
    g = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    return ParticleState(torch.randn(n, frames, 2, generator=g), torch.randint(0, 4, (n,), generator=g),
                         torch.tensor(sizes), torch.randn(len(sizes), 3, generator=g) if context else None)


def _mesh(nodes=(4, 3), frames=2, seed=0) -> MeshState:
    """Meshes that are chains of triangles (i, i+1, i+2) with both-direction edges of each triangle side."""
    g = torch.Generator().manual_seed(seed)
    parts = []
    for n in nodes:
        cells = torch.tensor([[i, i + 1, i + 2] for i in range(n - 2)])
        pairs = torch.cat([cells[:, [0, 1]], cells[:, [1, 2]], cells[:, [0, 2]]]).unique(dim=0)
        edges = torch.cat([pairs, pairs.flip(1)]).T                                    # (2, E)
        parts.append(MeshState(torch.randn(n, 2, generator=g), torch.randint(0, 3, (n,), generator=g), edges,
                               {"world_pos": torch.randn(n, frames, 3, generator=g),
                                "wind": torch.randn(n, frames, 3, generator=g)}, torch.tensor([n]), cells))
    return MeshState.concat(parts)


def test_particle_select_against_direct_indexing():
    state = _particles()
    mask = torch.tensor([1, 0, 1, 1, 1, 0, 0, 1, 0, 0], dtype=torch.bool)
    out = state.select(mask)
    assert isinstance(out, ParticleState)
    assert torch.equal(out.position, state.position[mask]) and torch.equal(out.particle_type, state.particle_type[mask])
    assert out.n_particles.tolist() == [2, 3, 0] and torch.equal(out.context, state.context)
    assert out.batch.tolist() == [0, 0, 1, 1, 1]


def test_particle_concat_repeat_take_against_torch_cat():
    a, b = _particles((3, 5), seed=1), _particles((2,), seed=2)
    both = ParticleState.concat([a, b])
    assert torch.equal(both.position, torch.cat([a.position, b.position]))
    assert both.n_particles.tolist() == [3, 5, 2] and torch.equal(both.context, torch.cat([a.context, b.context]))
    twice = a.repeat(2)
    assert torch.equal(twice.position, a.position.repeat(2, 1, 1)) and twice.n_particles.tolist() == [3, 5, 3, 5]
    taken = both.take_systems([2, 0, 2])
    assert taken.n_particles.tolist() == [2, 3, 2]
    assert torch.equal(taken.position, torch.cat([both.position[8:], both.position[:3], both.position[8:]]))
    assert torch.equal(taken.context, both.context[[2, 0, 2]])
    parts = both.split()
    assert [p.num_entities for p in parts] == [3, 5, 2]
    again = ParticleState.concat(parts)
    for name in ("position", "particle_type", "context", "n_particles"):
        assert torch.equal(getattr(again, name), getattr(both, name))
    with pytest.raises(ValueError, match="different system"):
        ParticleState.concat([a, _particles((2,), context=False)])
    with pytest.raises(ValueError, match="frames"):
        ParticleState.concat([a, _particles((2,), frames=3)])


def test_shift_and_window_against_direct_code():
    state = _particles()
    new = torch.randn(state.num_entities, 2)
    shifted = state.shift({"position": new})
    assert torch.equal(shifted.position, torch.cat([state.position[:, 1:], new[:, None]], dim=1))
    assert torch.equal(state.window(1, 3).position, state.position[:, 1:3])
    with pytest.raises(ValueError, match="every field"):
        state.shift({"velocity": new})


def test_hold_overwrites_only_the_masked_entities_and_given_fields():
    frames = {"a": torch.zeros(4, 2), "b": torch.ones(4, 1)}
    mask = torch.tensor([True, False, True, False])
    out = hold(frames, {"a": torch.full((4, 2), 7.0)}, mask)
    assert out["a"][:, 0].tolist() == [7.0, 0.0, 7.0, 0.0] and torch.equal(out["b"], frames["b"])


def _edge_set(index: torch.Tensor) -> set:
    return set(map(tuple, index.T.tolist()))


def test_mesh_select_drops_and_remaps_links():
    state = _mesh((4, 3))
    mask = torch.tensor([1, 1, 0, 1, 1, 1, 1], dtype=torch.bool)       # drop node 2 of the first mesh
    out = state.select(mask)
    assert isinstance(out, MeshState) and out.n_node.tolist() == [3, 3]
    old_to_new = {0: 0, 1: 1, 3: 2, 4: 3, 5: 4, 6: 5}
    want = {(old_to_new[s], old_to_new[r]) for s, r in _edge_set(state.mesh_edges) if s != 2 and r != 2}
    assert _edge_set(out.mesh_edges) == want
    # every triangle of the first mesh used node 2; the second mesh keeps its one triangle, shifted
    assert out.cells.tolist() == [[3, 4, 5]]
    assert torch.equal(out.fields["wind"], state.fields["wind"][mask]) and torch.equal(out.mesh_pos, state.mesh_pos[mask])


def test_mesh_concat_and_take_keep_each_system_its_links():
    a, b = _mesh((4,), seed=1), _mesh((3,), seed=2)
    both = MeshState.concat([a, b])
    assert _edge_set(both.mesh_edges) == _edge_set(a.mesh_edges) | _edge_set(b.mesh_edges + 4)
    swapped = both.take_systems([1, 0])
    assert swapped.n_node.tolist() == [3, 4]
    assert _edge_set(swapped.mesh_edges) == _edge_set(b.mesh_edges) | _edge_set(a.mesh_edges + 3)
    assert swapped.cells.tolist() == b.cells.tolist() + (a.cells + 3).tolist()
    again = MeshState.concat(swapped.split()).take_systems([1, 0])
    assert _edge_set(again.mesh_edges) == _edge_set(both.mesh_edges)
    assert torch.equal(again.fields["world_pos"], both.fields["world_pos"])
    tripled = a.repeat(3)
    assert tripled.n_node.tolist() == [4, 4, 4] and tripled.mesh_edges.shape[1] == 3 * a.mesh_edges.shape[1]
    assert _edge_set(tripled.take_systems([2]).mesh_edges) == _edge_set(a.mesh_edges)


def test_generic_state_and_to():
    state = State(fields={"x": torch.zeros(3, 2, 1)}, n=torch.tensor([1, 2]), system={"g": torch.ones(2, 4)})
    assert state.num_systems == 2 and state.num_frames == 2 and state.offsets.tolist() == [0, 1, 3]
    moved = state.to("cpu")
    assert type(moved) is State and torch.equal(moved.system["g"], state.system["g"])
    with pytest.raises(ValueError, match="entity mask"):
        state.select(torch.ones(2, dtype=torch.bool))


def _springs(sizes=(3, 4), seed=0) -> State:
    """Systems of objects with springs (i, i+1) and a value per spring: its index in the system and its system."""
    g = torch.Generator().manual_seed(seed)
    links, values, offset = [], [], 0
    for b, k in enumerate(sizes):
        pairs = torch.tensor([[i, i + 1] for i in range(k - 1)]).T + offset             # (2, k-1)
        links.append(pairs)
        values.append(torch.stack([torch.arange(k - 1.0), torch.full((k - 1,), float(b))], dim=1))
        offset += k
    return State(fields={"x": torch.randn(sum(sizes), 2, 2, generator=g)}, n=torch.tensor(sizes),
                 links={"springs": torch.cat(links, 1)}, link_values={"springs": torch.cat(values)})


def _spring_table(state: State) -> set[tuple]:
    """(sender, receiver, value...) of every spring, entity indices inside their system."""
    offsets = state.offsets
    rows = set()
    for (a, b), v in zip(state.links["springs"].T.tolist(), state.link_values["springs"].tolist()):
        system = int(state.batch[a])
        rows.add((system, a - int(offsets[system]), b - int(offsets[system]), *v))
    return rows


def test_link_values_follow_their_links():
    state = _springs()
    keep = torch.tensor([1, 1, 1, 1, 0, 1, 1], dtype=torch.bool)                       # drops springs (3,4), (4,5)
    kept = state.select(keep)
    assert _spring_table(kept) == {(0, 0, 1, 0.0, 0.0), (0, 1, 2, 1.0, 0.0), (1, 1, 2, 2.0, 1.0)}
    swapped = state.take_systems([1, 0])
    assert {(1 - r[0], *r[1:]) for r in _spring_table(swapped)} == _spring_table(state)
    both = State.concat([state, state.take_systems([0])])
    assert both.link_values["springs"].shape == (2 + 3 + 2, 2)
    assert _spring_table(both.take_systems([2])) == _spring_table(state.take_systems([0]))
    assert torch.equal(state.to("cpu").link_values["springs"], state.link_values["springs"])
    assert torch.equal(state.replace(fields={}).link_values["springs"], state.link_values["springs"])
    with pytest.raises(ValueError, match="different link_values"):
        State.concat([state, State(fields=state.fields, n=state.n, links=state.links)])
    with pytest.raises(ValueError, match="link values"):
        State(fields=state.fields, n=state.n, links=state.links, link_values={"springs": torch.zeros(2, 1)})
