"""Particle pictures: animations written to disk, shared colours, shape errors, single frames."""

from __future__ import annotations

import math
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from gns import viz  # noqa: E402
from gns.particles import viz as pviz  # noqa: E402

# Animations that are only inspected (never saved) make matplotlib warn when collected.
pytestmark = [pytest.mark.usefixtures("close_figures"),
              pytest.mark.filterwarnings("ignore:Animation was deleted without rendering anything")]






def test_render_2d_gif_frame_count(tmp_path, drift, gif_frames):
    truth = drift(10, 20, 2)
    predicted = torch.as_tensor(truth + 0.01, dtype=torch.float32)  # tensors are accepted
    types = torch.tensor([3] * 5 + [5] * 15)
    out = pviz.render_rollout(tmp_path / "rollout.gif", predicted, truth, particle_type=types,
                             bounds=[[0, 1], [0, 1]], stride=3, dpi=30, progress=False)
    assert out == tmp_path / "rollout.gif"
    assert out.stat().st_size > 0
    assert gif_frames(out) == math.ceil(10 / 3)


def test_3d_gif_frame_count_capped_by_max_frames(tmp_path, drift, gif_frames):
    truth = drift(9, 15, 3)
    anim = pviz.animate_rollout(truth + 0.02, truth, particle_type=np.arange(15) % 3, max_frames=5)
    # Capping subsamples evenly and keeps the first and last step.
    assert anim.steps.tolist() == [0, 2, 4, 6, 8]
    out = viz.save_animation(anim, tmp_path / "rollout3d.gif", dpi=30)
    assert out.stat().st_size > 0
    assert gif_frames(out) == 5


@pytest.mark.parametrize("num_steps, stride, max_frames",
                         [(1, 1, 200), (10, 1, None), (10, 4, 200), (101, 1, 200),
                          (1000, 3, 200), (50, 2, 7), (50, 1, 1)])
def test_frame_count_is_strided_length_capped(num_steps, stride, max_frames, drift):
    truth = drift(num_steps, 3, 2)
    anim = pviz.animate_rollout(truth, stride=stride, max_frames=max_frames)
    expected = math.ceil(num_steps / stride)
    if max_frames is not None:
        expected = min(expected, max_frames)
    assert len(anim.steps) == expected
    assert len(np.unique(anim.steps)) == expected
    assert anim.steps[0] == 0 and np.all(anim.steps % stride == 0)


def test_panels_share_colours_and_legend_lists_types(tmp_path, drift):
    truth = drift(4, 12, 2)
    types = np.array([7] * 4 + [1] * 8)
    anim = pviz.animate_rollout(truth * 1.01, truth, particle_type=types, titles=("GT", "GNS"))
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


def test_prediction_only_has_one_panel(drift):
    anim = pviz.animate_rollout(drift(3, 5, 2))
    assert len(anim.axes) == 1 and anim.axes[0].get_title() == "Prediction"
    assert anim.figure.legends == []  # no particle types, no legend


def test_mismatched_shapes_name_both():
    with pytest.raises(ValueError, match=r"predicted \(5, 10, 2\) and ground_truth \(5, 11, 2\)"):
        pviz.animate_rollout(np.zeros((5, 10, 2)), np.zeros((5, 11, 2)))


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
        pviz.animate_rollout(arguments.pop("predicted"), **arguments)


def test_frame_figure_2d_and_3d(drift):
    ax = pviz.frame_figure(drift(1, 6, 2)[0], particle_type=[0, 0, 1, 1, 2, 2],
                          bounds=[[0, 1], [0, 1]], title="t = 0")
    assert ax.get_xlim() == (0.0, 1.0) and len(ax.collections) == 1
    assert len(ax.get_legend().get_texts()) == 3
    ax3 = pviz.frame_figure(torch.rand(6, 3))
    assert ax3.name == "3d"
    _, flat = plt.subplots()
    with pytest.raises(ValueError, match="projection='3d'"):
        pviz.frame_figure(np.zeros((6, 3)), ax=flat)
