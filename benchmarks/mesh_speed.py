"""How fast a Lagrangian mesh rollout moves its nodes compared with the ground truth, step by step.

Reads a rollout file written by ``gns rollout`` (``gns.mesh.rollout_io``) and prints, for each
trajectory, the mean per-step displacement of the simulated (NORMAL) nodes in the prediction
divided by the same in the ground truth, at the chosen steps after the input frames. A ratio below
1 means the model moves the mesh too slowly (it damps), above 1 too fast. docs/meshes.md uses it
for the cloth diagnosis::

    gns rollout runs/cloth_we2/checkpoints/latest.pt --out runs/cloth_we2/test.h5
    python benchmarks/mesh_speed.py runs/cloth_we2/test.h5 --steps 5 10 20 30 50
"""

from __future__ import annotations

import argparse
from typing import Sequence

import numpy as np

from gns.mesh.export import MeshView
from gns.rollout_io import read_rollouts
from gns.mesh.types import NodeType


def speed_ratio(rollout: MeshView, field: str, steps: Sequence[int], window: int = 2) -> np.ndarray:
    """``(len(steps),)`` mean node speed of the prediction over the truth's, ``steps`` after the inputs.

    Speed at step ``s`` is the displacement from frame ``window - 2 + s`` to ``window - 1 + s``
    (step 1 is the first predicted frame), averaged over the NORMAL nodes.
    """
    normal = rollout.node_type == int(NodeType.NORMAL)

    def speed(frames: np.ndarray) -> np.ndarray:                                       # (T - 1,)
        return np.linalg.norm(np.diff(frames[:, normal], axis=0), axis=-1).mean(axis=-1)

    index = [window - 2 + s for s in steps]
    return speed(rollout.predicted[field])[index] / speed(rollout.ground_truth[field])[index]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rollouts", help="a mesh rollout file (.h5 or .npz) from gns rollout")
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 30, 50])
    parser.add_argument("--field", default=None, help="position field (default: the file's target field)")
    args = parser.parse_args(argv)
    records, attrs = read_rollouts(args.rollouts)
    rollouts = [MeshView(r, file=args.rollouts) for r in records]
    field = args.field or attrs["target_field"]
    print(f"predicted / true mean speed of the NORMAL nodes of {field} at steps {args.steps}:")
    ratios = []
    for rollout in rollouts:
        ratio = speed_ratio(rollout, field, args.steps)
        ratios.append(ratio)
        print(f"{rollout.key}: " + " ".join(f"{r:5.2f}" for r in ratio))
    table = np.stack(ratios)
    print("range per step: " + " ".join(f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(table.min(0), table.max(0))))


if __name__ == "__main__":
    main()
