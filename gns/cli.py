"""Command-line interface: ``gns --help``.

Every subcommand is a thin wrapper over the public API, so whatever the CLI does a notebook
can do too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from gns.errors import GnsInputError
from gns.pretrained import WATER_LONG


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file overriding the defaults (see gns/config.py); it may build on a "
                                    "preset or another file with a line `extends: NAME_OR_PATH`")
    p.add_argument("--preset", help="a shipped preset: gns/configs/<name>.yaml (e.g. demo)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting, e.g. --set train.steps=2000 (repeatable)")
    p.add_argument("--dataset", help="dataset directory (overrides config 'dataset')")
    p.add_argument("--out", help="run directory (overrides config 'out_dir')")
    p.add_argument("--device", help="cpu, cuda, cuda:1 or auto (overrides config 'device')")


def _config(args: argparse.Namespace):
    from gns.config import load_config, preset_path

    base = load_config(preset_path(args.preset)) if getattr(args, "preset", None) else None
    overrides = list(args.overrides)
    for key, attr in (("dataset", "dataset"), ("out_dir", "out"), ("device", "device"),
                      ("train.backend", "backend")):
        if getattr(args, attr, None):
            overrides.append(f"{key}={getattr(args, attr)}")
    return load_config(args.config, overrides, base=base)


# --- data ----------------------------------------------------------------------------------
SOLVERS = {  # name -> (module, config class, generate function)
    "water2d": ("gns.solvers.water2d", "Water2DConfig", "generate_water2d"),
    "cloth": ("gns.solvers.cloth", "ClothConfig", "generate_cloth"),
    "flow2d": ("gns.solvers.flow2d", "Flow2DConfig", "generate_flow2d"),
    "objects2d": ("gns.solvers.objects2d", "Objects2DConfig", "generate_objects2d"),
}


def cmd_generate(args: argparse.Namespace) -> int:
    import dataclasses
    import importlib

    from gns.config import coerce_value

    module_name, config_name, generate_name = SOLVERS[args.solver]
    module = importlib.import_module(module_name)
    config_cls = getattr(module, config_name)
    base = config_cls.small() if args.small else config_cls()
    known = {f.name for f in dataclasses.fields(config_cls)}
    overrides = {}
    for item in args.param:
        if "=" not in item:
            raise GnsInputError("--param must look like KEY=VALUE", found=repr(item))
        k, v = item.split("=", 1)
        if k not in known:
            raise GnsInputError(f"unknown {config_name} field", key=k, expected=sorted(known), found=k)
        overrides[k] = coerce_value(v, getattr(base, k), f"--param {k}")
    if args.seed is not None:
        overrides["seed"] = args.seed
    config = dataclasses.replace(base, **overrides)
    t0 = time.perf_counter()
    out = getattr(module, generate_name)(args.out, config)
    print(f"wrote {out} in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from gns.data import inspect_dataset

    print(json.dumps(inspect_dataset(args.dataset), indent=2, default=str))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from gns.data import convert_dataset

    out = convert_dataset(args.src, args.dst, src_format=args.src_format, dst_format=args.dst_format)
    print(f"wrote {out}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from gns.data import compute_statistics, load_metadata, open_split, save_metadata

    meta = load_metadata(args.dataset)
    with open_split(args.dataset, args.split, meta) as split:
        stats = compute_statistics(split, meta.bounds, meta.periodic_boundary_conditions)
    print(json.dumps(stats, indent=2))
    if args.write:
        save_metadata(meta.with_statistics(stats), args.dataset)
        print(f"updated {Path(args.dataset) / 'metadata.json'}")
    return 0


# --- model ---------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from gns.domains import domain_for_dataset
    from gns.train.distributed import init_distributed
    from gns.train.loop import Trainer
    from gns.train.task import SimulatorTask

    config = _config(args)
    ranks = init_distributed(config.train.backend, config.device)   # one process unless started by torchrun
    say = print if ranks.is_main else (lambda *_: None)
    try:
        task = SimulatorTask(config, domain_for_dataset(config.dataset), device=ranks.device)
        trainer = Trainer(config, task, config.out_dir, ranks)
        if not args.no_resume and trainer.resume():
            say(f"resumed from {trainer.ckpt_dir / 'latest.pt'} at step {trainer.step}")
            if trainer.resumed_world_size != ranks.world_size:
                say(f"the checkpoint was written by {trainer.resumed_world_size} rank(s), this run has "
                    f"{ranks.world_size}: each step's global batch is now {ranks.world_size} x "
                    f"{config.train.batch_size} windows, so the run goes on from the same weights but not "
                    f"exactly as it would have on {trainer.resumed_world_size}")
        where = (f"{ranks.world_size} ranks ({ranks.backend}), rank 0 on {task.device}, global batch "
                 f"{ranks.world_size} x {config.train.batch_size}" if ranks.parallel else str(task.device))
        say(f"training on {where}; logs: {trainer.log_path} (CSV), checkpoints: {trainer.ckpt_dir}")
        result = trainer.train(progress=not args.quiet)
    finally:
        ranks.close()
    say(json.dumps(result, indent=2))
    if trainer.interrupted:
        say(f"interrupted at step {trainer.step}; checkpoint saved, rerun the same command to resume")
        return 130
    if trainer.out_of_time:
        say(trainer.budget_message())
    return 0


def _checkpoint_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint file, or a run directory (uses checkpoints/best.pt if present)")


def _resolve_checkpoint(path: str) -> Path:
    p = Path(path)
    if p.is_dir():
        for name in ("best.pt", "latest.pt"):
            if (p / "checkpoints" / name).exists():
                return p / "checkpoints" / name
        raise GnsInputError("run directory holds no checkpoints", file=p / "checkpoints")
    return p


def _mirror_average(simulator: Any, dims: Sequence[int]) -> None:
    """``--mirror-average``: switch a particle model's averaging over reflections on (checked) or off."""
    if not hasattr(simulator, "mirror_average"):
        raise GnsInputError("mirror averaging exists for particle models only", key="--mirror-average",
                            expected="a particle checkpoint", found=simulator.kind)
    simulator.mirror_average(tuple(dims))


STRAIN_HELP = ("cloth: after every step shorten mesh edges longer than this many times their rest length (e.g. 1.1: "
               "10%% stretch), moving free nodes only: a named projection that changes the model's answers and is "
               "reported with the metrics; off: none (default: the checkpoint's mesh.strain_limit, none)")
STRAIN_ITERATIONS_HELP = ("cloth, with --strain-limit: the most sweeps over the mesh's edges per step of that projection; "
                          "it stops earlier once no edge is over the limit by more than 0.1%% of its rest length, and "
                          "the metrics say how many it needed and the largest strain it left (default: the "
                          "checkpoint's mesh.strain_limit_iterations, 500 since 2026-12-07)")


def _strain_limit_arg(value: str) -> float | None:
    """``--strain-limit``: a number above 1, or ``off``."""
    if value.strip().lower() == "off":
        return None
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number above 1 (e.g. 1.1) or 'off', found {value!r}") from None


def _apply_strain_limit(simulator: Any, args: argparse.Namespace) -> None:
    """``--strain-limit`` (and its ``--strain-limit-iterations``): switch a cloth model's strain limiting (a named
    projection) on or off, or change its sweeps (checked)."""
    iterations = getattr(args, "strain_limit_iterations", None)
    if not hasattr(args, "strain_limit") and iterations is None:
        return                                 # neither given (argparse.SUPPRESS): the checkpoint's settings stay
    key = "--strain-limit" if hasattr(args, "strain_limit") else "--strain-limit-iterations"
    if not hasattr(simulator, "limit_strain"):
        raise GnsInputError("strain limiting exists for mesh models only", key=key,
                            expected="a mesh (cloth) checkpoint", found=simulator.kind)
    limit = args.strain_limit if hasattr(args, "strain_limit") else simulator.mesh_config.strain_limit
    if limit is None and iterations is not None:
        raise GnsInputError("--strain-limit-iterations sets the sweeps of strain limiting, which is off for this "
                            "model", key="--strain-limit-iterations", expected="--strain-limit LIMIT beside it",
                            found="no strain limit")
    simulator.limit_strain(limit, iterations)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from gns.domains import get_domain, load_simulator, open_split_for
    from gns.evaluate import evaluate_split, format_table
    from gns.nn.execution import set_execution

    simulator, config, _ = load_simulator(_resolve_checkpoint(args.checkpoint), args.device or "auto")
    if args.mirror_average is not None:
        _mirror_average(simulator, args.mirror_average)
    _apply_strain_limit(simulator, args)
    set_execution(simulator, precision=args.precision or config.eval.precision,
                  key="--precision" if args.precision else "eval.precision")
    split = open_split_for(simulator, args.dataset or config.dataset, args.split or config.eval.split)
    horizons = tuple(args.horizons) if args.horizons else get_domain(simulator.kind).horizons(config)
    stride = config.eval.start_stride if args.start_stride is None else args.start_stride
    summary = evaluate_split(simulator, split, horizons, max_trajectories=args.max_trajectories
                             or config.eval.max_trajectories, batch_trajectories=config.eval.batch_trajectories,
                             num_steps=args.steps, save_path=args.out, start_stride=stride,
                             on_divergence=args.on_divergence)
    print(format_table(summary))
    if args.out:
        print(f"wrote {args.out} and {Path(args.out).with_suffix('.json')}")
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    args.max_trajectories = args.max_trajectories or None
    if not args.out:
        args.out = "rollouts.h5"
    return cmd_evaluate(args)


def _rollout_domain(path: str):
    """The domain that wrote a rollout file (its ``simulator`` attribute)."""
    from gns.domains import get_domain
    from gns.rollout_io import read_rollout

    _, attrs = read_rollout(path, 0)
    return get_domain(attrs["simulator"])


def cmd_render(args: argparse.Namespace) -> int:
    out = _rollout_domain(args.rollouts).render(args.rollouts, args.out, trajectory=args.trajectory, field=args.field,
                                                stride=args.stride, fps=args.fps, dataset=args.dataset)
    print(f"wrote {out}")
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gns.viz import plot_evaluation, save_figure

    run = Path(args.run)
    rollouts = run / "rollouts_test.h5"
    summary_path = rollouts.with_suffix(".json")
    for path in (rollouts, summary_path):
        if not path.exists():
            raise GnsInputError("run has no evaluation of its test split (`gns evaluate RUN --out "
                                "RUN/rollouts_test.h5` or `gns demo` writes it)", file=path)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = args.name or run.name
    gif = _rollout_domain(str(rollouts)).render(rollouts, out / f"{name}_rollout.gif", trajectory=args.trajectory,
                                                stride=args.stride, fps=args.fps, progress=not args.quiet,
                                                dpi=args.dpi)
    figure = plot_evaluation(json.loads(summary_path.read_text()), title=args.title)
    png = save_figure(figure, out / f"{name}_errors.png", dpi=args.dpi)
    plt.close(figure)
    print(f"wrote {gif} ({gif.stat().st_size / 1e6:.2f} MB) and {png}")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from gns.train.checkpoint import release_checkpoint

    checkpoint = _resolve_checkpoint(args.checkpoint)
    model_settings = {}
    if args.mirror_average is not None:   # a setting without weights, checked on the model before it is written
        from gns.domains import load_simulator

        simulator, _, _ = load_simulator(checkpoint, "cpu")
        _mirror_average(simulator, args.mirror_average)
        model_settings["mirror_average"] = list(simulator.config.mirror_average)
    released = release_checkpoint(checkpoint, args.out, args.made_by, model_settings=model_settings)
    size = Path(args.out).stat().st_size / 1e6
    print(f"wrote {args.out} ({size:.2f} MB; {released.get('kind', 'particles')} model, step {released.get('step')})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from gns.mesh.export import export_rollout

    if _rollout_domain(args.rollouts).kind != "mesh":
        raise GnsInputError("export writes mesh files; this rollout file is not of a mesh", file=args.rollouts,
                            key="simulator", expected="mesh")
    paths = export_rollout(args.rollouts, args.out, trajectory=args.trajectory or 0, which=args.which,
                           formats=tuple(args.formats), every=args.every)
    print(f"wrote {len(paths)} files to {args.out}")
    return 0


def cmd_counterfactual(args: argparse.Namespace) -> int:
    from gns.counterfactual import format_counterfactuals, query
    from gns.domains import load_simulator

    simulator, config, _ = load_simulator(_resolve_checkpoint(args.checkpoint), args.device or "auto")
    _apply_strain_limit(simulator, args)
    result = query(simulator, args.dataset or config.dataset, args.interventions, split=args.split,
                   trajectory=args.trajectory, start=args.start, steps=args.steps, solver=args.solver,
                   horizons=tuple(args.horizons), out=args.out, progress=not args.quiet,
                   chunk_entities="auto" if args.chunk_entities is None else (args.chunk_entities or None),
                   on_divergence=args.on_divergence)
    print(format_counterfactuals(result))
    solver = f"; solver {result.timing['solver']:.1f} s" if "solver" in result.timing else ""
    print(f"{len(result.names)} futures of {result.scenarios['factual'].state.num_entities} entities rolled out as "
          f"one batch in {result.timing['rollout']:.2f} s{solver}")
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.json')}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from gns.atomic import write_json_atomic
    from gns.domains import load_simulator
    from gns.objects.plan import PlanConfig, format_planning, plan_on_split

    checkpoint = _resolve_checkpoint(args.checkpoint)
    simulator, config, _ = load_simulator(checkpoint, args.device or "auto", kind="objects")
    plan = PlanConfig().with_overrides(args.overrides, **{name: getattr(args, name) for name in (
        "method", "candidates", "iterations", "horizon", "steps", "seed")})
    result = plan_on_split(simulator, args.dataset or config.dataset, args.split, args.episodes, plan, args.planners,
                           progress=not args.quiet)
    result["checkpoint"] = str(checkpoint)
    print(format_planning(result))
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    return 0


def _evaluate_and_render(simulator: Any, config: Any, dataset: Path, out: Path, stride: int, quiet: bool,
                         title: str, start_stride: int | None = None) -> dict[str, Any]:
    """The demo's scoring of one model: roll out the test split (first frame, and multi-start every
    ``start_stride`` frames, default ``config.eval.start_stride``; 0: the first frame only), print the table,
    write ``out/rollouts_test.h5`` (and its JSON), the animation and the error-vs-horizon plot."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gns.domains import open_split_for
    from gns.evaluate import evaluate_split, format_table
    from gns.particles.viz import render_file
    from gns.viz import plot_evaluation, save_figure

    out.mkdir(parents=True, exist_ok=True)
    summary = evaluate_split(simulator, open_split_for(simulator, dataset, "test"), config.eval.horizons,
                             max_trajectories=config.eval.max_trajectories,
                             batch_trajectories=config.eval.batch_trajectories, save_path=out / "rollouts_test.h5",
                             progress=not quiet,
                             start_stride=config.eval.start_stride if start_stride is None else start_stride)
    print(format_table(summary))
    gif = render_file(out / "rollouts_test.h5", out / "rollout_test.gif", stride=stride, progress=not quiet)
    figure = plot_evaluation(summary, title=title)
    save_figure(figure, out / "error_vs_horizon.png")
    plt.close(figure)
    print(f"wrote {gif}, {out / 'error_vs_horizon.png'}, {out / 'rollouts_test.json'}")
    return summary


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate the default dataset, train briefly, evaluate on the test split and render; then the same for a
    second, trained model (``--pretrained``; by default the shipped long-recipe model, when there is one)."""
    from gns.config import load_config, preset_path
    from gns.domains import load_simulator
    from gns.particles.task import ParticleTask
    from gns.train.loop import Trainer

    t0 = time.perf_counter()
    if args.pretrained and not Path(args.pretrained).exists():
        raise GnsInputError("no such checkpoint", file=args.pretrained, key="--pretrained")
    pretrained = None if args.no_pretrained else Path(args.pretrained) if args.pretrained else \
        (WATER_LONG if WATER_LONG.exists() else None)
    stages = 3 if pretrained is None else 4
    dataset = Path(args.dataset)
    if not (dataset / "metadata.json").exists():
        from gns.solvers.water2d import Water2DConfig, generate_water2d
        print(f"[1/{stages}] generating {dataset} (Taichi MPM) ...")
        generate_water2d(dataset, Water2DConfig())
    else:
        print(f"[1/{stages}] reusing {dataset}")
    t1 = time.perf_counter()
    config = load_config(args.config or preset_path("demo"),
                         list(args.overrides) + [f"dataset={dataset}", f"out_dir={args.out}"]
                         + ([f"device={args.device}"] if args.device else []))
    print(f"[2/{stages}] training {config.train.steps} steps ({config.train.loss} loss) -> {config.out_dir}")
    task = ParticleTask(config)
    trainer = Trainer(config, task, config.out_dir)
    if trainer.resume():
        print(f"      resumed at step {trainer.step}")
    trainer.train(progress=not args.quiet)
    if trainer.interrupted:
        print(f"interrupted at step {trainer.step}; checkpoint saved, rerun `gns demo` to resume")
        return 130
    if trainer.out_of_time:   # the figures below are a shorter run's: say so before them, and again at the end
        print(trainer.budget_message(rerun="`gns demo`"))
    t2 = time.perf_counter()
    from gns.allocator import tune_allocator

    tune_allocator()   # for the rollouts (not for training: measured no faster there; gns/allocator.py)
    print(f"[3/{stages}] rolling out the test split, and rendering")
    run = Path(config.out_dir)
    simulator, _, _ = load_simulator(run / "checkpoints" / "latest.pt", config.device)
    _evaluate_and_render(simulator, config, dataset, run, args.stride, args.quiet,
                         title="held-out test split: the model trained now")
    t3 = time.perf_counter()
    if pretrained is not None:
        from gns.train.checkpoint import load_checkpoint

        made_by = load_checkpoint(pretrained).get("made_by", "unknown")
        what = "the SHIPPED long-recipe model" if pretrained == WATER_LONG else "the given model"
        print(f"[4/4] {what} {pretrained} (not trained now; made by: {made_by}), on the same test split, "
              "from the first frame only (the whole-trajectory figures; multi-start: `gns evaluate`)")
        second, _, _ = load_simulator(pretrained, config.device)
        _evaluate_and_render(second, config, dataset, run / "pretrained", args.stride, args.quiet,
                             title=f"held-out test split: {pretrained.name}, not trained now", start_stride=0)
    t4 = time.perf_counter()
    print(f"time: generate {t1 - t0:.0f} s, train {t2 - t1:.0f} s, evaluate and render {t3 - t2:.0f} s, "
          + ("" if pretrained is None else f"the second model {t4 - t3:.0f} s, ") + f"total {t4 - t0:.0f} s")
    if trainer.out_of_time:
        print(f"WARNING: the model above was trained for {trainer.step} of {config.train.steps} steps "
              "(its time budget ran out; see above)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gns", description="Learned physics simulators built from graph networks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="generate a dataset with a reference solver")
    p.add_argument("solver", choices=sorted(SOLVERS),
                   help="water2d: MPM fluid (particles); cloth: flag (mesh, Taichi); flow2d: cylinder flow (mesh, FEM); "
                        "objects2d: rigid objects in a box (pymunk)")
    p.add_argument("--out", required=True, help="output dataset directory")
    p.add_argument("--seed", type=int, help="root of every random stream of the generator (default: the config's, 0)")
    p.add_argument("--small", action="store_true", help="a tiny dataset (for tests and quick looks)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the solver's config, e.g. --param num_train=64")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("inspect", help="summarise a dataset")
    p.add_argument("dataset", help="dataset directory (with metadata.json)")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("convert", help="convert between formats (h5, DeepMind tfrecord, geoelements npz)")
    p.add_argument("src", help="source dataset directory (or a meshgraphnets TFRecord directory)")
    p.add_argument("dst", help="destination dataset directory")
    p.add_argument("--from", dest="src_format", default="auto", choices=["auto", "h5", "tfrecord", "npz"],
                   help="source format (default: detected from the files)")
    p.add_argument("--to", dest="dst_format", default="h5", choices=["h5", "tfrecord", "npz"],
                   help="destination format (default: h5, the canonical layout)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("stats", help="compute velocity/acceleration statistics (and write them with --write)")
    p.add_argument("dataset", help="particle dataset directory")
    p.add_argument("--split", default="train", help="split the statistics come from (default: train)")
    p.add_argument("--write", action="store_true", help="store them in metadata.json")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("train", help="train a learned simulator (resumes from the run directory)",
                       description="Train a learned simulator of any domain; rerun to resume. Data-parallel on "
                                   "several processes, GPUs or machines when started by torchrun, e.g. torchrun "
                                   "--standalone --nproc_per_node=2 -m gns.cli train ... (README): every rank "
                                   "draws its own train.batch_size windows, so a step's global batch is "
                                   "world_size x train.batch_size.")
    _add_config_args(p)
    p.add_argument("--backend", choices=["auto", "nccl", "gloo"],
                   help="torch.distributed backend under torchrun (overrides config 'train.backend'; auto: nccl "
                        "on GPUs, gloo on CPUs)")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    for name, func, helptext in (("evaluate", cmd_evaluate, "roll out a split and report metrics vs baselines"),
                                 ("rollout", cmd_rollout, "roll out and save predictions with ground truth")):
        p = sub.add_parser(name, help=helptext)
        _checkpoint_arg(p)
        p.add_argument("--dataset", help="dataset directory (default: the one trained on)")
        p.add_argument("--split", help="split (default: test)")
        p.add_argument("--steps", type=int, help="steps to roll out (default: whole trajectory)")
        p.add_argument("--max-trajectories", type=int, help="score only the first N trajectories of the split")
        p.add_argument("--horizons", type=int, nargs="+",
                       help="steps at which errors are reported (default: eval.horizons, mesh.horizons for meshes)")
        p.add_argument("--start-stride", type=int, help="also score rollouts started every N frames (0: off)")
        p.add_argument("--on-divergence", default="warn", choices=["warn", "stop"],
                       help="when the model diverges (non-finite values, entities leaving the domain, runaway "
                            "energy): warn (report it, go on) or stop that group of rollouts there")
        p.add_argument("--device", help="cpu, cuda, auto")
        p.add_argument("--precision", choices=["fp32", "bf16"],
                       help="the network's forward: fp32, or bf16 autocast where the device has native bf16 "
                            "(default: the checkpoint's eval.precision, fp32)")
        p.add_argument("--mirror-average", type=int, nargs="*", metavar="DIM",
                       help="particles: average each predicted step over the box's reflections along these "
                            "dimensions (e.g. 0: left-right), which makes the model mirror-symmetric there; no "
                            "dimension: off (default: the checkpoint's model.mirror_average)")
        p.add_argument("--strain-limit", type=_strain_limit_arg, default=argparse.SUPPRESS, metavar="LIMIT",
                       help=STRAIN_HELP)
        p.add_argument("--strain-limit-iterations", type=int, default=argparse.SUPPRESS, metavar="N",
                       help=STRAIN_ITERATIONS_HELP)
        p.add_argument("--out", help="save predictions + ground truth (.h5 or .npz) and metrics (.json)")
        p.set_defaults(func=func)

    p = sub.add_parser("counterfactual", help="what-if queries: roll a state out under interventions, paired with the "
                                              "factual future (and the reference solver re-run under them)")
    _checkpoint_arg(p)
    p.add_argument("--dataset", help="dataset directory (default: the one trained on)")
    p.add_argument("--split", default="test", help="split of the trajectory (default: test)")
    p.add_argument("--trajectory", default="0", help="trajectory index in the split, or its key (default: 0)")
    p.add_argument("--start", type=int, help="frame of the intervention, the last frame the model reads "
                                             "(default: the first possible, the model's window - 1)")
    p.add_argument("--interventions", required=True, help="YAML file of variants (docs/counterfactuals.md, "
                                                          "examples in docs/interventions/)")
    p.add_argument("--steps", type=int, help="steps to roll out (default: to the end of the trajectory)")
    p.add_argument("--solver", default="auto", choices=["auto", "on", "off"],
                   help="re-simulate every variant with the dataset's reference solver: auto (when it can), on "
                        "(it must), off")
    p.add_argument("--horizons", type=int, nargs="+", default=[1, 5, 10, 20, 50, 100],
                   help="steps at which errors against the solver are reported")
    p.add_argument("--device", help="cpu, cuda, auto")
    p.add_argument("--strain-limit", type=_strain_limit_arg, default=argparse.SUPPRESS, metavar="LIMIT",
                   help=STRAIN_HELP)
    p.add_argument("--strain-limit-iterations", type=int, default=argparse.SUPPRESS, metavar="N",
                   help=STRAIN_ITERATIONS_HELP)
    p.add_argument("--on-divergence", default="warn", choices=["warn", "stop"],
                   help="when the model diverges (non-finite values, entities leaving the domain, runaway energy): "
                        "warn (report and go on) or stop every future at that step")
    p.add_argument("--chunk-entities", type=int, help="the most entities rolled out in one batch (0: every future "
                                                      "in one batch; default: one batch on a GPU, 4096 on a CPU)")
    p.add_argument("--out", default="counterfactual.h5", help="paired futures (.h5 or .npz; `gns render` draws them) "
                                                              "and a .json summary beside it")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_counterfactual)

    p = sub.add_parser("plan", help="objects: model-predictive control over a trained object simulator (push a "
                                    "target object into a goal region), beside the solver as the model and random "
                                    "forces (docs/objects.md, Planning)")
    _checkpoint_arg(p)
    p.add_argument("--dataset", help="object dataset directory (default: the one trained on)")
    p.add_argument("--split", default="test", help="split whose trajectories give the start states (default: test)")
    p.add_argument("--episodes", type=int, default=50, help="start states, one per trajectory (default: 50)")
    p.add_argument("--planners", nargs="+", default=["learned", "solver", "random"],
                   choices=["learned", "solver", "random"],
                   help="learned: the trained model; solver: the reference solver as the model (the upper bound); "
                        "random: random forces (the lower bound) (default: all three)")
    p.add_argument("--method", choices=["cem", "shooting"], help="the search: the cross-entropy method or random "
                                                                 "shooting (default: PlanConfig.method)")
    p.add_argument("--candidates", type=int, help="action sequences rolled out per search iteration "
                                                          "(default: PlanConfig.candidates)")
    p.add_argument("--iterations", type=int, help="CEM iterations per plan (default: PlanConfig.iterations)")
    p.add_argument("--horizon", type=int, help="steps each candidate looks ahead (default: PlanConfig.horizon)")
    p.add_argument("--steps", type=int, help="steps an episode may take (default: PlanConfig.steps)")
    p.add_argument("--seed", type=int,
                   help="root of the goals' and the searches' random streams (default: PlanConfig.seed)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any field of gns.objects.plan.PlanConfig, e.g. --set goal_radius=0.04 "
                        "(repeatable)")
    p.add_argument("--device", help="cpu, cuda, auto (the learned model's)")
    p.add_argument("--out", default="plan.json", help="every setting, summary and episode as JSON "
                                                      "(default: plan.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("render", help="animate a saved rollout (gif, or mp4 with ffmpeg)")
    p.add_argument("rollouts", help="file written by `gns rollout` or `gns counterfactual`")
    p.add_argument("--trajectory", help="trajectory key or index (default: the first; a variant of a "
                   "counterfactual file)")
    p.add_argument("--dataset", help="particles: dataset directory, for the box bounds (default: the file's)")
    p.add_argument("--out", default="rollout.gif", help=".gif, or .mp4 with ffmpeg (default: rollout.gif)")
    p.add_argument("--stride", type=int, default=2, help="draw every N-th frame (default: 2)")
    p.add_argument("--fps", type=int, default=20, help="frames per second (default: 20)")
    p.add_argument("--field", help="mesh rollouts: the field to colour (flow: velocity or pressure)")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("figures", help="the animation and error plot of a run's test-split evaluation, small "
                       "enough to commit (the README's)")
    p.add_argument("run", help="run directory holding rollouts_test.h5 and rollouts_test.json (e.g. runs/demo)")
    p.add_argument("--out", default="docs/figures", help="output directory (default: docs/figures)")
    p.add_argument("--name", help="file name prefix: NAME_rollout.gif, NAME_errors.png (default: the run's name)")
    p.add_argument("--trajectory", help="trajectory key or index to animate (default: the first)")
    p.add_argument("--stride", type=int, default=8, help="animation: draw every N-th frame (default: 8)")
    p.add_argument("--fps", type=int, default=15, help="animation: frames per second (default: 15)")
    p.add_argument("--dpi", type=int, default=60, help="resolution of the animation and the plot (default: 60)")
    p.add_argument("--title", default="held-out test split", help="error plot title (default: held-out test split)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("release", help="write a model-only copy of a checkpoint to ship or share (weights, config, "
                                       "dataset statistics; no optimizer state)")
    _checkpoint_arg(p)
    p.add_argument("--out", required=True, help="the .pt file to write")
    p.add_argument("--made-by", required=True, metavar="COMMAND",
                   help="how the checkpoint was made (the training command), stored in the file")
    p.add_argument("--mirror-average", type=int, nargs="*", metavar="DIM",
                   help="particles: store model.mirror_average = these dimensions in the released copy, so it "
                        "averages every prediction over the box's reflections along them (no dimension: off; "
                        "default: as trained)")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("export", help="export a mesh rollout to a ParaView (.vtu/.pvd) or trimesh (.ply) sequence")
    p.add_argument("rollouts", help="mesh rollout file written by `gns rollout`")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--trajectory", help="trajectory key or index (default: the first)")
    p.add_argument("--which", default="both", choices=["predicted", "ground_truth", "both"],
                   help="the series to export (default: both)")
    p.add_argument("--formats", nargs="+", default=["vtu", "ply"], choices=["vtu", "ply"],
                   help="file formats (default: vtu ply)")
    p.add_argument("--every", type=int, default=1, help="export every n-th frame")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("demo", help="the main job: generate water2d, train briefly, evaluate, render")
    p.add_argument("--dataset", default="datasets/water2d",
                   help="the water dataset, generated when missing (default: datasets/water2d)")
    p.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    p.add_argument("--config", help="YAML overriding the demo preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting of the preset (repeatable)")
    p.add_argument("--device", help="cpu, cuda, auto (default: the preset's, auto)")
    p.add_argument("--stride", type=int, default=3, help="animation: draw every N-th frame (default: 3)")
    p.add_argument("--pretrained", metavar="CHECKPOINT",
                   help="a trained model to roll out and render beside the one trained now, into OUT/pretrained "
                        "(default: the shipped long-recipe model gns/pretrained/water_long.pt, when there is one)")
    p.add_argument("--no-pretrained", action="store_true", help="do not roll out a second model")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command not in ("train", "demo"):   # the demo's evaluation tunes it after its training
        from gns.allocator import tune_allocator

        tune_allocator()   # rollouts' large tensors reuse freed memory instead of faulting in new pages (gns/allocator.py)
    try:
        return args.func(args)
    except GnsInputError as exc:
        print(f"gns {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
