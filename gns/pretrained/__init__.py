"""Models shipped with gns, each with a card beside it (``NAME.md``: how it was made, what it scores, what it
does not do). Load one with :func:`gns.load_simulator`.

Attributes:
    WATER_LONG: the long recipe's water model (``water_long.pt``, the ``water_long`` preset, averaged over the
        left-right reflection); ``./run demo`` rolls it out beside the model it trains.
"""

from pathlib import Path

WATER_LONG = Path(__file__).parent / "water_long.pt"
