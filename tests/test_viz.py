"""The pictures every domain shares: saving animations (atomically, gif/mp4), notebook players, error plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.animation import FFMpegWriter, FuncAnimation, PillowWriter  # noqa: E402
from PIL import Image, ImageSequence  # noqa: E402

from gns import viz  # noqa: E402
from gns.particles import viz as pviz  # noqa: E402

# Animations that are only inspected (never saved) make matplotlib warn when collected.
pytestmark = [pytest.mark.usefixtures("close_figures"),
              pytest.mark.filterwarnings("ignore:Animation was deleted without rendering anything")]






def test_animation_html_is_a_player(drift):
    anim = pviz.animate_rollout(drift(2, 4, 2))
    html = viz.animation_html(anim)
    assert isinstance(html, str) and "<script" in html and "Animation" in html


def test_mp4_without_ffmpeg_suggests_gif(tmp_path, drift):
    anim = pviz.animate_rollout(drift(2, 4, 2))
    with pytest.raises(RuntimeError, match=r"ffmpeg.*save as \.gif instead"):
        viz.save_animation(anim, tmp_path / "rollout.mp4")
    assert list(tmp_path.iterdir()) == []


def test_mp4_with_ffmpeg_missing_from_its_configured_path(tmp_path, monkeypatch, drift):
    # Runs on every machine: point matplotlib at an ffmpeg that does not exist.
    monkeypatch.setitem(matplotlib.rcParams, "animation.ffmpeg_path", str(tmp_path / "no-ffmpeg"))
    assert not FFMpegWriter.isAvailable()
    anim = pviz.animate_rollout(drift(2, 4, 2))
    with pytest.raises(RuntimeError, match=r"rollout\.gif"):
        viz.save_animation(anim, tmp_path / "rollout.mp4")
    assert list(tmp_path.iterdir()) == []


def test_unsupported_suffix(tmp_path, drift):
    anim = pviz.animate_rollout(drift(2, 4, 2))
    with pytest.raises(ValueError, match=r"\.avi.*expected \.gif or \.mp4"):
        viz.save_animation(anim, tmp_path / "rollout.avi")


def test_atomic_write_leaves_no_temp_files(tmp_path, drift, gif_frames):
    target = tmp_path / "sub" / "rollout.gif"  # parent folders are created
    anim = pviz.animate_rollout(drift(3, 4, 2))
    viz.save_animation(anim, target, dpi=20)
    viz.save_animation(anim, target, dpi=20)  # overwriting an existing file
    assert [p.name for p in target.parent.iterdir()] == ["rollout.gif"]
    assert gif_frames(target) == 3


def test_failed_write_keeps_old_file_and_no_temp_files(tmp_path, drift):
    target = tmp_path / "rollout.gif"
    target.write_bytes(b"old")

    def fail(frame: int, total: int) -> None:
        if frame == 1:
            raise KeyboardInterrupt  # e.g. the user pressed Ctrl-C mid-render

    anim = pviz.animate_rollout(drift(3, 4, 2))
    with pytest.raises(KeyboardInterrupt):
        viz.save_animation(anim, target, dpi=20, progress_callback=fail)
    assert [p.name for p in tmp_path.iterdir()] == ["rollout.gif"]
    assert target.read_bytes() == b"old"


def _gif_rgb(path) -> list[np.ndarray]:
    return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(Image.open(path))]


def test_a_2d_gif_redraws_only_what_changes_and_looks_as_matplotlibs_own(tmp_path, drift, monkeypatch):
    """save_animation draws a 2D animation's figure once and then only the artists each frame changes; its
    frames are matplotlib's whole redraws but for those artists lying over the axes' frame and ticks."""
    anim = pviz.animate_rollout(drift(6, 60, 2), drift(6, 60, 2, seed=1))
    anim.save(tmp_path / "theirs.gif", writer=PillowWriter(fps=anim.fps), dpi=40)

    def whole_redraws(*args, **kwargs):
        raise AssertionError("a 2D GIF went through matplotlib's whole redraw per frame")

    monkeypatch.setattr(FuncAnimation, "save", whole_redraws)
    viz.save_animation(anim, tmp_path / "ours.gif", dpi=40)
    ours, theirs = _gif_rgb(tmp_path / "ours.gif"), _gif_rgb(tmp_path / "theirs.gif")
    assert len(ours) == len(theirs) == 6 and ours[0].shape == theirs[0].shape
    assert max((a != b).any(-1).mean() for a, b in zip(ours, theirs)) < 0.01
    assert (ours[0] != ours[-1]).any(-1).mean() > 0.01          # the particles move from frame to frame
    # the figure is left as it was: its artists in a whole draw again (a notebook's player), its dpi
    assert not any(a.get_animated() for a in anim.figure.findobj())
    assert anim.figure.dpi == viz.Figure().dpi


def test_a_3d_gif_is_redrawn_whole(tmp_path, drift, gif_frames):
    anim = pviz.animate_rollout(drift(3, 8, 3))
    assert viz._blitted_frames(anim, 20, None) is None     # a 3D projection is computed by a whole draw
    viz.save_animation(anim, tmp_path / "rollout.gif", dpi=20)
    assert gif_frames(tmp_path / "rollout.gif") == 3


def test_plot_error_vs_horizon_ignores_non_integer_keys():
    metrics = {
        "model": {1: 1e-6, 10: 1e-4, 5: 1e-5, "full": 1e-3},
        "constant_velocity": {"1": 1e-5, "5": 1e-4, "10": 1e-3, "full": 1e-2},  # as from JSON
        "constant_acceleration": {1: 2e-5, 5: 2e-4, 10: 2e-3},
        "only_full": {"full": 1.0},
    }
    ax = viz.plot_error_vs_horizon(metrics, title="test")
    assert isinstance(ax, matplotlib.axes.Axes)
    lines = ax.get_lines()
    assert len(lines) == 3
    for line in lines:
        assert line.get_xdata().tolist() == [1, 5, 10]
        assert line.get_marker() not in (None, "None", "")
    np.testing.assert_allclose(lines[0].get_ydata(), [1e-6, 1e-5, 1e-4])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "model", "constant velocity", "constant acceleration"]
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "rollout step" and ax.get_ylabel() == "position MSE"
    assert ax.get_title() == "test"


def test_plot_error_vs_horizon_on_given_axes_linear():
    _, ax = plt.subplots()
    out = viz.plot_error_vs_horizon({"model": {1: 0.0, 2: 1.0}}, ax=ax, logy=False)
    assert out is ax and ax.get_yscale() == "linear" and len(ax.get_lines()) == 1


def test_plot_error_over_time():
    errors = {"model": torch.linspace(1e-6, 1e-4, 20),
              "constant_velocity": np.geomspace(1e-5, 1e-2, 30)}
    ax = viz.plot_error_over_time(errors)
    lines = ax.get_lines()
    assert len(lines) == 2
    assert lines[0].get_xdata().tolist() == list(range(1, 21))
    assert ax.get_yscale() == "log"
    with pytest.raises(ValueError, match=r"errors\['bad'\].*\(2, 3\)"):
        viz.plot_error_over_time({"bad": np.zeros((2, 3))})

