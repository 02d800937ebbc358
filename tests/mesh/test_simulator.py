"""MeshSimulator: graphs, integration and its inverse, oracle rollouts, prescribed nodes."""

from __future__ import annotations

import pytest
import torch

from gns.config import load_config
from gns.data.mesh import load_mesh_metadata, open_mesh_split
from gns.domains import open_split_for
from gns.errors import GnsInputError
from gns.mesh.simulator import MeshSimulator
from gns.mesh.windows import MeshWindows
from gns.rollout import rollout
from gns.train.losses import unrolled_loss


def _simulator(dataset, *overrides) -> MeshSimulator:
    config = load_config(None, ["model.latent_size=16", "model.message_passing_steps=2", *overrides])
    return MeshSimulator(config.model, config.mesh, load_mesh_metadata(dataset))


def _trajectory(simulator, dataset, split="test"):
    sampler = MeshWindows.for_simulator(simulator, open_mesh_split(dataset, split))
    return sampler.read(0, 0, sampler.num_frames(0))


def _accumulate(simulator, state):
    """Train-mode passes so the online normalizers hold statistics."""
    simulator.train()
    k = simulator.window
    for t in range(k, state.fields[simulator.target_field].shape[1]):
        window = state.window(t - k, t)
        simulator.build_graph(window)
        simulator.target(window, {f: state.fields[f][:, t] for f in simulator.predicted_fields})
    simulator.eval()


class Oracle(MeshSimulator):
    """Returns the true normalized output for the next frame (looked up by step)."""

    def set_truth(self, state):
        self.truth, self.step = state, 0

    def forward(self, state):
        k = self.window
        t = self.step + k
        self.step += 1
        nxt = {f: self.truth.fields[f][:, t] for f in self.predicted_fields}
        return self.target(state, nxt)


@pytest.mark.parametrize("history", [1, 3])
@pytest.mark.parametrize("kind", ["cloth", "flow"])
def test_oracle_rollout_reproduces_ground_truth(kind, history, cloth_dataset, flow_dataset):
    dataset = cloth_dataset if kind == "cloth" else flow_dataset
    config = load_config(None, ["model.latent_size=16", "model.message_passing_steps=1", f"mesh.history={history}"])
    simulator = Oracle(config.model, config.mesh, load_mesh_metadata(dataset))
    state = _trajectory(simulator, dataset)
    _accumulate(simulator, state)
    simulator.set_truth(state)
    k = simulator.window
    truth = {f: v[:, k:] for f, v in state.fields.items()}
    steps = truth[simulator.target_field].shape[1]
    predicted = rollout(simulator, state.window(0, k), steps, truth)
    for field in simulator.predicted_fields:
        assert torch.allclose(predicted[field], truth[field], atol=1e-5), field


@pytest.mark.parametrize("kind", ["cloth", "flow"])
def test_prescribed_nodes_follow_ground_truth(kind, cloth_dataset, flow_dataset):
    dataset = cloth_dataset if kind == "cloth" else flow_dataset
    simulator = _simulator(dataset)
    state = _trajectory(simulator, dataset)
    _accumulate(simulator, state)
    k = simulator.window
    truth = {f: v[:, k:] for f, v in state.fields.items()}
    predicted = rollout(simulator, state.window(0, k), 10, {f: v[:, :10] for f, v in truth.items()})
    simulated = simulator.is_simulated(state.node_type)
    assert (~simulated).any() and simulated.any()
    target = simulator.target_field
    assert torch.equal(predicted[target][~simulated], truth[target][~simulated, :10])
    # an untrained model does move the simulated nodes away from the truth
    assert not torch.allclose(predicted[target][simulated], truth[target][simulated, :10])


def test_integrate_inverts_target(cloth_dataset):
    simulator = _simulator(cloth_dataset)
    state = _trajectory(simulator, cloth_dataset)
    _accumulate(simulator, state)
    window = state.window(3, 5)
    nxt = {"world_pos": state.fields["world_pos"][:, 5]}
    normalized = simulator.target(window, nxt)
    assert torch.allclose(simulator.integrate(window, normalized)["world_pos"], nxt["world_pos"], atol=1e-6)


def test_graph_has_world_edges_only_when_enabled(cloth_dataset, flow_dataset):
    cloth = _simulator(cloth_dataset)
    state = _trajectory(cloth, cloth_dataset).window(0, 2)
    graph = cloth.build_graph(state)
    assert set(graph.edge_sets) == {"mesh", "world"}
    mesh = graph.edge_sets["mesh"]
    assert mesh.features.shape[1] == 2 + 1 + 3 + 1        # mesh disp + norm, world disp + norm
    world = graph.edge_sets["world"]
    mesh_pairs = set(zip(mesh.senders.tolist(), mesh.receivers.tolist()))
    assert not mesh_pairs & set(zip(world.senders.tolist(), world.receivers.tolist()))
    strained = _simulator(cloth_dataset, "mesh.strain_features=true").build_graph(state).edge_sets["mesh"]
    assert strained.features.shape[1] == 2 + 1 + 3 + 1 + 1 + 3  # and the strain, alone and along the world direction
    assert flow_has_no_strain(flow_dataset)
    without = _simulator(cloth_dataset, "mesh.world_edges=false")
    assert set(without.build_graph(state).edge_sets) == {"mesh"}
    flow = _simulator(flow_dataset)  # Eulerian: the mesh does not move, no world edges
    graph = flow.build_graph(_trajectory(flow, flow_dataset).window(0, 1))
    assert set(graph.edge_sets) == {"mesh"} and graph.edge_sets["mesh"].features.shape[1] == 3


def flow_has_no_strain(flow_dataset) -> bool:
    """An Eulerian mesh does not move: the strain setting adds nothing to it."""
    flow = _simulator(flow_dataset, "mesh.strain_features=true")
    graph = flow.build_graph(_trajectory(flow, flow_dataset).window(0, 1))
    return graph.edge_sets["mesh"].features.shape[1] == 3


def test_flow_outputs_include_pressure(flow_dataset):
    simulator = _simulator(flow_dataset)
    assert simulator.output_fields == ["pressure"] and simulator.output_size == 3
    state = _trajectory(simulator, flow_dataset).window(0, 1)
    out = simulator.predict_next(state)
    assert out["velocity"].shape[1] == 2 and out["pressure"].shape[1] == 1
    # outflow nodes are simulated, inflow and wall nodes are prescribed (MeshGraphNets' loss mask)
    types = state.node_type
    simulated = simulator.is_simulated(types)
    assert simulated[types == 5].all() and not simulated[(types == 4) | (types == 6)].any()


class Recorder(MeshSimulator):
    """Records the input fields' current frame at every forward pass."""

    def forward(self, state):
        self.seen.append({name: state.fields[name][:, -1].clone() for name in self.input_fields})
        return super().forward(state)


def test_input_fields_are_node_features(cloth_inputs_dataset):
    simulator = _simulator(cloth_inputs_dataset)
    assert simulator.input_fields == ["wind", "thickness"] and simulator.input_dims == [3, 1]
    assert simulator.node_normalizer.sum.numel() == 3 + 9 + 3 + 1
    without = _simulator(cloth_inputs_dataset, "mesh.use_inputs=false")
    assert without.input_fields == [] and without.node_normalizer.sum.numel() == 3 + 9
    state = _trajectory(simulator, cloth_inputs_dataset)
    # the static field comes repeated over the window, the dynamic one frame by frame
    thickness = state.fields["thickness"]
    assert thickness.shape[1] == state.fields["world_pos"].shape[1]
    assert torch.equal(thickness, thickness[:, :1].expand_as(thickness))
    _accumulate(simulator, state)
    window = state.window(4, 6)
    before = simulator(window)
    calm = window.with_fields({**window.fields, "wind": torch.zeros_like(window.fields["wind"])})
    assert not torch.allclose(simulator(calm), before)  # the model reads the wind
    with pytest.raises(GnsInputError, match="lacks an input field"):
        simulator(window.with_fields({"world_pos": window.fields["world_pos"]}))


def test_rollouts_and_losses_see_the_inputs_of_the_current_frame(cloth_inputs_dataset):
    config = load_config(None, ["model.latent_size=16", "model.message_passing_steps=1"])
    simulator = Recorder(config.model, config.mesh, load_mesh_metadata(cloth_inputs_dataset))
    state = _trajectory(simulator, cloth_inputs_dataset)
    _accumulate(simulator, state)
    k, wind = simulator.window, state.fields["wind"]
    simulator.seen = []
    future = {f: v[:, k:k + 6] for f, v in state.fields.items()}
    rollout(simulator, state.window(0, k), 6, future)
    for step, seen in enumerate(simulator.seen):           # step s reads frame k - 1 + s
        assert torch.equal(seen["wind"], wind[:, k - 1 + step])
    with pytest.raises(GnsInputError, match="input fields"):
        rollout(simulator, state.window(0, k), 6, {"world_pos": future["world_pos"]})
    simulator.seen = []
    simulator.train()
    unrolled_loss(simulator, state.window(3, 3 + k + 1 + 2), 2, 1e-3, 0.1)
    for j, seen in enumerate(simulator.seen):              # unroll step j reads frame 3 + k - 1 + j
        assert torch.equal(seen["wind"], wind[:, 3 + k - 1 + j])


def test_a_trained_model_opens_datasets_with_extra_fields_only(cloth_dataset, cloth_inputs_dataset, flow_dataset):
    plain, windy = _simulator(cloth_dataset), _simulator(cloth_inputs_dataset)
    split = open_split_for(plain, cloth_inputs_dataset, "test")       # the wind is there, the model ignores it
    assert "wind" in split[0].fields and len(split) == 1
    with pytest.raises(GnsInputError, match="fields/wind"):
        open_split_for(windy, cloth_dataset, "test")                   # the model reads a wind the data lacks
    with pytest.raises(GnsInputError, match="target"):
        open_split_for(plain, flow_dataset, "test")


def test_history_feeds_past_velocities_or_frames_oldest_first(cloth_dataset, flow_dataset):
    cloth = _simulator(cloth_dataset, "mesh.history=3")
    assert cloth.window == 4 and cloth.node_normalizer.sum.numel() == 3 * 3 + 9
    pos = _trajectory(cloth, cloth_dataset).window(2, 6)
    x = pos.fields["world_pos"]                                                   # (N, 4, 3)
    expected = torch.cat([x[:, 1] - x[:, 0], x[:, 2] - x[:, 1], x[:, 3] - x[:, 2]], dim=-1)
    assert torch.equal(cloth._dynamic_input(pos), expected)
    with pytest.raises(GnsInputError, match=r"\(N, >=4, 3\)"):
        cloth._dynamic_input(pos.window(1, 4))                                   # one frame short
    flow = _simulator(flow_dataset, "mesh.history=2")
    assert flow.window == 2
    state = _trajectory(flow, flow_dataset).window(0, 2)
    v = state.fields["velocity"]
    assert torch.equal(flow._dynamic_input(state), torch.cat([v[:, 0], v[:, 1]], dim=-1))
    assert _simulator(cloth_dataset).window == 2 and _simulator(flow_dataset).window == 1  # MeshGraphNets
    with pytest.raises(GnsInputError, match="mesh.history"):
        _simulator(cloth_dataset, "mesh.history=0")


class WindowRecorder(MeshSimulator):
    """Records the target field's input window at every forward pass."""

    def forward(self, state):
        self.seen.append(state.fields[self.target_field].clone())
        return super().forward(state)


def test_history_noise_is_a_random_walk_on_normal_nodes(cloth_dataset):
    config = load_config(None, ["model.latent_size=16", "model.message_passing_steps=1", "mesh.history=3"])
    simulator = WindowRecorder(config.model, config.mesh, load_mesh_metadata(cloth_dataset))
    state = _trajectory(simulator, cloth_dataset).window(5, 10)                   # window 4 + 1 target frame
    simulator.train()
    generator = torch.Generator().manual_seed(0)
    normal = simulator.is_noisy(state.node_type)
    pooled = []
    for _ in range(20):                                                            # 20 draws: a steady std
        simulator.seen = []
        unrolled_loss(simulator, state, 0, 1e-2, 0.1, generator)
        noise = simulator.seen[0] - state.fields["world_pos"][:, :4]              # (N, 4, 3)
        assert torch.equal(noise[:, 0], torch.zeros_like(noise[:, 0]))           # the oldest frame stays clean
        assert torch.equal(noise[~normal], torch.zeros_like(noise[~normal]))     # prescribed nodes stay clean
        pooled.append(noise[normal, 1:] - noise[normal, :-1])                     # (N_normal, 3, 3) velocity noise
    velocity_noise = torch.cat(pooled)
    # increments of std 1e-2 / sqrt(3) summed along the history: the last velocity's noise has std 1e-2
    assert velocity_noise[:, -1].std().item() == pytest.approx(1e-2, rel=0.1)
    assert velocity_noise[:, 0].std().item() == pytest.approx(1e-2 / 3 ** 0.5, rel=0.1)


def _largest_strain(position, state):
    """The largest edge length over rest length, over the steps of ``position`` (N, S, 3), edges between free nodes."""
    s, r = state.mesh_edges
    free = (state.node_type[s] == 0) & (state.node_type[r] == 0)
    s, r = s[free], r[free]
    rest = (state.mesh_pos[s] - state.mesh_pos[r]).norm(dim=-1)
    return float(((position[s] - position[r]).norm(dim=-1) / rest[:, None]).max())


def test_strain_limit_is_a_named_projection_of_rollouts_only(cloth_dataset, flow_dataset):
    simulator = _simulator(cloth_dataset)
    state = _trajectory(simulator, cloth_dataset)
    _accumulate(simulator, state)
    with torch.no_grad():                    # an untrained network that pushes hard: the sheet stretches
        simulator.network.decoder[-1].bias.normal_(0.0, 30.0, generator=torch.Generator().manual_seed(0))
    k = simulator.window
    controls = {f: v[:, k:k + 12] for f, v in state.fields.items()}
    assert simulator.projections == {}       # off by default
    free = rollout(simulator, state.window(0, k), 12, controls)["world_pos"]
    assert _largest_strain(free, state) > 1.5
    simulator.limit_strain(1.1, iterations=1000)
    assert simulator.mesh_config.strain_limit == 1.1
    limited = rollout(simulator, state.window(0, k), 12, controls)["world_pos"]
    assert _largest_strain(limited, state) <= 1.1 * (1 + 2e-3)
    held = ~simulator.is_simulated(state.node_type)
    assert torch.equal(limited[held], controls["world_pos"][held])
    done = simulator.projections["strain_limit"]
    assert done["limit"] == 1.1 and done["steps"] == 12 and done["node_moves"] > 0
    assert done["strain_before_max"] > 1.1 * (1 + 2e-3) >= done["strain_after_max"]
    # training does not project: a pushforward loss over a 3-step unroll is the same with the projection on and off
    truth = state.window(0, k + 4)
    limited_loss = unrolled_loss(simulator, truth, unroll=3, noise_std=0.0)
    simulator.limit_strain(None)
    assert simulator.projections == {}
    assert torch.equal(unrolled_loss(simulator, truth, unroll=3, noise_std=0.0), limited_loss)
    assert torch.equal(rollout(simulator, state.window(0, k), 12, controls)["world_pos"], free)
    flow = _simulator(flow_dataset)
    with pytest.raises(GnsInputError, match="strain"):
        flow.limit_strain(1.1)
    with pytest.raises(GnsInputError, match="strain_limit"):
        _simulator(cloth_dataset, "mesh.strain_limit=0.9")
