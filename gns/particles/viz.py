"""Particle pictures: animations of rollouts (any number of panels), single frames, rollout files.

Animations are drawn on a bare :class:`matplotlib.figure.Figure` that pyplot does not track and
saved atomically (:func:`gns.viz.save_animation`); :func:`frame_figure` makes a pyplot figure
when no ``ax`` is given, so that a notebook shows it inline.

Example:
    >>> anim = animate_rollout(predicted, ground_truth, particle_type=types, bounds=bounds)
    >>> save_animation(anim, "rollout.gif")            # or render_rollout("rollout.gif", ...)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from mpl_toolkits.mplot3d import Axes3D
from tqdm import tqdm

from gns.errors import GnsInputError
from gns.progress import no_bar
from gns.rollout_io import comparison_panels, read_rollouts
from gns.viz import (RolloutAnimation, _animation_figure, _axis_limits, _frame_steps, _freeze_layout, _palette,
                     _scatter, _set_positions, _style_axes, _to_numpy, save_animation)

__all__ = ["animate_particles", "animate_rollout", "render_rollout", "render_file", "frame_figure"]

# Colour of every particle when no particle types are given.
_DEFAULT_COLOR = "tab:blue"


def animate_particles(panels: Sequence[tuple[str, Any, Any | None]], *, bounds: Any | None = None,
                      stride: int = 1, fps: int = 20, point_size: float | None = None,
                      max_frames: int | None = 200) -> RolloutAnimation:
    """Animate particle trajectories side by side, one panel each (their particle counts may differ).

    2D positions are drawn as a scatter plot, 3D positions as a 3D scatter plot (depth-shaded).
    Particles are coloured by type with the same colours in every panel, and a figure legend
    lists the type ids and their particle counts (in the first panel that has the type). Axis
    limits are fixed for the whole animation, and the title counts ``step t / T-1``.

    Args:
        panels: ``(title, positions (T, N, D), particle_type (N,) or None)`` per panel, ``D`` in {2, 3}.
        bounds: ``(D, 2)`` axis limits ``[lo, hi]`` per dimension. When None, the extent of the
            first panel plus a 5% margin, so that a diverging panel flies out of view instead of
            shrinking the scene.
        stride: show every ``stride``-th step.
        fps: frames per second, for display and as the default when saving.
        point_size: marker area in points^2; None picks one from ``N``.
        max_frames: at most this many frames. When the strided trajectory is longer, its
            frames are subsampled evenly (first and last step kept), so the animation
            still spans the whole rollout. None for no cap.

    Returns:
        A :class:`gns.viz.RolloutAnimation` with ``min(ceil(T / stride), max_frames)`` frames.

    Raises:
        ValueError: arrays of the wrong rank or dimension, panels of different ``T`` or ``D``, a
            ``particle_type`` or ``bounds`` of the wrong shape, or ``stride`` / ``max_frames`` / ``fps`` < 1.
    """
    if not panels:
        raise ValueError("nothing to animate: no panels")
    shown = [(str(title), _as_trajectory(positions, str(title)), types) for title, positions, types in panels]
    num_steps, _, dim = shown[0][1].shape
    for title, trajectory, _ in shown[1:]:
        if trajectory.shape[0] != num_steps or trajectory.shape[2] != dim:
            raise ValueError(f"panels must share T and D: {shown[0][0]} has {shown[0][1].shape}, {title} has "
                             f"{trajectory.shape}")
    if fps < 1:
        raise ValueError(f"fps must be >= 1, found {fps}")
    steps = _frame_steps(num_steps, stride, max_frames)
    colors, handles = _type_colors([types for _, _, types in shown], [t.shape[1] for _, t, _ in shown])
    limits = _axis_limits(bounds, shown[0][1], dim)
    size = _default_point_size(shown[0][1].shape[1]) if point_size is None else float(point_size)
    fig, axes = _animation_figure(len(shown), limits)
    scatters = []
    for ax, (title, trajectory, _), panel_colors in zip(axes, shown, colors):
        ax.set_title(title)
        scatters.append(_scatter(ax, trajectory[steps[0]], panel_colors, size))
    counter = fig.suptitle(_counter_text(int(steps[0]), num_steps))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6),
                   title="particle type", frameon=False, fontsize="small")
    _freeze_layout(fig)

    def update(step: int) -> tuple:
        for scatter, (_, trajectory, _) in zip(scatters, shown):
            _set_positions(scatter, trajectory[step])
        counter.set_text(_counter_text(step, num_steps))
        return (*scatters, counter)

    return RolloutAnimation(fig, update, steps=steps, axes=axes, fps=fps)


def animate_rollout(predicted: Any, ground_truth: Any | None = None, *,
                    particle_type: Any | None = None, bounds: Any | None = None,
                    stride: int = 1, fps: int = 20,
                    titles: Sequence[str] = ("Ground truth", "Prediction"),
                    point_size: float | None = None,
                    max_frames: int | None = 200) -> RolloutAnimation:
    """Animate a rollout, side by side with its ground truth (:func:`animate_particles`).

    Panels are ground truth (left) and prediction (right), or the prediction alone when
    ``ground_truth`` is None.

    Args:
        predicted: ``(T, N, D)`` predicted positions, ``D`` in {2, 3}.
        ground_truth: ``(T, N, D)`` true positions (same shape), or None.
        particle_type: ``(N,)`` integer type of each particle, or None (one colour).
        titles: panel titles ``(ground truth, prediction)``.
        bounds, stride, fps, point_size, max_frames: as in :func:`animate_particles`.

    Raises:
        ValueError: as :func:`animate_particles`, and ``predicted`` and ``ground_truth`` of
            different shapes (both are named).
    """
    pred = _as_trajectory(predicted, "predicted")
    if ground_truth is None:
        return animate_particles([(str(titles[-1]), pred, particle_type)], bounds=bounds, stride=stride, fps=fps,
                                 point_size=point_size, max_frames=max_frames)
    truth = _as_trajectory(ground_truth, "ground_truth")
    if truth.shape != pred.shape:
        raise ValueError("predicted and ground_truth must have the same shape (T, N, D); found "
                         f"predicted {pred.shape} and ground_truth {truth.shape}")
    return animate_particles([(str(titles[0]), truth, particle_type), (str(titles[1]), pred, particle_type)],
                             bounds=bounds, stride=stride, fps=fps, point_size=point_size, max_frames=max_frames)


def render_rollout(path: str | Path, predicted: Any, ground_truth: Any | None = None, *,
                   fps: int = 20, dpi: int = 80, progress: bool = True, **kwargs: Any) -> Path:
    """Animate a rollout and save it in one call, with a tqdm progress bar over frames.

    Args:
        path: destination ``.gif`` or ``.mp4`` (see :func:`save_animation`).
        predicted: ``(T, N, D)`` predicted positions.
        ground_truth: ``(T, N, D)`` true positions, or None.
        fps: frames per second.
        dpi: resolution of each frame.
        progress: show the progress bar (on stderr).
        **kwargs: passed to :func:`animate_rollout` (``particle_type``, ``bounds``,
            ``stride``, ``titles``, ``point_size``, ``max_frames``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    anim = animate_rollout(predicted, ground_truth, fps=fps, **kwargs)
    with tqdm(total=len(anim.steps), desc=f"render {path.name}", unit="frame",
              disable=no_bar(progress)) as bar:
        return save_animation(anim, path, fps=fps, dpi=dpi,
                              progress_callback=lambda i, n: bar.update(1))


def render_file(rollout_file: str | os.PathLike, out: str | os.PathLike, *, trajectory: int | str | None = None,
                stride: int = 2, fps: int = 20, bounds: Any | None = None, max_frames: int | None = 200,
                dpi: int = 80, progress: bool = True, **_: Any) -> Path:
    """Animate one trajectory of a particle rollout file (what ``gns render`` does for particle models).

    Panels: ground truth | prediction, or, for a counterfactual file, factual | counterfactual
    (| solver) (:func:`gns.rollout_io.comparison_panels`). The box is the file's ``info["bounds"]``
    unless ``bounds`` is given.
    """
    records, attrs = read_rollouts(rollout_file)
    if attrs["simulator"] != "particles":
        raise GnsInputError("not a particle rollout file", file=rollout_file, key="simulator",
                            expected="particles", found=attrs["simulator"])
    panels = comparison_panels(records, attrs, trajectory, file=rollout_file)
    field = attrs["target_field"]
    shown = [(title, record.sources[source][field], record.static.get("particle_type"))
             for title, record, source in panels]
    bounds = (attrs.get("info") or {}).get("bounds") if bounds is None else bounds
    anim = animate_particles(shown, bounds=bounds, stride=stride, fps=fps, max_frames=max_frames)
    out = Path(out)
    with tqdm(total=len(anim.steps), desc=f"render {out.name}", unit="frame", disable=no_bar(progress)) as bar:
        return save_animation(anim, out, fps=fps, dpi=dpi, progress_callback=lambda i, n: bar.update(1))


def frame_figure(positions: Any, *, particle_type: Any | None = None, bounds: Any | None = None,
                 ax: Axes | None = None, title: str | None = None,
                 point_size: float | None = None) -> Axes:
    """Draw one frame of particles.

    Args:
        positions: ``(N, D)`` positions, ``D`` in {2, 3}.
        particle_type: ``(N,)`` integer types (colours and a legend), or None.
        bounds: ``(D, 2)`` axis limits, or None for the data extent plus 5%.
        ax: where to draw; must be a 3D axes (``projection="3d"``) when ``D == 3``. When
            None, a new pyplot figure is made.
        title: axes title.
        point_size: marker area in points^2; None picks one from ``N``.

    Returns:
        The axes drawn on.

    Raises:
        ValueError: wrong shapes, or a 2D ``ax`` for 3D positions.
    """
    pos = _to_numpy(positions).astype(float, copy=False)
    if pos.ndim != 2 or pos.shape[1] not in (2, 3):
        raise ValueError(f"positions must have shape (N, D) with D in {{2, 3}}, found {pos.shape}")
    num_particles, dim = pos.shape
    if ax is None:
        fig = plt.figure(figsize=(5, 5), layout="constrained")
        ax = fig.add_subplot(projection="3d" if dim == 3 else None)
    elif dim == 3 and not isinstance(ax, Axes3D):
        raise ValueError("3D positions need a 3D axes: create it with "
                         "fig.add_subplot(projection='3d'), or pass ax=None")
    (colors,), handles = _type_colors([particle_type], [num_particles])
    _style_axes(ax, _axis_limits(bounds, pos[None], dim))
    size = _default_point_size(num_particles) if point_size is None else float(point_size)
    _scatter(ax, pos, colors, size)
    if title is not None:
        ax.set_title(title)
    if handles:
        # 3D axes have empty space in the upper left corner; "best" does not know that.
        ax.legend(handles=handles, title="particle type", fontsize="small",
                  loc="upper left" if dim == 3 else "best")
    return ax



# ------------------------------------------------------------------------------ helpers


def _as_trajectory(x: Any, name: str) -> np.ndarray:
    """Check and convert a ``(T, N, D)`` trajectory to float numpy."""
    array = _to_numpy(x).astype(float, copy=False)
    if array.ndim != 3 or array.shape[2] not in (2, 3) or array.shape[0] < 1:
        raise ValueError(f"{name} must have shape (T, N, D) with T >= 1 and D in {{2, 3}}, "
                         f"found {array.shape}")
    return array


def _type_colors(particle_types: Sequence[Any | None], counts: Sequence[int]
                 ) -> tuple[list[np.ndarray], list[Line2D]]:
    """``(N_i, 4)`` RGBA colour per particle of each panel (one palette for all) and legend handles."""
    if all(t is None for t in particle_types):
        rgba = matplotlib.colors.to_rgba(_DEFAULT_COLOR)
        return [np.tile(rgba, (n, 1)) for n in counts], []
    arrays = []
    for types, n in zip(particle_types, counts):
        types = np.zeros(n, dtype=int) if types is None else _to_numpy(types)
        if types.shape != (n,):
            raise ValueError(f"particle_type must have shape (N,) = ({n},), found {types.shape}")
        arrays.append(types)
    ids = np.unique(np.concatenate(arrays))
    palette = _palette(len(ids))  # (K, 4), one colour per distinct type, by sorted id
    counted: dict[int, int] = {}
    for types in arrays:          # counts from the first panel holding each type
        for k, c in zip(*np.unique(types, return_counts=True)):
            counted.setdefault(int(np.searchsorted(ids, k)), int(c))
    handles = [Line2D([], [], linestyle="", marker="o", markersize=7, color=palette[k],
                      label=f"{_format_id(ids[k])} (n={counted[k]})") for k in range(len(ids))]
    return [palette[np.searchsorted(ids, types)] for types in arrays], handles


def _format_id(type_id: Any) -> str:
    value = float(type_id)
    return str(int(value)) if value.is_integer() else str(type_id)


def _default_point_size(num_particles: int) -> float:
    """Marker area (points^2) that keeps a few thousand particles apart in a 4-inch panel."""
    return float(np.clip(3000.0 / max(num_particles, 1), 1.0, 30.0))


def _counter_text(step: int, num_steps: int) -> str:
    return f"step {step} / {num_steps - 1}"
