"""Time gns.neighbors.radius_graph against scipy's cKDTree, producing the same edge list.

Uniform random particles in a cube whose side is set so that the mean neighbour count within the
radius is fixed (``--density``; defaults 20 in 2-D and 30 in 3-D, as in GNS datasets). Both sides
produce the identical output: a ``(2, E)`` int64 array ``[senders; receivers]`` with every ordered
pair and the self loops, sorted by receiver then sender. The cKDTree side is
``query_pairs(r, output_type='ndarray')`` (single-threaded: it has no ``workers`` option), then
the same mirror + one ``np.sort`` of 64-bit keys as ours: the fastest cKDTree route we found
(scipy.sparse CSR assembly is ~2x slower, ``query_ball_point`` returns Python lists).

For every (dimension, size):

* timing: one subprocess alternates the two methods (``--repeats`` rounds after one warm-up
  round of each; up to 51 for small sizes, ``2e5 / N``) and reports the medians, so that load
  from other processes hits both alike;
  it then compares the two edge lists (float32 positions can differ from cKDTree's float64
  arithmetic on pairs at ``|d - r| ~ 1e-7 r``; such pairs are counted and their gap printed);
* memory: one subprocess per method measures the peak resident memory of one call: the peak RSS
  (``VmHWM``, reset through ``/proc/self/clear_refs``) minus the RSS before it;
  ``torch.cuda.max_memory_allocated`` on CUDA. Both include the returned edge list
  (16 bytes per edge).

Example::

    python benchmarks/neighbors.py --sizes 1e3,1e4,1e5,1e6 --dims 2,3 --repeats 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np


def box_positions(n: int, dim: int, density: float, seed: int, dtype: str) -> tuple[np.ndarray, float]:
    """``(n, dim)`` uniform positions in a cube holding ``density`` neighbours per unit-radius ball."""
    ball = math.pi ** (dim / 2) / math.gamma(dim / 2 + 1)  # volume of the unit ball
    side = (n * ball / density) ** (1 / dim)
    x = np.random.default_rng(seed).random((n, dim)) * side
    return x.astype(dtype), 1.0


def ckdtree_edges(x: np.ndarray, radius: float) -> np.ndarray:
    """The same ``(2, E)`` edge index as radius_graph, from scipy.spatial.cKDTree."""
    from scipy.spatial import cKDTree

    n = x.shape[0]
    pairs = cKDTree(x).query_pairs(radius, output_type="ndarray")  # (P, 2), i < j
    p = pairs.shape[0]
    out = np.empty((2, 2 * p + n), dtype=np.int64)
    keys = out[1]                                                  # receiver << 32 | sender
    first, second = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    np.add(first, second << 32, out=keys[:p])
    np.add(second, first << 32, out=keys[p:2 * p])
    keys[2 * p:] = np.arange(n, dtype=np.int64) * ((1 << 32) + 1)
    keys.sort()
    np.bitwise_and(keys, (1 << 32) - 1, out=out[0])
    np.right_shift(keys, 32, out=out[1])
    return out


def _methods(args: argparse.Namespace) -> dict:
    """name -> zero-argument callable returning a ``(2, E)`` edge index (numpy or torch)."""
    import torch

    import gns.neighbors as neighbors

    if args.threads:
        torch.set_num_threads(args.threads)
    neighbors.USE_NUMPY_SORT_ON_CPU = not args.torch_sort
    x, radius = box_positions(args.n, args.dim, args.density, args.seed, args.dtype)
    data = torch.from_numpy(x).to(args.device)
    x64 = x.astype(np.float64)  # what cKDTree computes in anyway

    def ours(part: int | None = None):
        edges = neighbors.radius_graph(data[:part], radius)
        if args.device == "cuda":
            torch.cuda.synchronize()
        return edges

    return {"ours": ours, "ckdtree": lambda part=None: ckdtree_edges(x64[:part], radius), "x": x, "radius": radius}


def timing_worker(args: argparse.Namespace) -> dict:
    """Alternate both methods; medians, then compare the last two edge lists."""
    methods = _methods(args)
    times: dict[str, list[float]] = {"ours": [], "ckdtree": []}
    last = {}
    rounds = max(args.repeats, min(51, 200_000 // args.n))        # small sizes: more rounds, same cost
    for round_ in range(rounds + 1):                                # round 0 is the warm-up
        for name in ("ours", "ckdtree"):
            last.pop(name, None)
            start = time.perf_counter()
            last[name] = methods[name]()
            if round_:
                times[name].append(time.perf_counter() - start)
    ours = last["ours"].cpu().numpy() if hasattr(last["ours"], "cpu") else last["ours"]
    ref = last["ckdtree"]
    result = {"edges": int(ours.shape[1]), "ckdtree_edges": int(ref.shape[1])}
    for name, values in times.items():
        result[f"{name}_ms"] = 1e3 * statistics.median(values)
        result[f"{name}_times_ms"] = [1e3 * t for t in values]
    if ours.shape == ref.shape and np.array_equal(ours, ref):
        result.update(identical=True, differing=0, max_rel_gap=0.0)
        return result
    x, radius, n = methods["x"], methods["radius"], ours.shape[1] and int(args.n)
    differing = np.setxor1d(ours[1] * n + ours[0], ref[1] * n + ref[0], assume_unique=True)
    i, j = differing // n, differing % n
    gap = np.abs(np.linalg.norm(x[i].astype(np.float64) - x[j], axis=1) - radius) / radius
    result.update(identical=False, differing=int(differing.size), max_rel_gap=float(gap.max()) if gap.size else 0.0)
    return result


def memory_worker(args: argparse.Namespace, method: str) -> dict:
    """Peak memory of one call of ``method`` (MiB), after a tiny call for imports and lazy init."""
    run = _methods(args)[method]
    run(100)
    cuda = method == "ours" and args.device == "cuda"
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        edges = run()
        return {"peak_mib": (torch.cuda.max_memory_allocated() - base) / 2**20, "edges": int(edges.shape[1])}
    rss_before, exact = _reset_peak_rss()
    edges = run()
    return {"peak_mib": (_peak_rss_kib(exact) - rss_before) / 1024, "edges": int(edges.shape[1])}


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (Linux), else None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> tuple[int, bool]:
    """Current RSS in KiB, and whether the kernel's peak (VmHWM) could be reset to it.

    ``ru_maxrss`` cannot be used for a delta here: Linux carries it over from the parent across
    fork + exec, so it starts at the (torch-importing) parent's peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # 5: reset the peak RSS to the current RSS
        return _status_kib("VmRSS") or 0, True
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, False


def _peak_rss_kib(exact: bool) -> int:
    return (_status_kib("VmHWM") or 0) if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def spawn(base: list[str], extra: list[str]) -> dict:
    out = subprocess.run(base + extra, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"worker {' '.join(extra)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1e3,1e4,1e5,1e6", help="particle counts, comma separated")
    parser.add_argument("--dims", default="2,3", help="dimensions, comma separated")
    parser.add_argument("--density", type=float, default=None,
                        help="mean number of neighbours within the radius (default 20 in 2-D, 30 in 3-D)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed rounds per size (median); small sizes use up to 51")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device for radius_graph")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="position dtype")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--torch-sort", action="store_true",
                        help="pure torch: final key sort with torch.sort instead of numpy on CPU")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--json", default=None, metavar="OUT", help="write all results to this JSON file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=["time", "ours", "ckdtree"], help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dim", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        if args.density is None:
            args.density = 20.0 if args.dim == 2 else 30.0
        result = timing_worker(args) if args.worker == "time" else memory_worker(args, args.worker)
        print(json.dumps(result))
        return

    sizes = [int(float(s)) for s in args.sizes.split(",")]
    dims = [int(d) for d in args.dims.split(",")]
    base = [sys.executable, os.path.abspath(__file__), "--repeats", str(args.repeats), "--device", args.device,
            "--dtype", args.dtype, "--threads", str(args.threads), "--seed", str(args.seed)]
    if args.torch_sort:
        base.append("--torch-sort")
    if args.density is not None:
        base += ["--density", str(args.density)]
    import torch

    threads = args.threads or torch.get_num_threads()
    sort = "torch.sort" if args.torch_sort or args.device != "cpu" else "numpy sort"
    print(f"radius_graph vs cKDTree | device {args.device}, {threads} torch threads, {args.dtype} positions, "
          f"final sort: {sort}, median of >= {args.repeats} alternating rounds after a warm-up | "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {_load()}")
    header = (f"{'D':>1} {'N':>9} {'edges':>11} {'edges/N':>7} {'ours ms':>9} {'cKDTree ms':>10} {'ratio':>6} "
              f"{'ours ns/N':>9} {'cKDT ns/N':>9} {'ours MiB':>8} {'cKDT MiB':>8}  same edges")
    print(header)
    print("-" * len(header))
    rows = []
    for dim in dims:
        for n in sizes:
            common = ["--n", str(n), "--dim", str(dim), "--worker"]
            timing = spawn(base, common + ["time"])
            memory = {m: {"peak_mib": float("nan")} if args.no_memory else spawn(base, common + [m])
                      for m in ("ours", "ckdtree")}
            verdict = ("yes" if timing["identical"] else
                       f"{timing['differing']} differ (|d-r|/r <= {timing['max_rel_gap']:.1e})")
            row = {"dim": dim, "n": n, **timing, "ratio": timing["ours_ms"] / timing["ckdtree_ms"],
                   "ours_ns_per_particle": 1e6 * timing["ours_ms"] / n,
                   "ckdtree_ns_per_particle": 1e6 * timing["ckdtree_ms"] / n,
                   "ours_peak_mib": memory["ours"]["peak_mib"], "ckdtree_peak_mib": memory["ckdtree"]["peak_mib"],
                   "load_average": _load()}
            rows.append(row)
            print(f"{dim:>1} {n:>9,} {row['edges']:>11,} {row['edges'] / n:>7.1f} {row['ours_ms']:>9.1f} "
                  f"{row['ckdtree_ms']:>10.1f} {row['ratio']:>6.2f} {row['ours_ns_per_particle']:>9.0f} "
                  f"{row['ckdtree_ns_per_particle']:>9.0f} {row['ours_peak_mib']:>8.0f} "
                  f"{row['ckdtree_peak_mib']:>8.0f}  {verdict}", flush=True)
    print(f"load average at the end: {_load()} (other processes on the machine distort the timings)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": args.device, "threads": threads, "dtype": args.dtype, "repeats": args.repeats,
                       "torch_sort": args.torch_sort, "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
