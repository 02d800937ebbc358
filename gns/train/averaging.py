"""An exponential moving average of a network's weights (Polyak averaging), for validation and checkpoints.

Training steps the raw weights; after every optimizer step the average moves towards them by ``1 - d``, with
``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so early averages do not remember the random
initialisation for ``1 / (1 - decay)`` steps. The warm-up rules until ``(1 + n) / (10 + n)`` reaches ``decay``
(0.999: step 8,991): until then step ``k``'s weight in the average goes about as ``k^8``, so the average
centres on the last ~10% of the run whatever the decay (a 3000-step run gives the same average for 0.998, 0.999
and 0.9995). The average covers the floating-point parameters only: buffers
(the mesh simulator's online normalizers) are the raw model's, as training left them.

The trainer validates and checkpoints the averaged weights (:meth:`WeightAverage.applied`): a checkpoint's
``model`` is what evaluation, rollouts and ``gns release`` use, and ``raw_model`` what training resumes from.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class WeightAverage:
    """The moving average of ``module``'s parameters.

    Args:
        module: the network being trained (its parameters are read after each step, written only inside
            :meth:`applied`).
        decay: the average's decay per update once the warm-up reaches it, in [0, 1); 0.999: about the last
            1000 steps.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must lie in [0, 1), got {decay}")
        self.module, self.decay = module, decay
        self.params = [p for p in module.parameters() if p.is_floating_point()]
        self.average = [p.detach().clone() for p in self.params]
        self.updates = 0

    def update(self) -> None:
        """Move the average towards the current weights (call after every optimizer step)."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with torch.no_grad():
            torch._foreach_lerp_(self.average, [p.detach() for p in self.params], 1.0 - d)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Inside, the module holds the averaged weights; on leaving, the raw weights are back."""
        raw = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            torch._foreach_copy_(self.params, self.average)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, raw)

    def averaged_state_dict(self) -> dict[str, Any]:
        """The module's ``state_dict`` with the averaged parameters (copies, safe to keep)."""
        with self.applied():
            return {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def load(self, averaged_state: dict[str, Any], updates: int) -> None:
        """Take the average from a ``state_dict`` written by :meth:`averaged_state_dict` (the module's raw
        weights are left as they are)."""
        raw = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        self.module.load_state_dict(averaged_state)
        self.average = [p.detach().clone() for p in self.params]
        self.module.load_state_dict(raw)
        self.updates = int(updates)
