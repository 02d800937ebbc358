import pytest
import torch
from torch import nn

from gns.train.averaging import WeightAverage


def test_average_follows_the_warmed_up_decay_and_restores_the_raw_weights():
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.fill_(0.0)
        layer.bias.fill_(0.0)
    average = WeightAverage(layer, decay=0.3)
    expected = torch.zeros(1, 2)
    for n, value in enumerate([1.0, 2.0, 3.0, 4.0], start=1):
        with torch.no_grad():
            layer.weight.fill_(value)
        average.update()
        d = min(0.3, (1 + n) / (10 + n))           # the warm-up (0.18, 0.25) until it reaches the decay (n >= 3)
        expected = d * expected + (1 - d) * value
    assert average.updates == 4
    with average.applied():
        assert torch.allclose(layer.weight, expected)
    assert torch.equal(layer.weight, torch.full((1, 2), 4.0))      # the raw weights are back
    state = average.averaged_state_dict()
    assert torch.allclose(state["weight"], expected)
    assert torch.equal(layer.weight, torch.full((1, 2), 4.0))


def test_load_takes_the_average_and_leaves_the_raw_weights():
    layer = nn.Linear(2, 1)
    average = WeightAverage(layer, decay=0.9)
    saved = {k: torch.full_like(v, 7.0) for k, v in layer.state_dict().items()}
    raw = {k: v.clone() for k, v in layer.state_dict().items()}
    average.load(saved, updates=12)
    assert average.updates == 12
    for k, v in layer.state_dict().items():
        assert torch.equal(v, raw[k]), k
    with average.applied():
        assert torch.equal(layer.weight, torch.full((1, 2), 7.0))


def test_decay_outside_the_unit_interval_is_refused():
    with pytest.raises(ValueError):
        WeightAverage(nn.Linear(2, 1), decay=1.0)
