import torch

from gns.geometry import minimum_image, unwrap_trajectory, wrap_positions
from gns.particles.integrate import integrate, inverse_integrate


def test_integrate_inverse_round_trip_open_box():
    bounds = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    periodic = torch.zeros(2, dtype=torch.bool)
    seq = torch.rand(40, 6, 2)
    acc = torch.randn(40, 2) * 1e-3
    nxt = integrate(seq, acc, bounds, periodic)
    assert torch.allclose(inverse_integrate(seq, nxt, bounds, periodic), acc, atol=1e-6)
    assert torch.allclose(nxt, seq[:, -1] + (seq[:, -1] - seq[:, -2]) + acc)  # semi-implicit Euler


def test_integrate_periodic_wraps_and_inverts():
    bounds = torch.tensor([[0.0, 5.0], [0.0, 5.0], [0.0, 5.0]])
    periodic = torch.tensor([True, True, False])
    # a particle moving across the upper x boundary
    seq = torch.tensor([[[4.90, 1.0, 1.0], [4.95, 1.0, 1.0], [4.99, 1.0, 1.0]]])
    acc = torch.tensor([[0.01, 0.0, 0.0]])
    nxt = integrate(seq, acc, bounds, periodic)
    assert torch.allclose(nxt, torch.tensor([[0.04, 1.0, 1.0]]), atol=1e-5)
    assert torch.allclose(inverse_integrate(seq, nxt, bounds, periodic), acc, atol=1e-5)


def test_wrap_unwrap_round_trip():
    bounds = torch.tensor([[0.0, 2.0], [0.0, 2.0]])
    periodic = torch.tensor([True, False])
    steps = torch.randn(50, 4, 2) * 0.05
    continuous = torch.cumsum(steps, 0) + 1.0
    wrapped = wrap_positions(continuous, bounds, periodic)
    assert (wrapped[..., 0] >= 0).all() and (wrapped[..., 0] < 2).all()
    assert torch.allclose(unwrap_trajectory(wrapped, bounds, periodic), continuous, atol=1e-5)
    d = minimum_image(torch.tensor([[1.9, 1.9]]), bounds, periodic)
    assert torch.allclose(d, torch.tensor([[-0.1, 1.9]]), atol=1e-6)
