"""Tests for gns.viz: animations written to disk, shape errors, plots, atomic saves."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.animation import FFMpegWriter  # noqa: E402
from PIL import Image  # noqa: E402

from gns import viz  # noqa: E402

# Animations that are only inspected (never saved) make matplotlib warn when collected.
pytestmark = [pytest.mark.usefixtures("close_figures"),
              pytest.mark.filterwarnings("ignore:Animation was deleted without rendering anything")]


def _trajectory(num_steps: int, num_particles: int, dim: int, seed: int = 0) -> np.ndarray:
    """``(T, N, D)`` particles drifting in the unit box."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0.2, 0.8, (num_particles, dim))
    velocity = rng.normal(0.0, 0.01, (num_particles, dim))
    return start + velocity * np.arange(num_steps)[:, None, None]


def _gif_frames(path: Path) -> int:
    with Image.open(path) as image:
        return image.n_frames


# ------------------------------------------------------------------------ animations


def test_render_2d_gif_frame_count(tmp_path):
    truth = _trajectory(10, 20, 2)
    predicted = torch.as_tensor(truth + 0.01, dtype=torch.float32)  # tensors are accepted
    types = torch.tensor([3] * 5 + [5] * 15)
    out = viz.render_rollout(tmp_path / "rollout.gif", predicted, truth, particle_type=types,
                             bounds=[[0, 1], [0, 1]], stride=3, dpi=30, progress=False)
    assert out == tmp_path / "rollout.gif"
    assert out.stat().st_size > 0
    assert _gif_frames(out) == math.ceil(10 / 3)


def test_3d_gif_frame_count_capped_by_max_frames(tmp_path):
    truth = _trajectory(9, 15, 3)
    anim = viz.animate_rollout(truth + 0.02, truth, particle_type=np.arange(15) % 3, max_frames=5)
    # Capping subsamples evenly and keeps the first and last step.
    assert anim.steps.tolist() == [0, 2, 4, 6, 8]
    out = viz.save_animation(anim, tmp_path / "rollout3d.gif", dpi=30)
    assert out.stat().st_size > 0
    assert _gif_frames(out) == 5


@pytest.mark.parametrize("num_steps, stride, max_frames",
                         [(1, 1, 200), (10, 1, None), (10, 4, 200), (101, 1, 200),
                          (1000, 3, 200), (50, 2, 7), (50, 1, 1)])
def test_frame_count_is_strided_length_capped(num_steps, stride, max_frames):
    truth = _trajectory(num_steps, 3, 2)
    anim = viz.animate_rollout(truth, stride=stride, max_frames=max_frames)
    expected = math.ceil(num_steps / stride)
    if max_frames is not None:
        expected = min(expected, max_frames)
    assert len(anim.steps) == expected
    assert len(np.unique(anim.steps)) == expected
    assert anim.steps[0] == 0 and np.all(anim.steps % stride == 0)


def test_panels_share_colours_and_legend_lists_types(tmp_path):
    truth = _trajectory(4, 12, 2)
    types = np.array([7] * 4 + [1] * 8)
    anim = viz.animate_rollout(truth * 1.01, truth, particle_type=types, titles=("GT", "GNS"))
    assert [ax.get_title() for ax in anim.axes] == ["GT", "GNS"]
    left, right = (ax.collections[0] for ax in anim.axes)
    np.testing.assert_array_equal(left.get_facecolors(), right.get_facecolors())
    labels = [text.get_text() for text in anim.figure.legends[0].get_texts()]
    assert labels == ["1 (n=8)", "7 (n=4)"]
    # After saving, the panels show the last step, and the title counts it.
    viz.save_animation(anim, tmp_path / "a.gif", dpi=20)
    np.testing.assert_allclose(right.get_offsets(), truth[-1] * 1.01)
    np.testing.assert_allclose(left.get_offsets(), truth[-1])
    assert anim.figure.get_suptitle() == "step 3 / 3"


def test_prediction_only_has_one_panel():
    anim = viz.animate_rollout(_trajectory(3, 5, 2))
    assert len(anim.axes) == 1 and anim.axes[0].get_title() == "Prediction"
    assert anim.figure.legends == []  # no particle types, no legend


def test_mismatched_shapes_name_both():
    with pytest.raises(ValueError, match=r"predicted \(5, 10, 2\) and ground_truth \(5, 11, 2\)"):
        viz.animate_rollout(np.zeros((5, 10, 2)), np.zeros((5, 11, 2)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(predicted=np.zeros((5, 4))), r"predicted must have shape \(T, N, D\).*\(5, 4\)"),
    (dict(predicted=np.zeros((5, 4, 1))), r"D in \{2, 3\}.*\(5, 4, 1\)"),
    (dict(particle_type=np.zeros(3)), r"particle_type .*\(4,\).*\(3,\)"),
    (dict(bounds=np.zeros((3, 2))), r"bounds must have shape \(D, 2\) = \(2, 2\).*\(3, 2\)"),
    (dict(bounds=[[0, 1], [1, 0]]), r"lo < hi"),
    (dict(stride=0), r"stride must be >= 1"),
    (dict(max_frames=0), r"max_frames must be >= 1"),
])
def test_bad_inputs_raise_value_error(kwargs, message):
    arguments = dict(predicted=np.zeros((5, 4, 2)))
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        viz.animate_rollout(arguments.pop("predicted"), **arguments)


def test_animation_html_is_a_player():
    anim = viz.animate_rollout(_trajectory(2, 4, 2))
    html = viz.animation_html(anim)
    assert isinstance(html, str) and "<script" in html and "Animation" in html


# ------------------------------------------------------------------------------ saving


@pytest.mark.skipif(shutil.which("ffmpeg") is not None, reason="ffmpeg is installed")
def test_mp4_without_ffmpeg_suggests_gif(tmp_path):
    anim = viz.animate_rollout(_trajectory(2, 4, 2))
    with pytest.raises(RuntimeError, match=r"ffmpeg.*save as \.gif instead"):
        viz.save_animation(anim, tmp_path / "rollout.mp4")
    assert list(tmp_path.iterdir()) == []


def test_mp4_with_ffmpeg_missing_from_its_configured_path(tmp_path, monkeypatch):
    # Runs on every machine: point matplotlib at an ffmpeg that does not exist.
    monkeypatch.setitem(matplotlib.rcParams, "animation.ffmpeg_path", str(tmp_path / "no-ffmpeg"))
    assert not FFMpegWriter.isAvailable()
    anim = viz.animate_rollout(_trajectory(2, 4, 2))
    with pytest.raises(RuntimeError, match=r"rollout\.gif"):
        viz.save_animation(anim, tmp_path / "rollout.mp4")
    assert list(tmp_path.iterdir()) == []


def test_unsupported_suffix(tmp_path):
    anim = viz.animate_rollout(_trajectory(2, 4, 2))
    with pytest.raises(ValueError, match=r"\.avi.*expected \.gif or \.mp4"):
        viz.save_animation(anim, tmp_path / "rollout.avi")


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "rollout.gif"  # parent folders are created
    anim = viz.animate_rollout(_trajectory(3, 4, 2))
    viz.save_animation(anim, target, dpi=20)
    viz.save_animation(anim, target, dpi=20)  # overwriting an existing file
    assert [p.name for p in target.parent.iterdir()] == ["rollout.gif"]
    assert _gif_frames(target) == 3


def test_failed_write_keeps_old_file_and_no_temp_files(tmp_path):
    target = tmp_path / "rollout.gif"
    target.write_bytes(b"old")

    def fail(frame: int, total: int) -> None:
        if frame == 1:
            raise KeyboardInterrupt  # e.g. the user pressed Ctrl-C mid-render

    anim = viz.animate_rollout(_trajectory(3, 4, 2))
    with pytest.raises(KeyboardInterrupt):
        viz.save_animation(anim, target, dpi=20, progress_callback=fail)
    assert [p.name for p in tmp_path.iterdir()] == ["rollout.gif"]
    assert target.read_bytes() == b"old"


# ------------------------------------------------------------------------------- plots


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


def test_frame_figure_2d_and_3d():
    ax = viz.frame_figure(_trajectory(1, 6, 2)[0], particle_type=[0, 0, 1, 1, 2, 2],
                          bounds=[[0, 1], [0, 1]], title="t = 0")
    assert ax.get_xlim() == (0.0, 1.0) and len(ax.collections) == 1
    assert len(ax.get_legend().get_texts()) == 3
    ax3 = viz.frame_figure(torch.rand(6, 3))
    assert ax3.name == "3d"
    _, flat = plt.subplots()
    with pytest.raises(ValueError, match="projection='3d'"):
        viz.frame_figure(np.zeros((6, 3)), ax=flat)
