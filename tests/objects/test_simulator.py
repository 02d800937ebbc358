"""The object simulator: integration beside its inverse, permutation equivariance, batching, edges, bad input."""

from __future__ import annotations

import pytest
import torch

from gns.errors import GnsInputError
from gns.objects.integrate import integrate, inverse_integrate
from gns.objects.state import ObjectState


def test_integrate_and_inverse_integrate_round_trip():
    torch.manual_seed(0)
    history = {"position": torch.rand(7, 3, 2), "angle": torch.randn(7, 3, 1) * 5}
    acceleration = {"position": torch.randn(7, 2) * 1e-3, "angle": torch.randn(7, 1) * 1e-2}
    nxt = integrate(history, acceleration)
    back = inverse_integrate(history, nxt)
    for name in history:
        torch.testing.assert_close(back[name], acceleration[name], atol=1e-6, rtol=0)
    # zero acceleration: constant per-step velocity
    still = integrate(history, {k: torch.zeros_like(v) for k, v in acceleration.items()})
    torch.testing.assert_close(still["angle"], 2 * history["angle"][:, -1] - history["angle"][:, -2])


def test_decoding_and_its_inverse_round_trip(make_simulator, test_windows):
    simulator = make_simulator()
    state = test_windows.read(0, 3, 3 + simulator.window)
    normalized = torch.randn(state.num_entities, 3)
    nxt = simulator.integrate(state, normalized)
    assert nxt["position"].shape == (state.num_entities, 2) and nxt["angle"].shape == (state.num_entities, 1)
    torch.testing.assert_close(simulator.target(state, nxt), normalized, atol=1e-4, rtol=0)


def _permuted(state: ObjectState, order: torch.Tensor) -> ObjectState:
    """The objects of a one-scene state in ``order``: new object ``i`` is old object ``order[i]``."""
    new_index = torch.argsort(order)                                                   # old index -> new one
    return state.replace(fields={k: v[order] for k, v in state.fields.items()},
                         static={k: v[order] for k, v in state.static.items()},
                         links={"springs": new_index[state.springs]}, link_values=state.link_values)


@pytest.mark.parametrize("edges, data, impact", [("all", "plain", False), ("radius", "plain", False),
                                                  ("all", "springs", False), ("all", "plain", True),
                                                  ("all", "obstacles", True)])
def test_reordering_objects_reorders_the_outputs(make_simulator, test_windows, spring_windows, springs_dataset,
                                                 obstacle_windows, obstacles_dataset, edges, data, impact):
    datasets = {"plain": (None, test_windows), "springs": (springs_dataset, spring_windows),
                "obstacles": (obstacles_dataset, obstacle_windows)}
    dataset, windows = datasets[data]
    simulator = make_simulator(f"objects.edges={edges}", f"objects.impact={str(impact).lower()}",
                               f"objects.obstacles={str(data == 'obstacles').lower()}", dataset=dataset)
    state = windows.read(1, 10, 10 + simulator.window)
    assert bool(state.springs.numel()) == (data == "springs")
    assert bool(state.num_obstacles.sum()) == (data == "obstacles")
    order = torch.randperm(state.num_entities, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out, reordered = simulator(state), simulator(_permuted(state, order))
    torch.testing.assert_close(reordered, out[order], atol=1e-5, rtol=1e-5)


def test_batched_scenes_of_different_sizes_equal_separate_ones(make_simulator, test_windows, spring_windows,
                                                               springs_dataset):
    simulator = make_simulator(dataset=springs_dataset)
    scenes = [w.read(i, 4, 4 + simulator.window) for w in (test_windows, spring_windows) for i in range(2)]
    keep = torch.ones(scenes[3].num_entities, dtype=torch.bool)
    keep[[1, 4]] = False
    scenes.insert(1, scenes[3].select(keep))                                              # fewer objects and springs
    assert len({s.num_entities for s in scenes}) > 1                                      # different K
    assert [s.springs.shape[1] > 0 for s in scenes] == [False, True, False, True, True]  # with and without springs
    with torch.no_grad():
        batched = simulator(ObjectState.concat(scenes))
        separate = torch.cat([simulator(s) for s in scenes])
    torch.testing.assert_close(batched, separate, atol=1e-5, rtol=1e-5)


def test_an_interaction_network_is_one_message_passing_step(make_simulator, test_windows):
    simulator = make_simulator("model.message_passing_steps=1")
    assert len(simulator.network.processor) == 1
    graph = simulator.build_graph(test_windows.read(0, 0, simulator.window))
    k = int(graph.n_node.sum())
    assert graph.edge_sets["pairs"].senders.numel() == k * (k - 1)                        # every ordered pair


def test_radius_edges_join_only_near_objects(make_simulator, test_windows):
    simulator = make_simulator("objects.edges=radius", "objects.radius=0.25")
    state = test_windows.read(0, 0, simulator.window)
    edges = simulator.build_graph(state).edge_sets["pairs"]
    centre = state.position[:, -1]
    distance = (centre[edges.senders] - centre[edges.receivers]).norm(dim=-1)
    assert bool((distance <= 0.25 + 1e-6).all()) and bool((edges.senders != edges.receivers).all())


def test_springs_change_the_prediction_and_follow_their_objects(make_simulator, spring_windows, springs_dataset):
    simulator = make_simulator(dataset=springs_dataset)
    state = spring_windows.read(0, 0, simulator.window)
    loose = state.replace(links={"springs": state.springs[:, :0]}, link_values={"springs": state.spring_values[:0]})
    stiffer = state.replace(link_values={"springs": state.spring_values * torch.tensor([1.0, 3.0, 1.0])})
    with torch.no_grad():
        out = simulator(state)
        assert not torch.allclose(out, simulator(loose)) and not torch.allclose(out, simulator(stiffer))
    graph = simulator.build_graph(state)
    edges = graph.edge_sets["springs"]
    assert edges.senders.numel() == 2 * state.springs.shape[1]                          # both directions
    # the length feature is the distance between the two objects
    centre = state.position[:, -1]
    torch.testing.assert_close(edges.features[:, 2] * simulator.scale,
                               (centre[edges.senders] - centre[edges.receivers]).norm(dim=-1))


def test_actions_change_the_prediction(make_simulator, test_windows):
    simulator = make_simulator()
    state = test_windows.read(0, 0, simulator.window)
    pushed = state.with_field("action", state.action + torch.tensor([5.0, 0.0, 0.0]))
    # the previous frame's action acts on the target too (it spans two steps); older ones do not
    previous, oldest = state.action.clone(), state.action.clone()
    previous[:, -2] += torch.tensor([5.0, 0.0, 0.0])
    oldest[:, :-2] += torch.tensor([5.0, 0.0, 0.0])
    with torch.no_grad():
        assert not torch.allclose(simulator(state), simulator(pushed))
        assert not torch.allclose(simulator(state), simulator(state.with_field("action", previous)))
        torch.testing.assert_close(simulator(state), simulator(state.with_field("action", oldest)))


@pytest.mark.parametrize("key, change", [
    ("position", lambda s: s.with_field("position", s.position[..., :1])),
    ("angle", lambda s: s.with_field("angle", s.angle[:, :, 0])),
    ("action", lambda s: s.with_field("action", s.action[1:])),
    ("size", lambda s: s.replace(static={**s.static, "size": s.static["size"][:, :1]})),
    ("position", lambda s: s.window(0, 1)),
])
def test_fields_of_the_wrong_shape_are_named(make_simulator, test_windows, key, change):
    simulator = make_simulator()
    state = test_windows.read(0, 0, simulator.window)
    with pytest.raises(GnsInputError) as error:
        simulator(change(state))
    assert error.value.key == key
    assert error.value.expected is not None and error.value.found is not None
    assert f"key '{key}'" in str(error.value) and "expected" in str(error.value) and "found" in str(error.value)


def test_a_state_of_the_wrong_shape_cannot_be_made():
    with pytest.raises(GnsInputError, match="key 'angle'"):
        ObjectState(torch.zeros(3, 2, 2), torch.zeros(3, 2), torch.zeros(3, 2, 3),
                    {"shape": torch.zeros(3, dtype=torch.long), "size": torch.ones(3, 2), "mass": torch.ones(3),
                     "moment": torch.ones(3), "friction": torch.ones(3), "restitution": torch.ones(3),
                     "colour": torch.ones(3, 3)}, torch.tensor([3]))


def test_bad_settings_are_named(make_simulator):
    with pytest.raises(GnsInputError, match="objects.edges"):
        make_simulator("objects.edges=knn")
    with pytest.raises(GnsInputError, match="objects.history"):
        make_simulator("objects.history=0")
    with pytest.raises(GnsInputError, match="model.decoder"):
        make_simulator("model.decoder=antisymmetric")
    with pytest.raises(GnsInputError, match="objects.contact_scale"):
        make_simulator("objects.contact_scale=-0.01")


def test_contact_scale_resolves_gaps_the_coarse_scale_cannot():
    from gns.objects.features import gap_scales, num_edge_features, num_wall_features

    gaps = torch.tensor([[0.002], [0.008], [0.05], [-0.003]])                       # m
    coarse = gap_scales(gaps, 0.3, 0.0)
    both = gap_scales(gaps, 0.3, 0.02)
    assert coarse.shape == (4, 1) and both.shape == (4, 2)
    torch.testing.assert_close(both[:, :1], coarse)
    # 2 mm and 8 mm apart: 0.02 apart in the coarse feature, 0.3 in the contact one; beyond 2 cm it saturates
    assert float(both[1, 1] - both[0, 1]) == pytest.approx(0.3)
    assert float(both[2, 1]) == 1.0 and float(both[3, 1]) == pytest.approx(-0.15)
    assert (num_edge_features(0.0), num_edge_features(0.02)) == (9, 10)
    assert (num_wall_features(0.0), num_wall_features(0.02)) == (4, 8)


@pytest.mark.parametrize("contact_scale", ["0", "0.02"])
def test_the_contact_features_reach_the_network(make_simulator, test_windows, contact_scale):
    simulator = make_simulator(f"objects.contact_scale={contact_scale}")
    state = test_windows.read(0, 3, 3 + simulator.window)
    graph = simulator.build_graph(state)
    width = 10 if contact_scale != "0" else 9
    assert graph.edge_sets["pairs"].features.shape[1] == width
    with torch.no_grad():
        assert simulator(state).shape == (state.num_entities, 3)


def test_approach_features_time_the_contact():
    from gns.objects.features import approach_features, num_edge_features

    offset = torch.tensor([[0.1, 0.0], [0.1, 0.0], [0.0, -0.2]])          # sender minus receiver (m)
    moving = torch.tensor([[-0.01, 0.003], [0.01, 0.0], [0.0, 0.02]])     # closing, parting, closing (m/step)
    gap = torch.tensor([0.004, 0.004, 0.03])                              # m
    out = approach_features(offset, moving, gap, torch.tensor(0.01))
    torch.testing.assert_close(out[:, 0], torch.tensor([1.0, -1.0, 2.0]))  # closing speed over the scale
    torch.testing.assert_close(out[:, 1], torch.tensor([0.6, 0.0, 0.0]))   # 4 mm at 1 cm/step: meets at 0.4
    assert num_edge_features(0.02, approach=True) == 12


def test_approach_features_reach_the_network(make_simulator, test_windows):
    simulator = make_simulator("objects.contact_scale=0.02", "objects.approach=true")
    state = test_windows.read(0, 3, 3 + simulator.window)
    assert simulator.build_graph(state).edge_sets["pairs"].features.shape[1] == 12


def test_impact_features_give_a_head_on_collision_its_exchange_of_velocity():
    from gns.objects.features import NUM_IMPACT_FEATURES, impact_features, into_edge_frame, num_edge_features
    from gns.objects.geometry import body_vertices, contact_frame, place

    # two equal discs, perfectly elastic, closing head on at 1 cm/step each, 5 mm apart: they meet a
    # quarter into the step, so three quarters of the exchange of velocities is in the step
    shape, size = torch.tensor([0, 0]), torch.full((2, 2), 0.1)
    vertices, rounding = body_vertices(shape, size)
    position = torch.tensor([[0.3, 0.5], [0.405, 0.5]])
    velocity = torch.tensor([[0.01, 0.0], [-0.01, 0.0]])
    world = place(vertices, position, torch.zeros(2))
    senders, receivers = torch.tensor([1, 0]), torch.tensor([0, 1])
    contact = contact_frame(world[receivers], rounding[receivers], world[senders], rounding[senders])
    one = torch.ones(2)
    out = impact_features(position, velocity, torch.zeros(2), one, 0.01 * one, one, contact, senders, receivers, lambda v: into_edge_frame(v, torch.zeros(2), receivers, "world"), 0.1,
                          torch.tensor(0.01), torch.tensor([0.01, 0.01, 1.0]))
    torch.testing.assert_close(out[0, :2], torch.tensor([1.0, 0.0]))                  # normal to the sender
    torch.testing.assert_close(out[0, 2:4], torch.tensor([0.5 + 0.025, 0.0]))        # contact point / 0.1 m
    torch.testing.assert_close(out[:, 4], torch.tensor([2.0, 2.0]))                  # closing 2 cm/step
    torch.testing.assert_close(out[:, 5], torch.tensor([0.75, 0.75]))
    # each disc's velocity change: -2 cm/step x 3/4 along the normal, over the 1 cm/step^2 scale
    torch.testing.assert_close(out[:, 6:8], torch.tensor([[-1.5, 0.0], [1.5, 0.0]]))
    torch.testing.assert_close(out[:, 8], torch.zeros(2))                            # no lever arm: no spin
    # moving apart: no impact
    apart = impact_features(position, -velocity, torch.zeros(2), one, 0.01 * one, one, contact,
                            senders, receivers, lambda v: v, 0.1, torch.tensor(0.01), torch.tensor([0.01, 0.01, 1.0]))
    assert float(apart[:, 5:].abs().max()) == 0.0
    assert num_edge_features(0.02, impact=True) == 10 + NUM_IMPACT_FEATURES


def test_impact_features_reach_the_network(make_simulator, test_windows):
    simulator = make_simulator("objects.contact_scale=0.02", "objects.impact=true")
    state = test_windows.read(0, 3, 3 + simulator.window)
    graph = simulator.build_graph(state)
    assert graph.edge_sets["pairs"].features.shape[1] == 19
    assert torch.isfinite(graph.edge_sets["pairs"].features).all()


def test_impact_estimate_sums_the_pair_and_wall_inputs(make_simulator, test_windows):
    simulator = make_simulator("objects.impact=true", "objects.edge_frame=world")
    state = test_windows.read(0, 3, 3 + simulator.window)
    graph = simulator.build_graph(state)
    edges, std = graph.edge_sets["pairs"], simulator.acceleration_normalizer.std
    pairs = torch.zeros(state.num_entities, 3).index_add_(0, edges.receivers, edges.features[:, -3:] * std)
    walls = graph.nodes[:, -3:] * std
    torch.testing.assert_close(simulator.impact_estimate(state), pairs + walls, rtol=1e-5, atol=1e-9)


def test_edge_frames_turn_only_the_receiver_frame(make_simulator, test_windows):
    receiver, world = make_simulator(), make_simulator("objects.edge_frame=world")
    state = test_windows.read(0, 3, 3 + receiver.window)
    pairs_r = receiver.build_graph(state).edge_sets["pairs"]
    pairs_w = world.build_graph(state).edge_sets["pairs"]
    current = state.position[:, -1]
    torch.testing.assert_close(pairs_w.features[:, :2],
                               (current[pairs_w.senders] - current[pairs_w.receivers]) / world.scale)
    torch.testing.assert_close(pairs_r.features[:, :2].norm(dim=-1), pairs_w.features[:, :2].norm(dim=-1))
    assert not torch.allclose(pairs_r.features[:, :2], pairs_w.features[:, :2])
    with pytest.raises(GnsInputError, match="objects.edge_frame"):
        make_simulator("objects.edge_frame=body")


# --- static obstacles (objects.obstacles) ---------------------------------------------------------
def test_scenes_with_and_without_obstacles_batch_like_separate_ones(make_simulator, obstacle_windows, test_windows,
                                                                    obstacles_dataset):
    simulator = make_simulator("objects.obstacles=true", "objects.impact=true", dataset=obstacles_dataset)
    scenes = [test_windows.read(0, 4, 4 + simulator.window), *(obstacle_windows.read(i, 4, 4 + simulator.window)
                                                               for i in range(2))]
    batched = ObjectState.concat(scenes)
    assert batched.num_obstacles.tolist() == [0, *(int(s.num_obstacles[0]) for s in scenes[1:])]
    graph = simulator.build_graph(batched)
    obstacles = graph.edge_sets["obstacles"]
    assert bool((obstacles.senders == obstacles.receivers).all())                   # an obstacle is no node
    counts = torch.bincount(batched.batch[obstacles.receivers], minlength=3)
    assert counts.tolist() == (batched.n * batched.num_obstacles).tolist()           # every object x obstacle
    with torch.no_grad():
        torch.testing.assert_close(simulator(batched), torch.cat([simulator(s) for s in scenes]), atol=1e-5, rtol=1e-5)


def test_obstacles_change_the_prediction_and_a_model_without_them_refuses_them(make_simulator, obstacle_windows,
                                                                             obstacles_dataset):
    simulator = make_simulator("objects.obstacles=true", dataset=obstacles_dataset)
    state = obstacle_windows.read(0, 4, 4 + simulator.window)
    moved = state.replace(system={**state.system, "obstacle_position": state.system["obstacle_position"] + 0.05})
    with torch.no_grad():
        assert not torch.allclose(simulator(state), simulator(moved))
    blind = make_simulator()
    with pytest.raises(GnsInputError, match="objects.obstacles") as error:
        blind(state)
    assert error.value.key == "scene 0/obstacle_shape"


def test_an_obstacle_face_is_a_wall_to_the_impact_inputs():
    """A disc moving right into the left face of a box obstacle gets the same impact inputs as from the
    right wall at the same distance: both are fixed bodies of restitution 1."""
    from gns.objects.features import obstacle_features, obstacle_pairs, wall_impact_features
    from gns.objects.geometry import body_vertices, place, wall_gaps

    shape, size, position = torch.tensor([0]), torch.full((1, 2), 0.1), torch.tensor([[0.8, 0.5]])
    velocity, spin = torch.tensor([[0.02, 0.0]]), torch.zeros(1)
    mass, moment, restitution = torch.ones(1), torch.full((1,), 0.00125), torch.full((1,), 0.7)
    vertices, rounding = body_vertices(shape, size)
    world = place(vertices, position, torch.zeros(1))
    bounds = torch.tensor([[0.0, 0.86], [0.0, 1.0]])                                  # the right wall 1 cm away
    scale = torch.tensor([0.01, 0.01, 1.0])
    wall = wall_impact_features(world, rounding, position, velocity, spin, mass, moment, restitution,
                                wall_gaps(world, rounding, bounds), scale)
    obstacles = {"obstacle_shape": torch.tensor([[1]]), "obstacle_size": torch.tensor([[[0.2, 0.6]]]),
                 "obstacle_position": torch.tensor([[[0.96, 0.5]]]), "obstacle_angle": torch.zeros(1, 1)}
    objects, flat = obstacle_pairs(torch.zeros(1, dtype=torch.long), obstacles["obstacle_shape"])
    edge = obstacle_features(obstacles, objects, flat, 3, position, torch.zeros(1), velocity, spin, world, rounding,
                             0.3, torch.tensor(0.01), torch.tensor(0.1), frame="world",
                             impact=(velocity, spin, mass, moment, restitution, scale))
    assert torch.isfinite(edge).all() and edge.shape == (1, 18 + 2 + 3)
    torch.testing.assert_close(edge[0, 15:18], wall[0])                              # dv (2), dw
    assert float(wall[0, 0]) == pytest.approx(-(1 + 0.7) * 2 * 0.5, rel=1e-5)       # meets half-way: -1.7 cm/step x 1/2
    torch.testing.assert_close(edge[0, 9:11], torch.tensor([1.0, 0.0]))              # normal towards the obstacle


def test_impact_estimate_counts_the_obstacles(make_simulator, obstacle_windows, obstacles_dataset):
    simulator = make_simulator("objects.impact=true", "objects.edge_frame=world", "objects.obstacles=true",
                               dataset=obstacles_dataset)
    state = obstacle_windows.read(0, 3, 3 + simulator.window)
    graph = simulator.build_graph(state)
    std = simulator.acceleration_normalizer.std
    pairs, obstacles = graph.edge_sets["pairs"], graph.edge_sets["obstacles"]
    expected = torch.zeros(state.num_entities, 3).index_add_(0, pairs.receivers, pairs.features[:, -3:] * std)
    start = obstacles.features.shape[1] - 2 - simulator.num_shapes - 3
    blocked = torch.zeros(state.num_entities, 3).index_add_(0, obstacles.receivers,
                                                            obstacles.features[:, start:start + 3])
    # the nodes end with the walls' impact estimate, then the nearest obstacle's gap and the obstacles' estimate
    torch.testing.assert_close(graph.nodes[:, -3:], blocked)
    nearest = torch.ones(state.num_entities).scatter_reduce(0, obstacles.receivers, obstacles.features[:, 3], "amin")
    torch.testing.assert_close(graph.nodes[:, -4], nearest)
    torch.testing.assert_close(simulator.impact_estimate(state), expected + (blocked + graph.nodes[:, -7:-4]) * std,
                               rtol=1e-5, atol=1e-9)
