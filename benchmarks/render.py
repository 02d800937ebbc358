"""Time the animation writer: a rollout file rendered to a GIF by ``gns.viz.save_animation`` (the figure drawn
once, then only the artists each frame changes: matplotlib's blitting) against matplotlib's own
``Animation.save`` with its ``PillowWriter`` (a whole redraw of the figure per frame), side by side in one
process, taking turns; and how many pixels of the two GIFs' frames differ (the changed artists lie over the axes'
frame and ticks in ours, under them in matplotlib's; GIF palettes are chosen per frame from its pixels).

Both keep every frame in memory until the file is written (F x H x W x 3 bytes, printed).

Example::

    python benchmarks/render.py --rollouts runs/demo/rollouts_test.h5 --stride 3 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.animation import PillowWriter  # noqa: E402
from PIL import Image, ImageSequence  # noqa: E402

from gns.particles.viz import animate_particles  # noqa: E402
from gns.rollout_io import comparison_panels, read_rollouts  # noqa: E402
from gns.viz import save_animation  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rollouts", required=True, help="a particle rollout file (gns evaluate / gns rollout --out)")
    p.add_argument("--trajectory", default=None, help="which trajectory to draw (default: the file's first)")
    p.add_argument("--stride", type=int, default=3, help="draw every N-th step (default: 3, as ./run demo)")
    p.add_argument("--dpi", type=int, default=80, help="resolution (default: 80, as gns render)")
    p.add_argument("--repeats", type=int, default=3, help="rounds, each writer once a round (default: 3)")
    p.add_argument("--json", help="also write every number to this file")
    return p.parse_args(argv)


def _frames(path: Path) -> list[np.ndarray]:
    return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(Image.open(path))]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(args.rollouts).is_file():
        print(f"error: {args.rollouts}: no such rollout file (--rollouts)", file=sys.stderr)
        return 2
    records, attrs = read_rollouts(args.rollouts)
    if attrs["simulator"] != "particles":
        print(f"error: {args.rollouts}: a {attrs['simulator']} rollout file; this benchmark draws particles "
              "(--rollouts)", file=sys.stderr)
        return 2
    panels = comparison_panels(records, attrs, args.trajectory, file=args.rollouts)
    field = attrs["target_field"]
    shown = [(title, record.sources[source][field], record.static.get("particle_type"))
             for title, record, source in panels]
    bounds = (attrs.get("info") or {}).get("bounds")

    def ours(out: Path) -> None:
        save_animation(animate_particles(shown, bounds=bounds, stride=args.stride), out, dpi=args.dpi)

    def matplotlibs(out: Path) -> None:
        anim = animate_particles(shown, bounds=bounds, stride=args.stride)
        anim.save(str(out), writer=PillowWriter(fps=anim.fps), dpi=args.dpi)

    times: dict[str, list[float]] = {"ours": [], "matplotlib": []}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: Path(tmp) / f"{name}.gif" for name in times}
        for _ in range(args.repeats):
            for name, write in (("ours", ours), ("matplotlib", matplotlibs)):
                start = time.perf_counter()
                write(paths[name])
                times[name].append(time.perf_counter() - start)
        a, b = _frames(paths["ours"]), _frames(paths["matplotlib"])
        differ = [float((x != y).any(-1).mean()) for x, y in zip(a, b)]
        held = len(a) * a[0].size
    median = {name: statistics.median(t) for name, t in times.items()}
    result = {"rollouts": str(args.rollouts), "frames": len(a), "frame_shape": list(a[0].shape), "dpi": args.dpi,
              "seconds": times, "median_s": median, "ratio": median["matplotlib"] / median["ours"],
              "differing_pixels_max": max(differ), "differing_pixels_mean": float(np.mean(differ)),
              "frames_held_bytes": held}
    print(f"{len(a)} frames of {a[0].shape[1]} x {a[0].shape[0]} px at dpi {args.dpi}, {args.repeats} rounds")
    print("| writer | median s | all |\n|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {median[name]:.2f} | {', '.join(f'{x:.2f}' for x in t)} |")
    print(f"matplotlib / ours: {result['ratio']:.2f}x; pixels that differ per frame: mean "
          f"{100 * result['differing_pixels_mean']:.2f}%, most {100 * result['differing_pixels_max']:.2f}%; frames "
          f"held in memory by either: {held / 1e6:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
