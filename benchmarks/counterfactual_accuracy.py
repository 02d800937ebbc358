"""Counterfactual error against the reference solver for the shipped models, at every horizon.

For each test trajectory of ``datasets/water2d`` (with the shipped long-recipe model
``gns/pretrained/water_long.pt``, or ``--water-checkpoint``: e.g. ``runs/demo``'s) and of ``datasets/cloth``
(with ``runs/cloth``'s, or ``--cloth-checkpoint``; ``--strain-limit`` strain-limits its rollouts, a named
projection reported with the figures: :mod:`gns.mesh.constraints`), the example queries of
``docs/interventions/`` are answered by the model, by the domain's baselines and by the solver re-run under the same
interventions (:func:`gns.counterfactual.query`). Printed per variant, averaged over the
trajectories it applies to (a selection that matches nothing on a trajectory skips it there):

* the error of the counterfactual future against the solver's (free entities);
* the error of the predicted *effect* (counterfactual minus factual, on the entities both hold)
  against the true effect, beside the ``no_effect`` baseline (nothing changes) and the baselines'
  own effects;
* the size of the true effect: the solver's mean distance between counterfactual and factual.

Errors are the domain's metric: position MSE (m^2) for water, position RMSE (m) for cloth.

    python benchmarks/counterfactual_accuracy.py                   # both domains, their test splits
    python benchmarks/counterfactual_accuracy.py --domains water --trajectories 2 --json water.json
    python benchmarks/counterfactual_accuracy.py --domains water --water-checkpoint runs/demo/checkpoints/latest.pt
    python benchmarks/counterfactual_accuracy.py --domains cloth --cloth-checkpoint RUN/checkpoints/latest.pt \
        --strain-limit 1.1
    python benchmarks/counterfactual_accuracy.py --from-json water.json     # reprint, run nothing
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from gns.counterfactual import query  # noqa: E402
from gns.domains import load_simulator, open_split_for  # noqa: E402
from gns.errors import GnsInputError  # noqa: E402
from gns.pretrained import WATER_LONG  # noqa: E402

SETUPS = {  # domain -> (dataset, run, interventions, steps (None: to the end), horizons)
    "water": ("water2d", "demo", "water2d.yaml", 100, (1, 5, 10, 20, 50, 100)),
    "cloth": ("cloth", "cloth", "cloth.yaml", None, (1, 10, 20, 50, 100, 200)),
}


def answer(simulator, dataset: Path, spec: dict, index: int, steps: int | None, horizons) -> dict:
    """The scores and the solver's effect size of every variant of ``spec`` on one trajectory; a variant
    whose selection matches nothing there is run alone and skipped (``{"skipped": reason}``)."""
    out = {}
    try:
        results = [query(simulator, dataset, spec, trajectory=index, steps=steps, horizons=horizons, solver="on")]
    except GnsInputError:
        results = []
        for name, items in spec["variants"].items():
            single = {**spec, "variants": {name: items}}
            try:
                results.append(query(simulator, dataset, single, trajectory=index, steps=steps, horizons=horizons,
                                     solver="on"))
            except GnsInputError as err:
                out[name] = {"skipped": str(err)}
    for result in results:
        for name in result.names[1:]:
            if name not in result.scores:
                out[name] = {"skipped": result.solver_notes.get(name, "not re-simulated")}
                continue
            distance = result.divergence[name]["solver"].get("distance")
            out[name] = {**result.scores[name],
                         "true_effect_distance": {str(h): float(distance[h - 1]) for h in result.horizons}
                         if distance is not None else {}}
    return out


def average(per_trajectory: list[dict], name: str) -> dict:
    rows = [t[name] for t in per_trajectory if name in t and "skipped" not in t[name]]
    if not rows:
        return {}
    out = {"trajectories": len(rows)}
    for kind in ("counterfactual", "effect"):
        out[kind] = {r: {h: float(np.mean([row[kind][r][h] for row in rows])) for h in rows[0][kind][r]}
                     for r in rows[0][kind]}
    out["true_effect_distance"] = {h: float(np.mean([row["true_effect_distance"][h] for row in rows]))
                                   for h in rows[0]["true_effect_distance"]}
    return out


def print_tables(domain: str, metric: str, averaged: dict) -> None:
    for name, entry in averaged.items():
        if not entry:
            print(f"\n### {domain} / {name}: skipped on every trajectory")
            continue
        columns = list(entry["counterfactual"]["model"])
        print(f"\n### {domain} / {name} ({entry['trajectories']} trajectories)")
        print("| " + " | ".join(["", *columns]) + " |")
        print("|" + "---|" * (len(columns) + 1))
        print("| true effect: solver's mean distance to the factual | "
              + " | ".join(f"{entry['true_effect_distance'].get(c, float('nan')):.3g}" for c in columns) + " |")
        for kind in ("counterfactual", "effect"):
            for rollout_name, table in entry[kind].items():
                label = f"{kind} {metric}: {rollout_name}"
                print(f"| {label} | " + " | ".join(f"{table[c]:.3g}" for c in columns) + " |")


def print_summary(domain: str, metric: str, averaged: dict) -> None:
    """One row per variant: the predicted effect's error as a ratio to the best baseline's (no_effect
    included) at each horizon; above 1 the model is better, below 1 a baseline is."""
    entries = {name: entry for name, entry in averaged.items() if entry}
    if not entries:
        return
    columns = list(next(iter(entries.values()))["effect"]["model"])
    print(f"\n### {domain}: effect {metric}, best baseline / model (above 1: the model is better)")
    print("| variant | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, entry in entries.items():
        cells = []
        for c in columns:
            model = entry["effect"]["model"][c]
            # the simplest answer wins a tie: no_effect first
            best, _, which = min((table[c], r != "no_effect", r) for r, table in entry["effect"].items() if r != "model")
            if best == 0 and model == 0:
                cells.append("= (no effect yet)")
            elif best == 0:
                cells.append(f"{which} exact, model {model:.1g}")
            else:
                ratio = best / model if model > 0 else float("inf")
                cells.append(f"{ratio:.2g}x ({which})")
        print(f"| {name} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--domains", nargs="+", default=list(SETUPS), choices=SETUPS, help="default: both")
    p.add_argument("--datasets", default=str(REPO / "datasets"), help="folder of water2d/ and cloth/")
    p.add_argument("--runs", default=str(REPO / "runs"), help="folder of the trained runs (cloth/; demo/ where no "
                   "water model is shipped)")
    p.add_argument("--water-checkpoint", help="the water model (default: the shipped long-recipe model "
                   "gns/pretrained/water_long.pt; where a checkout has none, RUNS/demo/checkpoints/latest.pt)")
    p.add_argument("--cloth-checkpoint", help="the cloth model (default: RUNS/cloth/checkpoints/latest.pt)")
    p.add_argument("--strain-limit", type=float, help="cloth: strain-limit the model's rollouts at this edge length "
                   "over rest length (a named projection, gns.mesh.constraints; default: the checkpoint's, none)")
    p.add_argument("--trajectories", type=int, default=None, help="test trajectories per domain (default: all)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, auto (default: cpu)")
    p.add_argument("--json", metavar="OUT", help="write every number to this JSON file")
    p.add_argument("--from-json", metavar="IN", help="print the tables of an earlier run's --json file; run nothing")
    args = p.parse_args(argv)
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        for domain, entry in results.items():
            print(f"\n## {domain}: model {entry['run']}, {entry['metric']} (from {args.from_json})")
            print_tables(domain, entry["metric"], entry["averaged"])
            print_summary(domain, entry["metric"], entry["averaged"])
        return results
    t0 = time.perf_counter()
    results = {}
    for domain in args.domains:
        data_name, run_name, spec_name, steps, horizons = SETUPS[domain]
        dataset, run = Path(args.datasets) / data_name, Path(args.runs) / run_name / "checkpoints" / "latest.pt"
        if domain == "water" and (args.water_checkpoint or WATER_LONG.exists()):
            run = Path(args.water_checkpoint or WATER_LONG)
        if domain == "cloth" and args.cloth_checkpoint:
            run = Path(args.cloth_checkpoint)
        if not run.exists() or not (dataset / "metadata.json").exists():
            print(f"\n{domain}: skipped ({run} or {dataset} is missing; `./run demo` makes the water pair, "
                  f"`gns generate cloth` and `gns train --preset cloth` the cloth one)")
            continue
        simulator, _, _ = load_simulator(run, args.device)
        if domain == "cloth" and args.strain_limit is not None:
            simulator.limit_strain(args.strain_limit)
        projection = f", strain-limited at {args.strain_limit:g} (a named projection)" \
            if domain == "cloth" and args.strain_limit is not None else ""
        spec = yaml.safe_load((REPO / "docs" / "interventions" / spec_name).read_text())
        count = len(open_split_for(simulator, dataset, "test"))
        count = count if args.trajectories is None else min(count, args.trajectories)
        per_trajectory = [answer(simulator, dataset, spec, i, steps, horizons) for i in range(count)]
        metric = "MSE" if simulator.kind == "particles" else "RMSE"
        averaged = {name: average(per_trajectory, name) for name in spec["variants"]}
        results[domain] = {"run": str(run), "dataset": str(dataset), "metric": metric, "per_trajectory": per_trajectory,
                           "averaged": averaged,
                           "strain_limit": args.strain_limit if domain == "cloth" else None}
        print(f"\n## {domain}: {count} test trajectories, model {run}{projection}, {metric}")
        print_tables(domain, metric, averaged)
        print_summary(domain, metric, averaged)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
