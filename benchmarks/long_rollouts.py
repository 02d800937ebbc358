"""Levers for long rollouts: train variants of a preset, score each over whole held-out trajectories.

Each lever is a set of config overrides on top of a preset (default: the main job's, ``demo``).
Every (lever, seed) trains the same number of optimizer steps (the preset's, or ``--steps``; the
preset's wall-clock budget is lifted so that slower variants are not cut short), then its latest
checkpoint rolls out the held-out test split and is scored as a user of long rollouts would:

* **multi-start**: rollouts of 100 steps started every 50 frames; the better baseline's MSE over the
  model's at horizons 20, 50 and 100 (above 1: the model wins);
* **from the first frame, whole trajectory**: the full-trajectory position MSE against constant
  velocity's and gravity-only's; ``escape``: how far any predicted particle strays beyond the box
  spanned by the true particles at the same step, as a share of the box width (target: at most
  0.02); ``KE x``: the largest factor between predicted and true mean kinetic energy over 50-step
  windows (target: at most 2); the first divergence the rollout monitor reported;
* **checks of what the animations show**: free fall (the model's acceleration of water in flight, in units of
  g), landing spread (from true states, how much landed water spreads over the truth's spreading) and rest
  drift (from settled true water, how far its height moves in 300 steps): :func:`free_fall`,
  :func:`landing_spread`, :func:`rest_drift`; ``--checks-of CHECKPOINT`` runs them on any checkpoint;
  ``--density-of``, ``--flight-of`` and ``--energy-of ROLLOUTS_H5`` read rollout files (:func:`density`,
  :func:`flight`, :func:`energy`); ``--rest-motion-of CHECKPOINT`` rolls a model on from the truth's settling
  water (:func:`rest_motion`).

Runs go to ``--out/<lever>-s<seed>/`` (a finished one is reused: rerun to add levers or seeds);
``--jobs`` runs that many at once, each with ``--threads`` torch threads. The table is printed
from every finished run under ``--out`` (``--table`` prints it without training anything).

    python benchmarks/long_rollouts.py --levers preset noise_3e-4 --seeds 0 1 --jobs 2 --threads 1
    python benchmarks/long_rollouts.py --table
    python benchmarks/long_rollouts.py --checks-of runs/demo/checkpoints/best.pt
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# name -> (what changes, overrides of the preset). The preset is the reference row.
LEVERS: dict[str, tuple[str, list[str]]] = {
    "preset": ("the base: the main job's preset until the near_walls_3e-5_unroll10 row replaced it", []),
    "noise_1e-4": ("random-walk noise 1e-4", ["train.noise_std=1e-4"]),
    "noise_3e-4": ("random-walk noise 3e-4", ["train.noise_std=3e-4"]),
    "noise_paper": ("noise at the GNS paper's ratio to the velocity std (7.1e-4)", ["train.noise_std=7.1e-4"]),
    "velocities_3e-4": ("GNS velocity inputs, noise 3e-4",
                        ["model.velocity_encoding=velocities", "train.noise_std=3e-4"]),
    "unroll5_3e-4": ("noise 3e-4, pushforward up to 5 steps, reached by step 3000",
                     ["train.noise_std=3e-4", "train.pushforward_steps=[0,600,1500,3000]",
                      "train.pushforward_unrolls=[0,1,3,5]", "train.pushforward_probs=[8,2,2,2]"]),
    "unroll10_3e-4": ("noise 3e-4, pushforward up to 10 steps, reached by step 3000",
                      ["train.noise_std=3e-4", "train.pushforward_steps=[0,600,1500,3000]",
                       "train.pushforward_unrolls=[0,2,5,10]", "train.pushforward_probs=[8,2,2,2]"]),
    "edgevel_3e-4": ("relative velocities on the edges, noise 3e-4", ["model.edge_velocity=true",
                                                                      "train.noise_std=3e-4"]),
    "edgevel_1e-4": ("relative velocities on the edges, noise 1e-4", ["model.edge_velocity=true",
                                                                      "train.noise_std=1e-4"]),
    "edgevel_vel_3e-4": ("relative velocities on the edges, GNS velocity inputs, noise 3e-4",
                         ["model.edge_velocity=true", "model.velocity_encoding=velocities", "train.noise_std=3e-4"]),
    "near_walls_3e-4": ("velocity changes + last velocity only near walls, relative velocities on edges, "
                        "noise 3e-4", ["model.velocity_encoding=near_walls", "model.edge_velocity=true",
                                       "train.noise_std=3e-4"]),
    "near_walls_1e-4": ("velocity changes + last velocity only near walls, relative velocities on edges, "
                        "noise 1e-4", ["model.velocity_encoding=near_walls", "model.edge_velocity=true",
                                       "train.noise_std=1e-4"]),
    "onestep_3e-4": ("noise 3e-4, one-step loss (no pushforward)", ["train.noise_std=3e-4", "train.loss=onestep"]),
    "latent64_3e-4": ("latent 64, noise 3e-4", ["model.latent_size=64", "train.noise_std=3e-4"]),
    "mp6_3e-4": ("6 message-passing steps, noise 3e-4", ["model.message_passing_steps=6", "train.noise_std=3e-4"]),
    "batch2_3e-4": ("batch 2, noise 3e-4", ["train.batch_size=2", "train.noise_std=3e-4"]),
    "steps2x_3e-4": ("twice the steps, noise 3e-4",
                     ["train.steps=12000", "train.lr_decay_steps=12000", "train.noise_std=3e-4",
                      "train.pushforward_steps=[0,2400,6400,9600]"]),
}

NEAR_WALLS = ["model.velocity_encoding=near_walls", "model.edge_velocity=true"]
LEVERS.update({
    "near_walls_1e-4_latent64": ("near walls (as above), noise 1e-4, latent 64",
                                 NEAR_WALLS + ["train.noise_std=1e-4", "model.latent_size=64"]),
    "near_walls_1e-4_unroll5": ("near walls, noise 1e-4, pushforward up to 5 steps, reached by step 3000",
                                NEAR_WALLS + ["train.noise_std=1e-4", "train.pushforward_steps=[0,600,1500,3000]",
                                              "train.pushforward_unrolls=[0,1,3,5]",
                                              "train.pushforward_probs=[8,2,2,2]"]),
    "near_walls_1e-4_steps2x": ("near walls, noise 1e-4, twice the steps",
                                NEAR_WALLS + ["train.noise_std=1e-4", "train.steps=12000",
                                              "train.lr_decay_steps=12000",
                                              "train.pushforward_steps=[0,2400,6400,9600]"]),
    "near_walls_3e-4_steps2x": ("near walls, noise 3e-4, twice the steps",
                                NEAR_WALLS + ["train.noise_std=3e-4", "train.steps=12000",
                                              "train.lr_decay_steps=12000",
                                              "train.pushforward_steps=[0,2400,6400,9600]"]),
    "near_walls_3e-5": ("near walls, noise 3e-5 (the preset's)", NEAR_WALLS),
    "near_walls_3e-4_lr3e-4": ("near walls, noise 3e-4, learning rate 3e-4 -> 1e-5 (instead of 1e-3)",
                               NEAR_WALLS + ["train.noise_std=3e-4", "train.lr_init=3e-4"]),
    "near_walls_3e-4_batch2": ("near walls, noise 3e-4, batch 2", NEAR_WALLS + ["train.noise_std=3e-4",
                                                                                 "train.batch_size=2"]),
    "near_walls_paper": ("near walls, noise at the GNS paper's ratio (7.1e-4)", NEAR_WALLS + ["train.noise_std=7.1e-4"]),
    "near_walls_3e-4_unroll5": ("near walls, noise 3e-4, pushforward up to 5 steps, reached by step 3000",
                                NEAR_WALLS + ["train.noise_std=3e-4", "train.pushforward_steps=[0,600,1500,3000]",
                                              "train.pushforward_unrolls=[0,1,3,5]",
                                              "train.pushforward_probs=[8,2,2,2]"]),
})

# How much of the last input velocity's noise the target removes (train.noise_correction; GNS: all of it).
LEVERS.update({
    f"correct{share}_{noise}": (f"noise {noise}, target removes {share} of the last velocity's noise",
                                [f"train.noise_std={noise}", f"train.noise_correction={share}"])
    for share in ("0", "0.2") for noise in ("3e-4", "7.1e-4")})
LEVERS.update({
    f"near_walls_{noise}_correct{share}": (f"near walls, noise {noise}, target removes {share} of the last "
                                           "velocity's noise",
                                           NEAR_WALLS + [f"train.noise_std={noise}", f"train.noise_correction={share}"])
    for share in ("0", "0.2") for noise in ("3e-4", "7.1e-4")})

# The preset's low noise (the model keeps its free fall right) with longer pushforward unrolls instead.
UNROLL10 = ["train.pushforward_steps=[0,600,1500,3000]", "train.pushforward_unrolls=[0,2,5,10]",
            "train.pushforward_probs=[8,2,2,2]"]
LEVERS.update({
    "unroll10_3e-5": ("noise 3e-5 (the preset's), pushforward up to 10 steps, reached by step 3000", UNROLL10),
    "near_walls_3e-5_unroll10": ("near walls, noise 3e-5, pushforward up to 10 steps, reached by step 3000",
                                 NEAR_WALLS + UNROLL10),
    "antisym_unroll10_3e-5": ("antisymmetric decoder (pair terms f_ij = -f_ji: momentum-conserving), noise 3e-5, "
                              "pushforward up to 10 steps", ["model.decoder=antisymmetric"] + UNROLL10),
    "antisym_near_walls_unroll10_3e-5": ("antisymmetric decoder, near walls, noise 3e-5, pushforward up to 10 steps",
                                         ["model.decoder=antisymmetric"] + NEAR_WALLS + UNROLL10),
    # one velocity (no acceleration history to persist): the next acceleration is a function of the state alone
    "h1_near_walls_unroll10_3e-5": ("history 1, near walls, noise 3e-5, pushforward up to 10 steps",
                                    ["model.history=1"] + NEAR_WALLS + UNROLL10),
    "h1_antisym_near_walls_unroll10_3e-5": ("history 1, antisymmetric decoder, near walls, noise 3e-5, "
                                            "pushforward up to 10 steps",
                                            ["model.history=1", "model.decoder=antisymmetric"] + NEAR_WALLS + UNROLL10),
})

# A constant offset per particle over the whole input window (velocities clean), a share of which the target
# removes (train.offset_noise_std, train.offset_restore): the model learns to move a drifted configuration back.
LEVERS.update({
    f"near_walls_3e-5_unroll10_offset{std}_r{restore}": (
        f"near walls, noise 3e-5, pushforward up to 10 steps, a constant offset of std {std} m per particle "
        f"over the window, {restore} of it removed by the target",
        NEAR_WALLS + UNROLL10 + [f"train.offset_noise_std={std}", f"train.offset_restore={restore}"])
    for std in ("3e-4", "1e-3", "3e-3") for restore in ("0.1", "0.3")})

# Unrolls up to 20 steps (the next step past 10), reached by step 4500 of 6000.
UNROLL20 = ["train.pushforward_steps=[0,600,1500,3000,4500]", "train.pushforward_unrolls=[0,2,5,10,20]",
            "train.pushforward_probs=[8,2,2,2,2]"]
LEVERS.update({
    "near_walls_3e-5_unroll20": ("near walls, noise 3e-5, pushforward up to 20 steps, reached by step 4500",
                                 NEAR_WALLS + UNROLL20),
})

# The particle's place in the box (unclipped): the inside of a block in flight and of a resting pool differ only there.
LEVERS.update({
    "near_walls_3e-5_unroll10_boxpos": ("near walls, noise 3e-5, pushforward up to 10 steps, each particle's place in "
                                        "the box as an input (model.box_position)",
                                        NEAR_WALLS + UNROLL10 + ["model.box_position=true"]),
})

# More data, on the main job's configuration: the training (and validation) split comes from another
# dataset; the test split stays the default set's (the generator draws trajectory i of a split from
# rng([seed, split, i]) alone, so these sets share the default set's test trajectories, and their first
# 32 training trajectories are the default set's). Each names the command that makes its dataset.
DATA_LEVERS: dict[str, tuple[str, str, str]] = {
    "near_walls_3e-5_unroll10_train256": (
        "near walls, noise 3e-5, pushforward up to 10 steps, 256 training trajectories (8x)",
        "datasets/water2d_train256", "gns generate water2d --out datasets/water2d_train256 --param num_train=256"),
    "near_walls_3e-5_unroll10_steps1000": (
        "near walls, noise 3e-5, pushforward up to 10 steps, training trajectories of 1000 steps (2.5x)",
        "datasets/water2d_steps1000", "gns generate water2d --out datasets/water2d_steps1000 --param num_steps=1000"),
}
LEVERS.update({name: (what, NEAR_WALLS + UNROLL10 + [f"dataset={data}"])
               for name, (what, data, _) in DATA_LEVERS.items()})

# Pair terms f_ij = -f_ji, one shared acceleration, and a node term only within one radius of a wall
# (model.decoder: gated_antisymmetric): away from walls a block's mean acceleration cannot depend on its inputs.
LEVERS.update({
    "gated_near_walls_unroll10_3e-5": ("gated antisymmetric decoder (pair terms, one shared acceleration, a node "
                                       "term only near walls), near walls, noise 3e-5, pushforward up to 10 steps",
                                       NEAR_WALLS + UNROLL10 + ["model.decoder=gated_antisymmetric"]),
})

# Full backprop through short unrolls (train.loss: bptt): the loss averages every step of the unroll and its
# gradient reaches the earlier steps, so the model is taught not to make the drift that pushforward teaches it to undo.
LEVERS.update({
    f"near_walls_3e-5_bptt{k}": (f"near walls, noise 3e-5, backprop through unrolls of {k} steps (train.loss=bptt)",
                                 NEAR_WALLS + ["train.loss=bptt", f"train.bptt_steps={k}"])
    for k in (4, 8)})

# A wider connectivity radius (3.5 particle spacings instead of 2.5): one MPM substep couples particles up to 3 grid
# cells (0.06 m) apart and the sticky walls act on particles within 1.5 cells (0.03 m), beyond the default 0.025 m.
LEVERS.update({
    "near_walls_3e-5_unroll10_r0.035": ("near walls, noise 3e-5, pushforward up to 10 steps, connectivity radius "
                                        "0.035 m (the dataset's: 0.025)",
                                        NEAR_WALLS + UNROLL10 + ["model.radius=0.035"]),
})

# More message-passing steps: 10 (the GNS paper's) instead of 4 carry a particle's view 25 particle spacings
# instead of 10, about the depth of the deepest resting pool, so that the inside of a pool can tell that it rests
# on a floor, where the inside of a block in flight cannot.
MP10 = ["model.message_passing_steps=10"]
LEVERS.update({
    "near_walls_3e-5_unroll10_mp10": ("near walls, noise 3e-5, pushforward up to 10 steps, 10 message-passing steps "
                                      "(the preset's: 4)", NEAR_WALLS + UNROLL10 + MP10),
})

# No acceleration history (history 1) with 10 message-passing steps: settled water lifts off because the network
# carries an upward acceleration forward from its input history; without that history a particle's acceleration
# must come from its state, and 10 steps let the inside of a pool see the floor beneath it.
LEVERS.update({
    "h1_near_walls_unroll10_mp10": ("history 1, near walls, noise 3e-5, pushforward up to 10 steps, 10 message-passing "
                                    "steps", NEAR_WALLS + UNROLL10 + MP10 + ["model.history=1"]),
    "h1_velocities_unroll10_mp10": ("history 1 (the last velocity, GNS inputs), relative velocities on edges, noise "
                                    "3e-5, pushforward up to 10 steps, 10 message-passing steps",
                                    ["model.velocity_encoding=velocities", "model.edge_velocity=true"] + UNROLL10
                                    + MP10 + ["model.history=1"]),
})

# 10 message-passing steps at the main job's cost: half the steps (3000), the schedule and the learning-rate decay
# compressed to fit (the 10-step network costs about 2.3x the 4-step one per training step).
LEVERS.update({
    "near_walls_3e-5_unroll10_mp10_steps3000": (
        "near walls, noise 3e-5, pushforward up to 10 steps reached by step 1500, 10 message-passing steps, 3000 "
        "training steps", NEAR_WALLS + MP10 + ["train.steps=3000", "train.lr_decay_steps=3000",
                                               "train.pushforward_steps=[0,300,750,1500]",
                                               "train.pushforward_unrolls=[0,2,5,10]",
                                               "train.pushforward_probs=[8,2,2,2]"]),
})

# The weights' moving average (train.ema_decay 0.999; in 3000-6000 steps its warm-up rules, gns/train/averaging.py)
# for validation and checkpoints: the runs' whole-trajectory figures swing with the seed, and a long run's
# validation error moved up to 40x between checkpoints 2000 steps apart; an average of the weights smooths both
# where one late checkpoint does not.
EMA = ["train.ema_decay=0.999"]
LEVERS.update({
    "near_walls_3e-5_unroll10_ema": ("the main job's configuration (near walls, noise 3e-5, pushforward up to 10 "
                                     "steps) with the weights' moving average (decay 0.999)",
                                     NEAR_WALLS + UNROLL10 + EMA),
    "near_walls_3e-5_unroll10_mp10_steps3000_ema": (
        "10 message-passing steps in 3000 training steps (row near_walls_3e-5_unroll10_mp10_steps3000) with the "
        "weights' moving average (decay 0.999)", LEVERS["near_walls_3e-5_unroll10_mp10_steps3000"][1] + EMA),
})

# Half the training windows from the first 120 frames of a trajectory (flight, landing, splash: the frames where the
# water's accelerations are largest and the rollouts first go wrong), the other half from anywhere.
LEVERS.update({
    "near_walls_3e-5_unroll10_early120": ("near walls, noise 3e-5, pushforward up to 10 steps, half the training "
                                          "windows from a trajectory's first 120 frames",
                                          NEAR_WALLS + UNROLL10 + ["train.early_frames=120", "train.early_fraction=0.5"]),
})

# The last velocity everywhere (velocity_encoding: differences), not only near walls, with relative velocities on the
# edges: a pool that has started to rise then sees that it moves, where with the near-walls inputs only its bottom
# layer does.
LEVERS.update({
    "differences_edgevel_unroll10_3e-5": ("last velocity everywhere + velocity changes, relative velocities on edges, "
                                          "noise 3e-5, pushforward up to 10 steps",
                                          ["model.velocity_encoding=differences", "model.edge_velocity=true"]
                                          + UNROLL10),
})

# The average's decay, either side of 0.999 (measured: the same average, bit for bit, since in 3000 steps the warm-up
# (1+n)/(10+n) never reaches 0.998).
LEVERS.update({
    f"near_walls_3e-5_unroll10_mp10_steps3000_ema{decay}": (
        f"row near_walls_3e-5_unroll10_mp10_steps3000_ema with the average's decay {decay}",
        LEVERS["near_walls_3e-5_unroll10_mp10_steps3000"][1] + [f"train.ema_decay={decay}"])
    for decay in ("0.998", "0.9995")})

# Both at once: the last velocity everywhere (settled water that starts to move sees it) in today's main job's
# configuration (10 message-passing steps in 3000 steps, which see the floor from inside a pool, and the average).
LEVERS.update({
    "differences_edgevel_mp10_steps3000_ema": (
        "last velocity everywhere + velocity changes, relative velocities on edges, in the main job's configuration "
        "of 2026-12-06 (10 message-passing steps, 3000 steps, weights' moving average)",
        LEVERS["near_walls_3e-5_unroll10_mp10_steps3000_ema"][1] + ["model.velocity_encoding=differences"]),
})

# Static wall particles (model.wall_spacing) at the fluid's rest spacing, the first layer on the wall: a particle
# at the floor then has a full neighbourhood, as one in the bulk (the landed blocks that stay slabs and lift off).
LEVERS.update({
    "walls0.01_mp10_steps3000_ema": (
        "the main job's configuration of 2026-12-06 (row near_walls_3e-5_unroll10_mp10_steps3000_ema) with static "
        "wall particles 0.01 m apart, three layers behind every wall (model.wall_spacing=0.01)",
        LEVERS["near_walls_3e-5_unroll10_mp10_steps3000_ema"][1] + ["model.wall_spacing=0.01"]),
})

# Mirrored training windows (train.mirror_dims=[0]): the long runs' water gathers at and leaves through the left
# wall, a preference the 32 training trajectories may carry by chance; each window reflected left-right with
# probability 1/2.
LEVERS.update({
    "walls0.01_mp10_steps3000_ema_mirror": (
        "row walls0.01_mp10_steps3000_ema with training windows mirrored left-right with probability 1/2 "
        "(train.mirror_dims=[0])",
        LEVERS["walls0.01_mp10_steps3000_ema"][1] + ["train.mirror_dims=[0]"]),
})

# A constant velocity error per particle over the input window (train.velocity_offset_std), removed by the target:
# the random walk's correction (the damping that keeps GNS stable) without its noise on the velocity changes, which
# at 1e-4 and above drowned gravity's per-step change ("Why noise fails here"); in the bulk the model sees the error
# through the relative velocities on the edges. The landed water packs 3-5x too dense, compressing step by step.
LEVERS.update({
    f"walls0.01_mp10_steps3000_ema_vel{std}": (
        f"row walls0.01_mp10_steps3000_ema with a constant velocity error of std {std} per particle over the input "
        f"window, removed by the target (train.velocity_offset_std={std})",
        LEVERS["walls0.01_mp10_steps3000_ema"][1] + [f"train.velocity_offset_std={std}"])
    for std in ("1e-4", "3e-4", "1e-3")})

# Windows drawn on impacts (train.impact_fraction): water hitting the floor decelerates at 29-81 g within 2-3 steps
# in the solver, the models of row walls0.01_mp10_steps3000_ema at 3-17 g spread over ~10 steps, so landed blocks
# sink up to 0.025 m into the floor and pack there (--density-of); impacts are 9% of the steps.
LEVERS.update({
    f"walls0.01_mp10_steps3000_ema_impacts{share}": (
        f"row walls0.01_mp10_steps3000_ema with {share} of the training windows ending on an impact (a particle "
        f"accelerating by more than 6 stds; train.impact_fraction={share})",
        LEVERS["walls0.01_mp10_steps3000_ema"][1] + [f"train.impact_fraction={share}"])
    for share in ("0.25", "0.5")})

HORIZONS = (1, 10, 20, 50, 100)
BASE = Path(__file__).parent / "configs" / "levers_base.yaml"


def _test_windows(simulator, dataset: str):
    """Each test trajectory of ``dataset`` as ``(positions (T, N, D) numpy, particle types (N,) tensor)``."""
    import numpy as np
    import torch

    from gns.domains import open_split_for

    split = open_split_for(simulator, dataset, "test")
    for k in range(len(split)):
        trajectory = split[k]
        yield np.asarray(trajectory.position), torch.as_tensor(np.asarray(trajectory.particle_type)).long()


def _state(position, kinds, start: int, window: int):
    """The particle state of frames ``start .. start + window - 1`` of ``position`` ``(T, N, D)``."""
    import torch

    from gns.particles.state import ParticleState

    frames = torch.as_tensor(position[start:start + window]).transpose(0, 1).float()          # (N, w, D)
    return ParticleState(frames, kinds, torch.tensor([frames.shape[0]]))


def free_fall(simulator, dataset: str) -> dict:
    """The model's acceleration of water in free flight against the truth's (gravity).

    Test trajectory 0 starts with blocks in the air; the particles above ``y = 0.5`` fall freely
    for the first frames. Returns the mean predicted and true per-step accelerations of those
    particles, ``(D,)`` each, from the window of the first frames (no noise).
    """
    import torch

    w = simulator.window
    position, kinds = next(_test_windows(simulator, dataset))                                    # (T, N, D)
    state = _state(position, kinds, 0, w)
    with torch.no_grad():
        predicted = simulator.acceleration_normalizer.denormalize(simulator(state))            # (N, D)
    frames = torch.as_tensor(position[w - 2:w + 1]).float()                                    # (3, N, D)
    true = frames[2] - 2 * frames[1] + frames[0]                                               # (N, D)
    airborne = frames[1, :, 1] > 0.5
    return {"predicted": predicted[airborne].mean(0).tolist(), "true": true[airborne].mean(0).tolist()}


def landing_spread(simulator, dataset: str, length: int = 50, stride: int = 25, min_spread: float = 0.02) -> dict:
    """Whether water that lands spreads as the truth's does, from true states.

    From every ``stride``-th frame of each test trajectory the model rolls ``length`` steps forward from the
    true window. The water's horizontal spread is the standard deviation of its particles' x (m). Over the
    starts where the truth's spread grows by at least ``min_spread`` in those steps (a landed block collapsing
    into a layer, a splash running along the floor), returns ``ratio``, the summed growth of the predicted
    spread over the truth's (1: spreads as the truth does; 0: stays compact), and ``starts``, their number.
    """
    from gns.rollout import rollout_many

    w = simulator.window
    states, spreads = [], []
    for position, kinds in _test_windows(simulator, dataset):
        for s in range(0, position.shape[0] - w - length + 1, stride):
            before, after = position[s + w - 1, :, 0].std(), position[s + w - 1 + length, :, 0].std()
            if after - before >= min_spread:
                states.append(_state(position, kinds, s, w))
                spreads.append((before, after))
    if not states:
        return {"ratio": float("nan"), "starts": 0}
    predicted = rollout_many(simulator, states, length, [{} for _ in states], max_entities=4096)
    grown_true = sum(after - before for before, after in spreads)
    grown_predicted = sum(float(out["position"][:, -1, 0].std(unbiased=False)) - before
                          for (before, _), out in zip(spreads, predicted))
    return {"ratio": float(grown_predicted / grown_true), "starts": len(states)}


def rest_drift(simulator, dataset: str, steps: int = 300, settled: int = 395) -> dict:
    """Whether settled water stays down: from the window that ends at frame ``settled`` of each test trajectory (or
    its last frame; by frame 395 the default set's water lies on the floor, still sloshing from side to side), the
    model rolls ``steps`` steps forward. The water's height is the mean of its particles' last coordinate (up,
    against gravity). Returns ``max_m``, the
    largest move of that height from where it started (m), over the steps and the trajectories, and per
    trajectory: ``per_trajectory``, its largest move; ``onset_step``, the first step at which the height is 1 cm
    from its start (None: never); ``end_dy_m``, the height's move at the last step (above 0: the water has risen).
    Where the trajectories go on for ``steps`` frames after the start (``gns generate water2d --param
    num_steps=1000``), ``truth_max_m``: the same of the truth (else None)."""
    from gns.rollout import rollout_many

    w = simulator.window
    states, truths = [], []
    for position, kinds in _test_windows(simulator, dataset):
        last = min(settled, position.shape[0] - 1)
        states.append(_state(position, kinds, last - w + 1, w))
        truths.append(position[last:last + steps + 1, :, -1].mean(1) if last + steps < position.shape[0] else None)
    predicted = rollout_many(simulator, states, steps, [{} for _ in states], max_entities=4096)
    drifts, onsets, rises = [], [], []
    for state, out in zip(states, predicted):
        moved = out["position"][:, :, -1].mean(0) - state.position[:, -1, -1].mean()                 # (S,)
        drifts.append(float(moved.abs().max()))
        beyond = moved.abs().ge(0.01).nonzero()                                                       # (K, 1)
        onsets.append(int(beyond[0, 0]) + 1 if len(beyond) else None)
        rises.append(float(moved[-1]))
    truth = (max(float(abs(h - h[0]).max()) for h in truths) if all(h is not None for h in truths) else None)
    return {"max_m": max(drifts), "per_trajectory": drifts, "onset_step": onsets, "end_dy_m": rises,
            "num_trajectories": len(drifts), "steps": steps, "truth_max_m": truth}


def motion_factors(predicted, truth, window: int = 25) -> list[tuple[float, float, float, float]]:
    """Per ``window``-step window of two position sequences ``(T, N, D)`` (the same particles; D >= 2, gravity along
    the last axis): the predicted over the true mean kinetic energy per particle (``0.5 |v|^2``, per-step velocities),
    the predicted over the true rms of the horizontal (first axis) and of the vertical (last axis) per-step velocity,
    and the true mean kinetic energy. A list of ``(energy factor, horizontal factor, vertical factor, true energy)``."""
    import numpy as np

    rows = []
    n = min(len(predicted), len(truth))
    for a in range(0, n - 1, window):
        vp, vt = (np.diff(np.asarray(x[a:a + window + 1], dtype=np.float64), axis=0) for x in (predicted, truth))
        kp, kt = 0.5 * (vp ** 2).sum(-1).mean(), 0.5 * (vt ** 2).sum(-1).mean()
        rms = [np.sqrt((v[..., axis] ** 2).mean()) for axis in (0, -1) for v in (vp, vt)]
        rows.append((kp / kt, rms[0] / rms[1], rms[2] / rms[3], kt))
    return rows


def rest_motion(simulator, dataset: str, start: int = 250, steps: int = 149, window: int = 25) -> list[str]:
    """How the model keeps water that has come to rest: from the true window that ends at frame ``start`` of each
    test trajectory (by frame 250 the default set's water has landed and is settling), the model rolls ``steps``
    steps forward beside the truth; per ``window``-step window, the predicted over the true kinetic energy and
    rms horizontal and vertical speed (:func:`motion_factors`). Vertical factors far above 1 with horizontal ones
    near 1 are water bouncing on the floor; both below 1, water held too still."""
    import numpy as np

    from gns.rollout import rollout_many

    w = simulator.window
    states, truths, lasts = [], [], []
    for position, kinds in _test_windows(simulator, dataset):
        last = min(start, position.shape[0] - 2)
        states.append(_state(position, kinds, last - w + 1, w))
        truths.append(position[last:last + steps + 1])
        lasts.append(last)
    predicted = rollout_many(simulator, states, steps, [{} for _ in states], max_entities=4096)
    lines = []
    for k, (state, out, truth, last) in enumerate(zip(states, predicted, truths, lasts)):
        sequence = np.concatenate([state.position[:, -1:].numpy(), out["position"].numpy()], 1).transpose(1, 0, 2)
        cells = [f"{e:.2g}x (x {h:.2g}, y {v:.2g})" for e, h, v, _ in motion_factors(sequence, truth, window)]
        lines.append(f"{k:05d}: from frame {last}, energy (rms speed x, y) predicted / true per {window} steps: "
                     + ", ".join(cells))
    return lines


def run_one(lever: str, seed: int, args: argparse.Namespace) -> dict:
    """Train one (lever, seed) and score it; the result is written to ``<out>/<lever>-s<seed>/result.json``."""
    import torch

    from gns.config import load_config, preset_path
    from gns.domains import load_simulator, open_split_for
    from gns.evaluate import best_baseline, evaluate_split
    from gns.particles.task import ParticleTask
    from gns.train.loop import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) / f"{lever}-s{seed}"
    if lever in DATA_LEVERS and not Path(DATA_LEVERS[lever][1], "metadata.json").exists():  # as training reads it
        raise SystemExit(f"lever {lever}: its training set {DATA_LEVERS[lever][1]} is missing; make it with: "
                         f"{DATA_LEVERS[lever][2]}")
    overrides = [f"dataset={args.dataset}", f"out_dir={out}", f"train.seed={seed}", "train.time_budget_s=0",
                 "device=cpu", *LEVERS[lever][1]]
    if args.steps:
        overrides += [f"train.steps={args.steps}"]
    config = load_config(args.preset if args.preset.endswith((".yaml", ".yml")) else preset_path(args.preset),
                         overrides)
    task = ParticleTask(config)
    trainer = Trainer(config, task, config.out_dir)
    trainer.resume()
    t0 = time.perf_counter()
    trainer.train(progress=False)
    train_s = time.perf_counter() - t0
    if trainer.interrupted:
        raise SystemExit(f"{lever} seed {seed}: interrupted at step {trainer.step}; rerun to resume (not scored)")
    simulator, _, _ = load_simulator(out / "checkpoints" / "latest.pt", "cpu")
    t0 = time.perf_counter()
    summary = evaluate_split(simulator, open_split_for(simulator, args.dataset, "test"), HORIZONS, progress=False,
                             start_stride=50, save_path=out / "rollouts_test.h5")
    eval_s = time.perf_counter() - t0
    multi = summary.get("multistart", {})
    ratios = {}
    for h in ("20", "50", "100"):
        if h not in multi.get("model", {}).get("mse", {}):              # trajectories too short for it
            ratios[h] = {"ratio": float("nan"), "baseline": None}
            continue
        name, best = best_baseline({**multi, "rollouts": summary["rollouts"]}, "mse", h)
        ratios[h] = {"ratio": best / multi["model"]["mse"][h], "baseline": name}
    events = summary["divergence"]["first_frame"]
    result = {
        "lever": lever, "seed": seed, "what": LEVERS[lever][0], "overrides": LEVERS[lever][1],
        "steps": trainer.step, "train_s": train_s, "eval_s": eval_s, "threads": torch.get_num_threads(),
        "multistart_ratio": ratios,
        "full_mse": {n: summary[n]["mse"]["full"] for n in summary["rollouts"]},
        "escape_max": summary["model"]["escape_max"],
        "ke_window_factor_max": summary["model"]["ke_window_factor_max"],
        "first_divergence": min((e["step"] for e in events), default=None),
        **checks(simulator, args.dataset),
        "divergence_kinds": sorted({e["kind"] for e in events}),
    }
    (out / "result.json").write_text(json.dumps(result, indent=1))
    return result


def free_fall_cell(fall: dict | None) -> str:
    """Predicted free-flight acceleration in units of the true gravity ``g``, e.g. ``0.01, 1.02``."""
    if not fall:
        return "-"
    g = abs(fall["true"][1])
    return f"{fall['predicted'][0] / g:.2f}, {-fall['predicted'][1] / g:.2f}"


CHECKS = {"free_fall": free_fall, "landing_spread": landing_spread, "rest_drift": rest_drift}


def checks(simulator, dataset: str) -> dict:
    """The checks of one model beside the error figures: free flight, the spreading of landed water, and
    settled water staying at rest (each function's docstring says how)."""
    return {name: check(simulator, dataset) for name, check in CHECKS.items()}


def checks_cell(result: dict) -> list[str]:
    """The table's cells of the checks: free fall (x, y in g), landing spread ratio, rest drift (m)."""
    spread, rest = result.get("landing_spread"), result.get("rest_drift")
    return [free_fall_cell(result.get("free_fall")), f"{spread['ratio']:.2f}" if spread else "-",
            f"{rest['max_m']:.3g}" if rest else "-"]


def add_checks(out: Path, dataset: str) -> None:
    """Run the checks again on every finished run (runs scored before a check existed, or before it changed)."""
    from gns.domains import load_simulator

    for path in sorted(out.glob("*/result.json")):
        result = json.loads(path.read_text())
        simulator, _, _ = load_simulator(path.parent / "checkpoints" / "latest.pt", "cpu")
        result.update(checks(simulator, dataset))
        path.write_text(json.dumps(result, indent=1))


def table(out: Path) -> str:
    rows = []
    for path in sorted(out.glob("*/result.json")):
        r = json.loads(path.read_text())
        full = r["full_mse"]
        rows.append("| " + " | ".join([
            r["lever"], str(r["seed"]), r["what"],
            *(f"{r['multistart_ratio'][h]['ratio']:.2f}" for h in ("20", "50", "100")),
            f"{full['model']:.3g}", f"{full['constant_velocity'] / full['model']:.2g}",
            f"{full['constant_acceleration'] / full['model']:.2g}",
            f"{r['escape_max']:.3g}", f"{r['ke_window_factor_max']:.3g}",
            str(r["first_divergence"]) if r["first_divergence"] is not None else "none",
            *checks_cell(r),
            f"{r['train_s']:.0f} ({r['threads']})"]) + " |")
    head = ("| lever | seed | what | h20 | h50 | h100 | full MSE | CV / model (full) | gravity / model (full) "
            "| escape | KE x | first divergence | free fall: x, y / g | landing spread | rest drift (m) "
            "| train s (threads) |\n" + "|---" * 16 + "|")
    return head + "\n" + "\n".join(rows)


def density(rollouts: str, dataset: str) -> list[str]:
    """One line per trajectory of a particle rollout file, predicted against true: mean neighbours per particle
    (self excluded) within the dataset's connectivity radius at steps 50, 150, 250 and the last; the lowest particle
    over the whole rollout (m, the floor is the box's lower bound: how far landed water sinks into it); the largest
    acceleration of any particle along gravity, in units of g (impacts on the floor)."""
    import numpy as np
    import torch

    from gns.data import load_metadata
    from gns.neighbors import radius_graph
    from gns.rollout_io import read_rollouts

    meta = load_metadata(dataset)
    radius, gravity = meta.default_connectivity_radius, np.asarray(meta.gravity, dtype=np.float64)
    down = int(np.argmax(np.abs(gravity)))                                              # the axis gravity acts on
    records, _ = read_rollouts(rollouts)
    lines = []
    for record in records:
        sources = {name: torch.as_tensor(record.sources[name]["position"], dtype=torch.float32)
                   for name in ("predicted", "ground_truth")}                                  # (T, N, D)
        steps = sorted({min(s, len(sources["predicted"]) - 1) for s in (50, 150, 250, 10 ** 9)})
        cells = []
        for step in steps:
            per = {name: radius_graph(seq[step], radius, self_loops=False).shape[1] / max(1, seq.shape[1])
                   for name, seq in sources.items()}
            cells.append(f"step {step}: {per['predicted']:.1f} vs {per['ground_truth']:.1f}")
        lowest, peak = {}, {}
        for name, seq in sources.items():
            height = seq[..., down].double().numpy()                                          # (T, N)
            lowest[name] = height.min()
            change = height[2:] - 2.0 * height[1:-1] + height[:-2]                              # (T - 2, N)
            peak[name] = np.abs(change).max(initial=0.0) / abs(gravity[down])
        lines.append(f"{record.key} ({sources['predicted'].shape[1]} particles), predicted vs true: " + "; ".join(cells)
                     + f"; lowest {lowest['predicted']:.3f} vs {lowest['ground_truth']:.3f} m (floor "
                     f"{meta.bounds[down][0]:.3f}); largest acceleration {peak['predicted']:.0f} vs "
                     f"{peak['ground_truth']:.0f} g")
    return lines


def energy(rollouts: str, dataset: str, window: int = 50) -> list[str]:
    """Where the energy and escape figures of a particle rollout file come from, per trajectory: the predicted over
    the true mean kinetic energy per particle (``0.5 |v|^2``, per-step velocities) in each ``window``-step window,
    beside the true one (a large factor over water the truth has settled is jitter at rest, one over moving water a
    splash); and how far the predicted particles reach beyond the box the true ones span, per side (above, below,
    left, right; 2-D, gravity along the second axis), as a share of the box width, with the step of the largest."""
    import numpy as np

    from gns.data import load_metadata
    from gns.rollout_io import read_rollouts

    meta = load_metadata(dataset)
    bounds = np.asarray(meta.bounds, dtype=np.float64)
    width = float((bounds[:, 1] - bounds[:, 0]).max())
    records, _ = read_rollouts(rollouts)
    lines = []
    for record in records:
        pos = {name: record.sources[name]["position"].astype(np.float64) for name in ("predicted", "ground_truth")}
        ke = {name: 0.5 * (np.diff(x, axis=0) ** 2).sum(-1).mean(-1) for name, x in pos.items()}   # (T - 1,)
        cells = []
        for start in range(0, len(ke["ground_truth"]), window):
            p, t = ke["predicted"][start:start + window].mean(), ke["ground_truth"][start:start + window].mean()
            cells.append(f"{p / t:.2g}x of {t:.1e}" if t > 0 else f"{p:.1e} of 0")
        x, truth = pos["predicted"], pos["ground_truth"]
        beyond = {"above": x[..., 1].max(1) - truth[..., 1].max(1), "below": truth[..., 1].min(1) - x[..., 1].min(1),
                  "left": truth[..., 0].min(1) - x[..., 0].min(1), "right": x[..., 0].max(1) - truth[..., 0].max(1)}
        sides = ", ".join(f"{side} {max(float(d.max()), 0.0) / width:.3f} (step {int(d.argmax())})"
                          for side, d in beyond.items())
        lines.append(f"{record.key}: KE predicted / true per {window} steps: " + ", ".join(cells))
        lines.append(f"{record.key}: beyond the truth's extent, box widths: {sides}")
    return lines


def flight(rollouts: str, dataset: str, every: int = 10, tolerance: float = 0.1) -> list[str]:
    """One line per trajectory of a particle rollout file whose water starts in the air: the mean acceleration
    along gravity (in g) of the particles above the middle of the box at the first frame, predicted and true,
    per ``every`` steps, for as long as the truth's stays within ``tolerance`` of g (until that water lands), and
    the first step whose predicted acceleration is below half of g (a block that stops falling in mid-air)."""
    import numpy as np

    from gns.data import load_metadata
    from gns.rollout_io import read_rollouts

    meta = load_metadata(dataset)
    gravity = np.asarray(meta.gravity, dtype=np.float64)
    down = int(np.argmax(np.abs(gravity)))
    middle = float(np.mean(meta.bounds[down]))
    g = gravity[down]
    records, _ = read_rollouts(rollouts)
    lines = []
    for record in records:
        heights = {name: np.asarray(record.sources[name]["position"], dtype=np.float64)[..., down]
                   for name in ("predicted", "ground_truth")}                                  # (T, N)
        airborne = heights["ground_truth"][0] > middle
        if not airborne.any():
            continue
        accel = {name: (h[2:] - 2.0 * h[1:-1] + h[:-2])[:, airborne].mean(1) / g for name, h in heights.items()}
        off = np.nonzero(np.abs(accel["ground_truth"] - 1.0) > tolerance)[0]
        end = int(off[0]) if len(off) else len(accel["ground_truth"])                          # truth in flight
        if end < every:
            continue
        windows = range(0, end - every + 1, every)
        cells = {name: ", ".join(f"{a[k:k + every].mean():.2f}" for k in windows) for name, a in accel.items()}
        stops = np.nonzero(accel["predicted"][:end] < 0.5)[0]
        lines.append(f"{record.key} ({int(airborne.sum())} particles above {middle:.2f} m at the start), steps 1-{end} "
                     f"in {every}s: predicted {cells['predicted']}; true {cells['ground_truth']}; predicted below "
                     f"0.5 g from step " + (f"{int(stops[0]) + 1}" if len(stops) else "- (never)"))
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levers", nargs="+", default=["preset"], choices=sorted(LEVERS),
                   help="levers to train and score (default: the preset alone)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds (default: 0)")
    p.add_argument("--preset", default=str(BASE),
                   help="the preset the levers change: a shipped preset's name or a YAML file (default: "
                        "benchmarks/configs/levers_base.yaml, the main job's preset when the levers were measured)")
    p.add_argument("--dataset", default="datasets/water2d", help="the water dataset (default: datasets/water2d)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the preset's)")
    p.add_argument("--out", default="runs/levers", help="folder of the runs (default: runs/levers)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (default: 1)")
    p.add_argument("--threads", type=int, default=0, help="torch threads per run (default: torch's)")
    p.add_argument("--table", action="store_true", help="print the table of the finished runs; train nothing")
    p.add_argument("--add-checks", action="store_true",
                   help="run the checks (free fall, landing spread, rest drift) again on every finished run (runs "
                        "scored before a check existed or changed), then print the table")
    p.add_argument("--checks-of", nargs="+", metavar="CHECKPOINT", default=None,
                   help="print the checks of these checkpoints (free fall: x, y acceleration in units of g; landing "
                        "spread: the predicted spreading of landed water over the truth's; rest drift: how far the height "
                        "of settled water moves in 300 steps, m); train nothing")
    p.add_argument("--density-of", nargs="+", metavar="ROLLOUTS_H5", default=None,
                   help="print how densely the predicted and the true particles of these rollout files pack (mean "
                        "neighbours per particle within the dataset's connectivity radius, at steps 50, 150, 250 "
                        "and the last), how low they reach (the lowest particle, against the floor) and the largest "
                        "acceleration along gravity (in g: impacts); train nothing")
    p.add_argument("--flight-of", nargs="+", metavar="ROLLOUTS_H5", default=None,
                   help="print, for the water that starts above the middle of the box in these rollout files, the mean "
                        "acceleration along gravity (in g) predicted and true per 10 steps while the truth's falls "
                        "freely, and the first step the predicted one is below 0.5 g; train nothing")
    p.add_argument("--energy-of", nargs="+", metavar="ROLLOUTS_H5", default=None,
                   help="print, per trajectory of these rollout files, the predicted over the true mean kinetic "
                        "energy in each 50-step window beside the true one, and how far the predicted particles reach "
                        "beyond the truth's extent on each side (box widths); train nothing")
    p.add_argument("--rest-motion-of", nargs="+", metavar="CHECKPOINT", default=None,
                   help="print, for these checkpoints, how they keep water that has come to rest: from the true "
                        "window ending at frame --rest-from of each test trajectory, the predicted over the true "
                        "kinetic energy and rms horizontal and vertical speed per 25 steps over --rest-steps steps; "
                        "train nothing")
    p.add_argument("--rest-from", type=int, default=250,
                   help="--rest-motion-of: the last frame of the true input window (default: 250)")
    p.add_argument("--rest-steps", type=int, default=149,
                   help="--rest-motion-of: steps rolled out (default: 149, to the default set's last frame)")
    p.add_argument("--one", nargs=2, metavar=("LEVER", "SEED"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.density_of or args.flight_of or args.energy_of:
        for paths, report in ((args.density_of, density), (args.flight_of, flight), (args.energy_of, energy)):
            for path in paths or ():
                print(path)
                for line in report(path, args.dataset):
                    print("  " + line)
        return
    if args.rest_motion_of:
        from gns.domains import load_simulator

        for checkpoint in args.rest_motion_of:
            simulator, _, _ = load_simulator(checkpoint, "cpu")
            print(checkpoint)
            for line in rest_motion(simulator, args.dataset, args.rest_from, args.rest_steps):
                print("  " + line)
        return
    if args.one:
        run_one(args.one[0], int(args.one[1]), args)
        return
    if args.checks_of:
        from gns.domains import load_simulator

        for checkpoint in args.checks_of:
            simulator, _, _ = load_simulator(checkpoint, "cpu")
            result = checks(simulator, args.dataset)
            fall, spread, rest = checks_cell(result)
            truth = result["rest_drift"]["truth_max_m"]
            print(f"{checkpoint}: free fall x, y / g = {fall}; landing spread {spread}; rest drift {rest} m"
                  + (f" (the truth's: {truth:.3g} m)" if truth is not None else "")
                  + f"; rest drift onset steps {result['rest_drift']['onset_step']}, vertical moves "
                  + ", ".join(f"{dy:+.3f}" for dy in result["rest_drift"]["end_dy_m"]) + " m")
        return
    if args.add_checks:
        add_checks(out, args.dataset)
    elif not args.table:
        todo = [(lever, seed) for lever in args.levers for seed in args.seeds
                if not (out / f"{lever}-s{seed}" / "result.json").exists()]
        running: list[subprocess.Popen] = []
        base = [sys.executable, __file__, "--preset", args.preset, "--dataset", args.dataset, "--out", args.out,
                "--threads", str(args.threads)] + (["--steps", str(args.steps)] if args.steps else [])
        while todo or running:
            while todo and len(running) < max(1, args.jobs):
                lever, seed = todo.pop(0)
                log = open(out / f"{lever}-s{seed}.log", "w") if out.mkdir(parents=True, exist_ok=True) is None else None
                print(f"start {lever} seed {seed}", flush=True)
                running.append(subprocess.Popen(base + ["--one", lever, str(seed)], stdout=log,
                                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}))
            time.sleep(2)
            for proc in [r for r in running if r.poll() is not None]:
                running.remove(proc)
                if proc.returncode:
                    print(f"a run failed ({' '.join(proc.args[-2:])}): see its log under {out}", flush=True)
    print(table(out))


if __name__ == "__main__":
    main()
