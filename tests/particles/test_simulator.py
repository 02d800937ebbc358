import dataclasses

import pytest
import torch

from gns.config import ModelConfig, load_config
from gns.data import load_metadata, open_split
from gns.errors import GnsInputError
from gns.geometry import as_bounds
from gns.particles.features import wall_distances
from gns.particles.simulator import ParticleSimulator
from gns.particles.state import ParticleState
from gns.particles.task import ParticleTask
from gns.rollout import rollout
from gns.train.loop import Trainer


def systems(meta, sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    lo, hi = torch.tensor(meta.bounds).T
    out = []
    for n in sizes:
        pos = lo + (hi - lo) * torch.rand(n, 1, meta.dim, generator=g)
        pos = pos + torch.cumsum(torch.randn(n, 6, meta.dim, generator=g) * 1e-3, dim=1)
        out.append(ParticleState(pos, torch.randint(0, 9, (n,), generator=g), torch.tensor([n])))
    return out


def test_batched_equals_unbatched_with_neighbour_search(bouncing_dataset, lj3d_dataset):
    for root in (bouncing_dataset, lj3d_dataset):
        meta = load_metadata(root)
        torch.manual_seed(0)
        sim = ParticleSimulator(ModelConfig(latent_size=16, message_passing_steps=2), meta, 1e-4)
        parts = systems(meta, [1, 17, 3, 40])             # includes a lone particle
        together = sim(ParticleState.concat(parts))
        apart = torch.cat([sim(p) for p in parts])
        assert torch.allclose(together, apart, atol=1e-5)
        # systems in a batch never exchange messages: moving one leaves the others unchanged
        moved = [parts[0], parts[1].with_position(parts[1].position + 0.01), parts[2], parts[3]]
        changed = sim(ParticleState.concat(moved))
        assert torch.allclose(changed[18:], together[18:], atol=1e-6)


def test_wall_features_are_scaled_and_clipped():
    bounds = as_bounds([[0.0, 1.0], [0.0, 2.0]])
    periodic = torch.tensor([False, True])
    x = torch.tensor([[0.05, 1.0], [0.5, 1.0], [1.2, 0.3]])
    f = wall_distances(x, bounds, periodic, radius=0.1)
    assert f.shape == (3, 2)                            # only the non-periodic dimension has walls
    assert torch.allclose(f[0], torch.tensor([0.5, 1.0]))
    assert torch.allclose(f[1], torch.tensor([1.0, 1.0]))
    assert torch.allclose(f[2], torch.tensor([1.0, -1.0]))  # outside the box: clipped at -1


def test_lagrangebench_lj3d_trains_and_rolls_out_in_periodic_box(lj3d_dataset, tmp_path):
    config = load_config(overrides=[f"dataset={lj3d_dataset}", f"out_dir={tmp_path}", "device=cpu",
                                    "model.latent_size=16", "model.message_passing_steps=2", "train.steps=30",
                                    "train.lr_init=1e-3", "train.log_every=10", "train.eval_every=30",
                                    "train.valid_windows=8", "train.valid_rollout_steps=20"])
    task = ParticleTask(config)
    trainer = Trainer(config, task, tmp_path)
    trainer.train(progress=False)
    traj = open_split(lj3d_dataset, "test", task.metadata)[0]
    pos = torch.from_numpy(traj.position)
    initial = ParticleState(pos[:6].transpose(0, 1), torch.from_numpy(traj.particle_type), torch.tensor([3]))
    pred = rollout(task.model, initial, 200)["position"]
    assert torch.isfinite(pred).all()
    assert (pred >= 0).all() and (pred < 5).all()       # wrapped into the periodic box [0, 5)^3
    # the particles of this set cross the periodic boundary; velocities stay small through the wrap
    step = pos[1:] - pos[:-1]
    assert step.abs().max() > 2.5                        # the raw data jumps by ~L at a crossing ...
    from gns.geometry import minimum_image
    assert minimum_image(step, task.model.bounds, task.model.periodic).abs().max() < 0.5  # ... not physically


def test_velocity_differences_encode_the_same_information(bouncing_dataset):
    """The "differences" encoding is an invertible linear map of the "velocities" one."""
    import dataclasses

    from gns.config import ModelConfig
    from gns.data import load_metadata, open_split
    from gns.particles.features import velocity_history
    from gns.particles.simulator import ParticleSimulator

    metadata = load_metadata(bouncing_dataset)
    plain = ParticleSimulator(ModelConfig(latent_size=8, message_passing_steps=1), metadata, 1e-4)
    diffs = ParticleSimulator(ModelConfig(latent_size=8, message_passing_steps=1, velocity_encoding="differences"),
                              metadata, 1e-4)
    with open_split(bouncing_dataset, "train", metadata) as split:
        pos = torch.from_numpy(split.read_window(0, 0, 6)).transpose(0, 1)               # (N, 6, D)
    v = velocity_history(pos, plain.bounds, plain.periodic)                               # (N, 5, D)
    a, b = plain.encode_velocities(v), diffs.encode_velocities(v)
    assert a.shape == b.shape == v.shape
    # recover the velocities from the differences encoding
    last = diffs.velocity_normalizer.denormalize(b[:, -1])
    changes = diffs.acceleration_normalizer.denormalize(b[:, :-1])                       # (N, 4, D)
    rebuilt = torch.cat([last[:, None] - changes.flip(1).cumsum(1).flip(1), last[:, None]], dim=1)
    assert torch.allclose(rebuilt, v, atol=1e-6)
    with pytest.raises(Exception, match="velocity encoding"):
        ParticleSimulator(dataclasses.replace(ModelConfig(), velocity_encoding="bogus"), metadata, 1e-4)


def test_edge_velocity_features(bouncing_dataset):
    meta = load_metadata(bouncing_dataset)
    sim = ParticleSimulator(ModelConfig(latent_size=8, message_passing_steps=1, edge_velocity=True), meta, 0.0)
    (state,) = systems(meta, [30])
    graph = sim.build_graph(state)
    edges = graph.edge_sets["neighbors"]
    d = meta.dim
    assert edges.features.shape[1] == 2 * d + 1
    v = state.position[:, -1] - state.position[:, -2]
    want = (v[edges.senders] - v[edges.receivers]) / sim.velocity_normalizer.std
    assert torch.allclose(edges.features[:, d + 1:], want, atol=1e-5)
    # the same whatever the common velocity of the particles (the node features do change)
    steps = torch.arange(state.position.shape[1], dtype=torch.float32)[None, :, None]
    drift = ParticleState(state.position + 1e-3 * steps, state.particle_type, state.n_particles)
    moved = sim.build_graph(drift).edge_sets["neighbors"]
    assert torch.equal(moved.senders, edges.senders)
    assert torch.allclose(moved.features[:, d + 1:], edges.features[:, d + 1:], atol=1e-3)   # float32 rounding of the shifted positions
    assert sim(state).shape == (30, d)


def test_near_walls_velocity_encoding(bouncing_dataset):
    meta = load_metadata(bouncing_dataset)
    sim = ParticleSimulator(ModelConfig(latent_size=8, message_passing_steps=1, velocity_encoding="near_walls",
                                        edge_velocity=True), meta, 0.0)
    (state,) = systems(meta, [40])
    last = state.position[:, -1]
    walls = wall_distances(last, sim.bounds, sim.periodic, sim.radius)
    v = state.position[:, 1:] - state.position[:, :-1]
    encoded = sim.encode_velocities(v, walls)                                             # (N, C, D)
    near = (1 - walls.min(dim=-1).values).clamp(0, 1)
    assert (near == 0).any() and (near > 0).any()                  # some particles within a radius of a wall
    assert torch.allclose(encoded[:, -1], v[:, -1] / sim.velocity_normalizer.std * near[:, None], atol=1e-6)
    assert torch.equal(encoded[near == 0, -1], torch.zeros_like(encoded[near == 0, -1]))
    changes = sim.acceleration_normalizer.normalize(v[:, 1:] - v[:, :-1])
    assert torch.allclose(encoded[:, :-1], changes, atol=1e-5)
    assert sim(state).shape == (40, meta.dim)


def test_box_position_gives_the_place_in_the_box(bouncing_dataset, lj3d_dataset):
    from gns.particles.features import box_position

    meta = load_metadata(bouncing_dataset)
    plain = ParticleSimulator(ModelConfig(latent_size=8, message_passing_steps=1), meta, 0.0)
    placed = ParticleSimulator(ModelConfig(latent_size=8, message_passing_steps=1, box_position=True), meta, 0.0)
    (state,) = systems(meta, [40])
    nodes, more = plain.build_graph(state).nodes, placed.build_graph(state).nodes
    assert more.shape[1] == nodes.shape[1] + meta.dim
    lo, hi = plain.bounds[:, 0], plain.bounds[:, 1]
    where = box_position(state.position[:, -1], plain.bounds, plain.periodic)
    torch.testing.assert_close(where, (state.position[:, -1] - lo) / (hi - lo) * 2 - 1)
    assert float(where.abs().max()) <= 1.0 and placed(state).shape == (40, meta.dim)
    # past a wall: beyond 1, not clipped
    assert float(box_position(hi[None] + 0.1 * (hi - lo), plain.bounds, plain.periodic).min()) == pytest.approx(1.2)
    periodic = load_metadata(lj3d_dataset)                        # no walls: nothing to place
    sim = ParticleSimulator(ModelConfig(latent_size=8, message_passing_steps=1, box_position=True), periodic, 0.0)
    (state,) = systems(periodic, [20])
    assert box_position(state.position[:, -1], sim.bounds, sim.periodic).shape == (20, 0)


def test_antisymmetric_decoder_conserves_the_systems_momentum(bouncing_dataset, lj3d_dataset):

    for root in (bouncing_dataset, lj3d_dataset):                 # a walled box and a periodic one
        meta = load_metadata(root)
        torch.manual_seed(0)
        sim = ParticleSimulator(ModelConfig(latent_size=16, message_passing_steps=2, decoder="antisymmetric"),
                                meta, 1e-4)
        states = systems(meta, [35, 20], seed=1)
        batch = ParticleState.concat(states)
        out = sim(batch)                                            # (N, D) normalized accelerations
        graph = sim.build_graph(batch)
        encoded, _ = sim.network.encode(graph)
        node_terms = sim.network.decoder(encoded)                   # each particle's own inputs only
        # per system, what the particles do to each other sums to zero: only the node terms remain
        for part, nodes in zip(out.split([35, 20]), node_terms.split([35, 20])):
            assert torch.allclose(part.sum(0), nodes.sum(0), atol=1e-4)
        assert (out - node_terms).abs().mean() > 1e-4
        assert torch.allclose(sim(states[1]), out[35:], atol=1e-5)   # batched equals unbatched
    with pytest.raises(GnsInputError, match="model.decoder"):
        ParticleSimulator(ModelConfig(decoder="edges"), meta, 0.0)


def test_gated_antisymmetric_decoder_gates_the_node_term_by_wall_nearness(bouncing_dataset, lj3d_dataset):
    from gns.particles.features import wall_nearness

    meta = load_metadata(bouncing_dataset)
    torch.manual_seed(0)
    sim = ParticleSimulator(ModelConfig(latent_size=16, message_passing_steps=2, decoder="gated_antisymmetric",
                                        velocity_encoding="near_walls", edge_velocity=True), meta, 1e-4)
    with torch.no_grad():
        sim.network.bias.copy_(torch.tensor([0.1, -0.6]))
    (state,) = systems(meta, [40], seed=3)
    last = state.position[:, -1]
    # far from every wall: the particles' mean acceleration is the shared one, whatever their inputs
    lo, hi = sim.bounds[:, 0], sim.bounds[:, 1]
    centre = (lo + hi) / 2
    free = (state.position - last.mean(0)) * 0.2 + centre          # the system shrunk into the box's middle
    free = ParticleState(free, state.particle_type, state.n_particles)
    assert float(wall_nearness(wall_distances(free.position[:, -1], sim.bounds, sim.periodic, sim.radius)).max()) == 0
    out = sim(free)
    assert out.std(0).min() > 1e-3
    assert torch.allclose(out.mean(0), sim.network.bias.detach(), atol=1e-5)
    # pressed against the lower wall: the gated node term carries the rest
    pressed = free.position.clone()
    pressed[..., 1] += float(lo[1]) + 0.2 * sim.radius - float(pressed[:, -1, 1].min())
    pressed = ParticleState(pressed, state.particle_type, state.n_particles)
    graph = sim.build_graph(pressed)
    assert graph.node_gate is not None and float(graph.node_gate.max()) > 0.5
    assert not torch.allclose(sim(pressed).mean(0), sim.network.bias.detach(), atol=1e-3)
    # a periodic box has no walls: no particle has a node term, momentum moves only by the shared constant
    meta = load_metadata(lj3d_dataset)
    sim = ParticleSimulator(ModelConfig(latent_size=16, message_passing_steps=2, decoder="gated_antisymmetric"),
                            meta, 1e-4)
    (state,) = systems(meta, [20], seed=1)
    assert float(sim.build_graph(state).node_gate.abs().max()) == 0
    assert torch.allclose(sim(state).mean(0), sim.network.bias.detach(), atol=1e-5)


def test_a_fixed_body_force_makes_free_water_fall_at_the_datasets_gravity(bouncing_dataset):
    """``model.body_force: gravity``: the gated decoder's shared term is the dataset's gravity, not learned, so a
    group of particles away from every wall accelerates at exactly that, whatever the weights and inputs."""
    meta = dataclasses.replace(load_metadata(bouncing_dataset), gravity=[0.0, -6.0e-5])
    torch.manual_seed(0)
    config = ModelConfig(latent_size=16, message_passing_steps=2, decoder="gated_antisymmetric", body_force="gravity",
                         velocity_encoding="near_walls", edge_velocity=True)
    sim = ParticleSimulator(config, meta, 1e-4)
    assert sim.network.bias is None and "network.bias" not in sim.state_dict()
    (state,) = systems(meta, [40], seed=3)
    centre = (sim.bounds[:, 0] + sim.bounds[:, 1]) / 2
    free = ParticleState((state.position - state.position[:, -1].mean(0)) * 0.2 + centre, state.particle_type,
                         state.n_particles)
    acceleration = sim.acceleration_normalizer.denormalize(sim(free))                    # (40, 2)
    assert acceleration.std(0).min() > 1e-7                                            # per particle, they differ
    assert torch.allclose(acceleration.mean(0), torch.tensor(meta.gravity), atol=1e-9)
    with pytest.raises(GnsInputError, match="model.body_force"):
        ParticleSimulator(dataclasses.replace(config, decoder="node"), meta, 0.0)
    with pytest.raises(GnsInputError, match="model.body_force"):
        ParticleSimulator(dataclasses.replace(config, body_force="magnetic"), meta, 0.0)
    with pytest.raises(GnsInputError, match="gravity"):
        ParticleSimulator(config, dataclasses.replace(meta, gravity=None), 0.0)


def test_mirror_average_outside_training_only(bouncing_dataset):
    """model.mirror_average_in_training False: in training mode the network runs plain (one pass), in eval mode
    (rollouts, evaluation, validation) the prediction is the average over the reflections; True: both average."""
    meta = load_metadata(bouncing_dataset)
    state = ParticleState.concat(systems(meta, [30, 25], seed=4))
    outputs = {}
    for in_training in (True, False):
        torch.manual_seed(0)
        config = ModelConfig(latent_size=16, message_passing_steps=2, velocity_encoding="near_walls",
                             edge_velocity=True, mirror_average=(0,), mirror_average_in_training=in_training)
        sim = ParticleSimulator(config, meta, 1e-4)
        with torch.no_grad():
            outputs[in_training] = {"train": sim.train()(state), "eval": sim.eval()(state)}
            sim.mirror_average(())
            outputs[in_training]["plain"] = sim(state)
    for in_training, out in outputs.items():
        assert not torch.allclose(out["plain"], out["eval"], atol=1e-5)              # averaging changes it
        assert torch.allclose(out["eval"], outputs[True]["eval"])                  # eval: averaged either way
    assert torch.allclose(outputs[True]["train"], outputs[True]["eval"])
    assert torch.allclose(outputs[False]["train"], outputs[False]["plain"])        # training: plain


def test_wall_particles_in_the_graph(bouncing_dataset, lj3d_dataset):
    from gns.graph import reverse_edges
    from gns.particles.features import wall_lattice

    meta = load_metadata(bouncing_dataset)
    config = ModelConfig(latent_size=16, message_passing_steps=2, velocity_encoding="near_walls", edge_velocity=True,
                         decoder="antisymmetric")
    plain = ParticleSimulator(config, meta, 1e-4)
    spacing = plain.radius / 2.5
    torch.manual_seed(0)
    sim = ParticleSimulator(dataclasses.replace(config, wall_spacing=spacing), meta, 1e-4)
    lattice = wall_lattice(sim.bounds, sim.periodic, spacing, sim.radius)
    assert torch.equal(sim.wall_points, lattice) and len(lattice) > 0
    # the wall particles are derived from the bounds, not saved: the state dict differs from the plain model's only
    # by the wall type's row of the type embedding
    assert set(sim.state_dict()) == set(plain.state_dict())
    assert sim.type_embedding.num_embeddings == plain.type_embedding.num_embeddings + 1
    parts = systems(meta, [30, 25], seed=3)
    # system 0 pushed against the lower wall of its first dimension
    lo = sim.bounds[:, 0]
    p0 = parts[0].position.clone()
    p0[..., 0] += float(lo[0]) + 0.3 * sim.radius - float(p0[:, -1, 0].min())
    parts[0] = ParticleState(p0, parts[0].particle_type, parts[0].n_particles)
    state = ParticleState.concat(parts)
    n = len(state.particle_type)
    graph = sim.build_graph(state)
    edges = graph.edge_sets["neighbors"]
    m = graph.num_nodes - n
    assert m > 0
    reverse_edges(edges.senders, edges.receivers, graph.num_nodes)       # symmetric, as the pair decoder needs
    assert bool((edges.receivers[1:] >= edges.receivers[:-1]).all())      # sorted by receiver, as radius_graph's
    # exactly the wall particles within one radius of a particle of the same system, each once per system
    last = state.position[:, -1]
    system = state.batch
    want = set()
    for i in range(n):
        d = torch.linalg.vector_norm(lattice - last[i], dim=-1)
        want |= {(int(system[i]), int(k)) for k in (d <= sim.radius).nonzero()[:, 0]}
    walls = wall_distances(last, sim.bounds, sim.periodic, sim.radius)
    wall_position, wall_system, _, _ = sim._wall_neighbours(last, walls, system, edges.senders[:0], edges.receivers[:0])
    on_lattice = torch.cdist(wall_position, lattice).argmin(dim=1)                   # each wall node's lattice point
    assert torch.allclose(wall_position, lattice[on_lattice])
    assert set(zip(wall_system.tolist(), on_lattice.tolist())) == want and len(wall_position) == m
    assert not bool(((edges.senders >= n) & (edges.receivers >= n) & (edges.senders != edges.receivers)).any())
    # a wall node's features: no velocity (its velocity inputs are those of a particle at rest), the wall type
    still = plain.encode_velocities(torch.zeros(1, 5, meta.dim), torch.zeros(1, 2 * meta.dim))
    assert torch.allclose(graph.nodes[n:, :5 * meta.dim], still.flatten(1).expand(m, -1), atol=1e-6)
    assert torch.allclose(graph.nodes[n:, -16:], sim.type_embedding.weight[-1].expand(m, -1))
    # the relative velocity on a particle's wall edges is its own velocity, reversed
    v = state.position[:, -1] - state.position[:, -2]
    into = (edges.senders >= n) & (edges.receivers < n)
    d = meta.dim
    assert torch.allclose(edges.features[into, d + 1:], -v[edges.receivers[into]] / sim.velocity_normalizer.std,
                          atol=1e-5)
    # one output per particle; systems still independent (moving system 1 leaves system 0's outputs alone)
    out = sim(state)
    assert out.shape == (n, d)
    moved = ParticleState.concat([parts[0], parts[1].with_position(parts[1].position + 0.01)])
    assert torch.allclose(sim(moved)[:30], out[:30], atol=1e-6)
    assert torch.allclose(sim(parts[0]), out[:30], atol=1e-5)
    # a periodic box has no walls, hence no wall particles
    lj = load_metadata(lj3d_dataset)
    sim = ParticleSimulator(dataclasses.replace(config, wall_spacing=0.1), lj, 1e-4)
    (state,) = systems(lj, [20], seed=1)
    assert sim.build_graph(state).num_nodes == 20
    with pytest.raises(GnsInputError, match="spacing"):
        ParticleSimulator(dataclasses.replace(config, wall_spacing=-0.01), meta, 1e-4)


def test_mirror_average_makes_the_model_mirror_equivariant(bouncing_dataset, lj3d_dataset):
    """model.mirror_average: the predicted acceleration of a reflected state is the reflection of the state's (the
    plain network's is not), it is the mean of the network's passes over the reflected copies, it may be switched
    on for a trained model, and dimensions that are not the data's or that gravity points along are refused."""
    for root, dims, wall_spacing in ((bouncing_dataset, (0,), 0.0), (bouncing_dataset, (0,), 0.02),
                                     (lj3d_dataset, (0, 2), 0.0)):
        meta = load_metadata(root)
        torch.manual_seed(0)
        config = ModelConfig(latent_size=16, message_passing_steps=2, velocity_encoding="near_walls",
                             edge_velocity=True, wall_spacing=wall_spacing)
        sim = ParticleSimulator(config, meta, 1e-4)
        state = ParticleState.concat(systems(meta, [30, 25], seed=4))
        every = torch.ones(2, dtype=torch.bool)

        @torch.no_grad()
        def acceleration(s):
            return sim.acceleration_normalizer.denormalize(sim(s))

        sign = torch.ones(meta.dim)
        sign[list(dims)] = -1.0
        plain, plain_mirrored = acceleration(state), acceleration(sim.mirrored(state, dims, every))
        assert not torch.allclose(plain_mirrored, plain * sign, atol=1e-5)          # a plain network is not
        sim.mirror_average(dims)
        assert sim.config.mirror_average == dims
        averaged, averaged_mirrored = acceleration(state), acceleration(sim.mirrored(state, dims, every))
        scale = float(averaged.abs().max())
        assert torch.allclose(averaged_mirrored, averaged * sign, atol=1e-4 * scale)
        for d in dims:                                    # each single reflection of the group too
            one = torch.ones(meta.dim)
            one[d] = -1.0
            assert torch.allclose(acceleration(sim.mirrored(state, (d,), every)), averaged * one, atol=1e-4 * scale)
        if len(dims) == 1:                                # the mean of the two passes, by hand
            assert torch.allclose(averaged, (plain + plain_mirrored * sign) / 2, atol=1e-4 * scale)
        sim.mirror_average(())
        assert torch.allclose(acceleration(state), plain)
    meta = load_metadata(bouncing_dataset)
    for dims in ((0, 0), (2,), (1,)):                      # repeated, not a dimension, along gravity
        with pytest.raises(GnsInputError, match="model.mirror_average"):
            ParticleSimulator(ModelConfig(latent_size=8, message_passing_steps=1, mirror_average=dims), meta, 1e-4)
        with pytest.raises(GnsInputError, match="model.mirror_average"):
            ParticleSimulator(ModelConfig(latent_size=8, message_passing_steps=1), meta, 1e-4).mirror_average(dims)


def test_wall_noise_std_raises_the_training_noise_near_walls_only(bouncing_dataset):
    """``train.wall_noise_std``: a particle at a wall gets the wall std on its last velocity, one farther than
    a radius from every wall ``noise_std``, one half a radius away half of each. Without it every particle gets
    ``noise_std``."""
    meta = load_metadata(bouncing_dataset)
    lo, hi = torch.tensor(meta.bounds).T
    cfg = ModelConfig(latent_size=8, message_passing_steps=1, radius=0.1)
    sim = ParticleSimulator(cfg, meta, 1e-4, wall_noise_std=1e-2)
    n = 20000
    centre = (lo + hi) / 2
    at_wall = centre.clone()
    at_wall[1] = lo[1]                                             # on the floor
    half = centre.clone()
    half[1] = lo[1] + 0.05                                         # half a radius above it
    where = torch.stack([at_wall, centre, half]).repeat_interleave(n, 0)                   # (3n, D)
    state = ParticleState(where[:, None].expand(-1, 6, -1).contiguous(), torch.zeros(3 * n, dtype=torch.long),
                          torch.tensor([3 * n]))
    noise = sim.training_noise(state, 1e-4, torch.Generator().manual_seed(0))               # (3n, 6, D)
    last_velocity = (noise[:, -1] - noise[:, -2]).reshape(3, n, -1)
    std = last_velocity.std(dim=(1, 2))
    assert torch.allclose(std, torch.tensor([1e-2, 1e-4, (1e-2 + 1e-4) / 2]), rtol=0.03)
    plain = ParticleSimulator(cfg, meta, 1e-4).training_noise(state, 1e-4, torch.Generator().manual_seed(0))
    plain_std = (plain[:, -1] - plain[:, -2]).reshape(3, n, -1).std(dim=(1, 2))
    assert torch.allclose(plain_std, torch.full((3,), 1e-4), rtol=0.03)
    with pytest.raises(GnsInputError, match="train.wall_noise_std"):
        ParticleSimulator(cfg, meta, 1e-4, wall_noise_std=-1.0)
