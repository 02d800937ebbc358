"""The command line: help texts, every subcommand on tiny data, and clear errors for bad input."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from gns.cli import build_parser, main
from gns.config import MeshConfig, ModelConfig
from gns.data import load_metadata
from gns.errors import GraphTooLargeError
from gns.particles.simulator import ParticleSimulator
from gns.particles.state import ParticleState

SMALL = ["--set", "model.latent_size=16", "--set", "model.message_passing_steps=2", "--set", "train.steps=12",
         "--set", "train.log_every=6", "--set", "train.eval_every=12", "--set", "train.valid_rollout_steps=4",
         "--set", "train.valid_windows=4", "--device", "cpu"]


def test_help_lists_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "gns.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("generate", "inspect", "convert", "stats", "train", "evaluate", "rollout", "counterfactual", "plan",
                "render", "export", "figures", "demo"):
        assert cmd in out
    for cmd in ("generate", "train", "evaluate", "counterfactual", "plan", "render", "convert"):
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args([cmd, "--help"])
        assert exc.value.code == 0


def test_every_option_has_help_text():
    import argparse

    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {action.dest}" for name, parser in subcommands.choices.items() for action in parser._actions
               if not isinstance(action, argparse._HelpAction) and not action.help]
    assert not missing


def test_train_evaluate_rollout_render_pipeline(bouncing_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(bouncing_dataset), "--out", str(run), "--quiet", *SMALL]) == 0
    assert (run / "log.csv").exists() and (run / "checkpoints" / "latest.pt").exists()
    out = tmp_path / "roll.h5"
    assert main(["evaluate", str(run), "--out", str(out), "--horizons", "1", "5", "10"]) == 0
    table = capsys.readouterr().out
    assert "constant_velocity" in table and "better baseline / model" in table
    metrics = json.loads(out.with_suffix(".json").read_text())
    assert set(metrics["model"]["mse"]) == {"1", "5", "10", "full"}
    # averaged over left-right reflections at evaluation (model.mirror_average): said in the file, other figures;
    # along gravity refused
    mirrored = tmp_path / "mirrored.h5"
    assert main(["evaluate", str(run), "--out", str(mirrored), "--horizons", "1", "5", "10",
                 "--mirror-average", "0"]) == 0
    capsys.readouterr()
    averaged = json.loads(mirrored.with_suffix(".json").read_text())
    assert averaged["info"]["mirror_average"] == [0] and metrics["info"]["mirror_average"] == []
    assert averaged["model"]["mse"] != metrics["model"]["mse"]
    assert main(["evaluate", str(run), "--horizons", "1", "--mirror-average", "1"]) == 2
    assert "model.mirror_average" in capsys.readouterr().err
    # rollouts from several start times: 40 frames, window 6, horizon 10 -> starts 0, 8, 16, 24 x 2 trajectories
    assert main(["evaluate", str(run), "--horizons", "1", "5", "10", "--start-stride", "8"]) == 0
    assert "8 rollouts started every 8 frames" in capsys.readouterr().out
    npz = tmp_path / "roll.npz"
    assert main(["rollout", str(run / "checkpoints" / "latest.pt"), "--out", str(npz), "--steps", "8"]) == 0
    gif = tmp_path / "roll.gif"
    assert main(["render", str(npz), "--out", str(gif), "--dataset", str(bouncing_dataset)]) == 0
    assert gif.stat().st_size > 0
    # the README's figures of a run: its test-split evaluation, animated and plotted
    assert main(["figures", str(run), "--out", str(tmp_path / "figs")]) == 2          # not evaluated yet
    assert "rollouts_test.h5" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--out", str(run / "rollouts_test.h5"), "--start-stride", "8"]) == 0
    assert main(["figures", str(run), "--out", str(tmp_path / "figs"), "--name", "readme", "--quiet"]) == 0
    assert {p.name for p in (tmp_path / "figs").iterdir()} == {"readme_rollout.gif", "readme_errors.png"}


def test_evaluate_in_bf16(bouncing_dataset, tmp_path, capsys):
    """``gns evaluate --precision bf16``: rollouts with the network under bf16 autocast where the CPU has
    native bf16 (close to fp32's figures), a clear error naming the option where it has not."""
    from gns.nn import bf16_native

    run = tmp_path / "run"
    assert main(["train", "--dataset", str(bouncing_dataset), "--out", str(run), "--quiet", *SMALL]) == 0
    scored = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.h5"
        code = main(["evaluate", str(run), "--horizons", "1", "5", "--precision", precision, "--out", str(out)])
        if precision == "bf16" and not bf16_native("cpu"):
            assert code == 2 and "key '--precision'" in capsys.readouterr().err
            return
        assert code == 0
        scored[precision] = json.loads(out.with_suffix(".json").read_text())["model"]["mse"]
    assert scored["bf16"] != scored["fp32"]
    assert scored["bf16"]["1"] == pytest.approx(scored["fp32"]["1"], rel=0.2)


def test_inspect_stats_convert(tmp_path, capsys):
    src = tmp_path / "dm"
    shutil.copytree("tests/fixtures/deepmind_tiny", src)
    dst = tmp_path / "h5"
    assert main(["convert", str(src), str(dst)]) == 0
    assert main(["inspect", str(dst)]) == 0
    assert '"dim": 2' in capsys.readouterr().out
    assert main(["stats", str(dst), "--write"]) == 0
    assert load_metadata(dst).has_statistics()


def test_missing_test_split_is_a_clear_error(bouncing_dataset, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(bouncing_dataset, data)
    (data / "test.h5").unlink()
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(data), "--out", str(run), "--quiet", *SMALL]) == 0
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert "test.h5" in err and "train.h5" in err  # names what is missing and what exists


def test_missing_dataset_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--dataset", str(tmp_path / "nope"), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "metadata.json" in capsys.readouterr().err


def test_radius_that_would_exhaust_memory_is_refused_before_allocating(bouncing_dataset):
    meta = load_metadata(bouncing_dataset)
    sim = ParticleSimulator(ModelConfig(latent_size=8, message_passing_steps=1, radius=0.45), meta, 1e-4)
    n = 200_000  # every particle within 0.45 of most others: ~10^10 edges
    batch = ParticleState(torch.rand(n, 6, 2) * 0.8 + 0.1, torch.full((n,), 5), torch.tensor([n]))
    with pytest.raises(GraphTooLargeError, match="radius"):
        sim(batch)


def test_nan_positions_are_reported(bouncing_dataset):
    meta = load_metadata(bouncing_dataset)
    sim = ParticleSimulator(ModelConfig(latent_size=8, message_passing_steps=1), meta, 1e-4)
    pos = torch.rand(10, 6, 2)
    pos[3, -1, 0] = float("nan")
    with pytest.raises(ValueError, match="position"):
        sim(ParticleState(pos, torch.full((10,), 5), torch.tensor([10])))


@pytest.mark.parametrize("kind", ["cloth", "flow"])
def test_mesh_pipeline_train_evaluate_render_export(kind, cloth_dataset, flow_dataset, tmp_path, capsys):
    dataset = cloth_dataset if kind == "cloth" else flow_dataset
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(dataset), "--out", str(run), "--quiet", *SMALL]) == 0
    out = tmp_path / "roll.h5"
    assert main(["rollout", str(run), "--out", str(out), "--horizons", "1", "10", "20"]) == 0
    text = capsys.readouterr().out
    assert "persistence" in text and "better baseline / model" in text
    if kind == "flow":
        assert "RMSE of pressure" in text
    assert main(["evaluate", str(run), "--horizons", "1", "--mirror-average", "0"]) == 2
    assert "--mirror-average" in capsys.readouterr().err
    summary = json.loads(out.with_suffix(".json").read_text())
    assert "projections" not in summary                          # the model alone unless a projection is named
    # strain limiting (a named projection): said in the table and the summary; a cloth's only, above 1
    limited = tmp_path / "limited.h5"
    code = main(["evaluate", str(run), "--horizons", "1", "10", "--strain-limit", "1.1", "--out", str(limited)])
    captured = capsys.readouterr()
    if kind == "cloth":
        assert code == 0 and "projection (a named option, not the model alone): strain limit 1.1" in captured.out
        done = json.loads(limited.with_suffix(".json").read_text())["projections"]["strain_limit"]
        assert done["limit"] == 1.1 and done["steps"] > 0
        assert done["iterations"] == MeshConfig().strain_limit_iterations      # the current default, not a stale one
        assert main(["evaluate", str(run), "--horizons", "1", "--strain-limit", "0.9"]) == 2
        assert "mesh.strain_limit" in capsys.readouterr().err
        # the sweeps per step: set beside the limit, refused alone (strain limiting is off for this checkpoint)
        assert main(["evaluate", str(run), "--horizons", "1", "--strain-limit", "1.1", "--strain-limit-iterations",
                     "3", "--out", str(limited)]) == 0
        capsys.readouterr()
        done = json.loads(limited.with_suffix(".json").read_text())["projections"]["strain_limit"]
        assert done["iterations"] == 3 and done["iterations_max"] <= 3
        assert main(["evaluate", str(run), "--horizons", "1", "--strain-limit-iterations", "3"]) == 2
        assert "--strain-limit-iterations" in capsys.readouterr().err
        assert main(["evaluate", str(run), "--horizons", "1", "--strain-limit", "1.1",
                     "--strain-limit-iterations", "0"]) == 2
        assert "mesh.strain_limit_iterations" in capsys.readouterr().err
    else:
        assert code == 2 and "strain" in captured.err
    assert set(summary["model"]["rmse"]) == {"1", "10", "20", "full"}
    gif = tmp_path / "roll.gif"
    assert main(["render", str(out), "--out", str(gif)]) == 0 and gif.stat().st_size > 0
    assert main(["export", str(out), "--out", str(tmp_path / "vtk"), "--every", "10"]) == 0
    assert list((tmp_path / "vtk").rglob("*.vtu")) and list((tmp_path / "vtk").glob("*.pvd"))


def test_generate_param_takes_the_type_of_the_config_field(monkeypatch, tmp_path, capsys):
    import gns.solvers.water2d as water2d

    seen = {}
    monkeypatch.setattr(water2d, "generate_water2d", lambda out, config: seen.setdefault("config", config) and out)
    # "2e-3" is a string to YAML 1.1; it must still reach a float field as a float
    assert main(["generate", "water2d", "--out", str(tmp_path), "--param", "num_train=3",
                 "--param", "frame_dt=2e-3"]) == 0
    assert seen["config"].num_train == 3 and seen["config"].frame_dt == pytest.approx(2e-3)
    assert isinstance(seen["config"].frame_dt, float)
    assert main(["generate", "water2d", "--out", str(tmp_path), "--param", "num_train=many"]) == 2
    assert "num_train" in capsys.readouterr().err


def test_demo_rolls_out_a_trained_model_beside_the_one_it_trains(bouncing_dataset, tmp_path, capsys):
    """`gns demo`: train, score and render; then a second, trained model the same way, labelled as not trained now."""
    small = [a for a in SMALL if a not in ("--device", "cpu")] + ["--device", "cpu", "--stride", "10", "--quiet"]
    assert main(["train", "--dataset", str(bouncing_dataset), "--out", str(tmp_path / "long"), "--quiet", *SMALL]) == 0
    shipped = tmp_path / "water_long.pt"
    assert main(["release", str(tmp_path / "long"), "--out", str(shipped), "--made-by", "gns train (test)"]) == 0
    run = tmp_path / "demo"
    args = ["demo", "--dataset", str(bouncing_dataset), "--out", str(run), *small,
            "--set", "eval.horizons=[1, 2]", "--set", "eval.start_stride=3"]
    assert main(args + ["--pretrained", str(shipped)]) == 0
    out = capsys.readouterr().out
    assert "[4/4] the given model" in out and "made by: gns train (test)" in out
    for folder in (run, run / "pretrained"):
        assert (folder / "rollout_test.gif").stat().st_size > 0
        assert (folder / "error_vs_horizon.png").exists()
        assert json.loads((folder / "rollouts_test.json").read_text())["model"]
    # the second model is rolled out from the first frame only (the demo's time), the trained one from many starts
    assert "multistart" in json.loads((run / "rollouts_test.json").read_text())
    assert "multistart" not in json.loads((run / "pretrained" / "rollouts_test.json").read_text())
    assert main(args + ["--no-pretrained"]) == 0     # resumes the finished run; no second model this time
    out = capsys.readouterr().out
    assert "[3/3] rolling out" in out and "SHIPPED" not in out
    assert main(args + ["--pretrained", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    # a demo whose training its time budget cuts short says so, before its figures and after them
    short = ["demo", "--dataset", str(bouncing_dataset), "--out", str(tmp_path / "short"), *small,
             "--set", "eval.horizons=[1, 2]", "--set", "eval.start_stride=3", "--set", "train.time_budget_s=1e-9"]
    assert main(short + ["--no-pretrained"]) == 0
    out = capsys.readouterr().out
    assert "Rerun `gns demo` to resume" in out and "trained for 0 of" in out
    assert out.index("WARNING: training stopped") < out.index("[3/3] rolling out")


def test_train_says_when_its_time_budget_cut_it_short(bouncing_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(bouncing_dataset), "--out", str(run), "--quiet", *SMALL,
                 "--set", "train.time_budget_s=1e-9"]) == 0
    assert "WARNING: training stopped at its time budget" in capsys.readouterr().out
    assert main(["train", "--dataset", str(bouncing_dataset), "--out", str(run), "--quiet", *SMALL]) == 0
    assert "time budget" not in capsys.readouterr().out
