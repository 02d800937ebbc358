"""The one rollout driver: equal to a hand-written loop, batched systems of any size equal separate rollouts."""

from __future__ import annotations

import pytest
import torch

from gns.config import ModelConfig, load_config
from gns.data import load_metadata
from gns.data.mesh import load_mesh_metadata, open_mesh_split
from gns.errors import GnsInputError
from gns.mesh.simulator import MeshSimulator
from gns.mesh.windows import MeshWindows
from gns.particles.simulator import ParticleSimulator
from gns.particles.state import ParticleState
from gns.particles.windows import ParticleWindows
from gns.rollout import rollout, rollout_many
from gns.state import State


def _particle_setup(dataset):
    torch.manual_seed(0)
    metadata = load_metadata(dataset)
    simulator = ParticleSimulator(ModelConfig(latent_size=16, message_passing_steps=2), metadata, 1e-4).eval()
    from gns.data import open_split

    windows = ParticleWindows(open_split(dataset, "test", metadata))
    return simulator, windows.read(0, 0, windows.num_frames(0))


def _mesh_setup(dataset):
    torch.manual_seed(0)
    config = load_config(None, ["model.latent_size=16", "model.message_passing_steps=2"])
    simulator = MeshSimulator(config.model, config.mesh, load_mesh_metadata(dataset))
    windows = MeshWindows.for_simulator(simulator, open_mesh_split(dataset, "test"))
    full = windows.read(0, 0, windows.num_frames(0))
    simulator.train()                          # give the online normalizers statistics
    simulator.build_graph(full.window(0, simulator.window))
    simulator.target(full.window(0, simulator.window), {f: full.fields[f][:, simulator.window]
                                                        for f in simulator.predicted_fields})
    return simulator.eval(), full


def test_particle_rollout_equals_a_hand_written_loop(bouncing_dataset):
    simulator, full = _particle_setup(bouncing_dataset)
    w, steps = simulator.window, 12
    initial, future = full.window(0, w), full.window(w, w + steps)
    got = rollout(simulator, initial, steps, future.fields)["position"]
    kinematic = simulator.is_kinematic(full.particle_type)
    position, frames = initial.position, []
    with torch.inference_mode():
        for t in range(steps):
            nxt = simulator.predict_next_position(initial.with_position(position))
            nxt = torch.where(kinematic[:, None], future.position[:, t], nxt)
            frames.append(nxt)
            position = torch.cat([position[:, 1:], nxt[:, None]], dim=1)
    assert torch.equal(got, torch.stack(frames, dim=1))


def test_mesh_rollout_equals_a_hand_written_loop(cloth_inputs_dataset):
    simulator, full = _mesh_setup(cloth_inputs_dataset)
    w, steps, target = simulator.window, 8, simulator.target_field
    initial, future = full.window(0, w), full.window(w, w + steps)
    got = rollout(simulator, initial, steps, future.fields)
    simulated = simulator.is_simulated(full.node_type)
    state, frames = initial.with_fields({k: initial.fields[k] for k in simulator.state_fields}), []
    with torch.inference_mode():
        for t in range(steps):
            nxt = simulator.predict_next(state)[target]
            nxt = torch.where(simulated[:, None], nxt, future.fields[target][:, t])
            frames.append(nxt)
            state = state.shift({target: nxt, **{f: future.fields[f][:, t] for f in simulator.input_fields}})
    assert torch.equal(got[target], torch.stack(frames, dim=1))


def _variants(full: State, w: int, steps: int, drop: torch.Tensor) -> tuple[State, dict, State, dict]:
    """The first window of ``full`` and the same with the entities of ``drop`` removed, with their controls."""
    initial, future = full.window(0, w), full.window(w, w + steps)
    smaller = initial.select(~drop)
    controls_small = {k: v[~drop] for k, v in future.fields.items()}
    return initial, future.fields, smaller, controls_small


@pytest.mark.parametrize("domain", ["particles", "cloth"])
def test_batched_variants_of_different_sizes_equal_separate_rollouts(domain, bouncing_dataset, cloth_inputs_dataset):
    if domain == "particles":
        simulator, full = _particle_setup(bouncing_dataset)
        drop = torch.zeros(full.num_entities, dtype=torch.bool)
        drop[10:17] = True                                          # seven water particles removed
    else:
        simulator, full = _mesh_setup(cloth_inputs_dataset)
        drop = torch.zeros(full.num_entities, dtype=torch.bool)
        drop[-7:] = True                                            # the far column of the sheet removed
    w, steps = simulator.window, 10
    a, controls_a, b, controls_b = _variants(full, w, steps, drop)
    assert b.num_entities == a.num_entities - 7
    separate = [rollout(simulator, a, steps, controls_a), rollout(simulator, b, steps, controls_b)]
    batch = type(a).concat([a, b, a])
    controls = {k: torch.cat([controls_a[k], controls_b[k], controls_a[k]]) for k in controls_a}
    together = rollout(simulator, batch, steps, controls)
    offsets = batch.offsets.tolist()
    chunked = rollout_many(simulator, [a, b, a], steps, [controls_a, controls_b, controls_a],
                           max_entities=a.num_entities + b.num_entities)          # two batches: (a, b), (a)
    for name in together:
        for k, want in enumerate([separate[0], separate[1], separate[0]]):
            got = together[name][offsets[k]:offsets[k + 1]]
            assert torch.allclose(got, want[name], atol=1e-5), (name, k, float((got - want[name]).abs().max()))
            assert torch.allclose(chunked[k][name], want[name], atol=1e-5), (name, k)


def test_controls_are_checked(bouncing_dataset, cloth_inputs_dataset):
    simulator, full = _mesh_setup(cloth_inputs_dataset)
    initial = full.window(0, simulator.window)
    with pytest.raises(GnsInputError, match="input fields"):
        rollout(simulator, initial, 3, {"world_pos": full.fields["world_pos"]})
    with pytest.raises(GnsInputError, match="every entity and step"):
        rollout(simulator, initial, 3, {k: v[:, :2] for k, v in full.fields.items()})
    particles, state = _particle_setup(bouncing_dataset)
    with pytest.raises(GnsInputError, match="lacks a field or frames"):
        rollout(particles, state.window(0, 2), 3)
    out = rollout(particles, ParticleState(state.position[:, :6], state.particle_type, state.n), 0)
    assert out["position"].shape == (state.num_entities, 0, 2)
