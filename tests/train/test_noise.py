import math

import torch

from gns.particles.integrate import inverse_integrate
from gns.train.noise import default_noise_std, random_walk_noise

NO_BOX = (torch.tensor([[0.0, 1.0], [0.0, 1.0]]), torch.zeros(2, dtype=torch.bool))


def test_noise_shape_first_column_and_kinematic():
    pos = torch.zeros(50, 6, 2)
    kin = torch.zeros(50, dtype=torch.bool)
    kin[:10] = True
    n = random_walk_noise(pos, 1e-3, kin, torch.Generator().manual_seed(0))
    assert n.shape == pos.shape
    assert n[:, 0].abs().max() == 0
    assert n[:10].abs().max() == 0 and n[10:].abs().max() > 0


def test_random_walk_statistics():
    c, std = 5, 6.7e-4
    pos = torch.zeros(200_000, c + 1, 2)
    n = random_walk_noise(pos, std, None, torch.Generator().manual_seed(0))
    vel = n[:, 1:] - n[:, :-1]                      # (N, C, D) velocity noise
    increments = vel[:, 1:] - vel[:, :-1]
    # per-step increments have std noise_std / sqrt(C); the last velocity's noise has std noise_std
    assert math.isclose(float(vel[:, 0].std()), std / math.sqrt(c), rel_tol=0.01)
    assert math.isclose(float(increments.std()), std / math.sqrt(c), rel_tol=0.01)
    assert math.isclose(float(vel[:, -1].std()), std, rel_tol=0.01)
    for k in range(c):                              # variance grows linearly along the walk
        assert math.isclose(float(vel[:, k].var()), (k + 1) * std**2 / c, rel_tol=0.02)


def test_target_correction_removes_only_velocity_noise():
    torch.manual_seed(0)
    true = torch.cumsum(torch.randn(30, 7, 2) * 1e-3, dim=1) + 0.5   # (N, C+2, D)
    hist, nxt = true[:, :6], true[:, 6]
    noise = random_walk_noise(hist, 1e-3, None, torch.Generator().manual_seed(1))
    target = inverse_integrate(hist + noise, nxt + noise[:, -1], *NO_BOX)
    true_acc = inverse_integrate(hist, nxt, *NO_BOX)
    last_velocity_noise = noise[:, -1] - noise[:, -2]
    # the corrected target = true acceleration minus the noise on the last velocity
    assert torch.allclose(target, true_acc - last_velocity_noise, atol=1e-6)


def test_default_noise_std_reproduces_waterdrop():
    assert math.isclose(default_noise_std([1.397e-3, 1.313e-3]), 6.7e-4, rel_tol=1e-3)


class _RecordingSimulator:
    """The loss interface with identity normalization; remembers the target it was asked for."""

    window, target_field, predicted_fields = 6, "position", ("position",)

    def __init__(self, noise):
        self.noise, self.targets, self.inputs = noise, [], []

    def held(self, state):
        return torch.zeros(state.position.shape[0], dtype=torch.bool)

    def training_noise(self, state, noise_std, generator):
        return self.noise

    def __call__(self, state):
        return torch.zeros(state.position.shape[0], 2)

    def target(self, state, next_fields, mask):
        self.inputs.append(state.position)
        self.targets.append(inverse_integrate(state.position, next_fields["position"], *NO_BOX))
        return self.targets[-1]


def test_noise_correction_share_scales_the_velocity_correction():
    from gns.particles.state import ParticleState
    from gns.train.losses import unrolled_loss

    torch.manual_seed(0)
    true = torch.cumsum(torch.randn(30, 7, 2) * 1e-3, dim=1) + 0.5   # (N, C+2, D)
    noise = random_walk_noise(true[:, :6], 1e-3, None, torch.Generator().manual_seed(1))
    state = ParticleState(true, torch.zeros(30, dtype=torch.long), torch.tensor([30]))
    true_acc = inverse_integrate(true[:, :6], true[:, 6], *NO_BOX)
    last_velocity_noise = noise[:, -1] - noise[:, -2]
    for share in (1.0, 0.25, 0.0):
        simulator = _RecordingSimulator(noise)
        loss = unrolled_loss(simulator, state, 0, 1e-3, 0.0, correction=share)
        # target acceleration = true one minus `share` of the last velocity's noise
        assert torch.allclose(simulator.targets[0], true_acc - share * last_velocity_noise, atol=1e-6)
        assert math.isclose(float(loss), float((simulator.targets[0] ** 2).mean()), rel_tol=1e-5)


def test_offset_noise_keeps_the_velocities_and_asks_for_its_restored_share():
    from gns.particles.state import ParticleState
    from gns.train.losses import unrolled_loss

    torch.manual_seed(0)
    true = torch.cumsum(torch.randn(30, 7, 2) * 1e-3, dim=1) + 0.5   # (N, C+2, D)
    state = ParticleState(true, torch.zeros(30, dtype=torch.long), torch.tensor([30]))
    true_acc = inverse_integrate(true[:, :6], true[:, 6], *NO_BOX)
    for restore in (0.0, 0.3, 1.0):
        simulator = _RecordingSimulator(torch.zeros(30, 6, 2))      # no random walk: the offset alone
        generator = torch.Generator().manual_seed(2)
        unrolled_loss(simulator, state, 0, 1e-3, 0.0, generator, offset=(1e-3, restore))
        shift = torch.randn((30, 2), generator=torch.Generator().manual_seed(2)) * 1e-3
        # the input window moved as a whole (velocities unchanged) ...
        torch.testing.assert_close(simulator.inputs[0], true[:, :6] + shift[:, None])
        # ... and the target acceleration removes `restore` of the offset in one step
        torch.testing.assert_close(simulator.targets[0], true_acc - restore * shift, atol=1e-7, rtol=0)


def test_offset_noise_after_an_unroll_keeps_the_unrestored_share():
    from gns.particles.state import ParticleState
    from gns.train.losses import unrolled_loss

    torch.manual_seed(0)
    true = torch.cumsum(torch.randn(30, 9, 2) * 1e-3, dim=1) + 0.5   # (N, C+1 + 3, D): 6 inputs, 2 unrolled, 1 target
    state = ParticleState(true, torch.zeros(30, dtype=torch.long), torch.tensor([30]))
    simulator = _RecordingSimulator(torch.zeros(30, 6, 2))
    simulator.integrate = lambda s, predicted: {"position": 2 * s.position[:, -1] - s.position[:, -2]}
    unrolled_loss(simulator, state, 2, 1e-3, 0.0, torch.Generator().manual_seed(2), offset=(1e-3, 0.5))
    shift = torch.randn((30, 2), generator=torch.Generator().manual_seed(2)) * 1e-3
    # the target of the step after two unrolled ones keeps (1 - 0.5)^3 of the offset
    expected = inverse_integrate(simulator.inputs[-1], true[:, 8] + 0.125 * shift, *NO_BOX)
    torch.testing.assert_close(simulator.targets[-1], expected, atol=1e-7, rtol=0)


def test_velocity_offset_keeps_the_velocity_changes_and_asks_to_remove_the_error():
    from gns.particles.state import ParticleState
    from gns.train.losses import unrolled_loss

    torch.manual_seed(0)
    true = torch.cumsum(torch.randn(30, 7, 2) * 1e-3, dim=1) + 0.5   # (N, C+2, D)
    state = ParticleState(true, torch.zeros(30, dtype=torch.long), torch.tensor([30]))
    true_acc = inverse_integrate(true[:, :6], true[:, 6], *NO_BOX)
    for share in (1.0, 0.5):
        simulator = _RecordingSimulator(torch.zeros(30, 6, 2))      # no random walk: the velocity error alone
        unrolled_loss(simulator, state, 0, 1e-3, 0.0, torch.Generator().manual_seed(3), correction=share,
                      velocity_offset=1e-3)
        error = torch.randn((30, 2), generator=torch.Generator().manual_seed(3)) * 1e-3
        velocities = torch.diff(simulator.inputs[0], dim=1)
        true_velocities = torch.diff(true[:, :6], dim=1)
        # every input velocity is off by the particle's own error, and so the velocity changes are the true ones
        torch.testing.assert_close(velocities, true_velocities + error[:, None], atol=1e-7, rtol=0)
        torch.testing.assert_close(torch.diff(velocities, dim=1), torch.diff(true_velocities, dim=1),
                                   atol=1e-7, rtol=0)
        # the target acceleration removes `share` of the error
        torch.testing.assert_close(simulator.targets[0], true_acc - share * error, atol=1e-7, rtol=0)
