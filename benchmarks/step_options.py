"""A faster training step: bf16 autocast, torch.compile, aggregation orders and gradient checkpointing, each
side by side with the plain step, results checked against it.

Four parts (``--parts``, default all):

* ``variants``: one training step (the one-step loss, backward, clipping, Adam: as
  ``benchmarks/throughput.py`` takes it) and one rollout step (``predict_next_position`` under
  ``inference_mode``) of each variant of the network, on the same synthetic water-like state of
  ``N`` particles (``--particles``, the water set's density: ~18 neighbours each), for each model
  of ``--models`` (``default``: :class:`gns.config.ModelConfig`, 10 x 128; ``demo``: the demo
  preset's, 4 x 32). Variants: ``plain`` (fp32, eager), ``bf16`` (``train.precision=bf16``),
  ``compile`` (``train.compile=true``), ``compile+bf16``, and two aggregation orders patched into
  ``gns.nn.graph_net`` here only: ``segment`` (``torch.segment_reduce`` over the receivers, which
  the radius search returns sorted) and ``scatter_add`` (``scatter_add_`` with an expanded index)
  instead of ``index_add_``. Timings are interleaved medians; each variant's first calls are
  timed apart (they include the compilation); the outputs of every variant are compared with
  plain's on the same input (max |difference| over max |plain|); the compiled variants then take
  a state of another size, and the graphs torch compiled are counted before and after.
* ``profile``: the demo preset's own training step on ``datasets/water2d`` (``gns.train.loop.Trainer``
  with the preset's task): forward + loss, backward and optimizer by synchronized timers, and the
  operator shares of a ``torch.profiler`` trace (matmul, gather/scatter, ...).
* ``checkpointing``: peak memory and seconds of one training step, plain vs
  ``train.checkpoint_processor=true``, at ``--checkpoint-particles`` (default 10k and 100k), each
  in fresh processes taking turns (A B A B); a configuration whose peak, extrapolated linearly
  from the smaller size, exceeds ``--max-memory-gib`` is not run (said so in the table).

Every timing prints the other processes' CPU load meanwhile (``/proc/stat``).

    python benchmarks/step_options.py --json step_options.json
    python benchmarks/step_options.py --parts variants --models default --particles 1000
    python benchmarks/step_options.py --quick        # smoke test: tiny sizes, no compile (not for docs)
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from throughput import (BACKGROUND, Trainer, _categorize, _Timer, add_retry_options, finish_run,  # noqa: E402
                        interleaved, log, machine, peak_memory, quietest, rollout_step, start_run,
                        synthetic_batch, synthetic_metadata, table)

import gns.nn.graph_net as graph_net  # noqa: E402
from gns.config import ModelConfig, load_config, preset_path  # noqa: E402
from gns.nn import bf16_native, set_execution  # noqa: E402
from gns.particles.simulator import ParticleSimulator  # noqa: E402
from gns.train.noise import default_noise_std  # noqa: E402

VARIANTS = ("plain", "bf16", "compile", "compile+bf16", "segment", "scatter_add")
MODELS = ("default", "demo")
DEGREE = 18.0   # neighbours per particle away from walls: the water set's density (17.4 edges per particle)


# =============================================================================================
# the aggregation orders tried (patched into gns.nn.graph_net for one variant's calls only)
# =============================================================================================
def segment_sum(src: Tensor, index: Tensor, num_nodes: int) -> Tensor:
    """``(E, F)`` -> ``(N, F)`` sums over runs of equal, ascending ``index`` (``torch.segment_reduce``)."""
    lengths = torch.bincount(index, minlength=num_nodes)                                   # (N,)
    return torch.segment_reduce(src, "sum", lengths=lengths, unsafe=True)


def scatter_add_sum(src: Tensor, index: Tensor, num_nodes: int) -> Tensor:
    """``(E, F)`` -> ``(N, F)`` with ``scatter_add_`` over the index expanded to ``(E, F)``."""
    out = torch.zeros((num_nodes, src.shape[1]), dtype=src.dtype, device=src.device)
    return out.scatter_add_(0, index[:, None].expand_as(src), src)


AGGREGATIONS: dict[str, Callable[[Tensor, Tensor, int], Tensor]] = {"segment": segment_sum,
                                                                    "scatter_add": scatter_add_sum}


def with_aggregation(variant: str, fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` with ``gns.nn.graph_net.scatter_sum`` replaced by the variant's sum during each call."""
    if variant not in AGGREGATIONS:
        return fn

    def run():
        original = graph_net.scatter_sum
        graph_net.scatter_sum = AGGREGATIONS[variant]
        try:
            return fn()
        finally:
            graph_net.scatter_sum = original
    return run


# =============================================================================================
# models and variants
# =============================================================================================
def model_config(name: str) -> ModelConfig:
    """``default``: the GNS model (10 x 128); ``demo``: the demo preset's model."""
    if name == "default":
        return ModelConfig()
    if name == "demo":
        return load_config(preset_path("demo")).model
    raise SystemExit(f"unknown model {name!r} (known: {MODELS})")


def simulators(model: str, n: int, variants: list[str], device: torch.device) -> tuple[dict, object]:
    """One simulator per variant, all with the same weights, and a state of ``n`` particles."""
    md = synthetic_metadata(n, DEGREE)
    torch.manual_seed(0)
    base = ParticleSimulator(model_config(model), md, default_noise_std(md.vel_std)).to(device)
    sims = {}
    for variant in variants:
        sim = copy.deepcopy(base)
        if variant not in VARIANTS:
            raise SystemExit(f"unknown variant {variant!r} (known: {VARIANTS})")
        set_execution(sim, precision="bf16" if "bf16" in variant else "fp32", compile="compile" in variant,
                      key="--variants")
        sims[variant] = sim
    batch = synthetic_batch(n, md, base.history + 2).to(device)      # C+1 inputs + 1 target
    return sims, batch


def same_outputs(sims: dict, window, variants: list[str]) -> dict[str, float]:
    """max |output - plain's| / max |plain's| of each variant on ``window`` (eval mode, no gradients)."""
    outs = {}
    for v in variants:
        sims[v].eval()
        with torch.inference_mode():
            outs[v] = with_aggregation(v, lambda v=v: sims[v](window))()
    ref = outs["plain"]
    scale = float(ref.abs().max())
    return {v: float((o - ref).abs().max()) / scale for v, o in outs.items() if v != "plain"}


def graphs_compiled() -> int:
    from torch._dynamo.utils import counters
    return int(counters["stats"]["unique_graphs"])


def run_variants(model: str, n: int, args: argparse.Namespace, device: torch.device) -> dict:
    variants = args.variants
    sims, batch = simulators(model, n, variants, device)
    window = batch.with_position(batch.position[:, 1:])
    edges = int(sims["plain"].build_graph(window).edge_sets["neighbors"].senders.numel())
    fns, first_calls = {}, {}
    for v in variants:
        trainer = Trainer(sims[v], batch, device)
        for mode, fn in (("train", trainer.step), ("rollout", rollout_step(sims[v], window))):
            fn = with_aggregation(v, fn)
            t0 = time.perf_counter()
            fn()                                  # the first call: compiles the compiled variants
            first_calls[f"{mode}/{v}"] = time.perf_counter() - t0
            fns[f"{mode}/{v}"] = fn
    diffs = same_outputs(sims, window, variants)
    log(f"timing {model} model, N={n}: {', '.join(fns)}")
    timing = interleaved(fns, device, args.repeats, args.target_seconds, args.max_background, args.retries,
                         args.retry_budget)
    result = {"n": n, "edges": edges, "timing": timing, "first_call_s": first_calls, "max_rel_diff": diffs}
    compiled = [v for v in variants if "compile" in v]
    if compiled:   # another size through the compiled networks: does it recompile?
        md2 = synthetic_metadata(int(n * 1.37), DEGREE)
        other = synthetic_batch(int(n * 1.37), md2, sims["plain"].history + 2, seed=3).to(device)
        before = graphs_compiled()
        calls = {}
        for v in compiled:
            t0 = time.perf_counter()
            Trainer(sims[v], other, device).step()
            rollout_step(sims[v], other.with_position(other.position[:, 1:]))()
            calls[v] = time.perf_counter() - t0
        result["other_size"] = {"n": int(n * 1.37), "graphs_compiled_before": before,
                                "graphs_compiled_after": graphs_compiled(), "seconds": calls}
    return result


def print_variants(model: str, res: dict, args: argparse.Namespace) -> None:
    t, first = res["timing"], res["first_call_s"]
    base = {mode: t[f"{mode}/plain"]["median_s"] for mode in ("train", "rollout")}
    rows = []
    for v in args.variants:
        tr, ro = t[f"train/{v}"]["median_s"], t[f"rollout/{v}"]["median_s"]
        rows.append([v, f"{tr * 1e3:.1f}", f"{base['train'] / tr:.2f}x", f"{ro * 1e3:.1f}",
                     f"{base['rollout'] / ro:.2f}x", f"{first[f'train/{v}']:.1f} / {first[f'rollout/{v}']:.1f}",
                     "-" if v == "plain" else f"{res['max_rel_diff'][v]:.1e}",
                     f"{max(t[f'train/{v}']['background_cores'] + t[f'rollout/{v}']['background_cores']):.2f}"])
    print(f"\n### {model} model, N = {res['n']} ({res['edges']} edges)\n")
    print(table(["variant", "train ms/step", "train speed-up", "rollout ms/step", "rollout speed-up",
                 "first train / rollout call (s)", "max |out - plain| / max |plain|", "others' load (cores, max)"],
                rows))
    other = res.get("other_size")
    if other:
        print(f"\nthen N = {other['n']} through the compiled networks: graphs compiled "
              f"{other['graphs_compiled_before']} -> {other['graphs_compiled_after']}; first train + rollout call "
              + ", ".join(f"{v} {s:.1f} s" for v, s in other["seconds"].items()))


# =============================================================================================
# profile of the demo preset's own training step
# =============================================================================================
def profile_demo(args: argparse.Namespace, device: torch.device) -> dict:
    from torch.profiler import ProfilerActivity, profile

    from gns.domains import domain_for_dataset
    from gns.train.loop import Trainer as LoopTrainer, step_random
    from gns.train.task import SimulatorTask

    config = load_config(preset_path("demo"), ["train.time_budget_s=0", f"dataset={args.dataset}"])
    task = SimulatorTask(config, domain_for_dataset(config.dataset), device=device)
    trainer = LoopTrainer(config, task, Path(args.scratch) / "profile_run")
    model = task.model.train()
    for _ in range(3):                                       # warm-up (allocator, Adam state)
        trainer._step(model)
    timer = _Timer(device)
    steps = args.profile_steps

    def timed_steps() -> None:
        for k in range(steps):
            random = step_random(config.train.seed, k, device)
            with timer("forward + loss (data, noise, graph, network)"):
                loss = task.training_loss(k, random)
            with timer("backward"):
                trainer.optimizer.zero_grad(set_to_none=True)
                loss.backward()
            with timer("optimizer (clip + Adam)"):
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
                trainer.optimizer.step()

    _, phase_load = quietest(timed_steps, args.max_background, args.retries)
    phases = {k: v / steps for k, v in timer.totals.items()}

    def traced() -> list:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for k in range(steps):
                trainer._step(model)
        return list(prof.key_averages())

    events, prof_load = quietest(traced, args.max_background, args.retries)
    events = [e for e in events if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    rows = [{"op": e.key, "calls": e.count // steps, "self_ms_per_step": e.self_cpu_time_total / steps / 1e3,
             "share": e.self_cpu_time_total / total} for e in sorted(events, key=lambda e: -e.self_cpu_time_total)]
    backward = sum(r["share"] for r in rows if "Backward" in r["op"] or r["op"].startswith("autograd::"))
    return {"phases_s": phases, "phase_background_cores": phase_load, "ops": rows[:15],
            "categories": _categorize(rows), "profile_background_cores": prof_load,
            "backward_node_share": backward, "model": dataclasses.asdict(config.model)}


def print_profile(res: dict) -> None:
    total = sum(res["phases_s"].values())
    print(f"\n### the demo preset's training step on water2d (synchronized timers; other processes "
          f"{res['phase_background_cores']:.2f} cores)\n")
    print(table(["phase", "ms/step", "share"],
                [[k, f"{v * 1e3:.1f}", f"{100 * v / total:.0f}%"] for k, v in res["phases_s"].items()]))
    print(f"\ntorch.profiler, self time by operator category (other processes {res['profile_background_cores']:.2f} "
          "cores):\n")
    print(table(["category", "share"], [[k, f"{100 * v:.1f}%"] for k, v in
                                        sorted(res["categories"].items(), key=lambda kv: -kv[1])]))
    print()
    print(table(["operator", "calls/step", "self ms/step", "share"],
                [[r["op"], r["calls"], f"{r['self_ms_per_step']:.2f}", f"{100 * r['share']:.1f}%"]
                 for r in res["ops"][:10]]))


# =============================================================================================
# gradient checkpointing: peak memory vs time, fresh processes
# =============================================================================================
def checkpoint_child(model: str, n: int, variant: str, device: torch.device, steps: int) -> dict:
    """In a fresh process: peak memory of the first training step, then seconds of ``steps`` more."""
    md = synthetic_metadata(n, DEGREE)
    torch.manual_seed(0)
    sim = ParticleSimulator(model_config(model), md, default_noise_std(md.vel_std)).to(device)
    set_execution(sim, checkpoint_processor=variant == "checkpoint")
    batch = synthetic_batch(n, md, sim.history + 2).to(device)
    trainer = Trainer(sim, batch, device)
    memory = peak_memory(trainer.step, device)
    mark = BACKGROUND.start()
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    seconds = (time.perf_counter() - t0) / steps
    return {"model": model, "n": n, "variant": variant, "seconds": seconds, "background_cores": BACKGROUND.cores(mark),
            **memory}


def run_checkpointing(args: argparse.Namespace) -> list[dict]:
    rows = []
    for model in args.checkpoint_models:
        known: dict[str, tuple[int, float]] = {}   # variant -> (n, peak MiB) of the last size run
        for n in sorted(args.checkpoint_particles):
            runs: dict[str, list[dict]] = {"plain": [], "checkpoint": []}
            skipped = {}
            for variant in runs:
                if variant in known:
                    n0, mib = known[variant]
                    predicted = mib * n / n0 / 1024
                    if predicted > args.max_memory_gib:
                        skipped[variant] = predicted
            for repeat in range(args.checkpoint_repeats):
                for variant in runs:
                    if variant in skipped:
                        continue
                    cmd = [sys.executable, str(Path(__file__).resolve()), "--_checkpoint-child", model, str(n), variant,
                           "--device", args.device, "--threads", str(args.threads),
                           "--checkpoint-steps", str(args.checkpoint_steps)]
                    log(f"checkpointing: {model} model, N={n}, {variant}, repeat {repeat + 1}")
                    res = subprocess.run(cmd, capture_output=True, text=True)
                    if res.returncode != 0:
                        runs[variant].append({"error": res.stderr.strip()[-800:]})
                        continue
                    runs[variant].append(json.loads(res.stdout.strip().splitlines()[-1]))
            for variant, rs in runs.items():
                ok = [r for r in rs if "error" not in r]
                row = {"model": model, "n": n, "variant": variant}
                if variant in skipped:
                    row["skipped_predicted_gib"] = skipped[variant]
                elif not ok:
                    row["error"] = rs[0]["error"] if rs else "not run"
                else:
                    row.update(seconds=statistics.median(r["seconds"] for r in ok),
                               peak_mib=statistics.median(r["peak_rss_delta_mib"] for r in ok),
                               background_cores=max(r["background_cores"] for r in ok), runs=ok)
                    known[variant] = (n, row["peak_mib"])
                rows.append(row)
    return rows


def print_checkpointing(rows: list[dict], args: argparse.Namespace) -> None:
    out = []
    for r in rows:
        plain = next((p for p in rows if p["model"] == r["model"] and p["n"] == r["n"] and p["variant"] == "plain"), {})
        if "skipped_predicted_gib" in r:
            out.append([r["model"], r["n"], r["variant"], f"not run: ~{r['skipped_predicted_gib']:.0f} GiB predicted",
                        "-", "-", "-", "-"])
        elif "error" in r:
            out.append([r["model"], r["n"], r["variant"], "error: " + r["error"].splitlines()[-1][:60], "-", "-", "-", "-"])
        else:
            mem_ratio = f"{r['peak_mib'] / plain['peak_mib']:.2f}" if "peak_mib" in plain else "-"
            time_ratio = f"{r['seconds'] / plain['seconds']:.2f}" if "seconds" in plain else "-"
            out.append([r["model"], r["n"], r["variant"], f"{r['peak_mib']:.0f}", mem_ratio, f"{r['seconds']:.2f}",
                        time_ratio, f"{r['background_cores']:.2f}"])
    print(f"\n### gradient checkpointing of the processor: one training step, fresh processes taking turns "
          f"({args.checkpoint_repeats} each, medians; limit {args.max_memory_gib:.0f} GiB)\n")
    print(table(["model", "N", "variant", "peak MiB (RSS above start)", "memory vs plain", "s/step", "time vs plain",
                 "others' load (cores, max)"], out))


# =============================================================================================
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", nargs="+", default=["variants", "profile", "checkpointing"],
                   choices=["variants", "profile", "checkpointing"])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS,
                   help="models of the variants part (default: default demo)")
    p.add_argument("--particles", type=int, nargs="+", default=[1000], help="N of the variants part (default: 1000)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--repeats", type=int, default=3, help="interleaved timed repeats (default: 3)")
    p.add_argument("--target-seconds", type=float, default=0.5, help="each repeat lasts about this long (default: 0.5)")
    add_retry_options(p, "model and size")
    p.add_argument("--dataset", default=str(REPO / "datasets" / "water2d"), help="dataset of the profile part")
    p.add_argument("--profile-steps", type=int, default=10, help="steps profiled (default: 10)")
    p.add_argument("--checkpoint-models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--checkpoint-particles", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--checkpoint-repeats", type=int, default=2, help="processes per variant, taking turns (default: 2)")
    p.add_argument("--checkpoint-steps", type=int, default=1, help="steps timed per process after the first (default: 1)")
    p.add_argument("--max-memory-gib", type=float, default=None,
                   help="skip a configuration whose predicted peak exceeds this (default: 60%% of MemAvailable)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--scratch", default="/tmp/gns_step_options", help="run directory of the profile part")
    p.add_argument("--quick", action="store_true", help="smoke test: tiny sizes, no compiled variants (not for docs)")
    p.add_argument("--json", help="write every number to this file")
    p.add_argument("--_checkpoint-child", nargs=3, metavar=("MODEL", "N", "VARIANT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.particles, args.checkpoint_particles = [300], [300, 600]
        args.variants = [v for v in args.variants if "compile" not in v]
        args.repeats, args.target_seconds, args.profile_steps, args.checkpoint_repeats = 1, 0.05, 2, 1
    if args.max_memory_gib is None:
        args.max_memory_gib = 0.6 * _mem_available_gib()
    if "plain" not in args.variants:
        args.variants.insert(0, "plain")
    return args


def _mem_available_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("MemAvailable")) / 2**20
    except (OSError, StopIteration):
        return 8.0


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = start_run(args)
    if args._checkpoint_child:
        model, n, variant = args._checkpoint_child
        print(json.dumps(checkpoint_child(model, int(n), variant, device, args.checkpoint_steps)))
        return {}
    if any("bf16" in v for v in args.variants) and not bf16_native(device):
        print(f"{device} has no native bf16: gns refuses train.precision=bf16 there; the bf16 variants are left out")
        args.variants = [v for v in args.variants if "bf16" not in v]
    t_start = time.perf_counter()
    m = machine()
    results: dict = {"machine": m, "args": {k: v for k, v in vars(args).items() if not k.startswith("_")}}
    print(f"# a faster step: {m.get('cpu', '?')} ({m['cpu_count']} cores, native bf16: "
          f"{'yes' if bf16_native(device) else 'no'}), {torch.get_num_threads()} thread(s), torch {m['torch']}, "
          f"load average {' '.join(f'{v:.2f}' for v in m.get('loadavg_start', ()))}"
          f"{', QUICK (not for figures)' if args.quick else ''}")
    if "variants" in args.parts:
        print("\n## the variants side by side (interleaved medians; speed-up = plain's time / the variant's)")
        results["variants"] = {}
        for model in args.models:
            for n in args.particles:
                res = run_variants(model, n, args, device)
                results["variants"][f"{model}/{n}"] = res
                print_variants(model, res, args)
    if "profile" in args.parts:
        log("profiling the demo preset's training step")
        results["profile"] = profile_demo(args, device)
        print_profile(results["profile"])
    if "checkpointing" in args.parts:
        results["checkpointing"] = run_checkpointing(args)
        print_checkpointing(results["checkpointing"], args)
    print()
    return finish_run(results, t_start, args.json)


if __name__ == "__main__":
    main()
