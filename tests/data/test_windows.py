"""WindowIndex: uniform windows over a split, and the optional share of early windows."""

import numpy as np
import pytest
import torch

from gns.data.windows import WindowIndex
from gns.errors import GnsInputError


def test_uniform_windows_cover_every_start_equally():
    index = WindowIndex([10, 20])                        # windows of 3: 8 + 18 starts
    items = index.sample_items(26_000, 3, torch.Generator().manual_seed(0))
    assert all(0 <= start <= (7 if traj == 0 else 17) for traj, start in items)
    counts = np.bincount([traj for traj, _ in items], minlength=2)
    assert counts[1] / counts.sum() == pytest.approx(18 / 26, abs=0.01)  # long trajectories drawn more often


def test_early_fraction_draws_that_share_from_the_first_frames():
    index = WindowIndex([300, 300, 300])
    gen = torch.Generator().manual_seed(0)
    items = index.sample_items(20_000, 3, gen, early_frames=20, early_fraction=0.25)
    starts = np.array([start for _, start in items])
    # uniform draws land in the first 20 of 298 starts 6.7% of the time: 0.25 + 0.75 * 20 / 298
    assert (starts < 20).mean() == pytest.approx(0.25 + 0.75 * 20 / 298, abs=0.01)
    early = starts[starts < 20]
    assert np.bincount(early, minlength=20).min() > 0.5 * len(early) / 20  # spread over the 20 starts
    assert {traj for traj, _ in items} == {0, 1, 2}


def test_no_early_fraction_leaves_the_random_stream_alone():
    index = WindowIndex([50, 80])
    plain = index.sample_items(64, 3, torch.Generator().manual_seed(5))
    off = index.sample_items(64, 3, torch.Generator().manual_seed(5), early_frames=20, early_fraction=0.0)
    assert plain == off


def test_early_windows_respect_short_trajectories_and_bad_values():
    index = WindowIndex([5, 2, 300])                     # the second is too short for a window of 3
    items = index.sample_items(2_000, 3, torch.Generator().manual_seed(1), early_frames=50, early_fraction=1.0)
    assert {traj for traj, _ in items} == {0, 2}
    assert all(start < 3 for traj, start in items if traj == 0) and all(start < 50 for _, start in items)
    with pytest.raises(GnsInputError, match="early_fraction"):
        index.sample_items(4, 3, torch.Generator(), early_frames=5, early_fraction=1.5)


class _Marked(WindowIndex):
    """Two trajectories (20 and 6 frames) with impacts at steps 10 and 9 of the first, 1 and 3 of the second."""

    def __init__(self) -> None:
        super().__init__([20, 6])

    def impacts(self) -> np.ndarray:
        return np.array([[0, 10], [0, 18], [1, 1], [1, 3]])


def test_impact_windows_end_on_a_fitting_impact():
    index, window = _Marked(), 4                         # 3 input frames, then the scored one
    items = index.with_impacts(index.sample_items(500, window, torch.Generator().manual_seed(0)), window,
                               torch.Generator().manual_seed(1), 1.0)
    # the scored step runs from the window's last-but-one frame to its last: step 10 -> start 8; step 18 -> the
    # window would end on frame 19, the last; step 1 -> start -1 does not fit
    assert set(items) == {(0, 8), (0, 16), (1, 1)}
    half = index.with_impacts(index.sample_items(4000, window, torch.Generator().manual_seed(0)), window,
                              torch.Generator().manual_seed(1), 0.5)
    on_impacts = np.mean([item in {(0, 8), (0, 16), (1, 1)} for item in half])
    uniform = 3 / (17 + 3)                               # uniform draws that land on those windows anyway
    assert on_impacts == pytest.approx(0.5 + 0.5 * uniform, abs=0.03)


def test_no_impact_fraction_draws_nothing_and_unmarked_data_refuses():
    index, generator = _Marked(), torch.Generator().manual_seed(3)
    items = index.sample_items(8, 3, torch.Generator().manual_seed(0))
    assert index.with_impacts(items, 3, generator, 0.0) == items
    assert torch.equal(generator.get_state(), torch.Generator().manual_seed(3).get_state())
    with pytest.raises(GnsInputError, match="train.impact_fraction"):
        WindowIndex([10]).with_impacts(items, 3, generator, 0.5)
