"""Progress bars show on a terminal and stay out of files and pipes."""

from gns.progress import no_bar
from gns.train.loop import Trainer
from gns.train.task import SimulatorTask


def test_bars_only_on_a_terminal(bouncing_dataset, tmp_path, capsys, small_config):
    assert no_bar(False) is True and no_bar(True) is None          # None: tqdm decides from isatty()
    config = small_config(bouncing_dataset, tmp_path, "train.steps=3")
    from gns.domains import domain_for_dataset

    Trainer(config, SimulatorTask(config, domain_for_dataset(bouncing_dataset)), tmp_path).train(progress=True)
    captured = capsys.readouterr()                                  # pytest's capture is not a terminal
    assert "train:" not in captured.err and "it/s" not in captured.err
