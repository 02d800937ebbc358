"""Object pictures: rollouts drawn as the scenes' own video, side by side (ground truth | prediction).

Each panel is the raster video of :mod:`gns.objects.video` (every object as its shape in its
colour, the image spanning the box) with the springs drawn over it as white lines, rendered from
the rollout file alone: the file's ``static`` group holds the objects' shapes, sizes and colours,
its ``links`` the springs (:meth:`ObjectEvaluation.drawing`), its ``system`` group the scene's
static obstacles (:data:`gns.objects.state.OBSTACLES`, drawn by the video in its obstacle grey), its
``info`` the box. The animation and the writing are the shared ones of :mod:`gns.viz`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.collections import LineCollection

from gns.data.objects import ObjectScene, ObjectTrajectory
from gns.errors import GnsInputError
from gns.objects.state import OBSTACLES
from gns.objects.video import render_object_frames
from gns.rollout_io import RolloutRecord, comparison_panels, read_rollouts
from gns.viz import RolloutAnimation, _animation_figure, _frame_steps, _freeze_layout, save_animation

__all__ = ["record_trajectory", "record_obstacles", "animate_objects", "render_object_rollout"]


def record_trajectory(record: RolloutRecord, source: str, bounds: Sequence[Sequence[float]]) -> ObjectTrajectory:
    """One source of a rollout record as an :class:`~gns.data.objects.ObjectTrajectory` (poses only:
    velocities and actions are zero), to be drawn by :func:`gns.objects.video.render_object_frames`;
    its scene holds the record's obstacles (:func:`record_obstacles`).

    Raises:
        GnsInputError: the record lacks an attribute the drawing needs, or holds malformed obstacles.
    """
    needed = ("shape", "size", "colour")
    missing = [name for name in needed if name not in record.static]
    if missing:
        raise GnsInputError("an object rollout record needs the objects' attributes to be drawn",
                            key=f"{record.key}/static", expected=list(needed), found=sorted(record.static))
    count = record.num_entities
    ones = np.ones(count, dtype=np.float32)
    springs = np.asarray(record.links.get("springs", np.zeros((0, 2))), dtype=np.int64).reshape(-1, 2)
    unit = np.ones(len(springs), dtype=np.float32)
    scene = ObjectScene(bounds=np.asarray(bounds, dtype=np.float32), shape=np.asarray(record.static["shape"]),
                        size=np.asarray(record.static["size"]), mass=ones, moment=ones, friction=ones,
                        restitution=ones, colour=np.asarray(record.static["colour"]), spring_pairs=springs,
                        spring_rest_length=unit, spring_stiffness=unit, spring_damping=unit,
                        **record_obstacles(record))
    fields = record.sources[source]
    frames = fields["position"].shape[0]
    zeros = np.zeros((frames, count), dtype=np.float32)
    return ObjectTrajectory(scene, fields["position"], fields["angle"][..., 0], np.zeros((frames, count, 2)), zeros,
                            np.zeros((max(frames - 1, 0), count, 3)), key=record.key)


def record_obstacles(record: RolloutRecord) -> dict[str, np.ndarray]:
    """The static obstacles of a record's scene, from its ``system`` attributes, without the padding rows
    (shape code -1) of a scene batched with scenes of more obstacles: ``obstacle_shape (O,)`` int64,
    ``obstacle_size (O, 2)``, ``obstacle_position (O, 2)``, ``obstacle_angle (O,)`` float32 (``O = 0``
    for a record without obstacles, e.g. one written before rollout files held them).

    Raises:
        GnsInputError: some but not all of the obstacle arrays, or arrays of the wrong shapes.
    """
    present = [name for name in OBSTACLES if name in record.system]
    if not present:
        return {}
    where = f"{record.key}/system"
    if len(present) != len(OBSTACLES):
        raise GnsInputError("a record's obstacles need every obstacle array", key=where, expected=list(OBSTACLES),
                            found=sorted(record.system))
    shapes = np.asarray(record.system["obstacle_shape"]).astype(np.int64)
    if shapes.ndim != 1:
        raise GnsInputError("obstacle shapes must be one code per obstacle", key=f"{where}/obstacle_shape",
                            expected="(M,)", found=shapes.shape)
    out = {"obstacle_shape": shapes}
    for name, tail in OBSTACLES.items():
        if name == "obstacle_shape":
            continue
        values = np.asarray(record.system[name], dtype=np.float32)
        if values.shape != (len(shapes), *tail):
            raise GnsInputError("an obstacle array must have one row per obstacle", key=f"{where}/{name}",
                                expected=(len(shapes), *tail), found=values.shape)
        out[name] = values
    keep = shapes >= 0                                                                      # padding: -1
    return {name: values[keep] for name, values in out.items()}


def animate_objects(panels: Sequence[tuple[str, ObjectTrajectory]], *, stride: int = 1, fps: int = 20,
                    pixels: int = 160, max_frames: int | None = 200) -> RolloutAnimation:
    """Animate object trajectories of one box side by side, one panel each.

    Args:
        panels: ``(title, trajectory)`` per panel, all of the same number of frames.
        stride: show every ``stride``-th frame; fps: frames per second.
        pixels: width of each panel's image.
        max_frames: at most this many frames (evenly subsampled), None for no cap.

    Raises:
        ValueError: no panel, or panels of different lengths.
    """
    if not panels:
        raise ValueError("nothing to animate: no panels")
    num_frames = panels[0][1].num_frames
    if any(t.num_frames != num_frames for _, t in panels):
        raise ValueError(f"panels must have the same frames: {[t.num_frames for _, t in panels]}")
    steps = _frame_steps(num_frames, stride, max_frames)
    limits = np.asarray(panels[0][1].scene.bounds, dtype=float)                            # (2, 2)
    fig, axes = _animation_figure(len(panels), limits)
    videos = [render_object_frames(t, pixels, frames=[int(s) for s in steps]) for _, t in panels]  # (F, H, W, 3)
    extent = (limits[0, 0], limits[0, 1], limits[1, 0], limits[1, 1])
    images, springs = [], []
    for ax, (title, trajectory), video in zip(axes, panels, videos):
        ax.set_title(title)
        images.append(ax.imshow(video[0], extent=extent, origin="upper", interpolation="nearest"))
        springs.append(ax.add_collection(LineCollection(_spring_segments(trajectory, int(steps[0])), colors="white",
                                                        linewidths=1.0)))
    counter = fig.suptitle(f"step 0 / {num_frames - 1}")
    _freeze_layout(fig)
    index = {int(s): i for i, s in enumerate(steps)}

    def update(step: int) -> tuple:
        for image, video, lines, (_, trajectory) in zip(images, videos, springs, panels):
            image.set_data(video[index[step]])
            lines.set_segments(_spring_segments(trajectory, step))
        counter.set_text(f"step {step} / {num_frames - 1}")
        return (*images, *springs, counter)

    return RolloutAnimation(fig, update, steps=steps, axes=axes, fps=fps)


def _spring_segments(trajectory: ObjectTrajectory, frame: int) -> np.ndarray:
    """``(S, 2, 2)`` the centres each spring joins at ``frame``."""
    return trajectory.position[frame][trajectory.scene.spring_pairs]


def render_object_rollout(rollout_file: str | os.PathLike, out: str | os.PathLike, *,
                          trajectory: int | str | None = None, stride: int = 1, fps: int = 20, pixels: int = 160,
                          max_frames: int | None = 200, progress: bool = True, dpi: int = 80) -> Path:
    """Animate one trajectory of an object rollout file (what ``gns render`` does for object models).

    Panels: ground truth | prediction (:func:`gns.rollout_io.comparison_panels`); the box is the
    file's ``info["bounds"]``.

    Raises:
        GnsInputError: not an object rollout file, no such trajectory, or a record that cannot be drawn.
    """
    records, attrs = read_rollouts(rollout_file)
    if attrs["simulator"] != "objects":
        raise GnsInputError("not an object rollout file", file=rollout_file, key="simulator", expected="objects",
                            found=attrs["simulator"])
    bounds = (attrs.get("info") or {}).get("bounds")
    if bounds is None:
        raise GnsInputError("an object rollout file needs the box", file=rollout_file, key="info/bounds",
                            expected="[[xlo, xhi], [ylo, yhi]]", found=None)
    panels = [(title, record_trajectory(record, source, bounds))
              for title, record, source in comparison_panels(records, attrs, trajectory, file=rollout_file)]
    anim = animate_objects(panels, stride=stride, fps=fps, pixels=pixels, max_frames=max_frames)
    return save_animation(anim, out, fps=fps, dpi=dpi)
