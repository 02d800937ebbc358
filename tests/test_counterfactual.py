"""Counterfactual queries: paired batched futures, the identity variant, the solvers' replays, the oracle, the CLI."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import yaml

from gns.cli import main
from gns.config import ModelConfig
from gns.counterfactual import factual_scenario, format_counterfactuals, query, run_counterfactuals, summary
from gns.data import load_metadata
from gns.domains import evaluation_for, get_domain, load_simulator, open_split_for
from gns.interventions import AddCopy, Kick, Move, Remove, Selection, SetVelocity, apply_interventions
from gns.particles.simulator import ParticleSimulator
from gns.rollout import rollout
from gns.rollout_io import read_rollouts

pytest.importorskip("taichi")

# Two blocks falling for 40 frames: a second to generate.
WATER = dict(num_train=2, num_valid=1, num_test=1, num_steps=40, block_size_range=(0.1, 0.15), min_blocks=2,
             num_workers=1, scenes_per_batch=2)
VARIANTS = {
    "remove_left": [Remove(Selection(box=((0.1, 0.5), (0.1, 0.9))))],
    "move_up": [Move(Selection(box=((0.1, 0.5), (0.1, 0.9))), [0.0, 0.05])],
    "kick": [Kick(Selection(index=tuple(range(20))), [0.0, 1.0])],
    "still": [SetVelocity(Selection(), [0.0, 0.0])],
    "copy": [AddCopy(Selection(box=((0.1, 0.9), (0.1, 0.3))), [0.0, 0.3])],
}


@pytest.fixture(scope="module")
def water(tmp_path_factory):
    from gns.solvers.water2d import Water2DConfig, generate_water2d

    root = tmp_path_factory.mktemp("water_cf")
    return generate_water2d(root / "data", Water2DConfig(**WATER), progress=False)


def _simulator(dataset) -> ParticleSimulator:
    torch.manual_seed(0)
    return ParticleSimulator(ModelConfig(latent_size=16, message_passing_steps=2), load_metadata(dataset), 1e-4).eval()


def _factual(simulator, dataset, steps=20, start=None):
    windows = evaluation_for(simulator).windows(open_split_for(simulator, dataset, "test"))
    start = simulator.window - 1 if start is None else start
    return factual_scenario(windows, 0, start, steps, simulator.window, needs_controls=False), start


def test_identity_variant_rolls_out_exactly_as_the_factual(water):
    simulator = _simulator(water)
    factual, _ = _factual(simulator, water)
    space = get_domain("particles").intervention_space(simulator, water)
    result = run_counterfactuals(simulator, factual, {"same": [], "gone": VARIANTS["remove_left"]}, 20, space)
    assert torch.equal(result.predicted["same"]["position"], result.predicted["factual"]["position"])
    assert float(result.divergence["same"]["model"]["distance"].abs().max()) == 0.0
    # the paired, batched variant equals the same state rolled out alone
    gone = result.scenarios["gone"]
    alone = rollout(simulator, gone.state, 20, gone.controls)["position"]
    assert torch.allclose(result.predicted["gone"]["position"], alone, atol=1e-5)
    assert result.predicted["gone"]["position"].shape[0] < factual.state.num_entities


class Oracle(ParticleSimulator):
    """Outputs the exact normalized acceleration that leads to ``truth`` ``(N, S, D)`` (the batch, in order)."""

    def forward(self, state):
        target = self.target_normalized_acceleration(state.position, self.truth[:, self.step])
        self.step += 1
        return target


def test_oracle_reproduces_the_solver_counterfactuals(water):
    simulator = _simulator(water)
    oracle = Oracle(simulator.config, simulator.metadata, 1e-4).eval()
    factual, start = _factual(simulator, water, steps=25)
    domain = get_domain("particles")
    space = domain.intervention_space(simulator, water)
    solver = domain.resimulator(simulator, water, "test", 0, start)
    scenarios = {"factual": factual, **{n: apply_interventions(factual, v, space, n) for n, v in VARIANTS.items()}}
    truth, notes = solver.resimulate(scenarios, 25)
    assert not notes and set(truth) == set(scenarios)
    # the solver's factual is the dataset's trajectory
    data = open_split_for(simulator, water, "test")[0].position[start + 1:start + 26]
    assert np.abs(truth["factual"]["position"].transpose(0, 1).numpy() - data).max() < 1e-6
    oracle.truth, oracle.step = torch.cat([truth[n]["position"] for n in scenarios]), 0
    result = run_counterfactuals(oracle, factual, VARIANTS, 25, space, solver=solver, baselines=False,
                                 horizons=(1, 25))
    for name in scenarios:
        assert torch.allclose(result.predicted[name]["position"], result.solver[name]["position"], atol=2e-5), name
    for name in VARIANTS:
        scores = result.scores[name]
        assert scores["counterfactual"]["model"]["full"] < 1e-9 and scores["effect"]["model"]["full"] < 1e-9
    # the interventions did change the solver's future (the effect is not zero)
    assert result.scores["kick"]["effect"]["no_effect"]["25"] > 1e-6
    copy = result.divergence["copy"]["solver"]
    assert result.scenarios["copy"].state.num_entities > factual.state.num_entities
    assert float(copy["selected_displacement"][-1]) > 1e-3                # the copies fall


def test_cloth_replay_restarts_exactly_and_says_what_it_cannot_do(tmp_path):
    from gns.solvers.cloth import ClothConfig, generate_cloth

    config = dataclasses.replace(ClothConfig.small(num_workers=1, scenes_per_batch=2), num_steps=20,
                                 obstacle_fraction=1.0, num_train=1, num_valid=1, num_test=1)
    dataset = generate_cloth(tmp_path / "cloth", config, progress=False)
    from gns.config import load_config
    from gns.mesh.simulator import MeshSimulator
    from gns.data.mesh import load_mesh_metadata

    settings = load_config(None, ["model.latent_size=8", "model.message_passing_steps=1"])
    simulator = MeshSimulator(settings.model, settings.mesh, load_mesh_metadata(dataset)).eval()
    spec = {"allow_extrapolation": True,  # one training flag: its wind is the whole training range
            "variants": {"pole_up": [{"op": "move_prescribed", "select": {"type": 3}, "offset": [0, 0, 0.1],
                                      "duration": 0.1}],
                         "sphere_away": [{"op": "move_prescribed", "select": {"type": 1}, "offset": [0, 0.5, 0],
                                          "duration": 0.1}],
                         "calm": [{"op": "set_input", "field": "wind", "scale": 0.9}],
                         "calm_corner": [{"op": "set_input", "field": "wind", "scale": 0.9, "select": {"index": [0]}}],
                         "torn": [{"op": "remove", "select": {"index": [10]}}]}}
    result = query(simulator, dataset, spec, steps=12, horizons=(1, 12), out=tmp_path / "cf.h5")
    truth = open_split_for(simulator, dataset, "test")[0].fields["world_pos"]
    start = simulator.window - 1
    factual = result.solver["factual"]["world_pos"].transpose(0, 1).numpy()
    assert np.abs(factual - truth[start + 1:start + 13]).max() < 1e-6
    assert "remove" in result.solver_notes["torn"] and "torn" not in result.solver
    assert "no select" in result.solver_notes["calm_corner"]
    assert "outside the range" in result.scenarios["calm"].warnings[0]
    for name in ("pole_up", "sphere_away", "calm"):
        assert float(result.divergence[name]["solver"]["distance"][-1]) > 1e-4, name
    records, attrs = read_rollouts(tmp_path / "cf.h5")
    assert [r.key for r in records] == result.names and attrs["simulator"] == "mesh"
    assert "solver" not in records[-1].sources and records[-1].num_entities == truth.shape[1] - 1
    assert "torn" in format_counterfactuals(result)
    # a named projection (strain limiting) changes the model's futures and says so; none by default
    assert result.projections == {} and "projection" not in format_counterfactuals(result)
    simulator.limit_strain(1.05)
    limited = query(simulator, dataset, spec, steps=12, horizons=(1, 12))
    done = limited.projections["strain_limit"]
    assert done["limit"] == 1.05 and done["steps"] == 12 and done["strain_after_max"] <= 1.05 * 1.002
    assert "projection (a named option, not the model alone): strain limit 1.05" in format_counterfactuals(limited)
    assert summary(limited)["projections"] == limited.projections and "projections" not in summary(result)


def test_counterfactual_command_writes_paired_futures_and_renders(water, tmp_path, capsys, small_config,
                                                                  train_small):
    run = tmp_path / "run"
    train_small(small_config(water, run, "train.steps=4"))
    spec = tmp_path / "what_if.yaml"
    spec.write_text(yaml.safe_dump({"variants": {"gone": [{"op": "remove", "select": {"box": [[0.1, 0.5], [0.1, 0.9]]}}],
                                                 "up": [{"op": "kick", "select": {}, "delta": [0, 0.5]}]}}))
    out = tmp_path / "cf.h5"
    assert main(["counterfactual", str(run), "--interventions", str(spec), "--steps", "15", "--out", str(out),
                 "--horizons", "1", "10", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "3 futures" in text and "re-simulated" in text and "of the effect against the solver" in text
    records, attrs = read_rollouts(out)
    assert [r.key for r in records] == ["factual", "gone", "up"]
    assert attrs["info"]["counterfactual"]["variants"]["gone"]["solver"] == "re-simulated"
    assert records[0].predicted["position"].shape[0] == 6 + 15        # the window, then the rollout
    assert main(["render", str(out), "--trajectory", "gone", "--out", str(tmp_path / "cf.gif"), "--stride", "5"]) == 0
    assert (tmp_path / "cf.gif").exists()
    # bad input: a clear error naming the file and key, before any rollout
    spec.write_text("variants:\n  a: [{op: teleport}]\n")
    assert main(["counterfactual", str(run), "--interventions", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "what_if.yaml" in err and "variants/a/0/op" in err and "teleport" in err
    spec.write_text("variants:\n  a: [{op: move, select: {index: [0]}, offset: [5, 0]}]\n")
    assert main(["counterfactual", str(run), "--interventions", str(spec), "--out", str(out)]) == 2
    assert "outside the domain's walls" in capsys.readouterr().err


def test_loaded_checkpoint_answers_the_shipped_examples(water, tmp_path, small_config, train_small):
    from pathlib import Path

    run = tmp_path / "run"
    train_small(small_config(water, run, "train.steps=2"))
    simulator, _, _ = load_simulator(run / "checkpoints" / "latest.pt")
    example = Path(__file__).parent.parent / "docs" / "interventions" / "water2d.yaml"
    result = query(simulator, water, example, steps=8, horizons=(1, 8), solver="off")
    assert result.names[0] == "factual" and len(result.names) == 7
    assert set(result.divergence["remove_left"]["model"]["occupancy"]) == {"left half", "right half", "floor layer"}
