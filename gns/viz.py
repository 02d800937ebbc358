"""What every domain's pictures share: animation objects, saving, notebook players, error plots.

The domains draw their own animations (:mod:`gns.particles.viz`, :mod:`gns.mesh.viz`) with the
helpers here. Every function accepts numpy arrays or torch tensors (any device, any float
dtype) and depends only on numpy, matplotlib, tqdm and pillow.

Two kinds of figure are made, on purpose in two different ways:

* Animations are drawn on a bare :class:`matplotlib.figure.Figure` that pyplot does not track:
  nothing leaks when the CLI renders many files, and a notebook shows only the animation
  (:func:`animation_html`), not a stray static copy of its first frame.
* Static plots (:func:`plot_error_vs_horizon`, :func:`plot_error_over_time`) create their
  figure with pyplot when no ``ax`` is given, so that a notebook displays them inline.

Example:
    >>> save_animation(anim, "rollout.gif")
    >>> plot_error_vs_horizon({"model": {1: 1e-6, 10: 1e-4}}).figure.savefig("error.png")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FFMpegWriter, FuncAnimation, PillowWriter
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from gns.atomic import atomic_path

__all__ = [
    "RolloutAnimation",
    "save_animation",
    "plot_error_vs_horizon",
    "plot_evaluation",
    "save_figure",
    "plot_error_over_time",
    "animation_html",
]

# Marker shapes cycled over the lines of the error plots (legible in black and white too).
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
# Width of one animation panel in inches; heights follow the box's aspect ratio.
_PANEL_INCHES = 4.0


class RolloutAnimation(FuncAnimation):
    """A :class:`~matplotlib.animation.FuncAnimation` that remembers how it was made.

    Attributes:
        figure: the figure the panels are drawn on.
        axes: the panels, ground truth first when there is one.
        fps: frames per second it was created with (the default for :func:`save_animation`).
        steps: ``(F,)`` int array, the trajectory step shown by each frame.
    """

    def __init__(self, fig: Figure, func: Callable[[int], Any], *, steps: np.ndarray,
                 axes: Sequence[Axes], fps: int) -> None:
        super().__init__(fig, func, frames=[int(t) for t in steps], interval=1000.0 / fps,
                         blit=False, repeat=True, cache_frame_data=False)
        self.figure = fig
        self.update = func   # step -> the artists it changed (what a GIF redraws per frame: _blitted_frames)
        self.axes = list(axes)
        self.fps = fps
        self.steps = np.asarray(steps, dtype=int)


# --------------------------------------------------------------------------- animations


def save_animation(anim: FuncAnimation, path: str | Path, fps: int | None = None, dpi: int = 80,
                   *, progress_callback: Callable[[int, int], None] | None = None) -> Path:
    """Write an animation to ``.gif`` (always available) or ``.mp4`` (needs ffmpeg).

    The file is written to a temporary name in the same directory and moved into place
    with :func:`os.replace`, so ``path`` is either the old file or the complete new one,
    never half written; the temporary file is removed if writing fails.

    Args:
        anim: the animation, e.g. from :func:`animate_rollout`.
        path: destination; the suffix picks the format. Parent folders are created.
        fps: frames per second; None uses the animation's own ``fps`` (else 20).
        dpi: resolution of each frame.
        progress_callback: called as ``progress_callback(frame_index, total_frames)``
            after each frame (see :meth:`matplotlib.animation.Animation.save`).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        RuntimeError: ``.mp4`` was asked for but no ffmpeg binary was found.
        ValueError: the suffix is neither ``.gif`` nor ``.mp4``.
    """
    path = Path(path)
    fps = int(getattr(anim, "fps", 20)) if fps is None else int(fps)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        writer = PillowWriter(fps=fps)
    elif suffix == ".mp4":
        if not FFMpegWriter.isAvailable():
            ffmpeg = matplotlib.rcParams["animation.ffmpeg_path"]
            raise RuntimeError(
                f"cannot write '{path}': .mp4 needs the ffmpeg binary (rcParams"
                f"['animation.ffmpeg_path'] = '{ffmpeg}'), which was not found on this machine; "
                f"save as .gif instead ('{path.with_suffix('.gif')}') or install ffmpeg")
        writer = FFMpegWriter(fps=fps)
    else:
        raise ValueError(f"cannot write '{path}': unsupported animation format '{path.suffix}' "
                         "(expected .gif or .mp4)")

    frames = _blitted_frames(anim, dpi, progress_callback) if suffix == ".gif" else None
    # The real suffix last: the writers pick the encoder from it.
    with atomic_path(path, suffix=suffix) as tmp:
        if frames is not None:   # as PillowWriter.finish writes them
            frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
        else:
            anim.save(str(tmp), writer=writer, dpi=dpi, progress_callback=progress_callback)
    return path


def _blitted_frames(anim: FuncAnimation, dpi: int, progress_callback: Callable[[int, int], None] | None
                    ) -> list[Any] | None:
    """The frames of a 2D :class:`RolloutAnimation` as RGB images, the figure drawn once and only the artists
    that each frame changes drawn again over it (matplotlib's blitting), instead of a whole redraw per frame as
    :meth:`~matplotlib.animation.Animation.save` does: the same pictures but for the changed artists lying on
    top of the axes' frame and ticks (``benchmarks/render.py`` measures the time and the pixels that differ).
    None where this does not apply (another animation, 3D axes, whose projection a whole draw computes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    fig = anim._fig
    if not isinstance(anim, RolloutAnimation) or any(ax.name == "3d" for ax in fig.axes):
        return None
    anim._draw_was_started = True   # rendered here, not through matplotlib's loop: no "deleted without rendering"
    steps = [int(t) for t in anim.steps]
    original_canvas, original_dpi = fig.canvas, fig.dpi
    changed = list(anim.update(steps[0]))
    try:
        canvas = FigureCanvasAgg(fig)   # off screen, whatever the figure is shown on
        fig.dpi = dpi
        for artist in changed:
            artist.set_animated(True)      # left out of a whole draw
        canvas.draw()
        background = canvas.copy_from_bbox(fig.bbox)
        frames = []
        for i, step in enumerate(steps):
            canvas.restore_region(background)
            for artist in anim.update(step):
                fig.draw_artist(artist)
            rgba = Image.fromarray(np.asarray(canvas.buffer_rgba()).copy(), "RGBA")
            frames.append(rgba if rgba.getextrema()[3][0] < 255 else rgba.convert("RGB"))
            if progress_callback is not None:
                progress_callback(i, len(steps))
        return frames
    finally:
        for artist in changed:
            artist.set_animated(False)
        fig.dpi = original_dpi
        fig.set_canvas(original_canvas)


def animation_html(anim: FuncAnimation, *, embed_limit_mb: float | None = None) -> str:
    """HTML + JavaScript player for a notebook: ``IPython.display.HTML(animation_html(anim))``.

    Args:
        anim: the animation.
        embed_limit_mb: raise matplotlib's size limit on the embedded frames (default
            ``rcParams['animation.embed_limit']``, 20 MB) for long or large animations.

    Returns:
        The HTML string from :meth:`matplotlib.animation.Animation.to_jshtml`.
    """
    rc = {} if embed_limit_mb is None else {"animation.embed_limit": float(embed_limit_mb)}
    with matplotlib.rc_context(rc):
        return anim.to_jshtml()


# ------------------------------------------------------------------------- static plots


def plot_error_vs_horizon(metrics: Mapping[str, Mapping[int | str, float]], *,
                          ax: Axes | None = None, title: str | None = None,
                          logy: bool = True) -> Axes:
    """Position MSE against rollout horizon, one line per model.

    Args:
        metrics: model name (``"model"``, ``"constant_velocity"``, ...) to ``{horizon: mse}``.
            Horizons are ints; digit strings (``"10"``, as read back from JSON) count as
            ints, and any other key (such as ``"full"``) is ignored. A model with no
            integer horizon draws no line.
        ax: where to draw; None makes a new pyplot figure.
        title: axes title.
        logy: logarithmic y axis (non-positive values are masked).

    Returns:
        The axes, with one line per model that has at least one horizon.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    all_horizons: set[int] = set()
    for i, (name, by_horizon) in enumerate(metrics.items()):
        points = sorted((h, float(v)) for k, v in by_horizon.items()
                        if (h := _as_horizon(k)) is not None)
        if not points:
            continue
        horizons, values = zip(*points)
        all_horizons.update(horizons)
        ax.plot(horizons, values, marker=_MARKERS[i % len(_MARKERS)], label=_pretty(name))
    if 0 < len(all_horizons) <= 12:
        ax.set_xticks(sorted(all_horizons))
    _finish_error_axes(ax, title, logy)
    return ax


def plot_error_over_time(errors: Mapping[str, Any], *, ax: Axes | None = None,
                         title: str | None = None, logy: bool = True) -> Axes:
    """Per-step position MSE along a rollout, one curve per model.

    Args:
        errors: model name to a ``(T,)`` array whose entry ``t`` is the MSE ``t + 1``
            steps into the rollout (plotted at x = 1..T, matching the horizons of
            :func:`plot_error_vs_horizon`).
        ax: where to draw; None makes a new pyplot figure.
        title: axes title.
        logy: logarithmic y axis (non-positive values are masked).

    Returns:
        The axes, with one line per entry of ``errors``.

    Raises:
        ValueError: an entry is not one-dimensional (its name and shape are given).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    for name, curve in errors.items():
        values = _to_numpy(curve).astype(float, copy=False)
        if values.ndim != 1:
            raise ValueError(f"errors['{name}'] must have shape (T,), found {values.shape}")
        ax.plot(np.arange(1, len(values) + 1), values, label=_pretty(name))
    _finish_error_axes(ax, title, logy)
    return ax


def plot_evaluation(summary: Mapping[str, Any], *, title: str | None = None) -> Figure:
    """The two error views of a :func:`gns.evaluate.evaluate_split` summary side by side.

    Left: the per-step error of every rollout from the first frame, over the whole trajectory.
    Right: the error at each horizon of the rollouts started at many frames (when the summary
    has them; else the first-frame horizons). Works for every domain (the summary's metric).

    Returns:
        The figure (two axes).
    """
    metric = summary["metric"]
    label = metric.upper()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    curves = {n: summary[n][f"{metric}_per_step"] for n in summary["rollouts"] if f"{metric}_per_step" in summary[n]}
    plot_error_over_time(curves, ax=left, title=f"from the first frame ({summary['num_trajectories']} rollouts)")
    left.set_xlabel("step")
    left.set_ylabel(label)
    multi = summary.get("multistart")
    source = multi if multi else summary
    where = (f"started every {multi['start_stride']} frames ({multi['num_rollouts']} rollouts)" if multi
             else "from the first frame")
    plot_error_vs_horizon({n: source[n][metric] for n in summary["rollouts"] if n in source}, ax=right,
                          title=where)
    right.set_ylabel(label)
    if title:
        fig.suptitle(title)
    return fig


def save_figure(figure: Figure, path: str | Path, *, dpi: int = 100) -> Path:
    """Save a static figure atomically (the format from the suffix); returns the path."""
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        figure.savefig(tmp, dpi=dpi, bbox_inches="tight")
    return path


# ------------------------------------------------------------------------------ helpers


def _to_numpy(x: Any) -> np.ndarray:
    """A numpy array from a numpy array, a list or a torch tensor (any device or dtype)."""
    if hasattr(x, "detach"):  # torch tensor, duck-typed so this module never imports torch
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.float()  # numpy has no bfloat16
        return x.numpy()
    return np.asarray(x)


def _frame_steps(num_steps: int, stride: int, max_frames: int | None) -> np.ndarray:
    """``(F,)`` trajectory steps shown by the frames: every ``stride``-th, evenly capped."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, found {stride}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1 or None, found {max_frames}")
    steps = np.arange(0, num_steps, stride)  # (ceil(T / stride),)
    if max_frames is not None and len(steps) > max_frames:
        # Spacing (len - 1) / (max_frames - 1) > 1, so rounding keeps the picks distinct.
        picks = np.round(np.linspace(0, len(steps) - 1, max_frames)).astype(int)
        steps = steps[picks]
    return steps


def _palette(n: int) -> np.ndarray:
    """``(n, 4)`` distinct colours: tab10, tab20, or turbo samples beyond 20 types."""
    if n <= 20:
        colors = matplotlib.colormaps["tab10" if n <= 10 else "tab20"].colors[:n]
        return matplotlib.colors.to_rgba_array(colors)
    return matplotlib.colormaps["turbo"](np.linspace(0.05, 0.95, n))


def _axis_limits(bounds: Any | None, trajectory: np.ndarray, dim: int) -> np.ndarray:
    """``(D, 2)`` axis limits from ``bounds``, else the extent of ``(T, N, D)`` plus 5%."""
    if bounds is not None:
        limits = _to_numpy(bounds).astype(float, copy=False)
        if limits.shape != (dim, 2):
            raise ValueError(f"bounds must have shape (D, 2) = ({dim}, 2), found {limits.shape}")
        if not np.all(limits[:, 1] > limits[:, 0]):
            raise ValueError("bounds must satisfy lo < hi in every dimension, "
                             f"found {limits.tolist()}")
        return limits
    flat = trajectory.reshape(-1, dim)  # (T * N, D)
    finite = flat[np.isfinite(flat).all(axis=1)]
    if len(finite) == 0:
        return np.tile([0.0, 1.0], (dim, 1))
    lo, hi = finite.min(axis=0), finite.max(axis=0)
    # A flat or single-point extent still gets a visible box around it.
    pad = np.where(hi > lo, 0.05 * (hi - lo), 0.5)
    return np.stack([lo - pad, hi + pad], axis=1)


def _animation_figure(num_panels: int, limits: np.ndarray) -> tuple[Figure, list[Axes]]:
    """A pyplot-free figure with ``num_panels`` side-by-side panels styled for ``limits``."""
    dim = limits.shape[0]
    spans = limits[:, 1] - limits[:, 0]
    if dim == 3:
        panel_height = _PANEL_INCHES
    else:  # follow the box's aspect ratio, within reason
        panel_height = float(np.clip(_PANEL_INCHES * spans[1] / spans[0], 2.5, 6.0))
    # Extra height for the step counter and the type legend.
    fig = Figure(figsize=(_PANEL_INCHES * num_panels + 0.4, panel_height + 1.1),
                 layout="constrained")
    axes = [fig.add_subplot(1, num_panels, i + 1, projection="3d" if dim == 3 else None)
            for i in range(num_panels)]
    for ax in axes:
        _style_axes(ax, limits)
    return fig, axes


def _style_axes(ax: Axes, limits: np.ndarray) -> None:
    """Fixed limits, equal scale on every axis, labelled axes."""
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.tick_params(labelsize="small")
    if limits.shape[0] == 3:
        ax.set_zlim(*limits[2])
        ax.set_zlabel("z")
        # Zoom out a little: at full size constrained layout clips the z label.
        ax.set_box_aspect(tuple(limits[:, 1] - limits[:, 0]), zoom=0.9)
    else:
        ax.set_aspect("equal", adjustable="box")


def _freeze_layout(fig: Figure) -> None:
    """Lay the figure out once, then keep it: the constrained solver is too slow per frame."""
    fig.draw_without_rendering()
    fig.set_layout_engine("none")


def _scatter(ax: Axes, positions: np.ndarray, colors: np.ndarray, size: float) -> PathCollection:
    """Scatter ``(N, D)`` positions with ``(N, 4)`` colours on a 2D or 3D axes."""
    coords = positions.T  # (D, N)
    return ax.scatter(*coords, c=colors, s=size, linewidths=0)


def _set_positions(scatter: PathCollection, positions: np.ndarray) -> None:
    """Move the points of a 2D or 3D scatter to ``(N, D)`` positions (no re-creation)."""
    scatter.set_offsets(positions[:, :2])
    if positions.shape[1] == 3:
        scatter.set_3d_properties(positions[:, 2], "z")


def _as_horizon(key: Any) -> int | None:
    """An integer horizon from a metrics key, or None for keys like ``"full"``."""
    if isinstance(key, bool):
        return None
    if isinstance(key, (int, np.integer)):
        return int(key)
    if isinstance(key, str) and key.strip().isdigit():
        return int(key)
    return None


def _pretty(name: str) -> str:
    return str(name).replace("_", " ")


def _finish_error_axes(ax: Axes, title: str | None, logy: bool, ylabel: str = "position MSE",
                       legend_fontsize: str | None = None) -> None:
    """Labels, log scale, grid, title and legend of an error-versus-rollout-step plot."""
    ax.set_xlabel("rollout step")
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log", nonpositive="mask")
    ax.grid(True, which="major", alpha=0.3)
    if title is not None:
        ax.set_title(title)
    if ax.get_lines():
        ax.legend(fontsize=legend_fontsize)
