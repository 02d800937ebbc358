"""Message passing without gradients piece by piece (``gns.nn.graph_net.EDGE_CHUNK_BYTES``) vs whole tensors.

Without gradients (rollouts, the pushforward's unrolled steps), a processor block on the CPU runs its edge MLP over
pieces of the edges whose per-edge tensors fit the processor's cache (``gns/nn/graph_net.py``). Three rows:

* **rollout**: a trained model's ``--steps`` rollout steps over ``--batch`` held-out trajectories together, from
  the state its own rollout reaches after ``--warmup-steps`` (by default the main job's model where its water has
  packed, what the main job's evaluation spends its time on), for every piece size of ``--sizes`` (MiB of one
  ``(rows, L)`` float tensor; 0: whole tensors, the path before pieces), the sizes taking turns within each of
  ``--repeats`` rounds in one process (median printed), with the largest difference of the positions reached from
  the whole-tensor path's;
* **network, latent 128**: the network alone, the GNS paper's width (latent 128, 10 blocks; random weights) on
  the same state's graph: whether the best piece size holds for wider latents;
* **training**: a preset's training steps/s with pieces off (``GNS_EDGE_CHUNK_BYTES=0``) and at the default, fresh
  processes taking turns, its pushforward unrolls on from the first step (``--train-set``): the unrolled steps run
  without gradients. glibc's allocator as ``gns train`` leaves it.

Run it alone on the machine::

    gns demo     # makes runs/demo/checkpoints/latest.pt
    python benchmarks/inference.py --json inference.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from allocator import REPO, add_state_options, check_inputs, median, prepare_state, run_child, turns
from thread_contention import CHILD as TRAIN_CHILD

sys.path.insert(0, str(REPO))
from gns.nn.graph_net import EDGE_CHUNK_BYTES  # noqa: E402  (the default, or GNS_EDGE_CHUNK_BYTES)

SWEEP = r"""
import json, sys, time, torch
from gns.allocator import tune_allocator
tune_allocator()   # as the command line does for rollouts
threads, checkpoint, state_path, steps, settle, repeats = (int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]),
                                                           int(sys.argv[5]), int(sys.argv[6]))
sizes = json.loads(sys.argv[7])
torch.set_num_threads(threads)
torch.manual_seed(0)
import gns.nn.graph_net as graph_net
from gns.domains import load_simulator
from gns.nn import EncodeProcessDecode
from gns.rollout import rollout
sim, _, _ = load_simulator(checkpoint, "cpu")
state = torch.load(state_path, weights_only=False)["state"]
with torch.no_grad():
    graph = sim.build_graph(state)
wide = EncodeProcessDecode(graph.nodes.shape[1], {k: v.features.shape[1] for k, v in graph.edge_sets.items()},
                           sim.dim, latent_size=128, message_passing_steps=10).eval()
rollout(sim, state, max(1, settle))   # untimed: first calls, and glibc's adaptation
rows = {str(size): {"rollout_s_per_step": [], "network128_s": []} for size in sizes}
final = {}
for _ in range(repeats):
    for size in sizes:
        graph_net.EDGE_CHUNK_BYTES = int(size * (1 << 20))
        t0 = time.perf_counter()
        frames = rollout(sim, state, steps)
        rows[str(size)]["rollout_s_per_step"].append((time.perf_counter() - t0) / steps)
        final[size] = frames["position"][:, -1]
        with torch.no_grad():
            t0 = time.perf_counter()
            wide(graph)
            rows[str(size)]["network128_s"].append(time.perf_counter() - t0)
whole = final[sizes[0]]
for size in sizes:
    rows[str(size)]["max_position_difference"] = float((final[size] - whole).abs().max())
edges = {k: int(v.senders.shape[0]) for k, v in graph.edge_sets.items()}
print(json.dumps({"rows": rows, "nodes": int(graph.nodes.shape[0]), "edges": edges}))
"""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_state_options(p, steps=5, settle=5)
    p.add_argument("--sizes", type=float, nargs="+", default=[0, 1, 2, 4, 8, 16, 32],
                   help="piece sizes in MiB, 0 (whole tensors) first (default: 0 1 2 4 8 16 32)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--repeats", type=int, default=3, help="rounds; the median is printed (default: 3)")
    p.add_argument("--preset", default="demo", help="the preset whose training is timed (default: demo)")
    p.add_argument("--train-set", dest="overrides", action="append", metavar="SECTION.KEY=VALUE",
                   help="settings of the timed training (repeatable; default: the preset's unrolls from the first "
                        "steps, train.pushforward_steps=[0,1,2,3])")
    p.add_argument("--train-steps", type=int, default=40,
                   help="timed training steps, after as many untimed ones (default: 40; 0: no training row)")
    p.add_argument("--json", help="write every measurement here")
    args = p.parse_args(argv)
    if args.overrides is None:
        args.overrides = ["train.pushforward_steps=[0,1,2,3]"]
    if args.sizes[0] != 0:
        raise SystemExit(f"--sizes must start with 0 (whole tensors, the reference); got {args.sizes}")
    check_inputs(args)

    with tempfile.TemporaryDirectory() as tmp:
        state = prepare_state(args, tmp)
        sweep = run_child(SWEEP, [str(args.threads), args.checkpoint, state, str(args.steps), str(args.settle_steps),
                                  str(args.repeats), json.dumps(args.sizes)], {})
    training = None
    if args.train_steps:
        def train(flag: str) -> dict:
            with tempfile.TemporaryDirectory() as out:
                return run_child(TRAIN_CHILD, [str(args.threads), out, str(args.train_steps), args.preset,
                                               args.dataset, json.dumps(args.overrides)],
                                 {"GNS_EDGE_CHUNK_BYTES": flag, "GNS_TUNE_ALLOCATOR": "0"})
        training = turns(train, args.repeats, {"whole tensors": "0", "pieces": str(EDGE_CHUNK_BYTES)})

    rows = sweep["rows"]
    print(f"## Message passing without gradients: pieces vs whole tensors, {args.threads} torch threads, median of "
          f"{args.repeats}; load average {os.getloadavg()[0]:.1f} after\n")
    print(f"Rollout: {args.checkpoint}, {args.batch} test trajectories of {args.dataset} together "
          f"({sweep['nodes']} nodes, edges {sweep['edges']}), {args.steps} steps from the state of its own rollout "
          f"after {args.warmup_steps}. Network 128: latent 128, 10 blocks, random weights, on that state's graph.\n")
    print("| piece MiB | rollout s/step | speed vs whole | largest position difference | network 128 s "
          "| speed vs whole |")
    print("|---|---|---|---|---|---|")
    base = rows[str(args.sizes[0])]
    r0, n0 = statistics.median(base["rollout_s_per_step"]), statistics.median(base["network128_s"])
    for size in args.sizes:
        row = rows[str(size)]
        r, n = statistics.median(row["rollout_s_per_step"]), statistics.median(row["network128_s"])
        print(f"| {'whole' if size == 0 else f'{size:g}'} | {r:.3f} | {r0 / r:.2f}x | "
              f"{row['max_position_difference']:.1e} | {n:.3f} | {n0 / n:.2f}x |")
    if training is not None:
        a, b = (median(training[k], "steps_per_s") for k in training)
        print(f"\nTraining, {args.preset} ({', '.join(args.overrides)}), fresh processes taking turns: whole tensors "
              f"{a:.2f} steps/s, pieces of {EDGE_CHUNK_BYTES / (1 << 20):g} MiB {b:.2f} steps/s ({b / a:.2f}x)")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "sweep": sweep, "training": training}, indent=1))


if __name__ == "__main__":
    main()
