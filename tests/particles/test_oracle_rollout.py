"""A model that outputs the true normalized acceleration must reproduce the trajectory."""

import pytest
import torch

from gns.config import ModelConfig
from gns.data import load_metadata, open_split
from gns.particles.simulator import ParticleSimulator
from gns.particles.state import ParticleState
from gns.rollout import rollout


class Oracle:
    """Stands in for the network: the exact inverse of decode + integrate for the true next step."""

    def __init__(self, simulator, truth: torch.Tensor) -> None:
        self.simulator, self.truth, self.t = simulator, truth, 0

    def __call__(self, batch: ParticleState) -> torch.Tensor:
        target = self.simulator.target_normalized_acceleration(batch.position, self.truth[self.t])
        self.t += 1
        return target


@pytest.mark.parametrize("dataset", ["bouncing_dataset", "lj3d_dataset"])
def test_oracle_rollout_reproduces_trajectory(dataset, request):
    root = request.getfixturevalue(dataset)
    meta = load_metadata(root)
    sim = ParticleSimulator(ModelConfig(latent_size=8, message_passing_steps=1), meta, noise_std=1e-4)
    traj = open_split(root, "test", meta)[0]
    pos = torch.from_numpy(traj.position)                                 # (T, N, D)
    c1 = sim.history + 1
    truth = pos[c1:]
    sim.forward = Oracle(sim, truth)                                      # replace the network
    initial = ParticleState(pos[:c1].transpose(0, 1), torch.from_numpy(traj.particle_type),
                            torch.tensor([pos.shape[1]]))
    predicted = rollout(sim, initial, truth.shape[0], {"position": truth.transpose(0, 1)})["position"]
    predicted = predicted.transpose(0, 1)                                # (T, N, D)
    err = (predicted - truth).abs()
    if bool(sim.periodic.any()):  # compare modulo the box
        size = (sim.bounds[:, 1] - sim.bounds[:, 0])
        err = torch.minimum(err, size - err)
    assert float(err.max()) < 1e-5, float(err.max())


def test_rollout_keeps_kinematic_particles_on_prescribed_path(bouncing_dataset):
    meta = load_metadata(bouncing_dataset)
    sim = ParticleSimulator(ModelConfig(latent_size=8, message_passing_steps=1), meta, noise_std=1e-4)
    traj = open_split(bouncing_dataset, "test", meta)[0]
    pos = torch.from_numpy(traj.position)
    ptype = torch.from_numpy(traj.particle_type)
    c1 = sim.history + 1
    initial = ParticleState(pos[:c1].transpose(0, 1), ptype, torch.tensor([pos.shape[1]]))
    predicted = rollout(sim, initial, 10, {"position": pos[c1:c1 + 10].transpose(0, 1)})["position"]
    predicted = predicted.transpose(0, 1)
    kin = ptype == 3
    assert torch.equal(predicted[:, kin], pos[c1:c1 + 10][:, kin])
    assert not torch.equal(predicted[:, ~kin], pos[c1:c1 + 10][:, ~kin])  # the untrained model is not exact
