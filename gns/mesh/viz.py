"""Animations and plots for mesh rollouts (cloth sheets in 3D, flow fields on 2D meshes).

This module follows :mod:`gns.viz`, whose helpers it uses: animations are drawn on a bare
:class:`~matplotlib.figure.Figure` that pyplot does not track, are
:class:`gns.viz.RolloutAnimation` objects (notebooks: ``HTML(anim.to_jshtml())`` or
``HTML(gns.viz.animation_html(anim))``), are saved atomically with
:func:`gns.viz.save_animation` (``.gif`` always, ``.mp4`` with ffmpeg), show ground truth
before prediction, and keep their axis and colour limits fixed for the whole animation,
taken from the ground truth, so that a diverging prediction leaves the view instead of
rescaling it. Static plots make a pyplot figure when no ``ax`` is given.

Example:
    >>> records, attrs = gns.read_rollouts("runs/cloth/rollouts_test.h5")
    >>> anim = animate_cloth(records[0], every=2, path="cloth.gif")
    >>> render_mesh_rollout("runs/flow/rollouts_test.h5", "flow.mp4", field="pressure")
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.tri import Triangulation
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from gns.errors import GnsInputError
from gns.mesh.export import MeshView, surface_triangles
from gns.rollout_io import RolloutRecord, comparison_panels, read_rollouts
from gns.mesh.types import NodeType
from gns.viz import (_MARKERS, RolloutAnimation, _animation_figure, _axis_limits, _as_horizon,
                     _finish_error_axes, _frame_steps, _freeze_layout, _palette, _pretty, _scatter,
                     _set_positions, save_animation)

__all__ = ["animate_cloth", "animate_flow", "render_mesh_rollout", "plot_rmse_vs_horizon", "field_magnitude"]

# Cloth faces, obstacle faces and handle nodes: distinct in colour and in lightness.
_CLOTH_COLOR = "tab:blue"
_OBSTACLE_COLOR = "0.6"
_HANDLE_COLOR = "black"
# Fixed light direction for the per-frame shading of the cloth (from the viewer's upper left).
_LIGHT = np.array([-0.4, -0.5, 0.77])
# Fraction of the face colour kept on faces edge-on to the light, so that no face turns black.
_AMBIENT = 0.35
# Height of one flow panel in inches; its width follows the mesh's aspect ratio.
_FLOW_PANEL_INCHES = 3.2


def field_magnitude(values: np.ndarray) -> np.ndarray:
    """Scalar view of a field: the value itself for ``F = 1``, else the Euclidean norm.

    Args:
        values: ``(..., F)``.

    Returns:
        ``(...)`` float array.
    """
    values = np.asarray(values, dtype=float)
    return values[..., 0] if values.shape[-1] == 1 else np.linalg.norm(values, axis=-1)


# --------------------------------------------------------------------------- cloth


Panel = tuple  # (title, RolloutRecord or MeshView, source name)


def _panels(rollout: Any, panels: Sequence[Panel] | None, titles: Sequence[str]) -> list[tuple[str, MeshView, str]]:
    """Validated ``(title, view, source)`` panels: the given ones, or ground truth | prediction of ``rollout``."""
    if panels is None:
        view = MeshView(rollout)
        panels = [(titles[0], view, "ground_truth"), (titles[1], view, "predicted")]
    out = []
    for title, record, source in panels:
        view = MeshView(record)
        if source not in view.sources:
            raise GnsInputError("no such source in the rollout", key=f"{view.key}/{source}",
                                expected=list(view.sources), found=source)
        out.append((str(title), view, source))
    return out


def _panel_field(view: MeshView, source: str, field: str) -> np.ndarray:
    """``(T, N, F)`` float values of ``field`` in one source of a record."""
    if field not in view.sources[source]:
        raise GnsInputError("no such field in the rollout", key=f"{view.key}/{source}/{field}",
                            expected=view.fields, found=field)
    return np.asarray(view.sources[source][field], dtype=float)


def animate_cloth(rollout: RolloutRecord | MeshView | None = None, *, panels: Sequence[Panel] | None = None,
                  field: str = "world_pos", every: int = 1, fps: int = 20, max_frames: int | None = 200,
                  dt: float | None = None, path: str | os.PathLike | None = None, dpi: int = 80,
                  titles: Sequence[str] = ("Ground truth", "Prediction")) -> RolloutAnimation:
    """Side-by-side 3D animation of a cloth (any 3D surface or tetrahedral mesh): truth | prediction.

    Faces are shaded per frame from a fixed light (both sides lit alike, as a sheet has no
    outside), so folds stay visible. Faces whose nodes are all OBSTACLE are grey, HANDLE nodes
    are black dots; the panels share axis limits, the first panel's extent over all frames.

    Args:
        rollout: a mesh rollout record whose ``field`` is ``(T, N, 3)`` world positions.
        panels: instead of ``rollout``'s ground truth | prediction, any ``(title, record, source)``
            panels (e.g. factual | counterfactual | solver; their meshes may differ).
        field: the position field.
        every: show every ``every``-th frame.
        fps: frames per second (display, and saving).
        max_frames: cap on the frames, picked evenly over the rollout (first and last kept); None for all.
        dt: seconds per frame; when given, the counter also shows the time.
        path: when given, also save to this ``.gif`` / ``.mp4`` (see :func:`gns.viz.save_animation`).
        dpi: resolution of the saved frames.
        titles: panel titles (ground truth, prediction) when ``panels`` is not given.

    Returns:
        A :class:`gns.viz.RolloutAnimation` with ``min(ceil(T / every), max_frames)`` frames.

    Raises:
        GnsInputError: ``field`` is missing or not 3D positions.
    """
    shown = _panels(rollout, panels, titles)
    series = []
    for title, view, source in shown:
        positions = _panel_field(view, source, field)
        if positions.shape[-1] != 3:
            raise GnsInputError("a cloth animation needs 3D positions", key=f"{view.key}/{source}/{field}",
                                expected="(T, N, 3)", found=positions.shape)
        triangles = surface_triangles(view.cells)                                   # (S, 3)
        obstacle = np.all(view.node_type[triangles] == NodeType.OBSTACLE, axis=1)  # (S,)
        base = np.where(obstacle[:, None], matplotlib.colors.to_rgba(_OBSTACLE_COLOR),
                        matplotlib.colors.to_rgba(_CLOTH_COLOR))                    # (S, 4)
        series.append((title, positions, triangles, base, obstacle, np.flatnonzero(view.node_type == NodeType.HANDLE)))
    num_frames = min(s[1].shape[0] for s in series)
    steps = _frame_steps(num_frames, every, max_frames)

    fig, axes = _animation_figure(len(series), _axis_limits(None, series[0][1], 3))
    surfaces, dots = [], []
    for ax, (title, positions, triangles, base, _, handles) in zip(axes, series):
        ax.set_title(title)
        verts = positions[steps[0]][triangles]                                      # (S, 3, 3)
        surface = Poly3DCollection(verts, facecolors=_shade(verts, base), edgecolors=(0, 0, 0, 0.15),
                                   linewidths=0.2)
        ax.add_collection3d(surface)
        surfaces.append(surface)
        dots.append(_scatter(ax, positions[steps[0]][handles], np.array([matplotlib.colors.to_rgba(_HANDLE_COLOR)]),
                             12.0) if handles.size else None)
    legend = [Line2D([], [], linestyle="", marker="s", color=_CLOTH_COLOR, label="cloth")]
    if any(s[4].any() for s in series):
        legend.append(Line2D([], [], linestyle="", marker="s", color=_OBSTACLE_COLOR, label="obstacle"))
    if any(s[5].size for s in series):
        legend.append(Line2D([], [], linestyle="", marker="o", color=_HANDLE_COLOR, label="handle"))
    fig.legend(handles=legend, loc="outside lower center", ncols=len(legend), frameon=False, fontsize="small")
    counter = fig.suptitle(_counter_text(int(steps[0]), num_frames, dt))
    _freeze_layout(fig)

    def update(step: int) -> tuple:
        for surface, dot, (_, positions, triangles, base, _, handles) in zip(surfaces, dots, series):
            verts = positions[step][triangles]
            surface.set_verts(verts)
            surface.set_facecolor(_shade(verts, base))
            if dot is not None:
                _set_positions(dot, positions[step][handles])
        counter.set_text(_counter_text(step, num_frames, dt))
        return (*surfaces, *[d for d in dots if d is not None], counter)

    anim = RolloutAnimation(fig, update, steps=steps, axes=axes, fps=fps)
    if path is not None:
        save_animation(anim, path, fps=fps, dpi=dpi)
    return anim


def _shade(verts: np.ndarray, base: np.ndarray) -> np.ndarray:
    """``(S, 4)`` face colours: ``base`` dimmed by the angle between each face and the light.

    Args:
        verts: ``(S, 3, 3)`` triangle corners.
        base: ``(S, 4)`` RGBA colours.
    """
    normals = np.cross(verts[:, 1] - verts[:, 0], verts[:, 2] - verts[:, 0])  # (S, 3)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)
    light = np.abs(normals @ (_LIGHT / np.linalg.norm(_LIGHT)))                # (S,) two-sided
    shaded = base.copy()
    shaded[:, :3] *= (_AMBIENT + (1 - _AMBIENT) * np.nan_to_num(light))[:, None]
    return shaded


# ---------------------------------------------------------------------------- flow


def animate_flow(rollout: RolloutRecord | MeshView | None = None, *, panels: Sequence[Panel] | None = None,
                 field: str = "velocity", every: int = 1, fps: int = 20,
                 max_frames: int | None = 200, dt: float | None = None, show_node_types: bool = True,
                 cmap: str = "viridis", path: str | os.PathLike | None = None, dpi: int = 80,
                 titles: Sequence[str] = ("Ground truth", "Prediction", "Difference")) -> RolloutAnimation:
    """Animate a field on a fixed 2D triangle mesh: ground truth, prediction and their difference.

    Vector fields (``F > 1``, e.g. velocity) show their magnitude and, in the third panel, the
    magnitude of the error vector ``|pred - truth|``; scalar fields (pressure) show the value
    and the signed difference ``pred - truth`` on a diverging scale centred on 0. Values are
    interpolated over each triangle (Gouraud shading). Truth and prediction share one colour
    scale, the ground truth's range over the shown frames; the difference has its own, fixed
    over the frames. Panels are side by side, or stacked for meshes wider than 1.6:1.

    Args:
        rollout: a rollout record on a ``(N, 2)`` mesh with triangle cells.
        panels: instead of ``rollout``'s ground truth | prediction, two ``(title, record, source)``
            panels on the same mesh (e.g. factual | counterfactual); the third shows their difference.
        field: the field to show, e.g. ``"velocity"`` or ``"pressure"``.
        every: show every ``every``-th frame.
        fps: frames per second (display, and saving).
        max_frames: cap on the frames, picked evenly over the rollout; None for all.
        dt: seconds per frame; when given, the counter also shows the time.
        show_node_types: mark nodes that are not NORMAL (walls, inflow, ...), one colour per type.
        cmap: colour map of the truth and prediction panels.
        path: when given, also save to this ``.gif`` / ``.mp4``.
        dpi: resolution of the saved frames.
        titles: panel titles (the third is the difference's).

    Returns:
        A :class:`gns.viz.RolloutAnimation` with ``min(ceil(T / every), max_frames)`` frames.

    Raises:
        GnsInputError: ``field`` is missing, the mesh is not 2D, or its cells are not triangles.
    """
    shown = _panels(rollout, panels, titles)
    if len(shown) != 2 or shown[0][1].mesh_pos.shape != shown[1][1].mesh_pos.shape:
        raise GnsInputError("a flow animation compares two panels on the same mesh", key="panels",
                            expected="2 panels of N nodes each", found=[(t, v.mesh_pos.shape) for t, v, _ in shown])
    rollout = shown[0][1]
    truth, pred = _panel_field(rollout, shown[0][2], field), _panel_field(shown[1][1], shown[1][2], field)
    titles = (shown[0][0], shown[1][0], titles[2] if len(titles) > 2 else "Difference")
    if rollout.mesh_pos.shape[1] != 2 or rollout.cells.shape[1] != 3:
        raise GnsInputError("a flow animation needs a 2D triangle mesh", key=f"{rollout.key}/mesh_pos, cells",
                            expected="mesh_pos (N, 2), cells (C, 3)",
                            found=f"mesh_pos {rollout.mesh_pos.shape}, cells {rollout.cells.shape}")
    steps = _frame_steps(truth.shape[0], every, max_frames)
    vector = truth.shape[-1] > 1
    shown_truth, shown_pred = field_magnitude(truth[steps]), field_magnitude(pred[steps])      # (F, N)
    shown_diff = (np.linalg.norm(pred[steps] - truth[steps], axis=-1) if vector
                  else (pred[steps] - truth[steps])[..., 0])                                   # (F, N)
    vmin, vmax = _color_limits(shown_truth)
    dmax = max(_color_limits(np.abs(shown_diff))[1], 1e-12)
    diff_limits, diff_cmap = ((0.0, dmax), "magma") if vector else ((-dmax, dmax), "RdBu_r")
    label = f"|{field}|" if vector else field
    diff_label = f"|{field} error|" if vector else f"{field} error"

    fig, axes = _flow_figure(rollout.mesh_pos)
    tri = Triangulation(rollout.mesh_pos[:, 0], rollout.mesh_pos[:, 1], rollout.cells)
    series = [shown_truth, shown_pred, shown_diff]
    images = []
    for ax, title, values, (lo, hi), colors in zip(axes, titles, series, [(vmin, vmax), (vmin, vmax), diff_limits],
                                                   [cmap, cmap, diff_cmap]):
        ax.set_title(str(title))
        images.append(ax.tripcolor(tri, values[0], shading="gouraud", vmin=lo, vmax=hi, cmap=colors))
    fig.colorbar(images[0], ax=axes[:2], label=label, shrink=0.9)
    fig.colorbar(images[2], ax=axes[2], label=diff_label, shrink=0.9)
    if show_node_types:
        _mark_node_types(fig, axes, rollout.mesh_pos, rollout.node_type)
    counter = fig.suptitle(_counter_text(int(steps[0]), truth.shape[0], dt))
    _freeze_layout(fig)

    def update(step: int) -> tuple:
        frame = int(np.searchsorted(steps, step))  # steps are increasing: index into the shown frames
        for image, values in zip(images, series):
            image.set_array(values[frame])
        counter.set_text(_counter_text(step, truth.shape[0], dt))
        return (*images, counter)

    anim = RolloutAnimation(fig, update, steps=steps, axes=axes, fps=fps)
    if path is not None:
        save_animation(anim, path, fps=fps, dpi=dpi)
    return anim


def _flow_figure(mesh_pos: np.ndarray) -> tuple[Figure, list[Axes]]:
    """A pyplot-free figure with three equal-aspect panels laid out for the mesh's shape."""
    lo, hi = mesh_pos.min(axis=0), mesh_pos.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    aspect = float(span[0] / span[1])
    stacked = aspect > 1.6  # wide channels (cylinder flow is 4:1) read better one above the other
    width = float(np.clip(_FLOW_PANEL_INCHES * aspect, 2.5, 9.0))
    if stacked:
        fig = Figure(figsize=(width + 1.6, 3 * width / aspect + 1.6), layout="constrained")
        axes = [fig.add_subplot(3, 1, i + 1) for i in range(3)]
    else:
        fig = Figure(figsize=(3 * width + 2.0, _FLOW_PANEL_INCHES + 1.4), layout="constrained")
        axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
    pad = 0.02 * span
    for ax in axes:
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_aspect("equal", adjustable="box")
        ax.tick_params(labelsize="small")
    return fig, axes


def _mark_node_types(fig: Figure, axes: Sequence[Axes], mesh_pos: np.ndarray, node_type: np.ndarray) -> None:
    """Small dots on the nodes that are not NORMAL, one colour per type, and a figure legend."""
    kinds = [int(t) for t in np.unique(node_type) if int(t) != NodeType.NORMAL]
    if not kinds:
        return
    colors = _palette(len(kinds) + 1)[1:]  # skip tab:blue, the colour of NORMAL elsewhere in gns
    legend = []
    for kind, color in zip(kinds, colors):
        where = mesh_pos[node_type == kind]
        for ax in axes:
            ax.scatter(where[:, 0], where[:, 1], s=4.0, color=color, linewidths=0)
        legend.append(Line2D([], [], linestyle="", marker="o", markersize=5, color=color,
                             label=f"{_type_name(kind)} (n={len(where)})"))
    fig.legend(handles=legend, loc="outside lower center", ncols=min(len(legend), 4), frameon=False,
               fontsize="small", title="node type")


def _type_name(type_id: int) -> str:
    try:
        return NodeType(type_id).name.lower()
    except ValueError:
        return f"type {type_id}"


def _color_limits(values: np.ndarray) -> tuple[float, float]:
    """``(lo, hi)`` of the finite values, widened when flat so that a colour scale exists."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        pad = max(abs(lo) * 0.05, 1e-12)
        return lo - pad, hi + pad
    return lo, hi


# ------------------------------------------------------------------------- shared


def _counter_text(step: int, num_steps: int, dt: float | None) -> str:
    text = f"step {step} / {num_steps - 1}"
    return text if dt is None else f"{text}   t = {step * dt:.3g} s"


def render_mesh_rollout(rollout_file: str | os.PathLike, out_path: str | os.PathLike, *,
                        trajectory: int | str | None = None, field: str | None = None, every: int = 1, fps: int = 20,
                        max_frames: int | None = 200, dpi: int = 80) -> Path:
    """Animate one trajectory of a mesh rollout file (what ``gns render`` does for mesh models).

    A 3-component ``world_pos`` (or any 3-component field of a ``cloth`` domain) is drawn as a
    cloth (:func:`animate_cloth`); any other field as a flow field (:func:`animate_flow`). The
    panels are ground truth | prediction, or, for a counterfactual file, factual | counterfactual
    (| solver) (:func:`gns.rollout_io.comparison_panels`).

    Args:
        rollout_file: a mesh rollout file (:mod:`gns.rollout_io`).
        out_path: ``.gif`` or ``.mp4``.
        trajectory: index in the file (default the first) or key (``"00003"``; a counterfactual variant).
        field: the field to draw; None for the file's ``target_field``.
        every, fps, max_frames, dpi: as in :func:`animate_cloth`.

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        GnsInputError: a bad file, trajectory or field.
    """
    records, attrs = read_rollouts(rollout_file)
    if attrs["simulator"] != "mesh":
        raise GnsInputError("not a mesh rollout file", file=rollout_file, key="simulator", expected="mesh",
                            found=attrs["simulator"])
    panels = comparison_panels(records, attrs, trajectory, file=rollout_file)
    field = attrs["target_field"] if field is None else field
    if field not in attrs["fields"]:
        raise GnsInputError("no such field in the rollout file", file=rollout_file, key=field,
                            expected=attrs["fields"], found=field)
    width = panels[0][1].sources[panels[0][2]][field].shape[-1]
    cloth = width == 3 and (field == "world_pos" or attrs["domain"] == "cloth")
    if cloth:
        anim = animate_cloth(panels=panels, field=field, every=every, fps=fps, max_frames=max_frames, dt=attrs["dt"])
    else:
        anim = animate_flow(panels=panels[:2], field=field, every=every, fps=fps, max_frames=max_frames,
                            dt=attrs["dt"])
    return save_animation(anim, out_path, fps=fps, dpi=dpi)


# --------------------------------------------------------------------- static plots


def plot_rmse_vs_horizon(metrics: Mapping[str, Mapping[str, Any]], ax: Axes | None = None, *,
                         metric: str = "rmse", title: str | None = None, logy: bool = True) -> Axes:
    """Error against rollout horizon, one line per model, on a log scale.

    Args:
        metrics: model name to its metrics, e.g. ``{"model": {"rmse": {"1": 1e-3, "10": 4e-3,
            "full": 2e-2}}, "persistence": {...}}``. Horizon keys are ints or digit strings;
            ``"full"`` (the whole rollout) is drawn as a dotted horizontal line in the model's
            colour. A per-field level (``{"rmse": {"velocity": {"1": ...}, "pressure": {...}}}``)
            gives one line per model and field. Models without ``metric`` are skipped.
        ax: where to draw; None makes a new pyplot figure.
        metric: the entry of each model to plot.
        title: axes title.
        logy: logarithmic y axis (non-positive values are masked).

    Returns:
        The axes (``ax.figure`` is the figure).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    curves = []
    for name, entry in metrics.items():
        by_horizon = entry.get(metric) if isinstance(entry, Mapping) else None
        if not isinstance(by_horizon, Mapping):
            continue
        if by_horizon and all(isinstance(v, Mapping) for v in by_horizon.values()):
            curves += [(f"{_pretty(name)} {_pretty(f)}", values) for f, values in by_horizon.items()]
        else:
            curves.append((_pretty(name), by_horizon))
    horizons_seen: set[int] = set()
    for i, (label, by_horizon) in enumerate(curves):
        points = sorted((h, float(v)) for k, v in by_horizon.items() if (h := _as_horizon(k)) is not None)
        color = f"C{i % 10}"
        if points:
            horizons, values = zip(*points)
            horizons_seen.update(horizons)
            ax.plot(horizons, values, marker=_MARKERS[i % len(_MARKERS)], color=color, label=label)
        if "full" in by_horizon:
            ax.axhline(float(by_horizon["full"]), color=color, linestyle=":", linewidth=1.2,
                       label=f"{label}, full rollout")
    if 0 < len(horizons_seen) <= 12:
        ax.set_xticks(sorted(horizons_seen))
    ylabel = metric.upper() if metric.isalpha() and len(metric) <= 5 else _pretty(metric)
    _finish_error_axes(ax, title, logy, ylabel=ylabel, legend_fontsize="small")
    return ax
