"""The shipped long-recipe model ``gns/pretrained/water_long.pt``: it loads, it is what its card says (the
``water_long`` preset's model and training settings, averaged over the left-right reflection), and it rolls a
block of water forward under gravity. Its accuracy lives in its card and docs/results.md, not here."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gns.pretrained import WATER_LONG
from gns.config import load_config, preset_path
from gns.domains import load_simulator
from gns.particles.state import ParticleState
from gns.rollout import rollout
from gns.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.skipif(not WATER_LONG.exists(), reason="no shipped model in this checkout")
# what a user may change without changing the recipe: where it runs and how long it may take
FREE = {"num_threads", "time_budget_s"}


def test_the_shipped_model_is_the_presets():
    state = load_checkpoint(WATER_LONG)
    assert "gns train --preset water_long" in state["made_by"] and "gns release" in state["made_by"]
    simulator, config, metadata = load_simulator(WATER_LONG, "cpu")
    preset = load_config(preset_path("water_long"))
    assert config.model == preset.model
    assert tuple(config.model.mirror_average) == (0,) == tuple(simulator.config.mirror_average)
    assert config.model.body_force == "gravity" and not simulator.training      # averaged: it predicts in eval mode
    trained, wanted = dataclasses.asdict(config.train), dataclasses.asdict(preset.train)
    assert {k: v for k, v in trained.items() if k not in FREE} == {k: v for k, v in wanted.items() if k not in FREE}
    assert metadata.dim == 2 and metadata.dt == pytest.approx(0.0025)


def test_the_shipped_model_drops_a_block_of_water():
    simulator, _, metadata = load_simulator(WATER_LONG, "cpu")
    g = torch.tensor(metadata.gravity, dtype=torch.float32)                             # (2,) per step squared
    xs, ys = torch.meshgrid(torch.arange(20) * 0.01 + 0.40, torch.arange(10) * 0.01 + 0.60, indexing="ij")
    block = torch.stack([xs.flatten(), ys.flatten()], -1)                               # (200, 2) at rest spacing
    t = torch.arange(simulator.window, dtype=torch.float32)
    window = block[:, None] + 0.5 * g * (t - t[-1])[:, None] ** 2                       # (200, W, 2) at the apex
    state = ParticleState(window, torch.full((200,), 5), torch.tensor([200]))
    path = rollout(simulator, state, 40)["position"]                                    # (200, 40, 2)
    assert torch.isfinite(path).all()
    fall = block[:, 1].mean() - path[:, -1, 1].mean()
    free_fall = -0.5 * g[1] * 40 ** 2                                                   # from rest at the last frame
    assert 0.5 * free_fall < fall < 1.5 * free_fall       # it falls at about g (truth: exactly g in the air)
    spread = path[:, -1, 0].std() / block[:, 0].std()
    assert 0.8 < spread < 1.25                            # and keeps its shape in the air
