"""Training losses for every domain: noise-injected one-step, pushforward and full backprop-through-time.

All three are :func:`unrolled_loss` with a different unroll length and gradient policy:

* one-step: ``unroll=0``; the GNS / MeshGraphNets loss.
* pushforward (Brandstetter et al. 2022, as used by LagrangeBench): the model first rolls
  ``unroll`` steps forward *without gradient* from the noisy history; the loss is the
  one-step loss on the state it reached, so it learns to correct its own drift.
* bptt: the same unroll *with* gradient through every step; the loss averages every step.

The unroll takes the same step as a rollout (:mod:`gns.rollout`): integrate the prediction,
hold the entities the model does not simulate to their true values, shift the window.

What the loss needs of a learned simulator (particles, meshes, objects alike):

* ``window``, ``target_field`` (the field the model integrates and the noise perturbs),
  ``predicted_fields`` (target first), ``held(state)``; optionally ``state_fields`` (the fields a
  step reads: a predicted field that is also read, such as a rigid object's angle beside its
  position, is integrated and shifted through the unroll like the target field);
* ``forward(state) -> (N, O)`` normalized outputs; ``integrate(state, outputs) -> {field: (N, F)}``;
* ``target(state, next_fields, mask) -> (N, O)``: the exact inverse of ``integrate``, normalized;
* ``training_noise(state, noise_std, generator) -> (N, W, F)`` noise on the target field's window,
  or a dict field -> ``(N, W, F_field)`` of noise on the windows of several integrated fields.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gns.state import State


def masked_mse(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over the rows where ``mask`` is True (0 when none is).

    Args:
        prediction, target: ``(N, D)``; mask: ``(N,)`` bool.
    """
    weight = mask.to(prediction.dtype)[:, None]
    count = weight.sum() * prediction.shape[-1]
    return ((prediction - target) ** 2 * weight).sum() / count.clamp(min=1.0)


def _per_entity(like: Tensor, std: float, held: Tensor, generator: torch.Generator | None) -> Tensor:
    """``(N, F)`` normal draws of ``std`` shaped as ``like`` ``(N, F)``, zero on the ``held`` ``(N,)`` entities."""
    draw = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype) * std
    return torch.where(held[:, None], torch.zeros_like(draw), draw)


def unrolled_loss(simulator, truth: State, unroll: int, noise_std: float, gamma: float = 0.0,
                  generator: torch.Generator | None = None, backprop_through_unroll: bool = False,
                  correction: float = 1.0, replica: torch.nn.Module | None = None,
                  offset: tuple[float, float] = (0.0, 0.0), velocity_offset: float = 0.0) -> Tensor:
    """Loss on normalized outputs after ``unroll`` model steps.

    Noise: ``simulator.training_noise`` perturbs the target field's input window (or the windows
    of every integrated field it returns noise for). The target of
    the first step keeps ``1 - gamma`` of the noise on the last input frame: with ``gamma = 0``
    (GNS, particles) the model learns to correct the noisy *velocity*, not to undo a position
    offset it cannot see; with ``gamma = 1`` (MeshGraphNets flow) to undo the perturbation; with
    ``gamma = 0.1`` (MeshGraphNets cloth) mostly to damp the velocity error it implies.

    ``correction`` scales that velocity correction for second-order targets (positions): the
    target is moved by ``(1 - correction)`` of the last input velocity's noise, so that the
    target acceleration is the true one minus ``correction`` times that noise (with
    ``gamma = 0``). GNS asks for all of it (``1``), which makes the one-step target mostly
    noise when the noise is large beside the per-step acceleration: the noise of the first
    input velocity cannot be told from the true velocity.

    Args:
        simulator: a learned simulator (see the module docstring).
        truth: the target field, the other predicted fields and the input fields over
            ``window + 1 + unroll`` frames: ``window`` inputs, then ``unroll + 1`` targets.
        unroll: model steps taken before the (last) loss step.
        noise_std: training noise std (0: none).
        gamma: share of the last input frame's noise removed from the first target.
        generator: source of the noise.
        backprop_through_unroll: keep gradients through the unroll and average the loss over
            every step (``bptt``); otherwise only the last step is differentiated (pushforward).
        correction: share of the last input velocity's noise the target removes (second-order
            target fields only; needs a window of at least 2 frames).
        replica: the module whose call runs ``simulator``'s forward (``simulator`` wrapped in
            ``DistributedDataParallel``, whose backward averages the gradients over the ranks);
            default: ``simulator``. Everything else (noise, targets, integration) is ``simulator``'s.
        offset: ``(std, restore)``: a constant offset per entity, drawn with this std, added to every
            frame of the target field's input window (the velocities it implies are unchanged: the
            history stays clean), of which the first target asks the model to remove the share
            ``restore`` (after an unroll of ``j`` steps: the target keeps ``(1 - restore)^(j + 1)`` of it). Where the random walk teaches the model to correct a noisy velocity, this
            teaches it to move a configuration that has drifted from the data's back towards it
            (``(0, 0)``: none). Held entities get none.
        velocity_offset: std of a constant velocity error per entity over the input window (second-order
            target fields): frame ``k`` of the ``w`` input frames moves by ``(k + 1)`` times the drawn error,
            so every input velocity is off by it while the velocity changes stay clean (the random walk's
            noise on them can drown the per-step acceleration); the target removes ``correction`` of it, as
            of the random walk's last velocity noise. Held entities get none (0: none).

    Returns:
        scalar loss.
    """
    w, target = simulator.window, simulator.target_field
    # the fields each step integrates and reads back: the target, and any other predicted field the
    # model reads over its window (particles and meshes: the target alone; rigid objects: the angle too)
    reads = getattr(simulator, "state_fields", (target,))
    integrated = [target, *(f for f in simulator.predicted_fields if f != target and f in reads)]
    frames = {name: truth.fields[name] for name in integrated}                          # (N, w + 1 + unroll, F)
    if frames[target].shape[1] != w + 1 + unroll:
        raise ValueError(f"window of {frames[target].shape[1]} frames, expected {w + 1 + unroll}")
    if correction != 1.0 and w < 2:
        raise ValueError("noise correction below 1 needs a second-order target (a window of at least 2 frames)")
    held = simulator.held(truth)
    if noise_std > 0:
        noise = simulator.training_noise(truth.window(0, w), noise_std, generator)     # (N, w, F) or field -> it
        noise = dict(noise) if isinstance(noise, dict) else {target: noise}
    else:
        noise = {}
    noise = {name: noise.get(name, torch.zeros_like(frames[name][:, :w])) for name in integrated}
    offset_std, restore = offset
    if offset_std > 0:
        shift = _per_entity(frames[target][:, 0], offset_std, held, generator)                  # (N, F)
        noise[target] = noise[target] + shift[:, None]
    if velocity_offset > 0:
        if w < 2:
            raise ValueError("a velocity offset needs a second-order target (a window of at least 2 frames)")
        error = _per_entity(frames[target][:, 0], velocity_offset, held, generator)             # (N, F)
        ramp = torch.arange(1, w + 1, device=error.device, dtype=error.dtype)                  # (w,)
        noise[target] = noise[target] + error[:, None] * ramp[None, :, None]
    history = {name: frames[name][:, :w] + noise[name] for name in integrated}
    losses = []
    for j in range(unroll + 1):
        window = truth.window(j, j + w)
        step_state = window.with_fields({**window.fields, **history})                 # inputs of step j
        with_grad = backprop_through_unroll or j == unroll
        with torch.set_grad_enabled(with_grad and torch.is_grad_enabled()):
            predicted = (simulator if replica is None else replica)(step_state)          # (N, O) normalized
        if with_grad:
            nxt = {name: truth.fields[name][:, w + j] for name in simulator.predicted_fields}
            if j == 0:
                for name in integrated:
                    nxt[name] = nxt[name] + (1.0 - gamma) * noise[name][:, -1]
                    if correction != 1.0:
                        nxt[name] = nxt[name] + (1.0 - correction) * (noise[name][:, -1] - noise[name][:, -2])
                if offset_std > 0:  # the shift went into the noise above; the target keeps 1 - restore of it
                    nxt[target] = nxt[target] - (1.0 - gamma) * shift + (1.0 - restore) * shift
            elif offset_std > 0:  # after an unroll of j steps, each restoring its share: (1 - restore)^(j + 1) left
                nxt[target] = nxt[target] + (1.0 - restore) ** (j + 1) * shift
            losses.append(masked_mse(predicted, simulator.target(step_state, nxt, ~held), ~held))
        if j < unroll:
            stepped = simulator.integrate(step_state, predicted)
            for name in integrated:
                frame = torch.where(held[:, None], frames[name][:, w + j], stepped[name])
                if not backprop_through_unroll:
                    frame = frame.detach()
                history[name] = torch.cat([history[name][:, 1:], frame[:, None]], dim=1)
    return torch.stack(losses).mean()


class PushforwardSchedule:
    """Which unroll lengths may be drawn at a given training step, and how likely each is.

    From step ``steps[i]`` on, unroll ``unrolls[i]`` is allowed with relative weight ``probs[i]``.
    """

    def __init__(self, steps: tuple[int, ...], unrolls: tuple[int, ...], probs: tuple[float, ...]) -> None:
        if not (len(steps) == len(unrolls) == len(probs)):
            raise ValueError("pushforward_steps, pushforward_unrolls and pushforward_probs must have equal lengths")
        self.steps, self.unrolls, self.probs = steps, unrolls, probs

    def sample(self, step: int, generator: torch.Generator) -> int:
        allowed = [i for i, s in enumerate(self.steps) if step >= s]
        if not allowed:
            return 0
        weights = torch.tensor([self.probs[i] for i in allowed], dtype=torch.float64)
        choice = int(torch.multinomial(weights, 1, generator=generator))
        return self.unrolls[allowed[choice]]

    @property
    def max_unroll(self) -> int:
        return max(self.unrolls)


def unroll_for(train_config, schedule: PushforwardSchedule, step: int, generator: torch.Generator) -> tuple[int, bool]:
    """Unroll length and whether to backprop through it at ``step``, for ``train_config.loss``."""
    if train_config.loss == "pushforward":
        return schedule.sample(step, generator), False
    if train_config.loss == "bptt":
        return train_config.bptt_steps - 1, True
    return 0, False
