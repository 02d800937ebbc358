"""How smooth a Lagrangian mesh dataset's motion is at its frame rate: is the per-frame acceleration learnable?

For the simulated (NORMAL) nodes of each trajectory of a split, prints the RMS per-frame velocity
``x[t+1] - x[t]`` and acceleration ``x[t+1] - 2 x[t] + x[t-1]`` (per component, in the units of the
positions) and the lag-1 autocorrelation of the acceleration, ``sum a[t] . a[t-1] / sum |a[t]|^2``.
Motion that the frames resolve has an autocorrelation near 1 (a sine sampled ``n`` times a period
gives ``cos(2 pi / n)``); vibration faster than the frames alias into an acceleration that looks like
noise from frame to frame (autocorrelation near 0 or below), which a model reading two frames cannot
predict. docs/meshes.md and datasets/cloth.md use it to compare cloth solver versions::

    python benchmarks/frame_smoothness.py datasets/cloth --split train
"""

from __future__ import annotations

import argparse
from typing import Sequence

import numpy as np

from gns.data.mesh import load_mesh_metadata, open_mesh_split
from gns.mesh.types import NodeType


def smoothness(frames: np.ndarray) -> dict[str, float]:
    """Velocity RMS, acceleration RMS and the acceleration's lag-1 autocorrelation of ``(T, N, D)`` positions."""
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 3 or frames.shape[0] < 4:
        raise ValueError(f"expected (T >= 4, N, D) positions, found {frames.shape}")
    velocity = np.diff(frames, axis=0)
    acceleration = np.diff(frames, n=2, axis=0)
    energy = float((acceleration ** 2).sum())
    lag1 = float((acceleration[1:] * acceleration[:-1]).sum()) / energy if energy > 0 else float("nan")
    return {"velocity_rms": float(np.sqrt((velocity ** 2).mean())),
            "acceleration_rms": float(np.sqrt((acceleration ** 2).mean())), "lag1": lag1}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="+", help="mesh dataset directories (canonical layout)")
    parser.add_argument("--split", default="train")
    args = parser.parse_args(argv)
    print("dataset | trajectories | velocity RMS | acceleration RMS | acceleration lag-1 autocorrelation "
          "(mean, min-max over trajectories)")
    for path in args.datasets:
        metadata = load_mesh_metadata(path)
        split = open_mesh_split(path, args.split, metadata)
        field = metadata.target.field
        rows = []
        for i in range(len(split)):
            normal = np.asarray(split.node_type(i)).reshape(-1) == int(NodeType.NORMAL)
            frames = split.read_window(i, 0, split.num_frames(i), fields=[field]).fields[field]
            rows.append(smoothness(np.asarray(frames)[:, normal]))
        vel, acc, lag = (np.array([r[k] for r in rows]) for k in ("velocity_rms", "acceleration_rms", "lag1"))
        print(f"{path} ({args.split}) | {len(rows)} | {vel.mean():.3g} | {acc.mean():.3g} | "
              f"{lag.mean():.3f} ({lag.min():.3f}-{lag.max():.3f})")


if __name__ == "__main__":
    main()
