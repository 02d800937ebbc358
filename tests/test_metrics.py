"""Errors over horizons: per-system sums and means, the two reductions over rollouts, against direct code."""

import pytest
import torch

from gns.metrics import (at_horizons, per_system_extent, per_system_mean, per_system_sum, reduce_extra,
                         reduce_rollouts, window_factor)


def test_per_system_sums_and_means():
    values = torch.arange(12.0).reshape(6, 2)                   # 6 entities, 2 steps
    batch = torch.tensor([0, 0, 1, 1, 1, 2])
    mask = torch.tensor([True, False, True, True, False, True])
    assert per_system_sum(values, batch, mask, 3).tolist() == [[0, 1], [10, 12], [10, 11]]
    assert per_system_mean(values, batch, mask, 4).tolist() == [[0, 1], [5, 6], [10, 11], [0, 0]]


def test_reductions_against_direct_code():
    g = torch.Generator().manual_seed(0)
    small, large = torch.rand(3, 5, generator=g), torch.rand(30, 4, generator=g)   # squared errors (M, S)
    rows = [(small.sum(0).double(), 3.0), (large.sum(0).double(), 30.0)]
    table, curve = reduce_rollouts(rows, (1, 5), "per_rollout", "mse")
    assert table["1"] == pytest.approx((small[:, 0].mean() + large[:, 0].mean()).item() / 2)
    assert table["5"] == pytest.approx(small[:, 4].mean().item())          # only the longer rollout reaches 5
    assert table["full"] == pytest.approx((small.mean() + large.mean()).item() / 2)
    assert len(curve) == 4
    pooled, _ = reduce_rollouts(rows, (1,), "pooled", "rmse")
    both = torch.cat([small[:, :4], large])
    assert pooled["1"] == pytest.approx(both[:, 0].mean().sqrt().item())
    assert pooled["full"] == pytest.approx(both.mean(0).mean().sqrt().item())
    with pytest.raises(ValueError, match="reduction"):
        reduce_rollouts(rows, (1,), "median", "mse")


def test_at_horizons_skips_what_the_rollout_does_not_reach():
    table = at_horizons(torch.tensor([1.0, 4.0, 9.0]), (1, 3, 10), "rmse")
    assert table == {"1": 1.0, "3": 3.0, "full": pytest.approx((14 / 3) ** 0.5)}


def test_per_system_extent_against_direct_code():
    g = torch.Generator().manual_seed(1)
    values = torch.randn(7, 3, 2, generator=g)
    batch = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    mask = torch.tensor([True, True, False, True, True, False, False])
    lo, hi = per_system_extent(values, batch, mask, 3)
    assert torch.equal(lo[0], values[:2].amin(0)) and torch.equal(hi[1], values[3:5].amax(0))
    assert torch.isinf(lo[2]).all() and (lo[2] > 0).all() and (hi[2] < 0).all()    # nothing masked in system 2


def test_window_factor():
    truth = torch.ones(2, 120)
    predicted = truth.clone()
    predicted[0, 50:100] = 3.0        # second window of system 0: 3x too much
    predicted[1, 100:] = 0.25         # the last (short) window of system 1: 4x too little
    assert window_factor(predicted, truth, 50).tolist() == pytest.approx([3.0, 4.0])
    assert window_factor(torch.zeros(1, 10), torch.zeros(1, 10), 5).tolist() == [1.0]
    assert torch.isinf(window_factor(torch.zeros(1, 10), torch.ones(1, 10), 5)).all()


def test_extra_metrics_named_max_keep_the_worst():
    assert reduce_extra("escape_max", [0.1, 0.5, 0.2]) == 0.5
    assert reduce_extra("ke_error", [0.1, 0.5, 0.3]) == pytest.approx(0.3)
